"""Scheme programmes for UFM end states: linear programmes and the finite-ridge convex programme (scipy).

The end state of the (modified) UFM is decided by a convex programme whenever the objective is a factorised
ridge ``min ‖W‖² + ‖E‖²`` over logits that must separate the labels (docs: Theory §8). On a factorial
or hierarchical one-hot design the optimum can be taken in the Bose-Mesner algebra of the design's
association scheme (the programme is convex and invariant under the scheme's automorphisms, which act
irreducibly on each ``P_S``), so the logits are ``L = Σ_S ℓ_S P_S`` and the programme becomes small:

* :func:`end_state_lp`: the vanishing-ridge max-margin **linear programme** over ``ℓ_S`` (``S ≠ ∅``)::

      minimise  Σ_S m_S |ℓ_S| / sqrt(κ_S)     subject to   Σ_S ℓ_S (P_S[same] - P_S[r]) >= 1   (r ≠ same)

  (``objective="E"``: ridge on E, or no ridge; ``objective="H"``: ridge on H or the standard UFM, weights
  ``m_S`` and answer the ETF ``ℓ_S = 1``). It follows from ``‖E‖²_min = Σ m_S h_S²/κ_S`` (``H = E X̃``)
  and ``min_{w h = ℓ} w² m + h² m/κ = 2 m |ℓ|/sqrt κ``: the objective is ``½(‖W‖² + ‖E‖²)`` at margin 1,
  i.e. the nuclear norm ``‖L K_x^{-1/2}‖_*``.
* :func:`regularized_end_state`: the same geometry at a finite ridge,
  ``min CE(L) + sqrt(λ_W λ_X) Σ_S m_S |ℓ_S| / sqrt(κ_S)`` (``κ_S ≡ 1`` for ``objective="H"``), the global
  minimiser of the reduced (and, by symmetry, the full) regularised problem.
* :func:`lp_cost` and :func:`scheme_margins`: the objective and the margins of given coefficients (used for
  the ETF ``ℓ_S = 1`` and the semantic points).

Example (3×3 grid, α = 2 > β = 1: the attribute-only "semantic" geometry wins)::

    >>> from ufmtheory.algebra import factorial_scheme
    >>> sch = factorial_scheme((3, 3))
    >>> res = end_state_lp(sch, sch.kernel_eigenvalues(2.0, 1.0))
    >>> {S: round(v, 6) for S, v in res.ell.items()}
    {(): 0.0, (0,): 3.0, (1,): 3.0, (0, 1): 0.0}
    >>> res.status, round(res.objective, 6)  # 2 · (A-1) B / sqrt(α² B + β²) = 12/sqrt(13)
    ('ok', 3.328201)
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linprog, minimize, root

from ufmtheory import _validate
from ufmtheory._results import ResultMixin, finish, make_stats
from ufmtheory.algebra.schemes import AssociationScheme

__all__ = [
    "LPResult",
    "RegularizedEndState",
    "end_state_lp",
    "regularized_end_state",
    "lp_weights",
    "lp_cost",
    "scheme_margins",
    "reduced_ce",
]

# scipy.optimize.linprog status -> (status, what happened)
_LINPROG_STATUS = {
    0: ("ok", ""),
    1: ("max_evals", "iteration limit reached"),
    2: ("infeasible", "the programme is infeasible"),
    3: ("failed", "the programme is unbounded"),
    4: ("failed", "numerical difficulties"),
}


class _SchemeVector:
    """``ell_vector`` for results that hold ``ell`` (label -> value) and the scheme's ``labels`` order."""

    ell: dict[Any, float]
    labels: tuple[Any, ...]

    @property
    def ell_vector(self) -> np.ndarray:
        """(n_S,) ``ℓ_S`` in ``labels`` order."""
        return np.array([self.ell[S] for S in self.labels])


