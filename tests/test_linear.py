"""Early-phase closed forms (ufmtheory.solvers.linear) against full gradient flows of the modified UFM."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import ufmtheory as ut
from ufmtheory.solvers import linear
from ufmtheory.testing import claims

from helpers import kron_projector


def test_kernel_eigenvalues_match_numerical_spectrum():
    sizes, alpha, beta = (2, 3, 4), 0.7, 1.3
    design = ut.designs.factorial(sizes)
    Kx = alpha**2 * design.X.T @ design.X + beta**2 * np.eye(design.m)
    ev = linear.factorial_kernel_eigenvalues(sizes, alpha, beta)
    for f, a in enumerate(sizes):
        P = kron_projector(sizes, (f,))
        np.testing.assert_allclose(Kx @ P, ev["main"][f] * P, atol=1e-12)
        assert np.trace(P) == pytest.approx(a - 1)
    # Interaction space: orthogonal complement of constants and main effects.
    P_int = np.eye(design.m) - 1.0 / design.m - sum(kron_projector(sizes, (f,)) for f in range(3))
    np.testing.assert_allclose(Kx @ P_int, ev["interaction"] * P_int, atol=1e-12)
    assert np.trace(P_int) == pytest.approx(ev["multiplicity_interaction"])


@pytest.mark.parametrize(("sizes", "alpha", "beta"), [((3, 3), 1.0, 1.0), ((2, 4), 0.5, 1.0)])
def test_early_growth_rates_from_aligned_init(sizes, alpha, beta):
    """The catalogue claim (ufmtheory.testing.claims "growth_rates"): from the balanced aligned init the
    main-effect energies of a full ridge-E flow grow at 2 sqrt(κ_f)/K, κ_f = α²K/A_f + β² written out."""
    res = claims.check("growth_rates", sizes=sizes, alpha=alpha, beta=beta, u0=1e-8)
    assert res.ok, res.message


def test_early_growth_rates_from_small_random_init_within_10_percent():
    sizes, alpha, beta = (3, 3), 1.0, 1.0
    design = ut.designs.factorial(sizes)
    K = design.m
    prob = ut.ModifiedUFM(design, dim=32, alpha=alpha, beta=beta, ridge="E")
    kappa = alpha**2 * K / sizes[0] + beta**2  # main effect of factor 0: α² K/a_0 + β² = 4
    expected = 2 * np.sqrt(kappa) / K
    rates = []
    for seed in range(3):
        traj = ut.gradient_flow(
            prob,
            50.0,
            init=ut.init.small(prob, 1e-8, seed=seed),
            saveat=np.linspace(0, 50, 101),
            log_time=False,
            rtol=1e-10,
            atol=1e-20,
        )
        energy = np.einsum("tij,ji->t", traj.gram_H, kron_projector(sizes, (0,)))
        # Skip the transient while the random init aligns with the growing modes; scale 1e-8 keeps the
        # logits < 1e-5 up to t = 50, so the whole window is in the linear regime.
        late = traj.ts > 15
        rates.append(np.polyfit(traj.ts[late], np.log(energy[late]), 1)[0])
    assert np.mean(rates) == pytest.approx(expected, rel=0.1)


def test_linear_rates_limits():
    assert linear.growth_rate(4.0, 9) == pytest.approx(2 * 2.0 / 9, rel=1e-15)  # 2 sqrt(κ)/K
    assert linear.linear_rates(4.0, 9) == pytest.approx(4 / 9, rel=1e-15)
    # Ridge on E and on W shifts the balanced rate down by 2λ exactly when κ = 1.
    assert linear.linear_rates(1.0, 9, lam_W=0.01, lam_X=0.01) == pytest.approx(2 / 9 - 0.02)
    assert linear.linear_rates(4.0, 9, lam_X=0.01, ridge="H") < linear.linear_rates(4.0, 9, lam_X=0.01)


def test_saxe_mode_solves_its_ode():
    kappa, K, l0, lam = 3.0, 6, 1e-3, 0.01
    ts = np.linspace(0, 80, 2001)
    ell = linear.saxe_mode(ts, kappa, K, l0, lam_WX=lam)
    rhs = 2 * ell * (np.sqrt(kappa) * (1 - ell / K) / K - lam)
    # Central differences (interior points) against the right-hand side.
    np.testing.assert_allclose(np.gradient(ell, ts)[1:-1], rhs[1:-1], rtol=2e-3, atol=1e-6)
    assert ell[0] == pytest.approx(l0)
    assert ell[-1] == pytest.approx(K * (1 - lam * K / np.sqrt(kappa)), rel=1e-3)


def test_semantic_time_matches_exponential_growth():
    t = linear.semantic_time(4.0, 9, 1e-4, 9.0)
    assert 1e-4 * np.exp(2 * np.sqrt(4.0) / 9 * t) == pytest.approx(9.0)  # rate 2 sqrt(κ)/K


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: linear.growth_rate(-1.0, 4), "kappa"),
        (lambda: linear.growth_rate(1.0, 1), "K"),
        (lambda: linear.saxe_mode(-1.0, 1.0, 4, 1e-3), "t"),
        (lambda: linear.saxe_mode(1.0, 1.0, 4, 0.0), "l0"),
        (lambda: linear.linear_rates(1.0, 4, ridge="X"), "ridge"),
        (lambda: linear.factorial_kernel_eigenvalues((1, 3), 1.0, 1.0), "sizes"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_main_effect_projectors_are_orthogonal_idempotents():
    """Sanity of the test helper itself on a 2x2x2 grid."""
    sizes = (2, 2, 2)
    Ps = [kron_projector(sizes, (f,)) for f in range(3)]
    for P, Q in itertools.product(Ps, Ps):
        np.testing.assert_allclose(P @ Q, P if P is Q else 0 * P, atol=1e-12)
