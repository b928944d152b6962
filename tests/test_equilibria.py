"""Closed forms: Zhu et al.'s global minimiser (checked by constructing it, by stationarity, by an
independent 1-D minimisation and by running the flow into it), and the exact ETF-mode flow (checked by
quadrature, by inversion and against the full gradient flow from an aligned init)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad, solve_ivp
from scipy.optimize import brentq, minimize_scalar
from scipy.special import expi

import ufmtheory as ut
from ufmtheory.designs import Design
from ufmtheory.equilibria import centering
from ufmtheory.testing import claims

from helpers import budget


def _C(K):
    return np.eye(K) - np.ones((K, K)) / K


def _two_per_class(K):
    """K labels, two contexts each (contexts 2k, 2k+1 -> label k)."""
    return Design(Y=np.kron(np.eye(K), np.ones((1, 2))), X=np.zeros((0, 2 * K)))


# -- ETF Gram ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("K", [2, 3, 5, 10])
def test_etf_gram(K):
    G = ut.etf_gram(K)
    np.testing.assert_allclose(np.diag(G), 1.0, rtol=1e-15)
    off = G[~np.eye(K, dtype=bool)]
    np.testing.assert_allclose(off, -1.0 / (K - 1), rtol=1e-14)
    evals = np.linalg.eigvalsh(G)
    np.testing.assert_allclose(evals[0], 0.0, atol=1e-13)  # rank K-1, PSD: vectors of a simplex
    np.testing.assert_allclose(evals[1:], K / (K - 1), rtol=1e-13)
    np.testing.assert_allclose(centering(K), _C(K), atol=1e-16)
    for bad in (1, 2.0, True):
        with pytest.raises((ValueError, TypeError), match="K"):
            ut.etf_gram(bad)


# -- Zhu et al.: the minimiser by construction ----------------------------------------------------------
def _construct(eq, dim):
    """(W, H) realising zhu's Grams: W from the eigendecomposition of W Wᵀ, H by solving W H = logits."""
    evals, U = np.linalg.eigh(eq.gram_W)
    keep = evals > 1e-12 * evals.max()
    r = int(keep.sum())
    assert r <= dim
    W = np.zeros((eq.gram_W.shape[0], dim))
    H = np.zeros((dim, eq.logits.shape[1]))
    W[:, :r] = U[:, keep] * np.sqrt(evals[keep])
    H[:r] = (U[:, keep] / np.sqrt(evals[keep])).T @ eq.logits
    return W, H


CASES = [
    (ut.designs.factorial((3,)), 3, 1e-2, 1e-2),
    (ut.designs.factorial((4,)), 4, 5e-3, 2e-2),
    (ut.designs.factorial((4,)), 3, 1e-2, 1e-2),  # d = K - 1, the smallest dimension that fits the ETF
    (ut.designs.factorial((6,)), 6, 1e-3, 3e-3),
    (ut.designs.factorial((2, 3)), 6, 2e-3, 1e-2),
    (_two_per_class(3), 4, 5e-3, 1e-2),
    (_two_per_class(4), 4, 1e-2, 4e-3),
]
CASE_IDS = ["K3", "K4-unequal", "K4-d3", "K6", "2x3", "K3-n2", "K4-n2"]


@pytest.mark.parametrize(("design", "dim", "lam_W", "lam_H"), CASES, ids=CASE_IDS)
def test_zhu_point_is_a_stationary_minimum_with_the_stated_loss(design, dim, lam_W, lam_H):
    prob = ut.UFM(design, dim=dim, lam_W=lam_W, lam_H=lam_H)
    eq = ut.zhu(prob)
    assert eq.kind == "etf" and eq.status == "ok"
    W, H = _construct(eq, dim)
    # the Grams and the logits zhu returns are mutually consistent
    np.testing.assert_allclose(W @ H, eq.logits, atol=1e-12)
    np.testing.assert_allclose(H.T @ H, eq.gram_H, atol=1e-12)
    np.testing.assert_allclose(W @ W.T, eq.gram_W, atol=1e-12)
    params = {"W": W, "H": H}
    loss, grads = prob.loss_and_grad(params)
    assert loss == pytest.approx(eq.loss, rel=1e-13)
    assert np.abs(grads["W"]).max() < 1e-12 and np.abs(grads["H"]).max() < 1e-12
    # a minimum, not just a critical point: random perturbations never lower the loss
    rng = np.random.default_rng(0)
    for _ in range(20):
        dW, dH = rng.standard_normal(W.shape), rng.standard_normal(H.shape)
        assert prob.loss({"W": W + 1e-3 * dW, "H": H + 1e-3 * dH}) > loss
    # balance at any critical point (rescaling W -> cW, H -> H/c): λ_W ‖W‖² = λ_H ‖H‖²
    assert lam_W * np.trace(eq.gram_W) == pytest.approx(lam_H * np.trace(eq.gram_H), rel=1e-12)
    # NC1 for n > 1: contexts with the same label have identical features
    labels = design.Y.argmax(axis=0)
    same = labels[:, None] == labels[None, :]
    diag = np.diag(eq.gram_H)
    np.testing.assert_allclose(eq.gram_H[same], np.sqrt(np.outer(diag, diag))[same], rtol=1e-12)


