"""Tests for ufmtheory.metrics: closed forms (docs: Theory §10), invariances, feature-space references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ufmtheory as ut
from ufmtheory import metrics as M
from ufmtheory.metrics.curves import PEAK_RTOL

from helpers import budget, designs, kron_projector

DESIGNS = designs("fact2x3", "fact3x4", "fact2x2x2", "hier3x2", "random")


def _centre_features(H: np.ndarray) -> np.ndarray:
    return H - H.mean(axis=1, keepdims=True)


def _feature_cosines(H: np.ndarray) -> np.ndarray:
    """Cosines of the mean-removed columns of H, computed from the features (not from a Gram)."""
    Hc = _centre_features(H)
    U = Hc / np.linalg.norm(Hc, axis=0)
    return U.T @ U


def _semantic_features(A: int) -> np.ndarray:
    """Explicit semantic-phase features on an A×A grid: h_(a,b) = [e_a - 1/A ; e_b - 1/A], order (a, b)."""
    cols = []
    for a in range(A):
        for b in range(A):
            ea, eb = np.eye(A)[a] - 1.0 / A, np.eye(A)[b] - 1.0 / A
            cols.append(np.concatenate([ea, eb]))
    return np.array(cols).T


def _kron_main_effects(sizes: tuple[int, ...]) -> np.ndarray:
    """Σ_f P_{f}, P_{f} = ⊗_g (I - J/A_g if g == f else J/A_g), contexts in lexicographic order."""
    return sum(kron_projector(sizes, (f,)) for f in range(len(sizes)))


# -- closed forms ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("K", [2, 3, 5, 8, 12])
def test_etf_closed_forms(K):
    for G in (ut.etf_gram(K), 7.5 * ut.etf_gram(K), np.eye(K)):  # I_K centres to a scaled ETF
        assert M.etf_distance(G) == pytest.approx(0.0, abs=1e-12)
        assert M.effective_rank(G) == pytest.approx(K - 1, rel=1e-12)
        assert M.equinorm(G) == pytest.approx(0.0, abs=1e-12)
        assert M.equiangularity(G) == pytest.approx(0.0, abs=1e-12)
        assert M.max_angle_deviation(G) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", list(DESIGNS))
def test_etf_has_no_semantic_structure(name):
    X = DESIGNS[name]().X
    K = X.shape[1]
    G = ut.etf_gram(K)
    assert M.semantic_strength(G, X) == pytest.approx(0.0, abs=1e-12)
    assert M.shared_attribute_gap(G, X) == pytest.approx(0.0, abs=1e-12)
    for value in M.pair_cosines(G, X).values():
        assert value == pytest.approx(-1.0 / (K - 1), abs=1e-12)


def test_etf_distance_two_clusters():
    # Vectors e1, e1, e2, e2: centred cosines are v vᵀ with v = (1, 1, -1, -1), so
    # distance² = 2 - 2 vᵀ C v / (‖vvᵀ‖ ‖C‖) = 2 - 2 · 4 / (4 √3).
    H = np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    assert M.etf_distance(H.T @ H) == pytest.approx(math.sqrt(2 - 2 / math.sqrt(3)), rel=1e-12)
    assert M.effective_rank(H.T @ H) == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("sizes", [(3, 4), (2, 3), (2, 2, 3)])
def test_attribute_projector_factorial(sizes):
    P = M.attribute_projector(ut.designs.factorial(sizes).X)
    K = int(np.prod(sizes))
    assert P.shape == (K, K)
    np.testing.assert_allclose(P, P.T, atol=1e-12)
    np.testing.assert_allclose(P @ P, P, atol=1e-12)
    assert np.linalg.matrix_rank(P) == sum(a - 1 for a in sizes)
    np.testing.assert_allclose(P @ np.ones(K), 0.0, atol=1e-12)
    np.testing.assert_allclose(P, _kron_main_effects(sizes), atol=1e-12)
    assert M.etf_attribute_energy(ut.designs.factorial(sizes).X) == pytest.approx(
        sum(a - 1 for a in sizes) / (K - 1), rel=1e-12
    )


def test_attribute_projector_hierarchy():
    # depth 3, branching 2: attributes are levels 1 and 2, i.e. functions constant on leaf pairs.
    P = M.attribute_projector(ut.designs.hierarchical(3, 2).X)
    expected = np.kron(np.eye(4), np.full((2, 2), 0.5)) - np.full((8, 8), 1.0 / 8)
    np.testing.assert_allclose(P, expected, atol=1e-12)
    assert M.attribute_projector(np.zeros((0, 5))).tolist() == np.zeros((5, 5)).tolist()


@pytest.mark.parametrize("A", [2, 3, 4, 5])
def test_semantic_phase_grid(A):
    H = _semantic_features(A)
    G = H.T @ H
    X = ut.designs.factorial((A, A)).X
    K = A * A
    cos = M.pair_cosines(G, X)
    assert set(cos) == {0, 1}
    assert cos[1] == pytest.approx((A - 2) / (2 * (A - 1)), abs=1e-12)
    assert cos[0] == pytest.approx(-1.0 / (A - 1), abs=1e-12)
    assert M.attribute_energy(G, X) == pytest.approx(1.0, rel=1e-12)
    assert M.semantic_strength(G, X) == pytest.approx(1.0 - 2 * (A - 1) / (K - 1), abs=1e-12)
    assert M.shared_attribute_gap(G, X) == pytest.approx((A - 2) / (2 * (A - 1)) + 1 / (A - 1), abs=1e-12)
    assert M.effective_rank(G) == pytest.approx(2 * (A - 1), rel=1e-12)  # 2(A-1) equal eigenvalues
    # the explicit features are exactly the main-effect projector, up to scale
    np.testing.assert_allclose(G / A, _kron_main_effects((A, A)), atol=1e-12)


def test_effective_rank_unequal_modes():
    A = 3
    assert M.effective_rank(_kron_main_effects((A,))) == pytest.approx(A - 1, rel=1e-12)  # C_A
    # modes of weight 1 and 4, each of multiplicity A - 1 = 2
    Pa = np.kron(np.eye(A) - 1.0 / A, np.full((A, A), 1.0 / A))
    Pb = np.kron(np.full((A, A), 1.0 / A), np.eye(A) - 1.0 / A)
    p = np.array([1, 1, 4, 4]) / 10.0
    assert M.effective_rank(Pa + 4 * Pb) == pytest.approx(math.exp(-np.sum(p * np.log(p))), rel=1e-12)


def test_cka_closed_forms():
    A, B = 3, 4
    X = ut.designs.factorial((A, B)).X
    K = A * B
    assert M.cka(X.T @ X, X) == pytest.approx(1.0, rel=1e-12)
    # XᵀX = I_A⊗J_B + J_A⊗I_B centres to B P_a + A P_b; against the ETF (∝ C_K):
    num = B * (A - 1) + A * (B - 1)
    den = math.sqrt(K - 1) * math.sqrt(B**2 * (A - 1) + A**2 * (B - 1))
    assert M.cka(ut.etf_gram(K), X) == pytest.approx(num / den, rel=1e-12)
    assert M.gram_metrics(ut.etf_gram(K), X)["cka"] == pytest.approx(num / den, rel=1e-12)


# -- feature-space references ------------------------------------------------------------------------------
def test_gram_metrics_match_feature_space_computations():
    rng = np.random.default_rng(5)
    design = ut.designs.random_attributes(9, 6, 2, seed=1)
    X = design.X
    H = rng.normal(size=(5, 9)) + 3.0  # large common mean, removed by centring
    G = H.T @ H
    cos = _feature_cosines(H)
    K = G.shape[0]
    share = [(i, j) for i in range(K) for j in range(K) if i != j and X[:, i] @ X[:, j] > 0]
    none = [(i, j) for i in range(K) for j in range(K) if i != j and X[:, i] @ X[:, j] == 0]
    gap = np.mean([cos[i, j] for i, j in share]) - np.mean([cos[i, j] for i, j in none])
    assert M.shared_attribute_gap(G, X) == pytest.approx(gap, rel=1e-10)
    by_count: dict[int, list[float]] = {}
    for i in range(K):
        for j in range(K):
            if i != j:
                by_count.setdefault(int(X[:, i] @ X[:, j]), []).append(cos[i, j])
    got = M.pair_cosines(G, X)
    assert set(got) == set(by_count)
    for s, values in by_count.items():
        assert got[s] == pytest.approx(np.mean(values), rel=1e-10)
    norms = np.linalg.norm(_centre_features(H), axis=0)
    assert M.equinorm(G) == pytest.approx(norms.std() / norms.mean(), rel=1e-10)
    off = cos[~np.eye(K, dtype=bool)]
    assert M.equiangularity(G) == pytest.approx(off.std(), rel=1e-10)
    assert M.max_angle_deviation(G) == pytest.approx(np.mean(np.abs(off + 1 / (K - 1))), rel=1e-10)
    C = np.eye(K) - 1.0 / K
    assert M.etf_distance(G) == pytest.approx(
        np.linalg.norm(cos / np.linalg.norm(cos) - C / np.linalg.norm(C)), rel=1e-10
    )
    np.testing.assert_allclose(M.centered(G), C @ G @ C, atol=1e-10)
    # gram_metrics (the stacked implementation) agrees with the single-purpose functions
    m = M.gram_metrics(G, X)
    assert m["etf_distance"] == pytest.approx(M.etf_distance(G), rel=1e-12)
    assert m["effective_rank"] == pytest.approx(M.effective_rank(G), rel=1e-12)
    assert m["shared_gap"] == pytest.approx(gap, rel=1e-10)
    assert m["attribute_energy"] == pytest.approx(M.attribute_energy(G, X), rel=1e-12)
    assert m["semantic_strength"] == pytest.approx(M.semantic_strength(G, X), rel=1e-12)
    assert m["cka"] == pytest.approx(M.cka(G, X), rel=1e-12)
    Hc = _centre_features(H)
    # linear CKA from the features: HSIC with explicitly centred kernels, (n-1)² factors cancel
    L = X.T @ X
    Lc = C @ L @ C
    hsic = np.trace(Hc.T @ Hc @ Lc)
    assert m["cka"] == pytest.approx(hsic / (np.linalg.norm(Hc.T @ Hc) * np.linalg.norm(Lc)), rel=1e-10)
    # energy in the span of the centred attribute rows, by least squares on the features
    coef, *_ = np.linalg.lstsq((X - X.mean(axis=1, keepdims=True)).T, Hc.T, rcond=None)
    proj = (X - X.mean(axis=1, keepdims=True)).T @ coef
    assert M.attribute_energy(G, X) == pytest.approx(np.sum(proj**2) / np.sum(Hc**2), rel=1e-10)


def test_cosine_zero_rows():
    G = np.diag([4.0, 0.0, 9.0])
    G[0, 2] = G[2, 0] = 3.0
    np.testing.assert_allclose(M.cosine(G), [[1.0, 0.0, 0.5], [0.0, 0.0, 0.0], [0.5, 0.0, 1.0]])


def test_degenerate_grams_are_nan():
    X = ut.designs.factorial((2, 2)).X
    for G in (np.zeros((4, 4)), np.full((4, 4), 2.5)):  # no direction: every vector equal
        m = M.gram_metrics(G, X)
        assert all(math.isnan(v) for v in m.values()), m
        assert math.isnan(M.equiangularity(G)) and math.isnan(M.equinorm(G))
    # identical random vectors: centring leaves only rounding noise, which must not become a direction
    rng = np.random.default_rng(0)
    for K in (3, 5, 7):
        for _ in range(5):
            H = np.repeat(rng.normal(size=(4, 1)), K, axis=1)
            m = M.gram_metrics(H.T @ H, np.eye(K)[: K - 1])
            assert all(math.isnan(v) for v in m.values()), m
    # every pair shares the attribute: the "shares none" set is empty
    assert math.isnan(M.shared_attribute_gap(np.eye(3), np.ones((1, 3))))


# -- invariances ---------------------------------------------------------------------------------------------
def _nan_close(a: dict, b: dict, rtol: float = 1e-8, atol: float = 1e-9) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=atol, equal_nan=True, err_msg=k)


@settings(max_examples=budget(25))
@given(
    seed=st.integers(0, 2**32 - 1),
    name=st.sampled_from(sorted(DESIGNS)),
    scale=st.floats(1e-3, 1e3),
    d=st.integers(1, 12),
)
def test_metrics_invariant_under_permutation_and_scaling(seed, name, scale, d):
    rng = np.random.default_rng(seed)
    X = DESIGNS[name]().X
    K = X.shape[1]
    H = rng.normal(size=(d, K)) + rng.normal(size=(d, 1))
    G = H.T @ H
    perm = rng.permutation(K)
    base = M.gram_metrics(G, X)
    _nan_close(M.gram_metrics(G[np.ix_(perm, perm)], X[:, perm]), base)
    _nan_close(M.gram_metrics(scale * G, X), base)
    extra = {
        "pairs": M.pair_cosines(G, X),
        "equinorm": M.equinorm(G),
        "equiangularity": M.equiangularity(G),
        "mad": M.max_angle_deviation(G),
    }
    permuted = {
        "pairs": M.pair_cosines(G[np.ix_(perm, perm)], X[:, perm]),
        "equinorm": M.equinorm(G[np.ix_(perm, perm)]),
        "equiangularity": M.equiangularity(G[np.ix_(perm, perm)]),
        "mad": M.max_angle_deviation(G[np.ix_(perm, perm)]),
    }
    _nan_close(extra["pairs"], permuted["pairs"])
    for k in ("equinorm", "equiangularity", "mad"):
        assert extra[k] == pytest.approx(permuted[k], rel=1e-8, abs=1e-9)
    if not math.isnan(base["etf_distance"]):
        assert 0.0 <= base["etf_distance"] <= 2.0 + 1e-12
        assert 1.0 - 1e-9 <= base["effective_rank"] <= K - 1 + 1e-9
        assert -1e-12 <= base["attribute_energy"] <= 1.0 + 1e-12


# -- neural collapse -----------------------------------------------------------------------------------------
def _papyan_nc1(H: np.ndarray, y: np.ndarray) -> float:
    classes = np.unique(y)
    mu_G = H.mean(axis=1)
    means = np.stack([H[:, y == c].mean(axis=1) for c in classes], axis=1)
    R = H - means[:, np.searchsorted(classes, y)]
    Sw = R @ R.T / H.shape[1]
    D = means - mu_G[:, None]
    Sb = D @ D.T / len(classes)
    return float(np.trace(Sw @ np.linalg.pinv(Sb, rcond=1e-10)) / len(classes))


def _etf_means(K: int, d: int, rng: np.random.Generator) -> np.ndarray:
    Q, _ = np.linalg.qr(rng.normal(size=(d, K)))
    return Q @ (np.eye(K) - 1.0 / K) * 3.0


def test_nc1():
    rng = np.random.default_rng(0)
    K, d = 4, 6
    means = _etf_means(K, d, rng)
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 3])  # unbalanced on purpose
    H = means[:, y]
    assert M.nc1(H, y) == pytest.approx(0.0, abs=1e-20)
    noisy = H + 0.3 * rng.normal(size=H.shape)
    value = M.nc1(noisy, y)
    assert value > 0
    assert value == pytest.approx(_papyan_nc1(noisy, y), rel=1e-8)
    # labels may be any integers; relabelling does not change NC1
    assert M.nc1(noisy, 10 * y + 7) == pytest.approx(value, rel=1e-12)
    # all class means equal: Σ_B = 0, NC1 undefined
    assert math.isnan(M.nc1(np.ones((2, 4)), [0, 0, 1, 1]))


def test_self_duality():
    rng = np.random.default_rng(1)
    Mu = rng.normal(size=(5, 4)) + 2.0
    Mc = Mu - Mu.mean(axis=1, keepdims=True)
    assert M.self_duality(0.3 * Mc.T, Mu) == pytest.approx(0.0, abs=1e-12)
    assert M.self_duality(-Mc.T, Mu) == pytest.approx(2.0, rel=1e-12)
    assert M.self_duality(Mu.T, Mu) > 0.1  # the uncentred means are not dual


def test_ncc_agreement():
    rng = np.random.default_rng(2)
    K, d = 5, 7
    means = _etf_means(K, d, rng)
    y = rng.integers(0, K, size=40)
    H = means[:, y]
    assert M.ncc_agreement(means.T, H, means) == 1.0
    assert M.ncc_agreement(-means.T, H, means) == 0.0
    # a classifier that swaps classes 0 and 1 disagrees on exactly those samples
    W = means.T[[1, 0, 2, 3, 4]]
    assert M.ncc_agreement(W, H, means) == pytest.approx(np.mean(y >= 2))
    # unequal mean norms: 1-D means 1 and 10; samples 2, 4 are nearest mean 0, samples 8, 20 mean 1;
    # the classifier (h, 0) always says class 0
    assert (
        M.ncc_agreement(np.array([[1.0], [0.0]]), np.array([[2.0, 4.0, 8.0, 20.0]]), np.array([[1.0, 10.0]]))
        == 0.5
    )


# -- phase times ---------------------------------------------------------------------------------------------
def test_phase_times_bump_in_log_time():
    t0, sigma = 100.0, 1.2
    ts = ut.log_grid(1e5, n=60)  # ts[0] = 0
    logt = np.log(np.where(ts > 0, ts, 1.0))
    strength = np.where(ts > 0, np.exp(-((logt - np.log(t0)) ** 2) / (2 * sigma**2)), 0.0) - 0.1
    spacing = np.log(ts[2] / ts[1])
    # half of the peak 0.9 is 0.45: exp(-z²/2σ²) = 0.55
    z = sigma * math.sqrt(2 * math.log(1 / 0.55))
    out = M.phase_times(ts, strength)
    assert abs(np.log(out["peak"]) - np.log(t0)) <= spacing
    assert out["peak_strength"] == pytest.approx(0.9, abs=0.01)
    assert abs(np.log(out["onset"]) - (np.log(t0) - z)) < spacing
    assert abs(np.log(out["collapse"]) - (np.log(t0) + z)) < spacing
    assert out["etf_time"] is None


def test_phase_times_etf_time():
    ts = ut.log_grid(1e4, n=80)
    t1 = 3.0
    dist = 1.0 / (1.0 + ts / t1)  # < 0.05 from t = 19 t1 on
    out = M.phase_times(ts, np.zeros_like(ts), etf_dist=dist)
    assert abs(np.log(out["etf_time"]) - np.log(19 * t1)) < np.log(ts[2] / ts[1])
    # dipping below the tolerance and coming back does not count
    ts2 = np.array([0.0, 1.0, 10.0, 100.0, 1000.0])
    out2 = M.phase_times(ts2, [0, 1, 0, 0, 0], etf_dist=[1.0, 0.01, 0.2, 0.1, 0.0], etf_tol=0.05)
    assert out2["etf_time"] == pytest.approx(math.sqrt(100.0 * 1000.0))
    out3 = M.phase_times(ts2, [0, 1, 0, 0, 0], etf_dist=[0.01] * 4 + [0.2])
    assert out3["etf_time"] is None
    out4 = M.phase_times(ts2, [0, 1, 0, 0, 0], etf_dist=[0.01] * 5)
    assert out4["etf_time"] == 0.0


def test_phase_times_edge_cases():
    ts = np.array([0.0, 1.0, 2.0])
    out = M.phase_times(ts, [0.0, 1.0, 0.0])
    assert out["onset"] == pytest.approx(0.5)  # linear on the segment starting at t = 0
    assert out["collapse"] == pytest.approx(math.sqrt(2.0))  # log-linear between 1 and 2
    assert out["peak"] == 1.0
    sigmoid = M.phase_times([1.0, 10.0, 100.0, 1000.0], [0.0, 0.2, 1.0, 1.0])
    assert sigmoid["collapse"] is None
    assert sigmoid["onset"] == pytest.approx(10.0 * 10 ** (3 / 8))
    negative = M.phase_times([1.0, 2.0, 3.0], [-1.0, -0.5, -2.0])
    assert negative["onset"] is None and negative["collapse"] is None and negative["peak"] == 2.0
    skipped = M.phase_times([0.0, 1.0, 10.0, 100.0], [np.nan, 0.0, 1.0, 0.0])  # zero Gram at t = 0
    assert skipped["onset"] == pytest.approx(math.sqrt(10.0))
    empty = M.phase_times([1.0, 2.0], [np.nan, np.nan])
    assert empty["peak"] is None and math.isnan(empty["peak_strength"])


# -- trajectories --------------------------------------------------------------------------------------------
def _stack_trajectory(grams_H, grams_W):
    T = len(grams_H)
    return ut.Trajectory(
        ts=np.arange(T, dtype=float), gram_H=np.array(grams_H), gram_W=np.array(grams_W), loss=np.zeros(T)
    )


def test_trajectory_metrics_closed_forms():
    A = 3
    design = ut.designs.factorial((A, A))
    K = A * A
    sem = _semantic_features(A).T @ _semantic_features(A)
    grams = [np.zeros((K, K)), sem, 2.0 * ut.etf_gram(K)]
    traj = _stack_trajectory(grams, grams)
    for which in ("H", "W"):
        m = M.trajectory_metrics(traj, design, which=which)
        assert set(m) == {
            "ts",
            "etf_distance",
            "effective_rank",
            "semantic_strength",
            "attribute_energy",
            "cka",
            "shared_gap",
        }
        np.testing.assert_array_equal(m["ts"], [0.0, 1.0, 2.0])
        assert all(np.isnan(v[0]) for k, v in m.items() if k != "ts")
        np.testing.assert_allclose(m["semantic_strength"][1:], [1 - 2 * (A - 1) / (K - 1), 0.0], atol=1e-12)
        np.testing.assert_allclose(m["shared_gap"][1:], [A / (2 * (A - 1)), 0.0], atol=1e-12)
        np.testing.assert_allclose(m["effective_rank"][1:], [2 * (A - 1), K - 1], rtol=1e-12)
        assert m["etf_distance"][2] == pytest.approx(0.0, abs=1e-12)
    plain = traj.metrics()
    assert set(plain) == {"ts", "etf_distance", "effective_rank"}
    with pytest.raises(ValueError, match="which"):
        M.trajectory_metrics(traj, design, which="Z")


def test_trajectory_metrics_w_restricts_to_used_labels():
    # a 2×3 grid whose contexts map to shuffled labels; token 2 never follows any context
    X = ut.designs.factorial((2, 3)).X
    label_of = np.array([5, 0, 3, 6, 4, 1])  # context j -> label token
    P = np.zeros((6, 7))
    P[np.arange(6), label_of] = 1.0
    design = ut.designs.from_distributions(P, X=X)
    assert design.used_labels.tolist() == [0, 1, 3, 4, 5, 6]
    sem = _kron_main_effects((2, 3))  # semantic Gram in context order
    GW = np.zeros((7, 7))
    GW[np.ix_(label_of, label_of)] = sem  # the same vectors, indexed by label
    GW[2, 2] = 100.0  # would spoil every metric if the unused label were kept
    GH = ut.etf_gram(6)
    traj = _stack_trajectory([GH], [GW])
    m = M.trajectory_metrics(traj, design, which="W")
    assert m["attribute_energy"][0] == pytest.approx(1.0, rel=1e-12)
    assert m["semantic_strength"][0] == pytest.approx(1.0 - 3 / 5, rel=1e-12)
    assert m["effective_rank"][0] == pytest.approx(3.0, rel=1e-12)
    h = M.trajectory_metrics(traj, design, which="H")
    assert h["semantic_strength"][0] == pytest.approx(0.0, abs=1e-12)


def test_trajectory_metrics_chunked(monkeypatch):
    rng = np.random.default_rng(4)
    design = ut.designs.factorial((2, 3))
    Hs = rng.normal(size=(7, 4, 6))
    grams = np.einsum("tdi,tdj->tij", Hs, Hs)
    traj = _stack_trajectory(grams, grams)
    whole = M.trajectory_metrics(traj, design)
    monkeypatch.setattr(M.curves, "_CHUNK_ELEMENTS", 2 * 36)  # 2 Grams per chunk, last chunk partial
    chunked = M.trajectory_metrics(traj, design)
    _nan_close(whole, chunked, rtol=0, atol=0)
    for t in range(7):  # each row equals the single-Gram metrics
        single = M.gram_metrics(grams[t], design.X)
        for k, v in single.items():
            assert whole[k][t] == pytest.approx(v, rel=1e-12, abs=1e-14)


def test_metrics_on_standard_ufm_flow_end_in_the_etf():
    design = ut.designs.factorial((2, 3))
    prob = ut.UFM(design, dim=6, lam_W=5e-3, lam_H=5e-3)
    traj = ut.gradient_flow(prob, 3e3, init=ut.init.small(prob, 1e-2, seed=0), saveat=30)
    m = traj.metrics(design)
    assert m["etf_distance"][-1] < 1e-3
    assert m["semantic_strength"][-1] == pytest.approx(0.0, abs=1e-3)
    times = M.phase_times(m["ts"], m["semantic_strength"], m["etf_distance"])
    assert times["etf_time"] is not None and times["etf_time"] <= m["ts"][-1]


# -- bad input -----------------------------------------------------------------------------------------------
GOOD_G = ut.etf_gram(4)
GOOD_X = ut.designs.factorial((2, 2)).X
NAN_G = GOOD_G.copy()
NAN_G[0, 1] = np.nan


@pytest.mark.parametrize(
    ("fn", "args", "name"),
    [
        (M.etf_distance, (np.ones((3, 4)),), "G"),
        (M.etf_distance, (NAN_G,), "G"),
        (M.etf_distance, (np.ones((1, 1)),), "G"),
        (M.centered, (np.ones(3),), "G"),
        (M.cosine, (np.ones((2, 3)),), "G"),
        (M.effective_rank, (NAN_G,), "G"),
        (M.gram_metrics, (GOOD_G, GOOD_X[:, :3]), "X"),
        (M.semantic_strength, (GOOD_G, np.ones(4)), "X"),
        (M.cka, (GOOD_G, GOOD_X[:, :3]), "X"),
        (M.attribute_energy, (GOOD_G, np.full((2, 4), np.nan)), "X"),
        (M.pair_cosines, (GOOD_G, 0.5 * GOOD_X), "X"),
        (M.shared_attribute_gap, (GOOD_G, -GOOD_X), "X"),
        (M.attribute_projector, (np.ones((2, 1)),), "X"),
        (M.nc1, (np.ones((2, 4)), [0, 1, 0]), "labels"),
        (M.nc1, (np.ones((2, 4)), [0.5, 1, 0, 1]), "labels"),
        (M.nc1, (np.ones((2, 4)), [0, 0, 0, 0]), "labels"),
        (M.nc1, (np.full((2, 4), np.nan), [0, 1, 0, 1]), "H"),
        (M.self_duality, (np.ones((3, 2)), np.ones((2, 4))), "W"),
        (M.ncc_agreement, (np.ones((4, 2)), np.ones((3, 5)), np.ones((2, 4))), "H"),
        (M.phase_times, ([0.0, 1.0, 2.0], [1.0, 2.0]), "strength"),
        (M.phase_times, ([0.0, 2.0, 1.0], [1.0, 2.0, 3.0]), "ts"),
        (M.phase_times, ([0.0, 1.0], [1.0, 2.0], [1.0]), "etf_dist"),
        (M.phase_times, ([0.0, 1.0], [1.0, 2.0], None, -1.0), "etf_tol"),
    ],
)
def test_bad_input_raises_naming_the_argument(fn, args, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        fn(*args)


def test_trajectory_metrics_design_mismatch():
    grams = [ut.etf_gram(4)]
    traj = _stack_trajectory(grams, grams)
    with pytest.raises(ValueError, match="design"):
        M.trajectory_metrics(traj, ut.designs.factorial((2, 3)), which="H")
    with pytest.raises(ValueError, match="design"):
        M.trajectory_metrics(traj, ut.designs.factorial((2, 3)), which="W")


# -- features with a large common offset, and inputs that are not Gram matrices ------------------------
def _nc1_reference(H: np.ndarray, y: np.ndarray) -> float:
    """Papyan's NC1 written out with d×d scatter matrices; Σ_B⁺ keeps its top K-1 eigen-directions."""
    classes = np.unique(y)
    K, N = classes.size, y.size
    mu_G = H.mean(axis=1, keepdims=True)
    means = np.stack([H[:, y == k].mean(axis=1) for k in classes], axis=1)
    Sw = sum(np.outer(H[:, i] - means[:, y[i]], H[:, i] - means[:, y[i]]) for i in range(N)) / N
    Sb = sum(np.outer(means[:, k] - mu_G[:, 0], means[:, k] - mu_G[:, 0]) for k in range(K)) / K
    vals, vecs = np.linalg.eigh(Sb)
    top = np.argsort(vals)[::-1][: K - 1]
    Sb_pinv = (vecs[:, top] / vals[top]) @ vecs[:, top].T
    return float(np.trace(Sw @ Sb_pinv) / K)


