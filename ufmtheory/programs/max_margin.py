"""Max-margin logit programmes of imbalanced and soft-label designs (docs: Theory §4.5).

Orientation: every logit matrix in this module is **(m, V): contexts × tokens**, i.e. the transpose of the
UFM's ``W H: (V, m)``. A solution ``L = U Σ Vᵀ`` factors as ``H = U Σ^{1/2}`` (rows: contexts) and
``W = V Σ^{1/2}`` (rows: tokens), so ``HᵀH`` of the UFM is ``gram_H = U Σ Uᵀ: (m, m)`` and
``W Wᵀ = gram_W = V Σ Vᵀ: (V, V)``, and ``½(‖W‖² + ‖H‖²) = ‖L‖_*`` (the balanced factorisation is optimal).

* :func:`nn_svm`: the nuclear-norm SVM of next-token supports ``S_j = {z : Y_zj > 0}``::

      minimise ‖L‖_*   s.t.   L_jz = L_jz'  (z, z' ∈ S_j),   L_jz - L_jz' >= 1  (z ∈ S_j, z' ∉ S_j).

  A context whose support is every token gives no inequality (its row is then 0 at the optimum).
* :func:`uf_svm`: the imbalanced one-hot UF-SVM ``min ½(‖W‖² + ‖H‖²) s.t. margins >= 1`` (features free per
  context). Context weights do not enter the hard-margin problem; imbalance enters through the number
  ``n_k`` of contexts of each class. Rows of one class coincide at the optimum (average over permutations
  of identical rows: the norm is convex and permutation invariant), so it is solved on the class means as
  ``min ‖diag(√n) M‖_*`` (``reduce=True``), or on all contexts (``reduce=False``, equal to :func:`nn_svm`).
* :func:`in_support_logits`: the in-support part: log-odds ``log Y_zj`` centred over ``S_j`` (zero outside).
* :func:`support_margins`: smallest in/out margin and in-support spread of given logits.

Closed-form proxies and their gap to the optimum live in :mod:`ufmtheory.programs.proxies`, the ridge path in
:mod:`ufmtheory.programs.paths`. cvxpy is imported inside the solving functions only, so ``import ufmtheory``
stays fast and cvxpy-free. Failure policy: a solve that is not optimal returns its status (``"inaccurate"``,
``"infeasible"``, ``"max_evals"``, ``"failed"``); ``throw=True`` raises
:class:`~ufmtheory._results.SolverError` instead.

Example:
    >>> import numpy as np
    >>> from ufmtheory import designs, programs
    >>> res = programs.nn_svm(designs.factorial((3,)))  # balanced one-hot, K = 3: L = I - J/3
    >>> res.status, round(res.objective, 5)
    ('ok', 2.0)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ufmtheory._results import ResultMixin, finish
from ufmtheory.designs import Design
from ufmtheory.programs._nuclear import (
    CLARABEL_MAX_SIZE,
    Pairs,
    _solve_nuclear,
    _support_constraints,
    choose_solver,
)

__all__ = [
    "ConvexResult",
    "nn_svm",
    "uf_svm",
    "in_support_logits",
    "support_matrix",
    "support_margins",
    "choose_solver",
    "CLARABEL_MAX_SIZE",
]

_SUM_TOL = 1e-8
_RANK_TOL = 1e-6  # relative singular-value cut for the SVD geometry (above any solver's accuracy)


@dataclass(frozen=True, eq=False, kw_only=True)
class ConvexResult(ResultMixin):
    """Solution of a max-margin logit programme (or a closed-form proxy) with its SVD geometry.

    Attributes:
        solution: (m, V) logits, contexts × tokens (the transpose of the UFM's ``W H``).
        gram_H: (m, m) ``U Σ Uᵀ`` from the SVD ``solution = U Σ Vᵀ`` (``H = U Σ^{1/2}``).
        gram_W: (V, V) ``V Σ Vᵀ`` (``W = V Σ^{1/2}``).
        objective: nuclear norm ``‖solution‖_*`` (= ``½(‖W‖² + ‖H‖²)`` of the balanced factorisation).
        solver: the cvxpy solver used, or ``"none"`` for closed forms.
        status: ``"ok"`` (cvxpy ``optimal``), ``"inaccurate"`` (``optimal_inaccurate``), ``"infeasible"``,
            ``"max_evals"`` (iteration limit) or ``"failed"``; message: the solver's status in words.
        tolerances: solver options used.
        method: ``"nn-svm"``, ``"uf-svm"``, ``"uf-svm-reduced"``, ``"centred-support-proxy"``, ...
        stats: ``n_evals`` (solver iterations), ``wall_time_s`` (problem build + solve), and extra numbers
            (smallest margin, equality violation, rank, singular values, solver objective).
    """

    solution: np.ndarray
    gram_H: np.ndarray
    gram_W: np.ndarray
    objective: float
    solver: str
    status: str = "ok"
    message: str = ""
    tolerances: dict[str, Any] = field(default_factory=dict)
    method: str = ""
    stats: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check_result()

    @property
    def singular_values(self) -> np.ndarray:
        return np.asarray(self.stats.get("singular_values", np.linalg.svd(self.solution, compute_uv=False)))

    def factors(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W: (V, r), H: (r, m))`` with ``W H = solutionᵀ`` and ``WᵀW = HHᵀ = Σ`` (balanced)."""
        U, s, Vt = np.linalg.svd(self.solution, full_matrices=False)
        r = _rank(s)
        root = np.sqrt(s[:r])
        return Vt[:r].T * root, (U[:, :r] * root).T


# -- validation ------------------------------------------------------------------------------------
def _distributions(design: Design | np.ndarray) -> np.ndarray:
    """(m, V) next-token distributions of a Design or of a raw (m, V) array, validated."""
    if isinstance(design, Design):
        return np.asarray(design.Y, dtype=np.float64).T
    if isinstance(design, (str, bytes)) or design is None:
        raise TypeError(f"design must be a Design or an (m, V) array of distributions, got {type(design)}")
    try:
        P = np.array(design, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError("design must be a Design or a numeric (m, V) array of distributions") from exc
    if P.ndim != 2:
        raise ValueError(f"design as an array must be 2-D (m contexts, V tokens), got shape {P.shape}")
    m, V = P.shape
    if m < 1 or V < 2:
        raise ValueError(f"design must have at least 1 context and 2 tokens, got shape (m, V) = {P.shape}")
    if not np.all(np.isfinite(P)):
        raise ValueError("design rows must be finite (found NaN or inf)")
    if np.any(P < 0):
        j = int(np.argwhere(P < 0)[0, 0])
        raise ValueError(f"design rows must be non-negative distributions; row {j} has a negative entry")
    sums = P.sum(axis=1)
    empty = np.flatnonzero(sums == 0)
    if empty.size:
        raise ValueError(f"every context needs a non-empty support; row {int(empty[0])} is all zero")
    bad = np.flatnonzero(np.abs(sums - 1.0) > _SUM_TOL)
    if bad.size:
        raise ValueError(f"design rows must sum to 1; row {int(bad[0])} sums to {sums[bad[0]]:.6g}")
    return P


def support_matrix(design: Design | np.ndarray) -> np.ndarray:
    """(m, V) 0/1 support matrix ``S_jz = [Y_zj > 0]`` of a Design (or an (m, V) distribution array)."""
    return (_distributions(design) > 0).astype(np.float64)


def support_margins(L: np.ndarray, S: np.ndarray) -> tuple[float, float]:
    """``(smallest in/out margin, largest in-support spread)`` of logits ``L: (m, V)`` on supports ``S``.

    Contexts with full support have no margin and are skipped (``inf`` when no context has one).
    """
    L, S = np.asarray(L, dtype=np.float64), np.asarray(S) > 0
    if L.shape != S.shape:
        raise ValueError(f"logits shape {L.shape} does not match the support matrix shape {S.shape}")
    big = np.inf
    ins = np.where(S, L, big).min(axis=1)
    outs = np.where(~S, L, -big).max(axis=1)
    has = (~S).any(axis=1)
    margin = float((ins - outs)[has].min()) if has.any() else math.inf
    spread = float((np.where(S, L, -big).max(axis=1) - ins).max())
    return margin, spread


def _rank(s: np.ndarray) -> int:
    return int(np.sum(s > _RANK_TOL * max(float(s[0]) if s.size else 0.0, 1e-300)))


def _geometry(L: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    U, s, Vt = np.linalg.svd(L, full_matrices=False)
    r = _rank(s)
    gram_H = (U[:, :r] * s[:r]) @ U[:, :r].T
    gram_W = (Vt[:r].T * s[:r]) @ Vt[:r]
    return gram_H, gram_W, s


def _result(
    L: np.ndarray,
    S: np.ndarray,
    *,
    solver: str,
    status: str = "ok",
    message: str = "",
    method: str,
    tolerances: dict[str, Any] | None = None,
    n_evals: int = 0,
    wall_time_s: float = 0.0,
    stats: dict[str, Any] | None = None,
) -> ConvexResult:
    L = np.array(L, dtype=np.float64)
    gram_H, gram_W, s = _geometry(L)
    margin, spread = support_margins(L, S)
    for arr in (L, gram_H, gram_W):
        arr.setflags(write=False)
    st = {
        "n_evals": n_evals,
        "wall_time_s": wall_time_s,
        "min_margin": margin,
        "in_support_spread": spread,
        "rank": _rank(s),
        "singular_values": s,
    }
    st.update(stats or {})
    return ConvexResult(
        solution=L,
        gram_H=gram_H,
        gram_W=gram_W,
        objective=float(s.sum()),
        solver=solver,
        status=status,
        message=message,
        tolerances=dict(tolerances or {}),
        method=method,
        stats=st,
    )


# -- convex programmes -----------------------------------------------------------------------------
def nn_svm(
    design: Design | np.ndarray,
    *,
    solver: str | None = None,
    solver_options: dict[str, Any] | None = None,
    throw: bool = False,
) -> ConvexResult:
    """Nuclear-norm SVM of the next-token supports (docs: Theory §4.5).

    ``min ‖L‖_*`` over ``L: (m, V)`` (contexts × tokens) s.t. ``L_jz = L_jz'`` for ``z, z' ∈ S_j`` and
    ``L_jz - L_jz' >= 1`` for ``z ∈ S_j, z' ∉ S_j``. Contexts whose support is every token add only the
    equalities. Solved as an SDP with cvxpy.

    Args:
        design: a :class:`~ufmtheory.designs.Design` or an (m, V) array of next-token distributions.
        solver: cvxpy solver name; ``None`` picks CLARABEL for ``m·V <= CLARABEL_MAX_SIZE`` and SCS above,
            and retries once with the other solver (larger iteration budget) when the first does not
            reach ``optimal``; ``message`` then lists the solvers tried.
        solver_options: overrides of the default tolerances (CLARABEL ``tol_* = 1e-8``; SCS
            ``eps_abs = eps_rel = 1e-8``, ``max_iters = 200000``).
        throw: raise :class:`~ufmtheory._results.SolverError` naming the status if it is not ``"ok"``.

    Returns:
        :class:`ConvexResult` with ``method="nn-svm"``.

    Example:
        >>> import numpy as np
        >>> P = np.array([[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])  # two disjoint blocks of 2 of 4 tokens
        >>> round(nn_svm(P).objective, 5)  # = ‖S C_4‖_*: rank one, rows ±(½, ½, -½, -½), σ = √2
        1.41421
    """
    P = _distributions(design)
    S = (P > 0).astype(np.float64)
    m, V = S.shape
    ineq, eq, full = _support_constraints(S)
    stats: dict[str, Any] = {
        "full_support_contexts": full,
        "n_inequalities": int(ineq[0].size),
        "n_equalities": int(eq[0].size),
    }
    if ineq[0].size == 0:
        # No margin to enforce: L = 0 is optimal (equalities hold trivially).
        return _result(np.zeros((m, V)), S, solver="none", method="nn-svm", stats=stats)
    L, name, status, message, opts, wall, obj, iters = _solve_nuclear(
        m, V, ineq, eq, None, solver=solver, solver_options=solver_options, what="nn_svm"
    )
    stats["solver_objective"] = obj
    if np.all(np.isfinite(L)):
        stats["equality_violation"] = (
            float(np.abs(L[eq[0], eq[1]] - L[eq[0], eq[2]]).max()) if eq[0].size else 0.0
        )
        res = _result(
            L, S, solver=name, status=status, message=message, method="nn-svm", tolerances=opts,
            n_evals=iters, wall_time_s=wall, stats=stats,
        )  # fmt: skip
        return finish(res, throw)
    nan = np.full((m, V), np.nan)
    res = ConvexResult(
        solution=nan, gram_H=np.full((m, m), np.nan), gram_W=np.full((V, V), np.nan), objective=math.nan,
        solver=name, status="failed" if status == "ok" else status, message=message or "no solution returned",
        tolerances=opts, method="nn-svm", stats={"n_evals": iters, "wall_time_s": wall, **stats},
    )  # fmt: skip
    return finish(res, throw)


def _one_hot_labels(design: Design | np.ndarray) -> np.ndarray:
    P = _distributions(design)
    if not np.all((P == 0) | (P == 1)):
        raise ValueError(
            "uf_svm needs a one-hot design (every context a single next token); use nn_svm for soft labels"
        )
    return P.argmax(axis=1)


def uf_svm(
    design: Design | np.ndarray,
    *,
    solver: str | None = None,
    reduce: bool = True,
    solver_options: dict[str, Any] | None = None,
    throw: bool = False,
) -> ConvexResult:
    """Imbalanced one-hot UF-SVM: ``min ½(‖W‖² + ‖H‖²) s.t. (W h_j)_{y_j} - (W h_j)_z >= 1 (z ≠ y_j)``.

    Equivalently ``min ‖L‖_*`` over all contexts' logits ``L: (m, V)`` with margins >= 1 (features are
    unconstrained per context). Context weights ``π`` do not enter; class imbalance enters through the
    counts ``n_k`` of contexts per class. With ``reduce=True`` the programme is solved on class rows
    ``M: (K, V)`` as ``min ‖diag(√n) M‖_*`` (rows of a class coincide at an optimum), then expanded.
    The optimum is the SELI geometry ``L = S C_V`` of :func:`sel_matrix` [Thrampoulidis et al. 2022].

    Args:
        design: a one-hot :class:`~ufmtheory.designs.Design` or (m, V) one-hot array.
        solver, solver_options, throw: as in :func:`nn_svm`.
        reduce: solve on class means (default) or on all contexts.

    Returns:
        :class:`ConvexResult` (``method="uf-svm-reduced"`` or ``"uf-svm"``) with ``H = U Σ^{1/2}``,
        ``W = V Σ^{1/2}`` Grams of the full (m, V) logits.
    """
    labels = _one_hot_labels(design)
    m = labels.size
    V = _distributions(design).shape[1]
    S = np.zeros((m, V))
    S[np.arange(m), labels] = 1.0
    if not reduce:
        res = nn_svm(S, solver=solver, solver_options=solver_options, throw=throw)
        return dataclasses.replace(res, method="uf-svm")
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    K = classes.size
    ineq_r, ineq_a, ineq_b = [], [], []
    for k, y in enumerate(classes):
        out = np.delete(np.arange(V), y)
        ineq_r.append(np.full(out.size, k))
        ineq_a.append(np.full(out.size, y))
        ineq_b.append(out)
    ineq: Pairs = (
        np.concatenate(ineq_r).astype(np.int64),
        np.concatenate(ineq_a).astype(np.int64),
        np.concatenate(ineq_b).astype(np.int64),
    )
    empty = np.zeros(0, dtype=np.int64)
    M, name, status, message, opts, wall, obj, iters = _solve_nuclear(
        K, V, ineq, (empty, empty, empty), np.sqrt(counts.astype(np.float64)),
        solver=solver, solver_options=solver_options, what="uf_svm",
    )  # fmt: skip
    stats = {"class_counts": counts.tolist(), "classes": classes.tolist(), "solver_objective": obj}
    res = _result(
        M[inverse], S, solver=name, status=status, message=message, method="uf-svm-reduced", tolerances=opts,
        n_evals=iters, wall_time_s=wall, stats=stats,
    )  # fmt: skip
    return finish(res, throw)


# -- closed forms ----------------------------------------------------------------------------------
def in_support_logits(design: Design | np.ndarray) -> ConvexResult:
    """In-support logit part: ``L_in[j, z] = log Y_zj - mean_{z' ∈ S_j} log Y_z'j`` for ``z ∈ S_j``, else 0.

    Its differences within a support are the log-odds ``log(Y_z|j / Y_z'|j)`` that the softmax must
    reproduce in the vanishing-ridge limit [Zhao et al. 2024]; each row is centred over its support.
    Returns a :class:`ConvexResult` (``solver="none"``, ``method="in-support-log-odds"``).
    """
    P = _distributions(design)
    S = P > 0
    logP = np.where(S, np.log(np.where(S, P, 1.0)), 0.0)
    centre = logP.sum(axis=1, keepdims=True) / S.sum(axis=1, keepdims=True)
    L = np.where(S, logP - centre, 0.0)
    return _result(L, S.astype(float), solver="none", method="in-support-log-odds")
