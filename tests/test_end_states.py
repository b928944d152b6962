"""End states of the modified UFM and its semantic saddle (docs: Theory §8, §9).

Expected values come from routes independent of the code under test:

* closed forms derived here: the two-factor costs ``J_etf = Σ m_S/sqrt κ_S`` and
  ``J_sem = (A-1)B/sqrt κ_(0,) + (B-1)A/sqrt κ_(1,)`` with the boundary
  ``1/β = 1/sqrt(α²B+β²) + 1/sqrt(α²A+β²)`` (scipy ``brentq``), the trace bound ``Σ m_S ℓ_S >= K - 1`` for
  ridge-H weights, Zhu's ``x* = ln(1/ε - K + 1)``, the semantic cosines ``(A-2)/(2(A-1))``, ``-1/(A-1)``;
* cvxpy on the full K×K problem (no symmetry assumed): the nuclear norm ``‖L K_x^{-1/2}‖_*`` and the
  factorised SDP ``min tr P + tr Q`` whose blocks are ``W Wᵀ`` and ``EᵀE``;
* the full model loss (``ModifiedUFM.loss`` on Kronecker-built projectors) minimised by scipy;
* finite differences of the sympy-derived reduced right-hand side; long reduced flows (``reduced_solve``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq, minimize

import ufmtheory as ut
from ufmtheory._results import SolverError
from ufmtheory.algebra.schemes import factorial_scheme, hierarchical_scheme, scheme
from ufmtheory.equilibria import end_state, semantic_saddle, zhu
from ufmtheory.programs.scheme_lp import end_state_lp, lp_cost, regularized_end_state
from ufmtheory.solvers.reduced import ReducedProblem, reduced_solve
from ufmtheory.solvers.symbolic import compile_reduced
from ufmtheory.testing import claims

from helpers import kron_projector


# -- helpers built from definitions (not from the package) ----------------------------------------------
def _two_factor(A: int, B: int, alpha: float, beta: float) -> dict[str, float]:
    """Closed-form costs of the ETF and semantic points on an A×B grid (docs: Theory §8)."""
    k0, k1, k01 = alpha**2 * B + beta**2, alpha**2 * A + beta**2, beta**2
    J_etf = (A - 1) / math.sqrt(k0) + (B - 1) / math.sqrt(k1) + (A - 1) * (B - 1) / math.sqrt(k01)
    J_sem = (A - 1) * B / math.sqrt(k0) + (B - 1) * A / math.sqrt(k1)
    etf_wins = 1 / beta < 1 / math.sqrt(k0) + 1 / math.sqrt(k1)
    return {"J_etf": J_etf, "J_sem": J_sem, "etf_wins": etf_wins}


def _critical_alpha(A: int, B: int, beta: float) -> float:
    """Root in α of ``1/β = 1/sqrt(α²B+β²) + 1/sqrt(α²A+β²)`` (ETF for α below it)."""
    return brentq(
        lambda a: 1 / math.sqrt(a * a * B + beta**2) + 1 / math.sqrt(a * a * A + beta**2) - 1 / beta,
        1e-9,
        1e3,
        xtol=1e-14,
    )


def _kernel(design, alpha: float, beta: float) -> np.ndarray:
    return alpha**2 * design.X.T @ design.X + beta**2 * np.eye(design.m)


def _full_nuclear_norm(design, alpha: float, beta: float) -> float:
    """``min ‖L K_x^{-1/2}‖_*`` s.t. ``L_jj - L_ij >= 1`` over all K×K logits (cvxpy, no symmetry)."""
    cp = pytest.importorskip("cvxpy")
    K = design.m
    ev, U = np.linalg.eigh(_kernel(design, alpha, beta))
    Kmh = U @ np.diag(ev**-0.5) @ U.T
    L = cp.Variable((K, K))
    cons = [L[j, j] - L[i, j] >= 1 for j in range(K) for i in range(K) if i != j]
    prob = cp.Problem(cp.Minimize(cp.normNuc(L @ Kmh)), cons)
    prob.solve(solver="CLARABEL")
    assert prob.status == "optimal"
    return float(prob.value)


# -- the linear programme ---------------------------------------------------------------------------------
CASES = [
    # (A, B, alpha, beta): both sides of the boundary, several grids
    (2, 2, 0.5, 1.0),
    (2, 2, 1.5, 1.0),
    (2, 3, 0.8, 1.0),
    (2, 3, 1.2, 1.0),
    (3, 3, 0.9, 1.0),
    (3, 3, 1.1, 1.0),
    (3, 4, 0.3, 0.5),
    (3, 4, 2.0, 0.5),
    (4, 4, 0.5, 1.0),
    (4, 4, 1.0, 1.0),
    (5, 3, 1.0, 2.0),
    (5, 3, 1.0, 0.2),
    (10, 10, 0.5, 1.0),
    (10, 10, 0.6, 1.0),
]


@pytest.mark.parametrize(("A", "B", "alpha", "beta"), CASES)
def test_lp_reproduces_the_two_factor_boundary(A, B, alpha, beta):
    cf = _two_factor(A, B, alpha, beta)
    assert abs(cf["J_etf"] - cf["J_sem"]) > 1e-3 * cf["J_etf"]  # the case is not a tie
    sch = factorial_scheme((A, B))
    res = end_state_lp(sch, sch.kernel_eigenvalues(alpha, beta))
    assert res.status == "ok"
    assert res.objective == pytest.approx(min(cf["J_etf"], cf["J_sem"]), rel=1e-9)
    expected = (
        {(): 0.0, (0,): 1.0, (1,): 1.0, (0, 1): 1.0}
        if cf["etf_wins"]
        else {
            (): 0.0,
            (0,): float(B),
            (1,): float(A),
            (0, 1): 0.0,
        }
    )
    for S, v in expected.items():
        assert res.ell[S] == pytest.approx(v, abs=1e-8)
    assert min(res.slack.values()) >= -1e-9
    # end_state reports the same decision (the catalogue claim "lp_boundary": kind and both LP costs
    # against the closed forms) and a correctly signed margin.
    res = claims.check("lp_boundary", A=A, B=B, alpha=alpha, beta=beta)
    assert res.ok, res.message
    eq = end_state(ut.ModifiedUFM(ut.designs.factorial((A, B)), dim=A * B, alpha=alpha, beta=beta, ridge="E"))
    assert (eq.stats["decision_margin"] > 0) == cf["etf_wins"]
    # and directly, against the closed-form costs written out in _two_factor
    assert eq.kind == ("etf" if cf["etf_wins"] else "semantic")
    assert eq.stats["etf_objective"] == pytest.approx(cf["J_etf"], rel=1e-12)
    assert eq.stats["semantic_objective"] == pytest.approx(cf["J_sem"], rel=1e-9)


@pytest.mark.parametrize(
    ("A", "B", "beta"), [(2, 2, 1.0), (2, 3, 1.0), (3, 3, 1.0), (3, 7, 0.5), (10, 10, 2.0)]
)
def test_lp_boundary_location_matches_closed_form(A, B, beta):
    """Bisection in α on the LP's decision lands on the closed-form critical α."""
    sch = factorial_scheme((A, B))

    def etf(alpha: float) -> bool:
        return end_state_lp(sch, sch.kernel_eigenvalues(alpha, beta)).ell[(0, 1)] > 0.5

    lo, hi = 1e-3, 50.0
    assert etf(lo) and not etf(hi)
    for _ in range(45):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if etf(mid) else (lo, mid)
    alpha_star = _critical_alpha(A, B, beta)
    assert 0.5 * (lo + hi) == pytest.approx(alpha_star, rel=1e-9)
    if A == B:
        assert alpha_star == pytest.approx(beta * math.sqrt(3 / A), rel=1e-12)  # 2/sqrt(Aα²/β²+1) = 1


