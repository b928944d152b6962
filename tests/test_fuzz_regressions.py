"""Fast regressions for what the large fuzz run (``make fuzz``) found; each is a minimal reproducer."""

from __future__ import annotations

import numpy as np
import pytest

import ufmtheory as ut


@pytest.mark.parametrize("lam_limit", [True, False])
def test_end_state_ridge_E_far_apart_ridges_finite(lam_limit: bool) -> None:
    # Fuzz: lam_E / lam_W = 1e600 overflowed the balanced-factor ratio (NaN Grams under status "ok").
    prob = ut.ModifiedUFM(
        ut.designs.factorial((2, 2)), 4, alpha=0.5, beta=0.5, ridge="E", lam_W=1e-300, lam_E=1e300
    )
    eq = ut.end_state(prob, lam_limit=lam_limit)
    assert eq.status == "ok"
    assert np.all(np.isfinite(eq.gram_W)) and np.all(np.isfinite(eq.gram_H))
    if lam_limit:  # same direction as at ordinary ridges, scaled by sqrt(lam_E/lam_W) = 1e300
        ref = ut.end_state(
            ut.ModifiedUFM(
                ut.designs.factorial((2, 2)), 4, alpha=0.5, beta=0.5, ridge="E", lam_W=1.0, lam_E=1.0
            )
        )
        np.testing.assert_allclose(eq.gram_W / 1e300, ref.gram_W, rtol=1e-12)
        np.testing.assert_allclose(eq.gram_H * 1e300, ref.gram_H, rtol=1e-12)


def test_end_state_ridge_E_unrepresentable_ratio_names_ridges() -> None:
    prob = ut.ModifiedUFM(
        ut.designs.factorial((2, 2)), 4, alpha=0.5, beta=0.5, ridge="E", lam_W=5e-324, lam_E=1e300
    )
    with pytest.raises(ValueError, match="lam_W.*lam_E"):
        ut.end_state(prob)


def test_end_state_ridge_E_tiny_ratio_not_zero() -> None:
    # lam_E / lam_W = 1e-600 underflowed to 0 and returned all-zero Grams as an ETF.
    prob = ut.ModifiedUFM(
        ut.designs.factorial((2, 2)), 4, alpha=0.5, beta=0.5, ridge="E", lam_W=1e300, lam_E=1e-300
    )
    eq = ut.end_state(prob)
    assert eq.kind == "etf" and np.all(np.isfinite(eq.gram_H))
    assert eq.gram_W[0, 0] > 0 and eq.gram_H[0, 0] > 0


@pytest.mark.parametrize("u0", [5e-324, 1e-300])
def test_etf_mode_tiny_u0_round_trip(u0: float) -> None:
    # Fuzz: u0 = 5e-324 made u/u0 overflow (t = inf), and the inverse stopped after 200 damped Newton steps
    # from the late asymptote, far from ln u0 ≈ -744 (etf_mode_u(1, 5, 1e-300) was 2e-174, not 1.5e-300).
    for t, K in [(5.03e11, 31), (1e30, 15), (1e3, 4)]:
        u = ut.etf_mode_u(t, K, u0)
        assert ut.etf_mode_time(u, K, u0) == pytest.approx(t, rel=1e-12)
    # Early growth is exponential: u = u0 exp(2t/(K - 1 + e^u0)) while u stays tiny.
    assert ut.etf_mode_u(1.0, 5, 1e-300) == pytest.approx(1e-300 * np.exp(0.4), rel=1e-12)
    assert np.all(np.isfinite(ut.etf_mode_time(np.array([1e-3, 1.0, 50.0]), 4, u0)))
