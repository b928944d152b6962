"""The ``ufm`` command line: every command, ``--schema``, config files (JSON and TOML), ``--out`` checks and
the error contract (one line on stderr, non-zero exit, no traceback)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ufmtheory as ut
from ufmtheory import cli
from ufmtheory.analysis.phases import predict_phases
from ufmtheory.cli import demo as demo_command
from ufmtheory.cli import main
from ufmtheory.cli import predict as predict_command
from ufmtheory.cli import train as train_command
from ufmtheory.experiments.demo import DemoResult
from ufmtheory.report import design_label

FACT33 = {"kind": "factorial", "sizes": [3, 3]}


def _write(tmp_path: Path, cfg: object, name: str = "cfg.json") -> Path:
    path = tmp_path / name
    path.write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
    return path


def _one_line_error(captured: Any, *needles: str) -> str:
    """The error contract: exactly one line on stderr, naming the problem, and no traceback anywhere."""
    err = captured.err
    assert err.count("\n") == 1 and err.startswith("ufm") and ": error: " in err, err
    assert "Traceback" not in err + captured.out
    for needle in needles:
        assert needle in err, (needle, err)
    return err


# -- the registry ------------------------------------------------------------------------------------------
def test_every_registered_command_has_add_parser_and_run(capsys: pytest.CaptureFixture[str]) -> None:
    names = set()
    for module in cli.COMMANDS:
        assert callable(module.add_parser) and callable(module.run)
        names.add(module.__name__.rsplit(".", 1)[-1])
    assert {"demo", "predict", "train", "compare"} <= names
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in names)


@pytest.mark.parametrize("argv", [[], ["nope"], ["predict", "--bogus"], ["demo", "--transformer-steps", "x"]])
def test_usage_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    _one_line_error(capsys.readouterr(), "--help")


def test_warnings_are_one_line_each_and_shown_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def noisy(*args: Any, **kwargs: Any) -> None:
        for _ in range(3):
            warnings.warn("overflow\nin power", RuntimeWarning, stacklevel=1)
        raise ValueError("bad input")

    monkeypatch.setattr(demo_command, "run_demo", noisy)
    assert main(["demo", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "ufm demo: warning: RuntimeWarning: overflow in power",
        "ufm demo: error: bad input",
    ]


def test_unexpected_failure_is_one_line_exit_1(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("first line\nsecond line")

    monkeypatch.delenv("UFM_TRACEBACK", raising=False)
    monkeypatch.setattr(demo_command, "run_demo", boom)
    assert main(["demo", "--out", str(tmp_path / "d")]) == 1
    _one_line_error(capsys.readouterr(), "RuntimeError", "first line second line", "UFM_TRACEBACK")


# -- ufm demo ------------------------------------------------------------------------------------------------
def test_demo_passes_its_options_and_prints_the_result_table(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, Any] = {}

    class Fake(DemoResult):
        def table(self) -> str:
            return "THE TABLE"

    def fake_run_demo(out: Path, **kwargs: Any) -> DemoResult:
        seen.update(kwargs, out=out)
        return Fake(out=out, results={}, status="failed", message="x")

    monkeypatch.setattr(demo_command, "run_demo", fake_run_demo)
    out = tmp_path / "new" / "demo"
    assert main(["demo", "--out", str(out), "--no-progress", "--transformer-steps", "7"]) == 1
    assert seen == {"out": out, "progress": False, "transformer_steps": 7}
    assert "THE TABLE" in capsys.readouterr().out
    main(["demo", "--out", str(out), "--no-transformer"])
    assert seen["transformer_steps"] is None and seen["progress"] is True


def test_demo_refuses_a_bad_out_before_any_work(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo_command, "run_demo", lambda *a, **k: pytest.fail("the demo must not start"))
    a_file = _write(tmp_path, "x", "file.txt")
    assert main(["demo", "--out", str(a_file)]) == 2
    _one_line_error(capsys.readouterr(), "not a folder")
    assert main(["demo", "--out", str(a_file / "sub")]) == 2
    _one_line_error(capsys.readouterr(), "is not a folder")


@pytest.mark.timeout(300)
def test_demo_theory_part_against_closed_forms(tmp_path: Path) -> None:
    """The main job without the transformer (~13 s): its numbers against the closed forms."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--no-progress", "--no-transformer"]) == 0
    res = json.loads((out / "results.json").read_text())  # strict JSON: no NaN
    assert res["regularised"]["status"] == "ok" and res["etf_mode"]["status"] == "ok"
    assert res["regularised"]["max_abs_error_vs_zhu_gram_H"] < 1e-5
    assert res["etf_mode"]["max_relative_error_vs_closed_form"] < 1e-4
    mod = res["modified"]
    for which in ("H", "W"):
        pred = mod["predicted"][which]
        assert 0 <= pred["onset"] <= pred["peak"] < pred["collapse"] < pred["etf_time"]
    cos = mod["plateau_cosines_H"]["measured_at_peak"]
    assert cos["share_one"] == pytest.approx(0.25, abs=2e-3)  # (A-2)/(2(A-1)) for A = 3
    assert cos["share_none"] == pytest.approx(-0.5, abs=2e-3)  # -1/(A-1)
    assert "factorial 3×3 (K = 9)" in (out / "report.html").read_text()