@dataclass(frozen=True, eq=False, kw_only=True)
class LPResult(_SchemeVector, ResultMixin):
    """Solution of the end-state linear programme (:func:`end_state_lp`).

    Attributes:
        ell: ``label -> ℓ_S`` for every projector of the scheme (``ℓ_∅ = 0``).
        objective: optimal value ``Σ_S weight_S |ℓ_S|`` (``= ½(‖W‖² + ‖E‖²)`` at margin 1).
        status: ``"ok"``, ``"infeasible"``, ``"max_evals"`` or ``"failed"``; message: the solver's words.
        method: ``"scipy-linprog-highs"``.
        slack: ``relation -> margin - 1`` (>= 0) for every relation ``r ≠ same``.
        duals: ``relation -> y_r >= 0``, the multipliers of the margin constraints.
        weights: (n_S,) objective weights ``m_S/sqrt κ_S`` (``"E"``) or ``m_S`` (``"H"``), in label order;
            ``inf`` where the mode is fixed to 0.
        labels: (n_S,) the scheme's projector labels (order of ``ell_vector`` and ``weights``).
        objective_kind: ``"E"`` or ``"H"``.
        fixed_zero: labels whose ``ℓ_S`` was constrained to 0.
        stats: ``n_evals`` (simplex / interior-point iterations), ``wall_time_s``, solver message.
    """

    ell: dict[Any, float]
    objective: float
    status: str = "ok"
    message: str = ""
    method: str
    slack: dict[Any, float]
    duals: dict[Any, float]
    weights: np.ndarray
    labels: tuple[Any, ...]
    objective_kind: str
    fixed_zero: tuple[Any, ...] = ()
    stats: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check_result()


@dataclass(frozen=True, eq=False, kw_only=True)
class RegularizedEndState(_SchemeVector, ResultMixin):
    """Global minimiser of the reduced regularised problem (:func:`regularized_end_state`).

    Attributes:
        ell: ``label -> ℓ_S`` (``ℓ_∅ = 0``).
        objective: ``CE + penalty`` at the minimiser (the full problem's loss).
        ce: cross-entropy part. penalty: ``sqrt(λ_W λ_X) Σ weight_S |ℓ_S|``.
        g: ``label -> g_S = (1 - σ_S)/K`` at the minimiser (KKT: ``g_S = c_S sign ℓ_S`` on the support,
            ``|g_S| <= c_S`` off it, with ``c_S = sqrt(λ_W λ_X) weight_S / m_S``).
        kkt_residual: largest violation of those conditions, relative to ``max c_S``.
        status: ``"ok"`` when the KKT residual is below ``1e-9``, else ``"inaccurate"`` (``message`` says
            by how much).
        method: ``"lbfgsb+newton"``.
        labels: projector labels (order of ``ell_vector``).
        stats: ``n_evals`` (L-BFGS-B iterations), ``wall_time_s``, support, the ridge constant ``lam_WX``.
    """

    ell: dict[Any, float]
    objective: float
    ce: float
    penalty: float
    g: dict[Any, float]
    kkt_residual: float
    status: str = "ok"
    message: str = ""
    method: str
    labels: tuple[Any, ...]
    stats: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check_result()


# -- small pure helpers ------------------------------------------------------------------------------
def _check_scheme(scheme: Any) -> AssociationScheme:
    if not isinstance(scheme, AssociationScheme):
        raise TypeError(f"scheme must be an AssociationScheme (ufmtheory.algebra.scheme), got {type(scheme)}")
    table = scheme.table
    if scheme.counts[0] != 1 or not np.allclose(table[0], 1.0 / scheme.K, rtol=0, atol=1e-15):
        raise ValueError("scheme must be in normal form: relation 0 the identity, projector 0 equal to J/K")
    return scheme