@settings(max_examples=budget(30))
@given(
    K=st.integers(2, 8),
    n=st.integers(1, 3),
    lam_W=st.floats(1e-4, 0.5),
    lam_H=st.floats(1e-4, 0.5),
)
def test_zhu_matches_independent_one_dimensional_minimisation(K, n, lam_W, lam_H):
    """On aligned ETF configurations with class-mean logits x C_K the objective is, after optimal
    balancing, g(x) = ln(1 + (K-1) e^{-x}) + ε (K-1) x with ε = sqrt(n λ_W λ_H) (AM-GM on the two ridges).
    Minimise g numerically over x ≥ 0 (root of g' by bisection-type search, not the closed-form inverse):
    zero iff the minimiser is x = 0."""
    design = Design(Y=np.kron(np.eye(K), np.ones((1, n))), X=np.zeros((0, K * n)))
    prob = ut.UFM(design, dim=K, lam_W=lam_W, lam_H=lam_H)
    eq = ut.zhu(prob)
    eps = np.sqrt(n * lam_W * lam_H)

    def g(x):
        return np.log1p((K - 1) * np.exp(-x)) + eps * (K - 1) * x

    def dg(x):  # g is convex: its minimiser on x >= 0 is 0 or the root of g'
        return -(K - 1) * np.exp(-x) / (1 + (K - 1) * np.exp(-x)) + eps * (K - 1)

    x_num = 0.0 if dg(0.0) >= 0 else brentq(dg, 0.0, 100.0, xtol=1e-15, rtol=1e-15)
    res = minimize_scalar(g, bounds=(0.0, 100.0), method="bounded", options={"xatol": 1e-10})
    assert g(x_num) <= g(res.x) + 1e-14  # the root really is the minimum
    assert eq.stats["epsilon"] == pytest.approx(eps, rel=1e-14)
    if x_num == 0.0 and eq.kind == "etf":
        # ε within rounding of the threshold 1/K (hypothesis finds λ_H one ulp below it): the closed form
        # says "etf" with x* = ln(1 + O(ulp)), i.e. a solution indistinguishable from zero.
        assert eq.stats["x_star"] < 1e-12 and abs(eps * K - 1) < 1e-12
    elif x_num == 0.0:
        assert eq.kind == "zero"
        np.testing.assert_array_equal(eq.gram_H, 0)
        np.testing.assert_array_equal(eq.gram_W, 0)
        assert eq.loss == pytest.approx(np.log(K), rel=1e-14)
    else:
        assert eq.kind == "etf"
        assert eq.stats["x_star"] == pytest.approx(x_num, rel=1e-12, abs=1e-14)
        assert eq.loss == pytest.approx(g(x_num), rel=1e-12)
        # logits are x* C_K on class means; Grams proportional to C_K with the balanced ratio
        np.testing.assert_allclose(eq.logits, x_num * _C(K) @ design.Y, rtol=1e-11, atol=1e-14)
        means = eq.gram_H[::n, ::n]
        np.testing.assert_allclose(means / means[0, 0], _C(K) / _C(K)[0, 0], atol=1e-12)
        np.testing.assert_allclose(eq.gram_W / eq.gram_W[0, 0], _C(K) / _C(K)[0, 0], atol=1e-12)
        # ‖W‖² ‖H_means‖² = x*² (K-1)² for the aligned factorisation of x* C_K
        assert np.trace(eq.gram_W) * np.trace(means) == pytest.approx((x_num * (K - 1)) ** 2, rel=1e-10)