@pytest.mark.parametrize(
    "sch",
    [
        factorial_scheme((2, 3)),
        factorial_scheme((2, 2, 2)),
        factorial_scheme((3, 4)),
        hierarchical_scheme(2, 3),
        hierarchical_scheme(3, 2),
    ],
    ids=["2x3", "2x2x2", "3x4", "hier2x3", "hier3x2"],
)
def test_ridge_H_weights_give_the_etf(sch):
    """Weights m_S (κ-free): Σ m_S |ℓ_S| >= Σ_r n_r margin_r = K - 1 with equality only at ℓ_S = 1."""
    rng = np.random.default_rng(0)
    kappa = rng.uniform(0.1, 10.0, sch.n_S)  # ignored by the "H" weights
    res = end_state_lp(sch, kappa, objective="H")
    assert res.objective == pytest.approx(sch.K - 1, rel=1e-10)
    assert np.allclose(res.ell_vector[1:], 1.0, atol=1e-9)
    assert all(abs(s) < 1e-9 for s in res.slack.values())  # every margin is exactly 1


@pytest.mark.parametrize(
    ("sizes", "alpha", "beta"),
    [
        ((2, 2, 2), 0.3, 1.0),
        ((2, 2, 2), 1.0, 1.0),  # a mixed end state: main effects + the three-way interaction
        ((2, 2, 2), 3.0, 1.0),
        ((2, 3), 1.0, 1.0),
        ("hier", 3.0, 1.0),
    ],
)
def test_lp_equals_full_nuclear_norm_programme(sizes, alpha, beta):
    design = ut.designs.hierarchical(2, 3) if sizes == "hier" else ut.designs.factorial(sizes)
    sch = scheme(design)
    res = end_state_lp(sch, sch.kernel_eigenvalues(alpha, beta))
    assert res.objective == pytest.approx(_full_nuclear_norm(design, alpha, beta), rel=1e-6)
    # The LP point itself is feasible for the full problem and has that nuclear norm.
    L = sum(res.ell[S] * sch.projector(S) for S in sch.labels)
    assert np.min(np.diag(L)[None, :] - L + 10 * np.eye(design.m)) >= 1 - 1e-9
    ev, U = np.linalg.eigh(_kernel(design, alpha, beta))
    nuc = np.linalg.svd(L @ U @ np.diag(ev**-0.5) @ U.T, compute_uv=False).sum()
    assert nuc == pytest.approx(res.objective, rel=1e-9)


