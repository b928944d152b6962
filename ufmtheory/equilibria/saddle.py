"""The semantic saddle of the modified UFM: every per-context-only mode zero (docs: Theory §9)."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from scipy.optimize import root

from ufmtheory import _validate
from ufmtheory._results import finish
from ufmtheory.algebra.modes import escape_block
from ufmtheory.equilibria.closed_form import Equilibrium
from ufmtheory.equilibria.structured import (
    _check_dim,
    _factor_coefficients,
    _labels_json,
    _problem_parts,
    reduced_jacobian,
    reduced_rhs,
    scheme_equilibrium,
)
from ufmtheory.models import UFM
from ufmtheory.programs.scheme_lp import reduced_ce, regularized_end_state
from ufmtheory.solvers.reduced import ReducedProblem, reduced_solve

__all__ = ["semantic_saddle"]


def semantic_saddle(
    problem: UFM | ReducedProblem,
    *,
    method: str = "convex",
    t1: float | None = None,
    tol: float = 1e-10,
    throw: bool = False,
) -> Equilibrium:
    """The semantic critical point: every per-context-only mode zero (docs: Theory §9).

    The per-context-only modes (factorial interactions ``|S| >= 2``, the leaf level of a hierarchy; the modes
    with ``κ_S = β²``) form an invariant subspace at 0 (``dw_S = g_S h_S - λ_W w_S`` vanishes there). On the
    rest the point is the minimiser of the restricted convex programme
    ``CE(Σ ℓ_S P_S) + sqrt(λ_W λ_X) Σ m_S |ℓ_S| / sqrt κ_S`` (``κ ≡ 1`` in the weights for ridge H);
    ``method="convex"`` starts from it, ``method="flow"`` integrates the reduced ODE from an aligned
    balanced init with those modes exactly 0 (they stay 0) up to ``t1``. Either is then polished with
    ``scipy.optimize.root`` on the reduced right-hand side (exact Jacobian, :func:`reduced_jacobian`).

    The Jacobian of the *full* reduced flow at the point is block diagonal: every zero mode contributes
    ``[[-λ_W, g*], [κ g*, -κ λ_H]]`` (ridge H) or ``[[-λ_W, g*], [κ g*, -λ_E]]`` (ridge E) with ``g* = g_S``
    there. Its top eigenvalue ``μ`` is the escape rate from the saddle (positive: a strict saddle).

    Args:
        problem: :class:`~ufmtheory.ModifiedUFM` (or :class:`~ufmtheory.UFM`) with ``normalize=None`` on a
            one-hot factorial or hierarchical design, both ridges ``> 0``.
        method: ``"convex"`` or ``"flow"`` (the starting point for the polish).
        t1: flow horizon for ``method="flow"`` (default ``100/min(λ_W, λ_X)``).
        tol: the residual (max-norm of the reduced right-hand side) below which ``status`` is ``"ok"``
            (above it: ``"inaccurate"``).
        throw: raise :class:`~ufmtheory._results.SolverError` instead of returning a result that is not ok.

    Returns:
        :class:`Equilibrium` of kind ``"semantic"`` (or ``"zero"`` when the ridge is so strong that the
        restricted minimiser is 0). ``stats``: ``w``, ``h``, ``ell``, ``g`` (label order ``labels``),
        ``residual``, ``jacobian_eigenvalues`` (descending), ``mu``, ``n_unstable``, ``interaction_blocks``
        (per zero mode: ``g``, ``kappa``, the 2×2 escape ``block`` of docs: Theory §9, its eigenvalues and
        those of the same block cut from the Jacobian), ``mu_formula`` (largest 2×2 eigenvalue),
        ``decoupling`` (largest Jacobian entry coupling a zero mode to the rest: 0 in exact arithmetic).

    Example (2×2 grid, ridge on H: always a strict saddle):
        >>> import ufmtheory as ut
        >>> prob = ut.ModifiedUFM(ut.designs.factorial((2, 2)), dim=4, lam_W=1e-3, lam_H=1e-3)
        >>> eq = semantic_saddle(prob)
        >>> eq.kind, eq.status, eq.stats["n_unstable"], bool(eq.stats["mu"] > 0)
        ('semantic', 'ok', 1, True)
    """
    start = time.perf_counter()
    tol = _validate.positive("tol", tol)
    rp, sch, _, lam_W, lam_X = _problem_parts(problem)
    objective = rp.ridge  # the weights of the finite-ridge programme follow the ridge placement
    if not (lam_W > 0 and lam_X > 0):
        raise ValueError(
            f"semantic_saddle needs lam_W > 0 and a feature/embedding ridge > 0 (got {lam_W}, {lam_X}):"
            " without ridge there is no finite critical point"
        )
    if method not in ("convex", "flow"):
        raise ValueError(f"method must be 'convex' or 'flow', got {method!r}")
    kappa = rp.kappa
    n_S = sch.n_S
    inter = sch.free_mask
    fixed = inter | (kappa == 0)
    fixed[0] = True
    free = np.flatnonzero(~fixed)
    lam = math.sqrt(lam_W * lam_X)
    if method == "convex":
        inter_labels = [S for S, m in zip(sch.labels, fixed, strict=True) if m and S != sch.labels[0]]
        reg = regularized_end_state(sch, kappa, lam_WX=lam, objective=objective, fix_zero=inter_labels)
        w, h = _factor_coefficients(reg.ell_vector, kappa, objective, lam_W, lam_X)
        start_info: dict[str, Any] = {"convex_status": reg.status, "convex_kkt": reg.kkt_residual}
        n_evals = reg.stats["n_evals"]
    else:
        t1 = 100.0 / min(lam_W, lam_X) if t1 is None else _validate.positive("t1", t1)
        w0 = np.zeros(n_S)
        w0[free] = 1e-3
        h0 = np.sqrt(kappa) * w0
        sol = reduced_solve(rp, t1, init=(w0, h0), saveat=np.array([0.0, t1]))
        w, h = sol.w[-1].copy(), sol.h[-1].copy()
        w[fixed], h[fixed] = 0.0, 0.0
        start_info = {"flow_status": sol.status, "flow_t1": t1, "flow_n_evals": sol.stats["n_evals"]}
        n_evals = sol.stats["n_evals"]
    idx = np.concatenate([free, n_S + free])

    def restricted(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = np.zeros(2 * n_S)
        y[idx] = x
        F = reduced_rhs(rp, y[:n_S], y[n_S:])[idx]
        J = reduced_jacobian(rp, y[:n_S], y[n_S:])[np.ix_(idx, idx)]
        return F, J

    y = np.concatenate([w, h])
    if idx.size and np.any(y[idx] != 0):
        pol = root(restricted, y[idx], jac=True, method="hybr", options={"xtol": 1e-15})
        if (
            np.all(np.isfinite(pol.x))
            and np.abs(restricted(pol.x)[0]).max() <= np.abs(restricted(y[idx])[0]).max()
        ):
            y[idx] = pol.x
    w, h = y[:n_S], y[n_S:]
    ell = w * h
    residual = float(np.abs(reduced_rhs(rp, w, h)).max())
    J = reduced_jacobian(rp, w, h)
    eig = np.linalg.eigvals(J)
    order = np.argsort(-eig.real)
    eig = eig[order]
    scale = max(float(np.abs(eig).max()), 1e-300)
    n_unstable = int(np.sum(eig.real > 1e-10 * scale))
    zero_modes = np.flatnonzero(fixed)
    ranks = np.asarray(sch.ranks, dtype=np.float64)
    g = -reduced_ce(sch, ell)[1] / ranks
    blocks: dict[str, Any] = {}
    mu_formula = -math.inf
    decoupling = 0.0
    for i in zero_modes:
        if i == 0 or not inter[i]:
            continue
        gs, ks = float(g[i]), float(kappa[i])
        block = escape_block(gs, ks, lam_W=lam_W, lam_X=lam_X, ridge=rp.ridge)
        ev = np.sort(np.linalg.eigvals(block).real)[::-1]
        cut = J[np.ix_([i, n_S + i], [i, n_S + i])]
        others = np.setdiff1d(np.arange(2 * n_S), [i, n_S + i])
        decoupling = max(decoupling, float(np.abs(J[np.ix_([i, n_S + i], others)]).max(initial=0.0)))
        decoupling = max(decoupling, float(np.abs(J[np.ix_(others, [i, n_S + i])]).max(initial=0.0)))
        blocks[str(sch.labels[i])] = {
            "g": gs,
            "kappa": ks,
            "block": block.tolist(),
            "eigenvalues": ev.tolist(),
            "jacobian_block_eigenvalues": np.sort(np.linalg.eigvals(cut).real)[::-1].tolist(),
        }
        mu_formula = max(mu_formula, float(ev[0]))
    # Loss = CE + λ_W/2 ‖W‖² + λ_H/2 ‖H‖² (ridge H) or λ_E/2 ‖E‖² with the minimum-norm E (Σ m h²/κ).
    ce = reduced_ce(sch, ell)[0]
    kpen = np.where(kappa > 0, kappa, 1.0) if rp.ridge == "E" else np.ones(n_S)
    loss = ce + 0.5 * lam_W * float(ranks @ w**2) + 0.5 * lam_X * float(ranks @ (h**2 / kpen))
    trivial = not np.any(ell[free] != 0)
    kind = "zero" if trivial else "semantic"
    if not trivial:
        _check_dim(problem, sch, ell)
    status, message = (
        ("ok", "") if residual < tol else ("inaccurate", f"residual {residual:.3g} >= tol {tol:g}")
    )
    eq = scheme_equilibrium(
        sch,
        w,
        h,
        ell,
        kind=kind,
        loss=loss,
        status=status,
        message=message,
        method=f"reduced-{method}+root",
        stats={
            "n_evals": n_evals,
            "wall_time_s": time.perf_counter() - start,
            "labels": _labels_json(sch.labels),
            "w": w.tolist(),
            "h": h.tolist(),
            "ell": ell.tolist(),
            "g": g.tolist(),
            "kappa": kappa.tolist(),
            "ridge": rp.ridge,
            "residual": residual,
            "jacobian_eigenvalues": eig.real.tolist(),
            "jacobian_eigenvalues_imag_max": float(np.abs(eig.imag).max()),
            "mu": float(eig[0].real),
            "n_unstable": n_unstable,
            "interaction_blocks": blocks,
            "mu_formula": mu_formula if blocks else float("nan"),
            "decoupling": decoupling,
            "ce": ce,
            **start_info,
        },
    )
    return finish(eq, throw)
