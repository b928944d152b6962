"""Sweeps: labelled results, failures recorded, resumption after a kill, refusal of a different sweep, bad
input before any work, process pools and Dask, the built-in phase diagram and scaling sweeps.

Expected values are closed forms written here (sums and products of the axis values, the A×B end-state
inequality of the Theory page, exact power laws), never values produced by the sweep itself.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import ufmtheory as ut
from ufmtheory.experiments.phase_diagram import etf_boundary_ratio, fit_power_law
from ufmtheory.experiments.sweep import load_sweep, sweep

XS, YS = [1, 2, 3], [0.5, 1.5]


def poly(x: float, y: float, fail_at: float | None = None) -> dict:
    """Closed-form outputs (a number, a small array and a string); raises at ``x == fail_at``."""
    if fail_at is not None and x == fail_at:
        raise RuntimeError(f"boom at x={x}")
    if os.environ.get("UFM_TEST_SWEEP_KILL") == f"{x},{y}":
        os.kill(os.getpid(), signal.SIGKILL)  # a hard kill: no finally clause, no flush
    if _KILL_AT == (x, y):
        raise _Killed
    return {"s": x + y, "v": np.array([x, y, x * y]), "tag": f"{x}/{y}"}


class _Killed(BaseException):
    """Stands for SIGKILL in-process: not an Exception, so the sweep does not record it as a failure."""


_KILL_AT: tuple[float, float] | None = None
_CALLS: dict[str, int] = {}


def flaky(x: float) -> dict:
    """Fails on the first call for each x (in this process), succeeds on the second."""
    _CALLS[str(x)] = _CALLS.get(str(x), 0) + 1
    if _CALLS[str(x)] == 1:
        raise OSError("transient")
    return {"y": 2 * x}


def _expected_s() -> np.ndarray:
    return np.add.outer(np.array(XS, float), np.array(YS))


def test_product_and_zip_labelled_outputs() -> None:
    ds = sweep(poly, {"x": XS, "y": YS}, executor="serial", progress=False)
    assert ds["s"].dims == ("x", "y") and ds["x"].values.tolist() == XS and ds["y"].values.tolist() == YS
    np.testing.assert_array_equal(ds["s"].values, _expected_s())
    np.testing.assert_array_equal(ds["v"].sel(x=3, y=1.5).values, [3.0, 1.5, 4.5])
    assert ds["tag"].sel(x=2, y=0.5).item() == "2/0.5"
    assert (ds["status"] == "ok").all() and (ds["attempts"] == 1).all()
    assert json.loads(ds.attrs["sweep_axes"]) == {"x": XS, "y": YS}

    z = sweep(poly, {"x": XS, "y": [10.0, 20.0, 30.0]}, mode="zip", executor="serial", progress=False)
    assert z["s"].dims == ("point",) and z["s"].values.tolist() == [11.0, 22.0, 33.0]
    assert z["x"].values.tolist() == XS


def test_failures_are_recorded_and_retried() -> None:
    ds = sweep(functools.partial(poly, fail_at=2), {"x": XS, "y": YS}, executor="serial", progress=False)
    assert ds["status"].sel(x=2).values.tolist() == ["failed", "failed"]
    assert "RuntimeError: boom at x=2" in ds["error"].sel(x=2, y=0.5).item()
    assert np.isnan(ds["s"].sel(x=2)).all()
    np.testing.assert_array_equal(ds["s"].sel(x=[1, 3]).values, _expected_s()[[0, 2]])

    _CALLS.clear()
    once = sweep(flaky, {"x": [1.0, 2.0]}, executor="serial", progress=False)
    assert once["status"].values.tolist() == ["failed", "failed"]
    _CALLS.clear()
    twice = sweep(flaky, {"x": [1.0, 2.0]}, executor="serial", progress=False, retries=1)
    assert twice["y"].values.tolist() == [2.0, 4.0] and twice["attempts"].values.tolist() == [2, 2]


def test_thread_pool_takes_unpicklable_functions() -> None:
    with cf.ThreadPoolExecutor(2) as ex:
        ds = sweep(lambda x: {"sq": x * x}, {"x": [1, 2, 3]}, executor=ex, progress=False)
    assert ds["sq"].values.tolist() == [1.0, 4.0, 9.0]


def test_resume_after_kill_with_process_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ufmtheory.experiments import _sweep_store

    store = tmp_path / "s.zarr"
    # Killed at the 4th point with no flush of the arrays (as after SIGKILL): only the per-point journal
    # holds the three finished points.
    with monkeypatch.context() as m:
        m.setattr(_sweep_store.Store, "flush", lambda self, table: None)
        m.setattr(sys.modules[__name__], "_KILL_AT", (2, 1.5))
        with pytest.raises(_Killed):
            sweep(poly, {"x": XS, "y": YS}, executor="serial", store=store, progress=False)
    part = load_sweep(store)
    assert part["status"].values.tolist() == [["ok", "ok"], ["ok", "pending"], ["pending", "pending"]]
    np.testing.assert_array_equal(part["s"].values[0], _expected_s()[0])

    full = sweep(poly, {"x": XS, "y": YS}, executor=2, store=store, progress=False)
    assert json.loads(full.attrs["sweep_stats"])["n_run"] == 3
    np.testing.assert_array_equal(full["s"].values, _expected_s())
    _check_flushed(store)


def _check_flushed(store: Path) -> None:
    """After the final flush the arrays alone (plain xarray, no journal) hold every point."""
    import xarray as xr

    on_disk = xr.open_zarr(store).load()
    np.testing.assert_array_equal(on_disk["s"].values, _expected_s())
    assert (on_disk["status"].values == "ok").all()
    assert not list((store / "_journal").glob("*.json"))


@pytest.mark.slow
def test_resume_after_sigkill(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    # A child process runs the sweep and is SIGKILLed at the 4th point (x=2, y=1.5): nothing in the sweep
    # gets to clean up.
    code = textwrap.dedent(
        f"""
        import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_sweep import poly
        from ufmtheory.experiments.sweep import sweep
        sweep(poly, {{"x": {XS}, "y": {YS}}}, executor="serial", store={str(store)!r}, progress=False,
              flush_s=1e9, version="1")
        """
    )
    env = {**os.environ, "UFM_TEST_SWEEP_KILL": "2,1.5"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert load_sweep(store)["status"].values.tolist()[1] == ["ok", "pending"]
    full = sweep(poly, {"x": XS, "y": YS}, executor="serial", store=store, progress=False, version="1")
    assert json.loads(full.attrs["sweep_stats"])["n_run"] == 3
    _check_flushed(store)


def test_store_refuses_a_different_sweep(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    sweep(poly, {"x": XS, "y": YS}, executor="serial", store=store, progress=False)
    again = sweep(poly, {"x": XS, "y": YS}, executor="serial", store=store, progress=False)
    assert json.loads(again.attrs["sweep_stats"])["n_run"] == 0
    with pytest.raises(ValueError, match="different sweep: axes"):
        sweep(poly, {"x": XS + [4], "y": YS}, executor="serial", store=store, progress=False)
    with pytest.raises(ValueError, match="different sweep: function"):
        sweep(functools.partial(poly, fail_at=9), {"x": XS, "y": YS}, executor="serial", store=store)
    with pytest.raises(ValueError, match="function version"):
        sweep(poly, {"x": XS, "y": YS}, executor="serial", store=store, version="2")
    (tmp_path / "other").mkdir()
    with pytest.raises(ValueError, match="not a sweep store"):
        sweep(poly, {"x": XS, "y": YS}, executor="serial", store=tmp_path / "other")


def test_bad_input_before_any_work() -> None:
    with pytest.raises(ValueError, match=r"unknown axis name\(s\) \['z'\]"):
        sweep(poly, {"x": XS, "z": YS}, executor="serial")
    with pytest.raises(ValueError, match=r"needs argument\(s\) \['y'\]"):
        sweep(poly, {"x": XS}, executor="serial")
    with pytest.raises(ValueError, match="axes\\['y'\\] is empty"):
        sweep(poly, {"x": XS, "y": []}, executor="serial")
    with pytest.raises(ValueError, match="non-empty mapping"):
        sweep(poly, {}, executor="serial")
    with pytest.raises(ValueError, match="equal length"):
        sweep(poly, {"x": XS, "y": YS}, mode="zip", executor="serial")
    with pytest.raises(TypeError, match="cannot be sent to worker processes"):
        sweep(lambda x: {"x": x}, {"x": [1]}, executor=2)
    with pytest.raises(ConnectionError, match="could not reach the Dask scheduler"):
        sweep(poly, {"x": XS, "y": YS}, executor="tcp://127.0.0.1:9", timeout=1)


def test_dask_in_process_client_matches_serial() -> None:
    from distributed import Client

    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
        ds = sweep(poly, {"x": XS, "y": YS}, executor=client, progress=False)
    np.testing.assert_array_equal(ds["s"].values, _expected_s())


@pytest.mark.slow
def test_dask_local_cluster_processes(tmp_path: Path) -> None:
    import cloudpickle
    from distributed import Client, LocalCluster

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import the test module
    try:
        with (
            LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            ds = sweep(
                functools.partial(poly, fail_at=3),
                {"x": XS, "y": YS},
                executor=client,
                store=tmp_path / "d.zarr",
                progress=False,
            )
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    np.testing.assert_array_equal(ds["s"].values[:2], _expected_s()[:2])
    assert ds["status"].sel(x=3).values.tolist() == ["failed", "failed"]


# -- built-in sweeps --------------------------------------------------------------------------------------
def test_etf_boundary_ratio_solves_the_closed_form() -> None:
    assert etf_boundary_ratio(3, 3) == 1.0  # 1/1 = 2/sqrt(3 + 1)
    for A, B in ((2, 3), (4, 4), (3, 7)):
        r = etf_boundary_ratio(A, B)
        assert math.isclose(1 / r, 1 / math.sqrt(B + r * r) + 1 / math.sqrt(A + r * r), rel_tol=1e-12)


def test_phase_diagram_end_state_follows_the_two_factor_boundary() -> None:
    # Ridge on E, 2×3 grid, alpha = 1: ETF iff 1/beta < 1/sqrt(alpha² B + beta²) + 1/sqrt(alpha² A + beta²)
    # (Theory page, end states). Betas well away from the boundary (r = 0.90) on both sides.
    A, B, betas = 2, 3, [0.4, 2.0]
    ds = ut.phase_diagram(
        ut.designs.factorial((A, B)),
        {"beta": betas},
        alpha=1.0,
        ridge="E",
        lam_W=1e-3,
        lam_E=1e-3,
        t1_max=1e4,
        points_per_decade=5,
        executor="serial",
        progress=False,
    )
    expected = [
        "etf" if 1 / b < 1 / math.sqrt(B + b * b) + 1 / math.sqrt(A + b * b) else "semantic" for b in betas
    ]
    assert ds["end_state"].values.tolist() == expected
    assert set(ds.data_vars) >= {"onset", "peak", "collapse", "etf_time", "peak_strength", "end_state"}
    assert ds.attrs["boundary_ratio"] == etf_boundary_ratio(A, B)


def test_phase_diagram_checks_parameters_first() -> None:
    d = ut.designs.factorial((2, 2))
    with pytest.raises(ValueError, match="unknown parameter"):
        ut.phase_diagram(d, {"gamma": [1.0]}, executor="serial")
    with pytest.raises(ValueError, match="both swept"):
        ut.phase_diagram(d, {"alpha": [1.0]}, alpha=2.0, executor="serial")
    with pytest.raises(ValueError, match="alpha"):
        ut.phase_diagram(d, {"alpha": [-1.0]}, executor="serial")


def test_fit_power_law_and_scaling_sizes() -> None:
    K = np.array([9.0, 100.0, 10_000.0])
    fit = fit_power_law(K, 5.0 * K**1.5)
    assert math.isclose(fit["exponent"], 1.5, rel_tol=1e-12) and math.isclose(fit["prefactor"], 5.0)
    assert math.isnan(fit_power_law([4.0], [1.0])["exponent"])
    ds = ut.scaling([(2, 2), (2, 3)], t1_max=1e3, points_per_decade=4, executor="serial", progress=False)
    assert ds["K"].values.tolist() == [4.0, 6.0]
    np.testing.assert_allclose(ds["lam"].values, [9e-3 / 4, 9e-3 / 6])
    with pytest.raises(ValueError, match="pair"):
        ut.scaling([(3, 3, 3)], executor="serial")


# -- ufm sweep --------------------------------------------------------------------------------------------
def test_cli_runs_resumes_and_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ufmtheory.cli import main

    cfg = tmp_path / "sc.toml"
    cfg.write_text(
        'kind = "scaling"\nsizes = [[2, 2], [2, 3]]\noptions = {points_per_decade = 3, t1_max = 1e3}\n'
    )
    out = tmp_path / "sc.zarr"
    assert main(["sweep", str(cfg), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    assert "2 points (2 run now" in capsys.readouterr().out
    assert main(["sweep", str(cfg), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    assert "2 points (0 run now" in capsys.readouterr().out
    np.testing.assert_array_equal(load_sweep(out)["K"].values, [4.0, 6.0])

    cfg.write_text('kind = "scaling"\nsizes = [[2, 2]]\noptions = {points_per_decade = 3, t1_max = 1e3}\n')
    assert main(["sweep", str(cfg), "--out", str(out), "--no-progress"]) == 2
    assert "different sweep" in capsys.readouterr().err


def test_cli_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ufmtheory.cli import main

    assert main(["sweep", "--schema"]) == 0 and '"kind": "phase_diagram"' in capsys.readouterr().out
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"kind": "sideways"}))
    assert main(["sweep", str(cfg)]) == 2 and "kind must be one of" in capsys.readouterr().err
    cfg.write_text(json.dumps({"kind": "phase_diagram", "design": {"kind": "factorial", "sizes": [2, 2]},
                               "axes": {"alpha": {"geomspace": [0, 1, 3]}}}))  # fmt: skip
    assert main(["sweep", str(cfg)]) == 2 and "geomspace needs start, stop > 0" in capsys.readouterr().err
    cfg.write_text(json.dumps({"kind": "scaling", "sizes": [[2, 2]]}))
    args = ["sweep", str(cfg), "--out", str(tmp_path / "x.zarr"), "--scheduler", "tcp://127.0.0.1:9"]
    assert main([*args, "--timeout", "1"]) == 2
    assert "could not reach the Dask scheduler" in capsys.readouterr().err


@pytest.mark.slow
def test_training_sweep_resumes_a_killed_run_bit_identically(tmp_path: Path) -> None:
    from ufmtheory.baseline.train import TrainConfig, train
    from ufmtheory.experiments.training_sweep import _point_key

    d = ut.designs.factorial((2, 2))
    fixed = {"steps": 20, "width": 16, "n_heads": 2, "n_snapshots": 5}
    ref = ut.training_sweep(d, {"seed": [0]}, executor="serial", progress=False, **fixed)
    # The run of point seed=0 "killed" at step 10, with its checkpoints where the sweep looks for them.
    ckpt = tmp_path / "ck"
    cfg = TrainConfig(
        seed=0, checkpoint_every=2, checkpoint_dir=str(ckpt / _point_key({"seed": 0})), stop_at=10
    )
    train(d, cfg, **fixed)
    ds = ut.training_sweep(d, {"seed": [0]}, checkpoint_dir=ckpt, executor="serial", progress=False, **fixed)
    assert ds["resumed_from"].item().startswith("ckpt_000000010") and ref["resumed_from"].item() == ""
    for name in ("strength", "loss", "final_loss"):
        np.testing.assert_array_equal(ds[name].values, ref[name].values)
    assert not (ckpt / _point_key({"seed": 0})).exists()  # a finished run's checkpoints are removed