def test_three_factor_mixed_end_state():
    """On 2×2×2 at α = β the optimum is neither the ETF nor semantic (computed; docs: Theory §12)."""
    sch = factorial_scheme((2, 2, 2))
    res = end_state_lp(sch, sch.kernel_eigenvalues(1.0, 1.0))
    kappa = sch.kernel_eigenvalues(1.0, 1.0)
    etf = lp_cost(sch, kappa, [0] + [1] * 7)
    sem = lp_cost(sch, kappa, [0, 4, 4, 0, 4, 0, 0, 0])  # ℓ_f = K/A_f: margins Σ_{f∈D} ℓ_f A_f/K >= 1
    assert res.objective < min(etf, sem) - 1e-3
    eq = end_state(ut.ModifiedUFM(ut.designs.factorial((2, 2, 2)), dim=8, alpha=1.0, beta=1.0, ridge="E"))
    assert eq.kind == "mixed"
    assert eq.stats["semantic_objective"] == pytest.approx(sem, rel=1e-9)


def test_hierarchy_always_ends_in_the_etf():
    """Leaf siblings share every attribute: only the leaf mode separates them, and the ETF is cheapest."""
    design = ut.designs.hierarchical(2, 3)
    for alpha in (0.3, 3.0, 30.0):
        eq = end_state(ut.ModifiedUFM(design, dim=9, alpha=alpha, beta=1.0, ridge="E"))
        assert eq.kind == "etf"
        assert math.isinf(eq.stats["semantic_objective"]) and eq.stats["decision_margin"] == 1.0
    sch = hierarchical_scheme(2, 3)
    with pytest.raises(SolverError, match="infeasible"):
        end_state_lp(sch, sch.kernel_eigenvalues(1.0, 0.0), throw=True)  # β = 0: the leaf mode is unreachable
    res = end_state_lp(sch, sch.kernel_eigenvalues(1.0, 0.0))
    assert res.status == "infeasible" and "infeasible" in res.message and not res.ok


