"""Normalised features with a ridge: the exact time change behind the stiff late limit, the adiabatic
continuation of a stopped ridge-on-E flow, and the specific message when the flow cannot be continued
(docs: modified_ufm.md, "Normalised features with a ridge: the stiff late limit")."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import ufmtheory as ut
from ufmtheory.algebra.schemes import factorial_scheme
from ufmtheory.analysis.phases import _reduced, _save_grid
from ufmtheory.solvers.reduced import ReducedProblem, initial_coefficients
from ufmtheory.solvers.reduced_rhs import ReducedRHS


def _problem(lam_W: float, lam_E: float) -> ReducedProblem:
    return ReducedProblem.from_parts(
        factorial_scheme((3, 3)), alpha=1.0, beta=1.0, ridge="E", lam_W=lam_W, lam_E=lam_E, normalize=1.0
    )


def test_ridge_on_E_is_a_time_change_of_the_direction() -> None:
    """W frozen, ridge λ on E: ``a(t) = e^{-λt} b(τ)`` with ``ḃ`` the ridge-free flow and
    ``τ = (e^{2λt} - 1)/(2λ)`` (the cross-entropy is blind to the scale of E, so its gradient is
    homogeneous of degree -1): the derivation of the stiff limit, checked by two integrations."""
    lam, t1 = 0.5, 1.0
    rp = _problem(0.0, lam)
    f = ReducedRHS.from_scheme(rp.scheme, "E", normalize=True)
    rng = np.random.default_rng(3)
    w = np.concatenate([[0.0], rng.uniform(1.0, 2.0, 3)])
    a0 = np.concatenate([[0.0], rng.uniform(0.5, 1.5, 3)])

    def frozen(lam_E: float):  # the a-part of the flow in t with W held fixed
        fun, _ = f.log_time(rp.kappa, 0.0, lam_E, 1.0)
        return lambda t, a: fun(0.0, np.concatenate([w, a]))[4:]

    kw = {"method": "DOP853", "rtol": 1e-12, "atol": 1e-14}
    a1 = solve_ivp(frozen(lam), (0.0, t1), a0, **kw).y[:, -1]
    tau = math.expm1(2 * lam * t1) / (2 * lam)
    b = solve_ivp(frozen(0.0), (0.0, tau), a0, **kw).y[:, -1]
    np.testing.assert_allclose(a1, math.exp(-lam * t1) * b, rtol=1e-9, atol=1e-12)


def test_stopped_ridge_on_E_flow_continues_in_the_adiabatic_limit() -> None:
    rp = _problem(1e-2, 1e-2)
    init = initial_coefficients(rp, None, 1e-6, on_sphere=True)
    sol = ut.reduced_solve(rp, 1e6, init=init)
    assert sol.ok and sol.message.startswith("adiabatic limit from t = ")
    t_star = sol.stats["late_limit"]["adiabatic_from"]
    assert 100 < t_star < 1e5 and sol.ts[-1] == 1e6
    # ‖E‖² = Σ m_S a_S²/κ_S = ‖E(0)‖² e^{-2λt}: the exact law the solver restores on the raw scale (the
    # integrator loses the radial component first; the correction is reported), and the tail keeps.
    assert 0 <= sol.stats["late_limit"]["scale_correction"] < 1.0
    ranks = np.array(rp.scheme.ranks, dtype=np.float64)
    E2 = (sol.h_raw**2 * ranks / np.where(rp.kappa > 0, rp.kappa, 1.0)).sum(axis=1)
    keep = sol.ts < 3e4
    assert keep.sum() > 10 and (sol.ts[keep] > t_star).any()
    np.testing.assert_allclose(E2[keep], E2[0] * np.exp(-2e-2 * sol.ts[keep]), rtol=1e-6)
    # The end state: the ETF on the sphere of radius 1 (h_S² (K - 1)/K = 1 on every S ≠ ∅), finite Grams.
    np.testing.assert_allclose(sol.h[-1, 1:], math.sqrt(9 / 8), rtol=1e-6)
    after = sol.ts > t_star
    assert np.all(sol.h[after] == sol.h[-1]) and np.all(sol.w[after] == sol.w[-1])  # stopped: constant
    assert np.all(np.isfinite(sol.loss)) and np.all(sol.h_raw[-1] == 0.0)  # e^{-λ t} underflows, h does not


@pytest.mark.filterwarnings("ignore::UserWarning")  # lsoda's own "repeated convergence failures"
def test_stiff_stop_says_why() -> None:
    """Without a ridge on W, W keeps moving when the direction's rate explodes: no exact continuation, the
    status stays "failed" and the message gives the cause and the numbers."""
    rp = _problem(0.0, 1e-2)
    sol = ut.reduced_solve(rp, 1e6, init=initial_coefficients(rp, None, 1e-6, on_sphere=True))
    assert sol.status == "failed"
    assert sol.message.startswith("stiff: normalised features with a ridge on E (λ = 0.01)")
    assert "e^(2λt) = " in sol.message and "the feature direction has converged" in sol.message
    diag = sol.stats["late_limit"]
    assert diag["drift_W"] > 1e-3 and diag["direction_residual"] < 1e-6 and "adiabatic_from" not in diag


def test_exact_scale_is_anchored_at_t0_when_saves_start_later() -> None:
    """``‖E(t)‖² = ‖E(0)‖² e^{-2λt}`` from the initial state, not from the first saved time (a regression:
    saves from t = 10 were put on ``‖E(10)‖² e^{-2λt}``, 18 % low at λ = 10⁻²)."""
    rp = _problem(1e-2, 1e-2)
    init = initial_coefficients(rp, None, 1e-6, on_sphere=True)
    ranks = np.array(rp.scheme.ranks, dtype=np.float64)

    def E2(a: np.ndarray) -> np.ndarray:
        return (np.asarray(a) ** 2 * ranks / np.where(rp.kappa > 0, rp.kappa, 1.0)).sum(axis=-1)

    sol = ut.reduced_solve(rp, 100.0, init=init, saveat=np.array([10.0, 50.0, 100.0]))
    assert sol.ok and sol.stats["late_limit"]["scale_correction"] < 1e-6
    np.testing.assert_allclose(E2(sol.h_raw), E2(init[1]) * np.exp(-2e-2 * sol.ts), rtol=1e-8)


def test_an_early_evaluation_cap_is_not_called_stiff() -> None:
    """A run capped by ``max_evals`` at t ≈ 0.4 (e^{2λt} ≈ 1) keeps the solver's message: stiffness is not
    the cause. Capped late (e^{2λt} ≈ 2e6), the stiff diagnosis is given."""
    rp = _problem(1e-2, 1e-2)
    init = initial_coefficients(rp, None, 1e-6, on_sphere=True)
    early = ut.reduced_solve(rp, 1e6, init=init, max_evals=60)
    assert early.status == "max_evals" and early.message.startswith("max_evals = 60")
    late = ut.reduced_solve(rp, 1e6, init=init, max_evals=3000)
    assert late.status == "max_evals" and late.message.startswith("stiff: ")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_predict_phases_does_not_continue_an_adiabatic_tail() -> None:
    """predict_phases' horizon extension restarts a run that ended in the adiabatic limit: its raw scale
    has underflowed to 0 by t = 1e6 (e^{-λt}), which is no state to continue from (it raised ValueError)."""
    rp = _problem(1e-2, 1e-2)
    init = initial_coefficients(rp, None, 1e-6, on_sphere=True)
    first, state = _reduced(rp, 1e6, init, _save_grid(1e6, 10))
    assert "adiabatic_from" in first.stats["late_limit"] and not np.any(state[1])
    again, _ = _reduced(rp, 1e7, init, _save_grid(1e7, 10), (first, state))
    assert again.ok and again.ts[-1] == 1e7 and "segments" not in again.stats


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_late_limit_does_not_depend_on_the_save_grid() -> None:
    """The stop is diagnosed on the integrator's own steps, not on the last saved state: with 5 saves per
    decade the last save (t = 1000) precedes convergence (W's drift 5e-5) and the same flow was "failed";
    now both grids continue from the same step and agree on the end state (the ETF on the unit sphere)."""
    rp = _problem(1e-2, 1e-2)
    init = initial_coefficients(rp, None, 1e-6, on_sphere=True)
    sparse = ut.reduced_solve(rp, 1e6, init=init, saveat=_save_grid(1e6, 5))
    dense = ut.reduced_solve(rp, 1e6, init=init, saveat=_save_grid(1e6, 40))
    assert sparse.ok and dense.ok
    assert sparse.stats["late_limit"]["adiabatic_from"] == dense.stats["late_limit"]["adiabatic_from"]
    np.testing.assert_allclose(sparse.h[-1, 1:], math.sqrt(9 / 8), rtol=1e-6)
    np.testing.assert_allclose(sparse.w[-1], dense.w[-1], rtol=1e-12)
