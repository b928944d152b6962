"""The standard UFM: loss and analytic gradient against an independent torch/autograd implementation,
a Taylor-remainder check, closed-form values, and input validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ufmtheory as ut

from helpers import budget, soft_distributions

# -- hypothesis strategies -------------------------------------------------------------------------
lams = st.one_of(st.just(0.0), st.floats(1e-4, 1.0))


@st.composite
def soft_designs(draw):
    """(design, Y, pi) for random soft labels with zeros, via from_distributions; Y and pi are computed here
    (not read back from the design) so the reference loss does not depend on the code under test."""
    m = draw(st.integers(1, 5))
    V = draw(st.integers(2, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    P = soft_distributions(rng, m, V, keep=0.6, boost=0.1)  # about 40% exact zeros
    if draw(st.booleans()):
        pi = rng.random(m) + 0.05
        pi /= pi.sum()
        design = ut.designs.from_distributions(P, pi=pi)
    else:
        pi = np.full(m, 1.0 / m)
        design = ut.designs.from_distributions(P)
    return design, P.T.copy(), pi


@st.composite
def factorial_design(draw):
    sizes = tuple(draw(st.lists(st.integers(2, 3), min_size=1, max_size=2)))
    K = int(np.prod(sizes))
    return ut.designs.factorial(sizes), np.eye(K), np.full(K, 1.0 / K)


@st.composite
def counts_design(draw):
    """Random integer counts (zeros allowed in a row, never a whole empty row): weights pi ∝ row totals."""
    m = draw(st.integers(1, 5))
    V = draw(st.integers(2, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    C = rng.integers(0, 6, size=(m, V)).astype(float)
    C[np.arange(m), rng.integers(0, V, m)] += 1
    totals = C.sum(axis=1)
    return ut.designs.from_counts(C), (C / totals[:, None]).T, totals / totals.sum()


any_design = st.one_of(soft_designs(), factorial_design(), counts_design())


def _random_params(design, dim, scale, seed):
    rng = np.random.default_rng(seed)
    return {
        "W": scale * rng.standard_normal((design.V, dim)),
        "H": scale * rng.standard_normal((dim, design.m)),
    }


# -- gradient vs autograd ----------------------------------------------------------------------------
@settings(max_examples=budget(30))
@given(
    case=any_design,
    dim=st.integers(1, 5),
    lam_W=lams,
    lam_H=lams,
    scale=st.sampled_from([0.05, 0.5, 2.0]),
    seed=st.integers(0, 10**6),
)
def test_loss_and_grad_match_torch_autograd(torch_ref, case, dim, lam_W, lam_H, scale, seed):
    design, Y, pi = case
    np.testing.assert_allclose(design.Y, Y, rtol=0, atol=1e-14)
    np.testing.assert_allclose(design.pi, pi, rtol=0, atol=1e-14)
    prob = ut.UFM(design, dim=dim, lam_W=lam_W, lam_H=lam_H)
    params = _random_params(design, dim, scale, seed)
    loss, grads = prob.loss_and_grad(params)
    ref_loss, ref_gW, ref_gH = torch_ref(Y, pi, params["W"], params["H"], lam_W, lam_H)
    assert loss == pytest.approx(ref_loss, rel=1e-12, abs=1e-14)
    gscale = max(1.0, np.abs(ref_gW).max(), np.abs(ref_gH).max())
    np.testing.assert_allclose(grads["W"], ref_gW, rtol=0, atol=1e-12 * gscale)
    np.testing.assert_allclose(grads["H"], ref_gH, rtol=0, atol=1e-12 * gscale)
    assert prob.loss(params) == loss
    # the flat interface the solvers use is the same gradient, packed W then H
    flat_loss, flat_grad = prob.flat_loss_and_grad(prob.pack(params))
    assert flat_loss == loss
    np.testing.assert_allclose(
        flat_grad, np.concatenate([ref_gW.ravel(), ref_gH.ravel()]), atol=1e-12 * gscale
    )


def test_large_logits_do_not_overflow(torch_ref):
    """Logits of order 1e3 (far past exp overflow at ~710): log-sum-exp keeps loss and gradient finite and
    equal to the reference."""
    design = ut.designs.factorial((2, 2))
    prob = ut.UFM(design, dim=3, lam_W=1e-3, lam_H=0.0)
    params = _random_params(design, 3, 30.0, seed=1)
    loss, grads = prob.loss_and_grad(params)
    assert np.abs(params["W"] @ params["H"]).max() > 800
    ref_loss, ref_gW, ref_gH = torch_ref(np.eye(4), np.full(4, 0.25), params["W"], params["H"], 1e-3, 0.0)
    assert np.isfinite(loss) and loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(grads["W"], ref_gW, atol=1e-9)
    np.testing.assert_allclose(grads["H"], ref_gH, atol=1e-9)


# -- Taylor remainder --------------------------------------------------------------------------------
def _taylor_slope(f, theta, g, v, hs):
    """Slope of log|f(θ+hv) - f(θ) - h<g, v>| against log h: 2 for the true gradient, 1 for a wrong one."""
    f0 = f(theta)
    rem = np.array([abs(f(theta + h * v) - f0 - h * float(g @ v)) for h in hs])
    return np.polyfit(np.log(hs), np.log(rem), 1)[0]


@pytest.mark.parametrize(
    "design",
    [
        ut.designs.factorial((2, 3)),
        ut.designs.from_counts([[3, 0, 1, 0], [0, 2, 2, 1], [5, 1, 0, 0]]),
        ut.designs.from_distributions([[0.5, 0.5, 0.0], [0.0, 0.1, 0.9]], pi=[0.3, 0.7]),
    ],
    ids=["factorial", "counts", "soft"],
)
def test_taylor_remainder_is_second_order(design):
    prob = ut.UFM(design, dim=4, lam_W=0.03, lam_H=0.2)
    rng = np.random.default_rng(0)
    theta = prob.pack(_random_params(design, 4, 0.7, seed=2))
    v = rng.standard_normal(theta.size)
    v /= np.linalg.norm(v)
    loss, g = prob.flat_loss_and_grad(theta)
    hs = np.logspace(-4, -1, 7)
    slope = _taylor_slope(lambda th: prob.flat_loss_and_grad(th)[0], theta, g, v, hs)
    assert 1.9 < slope < 2.1, slope
    # the same check rejects a gradient with a small error (here: the ridge on H dropped)
    blocks = prob.unpack(g.copy())
    blocks["H"] -= 0.2 * prob.unpack(theta)["H"]
    bad = prob.pack_unchecked(blocks)
    bad_slope = _taylor_slope(lambda th: prob.flat_loss_and_grad(th)[0], theta, bad, v, hs)
    assert bad_slope < 1.2, bad_slope


# -- closed-form values ------------------------------------------------------------------------------
@settings(max_examples=budget(20))
@given(case=any_design, dim=st.integers(1, 4), lam_W=lams, lam_H=lams)
def test_loss_at_origin_is_log_V_and_origin_is_critical_without_bias(case, dim, lam_W, lam_H):
    """At W = H = 0 every softmax is uniform: CE = ln V for any label distribution; ∇ = 0 (G Hᵀ = WᵀG = 0)."""
    design, _, _ = case
    prob = ut.UFM(design, dim=dim, lam_W=lam_W, lam_H=lam_H)
    zero = {"W": np.zeros((design.V, dim)), "H": np.zeros((dim, design.m))}
    loss, grads = prob.loss_and_grad(zero)
    assert loss == pytest.approx(np.log(design.V), rel=1e-14)
    assert not grads["W"].any() and not grads["H"].any()


def test_one_hot_loss_closed_form_on_scaled_simplex():
    """Logits x·C_K on a one-hot K-class design: CE = ln(1 + (K-1) e^{-x}) exactly."""
    K, x = 5, 2.7
    C = np.eye(K) - 1.0 / K
    evals, evecs = np.linalg.eigh(x * C)
    root = evecs * np.sqrt(np.clip(evals, 0, None))  # W = H^T, W H = x C
    prob = ut.UFM(ut.designs.factorial((K,)), dim=K, lam_W=0.1, lam_H=0.3)
    params = {"W": root, "H": root.T.copy()}
    expected = np.log1p((K - 1) * np.exp(-x)) + 0.5 * (0.1 + 0.3) * x * (K - 1)
    assert prob.loss(params) == pytest.approx(expected, rel=1e-13)
    gH, gW = prob.grams(params)
    np.testing.assert_allclose(gH, x * C, atol=1e-13)
    np.testing.assert_allclose(gW, x * C, atol=1e-13)
    np.testing.assert_allclose(prob.logits(params), x * C, atol=1e-13)


# -- packing, shapes ---------------------------------------------------------------------------------
def test_pack_unpack_roundtrip_and_shapes():
    design = ut.designs.from_distributions(np.full((3, 5), 0.2))
    prob = ut.UFM(design, dim=2)
    assert prob.param_shapes == {"W": (5, 2), "H": (2, 3)}
    assert prob.n_params == 16
    assert prob.grad_flops() == 6.0 * 5 * 2 * 3
    assert not prob.is_regularised and ut.UFM(design, dim=2, lam_H=1e-3).is_regularised
    params = _random_params(design, 2, 1.0, seed=0)
    theta = prob.pack(params)
    assert theta.shape == (16,)
    np.testing.assert_array_equal(theta[:10], params["W"].ravel())
    back = prob.unpack(theta)
    np.testing.assert_array_equal(back["W"], params["W"])
    np.testing.assert_array_equal(back["H"], params["H"])
    with pytest.raises(ValueError, match="theta"):
        prob.unpack(np.zeros(15))
    with pytest.raises(ValueError, match="shape"):
        prob.pack({"W": np.zeros((5, 3)), "H": np.zeros((2, 3))})
    with pytest.raises(ValueError, match="H"):
        prob.pack({"W": np.zeros((5, 2))})
    with pytest.raises(ValueError, match="NaN"):
        prob.pack({"W": np.full((5, 2), np.nan), "H": np.zeros((2, 3))})
    desc = prob.describe()
    assert desc["model"] == "UFM" and desc["dim"] == 2 and desc["design"]["V"] == 5


# -- validation --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["lam_W", "lam_H"])
@pytest.mark.parametrize("value", [-1e-3, float("nan"), float("inf")])
def test_bad_lambda_raises_naming_it(name, value):
    with pytest.raises(ValueError, match=name):
        ut.UFM(ut.designs.factorial((3,)), dim=3, **{name: value})


def test_bad_dim_raises():
    d = ut.designs.factorial((3,))
    for bad in (0, -2):
        with pytest.raises(ValueError, match="dim"):
            ut.UFM(d, dim=bad)
    for bad in (2.0, 2.5, "3", True):
        with pytest.raises(TypeError, match="dim"):
            ut.UFM(d, dim=bad)
    with pytest.raises(TypeError, match="lam_W"):
        ut.UFM(d, dim=3, lam_W="0.1")
    with pytest.raises(TypeError, match="design"):
        ut.UFM(np.eye(3), dim=3)


def test_problem_is_frozen():
    prob = ut.UFM(ut.designs.factorial((3,)), dim=3)
    with pytest.raises(AttributeError):
        prob.dim = 4


# -- initialisers (ufmtheory.solvers.init) ------------------------------------------------------------------
def test_small_init_is_seeded_gaussian():
    prob = ut.UFM(ut.designs.factorial((4, 5)), dim=50)
    a = ut.init.small(prob, 0.3, seed=11)
    b = ut.init.small(prob, 0.3, seed=np.random.default_rng(11))
    c = ut.init.small(prob, 0.3, seed=12)
    assert a["W"].shape == (20, 50) and a["H"].shape == (50, 20)
    np.testing.assert_array_equal(a["W"], b["W"])
    assert not np.array_equal(a["W"], c["W"])
    entries = np.concatenate([a["W"].ravel(), a["H"].ravel()])  # 2000 N(0, 0.09) draws
    assert abs(entries.mean()) < 4 * 0.3 / np.sqrt(2000)
    assert entries.std() == pytest.approx(0.3, rel=0.08)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="scale"):
            ut.init.small(prob, bad)


@pytest.mark.parametrize(("K", "dim", "scale"), [(2, 2, 0.1), (3, 3, 0.5), (5, 4, 2.0), (4, 9, 1e-3)])
def test_aligned_init_is_the_etf_mode(K, dim, scale):
    """One-hot, one context per class: W Wᵀ = HᵀH = W H = scale · C_K and WᵀW = HHᵀ (balanced)."""
    prob = ut.UFM(ut.designs.factorial((K,)), dim=dim)
    p = ut.init.aligned(prob, scale)
    W, H = p["W"], p["H"]
    C = np.eye(K) - 1.0 / K
    for M in (W @ W.T, H.T @ H, W @ H):
        np.testing.assert_allclose(M, scale * C, atol=1e-14 + 1e-13 * scale)
    np.testing.assert_allclose(W.T @ W, H @ H.T, atol=1e-14 + 1e-13 * scale)


@settings(max_examples=budget(20))
@given(case=any_design, extra=st.integers(0, 2), scale=st.floats(1e-3, 3.0))
def test_aligned_init_on_general_designs(case, extra, scale):
    """Balanced, and the logits are scale/s_max times the centred labels (Y - 11ᵀ/V) diag(π) (computed
    here from Y and π), since every singular mode of rank r is kept."""
    design, Y, pi = case
    A = (Y - 1.0 / Y.shape[0]) * pi
    s = np.linalg.svd(A, compute_uv=False)
    rank = int(np.sum(s > 1e-10 * s[0])) if s[0] > 1e-14 else 0
    if rank == 0:
        with pytest.raises(ValueError, match="centred label matrix is zero"):
            ut.init.aligned(ut.UFM(design, dim=1), scale)
        return
    prob = ut.UFM(design, dim=rank + extra)
    p = ut.init.aligned(prob, scale)
    W, H = p["W"], p["H"]
    np.testing.assert_allclose(W.T @ W, H @ H.T, atol=1e-12 * max(1.0, scale))
    np.testing.assert_allclose(W @ H, scale / s[0] * A, atol=1e-12 * max(1.0, scale))
    if rank > 1:
        with pytest.raises(ValueError, match="dim"):
            ut.init.aligned(ut.UFM(design, dim=rank - 1), scale)


def test_aligned_init_validation():
    prob = ut.UFM(ut.designs.factorial((3,)), dim=3)
    with pytest.raises(ValueError, match="scale"):
        ut.init.aligned(prob, 0.0)
    uniform = ut.UFM(ut.designs.from_distributions(np.full((2, 3), 1 / 3)), dim=2)
    with pytest.raises(ValueError, match="centred label matrix is zero"):
        ut.init.aligned(uniform, 0.1)


def test_aligned_init_with_blocks_W_E_needs_the_attribute_matrix():
    class NoAttributes:  # the (W, E) blocks of a modified UFM, without its X_tilde
        design = ut.designs.factorial((2, 2))
        dim = 4
        param_shapes = {"W": (4, 4), "E": (4, 8)}

    with pytest.raises(TypeError, match="X_tilde"):
        ut.init.aligned(NoAttributes(), 0.1)
