"""The late limit of normalised flows with a ridge on the raw features (docs: modified_ufm.md, "Normalised
features with a ridge: the stiff late limit").

With ``H = r H_raw/‖columns‖`` the cross-entropy cannot see the scale of ``E``, so its gradient is orthogonal
to ``E`` and scales like ``1/‖E‖``: ``∇CE(cE) = ∇CE(E)/c``. A ridge on E then shrinks the scale exactly,
``‖E(t)‖ = e^{-λ_E t}‖E(0)‖``, and writing ``E = e^{-λ_E t} F`` gives ``Ḟ = -e^{2λ_E t} ∇_F CE(W, F)``: the
direction's rate grows like ``e^{2λ_E t}`` (a ridge on H shrinks the raw columns at rates between
``λ_H κ_min`` and ``λ_H κ_max``; same effect). The flow stays well defined but no integrator follows it once
``λt`` is a few tens: the direction sits at its minimiser given W (the adiabatic limit).

:func:`diagnose` measures that regime at a state; :func:`adiabatic_tail` continues a ridge-on-E flow once
W and the direction have stopped moving to within :data:`ADIABATIC_TOL` (then only the raw scale changes, by
``e^{-λ_E Δt}``, exactly; W and the direction are held where they stopped, so their remaining drift bounds
the error — an extrapolation, said so in the result's message);
:func:`stiff_message` says what happened otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from ufmtheory.solvers.reduced_rhs import ReducedRHS

__all__ = [
    "ADIABATIC_TOL",
    "STIFF_GROWTH",
    "diagnose",
    "adiabatic_tail",
    "exact_scale",
    "stiff_message",
    "late_limit",
]

ADIABATIC_TOL = 1e-6
"""W and the feature direction count as stopped when W's relative velocity per unit log-time,
``(1 + t)‖ẇ‖/‖w‖``, and the direction's stationarity residual ``‖P_⊥(w∘g)‖/‖w∘g‖`` are both below this."""


STIFF_GROWTH = 100.0
"""A run stopped by ``max_evals`` is called stiff only once the direction's rate has grown by this factor
(``e^{2λ_E t}``, or ``(r/n)²`` for a ridge on H); below it the cap alone explains the stop."""


def diagnose(
    fn: ReducedRHS, kappa: np.ndarray, lam_W: float, lam_X: float, radius: float, t: float, y: np.ndarray
) -> dict[str, Any]:
    """The stiffness diagnostics of a normalised reduced state ``y = [w, a]: (2 n_S,)`` at time ``t``.

    Returns:
        ``{"t", "raw_norm", "rate_factor", "drift_W", "direction_residual", "converged"}``: the column norm
        ``n`` of the raw features, the factor ``(r/n)²`` multiplying the direction's rate, W's relative
        velocity per unit log-time, the direction's stationarity residual and whether both are below
        :data:`ADIABATIC_TOL`.
    """
    n_S = fn.ranks.size
    w, a = y[:n_S], y[n_S:]
    K = float(fn.counts.sum())
    # numpy scalars throughout: a hostile state (huge radius, n = 0) gives inf/nan, never an exception.
    n = np.sqrt(np.float64(fn.ranks @ (a * a)) / K)
    ahat = a / n
    g = fn.g(w, a, radius)
    wg = w * g
    tangential = wg - ahat * (float(fn.ranks @ (ahat * wg)) / K)
    dw = g * radius * ahat - lam_W * w
    w_norm, wg_norm = float(np.linalg.norm(w)), float(np.linalg.norm(wg))
    drift = (1.0 + t) * float(np.linalg.norm(dw)) / w_norm if w_norm > 0 else math.inf
    residual = float(np.linalg.norm(tangential)) / wg_norm if wg_norm > 0 else 0.0
    return {
        "t": float(t),
        "raw_norm": float(n),
        "rate_factor": float((np.float64(radius) / n) ** 2),
        "drift_W": drift,
        "direction_residual": residual,
        "converged": drift <= ADIABATIC_TOL and residual <= ADIABATIC_TOL,
    }


def adiabatic_tail(y: np.ndarray, t_from: float, ts: np.ndarray, lam_E: float) -> np.ndarray:
    """States ``(len(ts), 2 n_S)`` of a stopped ridge-on-E normalised flow at later times ``ts``: ``w`` and
    the direction fixed, the raw features ``a(t) = a(t_from) e^{-λ_E (t - t_from)}`` (exact: the cross-entropy
    gradient is orthogonal to E, so only the ridge moves ``‖E‖``)."""
    n_S = y.size // 2
    out = np.repeat(y[None, :], ts.size, axis=0)
    out[:, n_S:] *= np.exp(-lam_E * (ts - t_from))[:, None]
    return out


def exact_scale(
    Y: np.ndarray, ts: np.ndarray, a0: np.ndarray, kappa: np.ndarray, ranks: np.ndarray, lam_E: float
) -> float:
    """Put the raw features of a normalised ridge-on-E flow ``Y: (T, 2 n_S)`` (saved at ``ts[:T]``) back on
    ``‖E(t)‖² = Σ m_S a_S²/κ_S = ‖E(0)‖² e^{-2λ_E t}`` (in place) and return the largest relative correction.
    ``a0: (n_S,)`` is the initial raw state at ``t = 0`` (the save times need not start at 0).

    The conservation law is exact; the integrator loses the radial component first once the direction's rate
    explodes (LSODA's "repeated convergence failures": 30 % off near ``2λt ≈ 30`` on a 3×3 grid), while the
    loss, W and the direction do not depend on the scale. The direction is kept as integrated."""
    n_S = Y.shape[1] // 2
    inv = np.where(kappa > 0, ranks / np.where(kappa > 0, kappa, 1.0), 0.0)
    E2 = (Y[:, n_S:] ** 2) @ inv
    target = float((a0**2) @ inv) * np.exp(-2.0 * lam_E * ts[: Y.shape[0]])
    ok = (E2 > 0) & (target > 0)
    factor = np.ones_like(E2)
    factor[ok] = np.sqrt(target[ok] / E2[ok])
    Y[:, n_S:] *= factor[:, None]
    return float(np.max(np.abs(factor - 1.0)))