def _check_kappa(scheme: AssociationScheme, kappa: Any, objective: str) -> np.ndarray:
    if objective not in ("E", "H"):
        raise ValueError(f"objective must be 'E' (ridge on E or none) or 'H' (ridge on H), got {objective!r}")
    if kappa is None:
        if objective == "E":
            raise ValueError("kappa is required for objective='E' (scheme.kernel_eigenvalues(alpha, beta))")
        return np.ones(scheme.n_S)
    kappa = _validate.float_array("kappa", kappa, finite=False)
    if kappa.shape != (scheme.n_S,) or not np.all(np.isfinite(kappa)) or np.any(kappa < 0):
        raise ValueError(f"kappa must hold n_S = {scheme.n_S} finite values >= 0, got {kappa!r}")
    return kappa


def _fixed_mask(scheme: AssociationScheme, kappa: np.ndarray, fix_zero: Iterable[Any]) -> np.ndarray:
    """Modes whose ``ℓ_S`` is 0: ∅ (no margin), ``κ_S = 0`` (``E X̃`` cannot reach them), and ``fix_zero``."""
    fixed = kappa == 0
    fixed[0] = True
    for label in fix_zero:
        fixed[scheme.index(label)] = True
    return fixed


def lp_weights(scheme: AssociationScheme, kappa: Any, *, objective: str = "E") -> np.ndarray:
    """(n_S,) objective weights ``m_S / sqrt κ_S`` (``"E"``) or ``m_S`` (``"H"``); ``inf`` where ``κ_S = 0``.

    Example:
        >>> from ufmtheory.algebra import factorial_scheme
        >>> lp_weights(factorial_scheme((2, 3)), [1.0, 4.0, 9.0, 1.0]).tolist()
        [1.0, 0.5, 0.6666666666666666, 2.0]
    """
    kappa = _check_kappa(scheme, kappa, objective)
    ranks = np.array(scheme.ranks, dtype=np.float64)
    if objective == "H":
        return np.where(kappa > 0, ranks, np.inf)
    with np.errstate(divide="ignore"):
        return np.where(kappa > 0, ranks / np.sqrt(kappa), np.inf)


def _ell_array(scheme: AssociationScheme, ell: Any) -> np.ndarray:
    if isinstance(ell, Mapping):
        out = np.zeros(scheme.n_S)
        for label, value in ell.items():
            out[scheme.index(label)] = float(value)
        return out
    out = np.asarray(ell, dtype=np.float64)
    if out.shape != (scheme.n_S,):
        raise ValueError(f"ell must be a dict label -> value or an array of n_S = {scheme.n_S} entries")
    return out


def lp_cost(scheme: AssociationScheme, kappa: Any, ell: Any, *, objective: str = "E") -> float:
    """``Σ_{S≠∅} weight_S |ℓ_S|`` of given coefficients (a dict ``label -> ℓ_S`` or an (n_S,) array).

    A mode with ``κ_S = 0`` costs ``inf`` unless its ``ℓ_S`` is 0.

    Example (ETF on a 2×2 grid with the standard UFM weights: ``Σ m_S = K - 1``):
        >>> from ufmtheory.algebra import factorial_scheme
        >>> lp_cost(factorial_scheme((2, 2)), None, [0, 1, 1, 1], objective="H")
        3.0
    """
    weights = lp_weights(scheme, kappa, objective=objective)
    ell = _ell_array(scheme, ell)
    nz = ell[1:] != 0
    return float(np.sum(weights[1:][nz] * np.abs(ell[1:][nz])))


def scheme_margins(scheme: AssociationScheme, ell: Any) -> np.ndarray:
    """(n_r - 1,) margins ``L[same] - L[r]`` of the logits ``Σ ℓ_S P_S`` for every relation ``r ≠ same``."""
    ell = _ell_array(scheme, ell)
    L = ell @ scheme.table
    return L[0] - L[1:]


def _relation_key(scheme: AssociationScheme, r: int) -> Any:
    return scheme.relations[r]