def test_zhu_threshold_boundary():
    """ε = 1/K exactly is the boundary: x* = ln(K - K + 1) = 0, the zero solution."""
    K = 4
    at = ut.zhu(ut.UFM(ut.designs.factorial((K,)), dim=K, lam_W=0.25, lam_H=0.25))
    below = ut.zhu(ut.UFM(ut.designs.factorial((K,)), dim=K, lam_W=0.249, lam_H=0.25))
    assert at.kind == "zero" and below.kind == "etf" and 0 < below.stats["x_star"] < 0.02


def test_zhu_rejects_unsupported_problems():
    with pytest.raises(ValueError, match="balanced one-hot"):
        ut.zhu(ut.UFM(ut.designs.from_distributions([[0.5, 0.5], [0.0, 1.0]]), dim=2, lam_W=0.1, lam_H=0.1))
    with pytest.raises(ValueError, match="balanced one-hot"):
        ut.zhu(ut.UFM(ut.designs.from_counts([[3, 0], [0, 1]]), dim=2, lam_W=0.1, lam_H=0.1))
    with pytest.raises(ValueError, match="lam_W > 0 and lam_H > 0"):
        ut.zhu(ut.UFM(ut.designs.factorial((3,)), dim=3, lam_W=0.0, lam_H=0.1))
    with pytest.raises(ValueError, match="dim"):
        ut.zhu(ut.UFM(ut.designs.factorial((4,)), dim=2, lam_W=0.1, lam_H=0.1))


# -- Zhu et al.: the flow gets there ---------------------------------------------------------------------
@pytest.mark.parametrize(("design", "dim", "lam_W", "lam_H"), CASES, ids=CASE_IDS)
def test_regularised_flow_from_small_init_reaches_zhu(design, dim, lam_W, lam_H):
    prob = ut.UFM(design, dim=dim, lam_W=lam_W, lam_H=lam_H)
    tr = ut.gradient_flow(prob, 3e4, init=ut.init.small(prob, 1e-2, seed=1), saveat=10)
    eq = ut.zhu(prob)
    assert tr.ok
    assert np.abs(tr.gram_H[-1] - eq.gram_H).max() < 1e-5
    assert np.abs(tr.gram_W[-1] - eq.gram_W).max() < 1e-5
    assert tr.loss[-1] == pytest.approx(eq.loss, rel=1e-10)
    assert np.abs(eq.gram_H).max() > 0.1  # a non-trivial target


@pytest.mark.parametrize(("K", "lam_W", "lam_H"), [(4, 0.3, 0.3), (3, 0.1, 1.5), (6, 0.2, 0.2)])
def test_flow_above_threshold_collapses_to_zero(K, lam_W, lam_H):
    prob = ut.UFM(ut.designs.factorial((K,)), dim=K, lam_W=lam_W, lam_H=lam_H)
    eq = ut.zhu(prob)
    assert eq.kind == "zero" and eq.stats["epsilon"] > 1.0 / K
    tr = ut.gradient_flow(prob, 1e4, init=ut.init.small(prob, 0.5, seed=0), saveat=10)
    assert tr.ok
    assert np.abs(tr.gram_H[-1]).max() < 1e-10 and np.abs(tr.gram_W[-1]).max() < 1e-10
    assert tr.loss[-1] == pytest.approx(np.log(K), rel=1e-10)


# -- exact ETF mode ------------------------------------------------------------------------------------
@pytest.mark.parametrize("K", [2, 3, 7])
@pytest.mark.parametrize("u0", [1e-3, 0.3, 2.0])
def test_etf_mode_time_matches_quadrature(K, u0):
    """t(u) = ∫_{u0}^{u} (e^v + K - 1)/(2v) dv, integrated numerically (independent of Ei)."""
    for u in [0.5 * u0, 1.5 * u0, 1.0, 5.0, 20.0, 40.0]:
        ref, _ = quad(lambda v: (np.exp(v) + K - 1) / (2 * v), u0, u, epsabs=0, epsrel=1e-13, limit=200)
        assert ut.etf_mode_time(u, K, u0) == pytest.approx(ref, rel=1e-10, abs=1e-14)
    assert ut.etf_mode_time(u0, K, u0) == 0.0


