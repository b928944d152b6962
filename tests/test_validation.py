"""Clocks without fitted maps (compare clock="same"/"lr"), an honest fitted map with map_status, input
geometry from a step-0 Gram, calibrate/validate, and the validation pipeline end to end (with a cheap
stand-in trainer; the real GPT smoke run is marked slow)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

import ufmtheory as ut
from ufmtheory.analysis.calibration import calibrate
from ufmtheory.analysis.comparison import compare
from ufmtheory.analysis.geometry import input_geometry
from ufmtheory.analysis.timemap import same_clock_theory
from ufmtheory.analysis.validation import validate

D33 = ut.designs.factorial((3, 3))


@pytest.fixture(scope="module")
def gf_theory() -> ut.Trajectory:
    prob = ut.ModifiedUFM(D33, dim=9, alpha=1.0, beta=1.0, ridge="H", lam_W=1e-3, lam_H=1e-3)
    init = ut.init.small(prob, scale=1e-2, seed=0)
    return ut.gradient_flow(prob, 1e5, init=init, saveat=ut.log_grid(1e5, 120, t_min=1e-2))


def _as_steps(traj: ut.Trajectory, a: float, b: float, meta=None) -> ut.Trajectory:
    pos = traj.ts > 0
    steps = np.exp((np.log(traj.ts[pos]) - a) / b)
    return ut.Trajectory(
        ts=steps,
        gram_H=np.asarray(traj.gram_H)[pos],
        gram_W=np.asarray(traj.gram_W)[pos],
        loss=traj.loss[pos],
        time_unit="step",
        meta=meta or {},
    )


# -- fitted map: global, with a map status ----------------------------------------------------------------
def test_fit_finds_a_slope_outside_the_old_starting_guesses(gf_theory):
    """The old fit started from b in 0.5..2 and stayed near its start; the grid search finds b = 0.3."""
    model = _as_steps(gf_theory, 2.0, 0.3)
    cmp = compare(gf_theory, model, D33, clock="fit")
    assert cmp.map_status == "ok" and cmp.ok
    assert cmp.b == pytest.approx(0.3, abs=1e-3) and cmp.a == pytest.approx(2.0, abs=1e-2)


def test_slope_at_its_bound_is_reported_and_no_mapped_time_is_a_number(gf_theory):
    """Reproduces issue 9 (b at its bound reported as "ok", phases at 1e-14 steps): a true slope 0.5 with
    b_range (0.9, 1.1) must end at the bound and say so."""
    model = _as_steps(gf_theory, 1.0, 0.5)
    cmp = compare(gf_theory, model, D33, clock="fit", b_range=(0.9, 1.1))
    assert cmp.b == pytest.approx(0.9, rel=1e-6)
    assert cmp.map_status == "at_bound" and cmp.status == "inaccurate" and not cmp.ok
    assert all(v is None for w in cmp.predicted.values() for v in w.values())
    assert "no mapped time" in cmp.table() and "at a bound" in cmp.message
    assert cmp.as_dict()["time_map"]["map_status"] == "at_bound"


def test_short_overlap_is_reported(gf_theory):
    # The model's steps span 8 decades on a slope-1 map, the theory only the first few of them.
    short = gf_theory.ts <= 0.1
    theory = ut.Trajectory(
        ts=gf_theory.ts[short],
        gram_H=gf_theory.gram_H[short],
        gram_W=gf_theory.gram_W[short],
        loss=gf_theory.loss[short],
    )
    model = _as_steps(gf_theory, 0.0, 1.0)
    cmp = compare(theory, model, D33, clock="lr", lr=1.0)
    assert cmp.map_status == "short_overlap" and cmp.status == "inaccurate"


def test_a_mapped_peak_far_outside_the_model_steps_is_an_extrapolation():
    from ufmtheory.analysis.timemap import _extrapolated

    steps = np.array([0.0, 1.0, 10.0, 3000.0])
    assert _extrapolated([3e-4], steps).startswith("the map puts")  # hierarchy seed 1 of docs/validation.md
    assert _extrapolated([5e4], steps) != ""
    assert _extrapolated([0.2, 25.0, None, 0.0], steps) == ""


# -- clocks without a fitted parameter --------------------------------------------------------------------
def _adamw_problem(design, alpha=3.0):
    return ut.ModifiedUFM(design, dim=16, alpha=alpha, beta=1.0, normalize=4.0)


def _fake_run(design, alpha, seed, steps=300, lr=1e-2, optimizer="adamw"):
    """A "trained model" that is itself a same-clock theory run, carrying a training config."""
    prob = _adamw_problem(design, alpha)
    opt = "gd" if optimizer == "sgd" else optimizer
    tr = ut.optimize(prob, steps, optimizer=opt, lr=lr, init=ut.init.normal(prob, 0.02, seed=seed), saveat=30)
    meta = {
        "config": {
            "optimizer": optimizer,
            "lr": lr,
            "seed": seed,
            "momentum": 0.0,
            "weight_decay": 0.0,
            "betas": [0.9, 0.999],
            "width": 16,
            "steps": steps,
        }
    }
    return ut.Trajectory(
        ts=tr.ts,
        gram_H=tr.gram_H,
        gram_W=tr.gram_W,
        loss=tr.loss,
        time_unit="step",
        meta=meta,
        status=tr.status,
    )


def test_same_clock_of_a_problem_reproduces_the_run_exactly():
    model = _fake_run(D33, 3.0, seed=4)
    cmp = compare(_adamw_problem(D33), model, D33)  # a problem and a model with a config: clock "same"
    assert cmp.clock == "same" and cmp.a == 0.0 and cmp.b == 1.0 and cmp.ok
    assert cmp.total_error < 1e-12
    assert cmp.predicted == cmp.measured


def test_lr_clock_for_gradient_descent_needs_no_parameter():
    prob = ut.ModifiedUFM(D33, dim=6, alpha=1.0, beta=1.0, lam_W=1e-2, lam_H=1e-2)
    init = ut.init.small(prob, 0.1, seed=3)
    lr, steps = 0.05, 4000
    gd = ut.optimize(prob, steps, optimizer="gd", lr=lr, init=init, saveat=40)
    flow = ut.gradient_flow(prob, lr * steps, init=init, saveat=ut.log_grid(lr * steps, 120, t_min=lr / 2))
    model = ut.Trajectory(
        ts=gd.ts,
        gram_H=gd.gram_H,
        gram_W=gd.gram_W,
        loss=gd.loss,
        time_unit="step",
        meta={"config": {"optimizer": "sgd", "lr": lr, "momentum": 0.0}},
    )
    cmp = compare(flow, model, D33)
    assert cmp.clock == "lr" and cmp.a == pytest.approx(math.log(lr)) and cmp.b == 1.0
    assert cmp.map_status == "ok" and cmp.ok
    assert cmp.errors["H"]["semantic_strength"] < 0.01 and cmp.errors["W"]["semantic_strength"] < 0.01
    # The same clock for an AdamW-trained model does not apply: no mapped time is given.
    adam = ut.Trajectory(
        ts=gd.ts,
        gram_H=gd.gram_H,
        gram_W=gd.gram_W,
        loss=gd.loss,
        time_unit="step",
        meta={"config": {"optimizer": "adamw", "lr": lr}},
    )
    na = compare(flow, adam, D33, clock="lr")
    assert na.map_status == "not_applicable" and na.status == "not_applicable"
    assert all(v is None for w in na.predicted.values() for v in w.values())


def test_a_diverged_run_is_reported_not_raised():
    prob = ut.UFM(D33, dim=3)
    blown = ut.optimize(prob, 50, optimizer="gd", lr=1e4, init=ut.init.normal(prob, 1.0, seed=0), saveat=50)
    assert blown.status in ("diverged", "nonfinite")
    theory = ut.optimize(prob, 50, optimizer="gd", lr=0.1, saveat=50)
    cmp = compare(theory, blown, D33, clock="same")
    assert cmp.status == blown.status and not cmp.ok
    assert "model run" in cmp.message and "model run" in cmp.table()


def test_a_variant_with_nan_error_is_listed_with_its_reason(gf_theory):
    model = _as_steps(gf_theory, 0.0, 1.0)
    G = np.asarray(gf_theory.gram_H).copy()
    G[:] = np.nan  # no finite metric at all
    nan_theory = ut.Trajectory(ts=gf_theory.ts, gram_H=G, gram_W=gf_theory.gram_W, loss=gf_theory.loss)
    cmp = compare(gf_theory, model, D33, clock="lr", lr=1.0, variants={"good": gf_theory, "nan": nan_theory})
    names = [v.name for v in cmp.variants]
    assert names == ["good", "nan"] and cmp.best_variant == "good"
    bad = cmp.variants[1]
    assert math.isnan(bad.total_error) and bad.status != "ok" and "finite" in bad.message
    assert "nan" in cmp.table()


@pytest.mark.parametrize("clock", ["banana", "gf"])
def test_bad_clock_raises(gf_theory, clock):
    with pytest.raises(ValueError, match="clock"):
        compare(gf_theory, _as_steps(gf_theory, 0.0, 1.0), D33, clock=clock)


def test_same_clock_needs_a_theory_in_steps(gf_theory):
    with pytest.raises(ValueError, match="clock='same'"):
        compare(gf_theory, _as_steps(gf_theory, 0.0, 1.0), D33, clock="same")


# -- input geometry ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("design", [D33, ut.designs.factorial((2, 2, 3)), ut.designs.hierarchical(2, 3)])
@pytest.mark.parametrize("ratio", [0.3, 1.0, 3.0])
def test_input_geometry_is_exact_on_the_modified_ufm_kernel(design, ratio):
    G = ratio**2 * design.X.T @ design.X + np.eye(design.m) + 0.7  # + a shared constant
    g = input_geometry(G, design)
    assert g.ok and g.alpha_over_beta == pytest.approx(ratio, rel=1e-9) and g.r2 == pytest.approx(1.0)


def test_input_geometry_of_unequal_tokens_matches_shared_energy():
    """Only the last factor shared (a GPT at init): α/β from the energy split, closed form."""
    X2 = D33.X[3:]  # the second factor's rows
    G = 2.0 * X2.T @ X2 + 0.5 * np.eye(9)
    C = np.eye(9) - 1 / 9
    e_shared = 2.0 * np.trace(C @ X2.T @ X2 @ C)
    expected = math.sqrt((e_shared / np.trace(C @ D33.X.T @ D33.X @ C)) / 0.5)
    assert input_geometry(G, D33).alpha_over_beta == pytest.approx(expected, rel=1e-9)


def test_input_geometry_bad_input():
    with pytest.raises(ValueError, match="gram_H0"):
        input_geometry(np.eye(4), D33)


# -- calibrate / validate ---------------------------------------------------------------------------------
def test_calibrate_recovers_the_generating_parameters_and_validate_predicts_exactly():
    """Runs generated by the theory itself (α = 3): calibration finds α = 3 inside its grid, and the
    held-out design is predicted with ratio 1 for every phase present."""
    runs = [_fake_run(D33, 3.0, seed=s) for s in (0, 1)]
    cal = calibrate(runs, D33, grid={"alpha": (1.5, 3.0, 6.0)}, dim=16, alpha_rule="fixed")
    assert cal.ok and cal.params["alpha"] == 3.0 and cal.params["beta"] == 1.0
    assert cal.params["normalize"] == 4.0 and cal.objective < 1e-12
    d = ut.designs.factorial((2, 3))
    held = [_fake_run(d, 3.0, seed=s) for s in (0, 1, 2)]
    val = validate(cal, {"2x3": (d, held)})
    assert val.ok and len(val.rows) == 3
    summary = val.summary["2x3"]
    present = [q for q, s in summary.items() if s["n"] > 0 and not q.startswith("curve RMS")]
    assert "W peak" in present
    for q in present:
        assert summary[q]["min"] == pytest.approx(1.0, abs=1e-9) and summary[q]["max"] == pytest.approx(1.0)
    assert summary["curve RMS W"]["max"] < 1e-12  # the same run: the curves coincide
    assert "2x3" in val.table()


def test_validate_reports_a_blown_up_model_run():
    cal = calibrate(
        [_fake_run(D33, 3.0, seed=0)], D33, grid={"alpha": (1.5, 3.0, 6.0)}, dim=16, alpha_rule="fixed"
    )
    good = _fake_run(D33, 3.0, seed=1)
    blown = ut.Trajectory(
        ts=good.ts[:3],
        gram_H=good.gram_H[:3],
        gram_W=good.gram_W[:3],
        loss=good.loss[:3],
        time_unit="step",
        meta=good.meta,
        status="nonfinite",
    )
    val = validate(cal, {"3x3": (D33, [good, blown])})
    assert val.status == "nonfinite" and "1 of 2 runs" in val.message
    assert [r["status"] for r in val.rows] == ["ok", "nonfinite"]
    assert "nonfinite" in val.table()


def test_calibration_at_the_edge_of_its_grid_says_so():
    runs = [_fake_run(D33, 3.0, seed=0)]
    cal = calibrate(runs, D33, grid={"alpha": (1.0, 2.0), "beta": (1.0,)}, dim=16, alpha_rule="fixed")
    assert cal.status == "inaccurate" and "edge of the grid" in cal.message


def test_same_clock_theory_needs_a_config():
    bare = _as_steps(ut.optimize(_adamw_problem(D33), 10, saveat=5), 0.0, 1.0)
    with pytest.raises(ValueError, match="config"):
        same_clock_theory(_adamw_problem(D33), bare)


# -- the pipeline -----------------------------------------------------------------------------------------
def _stand_in(design, kw):
    return _fake_run(design, 3.0, seed=kw["seed"], steps=kw["steps"], lr=kw["lr"], optimizer=kw["optimizer"])


def test_validation_pipeline_writes_its_files(tmp_path):
    from ufmtheory.experiments.validation import ValidationConfig, run_validation

    cfg = ValidationConfig(
        designs=("3x3", "2x3"),
        optimizers=("adamw",),
        seeds=(0,),
        steps=200,
        width=16,
        lr_adamw=1e-2,
        grid={"alpha": (1.5, 3.0, 6.0), "beta": (1.0,)},
        reference_gf=False,
    )
    res = run_validation(cfg, tmp_path, log=lambda s: None, trainer=_stand_in)
    for name in ("validation.json", "validation.md", "report.html", "strength_3x3_adamw.png"):
        assert (tmp_path / name).exists(), name
    saved = json.loads((tmp_path / "validation.json").read_text())
    assert saved["calibration"]["params"]["alpha"] == 3.0
    assert "| 2x3 |" in (tmp_path / "validation.md").read_text()
    assert "<table>" in (tmp_path / "report.html").read_text()
    assert res["validation"]["adamw"]["rows"][0]["in_sample"] is True


def test_trained_runs_are_cached_per_seed_and_reused(tmp_path):
    from ufmtheory.experiments.validation import ValidationConfig, run_validation

    calls = []

    def counting(design, kw):
        calls.append(kw["seed"])
        return _stand_in(design, kw)

    cfg = ValidationConfig(
        designs=("2x2",),
        optimizers=("adamw",),
        seeds=(0, 1),
        steps=60,
        width=16,
        lr_adamw=1e-2,
        grid={"alpha": (1.5, 3.0, 6.0)},
        reference_gf=False,
        workers=1,
        figures=False,
    )
    first = run_validation(cfg, tmp_path, log=lambda s: None, trainer=counting)
    assert sorted(calls) == [0, 1]
    assert len(list((tmp_path / "runs").glob("*.npz"))) == 2
    # A third seed: only the new runs are trained, the cached ones are loaded.
    again = run_validation(
        dataclasses.replace(cfg, seeds=(0, 1, 2)), tmp_path, log=lambda s: None, trainer=counting
    )
    assert sorted(calls) == [0, 1, 2]
    assert {r["seed"] for r in again["validation"]["adamw"]["rows"]} == {0, 1, 2}
    assert first["validation"]["adamw"]["rows"][0]["seed"] == 0


def test_workers_must_be_positive():
    from ufmtheory.experiments.validation import SMOKE, run_validation

    with pytest.raises(ValueError, match="workers"):
        run_validation(dataclasses.replace(SMOKE, workers=0))


@pytest.mark.slow
def test_smoke_configuration_with_the_gpt(tmp_path):
    pytest.importorskip("torch")
    from ufmtheory.experiments.validation import SMOKE, run_validation

    res = run_validation(SMOKE, tmp_path, log=lambda s: None)
    assert (tmp_path / "validation.json").exists()
    assert set(res["validation"]["adamw"]["summary"]) == set(SMOKE.designs)


def test_cli_rejects_bad_seeds(tmp_path, capsys):
    from ufmtheory.cli import main

    assert main(["validate", "--smoke", "--seeds", "0", "--out", str(tmp_path / "v")]) == 2
    assert "--seeds" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(900)  # ≤ 4 min on two idle cores; slower beside other slow tests on a shared machine
def test_cli_quick(tmp_path):
    """`ufm validate --quick` (run by make test-slow): 4 designs, AdamW and GD, 3 seeds, 1000 steps."""
    pytest.importorskip("torch")
    from ufmtheory.cli import main

    assert main(["validate", "--quick", "--out", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "validation.json").read_text())
    assert set(saved["validation"]) == {"adamw", "gd"}