@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_end_state_grams_match_factorised_sdp(alpha):
    """``min ‖W‖² + ‖E‖²`` at margin 1 as an SDP on the full problem: its blocks are WWᵀ and EᵀE."""
    cp = pytest.importorskip("cvxpy")
    design = ut.designs.factorial((2, 3))
    prob = ut.ModifiedUFM(design, dim=6, alpha=alpha, beta=1.0, ridge="E")
    Xt, K = prob.X_tilde, design.m
    M = cp.Variable((K + Xt.shape[0], K + Xt.shape[0]), PSD=True)
    L = M[:K, K:] @ Xt
    sdp = cp.Problem(
        cp.Minimize(cp.trace(M)), [L[j, j] - L[i, j] >= 1 for j in range(K) for i in range(K) if i != j]
    )
    sdp.solve(solver="CLARABEL")
    assert sdp.status == "optimal"
    gram_W, gram_H = M.value[:K, :K], Xt.T @ M.value[K:, K:] @ Xt
    eq = end_state(prob)
    assert eq.kind == ("etf" if alpha < _critical_alpha(2, 3, 1.0) else "semantic")
    assert sdp.value == pytest.approx(2 * eq.stats["lp_objective"], rel=1e-7)
    assert np.allclose(eq.gram_W, gram_W, atol=1e-6)
    assert np.allclose(eq.gram_H, gram_H, atol=1e-6)
    assert np.allclose(eq.logits, M.value[:K, K:] @ Xt, atol=1e-6)
    if eq.kind == "etf":
        # The logits are the ETF, but HᵀH = Σ sqrt(κ_S) P_S keeps attribute structure (and WWᵀ the opposite).
        assert ut.metrics.etf_distance(eq.logits) < 1e-6
        assert ut.metrics.etf_distance(gram_H) > 0.05


# -- UFM and ridge on H: Zhu -------------------------------------------------------------------------------
@pytest.mark.parametrize(("lam", "kind"), [(1e-3, "etf"), (0.3, "zero")])
def test_end_state_of_ufm_is_zhu(lam, kind):
    prob = ut.UFM(ut.designs.factorial((2, 3)), dim=6, lam_W=lam, lam_H=lam)
    eq, ref = end_state(prob), zhu(prob)
    assert eq.kind == ref.kind == kind
    for a, b in [(eq.gram_H, ref.gram_H), (eq.gram_W, ref.gram_W), (eq.logits, ref.logits)]:
        assert np.array_equal(a, b)
    assert eq.loss == ref.loss


def test_end_state_of_modified_ufm_ridge_H_is_zhu_and_the_reduced_flow_gets_there():
    design = ut.designs.factorial((2, 3))
    lam = 5e-3
    prob = ut.ModifiedUFM(design, dim=6, alpha=1.0, beta=1.0, ridge="H", lam_W=lam, lam_H=lam)
    eq = end_state(prob)
    x_star = math.log(1 / lam - 5)  # Zhu with n = 1, ε = λ, K = 6
    assert eq.kind == "etf" and eq.stats["x_star"] == pytest.approx(x_star, rel=1e-14)
    sol = reduced_solve(prob, 3e4, saveat=np.array([0.0, 3e4]))
    assert sol.ok
    # Every non-trivial coefficient of HᵀH, WWᵀ and the logits ends at x* (λ_W = λ_H): the same ETF.
    for c in (sol.h[-1] ** 2, sol.w[-1] ** 2, sol.logit_coeffs[-1]):
        assert np.allclose(c[1:], x_star, rtol=1e-7)
    assert np.allclose(eq.gram_H, sol.trajectory.gram_H[-1], atol=1e-6)
    # The finite-ridge programme with ridge-H weights is Zhu's too.
    reg = regularized_end_state(scheme(design), None, lam_WX=lam, objective="H")
    assert np.allclose(reg.ell_vector[1:], x_star, rtol=1e-10)


