"""Structured Grams: Trajectories that hold Grams as coefficients on an association scheme's projectors.

Expected values come from the dense route: the same Grams materialised to K×K arrays and run through the
dense code (``Trajectory`` with arrays, ``metrics.trajectory_metrics``'s stack path), and projectors checked
against their Kronecker-product definitions.
"""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

import ufmtheory as ut
from ufmtheory.algebra.schemes import (
    factorial_scheme,
    hierarchical_scheme,
    scheme,
    scheme_from_description,
)
from ufmtheory.algebra.structured import GramTooLargeError, StructuredGrams
from ufmtheory.metrics import trajectory_metrics
from ufmtheory.solvers.reduced import ReducedProblem, reduced_solve
from ufmtheory.trajectory import Trajectory

from helpers import designs, kron_projector

DESIGNS = designs("fact2x3", "fact3x3", "fact2x2x3", "hier2x3", "hier3x2", "hier1x4")


def _pair(design, t1: float = 1e5, saveat: int = 40, **kw):
    """The same reduced flow as a dense and as a structured Trajectory."""
    prob = ut.ModifiedUFM(design, dim=design.m, alpha=1.0, beta=1.0, ridge="H", lam_W=1e-3, lam_H=1e-3, **kw)
    dense = reduced_solve(prob, t1, saveat=saveat, structured=False).trajectory
    struct = reduced_solve(prob, t1, saveat=saveat, structured=True).trajectory
    return dense, struct


def _special_coefficients(sch) -> np.ndarray:
    """Edge cases: zero Gram, all vectors equal (only P_∅), the ETF, the attribute projector, a non-PSD
    element, a single interaction mode, and a random element."""
    n_S = sch.n_S
    rows = [np.zeros(n_S), np.eye(n_S)[0], np.r_[0.0, np.ones(n_S - 1)]]
    attr = np.zeros(n_S)
    attr[list(sch.attribute_labels())] = 1.0
    rows.append(attr)
    rows.append(np.r_[1.0, -np.linspace(0.5, 1.5, n_S - 1)])
    rows.append(np.eye(n_S)[-1] * 2.5)
    rows.append(np.random.default_rng(0).random(n_S))
    return np.array(rows)


# -- StructuredGrams ---------------------------------------------------------------------------------------
def test_structured_grams_array_protocol() -> None:
    sch = factorial_scheme((2, 3))
    rng = np.random.default_rng(0)
    c = rng.standard_normal((5, sch.n_S))
    G = StructuredGrams(c, sch)
    dense = np.array(
        [sum(ci * kron_projector((2, 3), S) for ci, S in zip(row, sch.labels, strict=True)) for row in c]
    )
    assert G.shape == (5, 6, 6) and len(G) == 5 and G.ndim == 3 and G.K == 6 and G.dtype == np.float64
    np.testing.assert_array_equal(G.coefficients, c)
    with pytest.raises(ValueError):
        G.coefficients[0, 0] = 1.0  # read-only
    np.testing.assert_allclose(np.asarray(G), dense, atol=1e-14)
    np.testing.assert_allclose(G[2], dense[2], atol=1e-14)
    np.testing.assert_allclose(G[-1], dense[-1], atol=1e-14)
    np.testing.assert_allclose(G[np.int64(1)], dense[1], atol=1e-14)
    sub = G[1:4]
    assert isinstance(sub, StructuredGrams) and len(sub) == 3
    np.testing.assert_allclose(np.asarray(sub), dense[1:4], atol=1e-14)
    assert isinstance(G[[0, 4]], StructuredGrams) and isinstance(
        G[np.array([True, False] * 2 + [True])], type(G)
    )
    np.testing.assert_allclose(G[2, 1], dense[2, 1], atol=1e-14)
    np.testing.assert_allclose(G[:, 0, 1], dense[:, 0, 1], atol=1e-14)
    np.testing.assert_allclose(G[...], dense, atol=1e-14)
    np.testing.assert_allclose(np.stack(list(G)), dense, atol=1e-14)
    np.testing.assert_allclose(G.diagonal(), np.diagonal(dense, axis1=1, axis2=2)[:, 0], atol=1e-14)
    rel = sch.relation_matrix()
    for r in range(sch.n_r):
        i, j = np.argwhere(rel == r)[0]
        np.testing.assert_allclose(G.entries()[:, r], dense[:, i, j], atol=1e-14)
    with pytest.raises(IndexError):
        G[5]
    with pytest.raises(TypeError):
        G["a"]
    with pytest.raises(ValueError, match="shape"):
        StructuredGrams(c[:, :3], sch)
    with pytest.raises(ValueError, match="NaN"):
        StructuredGrams(np.full((1, sch.n_S), np.nan), sch)
    assert "StructuredGrams(T=5, K=6" in repr(G)
    assert scheme_from_description(G.describe()).key() == sch.key()