# -- the linear programme ----------------------------------------------------------------------------
def end_state_lp(
    scheme: AssociationScheme,
    kappa: Any,
    *,
    objective: str = "E",
    fix_zero: Iterable[Any] = (),
    throw: bool = False,
) -> LPResult:
    """Vanishing-ridge max-margin linear programme over scheme logit coefficients (docs: Theory §8).

    Solves ``min Σ_{S≠∅} w_S |ℓ_S|`` s.t. ``Σ_S ℓ_S (P_S[same] - P_S[r]) >= 1`` for every relation
    ``r ≠ same``, with ``w_S = m_S / sqrt κ_S`` (``objective="E"``: ridge on E, or no ridge at all) or
    ``w_S = m_S`` (``objective="H"``: ridge on H or the standard UFM), through ``ℓ = ℓ⁺ - ℓ⁻`` and
    ``scipy.optimize.linprog(method="highs")``. The optimum is ``½ min(‖W‖² + ‖E‖²)`` at margin 1, the
    direction gradient flow reaches as the ridge vanishes. Modes with ``κ_S = 0`` and those in ``fix_zero``
    are held at 0 (``fix_zero`` = the interaction modes gives the best semantic point).

    Args:
        scheme: the design's association scheme (:func:`ufmtheory.algebra.scheme`).
        kappa: (n_S,) kernel eigenvalues ``κ_S`` (``scheme.kernel_eigenvalues(alpha, beta)``); may be
            ``None`` for ``objective="H"`` (then no mode is fixed by κ).
        objective: ``"E"`` or ``"H"``.
        fix_zero: projector labels whose ``ℓ_S`` is constrained to 0.
        throw: raise :class:`~ufmtheory._results.SolverError` when the status is not ``"ok"``.

    Returns:
        :class:`LPResult`; ``status`` ``"infeasible"`` e.g. for the leaves of a hierarchy with ``β = 0``.

    Example (standard UFM weights give the ETF, ``ℓ_S = 1``):
        >>> from ufmtheory.algebra import factorial_scheme
        >>> res = end_state_lp(factorial_scheme((2, 3)), None, objective="H")
        >>> [round(v, 9) for v in res.ell.values()], round(res.objective, 9)
        ([0.0, 1.0, 1.0, 1.0], 5.0)
    """
    scheme = _check_scheme(scheme)
    kappa = _check_kappa(scheme, kappa, objective)
    weights = lp_weights(scheme, kappa, objective=objective)
    fixed = _fixed_mask(scheme, kappa, fix_zero)
    n_S, n_r = scheme.n_S, scheme.n_r
    free = np.flatnonzero(~fixed)
    table = scheme.table
    D = (table[:, :1] - table[:, 1:]).T  # (n_r - 1, n_S): margin of relation r per unit ℓ_S
    # Rescale rows so every constraint has unit largest coefficient (entries are ~1/K on big schemes).
    row_scale = np.abs(D[:, free]).max(axis=1) if free.size else np.ones(n_r - 1)
    row_scale = np.where(row_scale > 0, row_scale, 1.0)
    Df = D[:, free] / row_scale[:, None]
    c = np.concatenate([weights[free], weights[free]])
    A_ub = np.hstack([-Df, Df])
    b_ub = -1.0 / row_scale
    start = time.perf_counter()
    # Tight tolerances (defaults are 1e-7): near the ETF/semantic boundary the two vertices' costs differ by
    # O(distance), so the decision is only as sharp as the dual feasibility tolerance.
    tols = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, bounds=(0, None), method="highs", options=tols)
    wall = time.perf_counter() - start
    status, what = _LINPROG_STATUS.get(res.status, ("failed", f"linprog status {res.status}"))
    message = "" if status == "ok" else f"end-state LP: {what} ({res.message})"
    ell = np.zeros(n_S)
    duals = np.full(n_r - 1, np.nan)
    if res.x is not None:
        k = free.size
        ell[free] = res.x[:k] - res.x[k:]
        marg = getattr(res, "ineqlin", None)
        if marg is not None and marg.marginals is not None:
            duals = -np.asarray(marg.marginals) / row_scale  # y_r for the unscaled constraint
    slack = D @ ell - 1.0
    objective_value = float(np.sum(weights[free] * np.abs(ell[free]))) if free.size else 0.0
    result = LPResult(
        ell={S: float(ell[i]) for i, S in enumerate(scheme.labels)},
        objective=objective_value,
        status=status,
        message=message,
        method="scipy-linprog-highs",
        slack={_relation_key(scheme, r + 1): float(slack[r]) for r in range(n_r - 1)},
        duals={_relation_key(scheme, r + 1): float(duals[r]) for r in range(n_r - 1)},
        weights=np.where(fixed, np.inf, weights),
        labels=scheme.labels,
        objective_kind=objective,
        fixed_zero=tuple(scheme.labels[i] for i in np.flatnonzero(fixed) if i != 0),
        stats=make_stats(int(getattr(res, "nit", 0)), wall, solver_message=str(res.message)),
    )
    return finish(result, throw)