def test_unregularised_ufm_ends_in_the_max_margin_etf():
    design = ut.designs.factorial((2, 3))
    eq = end_state(ut.UFM(design, dim=6))
    C = np.eye(6) - 1 / 6
    assert eq.kind == "etf"
    assert np.allclose(eq.logits, C) and np.allclose(eq.gram_H, C) and np.allclose(eq.gram_W, C)
    # No ridge at all on the modified UFM: the implicit bias is min ‖W‖² + ‖E‖² (weights m_S/sqrt κ_S).
    mod = end_state(ut.ModifiedUFM(design, dim=6, alpha=3.0, beta=1.0, ridge="H"))
    assert mod.stats["objective_kind"] == "E" and mod.kind == "semantic"


def test_end_state_validation(monkeypatch):
    d = ut.designs.factorial((2, 2))
    with pytest.raises(ValueError, match="normalize"):
        end_state(ut.ModifiedUFM(d, dim=4, ridge="E", normalize=1.0))
    with pytest.raises(ValueError, match="both ridges"):
        end_state(ut.UFM(d, dim=4, lam_W=1e-3))
    with pytest.raises(ValueError, match="lam_limit=False needs"):
        end_state(ut.ModifiedUFM(d, dim=4, ridge="E"), lam_limit=False)
    with pytest.raises(ValueError, match="dim"):
        end_state(ut.ModifiedUFM(d, dim=2, alpha=0.1, ridge="E"))  # the ETF has rank 3
    monkeypatch.setattr(ut.solvers.reduced, "MATERIALISE_MAX_K", 3)  # (a real K > 4096 design costs seconds)
    with pytest.raises(ValueError, match="too large.*end_state_lp"):
        end_state(ut.ModifiedUFM(d, dim=4, ridge="E"))
    with pytest.raises(ValueError, match="objective"):
        end_state_lp(factorial_scheme((2, 2)), None, objective="W")


# -- long ridge-E flows end where the programmes say ----------------------------------------------------
@pytest.mark.parametrize("alpha", [0.5, 2.0])  # 3×3: ETF iff α < β = 1
def test_long_ridge_E_flow_ends_in_the_predicted_geometry(alpha):
    lam = 1e-6
    prob = ut.ModifiedUFM(
        ut.designs.factorial((3, 3)), dim=9, alpha=alpha, beta=1.0, ridge="E", lam_W=lam, lam_E=lam
    )
    sol = reduced_solve(prob, 1e8, saveat=np.array([0.0, 1e6, 1e7, 1e8]))
    assert sol.ok
    ell, hsq = sol.logit_coeffs[-1], sol.h[-1] ** 2  # labels (), (0,), (1,), (0, 1)
    predicted = end_state(prob)
    if alpha < 1:
        assert predicted.kind == "etf"
        assert ell[3] > 0.5 * ell[1:3].max()  # all logit modes comparable
        # The logit direction is much closer to C_K than the semantic point's (distance 0.765).
        assert ut.metrics.etf_distance(sol.scheme.materialise(ell)) < 0.15
    else:
        assert predicted.kind == "semantic"
        assert hsq[3] < 1e-6 * hsq[1:3].min() and ell[3] < 1e-6 * ell[1:3].min()
    # The flow has converged to the finite-ridge global minimiser.
    fin = end_state(prob, lam_limit=False)
    assert fin.status == "ok"
    assert np.allclose(sol.h[-1] ** 2, np.array(fin.stats["h"]) ** 2, rtol=1e-6, atol=1e-8)


# -- the semantic saddle ----------------------------------------------------------------------------------
def _fd_jacobian(rp: ReducedProblem, w: np.ndarray, h: np.ndarray) -> np.ndarray:
    sch = rp.scheme
    fn = compile_reduced(sch.counts, sch.exact_table, sch.ranks, rp.ridge)
    y, n = np.concatenate([w, h]), w.size
    J = np.zeros((2 * n, 2 * n))
    for i in range(2 * n):
        e = np.zeros(2 * n)
        e[i] = 1e-6 * max(1.0, abs(y[i]))
        fp = fn.rhs((y + e)[:n], (y + e)[n:], rp.kappa, rp.lam_W, rp.lam_X)
        fm = fn.rhs((y - e)[:n], (y - e)[n:], rp.kappa, rp.lam_W, rp.lam_X)
        J[:, i] = (fp - fm) / (2 * e[i])
    return J


