"""Max-margin geometry of imbalanced and soft-label designs (docs: Theory §4.5).

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
* :func:`centred_support_proxy` ``S(I - 11ᵀ/V)`` and :func:`sel_matrix` (simplex-encoded labels,
  [Thrampoulidis et al. 2022, arXiv 2208.05512]) are closed-form proxies; :func:`proxy_gap` compares a proxy
  with the convex optimum. The centred support is exact for one-hot labels and for disjoint equal-size
  support blocks, **not in general** (8 contexts with supports of 3 cyclically consecutive tokens of 8:
  proxy ``‖L‖_* ≈ 8.657``, optimum ≈ 8.243).
* :func:`regularization_path`: ridge equilibria of the UFM for decreasing λ by warm-started gradient flow,
  with the decomposition ``L_λ ≈ L_in + c(λ) L_mm`` measured along the path.

cvxpy is imported inside the solving functions only, so ``import ufmtheory`` stays fast and cvxpy-free.

Example:
    >>> import numpy as np
    >>> from ufmtheory import designs, programs
    >>> res = programs.nn_svm(designs.factorial((3,)))  # balanced one-hot, K = 3: L = I - J/3
    >>> res.status, round(res.objective, 5)
    ('optimal', 2.0)
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ufmtheory.designs import Design

__all__ = [
    "ConvexResult",
    "ProxyGap",
    "RegularizationPath",
    "nn_svm",
    "uf_svm",
    "in_support_logits",
    "centred_support_proxy",
    "sel_matrix",
    "proxy_gap",
    "regularization_path",
    "support_matrix",
    "margins",
    "choose_solver",
    "gram_cosine",
    "CLARABEL_MAX_SIZE",
]

# m·V at or below which CLARABEL (interior point, ~1e-9) is used; above it SCS (first order, faster per
# size but ~1e-6..1e-8). The nuclear-norm SDP has an (m+V)-sized PSD cone, which is what makes CLARABEL slow.
CLARABEL_MAX_SIZE = 1000  # bench_convex: CLARABEL 2 s at 25x25 but 49 s at 50x50; SCS 0.4 s there
_SUM_TOL = 1e-8
_RANK_TOL = 1e-6  # relative singular-value cut for the SVD geometry (above any solver's accuracy)


def _default_options(solver: str) -> dict[str, Any]:
    if solver == "CLARABEL":
        return {"tol_gap_abs": 1e-8, "tol_gap_rel": 1e-8, "tol_feas": 1e-8, "max_iter": 500}
    if solver == "SCS":
        return {"eps_abs": 1e-8, "eps_rel": 1e-8, "max_iters": 200_000}
    return {}


@dataclass(frozen=True, eq=False)
class ConvexResult:
    """Solution of a max-margin logit programme (or a closed-form proxy) with its SVD geometry.

    Attributes:
        solution: (m, V) logits, contexts × tokens (the transpose of the UFM's ``W H``).
        gram_H: (m, m) ``U Σ Uᵀ`` from the SVD ``solution = U Σ Vᵀ`` (``H = U Σ^{1/2}``).
        gram_W: (V, V) ``V Σ Vᵀ`` (``W = V Σ^{1/2}``).
        objective: nuclear norm ``‖solution‖_*`` (= ``½(‖W‖² + ‖H‖²)`` of the balanced factorisation).
        solver: the cvxpy solver used, or ``"none"`` for closed forms.
        status: ``"optimal"`` or the solver's status.
        tolerances: solver options used.
        solve_time: wall time in seconds (problem build + solve).
        method: ``"nn-svm"``, ``"uf-svm"``, ``"uf-svm-reduced"``, ``"centred-support-proxy"``, ...
        stats: extra numbers (smallest margin, equality violation, rank, singular values, solver objective).
    """

    solution: np.ndarray
    gram_H: np.ndarray
    gram_W: np.ndarray
    objective: float
    solver: str
    status: str
    tolerances: dict[str, Any] = field(default_factory=dict)
    solve_time: float = 0.0
    method: str = ""
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def singular_values(self) -> np.ndarray:
        return np.asarray(self.stats.get("singular_values", np.linalg.svd(self.solution, compute_uv=False)))

    def factors(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W: (V, r), H: (r, m))`` with ``W H = solutionᵀ`` and ``WᵀW = HHᵀ = Σ`` (balanced)."""
        U, s, Vt = np.linalg.svd(self.solution, full_matrices=False)
        r = _rank(s)
        root = np.sqrt(s[:r])
        return Vt[:r].T * root, (U[:, :r] * root).T


@dataclass(frozen=True, eq=False)
class ProxyGap:
    """Closed-form proxy vs convex optimum (:func:`proxy_gap`).

    Attributes:
        proxy: which proxy (``"centred"`` or ``"sel"``).
        proxy_nuclear: ``‖proxy‖_*`` (after scaling to margin 1).
        optimum_nuclear: the convex optimum ``‖L*‖_*``.
        relative_gap: ``proxy_nuclear / optimum_nuclear - 1`` (>= 0 up to solver tolerance).
        gram_cosine_H, gram_cosine_W: Frobenius cosines between the proxy's and the optimum's Grams.
        logit_error: ``max |proxy - L*|`` (meaningful where the optimum is unique).
        proxy_result, optimum_result: the two :class:`ConvexResult` objects.
    """

    proxy: str
    proxy_nuclear: float
    optimum_nuclear: float
    relative_gap: float
    gram_cosine_H: float
    gram_cosine_W: float
    logit_error: float
    proxy_result: ConvexResult
    optimum_result: ConvexResult


@dataclass(frozen=True, eq=False)
class RegularizationPath:
    """Ridge equilibria along decreasing ``λ = λ_W = λ_H`` (:func:`regularization_path`).

    Attributes:
        lambdas: (n,) the ridge strengths, in the order solved (decreasing).
        gram_H: (n, m, m) ``HᵀH`` at each λ. gram_W: (n, V, V) ``W Wᵀ``.
        logits: (n, m, V) ``(W H)ᵀ`` (contexts × tokens, as in :class:`ConvexResult`).
        grad_norm: (n,) Euclidean norm of the full gradient at the end of each flow (convergence check).
        gram_cosine_H, gram_cosine_W: (n,) Frobenius cosine of the Grams to the SVM geometry.
        c: (n,) least-squares coefficient in ``L_λ C ≈ (L_in + c L_mm) C`` (``C = I - 11ᵀ/V`` removes the
            per-context shift the softmax ignores).
        residual: (n,) ``‖(L_λ - L_in - c L_mm) C‖_F``; relative_residual: divided by ``‖L_λ C‖_F``.
        in_support_error: (n,) max over contexts of the error of the centred in-support logits against
            the log-odds ``L_in``.
        t1: flow time per λ; status: ``"ok"`` or the first problem met; svm: the max-margin ConvexResult.
        stats: per-λ flow statistics.
    """

    lambdas: np.ndarray
    gram_H: np.ndarray
    gram_W: np.ndarray
    logits: np.ndarray
    grad_norm: np.ndarray
    gram_cosine_H: np.ndarray
    gram_cosine_W: np.ndarray
    c: np.ndarray
    residual: np.ndarray
    relative_residual: np.ndarray
    in_support_error: np.ndarray
    t1: float
    status: str
    svm: ConvexResult
    stats: list[dict[str, Any]] = field(default_factory=list)


# -- validation ------------------------------------------------------------------------------------
def _distributions(design: Any) -> np.ndarray:
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


def support_matrix(design: Any) -> np.ndarray:
    """(m, V) 0/1 support matrix ``S_jz = [Y_zj > 0]`` of a Design (or an (m, V) distribution array)."""
    return (_distributions(design) > 0).astype(np.float64)


def margins(L: np.ndarray, S: np.ndarray) -> tuple[float, float]:
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
    status: str,
    method: str,
    tolerances: dict[str, Any] | None = None,
    solve_time: float = 0.0,
    stats: dict[str, Any] | None = None,
) -> ConvexResult:
    L = np.array(L, dtype=np.float64)
    gram_H, gram_W, s = _geometry(L)
    margin, spread = margins(L, S)
    for arr in (L, gram_H, gram_W):
        arr.setflags(write=False)
    st = {
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
        tolerances=dict(tolerances or {}),
        solve_time=solve_time,
        method=method,
        stats=st,
    )