# -- the finite-ridge convex programme -----------------------------------------------------------------
def reduced_ce(scheme: AssociationScheme, ell: Any) -> tuple[float, np.ndarray, np.ndarray]:
    """Cross-entropy ``log Σ_r n_r e^{L[r] - L[0]}`` of logits ``Σ ℓ_S P_S``, its gradient ``-m_S g_S`` and
    Hessian ``P diag(n p) Pᵀ - a aᵀ`` (``a_S = Σ_r n_r p_r P_S[r]``) in ``ℓ``."""
    table = scheme.table
    counts = np.asarray(scheme.counts, dtype=np.float64)
    L = np.asarray(ell, dtype=np.float64) @ table
    d = L - L[0]
    shift = max(float(d.max()), 0.0)
    e = np.exp(d - shift)
    Z = float(counts @ e)
    ce = math.log(Z) + shift if shift > 0 else math.log1p(float(counts[1:] @ e[1:]))
    p = e / Z
    np_ = counts * p
    a = table @ np_
    # Stable gradient: Σ_{r>0} n_r p_r (P_S[r] - P_S[0]) (no cancellation when p_0 -> 1).
    grad = table[:, 1:] @ np_[1:] - table[:, 0] * float(np_[1:].sum())
    hess = (table * np_) @ table.T - np.outer(a, a)
    return ce, grad, hess