@settings(max_examples=budget(30))
@given(K=st.integers(2, 40), u0=st.floats(1e-4, 10.0), u_over=st.floats(1.0, 1e4))
def test_etf_mode_u_inverts_etf_mode_time(K, u0, u_over):
    """u up to 200 (t up to ~1e84, far past any run). Beyond u ≈ 460 (t ≈ 1e197) the damped Newton
    iteration in etf_mode_u stalls and, past expi overflow, returns NaN: out of scope here."""
    u = min(u0 * u_over, 200.0)
    t = ut.etf_mode_time(u, K, u0)
    assert t >= 0
    assert ut.etf_mode_u(t, K, u0) == pytest.approx(u, rel=1e-12)


@settings(max_examples=budget(30))
@given(K=st.integers(2, 40), u0=st.floats(1e-4, 10.0), log_t=st.floats(-6.0, 12.0))
def test_etf_mode_time_inverts_etf_mode_u(K, u0, log_t):
    """t -> u -> t within the round trip's conditioning. u carries a relative error of a few ulps, which
    t'(u) = (e^u + K - 1)/(2u) amplifies into t; t itself is a difference of Ei values and logs that
    cancel when u - u0 is tiny. A fixed relative bound fails there (K=19, u0=9, t=1e-3: u - u0 = 2e-6 and
    the round trip loses 1.5e-9 relative), so the bound is the sum of those absolute errors."""
    t = 10.0**log_t
    u = ut.etf_mode_u(t, K, u0)
    assert u >= u0
    eps = np.finfo(float).eps
    amplified = (np.exp(u) + K - 1) / (2 * u) * u  # |dt/du| · |u|
    cancelled = 0.5 * (abs(expi(u)) + abs(expi(u0)) + (K - 1) * (abs(np.log(u)) + abs(np.log(u0))))
    assert ut.etf_mode_time(u, K, u0) == pytest.approx(t, rel=8 * eps, abs=8 * eps * (amplified + cancelled))


def test_etf_mode_vectorised_and_validated():
    ts = np.array([0.0, 1.0, 10.0, 1e3, 1e6])
    us = ut.etf_mode_u(ts, 4, 0.01)
    assert us.shape == (5,) and us[0] == pytest.approx(0.01) and np.all(np.diff(us) > 0)
    np.testing.assert_allclose(ut.etf_mode_time(us, 4, 0.01), ts, rtol=1e-10, atol=1e-12)
    # late, the Ei asymptote t ≈ e^u/(2u) (1 + 1/u + 2/u²) gives u ≈ ln(2 t u) - ln(1 + 1/u + 2/u²)
    u_late = ut.etf_mode_u(1e12, 4, 0.01)
    assert u_late == pytest.approx(np.log(2e12 * u_late) - np.log1p(1 / u_late + 2 / u_late**2), rel=1e-4)
    with pytest.raises(ValueError, match="t must be"):
        ut.etf_mode_u(-1.0, 3, 0.1)
    with pytest.raises(ValueError, match="u0"):
        ut.etf_mode_u(1.0, 3, 0.0)
    with pytest.raises(ValueError, match="u must be"):
        ut.etf_mode_time(-0.5, 3, 0.1)
    with pytest.raises(ValueError, match="K"):
        ut.etf_mode_time(1.0, 1, 0.1)


@pytest.mark.parametrize(("K", "dim", "u0"), [(2, 2, 1e-3), (3, 3, 1e-2), (5, 7, 0.5)])
def test_aligned_flow_follows_the_exact_etf_mode(K, dim, u0):
    """The catalogue claim (ufmtheory.testing.claims "etf_mode_time"): from the aligned balanced init without
    ridge the flow's u(t) = tr(HᵀH)/(K-1) equals the inverse of t(u) = ½[(K-1) ln(u/u0) + Ei(u) - Ei(u0)]
    (root-found there, not etf_mode_u) to 1e-6 up to t = 1e6 (the late ln t regime, u ≈ 17), both Grams stay
    u(t) C_K and the loss is ln(1 + (K-1) e^{-u})."""
    res = claims.check("etf_mode_time", K=K, dim=dim, u0=u0, t1=1e6)
    assert res.ok, res.message