def test_structured_grams_refuse_large_materialisation() -> None:
    G = StructuredGrams(np.ones((3, 4)), factorial_scheme((1000, 1000)))
    assert G.shape == (3, 10**6, 10**6) and G.dense_nbytes == 3 * 8 * 10**12
    for action in (lambda: G[0], lambda: np.asarray(G), lambda: G.materialise(), lambda: G[:, 0, 0]):
        with pytest.raises(GramTooLargeError, match="coefficients"):
            action()
    # GramTooLargeError is both a MemoryError and a ValueError.
    with pytest.raises(MemoryError):
        G[0]
    with pytest.raises(ValueError):
        G[0]
    small = StructuredGrams(np.ones((3, 4)), factorial_scheme((4, 4)), max_bytes=2 * 16 * 16 * 8)
    small[0]  # one 16×16 matrix fits
    with pytest.raises(GramTooLargeError):
        np.asarray(small)  # three do not


def test_scheme_attributes_match_designs() -> None:
    """attribute_labels / shared_attributes describe the designs' own attribute codes."""
    for name, make in DESIGNS.items():
        design = make()
        sch = scheme(design)
        X = design.X
        np.testing.assert_array_equal(X.T @ X, sch.shared_attributes()[sch.relation_matrix()], err_msg=name)
        P = sum((sch.projector(sch.labels[i]) for i in sch.attribute_labels()), np.zeros((sch.K, sch.K)))
        np.testing.assert_allclose(P, ut.metrics.attribute_projector(X), atol=1e-12, err_msg=name)
        c = sch.algebra_coefficients(sch.shared_attributes())
        np.testing.assert_allclose(sch.materialise(c), X.T @ X, atol=1e-12, err_msg=name)


# -- metrics: structured fast path equals the dense path ---------------------------------------------------
@pytest.mark.parametrize("name", list(DESIGNS))
@pytest.mark.parametrize("which", ["H", "W"])
def test_structured_metrics_equal_dense(name: str, which: str) -> None:
    design = DESIGNS[name]()
    dense, struct = _pair(design)
    sch = struct.scheme
    for des in (None, design, sch):
        a = trajectory_metrics(dense, design if des is sch else des, which=which)
        b = trajectory_metrics(struct, des, which=which)
        assert list(a) == list(b)
        for key in a:
            np.testing.assert_array_equal(np.isnan(a[key]), np.isnan(b[key]), err_msg=key)
            np.testing.assert_allclose(b[key], a[key], rtol=0, atol=1e-10, err_msg=f"{name} {which} {key}")
    # The flow passes through the semantic phase and collapses (when the design has attributes).
    if sch.attribute_labels():
        s = struct.metrics(sch, which=which)["semantic_strength"]
        assert np.nanmax(s) > 0.2 and abs(s[-1]) < 1e-2