@pytest.mark.slow
@pytest.mark.timeout(900)  # the whole demo (theory runs, 40 transformer steps, figures): minutes on 2 cores
def test_demo_writes_the_figures_results_and_report(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--no-progress", "--transformer-steps", "40"]) == 0
    files = {p.name for p in out.iterdir()}
    expected = {
        "gram_H.png",
        "gram_W.png",
        "curves.png",
        "phases.png",
        "gram_phases.png",
        "results.json",
        "report.html",
        "strength_overlay.png",
        "gram_modified_H.png",
        "gram_transformer_W.png",
        "trajectory_regularised.npz",
        "trajectory_transformer.json",
    }
    assert expected <= files
    for name in files:
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = json.loads((out / "results.json").read_text())  # strict JSON: no NaN
    assert res["design"]["name"] == "factorial 3×3 (K = 9)"
    assert res["regularised"]["status"] == "ok" and res["etf_mode"]["status"] == "ok"
    # Against closed forms: Zhu et al.'s ETF Grams and the exact ETF-mode time.
    assert res["regularised"]["max_abs_error_vs_zhu_gram_H"] < 1e-5
    assert res["etf_mode"]["max_relative_error_vs_closed_form"] < 1e-4
    mod = res["modified"]
    for which in ("H", "W"):
        pred, det = mod["predicted"][which], mod["detected"][which]
        spacing = np.log(10) / pred["stats"]["points_per_decade"]
        for name in ("onset", "peak", "collapse", "etf_time"):
            p, d = pred[name], det[name]
            assert (p == d == 0) or abs(np.log(p) - np.log(d)) <= spacing
    # The plateau's cosines against their closed forms for A = 3: (A-2)/(2(A-1)) and -1/(A-1).
    cos = mod["plateau_cosines_H"]["measured_at_peak"]
    assert cos["share_one"] == pytest.approx(0.25, abs=2e-3)
    assert cos["share_none"] == pytest.approx(-0.5, abs=2e-3)
    assert res["transformer"]["config"]["steps"] == 40 and res["transformer"]["status"] == "ok"
    assert set(res["files"]) >= expected
    page = (out / "report.html").read_text()
    assert "factorial 3×3 (K = 9)" in page and "{'" not in page
    assert page.count("data:image/png;base64,") >= 10
    assert "http://" not in page and "https://" not in page


# -- ufm predict ---------------------------------------------------------------------------------------------
def test_predict_prints_the_phases_tables_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    design = {"kind": "factorial", "sizes": [2, 3]}
    cfg = {"design": design, "model": {"lam_W": 1e-2, "lam_H": 1e-2}, "which": "W", "points_per_decade": 10}
    out_json = tmp_path / "sub" / "phases.json"
    assert main(["predict", str(_write(tmp_path, cfg)), "--out", str(out_json)]) == 0
    text = capsys.readouterr().out
    prob = ut.ModifiedUFM(ut.designs.factorial((2, 3)), dim=6, lam_W=1e-2, lam_H=1e-2)
    ref = {"W": predict_phases(prob, which="W", points_per_decade=10)}
    assert "factorial 2×3 (K = 6)" in text
    for ph in ref.values():
        assert ph.table() in text
    saved = json.loads(out_json.read_text())
    assert saved["phases"]["W"]["collapse"] == pytest.approx(ref["W"].collapse, rel=1e-12)
    assert set(saved["phases"]) == {"W"} and saved["phases"]["W"]["method"] == "reduced"


def test_predict_large_design_is_reduced_with_the_model_defaults() -> None:
    problem, name = predict_command.build_problem({"design": {"kind": "factorial", "sizes": [100, 100]}})
    assert isinstance(problem, ut.ReducedProblem) and problem.scheme.K == 10_000
    defaults = ut.ModifiedUFM(ut.designs.factorial((2, 2)), dim=4)
    assert (problem.meta["alpha"], problem.meta["beta"]) == (defaults.alpha, defaults.beta)
    assert name.startswith("factorial 100×100 (K = 10000)")


def test_predict_reads_toml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = '[design]\nkind = "hierarchical"\ndepth = 2\nbranching = 3\n[model]\nlam_W = 1e-3\nlam_H = 1e-3\n'
    assert main(["predict", str(_write(tmp_path, toml, "cfg.toml"))]) == 0
    text = capsys.readouterr().out  # "which" defaults to both Grams
    assert "hierarchical, depth 2, branching 3 (K = 9)" in text and "W (labels)" in text
    assert "H (contexts)" in text


@pytest.mark.parametrize(
    ("cfg", "needles"),
    [
        ("{not json", ["not valid JSON"]),
        ([1, 2], ["JSON object"]),
        ({"model": {}}, ["'design'"]),
        ({"design": {"kind": "cube"}, "model": {}}, ["design.kind"]),
        ({"design": {"kind": "factorial", "sizes": [3, 1]}, "model": {}}, ["design", "sizes", ">= 2"]),
        ({"design": {"kind": "hierarchical", "depth": 0, "branching": 2}, "model": {}}, ["design", "depth"]),
        ({"design": FACT33, "model": {"lam_E": 1e-3}}, ["model", "lam_E"]),
        ({"design": FACT33, "model": {"gamma": 1}}, ["model", "gamma"]),
        ({"design": FACT33, "model": {"alpha": -1}}, ["model", "alpha"]),
        ({"design": FACT33, "model": {"ridge": "W"}}, ["model", "ridge"]),
        ({"design": FACT33, "model": {"alpha": "1"}}, ["model", "alpha"]),
        ({"design": FACT33, "model": {}, "t1": 0}, ["t1"]),
        ({"design": FACT33, "model": {}, "which": "X"}, ["which"]),
        ({"design": FACT33, "model": {}, "extra": 1}, ["extra"]),
        ({"design": FACT33, "model": {}, "points_per_decade": 2.5}, ["points_per_decade"]),
        ({"design": {"kind": "factorial", "sizes": [100, 100]}, "model": {}, "method": "full"}, ["reduced"]),
        ({"design": {"kind": "factorial", "sizes": [100, 100]}, "model": {"dim": "x"}}, ["model.dim"]),
        ({"design": {"kind": "factorial", "sizes": [2] * 30}, "model": {}}, ["design", "factors"]),
        (
            {"design": {"kind": "hierarchical", "depth": 1e300, "branching": 2}, "model": {}},
            ["design", "depth"],
        ),
        ({"design": FACT33, "model": {}, "points_per_decade": 10**8}, ["points_per_decade"]),
    ],
)
def test_predict_bad_config_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cfg: object, needles: list[str]
) -> None:
    assert main(["predict", str(_write(tmp_path, cfg))]) == 2
    _one_line_error(capsys.readouterr(), "ufm predict: error", *needles)


