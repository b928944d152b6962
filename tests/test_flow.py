"""Solvers: symmetries of the gradient flow (rotation invariance, permutation equivariance), its conserved
quantity, monotone loss, gradient descent's first-order convergence to the flow, long unregularised runs,
and input validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ufmtheory as ut
from ufmtheory.designs import Design
from ufmtheory.testing import claims

from helpers import budget, soft_design

TIGHT = dict(rtol=1e-11, atol=1e-13)


def _rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


# -- symmetries ---------------------------------------------------------------------------------------
@settings(max_examples=budget(12))
@given(
    kind=st.sampled_from(["factorial", "soft"]),
    dim=st.integers(2, 6),
    lam=st.sampled_from([(0.0, 0.0), (1e-2, 1e-2), (3e-3, 2e-2)]),
    seed=st.integers(0, 10**6),
)
def test_gram_trajectories_are_rotation_invariant(orthogonal, kind, dim, lam, seed):
    """f(W Q, Qᵀ H) = f(W, H) for orthogonal Q, and the flow commutes with Q: Grams agree along the way."""
    design = ut.designs.factorial((2, 3)) if kind == "factorial" else soft_design(4, 5, seed)
    prob = ut.UFM(design, dim=dim, lam_W=lam[0], lam_H=lam[1])
    init = ut.init.small(prob, 0.3, seed=seed)
    Q = orthogonal(dim, np.random.default_rng(seed + 1))
    rot = {"W": init["W"] @ Q, "H": Q.T @ init["H"]}
    a = ut.gradient_flow(prob, 300.0, init=init, saveat=15, **TIGHT)
    b = ut.gradient_flow(prob, 300.0, init=rot, saveat=15, **TIGHT)
    assert a.ok and b.ok
    assert _rel(b.gram_H, a.gram_H) < 1e-8
    assert _rel(b.gram_W, a.gram_W) < 1e-8
    np.testing.assert_allclose(b.loss, a.loss, rtol=1e-8)
    # The run did move (else invariance would be trivial). A fixed fraction of the start's largest entry is
    # not a safe bar: init.small's diagonal entries vary with the seed (seed 1215, dim 5: start 1.44, moved
    # by 0.67); a tenth of the larger end point separates a moving run from a frozen one with a wide margin.
    scale = max(np.abs(a.gram_H[0]).max(), np.abs(a.gram_H[-1]).max())
    assert np.abs(a.gram_H[-1] - a.gram_H[0]).max() > 0.1 * scale


def test_gram_trajectories_are_permutation_equivariant():
    """Relabel contexts by σ (columns of Y, X, π, H) and tokens by τ (rows of Y, W): the Grams of the
    permuted run are the permuted Grams, HᵀH → (HᵀH)[σ][:, σ], W Wᵀ → (W Wᵀ)[τ][:, τ]."""
    rng = np.random.default_rng(7)
    design = soft_design(5, 6, seed=3)
    sigma, tau = rng.permutation(5), rng.permutation(6)
    perm = Design(Y=design.Y[tau][:, sigma], X=design.X[:, sigma], pi=design.pi[sigma])
    prob = ut.UFM(design, dim=4, lam_W=2e-3, lam_H=5e-3)
    pprob = ut.UFM(perm, dim=4, lam_W=2e-3, lam_H=5e-3)
    init = ut.init.small(prob, 0.2, seed=1)
    pinit = {"W": init["W"][tau], "H": init["H"][:, sigma]}
    a = ut.gradient_flow(prob, 1e3, init=init, saveat=12, **TIGHT)
    b = ut.gradient_flow(pprob, 1e3, init=pinit, saveat=12, **TIGHT)
    assert _rel(b.gram_H, a.gram_H[:, sigma][:, :, sigma]) < 1e-8
    assert _rel(b.gram_W, a.gram_W[:, tau][:, :, tau]) < 1e-8
    np.testing.assert_allclose(b.loss, a.loss, rtol=1e-8)
    # and the permutation is not a symmetry of the unpermuted problem (the check can fail)
    assert _rel(a.gram_H[:, sigma][:, :, sigma], a.gram_H) > 1e-2


# -- conservation law -----------------------------------------------------------------------------------
def _gram_terms(tr):
    W, H = tr.params["W"], tr.params["H"]
    WtW = np.einsum("tvi,tvj->tij", W, W)
    HHt = np.einsum("tim,tjm->tij", H, H)
    return WtW, HHt


@pytest.mark.parametrize(
    "kw",
    [
        {"sizes": (2, 3), "dim": 5, "scale": 0.3, "t1": 1e5},
        {"sizes": (4,), "dim": 6, "scale": 1e-2, "t1": 1e6},
        # soft labels make the late flow stiff (finite log-odds in the support): "auto" picks LSODA
        {"counts": ((3, 1, 0, 0), (0, 2, 2, 0), (1, 0, 0, 5)), "dim": 3, "scale": 0.5, "t1": 1e7},
    ],
    ids=["factorial-2x3", "one-hot-K4-small-init", "counts"],
)
def test_unregularised_flow_conserves_WtW_minus_HHt(kw):
    """The catalogue claim (ufmtheory.testing.claims "conservation"): without ridge D = WᵀW - HHᵀ is
    conserved, drift ‖D(t) - D(0)‖_F / (‖WᵀW(t)‖_F + ‖HHᵀ(t)‖_F) < 1e-6 (relative to the two terms: the
    integrator's error in each is relative to their size, and ‖D(0)‖ may be ~0 for near-balanced inits)."""
    res = claims.check("conservation", seed=4, **kw)
    assert res.ok, res.message


def test_equal_ridge_decays_imbalance_exponentially():
    """With λ_W = λ_H = λ, dD/dt = -2λD exactly, so D(t) = e^{-2λt} D(0) (closed form); with unequal
    ridges this identity fails (control)."""
    res = claims.check("conservation", sizes=(3,), dim=4, scale=0.8, lam_W=0.05, lam_H=0.05, t1=40.0, seed=2)
    assert res.ok, res.message
    design = ut.designs.factorial((3,))
    prob = ut.UFM(design, dim=4, lam_W=0.05, lam_H=0.05)
    ts = np.array([0.0, 1.0, 5.0, 20.0, 40.0])
    other = ut.UFM(design, dim=4, lam_W=0.01, lam_H=0.09)
    tr2 = ut.gradient_flow(other, 40.0, init=ut.init.small(prob, 0.8, seed=2), saveat=ts, save_params=True)
    W2, H2 = _gram_terms(tr2)
    D2 = W2 - H2
    assert np.linalg.norm(D2[-1] - np.exp(-0.1 * 40) * D2[0]) > 1e-3 * np.linalg.norm(D2[0])


# -- monotone loss -------------------------------------------------------------------------------------
COUNTS = ut.designs.from_counts([[3, 1, 0, 0], [0, 2, 2, 0], [1, 0, 0, 5]])


@pytest.mark.parametrize(
    ("design", "lam", "t1", "method"),
    [
        (ut.designs.factorial((3, 3)), (1e-3, 1e-3), 1e5, "DOP853"),
        (ut.designs.factorial((4,)), (5e-3, 2e-2), 1e5, "DOP853"),
        (ut.designs.factorial((2, 3)), (0.0, 0.0), 1e7, "DOP853"),
        (COUNTS, (0.0, 0.0), 1e3, "DOP853"),
        (COUNTS, (0.0, 0.0), 1e6, "LSODA"),
        (COUNTS, (1e-3, 0.0), 1e5, "LSODA"),
    ],
    ids=["reg-3x3", "reg-K4-unequal", "unreg-2x3", "unreg-soft", "unreg-soft-long", "ridge-W-only-soft"],
)
def test_loss_never_increases_along_the_flow(design, lam, t1, method):
    prob = ut.UFM(design, dim=design.V, lam_W=lam[0], lam_H=lam[1])
    tr = ut.gradient_flow(prob, t1, init=ut.init.small(prob, 1e-2, seed=0), saveat=150, method=method)
    assert tr.ok
    inc = np.diff(tr.loss) / np.abs(tr.loss[:-1])
    assert inc.max() <= 1e-12, inc.max()
    assert tr.loss[-1] < tr.loss[0] - 0.1  # and it really decreased


def test_gradient_descent_small_lr_monotone():
    prob = ut.UFM(ut.designs.factorial((2, 2)), dim=3, lam_W=1e-2, lam_H=1e-2)
    tr = ut.gradient_descent(prob, 0.2, 3000, init=ut.init.small(prob, 0.1, seed=0), saveat=60)
    assert tr.ok and np.all(np.diff(tr.loss) <= 1e-15)


# -- gradient descent -> gradient flow ---------------------------------------------------------------
@pytest.mark.parametrize(
    "kw",
    [
        {"sizes": (2, 3), "lam": 1e-2, "T": 20.0},
        {"counts": ((6, 4, 0, 0), (0, 5, 5, 0), (1, 0, 0, 9)), "lam": 0.0, "T": 30.0},
    ],
    ids=["factorial-ridge", "soft-unreg"],
)
def test_gradient_descent_converges_to_flow_at_first_order(kw):
    """The catalogue claim (ufmtheory.testing.claims "gd_first_order"): ‖θ_GD(T) - θ_GF(T)‖ = O(lr), the
    slope of log error on log lr (lr = 0.05 ... 0.0125) is 1 ± 0.1."""
    res = claims.check("gd_first_order", dim=4, scale=0.4, seed=3, lr_max=0.4, **kw)
    assert res.ok, res.message


def test_gradient_descent_first_step_is_exact(torch_ref):
    """θ_1 = θ_0 - lr ∇f(θ_0), with ∇f from the independent torch reference; ts = lr × step."""
    design = ut.designs.from_counts([[3, 1, 0], [0, 2, 2]])
    prob = ut.UFM(design, dim=2, lam_W=0.1, lam_H=0.02)
    init = ut.init.small(prob, 0.5, seed=9)
    gd = ut.gradient_descent(prob, 0.3, 2, init=init, saveat=np.array([0, 1, 2]), save_params=True)
    Y = np.array([[0.75, 0.25, 0.0], [0.0, 0.5, 0.5]]).T
    pi = np.array([4.0, 4.0]) / 8
    _, gW, gH = torch_ref(Y, pi, init["W"], init["H"], 0.1, 0.02)
    np.testing.assert_allclose(gd.params["W"][1], init["W"] - 0.3 * gW, atol=1e-14)
    np.testing.assert_allclose(gd.params["H"][1], init["H"] - 0.3 * gH, atol=1e-14)
    np.testing.assert_allclose(gd.ts, [0.0, 0.3, 0.6])
    assert gd.method == "gd" and gd.stats["steps_saved"] == [0, 1, 2]
    np.testing.assert_array_equal(gd.params["W"][0], init["W"])  # the init dict is not modified


def test_gradient_descent_divergence_reports_failure():
    prob = ut.UFM(ut.designs.factorial((3,)), dim=3, lam_W=1.0, lam_H=1.0)
    with np.errstate(all="ignore"):
        tr = ut.gradient_descent(prob, 1e3, 500, init=ut.init.small(prob, 1.0), saveat=50)
    assert tr.status == "nonfinite" and "step" in tr.message
    assert tr.ts[-1] < 500 * 1e3 and np.all(np.isfinite(tr.ts))


def test_gradient_descent_default_grid():
    prob = ut.UFM(ut.designs.factorial((2,)), dim=2)
    tr = ut.gradient_descent(prob, 0.5, 1000, init=ut.init.small(prob, 0.1))
    steps = np.array(tr.stats["steps_saved"])
    assert steps[0] == 0 and steps[-1] == 1000 and np.all(np.diff(steps) > 0)
    np.testing.assert_allclose(tr.ts, 0.5 * steps)


# -- long unregularised run --------------------------------------------------------------------------
def test_unregularised_flow_to_1e8_grows_like_log_t():
    """No ridge, K = 4 one-hot: the flow runs to t = 1e8 (logits ~ ln t, loss ~ 1/t) with status ok.

    Closed-form reference (exact ETF mode, docs: Theory §4.3): t ≈ ½ Ei(u) ≈ e^u/(2u), so u ≈ ln t + ln(2u):
    u/ln t ∈ (1, 2) late, du/d ln t = 1/(1 - 1/u) ≈ 1.05, and loss ≈ (K-1) e^{-u} ≈ (K-1)/(2 u t).
    From a random init the direction approaches the ETF only slowly, so the bounds are loose.
    """
    K = 4
    prob = ut.UFM(ut.designs.factorial((K,)), dim=K)
    tr = ut.gradient_flow(
        prob, 1e8, init=ut.init.small(prob, 1e-2, seed=0), saveat=ut.log_grid(1e8, 33), save_params=True
    )
    assert tr.ok and tr.ts[-1] == pytest.approx(1e8)
    assert np.all(np.isfinite(tr.gram_H)) and np.all(np.isfinite(tr.gram_W)) and np.all(np.isfinite(tr.loss))
    late = tr.ts >= 1e4
    lnt = np.log(tr.ts[late])
    u = np.trace(tr.gram_H[late], axis1=1, axis2=2) / (K - 1)
    assert np.all((u > lnt) & (u < 2 * lnt))
    # the minimum logit gap (true logit minus the largest other) from the saved parameters
    L = tr.params["W"][late] @ tr.params["H"][late]
    true = np.einsum("tkk->tk", L)
    others = np.where(np.eye(K, dtype=bool), -np.inf, L).max(axis=1)
    gap = (true - others).min(axis=1)
    slope = np.polyfit(lnt[lnt > np.log(1e6)], gap[lnt > np.log(1e6)], 1)[0]
    assert 0.9 < slope < 1.25, slope
    ratio = tr.loss[late][-1] * tr.ts[-1] * 2 * u[-1] / (K - 1)
    assert 0.8 < ratio < 1.3, ratio
    assert tr.stats["n_evals"] < 20_000  # log-time integration: cost grows with ln t, not t


def test_default_flow_cost_grows_slowly_with_t1_on_soft_labels():
    """With soft labels the late flow is stiff (in-support logits settle at finite log-odds, curvature O(1)):
    an explicit method needs steps ∝ t even in log-time. The default ("auto" -> LSODA on small problems)
    must keep the cost growing slowly with t1; DOP853 is the control that shows the stiffness is real."""
    prob = ut.UFM(COUNTS, dim=4)
    init = ut.init.small(prob, 1e-2, seed=0)
    short = ut.gradient_flow(prob, 1e3, init=init, saveat=5)
    long = ut.gradient_flow(prob, 1e4, init=init, saveat=5)
    assert long.stats["n_evals"] < 2 * short.stats["n_evals"]
    assert long.method == "LSODA"
    explicit_short = ut.gradient_flow(prob, 1e3, init=init, saveat=5, method="DOP853")
    explicit_long = ut.gradient_flow(prob, 1e4, init=init, saveat=5, method="DOP853")
    assert explicit_long.stats["n_evals"] > 4 * explicit_short.stats["n_evals"]


def test_log_time_and_linear_time_agree():
    prob = ut.UFM(ut.designs.factorial((2, 2)), dim=3, lam_W=1e-3, lam_H=4e-3)
    init = ut.init.small(prob, 0.1, seed=5)
    a = ut.gradient_flow(prob, 200.0, init=init, saveat=10, **TIGHT)
    b = ut.gradient_flow(prob, 200.0, init=init, saveat=10, log_time=False, **TIGHT)
    np.testing.assert_allclose(a.ts, b.ts)
    assert _rel(a.gram_H, b.gram_H) < 1e-8 and _rel(a.gram_W, b.gram_W) < 1e-8


@pytest.mark.parametrize("method", ["RK45", "RK23", "LSODA", "BDF", "Radau"])
def test_all_methods_agree_with_dop853(method):
    prob = ut.UFM(ut.designs.factorial((3,)), dim=2, lam_W=1e-2, lam_H=1e-2)
    init = ut.init.small(prob, 0.3, seed=0)
    ref = ut.gradient_flow(prob, 100.0, init=init, saveat=5, **TIGHT)
    tr = ut.gradient_flow(prob, 100.0, init=init, saveat=5, method=method, rtol=1e-9, atol=1e-11)
    assert tr.ok and tr.method == method
    assert _rel(tr.gram_H, ref.gram_H) < 1e-5


# -- results and failures ------------------------------------------------------------------------------
def test_flow_result_fields_and_default_grid():
    prob = ut.UFM(ut.designs.factorial((3,)), dim=3, lam_W=1e-2, lam_H=1e-2)
    init = ut.init.small(prob, 0.1, seed=0)
    tr = ut.gradient_flow(prob, 10.0, init=init)
    np.testing.assert_allclose(tr.ts, ut.log_grid(10.0), rtol=1e-15)
    assert tr.time_unit == "gf" and tr.method == "LSODA" and tr.params is None
    assert tr.meta == prob.describe() and tr.stats["saved"] == len(tr)
    H0 = init["H"]
    np.testing.assert_allclose(tr.gram_H[0], H0.T @ H0, rtol=1e-15)
    # flat init gives the same run
    flat = ut.gradient_flow(prob, 10.0, init=prob.pack(init))
    np.testing.assert_array_equal(flat.gram_H, tr.gram_H)
    # default init is small(scale=1e-3, seed=0)
    dflt = ut.gradient_flow(prob, 10.0, saveat=[0.0, 10.0])
    H_default = ut.init.small(prob, 1e-3, seed=0)["H"]
    np.testing.assert_allclose(dflt.gram_H[0], H_default.T @ H_default)


def test_max_evals_stops_with_max_evals_status():
    prob = ut.UFM(ut.designs.factorial((3,)), dim=3)
    tr = ut.gradient_flow(prob, 1e6, init=ut.init.small(prob, 0.1), max_evals=50)
    assert tr.status == "max_evals" and "max_evals" in tr.message
    assert len(tr) >= 1 and tr.gram_H.shape[1:] == (3, 3)


# -- validation --------------------------------------------------------------------------------------
def test_flow_bad_input_raises_naming_the_argument():
    prob = ut.UFM(ut.designs.factorial((3,)), dim=3)
    good = ut.init.small(prob, 0.1)
    nan_init = {"W": good["W"].copy(), "H": good["H"].copy()}
    nan_init["H"][1, 2] = np.nan
    cases = [
        (dict(t1=-1.0), "t1"),
        (dict(t1=0.0), "t1"),
        (dict(t1=float("nan")), "t1"),
        (dict(t1=float("inf")), "t1"),
        (dict(method="euler"), "method"),
        (dict(rtol=0.0), "rtol"),
        (dict(atol=-1e-3), "atol"),
        (dict(saveat=[0.0, 2.0, 1.0]), "saveat"),
        (dict(saveat=[0.0, 20.0]), "saveat"),
        (dict(saveat=[-1.0, 5.0]), "saveat"),
        (dict(saveat=[[0.0, 1.0]]), "saveat"),
        (dict(saveat=[]), "saveat"),
        (dict(saveat=[0.0, np.nan]), "saveat"),
        (dict(saveat=1), "saveat"),
        (dict(init=nan_init), "init"),
        (dict(init=np.full(prob.n_params, np.nan)), "init"),
        (dict(init=np.zeros(prob.n_params + 1)), "init"),
        (dict(init={"W": good["W"], "H": good["H"][:2]}), "init"),
    ]
    for override, name in cases:
        kwargs = {"t1": 10.0, "init": good, **override}
        t1 = kwargs.pop("t1")
        with pytest.raises(ValueError, match=name):
            ut.gradient_flow(prob, t1, **kwargs)


def test_gradient_descent_bad_input_raises_naming_the_argument():
    prob = ut.UFM(ut.designs.factorial((3,)), dim=3)
    good = ut.init.small(prob, 0.1)
    cases = [
        (dict(lr=0.0), "lr"),
        (dict(lr=-0.1), "lr"),
        (dict(lr=float("nan")), "lr"),
        (dict(steps=0), "steps"),
        (dict(steps=2.5), "steps"),
        (dict(saveat=np.array([0.0, 1.0])), "saveat"),
        (dict(saveat=np.array([0, 3, 2])), "saveat"),
        (dict(saveat=np.array([0, 11])), "saveat"),
        (dict(saveat=0), "saveat"),
        (dict(saveat=-3), "saveat"),
        (dict(init=np.full(prob.n_params, np.nan)), "init"),
    ]
    for override, name in cases:
        kwargs = {"lr": 0.1, "steps": 10, "init": good, **override}
        with pytest.raises((ValueError, TypeError), match=name):
            ut.gradient_descent(prob, kwargs.pop("lr"), kwargs.pop("steps"), **kwargs)


# -- the same three facts checked directly here, beside the catalogue claims ---------------------------
@pytest.mark.parametrize(
    ("design", "dim", "scale", "t1"),
    [
        (ut.designs.factorial((2, 3)), 5, 0.3, 1e5),
        (ut.designs.from_counts([[3, 1, 0, 0], [0, 2, 2, 0], [1, 0, 0, 5]]), 3, 0.5, 1e7),
    ],
    ids=["factorial-2x3", "counts"],
)
def test_conservation_direct(design, dim, scale, t1):
    """D = WᵀW - HHᵀ stays put while both terms grow (drift relative to the terms, and to D(0))."""
    prob = ut.UFM(design, dim=dim)
    tr = ut.gradient_flow(
        prob, t1, init=ut.init.small(prob, scale, seed=4), saveat=30, save_params=True, rtol=1e-10, atol=1e-12
    )
    assert tr.ok
    WtW, HHt = _gram_terms(tr)
    D = WtW - HHt
    drift = np.linalg.norm(D - D[0], axis=(1, 2)) / (
        np.linalg.norm(WtW, axis=(1, 2)) + np.linalg.norm(HHt, axis=(1, 2))
    )
    assert drift.max() < 1e-6, drift.max()
    assert np.trace(WtW[-1]) > 5 * np.trace(WtW[0])  # the terms grew a lot while D stayed put
    if np.linalg.norm(D[0]) > 1e-2:
        assert np.linalg.norm(D[-1] - D[0]) / np.linalg.norm(D[0]) < 1e-6


def test_equal_ridge_decay_direct():
    """D(t) = e^{-2λt} D(0) entry by entry (closed form), at the tight tolerance."""
    prob = ut.UFM(ut.designs.factorial((3,)), dim=4, lam_W=0.05, lam_H=0.05)
    ts = np.array([0.0, 1.0, 5.0, 20.0, 40.0])
    tr = ut.gradient_flow(
        prob, 40.0, init=ut.init.small(prob, 0.8, seed=2), saveat=ts, save_params=True, **TIGHT
    )
    WtW, HHt = _gram_terms(tr)
    D = WtW - HHt
    for i, t in enumerate(ts):
        np.testing.assert_allclose(D[i], np.exp(-0.1 * t) * D[0], atol=1e-9 * np.linalg.norm(D[0]))


def test_gradient_descent_first_order_direct():
    """‖θ_GD(T) - θ_GF(T)‖ = O(lr): regressed slope in [0.9, 1.1], and small at the smallest lr."""
    prob = ut.UFM(ut.designs.factorial((2, 3)), dim=4, lam_W=1e-2, lam_H=1e-2)
    T = 20.0
    init = ut.init.small(prob, 0.4, seed=3)
    flow = ut.gradient_flow(prob, T, init=init, saveat=np.array([0.0, T]), save_params=True, **TIGHT)
    target = prob.pack({k: v[-1] for k, v in flow.params.items()})
    lrs = np.array([0.4, 0.2, 0.1, 0.05])
    errs = []
    for lr in lrs:
        steps = int(round(T / lr))
        gd = ut.gradient_descent(
            prob, float(lr), steps, init=init, saveat=np.array([0, steps]), save_params=True
        )
        assert gd.ok and gd.ts[-1] == pytest.approx(T)
        errs.append(np.abs(prob.pack({k: v[-1] for k, v in gd.params.items()}) - target).max())
    slope = np.polyfit(np.log(lrs), np.log(errs), 1)[0]
    assert 0.9 <= slope <= 1.1, (slope, errs)
    assert errs[-1] < 1e-2 * np.abs(target).max()


def test_normalised_ridge_flow_that_stops_says_why():
    # The raw scale shrinks like e^{-λt} and the direction's rate grows like e^{2λt}: with a small evaluation
    # cap the stop comes early, and the message must name the mechanism rather than only the cap.
    prob = ut.ModifiedUFM(ut.designs.factorial((2, 2)), dim=4, ridge="E", lam_E=1e-2, normalize=2.0)
    traj = ut.gradient_flow(prob, 1e5, max_evals=300)
    assert traj.status == "max_evals"
    assert "ridge on E" in traj.message and "e^(2λt)" in traj.message and "(r/n)² = " in traj.message
    plain = ut.gradient_flow(ut.UFM(ut.designs.factorial((2, 2)), dim=4, lam_W=1e-2), 1e5, max_evals=30)
    assert plain.status == "max_evals" and "ridge on" not in plain.message