def stiff_message(diag: dict[str, Any], ridge: str, lam_X: float) -> str:
    """One sentence: why a normalised flow with a ridge stopped, with the numbers."""
    t = diag["t"]
    if ridge == "E":
        grows = f"e^(2λt) = {math.exp(min(2.0 * lam_X * t, 700.0)):.3g}"
        cause = f"‖E‖ shrinks like e^(-λt), so the direction's rate grows like {grows}"
    else:
        cause = (
            f"the ridge shrinks the raw columns (norm {diag['raw_norm']:.3g}), so the direction's rate grows"
            f" like (r/n)² = {diag['rate_factor']:.3g}"
        )
    moving = "has converged" if diag["direction_residual"] <= ADIABATIC_TOL else "is still moving"
    return (
        f"stiff: normalised features with a ridge on {ridge} (λ = {lam_X:.3g}): {cause} at t = {t:.4g};"
        f" the feature direction {moving} (residual {diag['direction_residual']:.1e}), W's relative drift"
        f" per unit log-time is {diag['drift_W']:.1e}"
    )


def late_limit(
    fn: ReducedRHS,
    kappa: np.ndarray,
    lam_W: float,
    lam_X: float,
    radius: float,
    ts: np.ndarray,
    Y: np.ndarray,
    status: str,
    message: str,
    steps: Iterable[tuple[float, np.ndarray]] = (),
) -> tuple[str, str, np.ndarray, dict[str, Any], np.ndarray | None]:
    """After a normalised reduced solve with a ridge on the features stopped early (``status`` not ok):
    find where the flow stopped moving and continue it, or say why it cannot be.

    The integrator's own states after the last save, ``steps`` (``(t, y)`` at its step ends, latest first),
    are searched for the latest one where W and the direction have stopped (:func:`diagnose`); without
    one, the last saved state ``Y[-1]`` is diagnosed (``Y: (T, 2 n_S)``, saved at ``ts[:T]``). The steps
    matter because a sparse save grid's last save can precede convergence while the integrator got there
    (its very last steps, once the stiffness wins, are not trustworthy: the latest *converged* one is used).
    A ridge-on-E flow that has stopped is continued from there to the remaining save times by
    :func:`adiabatic_tail` (status ``"ok"``, message ``"adiabatic limit from t = ..."``); anything else keeps
    its status with :func:`stiff_message` in front of the solver's message (not for a ``"max_evals"`` stop
    before the rate has grown by :data:`STIFF_GROWTH`: the cap explains it).

    Returns:
        ``(status, message, Y, diagnostics, anchor)``: ``anchor: (2 n_S,)`` the state the tail starts from
        (its raw scale on the exact law; ``None`` without a tail).
    """
    T = Y.shape[0]
    t_last, n_S = float(ts[T - 1]), fn.ranks.size
    inv = np.where(kappa > 0, fn.ranks / np.where(kappa > 0, kappa, 1.0), 0.0)
    e_last = float(Y[-1, n_S:] ** 2 @ inv)
    t_d, y_d = t_last, Y[-1]
    diag = diagnose(fn, kappa, lam_W, lam_X, radius, t_last, Y[-1])
    if fn.ridge == "E" and e_last > 0:
        for t, y in steps:
            if t < t_last:
                break
            y = np.array(y, dtype=np.float64)
            e_y = float(y[n_S:] ** 2 @ inv)
            if not (np.all(np.isfinite(y)) and e_y > 0):
                continue
            # The saved states are on the exact ‖E‖ law (exact_scale): carry it to t.
            y[n_S:] *= math.sqrt(e_last / e_y) * math.exp(-lam_X * (t - t_last))
            d = diagnose(fn, kappa, lam_W, lam_X, radius, t, y)
            if d["converged"]:
                t_d, y_d, diag = t, y, d
                break
    if not np.all(np.isfinite(y_d)) or not math.isfinite(diag["raw_norm"]) or diag["raw_norm"] == 0:
        return status, message, Y, diag, None
    if fn.ridge == "E" and diag["converged"]:
        Y = np.concatenate([Y, adiabatic_tail(y_d, t_d, ts[T:], lam_X)])
        msg = (
            f"adiabatic limit from t = {diag['t']:.4g}: W and the feature direction have stopped (drift"
            f" {diag['drift_W']:.1e}, residual {diag['direction_residual']:.1e}) and are held there (an"
            f" extrapolation within that drift); ‖E‖ decays as e^(-λ_E t) exactly; the integrator stopped"
            f" there ({message})"
        )
        return "ok", msg, Y, {**diag, "adiabatic_from": diag["t"], "saved_integrated": T}, y_d
    growth = math.exp(min(2.0 * lam_X * diag["t"], 700.0)) if fn.ridge == "E" else diag["rate_factor"]
    if status == "max_evals" and growth < STIFF_GROWTH:
        # The evaluation cap was reached before the flow turned stiff: the cap, not stiffness, stopped it.
        return status, message, Y, diag, None
    return status, f"{stiff_message(diag, fn.ridge, lam_X)} ({message})", Y, diag, None