@pytest.mark.parametrize(("K", "lam"), [(3, 1e-2), (4, 3e-2), (5, 1e-3)])
def test_aligned_flow_with_ridge_follows_scalar_ode_to_fixed_point(K, lam):
    """Ridge λ on both blocks: du/dt = 2u[1/(e^u + K - 1) - λ] (integrated here independently), fixed point
    u* = ln(1/λ - K + 1)."""
    u0 = 0.05
    prob = ut.UFM(ut.designs.factorial((K,)), dim=K, lam_W=lam, lam_H=lam)
    t1 = 3e3
    ts = ut.log_grid(t1, 30)
    tr = ut.gradient_flow(prob, t1, init=ut.init.aligned(prob, u0), saveat=ts, rtol=1e-11, atol=1e-14)
    u_flow = np.trace(tr.gram_H, axis1=1, axis2=2) / (K - 1)
    ref = solve_ivp(
        lambda t, u: 2 * u * (1.0 / (np.exp(u) + K - 1) - lam),
        (0.0, t1),
        [u0],
        t_eval=ts,
        method="DOP853",
        rtol=1e-12,
        atol=1e-14,
    )
    np.testing.assert_allclose(u_flow, ref.y[0], rtol=1e-7)
    u_star = np.log(1.0 / lam - K + 1)
    assert u_flow[-1] == pytest.approx(u_star, rel=1e-8)
    np.testing.assert_allclose(tr.gram_W[-1], u_star * _C(K), atol=1e-7)


def test_zhu_and_end_state_on_a_million_contexts_without_dense_arrays():
    # K = 10^6 (factorial 1000×1000, Y = I): the minimiser from its scalars, written out here.
    design = ut.designs.factorial((1000, 1000))
    K, lam = 10**6, 1e-7
    prob = ut.ModifiedUFM(design, dim=K, alpha=1.0, beta=1.0, lam_W=lam, lam_H=lam)
    x = np.log(1.0 / lam - (K - 1))  # ε = sqrt(λ_W λ_H) = λ for n = 1
    loss = np.log1p((K - 1) * np.exp(-x)) + 0.5 * lam * 2 * x * (K - 1)  # both traces are x (K - 1)
    for eq in (ut.zhu(ut.UFM(design, K, lam_W=lam, lam_H=lam)), ut.end_state(prob)):
        assert eq.ok and eq.kind == "etf" and eq.gram_H is None and eq.gram_W is None
        assert eq.loss == pytest.approx(loss, rel=1e-12)
        assert eq.stats["gram_W_centred_coefficient"] == pytest.approx(x, rel=1e-12)


def test_zhu_scalars_agree_with_the_dense_closed_form():
    from ufmtheory.equilibria.closed_form import _zhu_scalars

    for sizes, lam_W, lam_H in (((2, 3), 1e-3, 2e-3), ((4,), 1e-2, 5e-3)):
        prob = ut.UFM(ut.designs.factorial(sizes), dim=8, lam_W=lam_W, lam_H=lam_H)
        dense = ut.zhu(prob)
        K = prob.design.m
        C = np.eye(K) - 1.0 / K
        small = _zhu_scalars(K, 1, lam_W, lam_H, dense.stats["epsilon"], dense.stats["x_star"])
        assert small.loss == pytest.approx(dense.loss, rel=1e-13)
        np.testing.assert_allclose(small.stats["gram_W_centred_coefficient"] * C, dense.gram_W, atol=1e-13)
        np.testing.assert_allclose(
            small.stats["class_mean_gram_centred_coefficient"] * C, dense.gram_H, atol=1e-13
        )


def test_end_state_keeps_zhus_message_above_the_materialise_limit():
    # K = 65² = 4225 > 4096: no K×K Gram; x* = ln(1/ε - (K - 1)) with ε = sqrt(λ_W λ_H) = 1e-5 (Theory §4.1).
    K, lam = 65 * 65, 1e-5
    eq = ut.end_state(ut.UFM(ut.designs.factorial((65, 65)), dim=K - 1, lam_W=lam, lam_H=lam))
    assert eq.ok and eq.gram_H is None and "coefficients" in eq.message
    assert eq.stats["objective_kind"] == "H"
    assert eq.stats["x_star"] == pytest.approx(np.log(1 / lam - (K - 1)), rel=1e-13)
