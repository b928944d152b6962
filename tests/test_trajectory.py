"""Trajectory: validation, exact values at saved times, cubic interpolation in log-time, save/load roundtrip,
and the default log grid."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ufmtheory as ut
from ufmtheory import Trajectory, log_grid

from helpers import budget


def _toy(ts, m=2, V=3, seed=0, **kw):
    rng = np.random.default_rng(seed)
    T = len(ts)
    return Trajectory(
        ts=np.asarray(ts, dtype=float),
        gram_H=rng.standard_normal((T, m, m)),
        gram_W=rng.standard_normal((T, V, V)),
        loss=rng.random(T),
        **kw,
    )


# -- log_grid ----------------------------------------------------------------------------------------
@settings(max_examples=budget(25))
@given(t1=st.floats(1e-3, 1e12), n=st.integers(2, 300))
def test_log_grid(t1, n):
    g = log_grid(t1, n=n)
    assert g.shape == (n + 1,) and g[0] == 0.0
    assert g[1] == min(1e-2, t1 * 1e-3)
    assert g[-1] == t1  # exactly: solvers end at t1 and Trajectory.at(t1) must not be out of range
    ratios = np.diff(np.log(g[1:]))
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-9, atol=1e-12)  # equal steps in log t
    assert np.all(np.diff(g) > 0)


def test_log_grid_t_min_and_validation():
    g = log_grid(100.0, n=3, t_min=1.0)
    np.testing.assert_allclose(g, [0.0, 1.0, 10.0, 100.0], rtol=1e-14)
    with pytest.raises(ValueError, match="t1"):
        log_grid(-1.0)
    with pytest.raises(ValueError, match="t1"):
        log_grid(float("nan"))
    with pytest.raises(ValueError, match="n must be >= 2"):
        log_grid(10.0, n=1)
    with pytest.raises(ValueError, match="t_min"):
        log_grid(10.0, t_min=20.0)


# -- interpolation -----------------------------------------------------------------------------------
def test_at_exact_at_saved_times():
    ts = np.concatenate([[0.0], np.logspace(-2, 3, 12)])
    tr = _toy(ts)
    for i, t in enumerate(ts):
        gH, gW = tr.at(t)
        np.testing.assert_array_equal(gH, tr.gram_H[i])
        np.testing.assert_array_equal(gW, tr.gram_W[i])
        assert tr.loss_at(t) == tr.loss[i]
    np.testing.assert_array_equal(tr.final()[0], tr.gram_H[-1])
    np.testing.assert_array_equal(tr.final()[1], tr.gram_W[-1])


@settings(max_examples=budget(25))
@given(frac=st.floats(0.0, 1.0), i=st.integers(1, 5))
def test_at_is_exact_for_cubics_in_log_time(frac, i):
    """Between positive saved times the interpolant is the cubic in s = log t through the four nearest
    saved points, so values that are cubic in s come back exactly; on [0, t_1] it is linear in t."""
    ts = np.array([0.0, 0.5, 2.0, 3.0, 50.0, 1e4, 2e4])
    rng = np.random.default_rng(i)
    coef_H, coef_W, coef_l = rng.standard_normal((4, 2, 2)), rng.standard_normal((4, 3, 3)), rng.random(4)

    def cubic(coef, t):
        s = np.log(t)
        return sum(c * s**k for k, c in enumerate(coef))

    pos = ts[1:]
    tr = Trajectory(
        ts=ts,
        gram_H=np.concatenate([[np.zeros((2, 2))], [cubic(coef_H, t) for t in pos]]),
        gram_W=np.concatenate([[np.zeros((3, 3))], [cubic(coef_W, t) for t in pos]]),
        loss=np.concatenate([[0.0], [cubic(coef_l, t) for t in pos]]),
    )
    a, b = ts[i], ts[i + 1]
    t = min(max(float(np.exp((1 - frac) * np.log(a) + frac * np.log(b))), a), b)
    gH, gW = tr.at(t)
    scale = 1 + np.log(2e4) ** 3  # the cubic's size over the grid: rounding is relative to it
    np.testing.assert_allclose(gH, cubic(coef_H, t), atol=1e-10 * scale)
    np.testing.assert_allclose(gW, cubic(coef_W, t), atol=1e-10 * scale)
    assert tr.loss_at(t) == pytest.approx(cubic(coef_l, t), abs=1e-10 * scale)
    # first interval starts at t = 0: linear
    gH0, _ = tr.at(0.5 * frac)
    np.testing.assert_allclose(gH0, frac * tr.gram_H[1], atol=1e-12)


def test_at_geometric_midpoint_is_the_average():
    tr = _toy([1.0, 100.0])
    gH, _ = tr.at(10.0)
    np.testing.assert_allclose(gH, 0.5 * (tr.gram_H[0] + tr.gram_H[1]), atol=1e-14)
    for bad in (0.5, 100.5):
        with pytest.raises(ValueError, match="t must lie in"):
            tr.at(bad)


# -- validation --------------------------------------------------------------------------------------
def test_trajectory_validation():
    rng = np.random.default_rng(0)
    good = dict(ts=[0.0, 1.0], gram_H=np.zeros((2, 3, 3)), gram_W=np.zeros((2, 4, 4)), loss=[1.0, 0.5])
    Trajectory(**good)
    bad = [
        (dict(ts=[1.0, 1.0]), "ts must be strictly increasing"),
        (dict(ts=[]), "ts must be a non-empty"),
        (dict(gram_H=np.zeros((3, 3, 3))), "gram_H"),
        (dict(gram_H=rng.random((2, 3, 2))), "gram_H"),
        (dict(gram_W=np.zeros((2, 4))), "gram_W"),
        (dict(loss=[1.0]), "loss"),
        (dict(time_unit="epochs"), "time_unit"),
    ]
    for override, message in bad:
        with pytest.raises(ValueError, match=message):
            Trajectory(**{**good, **override})
    tr = Trajectory(**good, status="failed", message="test")
    assert not tr.ok and len(tr) == 2 and "failed" in repr(tr) and tr.message == "test"


# -- persistence -------------------------------------------------------------------------------------
def test_save_load_roundtrip_with_params(tmp_path):
    prob = ut.UFM(ut.designs.factorial((2, 3)), dim=4, lam_W=1e-2, lam_H=2e-2)
    tr = ut.gradient_flow(prob, 50.0, init=ut.init.small(prob, 0.1, seed=0), saveat=8, save_params=True)
    npz, js = tr.save(tmp_path / "run")
    assert npz.name == "run.npz" and js.name == "run.json" and npz.exists() and js.exists()
    assert json.loads(js.read_text())["format"] == "ufmtheory.Trajectory/1"
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temp files
    for path in (tmp_path / "run", tmp_path / "run.npz", str(tmp_path / "run.json")):
        back = Trajectory.load(path)
        for name in ("ts", "gram_H", "gram_W", "loss"):
            np.testing.assert_array_equal(getattr(back, name), getattr(tr, name))
        assert set(back.params) == {"W", "H"}
        np.testing.assert_array_equal(back.params["W"], tr.params["W"])
        np.testing.assert_array_equal(back.params["H"], tr.params["H"])
        assert back.params["W"].shape == (len(tr), 6, 4) and back.params["H"].shape == (len(tr), 4, 6)
        assert (back.status, back.method, back.time_unit) == (tr.status, tr.method, tr.time_unit)
        assert back.stats == tr.stats
        assert back.meta == tr.meta


def test_save_load_without_params_and_numpy_stats(tmp_path):
    tr = _toy(
        [0.0, 1.0, 3.0],
        status="failed",
        message="x",
        method="gd",
        time_unit="step",
        stats={"n": np.int64(3), "arr": np.arange(3), "nested": {"t": (1, 2)}},
        meta={"k": np.float64(2.5)},
    )
    tr.save(tmp_path / "sub" / "toy.npz")
    back = Trajectory.load(tmp_path / "sub" / "toy")
    assert back.params is None
    assert back.stats == {
        "n_evals": None,
        "wall_time_s": None,
        "n": 3,
        "arr": [0, 1, 2],
        "nested": {"t": [1, 2]},
    }
    assert back.meta == {"k": 2.5}
    assert (back.status, back.message, back.method, back.time_unit) == ("failed", "x", "gd", "step")
    np.testing.assert_array_equal(back.gram_W, tr.gram_W)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        Trajectory.load(tmp_path / "missing")
    tr = _toy([0.0, 1.0])
    _, js = tr.save(tmp_path / "x")
    js.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not a ufmtheory trajectory"):
        Trajectory.load(tmp_path / "x")


# -- files: corruption, interrupted saves, hostile scheme descriptions --------------------------------
def _saved(tmp_path):
    prob = ut.UFM(ut.designs.factorial((3,)), dim=3, lam_W=1e-2, lam_H=1e-2)
    traj = ut.gradient_flow(prob, 10.0, init=ut.init.small(prob, 1e-2, seed=0), saveat=5)
    return traj.save(tmp_path / "run")


@pytest.mark.parametrize("cut", [0, 10, 100, -20])
def test_load_truncated_npz_is_one_value_error(tmp_path, cut):
    npz, _ = _saved(tmp_path)
    data = npz.read_bytes()
    npz.write_bytes(data[:cut] if cut >= 0 else data[:cut] + b"\0" * 20)
    with pytest.raises(ValueError, match="run.npz"):
        Trajectory.load(tmp_path / "run")


@pytest.mark.parametrize("text", ["", "{", "[]", '{"format": "x"}', '{"format": "ufmtheory.Trajectory/1"}'])
def test_load_bad_json_is_one_value_error(tmp_path, text):
    _, js = _saved(tmp_path)
    js.write_text(text)
    with pytest.raises(ValueError, match="run"):
        Trajectory.load(tmp_path / "run")


def test_load_refuses_arrays_and_metadata_of_different_saves(tmp_path):
    _, js = _saved(tmp_path)
    old_meta = js.read_bytes()
    _saved(tmp_path)  # a second save; then put the first save's metadata back (a save killed mid-way)
    js.write_bytes(old_meta)
    with pytest.raises(ValueError, match="different saves"):
        Trajectory.load(tmp_path / "run")


@pytest.mark.timeout(20)
def test_load_refuses_a_huge_scheme_description_quickly(tmp_path):
    import json

    _, js = _saved(tmp_path)
    info = json.loads(js.read_text())
    info["format"] = "ufmtheory.Trajectory/2"
    info["grams"] = {"gram_H": {"storage": "structured", "scheme": {"kind": "factorial", "sizes": [2] * 30}}}
    js.write_text(json.dumps(info))
    with pytest.raises(ValueError, match="factors"):
        Trajectory.load(tmp_path / "run")


def test_save_refuses_a_folder_in_the_way_before_writing_anything(tmp_path):
    (tmp_path / "run.json").mkdir()
    prob = ut.UFM(ut.designs.factorial((3,)), dim=3)
    traj = ut.gradient_flow(prob, 1.0, init=ut.init.small(prob, 1e-2, seed=0), saveat=3)
    with pytest.raises(ValueError, match="folder"):
        traj.save(tmp_path / "run")
    assert not (tmp_path / "run.npz").exists()


def test_at_interpolates_to_o_h4_between_saved_times():
    # Exact ETF-mode flow from an aligned init: HᵀH(t) = u(t) C_K with u(t) in closed form (docs: Theory §4).
    K, u0 = 7, 1e-2
    prob = ut.UFM(ut.designs.factorial((K,)), dim=K)
    traj = ut.gradient_flow(prob, 1e3, init=ut.init.aligned(prob, scale=u0), rtol=1e-11, atol=1e-13)
    C = np.eye(K) - 1.0 / K
    for t in (0.3, 5.0, 77.0):  # 5.0 sits in the fast part of the flow, where linear interpolation erred 1e-3
        exact = ut.etf_mode_u(t, K, u0) * C
        err = np.abs(traj.at(t)[0] - exact).max() / np.abs(exact).max()
        assert err < 3e-5, (t, err)
    i = 57  # exact at a saved time
    np.testing.assert_array_equal(traj.at(traj.ts[i])[0], traj.gram_H[i])
    assert traj.loss_at(traj.ts[i]) == traj.loss[i]
    with pytest.raises(ValueError, match="t must lie"):
        traj.at(float("nan"))


def test_dense_output_is_used_by_at_and_dropped_on_save(tmp_path):
    # A continuous output that differs from any interpolation of the grid: at/loss_at must return it exactly.
    ts = np.array([0.0, 1.0, 2.0, 4.0, 8.0])
    grams = np.stack([np.eye(2) * (1 + t) for t in ts])

    def dense(t):
        return np.eye(2) * (1 + t) ** 2, np.eye(2) * 3 * t, -t

    traj = Trajectory(ts=ts, gram_H=grams, gram_W=grams, loss=-ts, dense=dense)
    gH, gW = traj.at(3.0)
    np.testing.assert_array_equal(gH, np.eye(2) * 16.0)
    np.testing.assert_array_equal(gW, np.eye(2) * 9.0)
    assert traj.loss_at(3.0) == -3.0
    with pytest.raises(ValueError, match="t must lie"):
        traj.at(9.0)
    traj.save(tmp_path / "run")
    loaded = Trajectory.load(tmp_path / "run")
    assert loaded.dense is None
    np.testing.assert_allclose(loaded.at(8.0)[0], grams[-1])
    with pytest.raises(TypeError, match="dense must be"):
        Trajectory(ts=ts, gram_H=grams, gram_W=grams, loss=-ts, dense=grams)
    # Pickling (a worker process returning a run) drops the closure the same way instead of failing.
    unpickled = pickle.loads(pickle.dumps(traj))
    assert unpickled.dense is None and traj.dense is dense
    np.testing.assert_array_equal(unpickled.gram_H, grams)
    np.testing.assert_array_equal(unpickled.at(2.0)[0], grams[2])


@pytest.mark.parametrize("method", ["DOP853", "LSODA", "gram"])
def test_dense_output_is_as_accurate_as_the_solver_between_saved_times(method):
    # ETF-mode flow from an aligned init: HᵀH(t) = u(t) C_K in closed form (docs: Theory §4). Between the
    # saved times the grid interpolation errs ~1e-5; the kept dense output must match the solver's own error.
    K, u0 = 7, 1e-2
    prob = ut.UFM(ut.designs.factorial((K,)), dim=K if method != "gram" else 2 * K)
    init = ut.init.aligned(prob, scale=u0)
    kw = dict(init=init, rtol=1e-11, atol=1e-13, saveat=40, method=method)
    traj = ut.gradient_flow(prob, 1e3, dense_output=True, **kw)
    plain = ut.gradient_flow(prob, 1e3, **kw)
    assert traj.status == "ok" and traj.dense is not None and plain.dense is None
    C = np.eye(K) - 1.0 / K
    worst_dense = worst_grid = 0.0
    for t in np.geomspace(0.05, 900.0, 37):
        exact = ut.etf_mode_u(t, K, u0) * C
        worst_dense = max(worst_dense, np.abs(traj.at(t)[0] - exact).max() / np.abs(exact).max())
        worst_grid = max(worst_grid, np.abs(plain.at(t)[0] - exact).max() / np.abs(exact).max())
    assert worst_dense < 1e-7, worst_dense
    assert worst_grid > 100 * worst_dense  # the grid really is coarser, so the test sees the difference
    np.testing.assert_allclose(traj.gram_H, plain.gram_H, rtol=0, atol=1e-12 * np.abs(plain.gram_H).max())