def regularized_end_state(
    scheme: AssociationScheme,
    kappa: Any,
    *,
    lam_WX: float,
    objective: str = "E",
    fix_zero: Iterable[Any] = (),
    throw: bool = False,
) -> RegularizedEndState:
    """Global minimiser of ``CE(Σ ℓ_S P_S) + lam_WX Σ_{S≠∅} weight_S |ℓ_S|`` over scheme coefficients.

    With ``lam_WX = sqrt(λ_W λ_X)`` this is the regularised (modified) UFM minimised over its factorisations:
    ``min_{w h = ℓ} λ_W/2 m w² + λ_E/2 m h²/κ = sqrt(λ_W λ_E) m |ℓ|/sqrt κ`` (``objective="E"``), or with
    ``κ ≡ 1`` for ridge on H (then it is Zhu's ETF, ``ℓ_S = ln(1/lam_WX - K + 1)``). Convex in ``ℓ``;
    solved by L-BFGS-B on ``ℓ = ℓ⁺ - ℓ⁻`` and polished by Newton on the support, with the KKT conditions
    checked.

    Args:
        scheme, kappa, objective, fix_zero: as in :func:`end_state_lp`.
        lam_WX: ridge constant ``sqrt(λ_W λ_X) > 0``.
        throw: raise :class:`~ufmtheory._results.SolverError` when the status is not ``"ok"``.

    Returns:
        :class:`RegularizedEndState` (``status`` ``"inaccurate"`` when the KKT check fails).

    Example (standard UFM weights: Zhu's ``x* = ln(1/ε - (K - 1))`` with ``ε = 0.01``, K = 4):
        >>> from ufmtheory.algebra import factorial_scheme
        >>> r = regularized_end_state(factorial_scheme((2, 2)), None, lam_WX=0.01, objective="H")
        >>> [round(v, 8) for v in r.ell.values()], round(math.log(97), 8)
        ([0.0, 4.57471098, 4.57471098, 4.57471098], 4.57471098)
    """
    scheme = _check_scheme(scheme)
    kappa = _check_kappa(scheme, kappa, objective)
    lam = _validate.positive("lam_WX", lam_WX)
    weights = lp_weights(scheme, kappa, objective=objective)
    fixed = _fixed_mask(scheme, kappa, fix_zero)
    free = np.flatnonzero(~fixed)
    n_S, k = scheme.n_S, free.size
    wf = weights[free]
    start = time.perf_counter()

    # Scaled objective CE/lam + Σ w|ℓ|: gradients O(1) however small lam is.
    def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
        ell = np.zeros(n_S)
        ell[free] = z[:k] - z[k:]
        ce, grad, _ = reduced_ce(scheme, ell)
        gf = grad[free] / lam
        return ce / lam + float(wf @ (z[:k] + z[k:])), np.concatenate([gf + wf, -gf + wf])

    # Start at the scale of the ETF point, where g_S ~ lam: ℓ ~ ln(1/(K lam)).
    ell0 = max(math.log(max(1.0 / (scheme.K * lam), math.e)), 1.0)
    z0 = np.concatenate([np.full(k, ell0), np.zeros(k)])
    opt = minimize(
        fun,
        z0,
        jac=True,
        method="L-BFGS-B",
        bounds=[(0, None)] * (2 * k),
        options={"maxiter": 20000, "ftol": 1e-15, "gtol": 1e-12, "maxcor": 30},
    )
    ell = np.zeros(n_S)
    ell[free] = opt.x[:k] - opt.x[k:]
    # Newton polish on the support (signs fixed): ∇CE_S + lam w_S sign(ℓ_S) = 0.
    scale = max(float(np.abs(ell).max()), 1.0)
    support = free[np.abs(ell[free]) > 1e-7 * scale]
    if support.size:
        signs = np.sign(ell[support])

        def kkt(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            full = ell.copy()
            full[support] = x
            full[np.setdiff1d(free, support)] = 0.0
            _, grad, hess = reduced_ce(scheme, full)
            return grad[support] / lam + weights[support] * signs, hess[np.ix_(support, support)] / lam

        pol = root(kkt, ell[support], jac=True, method="hybr", options={"xtol": 1e-15})
        if np.all(np.isfinite(pol.x)) and np.all(np.sign(pol.x) == signs):
            ell[support] = pol.x
            ell[np.setdiff1d(free, support)] = 0.0
    ce, grad, _ = reduced_ce(scheme, ell)
    ranks = np.array(scheme.ranks, dtype=np.float64)
    g = -grad / ranks
    # KKT, scaled by lam·w: on the support grad/(lam w) = -sign ℓ; off it |grad| <= lam w.
    resid = 0.0
    for i in free:
        r = grad[i] / (lam * weights[i])
        resid = max(resid, abs(r + np.sign(ell[i])) if ell[i] != 0 else max(abs(r) - 1.0, 0.0))
    penalty = lam * float(np.sum(wf * np.abs(ell[free])))
    wall = time.perf_counter() - start
    status, message = "ok", ""
    if not resid < 1e-9:
        status, message = "inaccurate", f"kkt residual {resid:.3g} (L-BFGS-B: {opt.message})"
    result = RegularizedEndState(
        ell={S: float(ell[i]) for i, S in enumerate(scheme.labels)},
        objective=ce + penalty,
        ce=ce,
        penalty=penalty,
        g={S: float(g[i]) for i, S in enumerate(scheme.labels)},
        kkt_residual=float(resid),
        status=status,
        message=message,
        method="lbfgsb+newton",
        labels=scheme.labels,
        stats={
            "n_evals": int(opt.nit),
            "wall_time_s": wall,
            "lam_WX": lam,
            "support": [scheme.labels[i] for i in support],
            "objective_kind": objective,
        },
    )
    return finish(result, throw)