@pytest.mark.parametrize("offset", [0.0, 1e2, 1e4, 1e8])
def test_nc1_with_a_large_common_offset(offset):
    rng = np.random.default_rng(0)
    K, d, n = 5, 16, 10
    y = np.repeat(np.arange(K), n)
    H = rng.normal(size=(d, K))[:, y] + 0.3 * rng.normal(size=(d, K * n))
    ref = _nc1_reference(H, y)  # on the offset-free features: NC1 is translation invariant
    # rounding in the offset features is eps·offset relative to features of size ~1
    np.testing.assert_allclose(M.nc1(H + offset, y), ref, rtol=1e-10 + 1e-14 * offset)


def test_ncc_agreement_with_a_large_common_offset():
    rng = np.random.default_rng(1)
    d, K, N, offset = 8, 6, 200, 1e8
    Mn = rng.normal(size=(d, K)) + offset
    H = rng.normal(size=(d, N)) * 0.7 + offset
    W = rng.normal(size=(K, d))
    # nearest centre by direct subtraction (exact for these magnitudes), independent of the expanded form
    nearest = np.argmin(((H[:, :, None] - Mn[:, None, :]) ** 2).sum(axis=0), axis=1)
    expected = float(np.mean(np.argmax(W @ H, axis=0) == nearest))
    assert M.ncc_agreement(W, H, Mn) == expected


@pytest.mark.parametrize(
    "G, match",
    [
        (np.array([[1.0, 0.5], [0.2, 1.0]]), "symmetric"),
        (np.array([[-1.0, 0.0], [0.0, 1.0]]), "negative"),
        (np.array([[1.0, np.nan], [np.nan, 1.0]]), "finite"),
    ],
)
def test_not_a_gram_is_an_error_not_nan(G, match):
    with pytest.raises(ValueError, match=match):
        M.etf_distance(G)
    with pytest.raises(ValueError, match=match):
        M.gram_metrics(G)


def test_peak_on_a_flat_plateau_is_where_it_is_reached():
    """s(t) = 1 - e^{-t} saturates: the peak is the first saved time within PEAK_RTOL of the maximum
    (e^{-t} <= 1e-9 from t = 9 ln 10 ≈ 20.7 on), not the argmax of rounding noise on the plateau."""
    ts = np.arange(0.0, 60.0, 1.0)
    rng = np.random.default_rng(0)
    s = -np.expm1(-ts) + 1e-15 * rng.standard_normal(ts.size)
    out = M.phase_times(ts, s)
    assert out["peak"] == 21.0 and out["collapse"] is None
    assert PEAK_RTOL == 1e-9