def test_config_file_errors_and_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(tmp_path / "missing.json")]) == 2
    _one_line_error(capsys.readouterr(), "not found")
    assert main(["predict", str(tmp_path)]) == 2  # a folder
    _one_line_error(capsys.readouterr(), "cannot read")
    assert main(["predict", str(_write(tmp_path, "a = [", "bad.toml"))]) == 2
    _one_line_error(capsys.readouterr(), "not valid TOML")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    assert main(["predict", str(tmp_path / "bin.json")]) == 2
    _one_line_error(capsys.readouterr(), "UTF-8")
    for command in ("predict", "train"):
        assert main([command]) == 2
        _one_line_error(capsys.readouterr(), "CONFIG is required", "--schema")
        assert main([command, "--schema"]) == 0
        assert '"design"' in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["folder", "device", "parent_is_file"])
def test_bad_out_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    cfg = _write(tmp_path, {"design": FACT33, "model": {}, "t1": 0})  # t1 = 0: the work would fail
    out = {"folder": tmp_path, "device": Path(os.devnull), "parent_is_file": cfg / "out.json"}[kind]
    assert main(["predict", str(cfg), "--out", str(out)]) == 2
    _one_line_error(capsys.readouterr(), "--out")
    assert os.path.exists(os.devnull) and not Path(os.devnull).is_file()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_out_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    cfg = _write(tmp_path, {"design": FACT33, "model": {}})
    assert main(["predict", str(cfg), "--out", str(locked / "x.json")]) == 2
    _one_line_error(capsys.readouterr(), "not writable")


