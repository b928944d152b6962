"""The ``ufm`` command line: ``ufm demo`` (standard vs modified UFM) and ``ufm predict CONFIG``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import ufmtheory as ut
from ufmtheory.analysis.phases import predict_phases
from ufmtheory.cli import main

PHASES = ("onset", "peak", "collapse", "etf_time")


def test_demo_writes_the_figures_and_results(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--no-progress", "--no-transformer"]) == 0
    files = {p.name for p in out.iterdir()}
    expected = {
        "gram_H.png",
        "gram_W.png",
        "curves.png",
        "results.json",
        "phases.png",
        "gram_phases.png",
        "trajectory_regularised.npz",
        "trajectory_regularised.json",
    }
    assert expected <= files
    for name in files:
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = json.loads((out / "results.json").read_text())
    # The keys the standard-UFM demo always wrote are still there.
    assert {"design", "regularised", "etf_mode", "files"} <= set(res)
    assert res["regularised"]["status"] == "ok" and res["etf_mode"]["status"] == "ok"
    assert res["regularised"]["max_abs_error_vs_zhu_gram_H"] < 1e-5
    assert {"final_etf_distance_H", "etf_time", "peak_semantic_strength_H"} <= set(res["regularised"])
    assert set(res["files"]) >= expected - {"results.json"}
    # The modified UFM: predicted (reduced ODE) and detected (full flow, same init and grid) phases agree.
    mod = res["modified"]
    assert mod["problem"]["model"] == "ModifiedUFM" and mod["problem"]["ridge"] == "H"
    assert mod["full_flow"]["status"] == "ok"
    for which in ("H", "W"):
        pred, det = mod["predicted"][which], mod["detected"][which]
        assert pred["status"] == "ok" and pred["method"] == "reduced"
        spacing = math.log(10) / pred["stats"]["points_per_decade"]
        for name in PHASES:
            p, d = pred[name], det[name]
            assert (p == d == 0) or abs(math.log(p) - math.log(d)) <= spacing
        assert pred["peak"] < pred["collapse"] < pred["etf_time"]
        assert pred["estimates"]["t_sem"] > 0 and pred["estimates"]["t_col"] > pred["estimates"]["t_sem"]
    cos = mod["plateau_cosines_H"]
    assert cos["measured_at_peak"]["share_one"] == pytest.approx(0.25, abs=2e-3)
    assert cos["measured_at_peak"]["share_none"] == pytest.approx(-0.5, abs=2e-3)
    # The standard UFM beside it: no semantic plateau (a peak far below the modified one's).
    std = res["standard_phases"]
    assert std["detected"]["H"]["peak_strength"] < 0.2 * mod["detected"]["H"]["peak_strength"]
    assert std["predicted"]["H"]["onset"] is None  # aligned init: isotropic throughout


def _write(tmp_path: Path, cfg: object, name: str = "cfg.json") -> Path:
    path = tmp_path / name
    path.write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
    return path


def test_predict_prints_the_phase_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = {
        "design": {"kind": "factorial", "sizes": [3, 3]},
        "model": {"alpha": 1.0, "beta": 1.0, "ridge": "H", "lam_W": 1e-3, "lam_H": 1e-3},
        "init_scale": 1e-3,
    }
    out_json = tmp_path / "phases.json"
    assert main(["predict", str(_write(tmp_path, cfg)), "--out", str(out_json)]) == 0
    text = capsys.readouterr().out
    design = ut.designs.factorial((3, 3))
    prob = ut.ModifiedUFM(design, dim=9, alpha=1.0, beta=1.0, ridge="H", lam_W=1e-3, lam_H=1e-3)
    ref = {w: predict_phases(prob, which=w) for w in ("H", "W")}
    for name in ("onset", "peak", "collapse", "etf_time"):
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(name))
        cells = line.split()
        assert cells[1] == f"{getattr(ref['H'], name):.4g}" and cells[2] == f"{getattr(ref['W'], name):.4g}"
    assert f"{ref['H'].estimates['t_col']:.4g}" in text
    saved = json.loads(out_json.read_text())
    assert saved["phases"]["W"]["collapse"] == pytest.approx(ref["W"].collapse, rel=1e-12)
    assert saved["config"]["which"] == "both" and saved["phases"]["H"]["method"] == "reduced"

    hier = {
        "design": {"kind": "hierarchical", "depth": 2, "branching": 3},
        "model": {"lam_W": 1e-3, "lam_H": 1e-3},
    }
    assert main(["predict", str(_write(tmp_path, hier, "hier.json"))]) == 0
    assert "hierarchical depth 2 branching 3" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ("{not json", "not valid JSON"),
        ([1, 2], "JSON object"),
        ({"model": {}}, "'design'"),
        ({"design": {"kind": "cube"}, "model": {}}, "design.kind"),
        ({"design": {"kind": "factorial", "sizes": [3, 1]}, "model": {}}, "design.sizes[1]"),
        ({"design": {"kind": "hierarchical", "depth": 0, "branching": 2}, "model": {}}, "design.depth"),
        ({"design": {"kind": "factorial", "sizes": [3, 3]}, "model": {"lam_E": 1e-3}}, "lam_E"),
        ({"design": {"kind": "factorial", "sizes": [3, 3]}, "model": {"gamma": 1}}, "gamma"),
        ({"design": {"kind": "factorial", "sizes": [3, 3]}, "model": {"alpha": -1}}, "model.alpha"),
        ({"design": {"kind": "factorial", "sizes": [3, 3]}, "model": {"ridge": "W"}}, "model.ridge"),
        ({"design": {"kind": "factorial", "sizes": [3, 3]}, "model": {}, "t1": 0}, "t1"),
        ({"design": {"kind": "factorial", "sizes": [3, 3]}, "model": {}, "which": "X"}, "which"),
        ({"design": {"kind": "factorial", "sizes": [3, 3]}, "model": {}, "extra": 1}, "extra"),
        ({"design": {"kind": "factorial", "sizes": [100, 100]}, "model": {}, "method": "full"}, "reduced"),
    ],
)
def test_predict_bad_config_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cfg: object, message: str
) -> None:
    assert main(["predict", str(_write(tmp_path, cfg))]) == 2
    captured = capsys.readouterr()
    assert "error" in captured.err and message in captured.err
    assert "Traceback" not in captured.err + captured.out


def test_predict_missing_file_and_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(tmp_path / "missing.json")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["predict"]) == 2
    assert main(["predict", "--schema"]) == 0
    assert '"design"' in capsys.readouterr().out


def test_demo_with_a_short_transformer_run(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--no-progress", "--transformer-steps", "40"]) == 0
    files = {p.name for p in out.iterdir()}
    new = {
        "report.html",
        "strength_overlay.png",
        "gram_modified_H.png",
        "gram_modified_W.png",
        "gram_transformer_H.png",
        "gram_transformer_W.png",
        "trajectory_transformer.npz",
        "trajectory_transformer.json",
    }
    assert new | {"gram_H.png", "phases.png", "results.json"} <= files
    res = json.loads((out / "results.json").read_text())
    assert {
        "design",
        "regularised",
        "etf_mode",
        "modified",
        "standard_phases",
        "transformer",
        "comparison",
    } <= set(res)
    assert set(res["files"]) >= new
    tr = res["transformer"]
    assert tr["config"]["steps"] == 40 and tr["status"] == "ok"
    assert set(tr["phases"]) == {"H", "W"} and tr["phases"]["W"]["time_unit"] == "step"
    cm = res["comparison"]["modified"]
    assert cm["time_map"]["b"] > 0 and cm["best_variant"] in {v["name"] for v in cm["variants"]}
    assert set(cm["errors"]["H"]) == {"semantic_strength", "etf_distance", "shared_gap"}
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 10
    assert "http://" not in page and "https://" not in page and "<table>" in page
    traj = ut.Trajectory.load(out / "trajectory_transformer")
    assert traj.time_unit == "step" and traj.ts[-1] == 40


def test_train_and_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = {
        "design": {"kind": "factorial", "sizes": [2, 2]},
        "steps": 30,
        "width": 16,
        "n_heads": 2,
        "n_snapshots": 12,
    }
    model = tmp_path / "gpt"
    assert main(["train", str(_write(tmp_path, cfg)), "--out", str(model)]) == 0
    text = capsys.readouterr().out
    assert "phases (optimiser steps" in text and "collapse" in text
    traj = ut.Trajectory.load(model)
    assert traj.time_unit == "step" and traj.ts[-1] == 30
    design = ut.designs.factorial((2, 2))
    prob = ut.ModifiedUFM(design, dim=4, lam_W=1e-3, lam_H=1e-3)
    theory = tmp_path / "theory"
    predict_phases(prob, t1=1e4).trajectory.save(theory)
    out_json = tmp_path / "cmp.json"
    args = [
        "compare",
        str(theory),
        str(model),
        "--design",
        str(tmp_path / "cfg.json"),
        "--out",
        str(out_json),
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "time map: log t =" in text and "semantic_strength" in text
    saved = json.loads(out_json.read_text())
    assert saved["time_map"]["b"] > 0 and set(saved["errors"]) == {"H", "W"}


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ("{not json", "not valid JSON"),
        ({"steps": 10}, "'design'"),
        ({"design": {"kind": "cube"}}, "design.kind"),
        ({"design": {"kind": "factorial", "sizes": [2, 2]}, "stepz": 10}, "stepz"),
        ({"design": {"kind": "factorial", "sizes": [2, 2]}, "steps": 0}, "steps"),
        ({"design": {"kind": "factorial", "sizes": [2, 2]}, "lr": -1}, "lr"),
        ({"design": {"kind": "factorial", "sizes": [2, 2]}, "optimizer": "lion"}, "optimizer"),
    ],
)
def test_train_bad_config_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cfg: object, message: str
) -> None:
    assert main(["train", str(_write(tmp_path, cfg))]) == 2
    captured = capsys.readouterr()
    assert "error" in captured.err and message in captured.err
    assert "Traceback" not in captured.err + captured.out


def test_compare_bad_inputs_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    design_cfg = _write(tmp_path, {"design": {"kind": "factorial", "sizes": [2, 2]}})
    missing = tmp_path / "missing"
    assert main(["compare", str(missing), str(missing), "--design", str(design_cfg)]) == 2
    assert "THEORY" in capsys.readouterr().err
    prob = ut.ModifiedUFM(ut.designs.factorial((3, 3)), dim=9, lam_W=1e-3, lam_H=1e-3)
    theory = tmp_path / "theory"
    predict_phases(prob, t1=1e3).trajectory.save(theory)
    # The design does not match the saved Grams (2x2 vs 3x3).
    assert main(["compare", str(theory), str(theory), "--design", str(design_cfg)]) == 2
    err = capsys.readouterr().err
    assert "error" in err and "Traceback" not in err
    bad = _write(tmp_path, {"model": {}}, "bad.json")
    assert main(["compare", str(theory), str(theory), "--design", str(bad)]) == 2
    assert "'design'" in capsys.readouterr().err
    assert main(["train"]) == 2
    assert main(["train", "--schema"]) == 0
    assert '"design"' in capsys.readouterr().out
