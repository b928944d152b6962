"""The exact Gram flow (``gradient_flow(method="gram")``, ``ufmtheory.solvers.gram_flow``): its right-hand
side against the time derivative of the Grams along the parameter flow, its analytic Jacobian against
central differences, whole trajectories against the parameter flow, conservation laws, the "auto" rule and
the refusals (normalised features, ``save_params``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ufmtheory as ut
from ufmtheory.solvers import gram_flow as gf
from ufmtheory.solvers import gram_newton as gn
from ufmtheory.solvers._frontend import integrate

from helpers import budget, soft_design

TIGHT = dict(rtol=1e-11, atol=1e-13)


def _rel(a, b):
    return np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max()


def _width(model: str, design: ut.Design) -> int:
    """V + n: the smallest dim the Gram flow takes."""
    return design.V + design.m + (0 if model == "ufm" else design.p)


def _problem(model: str, design: ut.Design, dim: int | None, lam: float) -> ut.UFM:
    dim = _width(model, design) if dim is None else dim
    if model == "ufm":
        return ut.UFM(design, dim=dim, lam_W=lam, lam_H=1.5 * lam)
    if model == "ridge_H":
        return ut.ModifiedUFM(design, dim=dim, lam_W=lam, lam_H=1.5 * lam, alpha=0.8, beta=1.2)
    return ut.ModifiedUFM(design, dim=dim, lam_W=lam, ridge="E", lam_E=1.5 * lam, alpha=0.8, beta=1.2)


MODELS = ["ufm", "ridge_H", "ridge_E"]


def _blocks(prob, params):
    return params["W"], params["H"] if type(prob) is ut.UFM else params["E"]


# -- right-hand side and Jacobian ---------------------------------------------------------------------
@settings(max_examples=budget(20))
@given(
    model=st.sampled_from(MODELS),
    soft=st.booleans(),
    dim=st.integers(1, 7),
    lam=st.sampled_from([0.0, 3e-2]),
    seed=st.integers(0, 10**6),
)
def test_rhs_is_the_derivative_of_the_grams_along_the_parameter_flow(model, soft, dim, lam, seed):
    """(d/dt)(W E, W Wᵀ, EᵀE) with Ẇ = -∇_W f, Ė = -∇_E f (the model's own gradient, checked elsewhere
    against torch autograd) equals gram_rhs at (W E, W Wᵀ, EᵀE), whatever d."""
    design = soft_design(4, 5, seed) if soft else ut.designs.factorial((2, 3))
    prob = _problem(model, design, dim, lam)
    params = ut.init.small(prob, 0.7, seed=seed)
    W, E = _blocks(prob, params)
    _, grads = prob.loss_and_grad(params)
    dW, dE = _blocks(prob, {k: -v for k, v in grads.items()})
    expected = (dW @ E + W @ dE, dW @ W.T + W @ dW.T, dE.T @ E + E.T @ dE)
    got = gf.gram_rhs(gf.GramSystem.from_problem(prob), *gf.initial_state(prob, params))
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-13 * max(1.0, np.abs(e).max()))
    # the saved quantities: H Gram, W Gram and loss from the Gram state equal the model's own
    gH, gW, loss = gf.gram_snapshot(gf.GramSystem.from_problem(prob), *gf.initial_state(prob, params))
    refH, refW = prob.grams(params)
    np.testing.assert_allclose(gH, refH, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gW, refW, rtol=1e-12, atol=1e-14)
    assert loss == pytest.approx(prob.loss(params), rel=1e-13)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("lam", [0.0, 5e-2])
def test_analytic_jacobian_matches_central_differences(model, lam):
    """The packed analytic Jacobian against central differences of the packed right-hand side. Step
    h = 1e-5 on an O(1) state: truncation ~h²·|f'''| ~ 1e-10, rounding ~ε|f|/h ~ 1e-11."""
    prob = _problem(model, soft_design(4, 5, seed=2), dim=3, lam=lam)
    system = gf.GramSystem.from_problem(prob)
    V, n = system.V, system.n
    y = gf.pack_state(*gf.initial_state(prob, ut.init.small(prob, 0.8, seed=4)))

    def f(x):
        return gf.pack_state(*gf.gram_rhs(system, *gf.unpack_state(x, V, n)))

    J = gf.packed_jacobian(gf.gram_jacobian(system, *gf.unpack_state(y, V, n)), V, n)
    h = 1e-5
    fd = np.empty_like(J)
    for k in range(y.size):
        e = np.zeros(y.size)
        e[k] = h
        fd[:, k] = (f(y + e) - f(y - e)) / (2 * h)
    assert J.shape == (y.size, y.size) == (gf.gram_state_size(prob),) * 2
    assert np.abs(J - fd).max() < 1e-7 * np.abs(J).max()


def test_pack_unpack_round_trip_and_symmetry():
    rng = np.random.default_rng(0)
    Z, A, B = rng.standard_normal((4, 3)), rng.standard_normal((4, 4)), rng.standard_normal((3, 3))
    A, B = A + A.T, B + B.T
    y = gf.pack_state(Z, A, B)
    assert y.size == 4 * 3 + 10 + 6
    for got, want in zip(gf.unpack_state(y, 4, 3), (Z, A, B), strict=True):
        np.testing.assert_array_equal(got, want)


# -- whole trajectories against the parameter flow -----------------------------------------------------
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("lam", [0.0, 2e-2])
def test_gram_flow_matches_the_parameter_flow(model, soft, lam):
    """Grams and loss of method="gram" against the parameter flow (DOP853: explicit, a different stepper),
    both at rtol 1e-11, through the escape from a small start and into the late phase: agreement to 1e-7 of
    the Gram scale."""
    design = soft_design(4, 5, seed=5) if soft else ut.designs.factorial((2, 3))
    prob = _problem(model, design, dim=None, lam=lam)
    init = ut.init.small(prob, 0.1, seed=1)
    a = ut.gradient_flow(prob, 1e3, init=init, saveat=12, method="gram", **TIGHT)
    b = ut.gradient_flow(prob, 1e3, init=init, saveat=12, method="DOP853", **TIGHT)
    assert a.ok and b.ok, (a.message, b.message)
    assert a.method == "gram-BDF" and a.stats["n_jac"] >= 0 and a.stats["n_evals"] > 0
    np.testing.assert_array_equal(a.ts, b.ts)
    assert _rel(a.gram_H, b.gram_H) < 1e-7
    assert _rel(a.gram_W, b.gram_W) < 1e-7
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-8)
    assert _rel(a.gram_H[-1], a.gram_H[0]) > 1.0  # the run did move: the Grams grew from the small start


def test_long_soft_label_flow_matches_the_parameter_flow():
    """Unregularised soft labels to t = 1e6 (the stiff late phase: in-support logits converge, the others
    fall like -ln t): Gram flow and parameter flow agree to 1e-6 of the Gram scale."""
    prob = ut.UFM(soft_design(3, 4, seed=7), dim=7)
    init = ut.init.small(prob, 0.3, seed=0)
    a = ut.gradient_flow(prob, 1e6, init=init, saveat=8, method="gram", **TIGHT)
    b = ut.gradient_flow(prob, 1e6, init=init, saveat=8, method="LSODA", **TIGHT)
    assert a.ok and b.ok
    assert _rel(a.gram_H, b.gram_H) < 1e-6 and _rel(a.gram_W, b.gram_W) < 1e-6
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-8)
    assert a.stats["n_jac"] > 0  # the stiff phase used the analytic Jacobian


def test_gram_flow_does_not_depend_on_the_dimension():
    """Two starts with the same Grams in d = V + m = 7 and d = 12 (the second padded by zero rows/columns and
    rotated) give the same Gram trajectory, and the parameter flow in d = 12 agrees with it."""
    design = soft_design(3, 4, seed=1)
    small, big = ut.UFM(design, dim=7, lam_W=1e-2, lam_H=1e-2), ut.UFM(design, dim=12, lam_W=1e-2, lam_H=1e-2)
    init = ut.init.small(small, 0.5, seed=3)
    Q = np.linalg.qr(np.random.default_rng(0).standard_normal((12, 12)))[0]
    pad = {
        "W": np.hstack([init["W"], np.zeros((4, 5))]) @ Q,
        "H": Q.T @ np.vstack([init["H"], np.zeros((5, 3))]),
    }
    a = ut.gradient_flow(small, 1e4, init=init, saveat=6, method="gram", **TIGHT)
    b = ut.gradient_flow(big, 1e4, init=pad, saveat=6, method="gram", **TIGHT)
    c = ut.gradient_flow(big, 1e4, init=pad, saveat=6, method="LSODA", **TIGHT)
    assert _rel(b.gram_H, a.gram_H) < 1e-10 and _rel(b.gram_W, a.gram_W) < 1e-10  # rounding at rtol 1e-11
    assert _rel(c.gram_H, a.gram_H) < 1e-7 and _rel(c.gram_W, a.gram_W) < 1e-7


# -- conservation laws ----------------------------------------------------------------------------------
def test_trace_balance_is_conserved_without_ridge_and_decays_with_equal_ridges():
    """tr(W Wᵀ) - tr(HᵀH) is constant without ridge and decays as e^{-2λt} with λ_W = λ_H = λ (UFM):
    d/dt (tr A - tr B) = -2λ_W tr A + 2λ_H tr B. The start is unbalanced so the quantity is not 0.

    Without ridge the Gram right-hand side conserves it term by term (to rounding). With the ridge the gap
    decays to e^-6 of its start while tr A and tr B stay O(1-10): it is a cancellation, so its error is
    bounded by the stepper's error on the traces, rtol · (tr A + tr B), not by rtol · |gap|."""
    design = soft_design(3, 4, seed=3)
    for lam in (0.0, 1e-2):
        prob = ut.UFM(design, dim=7, lam_W=lam, lam_H=lam)
        init = ut.init.small(prob, 0.3, seed=2)
        init["W"] *= 2.0
        tr = ut.gradient_flow(prob, 300.0, init=init, saveat=10, method="gram", **TIGHT)
        trace_A = np.trace(tr.gram_W, axis1=1, axis2=2)
        trace_B = np.trace(tr.gram_H, axis1=1, axis2=2)
        gap = trace_A - trace_B
        expected = gap[0] * np.exp(-2 * lam * tr.ts)
        if lam == 0.0:
            np.testing.assert_allclose(gap, expected, rtol=1e-12)
        else:
            assert np.all(np.abs(gap - expected) <= 10 * TIGHT["rtol"] * (trace_A + trace_B))


def test_gram_state_stays_a_gram_matrix():
    """[[A, Z], [Zᵀ, B]] = [W; Eᵀ][W, E] stays symmetric positive semidefinite along the integration
    (checked at every saved state of the packed integration)."""
    prob = ut.ModifiedUFM(soft_design(3, 4, seed=4), dim=10, lam_W=1e-2, lam_H=1e-2, alpha=0.5, beta=1.0)
    system = gf.GramSystem.from_problem(prob)
    V, n = system.V, system.n
    y0 = gf.pack_state(*gf.initial_state(prob, ut.init.small(prob, 0.5, seed=0)))
    states = []
    status, _, _ = integrate(
        lambda s, y: gf.pack_state(*gf.gram_rhs(system, *gf.unpack_state(y, V, n))) * np.exp(s),
        y0,
        np.log1p(1e3),
        np.log1p(np.array([0.0, 1.0, 10.0, 1e2, 1e3])),
        states.append,
        method="LSODA",
        jac=lambda s, y: (
            gf.packed_jacobian(gf.gram_jacobian(system, *gf.unpack_state(y, V, n)), V, n) * np.exp(s)
        ),
        **TIGHT,
        max_evals=None,
    )
    assert status == "ok" and len(states) == 5
    for y in states:
        Z, A, B = gf.unpack_state(y, V, n)
        ev = np.linalg.eigvalsh(np.block([[A, Z], [Z.T, B]]))
        assert ev[0] > -1e-9 * ev[-1]


# -- method selection and refusals ------------------------------------------------------------------------
def _soft_16x30():
    rng = np.random.default_rng(0)
    P = np.zeros((16, 30))
    for j in range(16):
        k = rng.integers(3, 9)
        P[j, rng.choice(30, size=k, replace=False)] = rng.dirichlet(np.ones(k))
    return ut.designs.from_distributions(P)


def test_auto_rule():
    soft = _soft_16x30()
    big_soft = ut.UFM(soft, dim=128)  # 5,888 parameters, packed Gram state 1,081
    assert gf.gram_state_size(big_soft) == 30 * 16 + 465 + 136
    assert gf.choose_flow_method("auto", big_soft, big_soft.n_params, False) == "gram"
    assert gf.choose_flow_method("auto", big_soft, big_soft.n_params, True) == "DOP853"  # params wanted
    assert gf.choose_flow_method("DOP853", big_soft, big_soft.n_params, False) == "DOP853"
    small = ut.UFM(soft, dim=8)  # 368 parameters: LSODA as before
    assert gf.choose_flow_method("auto", small, small.n_params, False) == "LSODA"
    narrow = ut.UFM(soft, dim=40)  # 1,840 parameters but d < V + m = 46: the parameter flow
    assert not gf.gram_supported(narrow)
    assert gf.choose_flow_method("auto", narrow, narrow.n_params, False) == "DOP853"
    one_hot = ut.UFM(ut.designs.factorial((40,)), dim=40)  # unregularised one-hot: not stiff, DOP853
    assert gf.choose_flow_method("auto", one_hot, one_hot.n_params, False) == "DOP853"
    ridge = ut.UFM(ut.designs.factorial((256,)), dim=256, lam_W=1e-3, lam_H=1e-3)  # bench_flow's K = 256
    assert gf.choose_flow_method("auto", ridge, ridge.n_params, False) == "DOP853"  # state too large
    normalised = ut.ModifiedUFM(soft, dim=128, normalize=1.0)
    assert gf.choose_flow_method("auto", normalised, normalised.n_params, False) == "DOP853"


def test_refusals():
    design = soft_design(3, 4, seed=0)
    with pytest.raises(ValueError, match="normalize"):
        ut.gradient_flow(ut.ModifiedUFM(design, dim=2, normalize=1.0), 1.0, method="gram")
    with pytest.raises(ValueError, match="save_params"):
        ut.gradient_flow(ut.UFM(design, dim=7), 1.0, method="gram", save_params=True)
    with pytest.raises(ValueError, match="dim >= V"):
        ut.gradient_flow(ut.UFM(design, dim=6), 1.0, method="gram")
    with pytest.raises(ValueError, match="method"):
        ut.gradient_flow(ut.UFM(design, dim=7), 1.0, method="gram-BDF")
    with pytest.raises(ValueError, match="jac"):
        integrate(lambda s, y: -y, np.ones(2), 1.0, np.array([1.0]), print, method="DOP853", rtol=1e-6,
                  atol=1e-8, max_evals=None, jac=lambda s, y: -np.eye(2))  # fmt: skip
    with pytest.raises(ValueError, match="method"):  # reduced_solve does not take "gram"
        ut.reduced_solve(ut.UFM(ut.designs.factorial((3,)), dim=3), 1.0, method="gram")


def test_evaluation_cap_and_progress():
    prob = ut.UFM(soft_design(3, 4, seed=0), dim=7)
    tr = ut.gradient_flow(prob, 1e6, method="gram", max_evals=20)
    assert tr.status == "max_evals" and tr.ts[-1] < 1e6 and tr.stats["n_evals"] == 20
    assert not tr.ok
    done = ut.gradient_flow(prob, 10.0, method="gram", saveat=3, progress=True)
    assert done.ok and done.ts[-1] == 10.0


# -- the block Newton solve and the stepper -----------------------------------------------------------
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("lam", [0.0, 0.2])
def test_block_newton_solve_equals_the_dense_solve(model, lam):
    """(I - c·scale·J) x = r solved through the Schur complement on vec Z equals numpy's dense solve with the
    packed Jacobian (an independent assembly: gram_jacobian + packed_jacobian), to cond · eps; covers a
    non-uniform ridge operator N (ridge on H of the modified UFM) and the log-time scale."""
    from ufmtheory.solvers.gram_newton import NewtonMatrix

    prob = _problem(model, soft_design(3, 4, seed=1), dim=None, lam=lam)
    system = gf.GramSystem.from_problem(prob)
    V, n = system.V, system.n
    y = gf.pack_state(*gf.initial_state(prob, ut.init.small(prob, 0.6, seed=3)))
    J = gf.packed_jacobian(gf.gram_jacobian(system, *gf.unpack_state(y, V, n)), V, n)
    rng = np.random.default_rng(0)
    for scale in (1.0, 40.0):
        blocks = gf.jacobian_blocks(system, *gf.unpack_state(y, V, n), scale=scale)
        for c in (1e-3, 0.5, 30.0):
            r = rng.standard_normal(y.size)
            P = np.eye(y.size) - c * scale * J
            want = np.linalg.solve(P, r)
            got = NewtonMatrix(blocks, c * scale).factor().solve(r)
            assert _rel(got, want) < 100 * np.finfo(float).eps * np.linalg.cond(P)


def test_bdf_symbolic_newton_matrix_is_rescaled_to_the_step_time():
    """GramBDF factorises c·time_scale(t + h)/J.scale times the Jacobian: in log-time a Jacobian reused
    from an earlier step is put on the clock of the time the Newton system is solved at."""
    from ufmtheory.solvers.gram_newton import GramBDF, NewtonMatrix

    prob = ut.UFM(soft_design(3, 4, seed=0), dim=7)
    system = gf.GramSystem.from_problem(prob)
    V, n = system.V, system.n
    y0 = gf.pack_state(*gf.initial_state(prob, ut.init.small(prob, 0.5, seed=0)))
    blocks = gf.jacobian_blocks(system, *gf.unpack_state(y0, V, n), scale=np.exp(0.5))
    solver = GramBDF(
        lambda s, y: np.exp(s) * gf.pack_state(*gf.gram_rhs(system, *gf.unpack_state(y, V, n))),
        2.0,
        y0,
        3.0,
        jac=lambda s, y: blocks,
        time_scale=np.exp,
        rtol=1e-8,
        atol=1e-12,
    )
    factor = solver._factor(NewtonMatrix(blocks, 0.1 * blocks.scale))
    h = 0.1 * solver.alpha[solver.order]  # scipy BDF: c = h / alpha[order], solved at t + h
    assert factor.c == pytest.approx(0.1 * np.exp(2.0 + h), rel=1e-14)


def test_rounding_floor_and_tolerance_growth():
    """The absolute tolerance starts at atol·max|θ0| (small start) and only grows: with the parameters'
    size, then with the rounding floor eps·(1+t)·max|y| (1e-5 on a state of size 500 at t = 1e8)."""
    assert gn.rounding_floor(1e8, np.array([-500.0, 1.0])) == pytest.approx(
        gn.ROUNDING_FLOOR * np.finfo(float).eps * (1 + 1e8) * 500
    )
    prob = ut.UFM(soft_design(3, 4, seed=0), dim=7)
    init = ut.init.small(prob, 1e-3, seed=0)
    tr = ut.gradient_flow(prob, 1e8, init=init, method="gram", atol=1e-10)
    assert tr.ok, tr.message
    start = 1e-10 * np.abs(np.concatenate([v.ravel() for v in init.values()])).max()
    grown = gn.rounding_floor(1e8, np.array([np.trace(tr.gram_W[-1])]))  # at least the largest diagonal
    assert start < tr.stats["atol_state"] and tr.stats["atol_state"] >= grown / (prob.design.V + 1)


def test_long_soft_label_flow_is_cheap_and_accurate():
    """A soft-label UFM to t = 1e8 (the late flow is stiff, and its gradient ~1/t is computed with rounding
    ~eps·|Z|): status ok with few Jacobians, and its end state agrees with a run at 100 times tighter rtol
    to 2e-7 of the Gram scale (measured 7.4e-9; 44 Jacobians, 169 factorisations)."""
    prob = ut.UFM(soft_design(4, 6, seed=2), dim=10)
    a = ut.gradient_flow(prob, 1e8, method="gram", saveat=[0.0, 1e8])
    b = ut.gradient_flow(prob, 1e8, method="gram", saveat=[0.0, 1e8], rtol=1e-10)
    assert a.ok and b.ok, (a.message, b.message)
    assert a.stats["n_jac"] < 100 and a.stats["n_lu"] < 400
    assert _rel(a.gram_W[-1], b.gram_W[-1]) < 2e-7 and _rel(a.gram_H[-1], b.gram_H[-1]) < 2e-7


def test_plain_time_gram_flow_matches_the_parameter_flow():
    """log_time=False (no clock rescaling of the reused Jacobian) on a ridge soft-label flow: the Gram flow
    and DOP853 on the parameters agree to 1e-6 of the Gram scale over the whole trajectory (measured 3e-7,
    the rtol 1e-8 Gram flow's own error through the escape; 9e-10 at t = 1e4)."""
    prob = ut.UFM(soft_design(4, 6, seed=2), dim=10, lam_W=1e-3, lam_H=1e-3)
    a = ut.gradient_flow(prob, 1e4, method="gram", log_time=False, saveat=30)
    b = ut.gradient_flow(prob, 1e4, method="DOP853", rtol=1e-10, saveat=30)
    assert a.ok and b.ok and a.method == "gram-BDF"
    assert _rel(a.gram_W, b.gram_W) < 1e-6 and _rel(a.gram_H, b.gram_H) < 1e-6
    assert _rel(a.gram_W[-1], b.gram_W[-1]) < 1e-8