# -- ufm train / ufm compare ---------------------------------------------------------------------------------
def test_schemas_name_only_real_arguments() -> None:
    from ufmtheory.baseline import TrainConfig  # torch: imported only by the tests that train

    design_keys = {"design", "kind", "sizes", "depth", "branching"}
    train_keys = set(re.findall(r'"(\w+)":', train_command.SCHEMA)) - design_keys - {"etf_tol"}
    assert train_keys <= {f.name for f in dataclasses.fields(TrainConfig)}
    model_keys = set(re.findall(r'"(\w+)":', predict_command.SCHEMA.split('"model"')[1].split("}")[0]))
    assert model_keys - {"dim"} <= {f.name for f in dataclasses.fields(ut.ModifiedUFM)}


@pytest.mark.parametrize(
    ("cfg", "needles"),
    [
        ({"steps": 10}, ["'design'"]),
        ({"design": {"kind": "cube"}}, ["design.kind"]),
        ({"design": FACT33, "stepz": 10}, ["stepz"]),
        ({"design": FACT33, "steps": 0}, ["steps"]),
        ({"design": FACT33, "lr": -1}, ["lr"]),
        ({"design": FACT33, "optimizer": "lion"}, ["optimizer"]),
        ({"design": FACT33, "num_threads": 100000}, ["num_threads"]),
        ({"design": FACT33, "progress": True}, ["progress", "cannot be set"]),
        ({"design": FACT33, "etf_tol": -1}, ["etf_tol"]),
    ],
)
def test_train_bad_config_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cfg: object, needles: list[str]
) -> None:
    assert main(["train", str(_write(tmp_path, cfg)), "--no-progress"]) == 2
    _one_line_error(capsys.readouterr(), "ufm train: error", *needles)