SADDLE_CASES = [
    dict(ridge="H", lam_W=1e-3, lam_H=1e-3, alpha=1.0, beta=1.0),
    dict(ridge="H", lam_W=1e-5, lam_H=3e-5, alpha=1.5, beta=0.7),
    dict(ridge="E", lam_W=1e-3, lam_E=1e-3, alpha=0.5, beta=1.0),  # ETF side: strict saddle
    dict(ridge="E", lam_W=1e-4, lam_E=1e-4, alpha=2.0, beta=1.0),  # semantic side: a stable minimum
]


@pytest.mark.parametrize("kw", SADDLE_CASES)
def test_semantic_saddle_point_spectrum_and_two_by_two_block(kw):
    design = ut.designs.factorial((2, 3))
    prob = ut.ModifiedUFM(design, dim=6, **kw)
    eq = semantic_saddle(prob)
    st = eq.stats
    assert eq.kind == "semantic" and eq.status == "ok" and st["residual"] < 1e-10
    w, h = np.array(st["w"]), np.array(st["h"])
    assert w[3] == 0.0 and h[3] == 0.0  # the interaction (0, 1) is exactly zero
    assert w[0] == 0.0 and h[0] == 0.0
    # The flow route lands on the same point.
    flow = semantic_saddle(prob, method="flow")
    assert flow.status == "ok" and np.allclose(flow.stats["ell"], st["ell"], rtol=1e-9)
    # g* of the interaction from the materialised softmax: g = (1 - tr(softmax(L) P)/m)/K.
    L = eq.logits
    Sm = np.exp(L - L.max(axis=0)) / np.exp(L - L.max(axis=0)).sum(axis=0)
    P = kron_projector((2, 3), (0, 1))
    g_star = (1 - np.trace(Sm @ P) / 2) / 6
    kap = kw["beta"] ** 2
    lam_W = kw["lam_W"]
    corner = -kap * kw["lam_H"] if kw["ridge"] == "H" else -kw["lam_E"]
    block = np.array([[-lam_W, g_star], [kap * g_star, corner]])
    mu_block = np.linalg.eigvals(block).real.max()
    # Spectrum of the full reduced flow (finite differences of the sympy RHS).
    rp = ReducedProblem.from_problem(prob)
    ev = np.sort(np.linalg.eigvals(_fd_jacobian(rp, w, h)).real)[::-1]
    scale = np.abs(ev).max()
    assert np.allclose(st["jacobian_eigenvalues"], ev, atol=1e-7 * scale)
    assert st["mu_formula"] == pytest.approx(mu_block, rel=1e-8)
    assert st["decoupling"] == 0.0
    ridge_H_or_etf_side = kw["ridge"] == "H" or kw["alpha"] < 1.0
    if ridge_H_or_etf_side:
        # Strict saddle: the interaction block is the only unstable direction, and it is the top one.
        assert mu_block > 0
        assert st["n_unstable"] == 1 and int(np.sum(ev > 1e-9 * scale)) == 1
        assert st["mu"] == pytest.approx(mu_block, rel=1e-8)
    else:
        assert mu_block < 0 and st["n_unstable"] == 0 and ev[0] < 0