def choose_solver(m: int, V: int, solver: str | None = None) -> str:
    """``solver`` if given, else CLARABEL when ``m·V <= CLARABEL_MAX_SIZE`` and SCS above."""
    if solver is not None:
        if not isinstance(solver, str):
            raise TypeError(f"solver must be a string such as 'CLARABEL' or 'SCS', got {solver!r}")
        return solver.upper()
    return "CLARABEL" if m * V <= CLARABEL_MAX_SIZE else "SCS"


def _solve_nuclear(
    n_rows: int,
    V: int,
    ineq: tuple[np.ndarray, np.ndarray, np.ndarray],
    eq: tuple[np.ndarray, np.ndarray],
    row_scale: np.ndarray | None,
    *,
    solver: str | None,
    solver_options: dict[str, Any] | None,
    strict: bool,
    what: str,
) -> tuple[np.ndarray, str, str, dict[str, Any], float, float]:
    """``min ‖diag(row_scale) L‖_*`` over ``L: (n_rows, V)`` s.t. ``L[r, a] - L[r, b] >= 1`` for the rows of
    ``ineq = (r, a, b)`` and ``L[r, a] == L[r, b]`` for ``eq = (r, a, b)`` stacked as (3, k) arrays."""
    import cvxpy as cp  # lazy: keeps `import ufmtheory` cvxpy-free
    import scipy.sparse as sp

    name = choose_solver(n_rows, V, solver)
    opts = _default_options(name)
    opts.update(solver_options or {})
    start = time.perf_counter()
    L = cp.Variable((n_rows, V))
    x = cp.vec(L, order="C")  # index r * V + z
    cons = []
    r, a, b = ineq
    if r.size:
        k = r.size
        A = sp.csr_matrix(
            (
                np.r_[np.ones(k), -np.ones(k)],
                (np.r_[np.arange(k), np.arange(k)], np.r_[r * V + a, r * V + b]),
            ),
            shape=(k, n_rows * V),
        )
        cons.append(A @ x >= 1)
    r, a, b = eq
    if r.size:
        k = r.size
        B = sp.csr_matrix(
            (
                np.r_[np.ones(k), -np.ones(k)],
                (np.r_[np.arange(k), np.arange(k)], np.r_[r * V + a, r * V + b]),
            ),
            shape=(k, n_rows * V),
        )
        cons.append(B @ x == 0)
    expr = L if row_scale is None else cp.multiply(row_scale[:, None], L)
    prob = cp.Problem(cp.Minimize(cp.normNuc(expr)), cons)
    try:
        with warnings.catch_warnings():
            # cvxpy's own "may be inaccurate" warning: the status check below reports it with context
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")
            prob.solve(solver=name, **opts)
        status = str(prob.status)
    except cp.error.SolverError as exc:
        status = f"solver_error: {exc}"
    wall = time.perf_counter() - start
    if status != "optimal":
        msg = f"{what}: solver {name} returned status {status!r} (tolerances {opts})"
        if strict:
            raise RuntimeError(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
    value = L.value if L.value is not None else np.full((n_rows, V), np.nan)
    obj = float(prob.value) if prob.value is not None else math.nan
    return np.asarray(value, dtype=np.float64), name, status, opts, wall, obj


def _support_constraints(S: np.ndarray) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], int]:
    rows_i, a_i, b_i, rows_e, a_e, b_e = [], [], [], [], [], []
    full = 0
    for j, srow in enumerate(S > 0):
        sup, out = np.flatnonzero(srow), np.flatnonzero(~srow)
        z0 = sup[0]
        rows_e.append(np.full(sup.size - 1, j))
        a_e.append(sup[1:])
        b_e.append(np.full(sup.size - 1, z0))
        if out.size == 0:
            full += 1  # every token in the support: no margin constraint, only equalities
            continue
        rows_i.append(np.full(out.size, j))
        a_i.append(np.full(out.size, z0))
        b_i.append(out)

    def cat(xs: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(xs).astype(np.int64) if xs else np.zeros(0, dtype=np.int64)

    return (cat(rows_i), cat(a_i), cat(b_i)), (cat(rows_e), cat(a_e), cat(b_e)), full


# -- convex programmes -----------------------------------------------------------------------------
def nn_svm(
    design: Any,
    *,
    solver: str | None = None,
    strict: bool = True,
    solver_options: dict[str, Any] | None = None,
) -> ConvexResult:
    """Nuclear-norm SVM of the next-token supports (docs: Theory §4.5).

    ``min ‖L‖_*`` over ``L: (m, V)`` (contexts × tokens) s.t. ``L_jz = L_jz'`` for ``z, z' ∈ S_j`` and
    ``L_jz - L_jz' >= 1`` for ``z ∈ S_j, z' ∉ S_j``. Contexts whose support is every token add only the
    equalities. Solved as an SDP with cvxpy.

    Args:
        design: a :class:`~ufmtheory.designs.Design` or an (m, V) array of next-token distributions.
        solver: cvxpy solver name; ``None`` picks CLARABEL for ``m·V <= 2400`` and SCS above.
        strict: raise ``RuntimeError`` naming the status if it is not ``"optimal"``; with ``False`` warn.
        solver_options: overrides of the default tolerances (CLARABEL ``tol_* = 1e-8``; SCS
            ``eps_abs = eps_rel = 1e-8``, ``max_iters = 200000``).

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
    stats = {
        "full_support_contexts": full,
        "n_inequalities": int(ineq[0].size),
        "n_equalities": int(eq[0].size),
    }
    if ineq[0].size == 0:
        # No margin to enforce: L = 0 is optimal (equalities hold trivially).
        return _result(np.zeros((m, V)), S, solver="none", status="optimal", method="nn-svm", stats=stats)
    L, name, status, opts, wall, obj = _solve_nuclear(
        m, V, ineq, eq, None, solver=solver, solver_options=solver_options, strict=strict, what="nn_svm"
    )
    stats["solver_objective"] = obj
    if np.all(np.isfinite(L)):
        stats["equality_violation"] = (
            float(np.abs(L[eq[0], eq[1]] - L[eq[0], eq[2]]).max()) if eq[0].size else 0.0
        )
        return _result(
            L, S, solver=name, status=status, method="nn-svm", tolerances=opts, solve_time=wall, stats=stats
        )
    nan = np.full((m, V), np.nan)
    return ConvexResult(nan, np.full((m, m), np.nan), np.full((V, V), np.nan), math.nan, name, status,
                        opts, wall, "nn-svm", stats)  # fmt: skip


def _one_hot_labels(design: Any) -> np.ndarray:
    P = _distributions(design)
    if not np.all((P == 0) | (P == 1)):
        raise ValueError(
            "uf_svm needs a one-hot design (every context a single next token); use nn_svm for soft labels"
        )
    return P.argmax(axis=1)


def uf_svm(
    design: Any,
    *,
    solver: str | None = None,
    strict: bool = True,
    reduce: bool = True,
    solver_options: dict[str, Any] | None = None,
) -> ConvexResult:
    """Imbalanced one-hot UF-SVM: ``min ½(‖W‖² + ‖H‖²) s.t. (W h_j)_{y_j} - (W h_j)_z >= 1 (z ≠ y_j)``.

    Equivalently ``min ‖L‖_*`` over all contexts' logits ``L: (m, V)`` with margins >= 1 (features are
    unconstrained per context). Context weights ``π`` do not enter; class imbalance enters through the
    counts ``n_k`` of contexts per class. With ``reduce=True`` the programme is solved on class rows
    ``M: (K, V)`` as ``min ‖diag(√n) M‖_*`` (rows of a class coincide at an optimum), then expanded.
    The optimum is the SELI geometry ``L = S C_V`` of :func:`sel_matrix` [Thrampoulidis et al. 2022].

    Args:
        design: a one-hot :class:`~ufmtheory.designs.Design` or (m, V) one-hot array.
        solver, strict, solver_options: as in :func:`nn_svm`.
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
        res = nn_svm(S, solver=solver, strict=strict, solver_options=solver_options)
        return dataclasses.replace(res, method="uf-svm")
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    K = classes.size
    ineq_r, ineq_a, ineq_b = [], [], []
    for k, y in enumerate(classes):
        out = np.delete(np.arange(V), y)
        ineq_r.append(np.full(out.size, k))
        ineq_a.append(np.full(out.size, y))
        ineq_b.append(out)
    ineq = tuple(np.concatenate(x).astype(np.int64) for x in (ineq_r, ineq_a, ineq_b))
    empty = np.zeros(0, dtype=np.int64)
    M, name, status, opts, wall, obj = _solve_nuclear(
        K, V, ineq, (empty, empty, empty), np.sqrt(counts.astype(np.float64)),
        solver=solver, solver_options=solver_options, strict=strict, what="uf_svm",
    )  # fmt: skip
    stats = {"class_counts": counts.tolist(), "classes": classes.tolist(), "solver_objective": obj}
    return _result(
        M[inverse], S, solver=name, status=status, method="uf-svm-reduced", tolerances=opts, solve_time=wall,
        stats=stats,
    )  # fmt: skip