@pytest.mark.slow
def test_train_then_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = {"design": {"kind": "factorial", "sizes": [2, 2]}, "steps": 30, "width": 16, "n_heads": 2}
    cfg_path = _write(tmp_path, {**cfg, "n_snapshots": 12})
    model = tmp_path / "gpt"
    assert main(["train", str(cfg_path), "--out", str(model), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "factorial 2×2 (K = 4)" in text and "optimiser steps" in text and "collapse" in text
    traj = ut.Trajectory.load(model)
    assert traj.time_unit == "step" and traj.ts[-1] == 30
    prob = ut.ModifiedUFM(ut.designs.factorial((2, 2)), dim=4, lam_W=1e-3, lam_H=1e-3)
    theory = tmp_path / "theory"
    predict_phases(prob, t1=1e4).trajectory.save(theory)
    out_json = tmp_path / "cmp.json"
    assert main(["compare", str(theory), str(model), "--design", str(cfg_path), "--out", str(out_json)]) == 0
    text = capsys.readouterr().out
    expected = ut.compare(ut.Trajectory.load(theory), traj, ut.designs.factorial((2, 2)))
    assert expected.table() in text
    saved = json.loads(out_json.read_text())
    assert saved["time_map"]["b"] == pytest.approx(expected.b) and set(saved["errors"]) == {"H", "W"}


def test_compare_bad_inputs_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    design_cfg = _write(tmp_path, {"design": {"kind": "factorial", "sizes": [2, 2]}})
    missing = tmp_path / "missing"
    assert main(["compare", str(missing), str(missing), "--design", str(design_cfg)]) == 2
    _one_line_error(capsys.readouterr(), "THEORY")
    prob = ut.ModifiedUFM(ut.designs.factorial((3, 3)), dim=9, lam_W=1e-3, lam_H=1e-3)
    theory = tmp_path / "theory"
    predict_phases(prob, t1=1e3).trajectory.save(theory)
    # The design does not match the saved Grams (2x2 vs 3x3).
    assert main(["compare", str(theory), str(theory), "--design", str(design_cfg)]) == 2
    _one_line_error(capsys.readouterr())
    bad = _write(tmp_path, {"model": {}}, "bad.json")
    assert main(["compare", str(theory), str(theory), "--design", str(bad)]) == 2
    _one_line_error(capsys.readouterr(), "'design'")
    # Corrupted trajectory files: truncated arrays, and metadata that is not JSON.
    broken = tmp_path / "broken"
    (tmp_path / "broken.npz").write_bytes((tmp_path / "theory.npz").read_bytes()[:100])
    (tmp_path / "broken.json").write_bytes((tmp_path / "theory.json").read_bytes())
    assert main(["compare", str(theory), str(broken), "--design", str(design_cfg)]) == 2
    _one_line_error(capsys.readouterr(), "MODEL", "broken")
    (tmp_path / "broken.npz").write_bytes((tmp_path / "theory.npz").read_bytes())
    (tmp_path / "broken.json").write_text("{")
    assert main(["compare", str(broken), str(theory), "--design", str(design_cfg)]) == 2
    _one_line_error(capsys.readouterr(), "THEORY", "broken")


# -- what a person sees --------------------------------------------------------------------------------------
def test_progress_bars_print_clean_numbers_and_no_warning(capsys: pytest.CaptureFixture[str]) -> None:
    design = ut.designs.factorial((2, 2))
    prob = ut.UFM(design, dim=4, lam_W=1e-2, lam_H=1e-2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tqdm's clamp warning would fail the test
        traj = ut.gradient_flow(prob, 1e4, init=ut.init.small(prob, 1e-2, seed=0), progress=True)
    assert traj.status == "ok"
    err = capsys.readouterr().err
    # No float artefacts (11.519999999999973), the count never past the total, and a full bar at the end.
    assert not re.search(r"\d\.\d{6,}", err), err
    assert "-00:" not in err and f"{np.log1p(1e4):.4g}/{np.log1p(1e4):.4g}" in err


def test_design_names_in_words() -> None:
    assert design_label(ut.designs.factorial((3, 3)).summary()) == "factorial 3×3 (K = 9)"
    assert (
        design_label(ut.designs.hierarchical(2, 3).summary()) == "hierarchical, depth 2, branching 3 (K = 9)"
    )


def test_config_commands_share_one_parser_shape(capsys: pytest.CaptureFixture[str]) -> None:
    # predict, train and sweep are built by the same helpers: CONFIG, --schema, --out, the schema in --help.
    from ufmtheory.cli import sweep as sweep_command

    for command, module in (("predict", predict_command), ("train", train_command), ("sweep", sweep_command)):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert "--schema" in out and "--out OUT" in out and "[config]" in out, out
        assert "CONFIG schema:\n" + module.SCHEMA in out
    for command in ("train", "sweep", "demo"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "--no-progress" in capsys.readouterr().out
