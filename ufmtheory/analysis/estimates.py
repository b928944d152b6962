"""Closed-form estimates of the phase times (docs: Theory §5, §8), beside the integrated ones.

:func:`phase_estimates`: ``t_sem`` from the linearised growth of the attribute modes and ``t_col`` from the
escape rate of the semantic saddle (:func:`ufmtheory.equilibria.semantic_saddle`), for a balanced aligned
start at ``scale`` (the start of :func:`ufmtheory.reduced_solve`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ufmtheory.equilibria import semantic_saddle
from ufmtheory.solvers._frontend import DEFAULT_SCALE
from ufmtheory.solvers.linear import linear_rates, semantic_time
from ufmtheory.solvers.reduced import ReducedProblem

__all__ = ["phase_estimates"]


def _saddle(rp: ReducedProblem, model: Any) -> dict[str, Any] | None:
    """``{"w", "h", "mu", "source"}`` of the semantic saddle (:func:`ufmtheory.equilibria.semantic_saddle`),
    or ``None`` without a finite one."""
    if rp.lam_W <= 0 or rp.lam_X <= 0 or not rp.scheme.attribute_mask.any() or not rp.scheme.free_mask.any():
        return None
    if rp.normalize is not None:
        # The escape-rate block [[-λ_W, g*], [κ g*, -κ λ]] is derived for un-normalised features; the
        # normalised variant has no such closed form, so no t_col estimate is reported for it.
        return None
    try:
        eq = semantic_saddle(model if model is not None else rp)
    except (TypeError, ValueError, NotImplementedError):
        return None
    if eq.kind != "semantic" or not np.isfinite(eq.stats.get("mu", np.nan)):
        return None
    return {
        "w": np.asarray(eq.stats["w"], dtype=np.float64),
        "h": np.asarray(eq.stats["h"], dtype=np.float64),
        "mu": float(eq.stats["mu"]),
        "source": "ufmtheory.equilibria.semantic_saddle",
    }


def phase_estimates(
    problem: ReducedProblem,
    *,
    scale: float = DEFAULT_SCALE,
    which: str = "H",
    model: Any = None,
) -> dict[str, Any]:
    """Closed-form phase-time estimates (docs: Theory §7, §11) for a balanced aligned init.

    * ``t_sem = K ln(ℓ*/ℓ₀)/(2 sqrt(κ_attr))`` (:func:`ufmtheory.linear.semantic_time`, ``ℓ* = K``), with
      ``κ_attr`` the largest attribute-mode eigenvalue and ``ℓ₀ = sqrt(κ_attr) scale`` the initial
      logit coefficient ``w_S h_S`` of the balanced init ``w_S = sqrt(scale)``, ``h_S = sqrt(κ_S) w_S``.
    * ``t_col = t_sem + ln(δ_end/δ(t_sem))/μ``: ``δ`` is the free-mode coefficient (``h_S`` for
      ``which="H"``, ``w_S`` for ``"W"``), growing at the linearised rate ``μ_lin`` (half the logit rate of
      :func:`ufmtheory.linear.linear_rates` at the origin) until ``t_sem``, so ``δ(t_sem) = δ(0) e^{μ_lin
      t_sem}``, then at the escape rate ``μ`` of the semantic saddle. ``δ_end`` is the free-mode amplitude
      at which the strength falls to half its plateau with the attribute modes at their saddle values:
      free-mode energy ``E_attr (1 - ρ₀)/(1 + ρ₀)`` spread over the free ranks (``ρ₀ = Σ_A m_S/(K-1)``).

    The saddle and ``μ`` come from :func:`ufmtheory.equilibria.semantic_saddle` (any K: it works on the
    scheme coefficients). Entries that do not apply are ``None`` (no attribute modes; ``κ_attr <= κ_free``:
    no semantic phase; no ridge: no finite saddle).

    Args:
        problem: the :class:`~ufmtheory.solvers.reduced.ReducedProblem`.
        scale: the start's scale (size of the starting label Gram, as in :func:`ufmtheory.reduced_solve`).
        which: ``"H"`` or ``"W"``: whose free-mode amplitude defines ``t_col``.
        model: the UFM / ModifiedUFM the reduced problem came from (checked against ``dim`` by the saddle).
    """
    rp = problem
    sch = rp.scheme
    K = sch.K
    attr, free = sch.attribute_mask, sch.free_mask
    out: dict[str, Any] = {
        "t_sem": None,
        "t_col": None,
        "kappa_attr": None,
        "kappa_free": None,
        "l0": None,
        "growth_rate": None,
        "mu_lin": None,
        "mu": None,
        "mu_source": None,
        "delta_sem": None,
        "delta_end": None,
    }
    if not attr.any():
        return out
    kappa_attr = float(rp.kappa[attr].max())
    out["kappa_attr"] = kappa_attr
    if kappa_attr <= 0 or scale <= 0:
        return out
    l0 = math.sqrt(kappa_attr) * scale
    t_sem = semantic_time(kappa_attr, K, l0)
    out.update(l0=l0, t_sem=t_sem, growth_rate=2.0 * math.sqrt(kappa_attr) / K)
    if not free.any():
        return out
    kappa_free = float(rp.kappa[free].max())
    out["kappa_free"] = kappa_free
    if kappa_free >= kappa_attr:
        return out  # no attribute head start: no semantic phase to escape from
    mu_lin = 0.5 * linear_rates(kappa_free, K, lam_W=rp.lam_W, lam_X=rp.lam_X, ridge=rp.ridge)
    out["mu_lin"] = mu_lin
    saddle = _saddle(rp, model)
    if saddle is None:
        return out
    mu = saddle["mu"]
    out.update(mu=mu, mu_source=saddle["source"])
    coef = saddle["h"] if which == "H" else saddle["w"]
    ranks = np.array(sch.ranks, dtype=np.float64)
    e_attr = float((coef[attr] ** 2) @ ranks[attr])
    rho0 = ranks[attr].sum() / (K - 1)
    delta_end = math.sqrt(e_attr * (1 - rho0) / (1 + rho0) / ranks[free].sum())
    delta0 = math.sqrt(scale) * (math.sqrt(kappa_free) if which == "H" else 1.0)
    delta_sem = delta0 * math.exp(mu_lin * t_sem)
    out.update(delta_sem=delta_sem, delta_end=delta_end)
    if mu > 0 and delta_end > 0 and delta_sem > 0:
        out["t_col"] = t_sem + max(math.log(delta_end / delta_sem), 0.0) / mu
    return out
