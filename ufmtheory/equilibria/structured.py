"""End states of the modified UFM on the exact symmetric reduction (docs: Theory §8).

Everything here works on :mod:`ufmtheory.solvers.reduced`: logits ``L = Σ ℓ_S P_S``, ``W = Σ w_S P_S``,
``H = Σ h_S P_S`` on the design's association scheme."""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from typing import Any

import numpy as np

from ufmtheory.equilibria.closed_form import Equilibrium, centering, zhu
from ufmtheory.models import UFM, ModifiedUFM
from ufmtheory.programs.scheme_lp import end_state_lp, lp_cost, reduced_ce, regularized_end_state
from ufmtheory.solvers import reduced as _reduced
from ufmtheory.solvers.reduced import ReducedProblem

__all__ = ["end_state", "reduced_rhs", "reduced_jacobian"]

_ETF_DIRECTION_TOL = 1e-6  # logit direction this close to C_K (Frobenius, unit norm) counts as the ETF
_ZERO_REL_TOL = 1e-7  # coefficients below this fraction of the largest count as 0 (LP tolerances 1e-10)


def _problem_parts(problem: Any) -> tuple[Any, Any, str, float, float]:
    """``(ReducedProblem, scheme, objective kind, lam_W, lam_X)`` of a UFM / ModifiedUFM / ReducedProblem.

    The objective kind is the implicit bias of the factorised ridge: ``"H"`` (weights ``m_S``) for the
    standard UFM and ridge on H, ``"E"`` (weights ``m_S/sqrt κ_S``) for ridge on E or no ridge at all
    (gradient flow on ``(W, E)`` without penalty is biased towards small ``‖W‖² + ‖E‖²``)."""
    if isinstance(problem, ModifiedUFM) and problem.normalize is not None:
        raise ValueError(
            "end states and the semantic saddle are derived for N = identity (normalize=None); with column"
            " normalisation integrate the flow (ut.reduced_solve / ut.gradient_flow) instead"
        )
    if isinstance(problem, ReducedProblem):
        if getattr(problem, "normalize", None) is not None:
            raise ValueError("end states need normalize=None")
        rp = problem
    elif isinstance(problem, (UFM, ModifiedUFM)):
        rp = ReducedProblem.from_problem(problem)
    else:
        raise TypeError(f"problem must be a UFM, ModifiedUFM or ReducedProblem, got {type(problem).__name__}")
    regularised = rp.lam_W > 0 or rp.lam_X > 0
    objective = "H" if rp.ridge == "H" and (regularised or not isinstance(problem, ModifiedUFM)) else "E"
    if isinstance(problem, ReducedProblem) and not regularised and np.allclose(rp.kappa, 1.0):
        objective = "H"  # the standard UFM spelled as a ReducedProblem
    return rp, rp.scheme, objective, rp.lam_W, rp.lam_X