# -- closed forms ----------------------------------------------------------------------------------
def in_support_logits(design: Any) -> ConvexResult:
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
    return _result(L, S.astype(float), solver="none", status="optimal", method="in-support-log-odds")


def centred_support_proxy(design: Any) -> ConvexResult:
    """Closed-form proxy ``S (I - 11ᵀ/V)`` for :func:`nn_svm`, scaled so that its smallest margin is 1.

    Exact for one-hot labels and for disjoint equal-size support blocks, an approximation in general
    (strictly above the optimum for overlapping cyclic supports). ``S: (m, V)`` is the 0/1 support matrix.
    Returns a :class:`ConvexResult` with ``method="centred-support-proxy"`` and ``stats["scale"]``.
    """
    S = support_matrix(design)
    V = S.shape[1]
    L = S - S.sum(axis=1, keepdims=True) / V
    margin, _ = margins(L, S)
    scale = 1.0 / margin if math.isfinite(margin) and margin > 0 else 1.0
    return _result(
        scale * L, S, solver="none", status="optimal", method="centred-support-proxy", stats={"scale": scale}
    )


def sel_matrix(design: Any) -> ConvexResult:
    """Simplex-encoded labels ``Ẑ = Yᵀ (I - 11ᵀ/V): (m, V)`` of a one-hot design and its SVD (the SELI
    geometry ``HᵀH = U Σ Uᵀ``, ``W Wᵀ = V Σ Vᵀ``) [Thrampoulidis et al. 2022, arXiv 2208.05512].

    For one-hot designs it coincides with :func:`centred_support_proxy`; with imbalance it departs from
    the ETF (which it is only for balanced classes). Raises ``ValueError`` for soft labels.
    """
    labels = _one_hot_labels(design)
    V = _distributions(design).shape[1]
    Z = np.full((labels.size, V), -1.0 / V)
    Z[np.arange(labels.size), labels] += 1.0
    return _result(Z, (Z > 0).astype(float), solver="none", status="optimal", method="sel")