@pytest.mark.parametrize("name", list(DESIGNS))
def test_structured_metrics_edge_cases(name: str) -> None:
    design = DESIGNS[name]()
    sch = scheme(design)
    c = _special_coefficients(sch)
    non_psd = c[4][None]  # negative squared norms: not a Gram, refused by both paths alike
    for bad in (StructuredGrams(non_psd, sch), np.asarray(StructuredGrams(non_psd, sch))):
        with pytest.raises(ValueError, match="negative"):
            trajectory_metrics(Trajectory(ts=[0.0], gram_H=bad, gram_W=bad, loss=[0.0]), design)
    c = np.delete(c, 4, axis=0)
    G = StructuredGrams(c, sch)
    ts = np.arange(len(c), dtype=float)
    struct = Trajectory(ts=ts, gram_H=G, gram_W=G, loss=np.zeros(len(c)))
    dense = Trajectory(ts=ts, gram_H=np.asarray(G), gram_W=np.asarray(G), loss=np.zeros(len(c)))
    a = trajectory_metrics(dense, design)
    b = trajectory_metrics(struct, design)
    assert list(a) == list(b)
    for key in a:
        np.testing.assert_array_equal(np.isnan(a[key]), np.isnan(b[key]), err_msg=f"{name} {key}")
        np.testing.assert_allclose(b[key], a[key], rtol=0, atol=1e-10, err_msg=f"{name} {key}")
    assert np.all(np.isnan(b["etf_distance"][:2]))  # zero Gram; all vectors equal
    np.testing.assert_allclose(b["etf_distance"][2], 0.0, atol=1e-12)  # the ETF
    np.testing.assert_allclose(b["effective_rank"][2], sch.K - 1, rtol=1e-12)


def test_structured_metrics_reject_other_scheme() -> None:
    _, struct = _pair(ut.designs.factorial((2, 3)), t1=10.0, saveat=3)
    with pytest.raises(ValueError, match="scheme"):
        struct.metrics(ut.designs.factorial((3, 2)))
    with pytest.raises(ValueError, match="scheme"):
        struct.metrics(factorial_scheme((2, 2)))
    with pytest.raises(ValueError):
        struct.metrics(ut.designs.random_attributes(6, 4, 2, seed=0))


# -- Trajectory with structured Grams ----------------------------------------------------------------------
def test_trajectory_structured_access() -> None:
    design = ut.designs.factorial((3, 3))
    dense, struct = _pair(design, t1=1e4, saveat=15)
    assert struct.structured and not dense.structured
    assert struct.scheme.key() == scheme(design).key() and dense.scheme is None
    assert struct.gram_H.shape == dense.gram_H.shape == (16, 9, 9)
    np.testing.assert_allclose(np.asarray(struct.gram_H), dense.gram_H, rtol=0, atol=1e-13)
    np.testing.assert_allclose(np.asarray(struct.gram_W), dense.gram_W, rtol=0, atol=1e-13)
    # .at agrees with the dense interpolation, at saved times and between them.
    for t in [0.0, 1e-3, struct.ts[5], 0.37, 12.3, float(np.sqrt(struct.ts[9] * struct.ts[10])), 1e4]:
        for x, y in zip(struct.at(t), dense.at(t), strict=True):
            assert isinstance(x, np.ndarray) and x.shape == (9, 9)
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-12)
        cH, cW = struct.coefficients_at(t)
        np.testing.assert_allclose(struct.scheme.materialise(cH), dense.at(t)[0], atol=1e-12)
        np.testing.assert_allclose(struct.scheme.materialise(cW), dense.at(t)[1], atol=1e-12)
    for x, y in zip(struct.final(), dense.final(), strict=True):
        np.testing.assert_allclose(x, y, atol=1e-13)
    with pytest.raises(ValueError, match="dense"):
        dense.coefficients_at(1.0)
    with pytest.raises(ValueError, match="t must lie"):
        struct.coefficients_at(2e4)
    assert "structured(n_S=4" in repr(struct) and "m=9" in repr(struct)


def test_trajectory_validates_structured_grams() -> None:
    sch = factorial_scheme((2, 2))
    G = StructuredGrams(np.ones((3, 4)), sch)
    Trajectory(ts=[0.0, 1.0, 2.0], gram_H=G, gram_W=np.zeros((3, 5, 5)), loss=np.zeros(3))  # mixed is fine
    with pytest.raises(ValueError, match="gram_H"):
        Trajectory(ts=[0.0, 1.0], gram_H=G, gram_W=G[:2], loss=np.zeros(2))
    with pytest.raises(ValueError, match="gram_W"):
        Trajectory(ts=[0.0, 1.0], gram_H=G[:2], gram_W=G, loss=np.zeros(2))