def reduced_rhs(problem: UFM | ReducedProblem, w: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``[dw_S/dt, dh_S/dt]: (2 n_S,)`` of the exact reduced flow (docs: Theory §6) at ``(w, h)``.

    ``dw_S = g_S h_S - λ_W w_S``; ridge H: ``dh_S = κ_S (g_S w_S - λ_H h_S)``; ridge E (or none):
    ``dh_S = κ_S g_S w_S - λ_E h_S``, with ``g_S = (1 - σ_S)/K`` evaluated in the cancellation-free form
    ``Σ_{r>0} n_r p_r (P_S[0] - P_S[r]) / m_S``. A numpy twin of the sympy-derived right-hand side.

    Args:
        problem: UFM, ModifiedUFM (``normalize=None``) or :class:`~ufmtheory.ReducedProblem`.
        w, h: (n_S,) coefficients in ``scheme.labels`` order.
    """
    rp = _problem_parts(problem)[0]
    sch = rp.scheme
    w = np.asarray(w, dtype=np.float64)
    h = np.asarray(h, dtype=np.float64)
    _, grad, _ = reduced_ce(sch, w * h)
    g = -grad / np.asarray(sch.ranks, dtype=np.float64)
    dw = g * h - rp.lam_W * w
    if rp.ridge == "H":
        dh = rp.kappa * (g * w - rp.lam_X * h)
    else:
        dh = rp.kappa * g * w - rp.lam_X * h
    return np.concatenate([dw, dh])


def reduced_jacobian(problem: UFM | ReducedProblem, w: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Exact Jacobian ``∂[dw, dh]/∂[w, h]: (2 n_S, 2 n_S)`` of :func:`reduced_rhs` at ``(w, h)``.

    With ``Γ = ∂g/∂ℓ = -diag(1/m) (P diag(n p) Pᵀ - a aᵀ)`` (``a = P n p``, the softmax Hessian in scheme
    coordinates) and ``∂ℓ_T/∂w_T = h_T``, ``∂ℓ_T/∂h_T = w_T``::

        ∂dw_S/∂w_T = h_S Γ_ST h_T - λ_W δ_ST        ∂dw_S/∂h_T = h_S Γ_ST w_T + g_S δ_ST
        ∂dh_S/∂w_T = κ_S (w_S Γ_ST h_T + g_S δ_ST)   ∂dh_S/∂h_T = κ_S w_S Γ_ST w_T - (κ_S λ_H | λ_E) δ_ST

    A mode with ``w_S = h_S = 0`` therefore decouples into the 2×2 block
    ``[[-λ_W, g_S], [κ_S g_S, -κ_S λ_H]]`` (ridge H) or ``[[-λ_W, g_S], [κ_S g_S, -λ_E]]`` (ridge E). The
    flow is a preconditioned gradient flow, so the eigenvalues are real.
    """
    rp = _problem_parts(problem)[0]
    sch = rp.scheme
    w = np.asarray(w, dtype=np.float64)
    h = np.asarray(h, dtype=np.float64)
    ranks = np.asarray(sch.ranks, dtype=np.float64)
    _, grad, hess = reduced_ce(sch, w * h)
    g = -grad / ranks
    Gam = -hess / ranks[:, None]
    kap = rp.kappa
    I = np.eye(sch.n_S)
    J_ww = h[:, None] * Gam * h[None, :] - rp.lam_W * I
    J_wh = h[:, None] * Gam * w[None, :] + np.diag(g)
    J_hw = kap[:, None] * (w[:, None] * Gam * h[None, :] + np.diag(g))
    J_hh = kap[:, None] * (w[:, None] * Gam * w[None, :])
    J_hh -= np.diag(kap * rp.lam_X) if rp.ridge == "H" else rp.lam_X * I
    return np.block([[J_ww, J_wh], [J_hw, J_hh]])


def _classify(sch: Any, ell: np.ndarray) -> tuple[str, float, float]:
    """``(kind, distance of the logit direction from C_K, interaction energy fraction)``."""
    ranks = np.asarray(sch.ranks, dtype=np.float64)
    e = ell.copy()
    e[0] = 0.0
    norm = math.sqrt(float(ranks @ e**2))
    if norm == 0:
        return "zero", float("nan"), float("nan")
    ones = np.ones_like(e)
    ones[0] = 0.0
    dist = math.sqrt(float(ranks @ (e / norm - ones / math.sqrt(sch.K - 1)) ** 2))
    inter = sch.free_mask
    frac = float(ranks[inter] @ e[inter] ** 2) / norm**2
    if dist < _ETF_DIRECTION_TOL:
        kind = "etf"
    elif np.all(np.abs(e[inter]) <= _ZERO_REL_TOL * np.abs(e).max()):
        kind = "semantic"
    else:
        kind = "mixed"
    return kind, dist, frac


def _factor_coefficients(
    ell: np.ndarray, kappa: np.ndarray, objective: str, lam_W: float, lam_X: float
) -> tuple[np.ndarray, np.ndarray]:
    """Balanced factors ``w_S > 0, h_S = ℓ_S/w_S`` minimising ``λ_W m w² + λ_X m h²/κ_pen`` at fixed ``ℓ``
    (``κ_pen = κ`` for E, 1 for H): ``w² = |ℓ| sqrt(λ_X/(λ_W κ_pen))``; ratio 1 when a ridge is 0.

    The ratio's fourth root is taken in log space (``λ_X/λ_W`` itself overflows for, e.g., 1e300/1e-300);
    ridges so far apart that ``w²`` does not fit in float64 raise ValueError naming both."""
    kpen = np.where(kappa > 0, kappa, 1.0) if objective == "E" else np.ones_like(kappa)
    ratio = lam_X / lam_W if lam_W > 0 and lam_X > 0 else 1.0
    if 1e-300 < ratio < 1e300:
        root4 = 1.0  # the ratio is representable: the direct formula
        w = np.sqrt(np.abs(ell) * math.sqrt(ratio) / np.sqrt(kpen))
    else:  # 1e300 / 1e-300 overflows (and 1e-300 / 1e300 underflows to a zero state)
        root4 = math.exp(0.25 * (math.log(lam_X) - math.log(lam_W)))
        w = np.sqrt(np.abs(ell)) * (root4 / np.sqrt(np.sqrt(kpen)))
    with np.errstate(over="ignore"):
        fits = math.isfinite(root4) and bool(np.isfinite(np.sum(w * w)))
    if not fits:
        name = "lam_E" if objective == "E" else "lam_H"
        raise ValueError(
            f"lam_W = {lam_W:g} and {name} = {lam_X:g} are too far apart: the balanced factors"
            f" w_S² = |ℓ_S| sqrt({name}/lam_W)/sqrt κ_S overflow float64"
        )
    h = np.zeros_like(ell)
    nz = w > 0
    h[nz] = ell[nz] / w[nz]
    return w, h


def _check_materialisable(sch: Any, what: str, hint: str) -> None:
    if sch.K > _reduced.MATERIALISE_MAX_K:
        raise ValueError(
            f"{what}: K = {sch.K} > {_reduced.MATERIALISE_MAX_K} is too large to materialise K×K Grams;"
            f" {hint}"
        )


def _check_dim(problem: Any, sch: Any, ell: np.ndarray) -> None:
    dim = getattr(problem, "dim", None)
    rank = int(sum(m for m, v in zip(sch.ranks, ell, strict=True) if v != 0))
    if dim is not None and dim < rank:
        raise ValueError(
            f"dim = {dim} is below the rank {rank} of the end state; the convex (nuclear-norm) relaxation is"
            " exact only for dim >= rank"
        )


def _labels_json(labels: Any) -> list[Any]:
    return [list(S) if isinstance(S, tuple) else S for S in labels]


def _two_factor_boundary(sch: Any, kappa: np.ndarray) -> dict[str, Any] | None:
    """Closed form for an A×B grid (docs: Theory §8): ETF iff ``1/β < 1/sqrt κ_(0,) + 1/sqrt κ_(1,)``."""
    if sch.kind != "factorial" or len(sch.params["sizes"]) != 2 or np.any(kappa[1:] <= 0):
        return None
    lhs = 1.0 / math.sqrt(kappa[sch.index((0, 1))])
    rhs = 1.0 / math.sqrt(kappa[sch.index((0,))]) + 1.0 / math.sqrt(kappa[sch.index((1,))])
    return {"lhs": lhs, "rhs": rhs, "etf_wins": lhs < rhs}


def end_state(problem: UFM, *, lam_limit: bool = True) -> Equilibrium:
    """Where gradient flow on a (modified) UFM ends (docs: Theory §8).

    * Standard UFM, or modified UFM with ridge on H (``λ_W, λ_H > 0``, ``β > 0``): Zhu's ETF minimiser
      (or zero), for every λ, so ``lam_limit`` does not matter. With ridge on H, ``H = E X̃`` is a free
      feature matrix when ``β > 0`` (``X̃`` has full column rank) and the penalty is the UFM's, so the
      minimiser is the same ETF in logits and features (:func:`zhu` on the equivalent UFM). An unregularised
      standard UFM ends in the max-margin ETF direction (``L = C_K`` at margin 1).
    * Modified UFM with ridge on E, or with no ridge at all (the flow's implicit bias is then
      ``min ‖W‖² + ‖E‖²``): ``lam_limit=True`` solves the vanishing-ridge linear programme
      :func:`ufmtheory.programs.end_state_lp` on the design's association scheme and returns the direction of
      its solution at margin 1; ``lam_limit=False`` returns the global minimiser at the problem's
      ``λ_W, λ_E > 0`` (:func:`ufmtheory.programs.scheme_lp.regularised_end_state`).

    Args:
        problem: :class:`~ufmtheory.UFM` or :class:`~ufmtheory.ModifiedUFM` (``normalize=None``; ridge-E and
            unregularised problems need a one-hot factorial or hierarchical design).
        lam_limit: for ridge E: the ``λ → 0`` direction (True) or the finite-λ minimiser (False).

    Returns:
        :class:`Equilibrium` with ``kind`` ``"etf"``, ``"semantic"`` (every per-context-only mode, the
        factorial interactions / leaf level with ``κ_S = β²``, is 0), ``"mixed"`` or ``"zero"``. For the
        ridge-E programmes the Grams are ``Σ w_S² P_S``, ``Σ h_S² P_S`` with balanced factors
        (``w_S² = |ℓ_S| sqrt(λ_E/λ_W)/sqrt κ_S``, ratio 1 when a ridge is 0) and ``stats`` holds ``ell``,
        ``objective``, ``etf_objective``, ``semantic_objective`` (``inf`` when no semantic point separates
        the labels, as in hierarchies), ``decision_margin = (J_sem - J_etf)/max(J_sem, J_etf)`` (> 0: the ETF
        is cheaper), the ``lp_kind`` of the vanishing-ridge programme, ``etf_direction_distance``,
        ``interaction_fraction`` and, for A×B grids, the closed-form ``boundary``. With ``lam_limit=True``
        the state is a direction: ``loss`` is 0 (its limit along the ray) and ``stats["ce_at_margin_one"]``
        the cross-entropy at the returned margin-1 point.

    Raises:
        ValueError: K > 4096 (use :func:`ufmtheory.programs.end_state_lp` on ``reduced.scheme(design)``),
            partial regularisation where the minimiser does not exist, ``dim`` below the end state's rank.
        ValueError: column normalisation; ridge on H with ``β = 0`` (no closed form: integrate the flow).

    Example (3×3 grid, ridge on E: ETF iff α < β):
        >>> import ufmtheory as ut
        >>> d = ut.designs.factorial((3, 3))
        >>> end_state(ut.ModifiedUFM(d, dim=9, alpha=0.5, beta=1.0, ridge="E")).kind
        'etf'
        >>> eq = end_state(ut.ModifiedUFM(d, dim=9, alpha=2.0, beta=1.0, ridge="E"))
        >>> eq.kind, round(eq.stats["decision_margin"], 4)  # (12/√13 - (4/√13 + 4)) / (4/√13 + 4)
        ('semantic', -0.3486)
    """
    start = time.perf_counter()
    if not isinstance(problem, UFM):
        raise TypeError(f"problem must be a UFM or ModifiedUFM, got {type(problem).__name__}")
    if isinstance(problem, ModifiedUFM) and problem.normalize is not None:
        raise ValueError(
            "end_state is derived for N = identity (normalize=None); with column normalisation integrate the"
            " flow (ut.reduced_solve / ut.gradient_flow)"
        )
    mod = problem if isinstance(problem, ModifiedUFM) else None
    lam_W = problem.lam_W
    lam_X = problem.lam_H if mod is None or mod.ridge == "H" else mod.lam_E
    ridge_H = mod is None or (mod.ridge == "H" and (lam_W > 0 or lam_X > 0))
    if ridge_H:
        if mod is not None and mod.beta == 0:
            raise ValueError(
                "ridge on H with beta = 0: features are confined to the attribute span, Zhu's ETF is not"
                " reachable and no closed form is implemented"
            )
        if lam_W > 0 and lam_X > 0:
            eq = zhu(UFM(problem.design, problem.dim, lam_W=lam_W, lam_H=lam_X))
            note = (
                "ridge on H: H = E X̃ is a free UFM feature (beta > 0), same minimiser"
                if mod is not None
                else ""
            )
            # Zhu's result as it is (its message too: above K = 4096 it says where the Grams went).
            return dataclasses.replace(eq, stats={**eq.stats, "objective_kind": "H", "note": note})
        if lam_W > 0 or lam_X > 0:
            raise ValueError(
                f"end_state needs both ridges > 0 or both 0 for the UFM / ridge on H (got lam_W={lam_W}, "
                f"lam_H={lam_X}): with one ridge the infimum is not attained"
            )
        # Unregularised standard UFM: max-margin direction, class-mean logits C_K at margin 1.
        classes = problem.design.balanced_one_hot_classes()
        if classes is None:
            raise ValueError("the max-margin ETF needs a balanced one-hot design (see SELI for the others)")
        K, n = classes
        if problem.dim < K - 1:
            raise ValueError(f"the ETF needs dim >= K - 1 = {K - 1}, got dim={problem.dim}")
        C = centering(K)
        Yl = problem.design.Y
        return Equilibrium(
            kind="etf",
            gram_H=Yl.T @ (C / math.sqrt(n)) @ Yl,
            gram_W=math.sqrt(n) * C,
            logits=C @ Yl,
            loss=0.0,
            method="max-margin-etf",
            stats={"objective_kind": "H", "K": K, "n": n, "margin": 1.0, "objective": (K - 1) * math.sqrt(n)},
        )

    # Ridge on E, or no ridge: the scheme programmes.
    rp, sch, _, lam_W, lam_X = _problem_parts(problem)
    _check_materialisable(
        sch,
        "end_state",
        "use ufmtheory.programs.end_state_lp(reduced.scheme(design), scheme.kernel_eigenvalues(alpha, beta))",
    )
    kappa = rp.kappa
    inter = sch.free_mask
    inter_labels = [S for S, m in zip(sch.labels, inter, strict=True) if m]
    lp = end_state_lp(sch, kappa, objective="E")
    ones = np.ones(sch.n_S)
    ones[0] = 0.0
    J_etf = lp_cost(sch, kappa, ones, objective="E")
    with warnings.catch_warnings():  # infeasible is an answer here (hierarchies: no semantic point)
        warnings.simplefilter("ignore", RuntimeWarning)
        sem = end_state_lp(sch, kappa, objective="E", fix_zero=inter_labels)
    J_sem = sem.objective if sem.ok else math.inf
    if math.isinf(J_sem) or math.isinf(J_etf):  # one point does not exist (hierarchy; beta = 0)
        margin = float("nan") if J_sem == J_etf else (1.0 if math.isinf(J_sem) else -1.0)
    else:
        margin = (J_sem - J_etf) / max(J_sem, J_etf)
    lp_kind = _classify(sch, lp.ell_vector)[0]
    stats: dict[str, Any] = {
        "objective_kind": "E",
        "labels": _labels_json(sch.labels),
        "kappa": kappa.tolist(),
        "lp_ell": lp.ell_vector.tolist(),
        "lp_objective": lp.objective,
        "lp_kind": lp_kind,
        "etf_objective": J_etf,
        "semantic_objective": J_sem,
        "semantic_ell": sem.ell_vector.tolist() if sem.ok else None,
        "decision_margin": margin,
        "lp_duals": list(lp.duals.values()),
        "boundary": _two_factor_boundary(sch, kappa),
    }
    if lam_limit:
        ell = lp.ell_vector
        loss = 0.0
        stats["objective"] = lp.objective
        stats["ce_at_margin_one"] = reduced_ce(sch, ell)[0]
        method, status, message = "max-margin-lp", lp.status, lp.message
    else:
        if not (lam_W > 0 and lam_X > 0):
            raise ValueError(
                f"lam_limit=False needs lam_W > 0 and lam_E > 0 (got {lam_W}, {lam_X}); use lam_limit=True"
            )
        reg = regularized_end_state(sch, kappa, lam_WX=math.sqrt(lam_W) * math.sqrt(lam_X), objective="E")
        ell = reg.ell_vector
        loss = reg.objective
        stats.update(objective=reg.objective, ce=reg.ce, kkt_residual=reg.kkt_residual)
        stats["g"] = list(reg.g.values())
        method, status, message = "regularized-convex", reg.status, reg.message
    kind, dist, frac = _classify(sch, ell)
    if kind != "zero":
        _check_dim(problem, sch, ell)
    w, h = _factor_coefficients(ell, kappa, "E", lam_W, lam_X)
    stats.update(ell=ell.tolist(), w=w.tolist(), h=h.tolist(), etf_direction_distance=dist)
    stats["interaction_fraction"] = frac
    stats["n_evals"] = lp.stats["n_evals"] + sem.stats["n_evals"] + (0 if lam_limit else reg.stats["n_evals"])
    stats["wall_time_s"] = time.perf_counter() - start
    return scheme_equilibrium(
        sch, w, h, ell, kind=kind, loss=loss, status=status, message=message, method=method, stats=stats
    )


def scheme_equilibrium(
    sch: Any,
    w: np.ndarray,
    h: np.ndarray,
    ell: np.ndarray,
    *,
    kind: str,
    loss: float,
    status: str,
    message: str = "",
    method: str,
    stats: dict[str, Any],
) -> Equilibrium:
    """An :class:`Equilibrium` from association-scheme coefficients (``W = Σ w_S P_S``, ``H = Σ h_S P_S``,
    logits ``Σ ℓ_S P_S``), materialising the K×K Grams once through the scheme's relation matrix (not above
    ``K = 4096``: then the Grams are ``None`` and the coefficients are in ``stats``)."""
    if sch.K > _reduced.MATERIALISE_MAX_K:
        gram_H = gram_W = logits = None
    else:
        rel = sch.relation_matrix()
        gram_H, gram_W, logits = (
            sch.materialise(h**2, rel),
            sch.materialise(w**2, rel),
            sch.materialise(ell, rel),
        )
    return Equilibrium(
        kind=kind,
        gram_H=gram_H,
        gram_W=gram_W,
        logits=logits,
        loss=float(loss),
        status=status,
        message=message,
        method=method,
        stats=stats,
    )