def gram_cosine(A: np.ndarray, B: np.ndarray) -> float:
    """Frobenius cosine ``⟨A, B⟩ / (‖A‖ ‖B‖)`` of two Grams (1 when equal up to scale; 0 if one is 0)."""
    A, B = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
    if A.shape != B.shape:
        raise ValueError(f"Gram shapes differ: {A.shape} vs {B.shape}")
    na, nb = np.linalg.norm(A), np.linalg.norm(B)
    return float(np.vdot(A, B) / (na * nb)) if na > 0 and nb > 0 else 0.0


def proxy_gap(
    design: Any,
    proxy: str = "centred",
    *,
    optimum: ConvexResult | None = None,
    solver: str | None = None,
    strict: bool = True,
) -> ProxyGap:
    """Compare a closed-form proxy (``"centred"`` or ``"sel"``) with the nuclear-norm SVM optimum.

    Args:
        design: Design or (m, V) distributions.
        proxy: ``"centred"`` (:func:`centred_support_proxy`) or ``"sel"`` (:func:`sel_matrix`, one-hot only).
        optimum: a precomputed :func:`nn_svm` result for this design (solved if ``None``).
        solver, strict: passed to :func:`nn_svm`.
    """
    makers = {"centred": centred_support_proxy, "sel": sel_matrix}
    if proxy not in makers:
        raise ValueError(f"proxy must be one of {sorted(makers)}, got {proxy!r}")
    pr = makers[proxy](design)
    opt = optimum if optimum is not None else nn_svm(design, solver=solver, strict=strict)
    if opt.solution.shape != pr.solution.shape:
        raise ValueError(
            f"optimum has shape {opt.solution.shape} but the design's logits are {pr.solution.shape}"
        )
    return ProxyGap(
        proxy=proxy,
        proxy_nuclear=pr.objective,
        optimum_nuclear=opt.objective,
        relative_gap=pr.objective / opt.objective - 1.0 if opt.objective > 0 else 0.0,
        gram_cosine_H=gram_cosine(pr.gram_H, opt.gram_H),
        gram_cosine_W=gram_cosine(pr.gram_W, opt.gram_W),
        logit_error=float(np.abs(pr.solution - opt.solution).max()),
        proxy_result=pr,
        optimum_result=opt,
    )