@pytest.mark.parametrize("name", ["fact2x3", "fact2x2x3", "hier3x2"])
def test_structured_save_load_roundtrip(tmp_path, name: str) -> None:
    design = DESIGNS[name]()
    _, struct = _pair(design, t1=1e4, saveat=12)
    npz, js = struct.save(tmp_path / "run")
    info = json.loads(js.read_text())
    assert info["format"] == "ufmtheory.Trajectory/2"
    assert info["grams"]["gram_H"] == {"storage": "structured", "scheme": struct.scheme.describe()}
    with np.load(npz) as data:
        assert set(data.files) == {"ts", "loss", "gram_H_coeffs", "gram_W_coeffs", "save_id"}  # nothing K×K
    back = Trajectory.load(tmp_path / "run.npz")
    assert back.structured and back.scheme.key() == struct.scheme.key()
    for attr in ("gram_H", "gram_W"):
        np.testing.assert_array_equal(getattr(back, attr).coefficients, getattr(struct, attr).coefficients)
    np.testing.assert_array_equal(back.ts, struct.ts)
    np.testing.assert_array_equal(back.loss, struct.loss)
    assert (back.status, back.method, back.time_unit, back.meta) == (
        struct.status,
        struct.method,
        struct.time_unit,
        json.loads(json.dumps(struct.meta)),
    )
    for key, val in struct.metrics(design).items():
        np.testing.assert_array_equal(back.metrics(design)[key], val)
    # Dense trajectories keep the version-1 format.
    dense = Trajectory(ts=[0.0], gram_H=np.eye(2)[None], gram_W=np.eye(2)[None], loss=[0.0])
    _, js1 = dense.save(tmp_path / "dense")
    assert json.loads(js1.read_text())["format"] == "ufmtheory.Trajectory/1"


def test_reduced_flow_structured_default_by_size() -> None:
    rp = ReducedProblem.from_parts(factorial_scheme((100, 100)), alpha=1.0, beta=1.0)  # K = 10⁴ > 4096
    traj = reduced_solve(rp, 10.0, saveat=3).trajectory
    assert traj.structured and traj.gram_H.shape == (4, 10**4, 10**4)
    small = ReducedProblem.from_parts(hierarchical_scheme(2, 3), alpha=1.0, beta=1.0)
    assert not reduced_solve(small, 10.0, saveat=3).trajectory.structured
    assert reduced_solve(small, 10.0, saveat=3, structured=True).trajectory.structured
    # The deprecated spelling still works.


def test_million_contexts_structured_in_little_memory() -> None:
    """The 1000×1000 factorial design (K = 10⁶) to t = 1e6: a structured Trajectory and its metric curves,
    with peak traced memory (compilation included when it happens here) below 200 MB."""
    rp = ReducedProblem.from_parts(factorial_scheme((1000, 1000)), alpha=1.0, beta=1.0)
    tracemalloc.start()
    try:
        traj = reduced_solve(rp, 1e6).trajectory
        metrics_H = traj.metrics(traj.scheme)
        metrics_W = traj.metrics(traj.scheme, which="W")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"K = 1e6: peak traced memory {peak / 2**20:.1f} MiB, {traj.stats['n_evals']} evaluations")
    assert peak < 200 * 2**20
    assert traj.ok and traj.structured and traj.gram_H.shape == (201, 10**6, 10**6)
    for m in (metrics_H, metrics_W):
        assert set(m) == {
            "ts",
            "etf_distance",
            "effective_rank",
            "semantic_strength",
            "attribute_energy",
            "cka",
            "shared_gap",
        }
        assert all(np.all(np.isfinite(v[1:])) for v in m.values())
    # Semantic phase at t = 1e6 (no ridge, t_sem ~ 2e5): attribute structure, effective rank ~ 2·999.
    assert metrics_H["semantic_strength"][-1] > 0.9
    assert metrics_H["effective_rank"][-1] < 2 * 999 * 1.1
    assert metrics_H["shared_gap"][-1] == pytest.approx(1000 / (2 * 999), rel=1e-2)  # A/(2(A-1)), Theory §10
    with pytest.raises(GramTooLargeError):
        traj.at(1e6)
    cH, cW = traj.coefficients_at(1e6)
    np.testing.assert_array_equal(cH, traj.gram_H.coefficients[-1])