@pytest.mark.parametrize("ridge", ["H", "E"])
def test_semantic_saddle_minimises_the_full_loss_on_the_attribute_subspace(ridge):
    """Independent route: ModifiedUFM.loss on Kronecker projectors, minimised over main-effect terms."""
    sizes = (2, 3)
    design = ut.designs.factorial(sizes)
    lam = 2e-3
    kw = {"lam_H": lam} if ridge == "H" else {"lam_E": lam}
    prob = ut.ModifiedUFM(design, dim=6, alpha=0.8, beta=1.0, ridge=ridge, lam_W=lam, **kw)
    P0, P1 = kron_projector(sizes, (0,)), kron_projector(sizes, (1,))
    Xt = prob.X_tilde
    pinv = np.linalg.solve(Xt.T @ Xt, Xt.T)  # E = H X̃⁺ (minimum norm, E X̃ = H)

    def loss(x: np.ndarray) -> float:
        W = x[0] * P0 + x[1] * P1
        H = x[2] * P0 + x[3] * P1
        return prob.loss({"W": W, "E": H @ pinv})

    best = minimize(loss, np.full(4, 2.0), method="BFGS", options={"gtol": 1e-11})
    eq = semantic_saddle(prob)
    ell = np.array(eq.stats["ell"])
    assert ell[1] == pytest.approx(best.x[0] * best.x[2], rel=1e-5)
    assert ell[2] == pytest.approx(best.x[1] * best.x[3], rel=1e-5)
    assert eq.loss == pytest.approx(best.fun, rel=1e-9)


@pytest.mark.parametrize("A", [3, 4])
def test_semantic_saddle_cosines_on_square_grid(A):
    """The catalogue claim (ufmtheory.testing.claims "plateau_cosines"): centred cosines of HᵀH and W Wᵀ
    at the saddle are (A-2)/(2(A-1)) for one shared attribute and -1/(A-1) for none."""
    res = claims.check("plateau_cosines", A=A, lam=1e-3)
    assert res.ok, res.message
    # and directly, cosine by cosine
    prob = ut.ModifiedUFM(ut.designs.factorial((A, A)), dim=A * A, lam_W=1e-3, lam_H=1e-3)
    eq = semantic_saddle(prob)
    shared = prob.design.X.T @ prob.design.X  # number of attributes two contexts share
    off = ~np.eye(A * A, dtype=bool)
    for G in (eq.gram_H, eq.gram_W):
        d = np.sqrt(np.diag(G))
        cos = G / np.outer(d, d)
        assert np.allclose(cos[(shared == 1) & off], (A - 2) / (2 * (A - 1)), atol=1e-10)
        assert np.allclose(cos[shared == 0], -1 / (A - 1), atol=1e-10)


def test_semantic_saddle_validation_and_trivial_point():
    d = ut.designs.factorial((2, 2))
    with pytest.raises(ValueError, match="lam_W > 0"):
        semantic_saddle(ut.ModifiedUFM(d, dim=4, ridge="E"))
    with pytest.raises(ValueError, match="method"):
        semantic_saddle(ut.ModifiedUFM(d, dim=4, lam_W=1e-3, lam_H=1e-3), method="newton")
    # Ridge so strong that g = 1/K at the origin cannot beat it: the restricted minimiser is 0.
    eq = semantic_saddle(ut.ModifiedUFM(d, dim=4, lam_W=0.5, lam_H=0.5))
    assert eq.kind == "zero" and eq.status == "ok" and not np.any(eq.gram_H)
    assert eq.loss == pytest.approx(math.log(4), rel=1e-12)


@pytest.mark.parametrize(("A", "B"), [(3, 3), (2, 3)])
def test_ridge_E_saddle_stability_switches_at_the_lp_boundary(A, B):
    """At small λ the semantic point is a strict saddle iff the ETF wins: near the plateau
    g_int ≈ g_(0,) + g_(1,) with g_f = sqrt(λ_W λ_E/κ_f), so sqrt(κ_int) g_int > λ iff 1/β < Σ 1/sqrt κ_f."""
    alpha_star = _critical_alpha(A, B, 1.0)
    for factor, unstable in [(0.98, 1), (1.02, 0)]:
        prob = ut.ModifiedUFM(
            ut.designs.factorial((A, B)),
            dim=A * B,
            alpha=factor * alpha_star,
            beta=1.0,
            ridge="E",
            lam_W=1e-6,
            lam_E=1e-6,
        )
        eq = semantic_saddle(prob)
        assert eq.status == "ok" and eq.stats["n_unstable"] == unstable
        assert end_state(prob).kind == ("etf" if unstable else "semantic")