# -- regularisation path ---------------------------------------------------------------------------
def regularization_path(
    problem: Any,
    lambdas: Any,
    *,
    t1: float = 1e5,
    init: Any = None,
    svm: ConvexResult | None = None,
    gtol: float = 1e-7,
    max_restarts: int = 3,
    method: str = "auto",
    rtol: float = 1e-9,
    atol: float = 1e-11,
) -> RegularizationPath:
    """Ridge equilibria of the UFM for decreasing ``λ_W = λ_H = λ`` by warm-started gradient flow.

    Each λ is flowed for ``t1`` (restarted from its end up to ``max_restarts`` times while the gradient
    norm exceeds ``gtol``), starting from the previous λ's end point. Along the path the logits
    ``L_λ = (W H)ᵀ: (m, V)`` are decomposed as ``L_in + c(λ) L_mm`` (``L_in``: :func:`in_support_logits`;
    ``L_mm``: the max-margin solution, :func:`uf_svm` for one-hot designs, :func:`nn_svm` otherwise) by
    least squares after removing each context's mean (the softmax ignores it).

    Args:
        problem: a :class:`~ufmtheory.models.UFM` (its λs are replaced; its design and ``dim`` are used).
        lambdas: ridge strengths (> 0); solved in decreasing order.
        t1: gradient-flow time per λ (and per restart).
        init: initial parameters for the first λ (``None``: ``init.small(problem, 0.1, seed=0)``).
        svm: precomputed max-margin :class:`ConvexResult` (solved if ``None``).
        gtol: gradient-norm target; ``status`` says which λ missed it.
        max_restarts, method, rtol, atol: flow controls (see :func:`ufmtheory.gradient_flow`).

    Returns:
        :class:`RegularizationPath`.
    """
    from ufmtheory.models import UFM
    from ufmtheory.solvers import init as init_mod
    from ufmtheory.solvers.flow import gradient_flow

    if type(problem) is not UFM:
        raise TypeError(f"problem must be a standard ufmtheory.UFM, got {type(problem).__name__}")
    lams = np.asarray(lambdas, dtype=np.float64).ravel()
    if lams.size == 0 or not np.all(np.isfinite(lams)) or np.any(lams <= 0):
        raise ValueError(f"lambdas must be a non-empty sequence of finite values > 0, got {lams}")
    lams = np.sort(lams)[::-1]
    design = problem.design
    if svm is None:
        svm = uf_svm(design) if design.is_one_hot else nn_svm(design)
    m, V = design.m, design.V
    if svm.solution.shape != (m, V):
        raise ValueError(f"svm solution has shape {svm.solution.shape}, expected (m, V) = {(m, V)}")
    L_in = in_support_logits(design).solution
    S = design.Y.T > 0
    C = np.eye(V) - 1.0 / V
    mm_c = svm.solution @ C
    theta = init if init is not None else init_mod.small(problem, 0.1, seed=0)
    out: dict[str, list[Any]] = {k: [] for k in ("gH", "gW", "L", "g", "cH", "cW", "c", "res", "rel", "ins")}
    stats: list[dict[str, Any]] = []
    status = "ok"
    for lam in lams:
        prob = dataclasses.replace(problem, lam_W=float(lam), lam_H=float(lam))
        evals, wall, restarts = 0, 0.0, 0
        while True:
            traj = gradient_flow(
                prob, t1, init=theta, saveat=np.array([t1]), method=method, rtol=rtol, atol=atol,
                save_params=True,
            )  # fmt: skip
            evals += traj.stats["evaluations"]
            wall += traj.stats["wall_time"]
            theta = prob.pack({k: v[-1] for k, v in traj.params.items()})
            gnorm = float(np.linalg.norm(prob.flat_loss_and_grad(theta)[1]))
            if traj.status != "ok" or gnorm <= gtol or restarts >= max_restarts:
                break
            restarts += 1
        if status == "ok" and traj.status != "ok":
            status = f"flow failed at lambda={lam:.3g}: {traj.status}"
        elif status == "ok" and gnorm > gtol:
            status = f"not converged at lambda={lam:.3g}: gradient norm {gnorm:.3g} > gtol {gtol:.3g}"
        params = prob.unpack(theta)
        gH, gW = prob.grams(params)
        L = prob.logits(params).T
        Lc = L @ C
        target = (L - L_in) @ C
        denom = float(np.vdot(mm_c, mm_c))
        c = float(np.vdot(target, mm_c) / denom) if denom > 0 else 0.0
        res = float(np.linalg.norm(target - c * mm_c))
        # in-support logits centred over the support, against the log-odds
        ins_mean = np.where(S, L, 0.0).sum(axis=1, keepdims=True) / S.sum(axis=1, keepdims=True)
        ins_err = float(np.abs(np.where(S, L - ins_mean - L_in, 0.0)).max())
        for key, val in (
            ("gH", gH), ("gW", gW), ("L", L), ("g", gnorm), ("cH", gram_cosine(gH, svm.gram_H)),
            ("cW", gram_cosine(gW, svm.gram_W)), ("c", c), ("res", res),
            ("rel", res / max(float(np.linalg.norm(Lc)), 1e-300)), ("ins", ins_err),
        ):  # fmt: skip
            out[key].append(val)
        stats.append({"lambda": float(lam), "evaluations": evals, "wall_time": wall, "restarts": restarts,
                      "flow_status": traj.status, "method": traj.method})  # fmt: skip
    arr = {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}
    for v in arr.values():
        v.setflags(write=False)
    return RegularizationPath(
        lambdas=lams, gram_H=arr["gH"], gram_W=arr["gW"], logits=arr["L"], grad_norm=arr["g"],
        gram_cosine_H=arr["cH"], gram_cosine_W=arr["cW"], c=arr["c"], residual=arr["res"],
        relative_residual=arr["rel"], in_support_error=arr["ins"], t1=float(t1), status=status, svm=svm,
        stats=stats,
    )  # fmt: skip
