"""``ufm validate``: calibrate the theory on one design, predict held-out designs, publish the misses.

Protocol (issue 9, docs/validation.md):

1. Train the baseline GPT (2 layers, width 64, init std 0.02, full batch) on every design with two
   optimisers, AdamW (lr 1e-3) and full-batch gradient descent (SGD lr 1.0, no momentum), for several
   seeds; the runs are cached under ``OUT/runs`` and reused by a later call with the same settings.
2. Calibrate (:func:`ufmtheory.analysis.calibration.calibrate`) the normalised modified UFM (features on the
   sphere of radius ``sqrt(64)``, as the GPT's final LayerNorm) on the FIRST design's AdamW runs only,
   on the same clock (AdamW, lr 1e-3, same steps, init std 0.02).
3. Predict (:func:`~ufmtheory.analysis.validation.validate`) every (design, optimiser) with no refit:
   ``α`` follows each design's input geometry, measured on the model's step-0 H Gram; the theory runs the
   model's own optimiser from the model's seed. The calibration design's AdamW rows are in-sample and
   marked so.
4. Beside it, the gradient-flow theory as published (reference modified UFM, ridge on H, ``α = β = 1``,
   ``λ = 1e-3``, exact reduced ODE): compared with a fitted time map for AdamW (``clock="fit"``, reported
   with its ``map_status``) and on ``t = lr·step`` for GD (``clock="lr"``).

Writes ``validation.json``, ``validation.md`` (the ratio tables), ``report.html`` (tables and figures, one
self-contained page) and ``strength_<design>_<optimiser>.png`` (semantic strength of W and H: model and
same-clock theory, median and min-max band over seeds).
"""

from __future__ import annotations

import dataclasses
import html
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ufmtheory import designs as designs_mod
from ufmtheory._format import finite_or_none as _num
from ufmtheory._format import format_number as _fmt
from ufmtheory._io import atomic_write_bytes
from ufmtheory.analysis.calibration import Calibration, calibrate
from ufmtheory.analysis.comparison import compare, run_status
from ufmtheory.analysis.geometry import model_input_geometry
from ufmtheory.analysis.phases import predict_phases
from ufmtheory.analysis.validation import Validation, validate
from ufmtheory.models import ModifiedUFM
from ufmtheory.report import data_uri, write_json
from ufmtheory.trajectory import Trajectory

__all__ = [
    "train_kwargs",
    "ValidationConfig",
    "run_validation",
    "validation_designs",
    "random_distinct",
    "FULL",
    "QUICK",
    "SMOKE",
]


def random_distinct(m: int = 12, p: int = 8, k: int = 2, max_seeds: int = 1000) -> tuple[Any, int]:
    """A random-attributes design whose contexts carry pairwise distinct attribute codes.

    ``random_attributes`` may draw the same code twice (then two contexts share their whole input, an id
    token is added, and the phenomenon changes); this draws seeds 0, 1, ... until every code is distinct.

    Returns:
        ``(design, seed)``.
    """
    for seed in range(max_seeds):
        d = designs_mod.random_attributes(m, p, k, seed=seed)
        codes = {tuple(col) for col in np.asarray(d.X).T.tolist()}
        if len(codes) == m:
            return d, seed
    raise ValueError(f"no seed below {max_seeds} gives {m} distinct codes of {k} of {p} features")


def validation_designs(names: Sequence[str]) -> dict[str, Any]:
    """The designs of the protocol by name: ``"3x3"``, ``"4x4"``, ``"3x5"``, ``"2x2x3"``, ``"2x2"``,
    ``"2x3"``, ``"hier(3,2)"`` (depth 3, branching 2) and ``"random(12)"`` (12 contexts, distinct codes)."""
    out = {}
    for name in names:
        if name == "hier(3,2)":
            out[name] = designs_mod.hierarchical(3, 2)
        elif name == "random(12)":
            out[name] = random_distinct(12, 8, 2)[0]
        else:
            try:
                sizes = tuple(int(s) for s in name.split("x"))
            except ValueError:
                raise ValueError(f"unknown design name {name!r}") from None
            out[name] = designs_mod.factorial(sizes)
    return out


@dataclass(frozen=True, kw_only=True)
class ValidationConfig:
    """Settings of one validation run (see :data:`FULL`, :data:`QUICK`, :data:`SMOKE`).

    Attributes:
        designs: design names (:func:`validation_designs`); the first is the calibration design.
        optimizers: ``("adamw", "gd")`` or a subset.
        seeds: model seeds (the theory uses the same init seed).
        steps: optimiser steps (model and same-clock theory).
        width, n_layers, n_heads: the GPT's shape (the theory's dim is the width).
        lr_adamw, lr_gd: learning rates.
        grid: calibration grid ``{"alpha": [...], "beta": [...]}``.
        reference_gf: also compare the published gradient-flow theory (reference modified UFM).
        n_snapshots: model snapshots (log-spaced).
        alpha_rules: how α moves to held-out designs: the first rule gives the main tables and figures,
            the others (e.g. ``"fixed"``: one α for every design) an extra table each.
    """

    designs: tuple[str, ...] = ("3x3", "4x4", "3x5", "2x2x3", "hier(3,2)", "random(12)")
    optimizers: tuple[str, ...] = ("adamw", "gd")
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 3000
    width: int = 64
    n_layers: int = 2
    n_heads: int = 4
    lr_adamw: float = 1e-3
    lr_gd: float = 1.0
    grid: dict[str, tuple[float, ...]] = dataclasses.field(
        default_factory=lambda: {"alpha": (1.0, 1.5, 2.0, 3.0, 4.5, 6.0, 9.0)}
    )
    reference_gf: bool = True
    n_snapshots: int = 60
    alpha_rules: tuple[str, ...] = ("geometry",)


FULL = ValidationConfig(alpha_rules=("geometry", "fixed"))
QUICK = ValidationConfig(
    designs=("3x3", "4x4", "2x2x3", "hier(3,2)"),
    seeds=(0, 1, 2),
    steps=1000,
    grid={"alpha": (1.0, 2.0, 3.0, 4.5, 9.0)},
    n_snapshots=40,
)
SMOKE = ValidationConfig(
    designs=("2x2", "2x3"),
    optimizers=("adamw",),
    seeds=(0,),
    steps=150,
    width=16,
    n_layers=1,
    n_heads=2,
    lr_adamw=3e-3,
    grid={"alpha": (1.0, 3.0, 9.0)},
    reference_gf=False,
    n_snapshots=15,
)


def train_kwargs(cfg: ValidationConfig, optimizer: str, seed: int) -> dict[str, Any]:
    """The :class:`ufmtheory.baseline.TrainConfig` fields of one run of the protocol."""
    kw: dict[str, Any] = dict(
        steps=cfg.steps,
        width=cfg.width,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        seed=seed,
        n_snapshots=cfg.n_snapshots,
        num_threads=1,
    )
    if optimizer == "adamw":
        return {**kw, "optimizer": "adamw", "lr": cfg.lr_adamw}
    return {**kw, "optimizer": "sgd", "lr": cfg.lr_gd, "momentum": 0.0}


def _gpt_trainer(design: Any, kwargs: dict[str, Any]) -> Trajectory:
    from ufmtheory.baseline import TrainConfig, train

    return train(design, TrainConfig(**kwargs))


Trainer = Callable[[Any, dict[str, Any]], Trajectory]
"""``trainer(design, train_kwargs) -> Trajectory`` (time_unit ``"step"``, ``meta["config"]`` holding the
kwargs): the baseline GPT by default; tests pass a cheap stand-in."""


def _trained(
    design: Any,
    name: str,
    optimizer: str,
    seed: int,
    cfg: ValidationConfig,
    cache: Path | None,
    log: Callable[[str], None],
    trainer: Trainer,
) -> Trajectory:
    kwargs = train_kwargs(cfg, optimizer, seed)
    key = f"{_slug(name)}_{optimizer}_s{seed}"
    ident = json.dumps(
        {"design": design.summary(), "config": kwargs, "trainer": getattr(trainer, "__name__", "")},
        sort_keys=True,
        default=str,
    )
    if cache is not None:
        base = cache / key
        tag = cache / f"{key}.config.json"
        if tag.exists() and tag.read_text() == ident and base.with_suffix(".npz").exists():
            return Trajectory.load(base)
    t0 = time.perf_counter()
    traj = trainer(design, kwargs)
    log(f"  trained {name} {optimizer} seed {seed}: {time.perf_counter() - t0:.1f} s ({traj.status})")
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        traj.save(cache / key)
        atomic_write_bytes(cache / f"{key}.config.json", ident.encode())
    return traj


def _slug(name: str) -> str:
    return name.replace("(", "_").replace(")", "").replace(",", "_")


def _curve_band(trajs: list[Trajectory], design: Any, which: str) -> tuple[np.ndarray, np.ndarray]:
    """Common positive steps and the (n_runs, T) semantic strength interpolated on them."""
    grid = np.unique(np.concatenate([t.ts[t.ts > 0] for t in trajs]))
    rows = []
    for t in trajs:
        m = t.metrics(design, which=which)
        pos = m["ts"] > 0
        rows.append(np.interp(np.log(grid), np.log(m["ts"][pos]), np.asarray(m["semantic_strength"])[pos]))
    return grid, np.array(rows)


def _figure(
    path: Path, title: str, design: Any, models: list[Trajectory], theories: list[Trajectory]
) -> bytes | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is a dependency of the plotting extra
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, w in zip(axes, ("W", "H"), strict=True):
        for trajs, label, color in ((models, "GPT", "C0"), (theories, "theory (same clock)", "C3")):
            # A run that blew up is left out of the band (its status is in the tables), and counted.
            ok = [t for t in trajs if run_status(t)[0] == "ok" and t.ts.size >= 3]
            if not ok:
                continue
            steps, vals = _curve_band(ok, design, w)
            ax.fill_between(steps, vals.min(axis=0), vals.max(axis=0), color=color, alpha=0.25, lw=0)
            n = f"n={len(ok)}" if len(ok) == len(trajs) else f"n={len(ok)} of {len(trajs)}"
            ax.plot(steps, np.median(vals, axis=0), color=color, label=f"{label} ({n})")
        ax.set_xscale("log")
        ax.set_xlabel("step")
        ax.set_title(f"{w}: semantic strength")
        ax.axhline(0.0, color="k", lw=0.5)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    png = buf.getvalue()
    atomic_write_bytes(path, png)
    return png


def _reference_problem(design: Any) -> ModifiedUFM:
    return ModifiedUFM(design, dim=design.m, alpha=1.0, beta=1.0, ridge="H", lam_W=1e-3, lam_H=1e-3)


def _reference_comparisons(
    design: Any, name: str, runs: dict[str, list[Trajectory]], cfg: ValidationConfig
) -> dict[str, Any]:
    """The published gradient-flow theory against each run: fitted map (AdamW) or t = lr·step (GD)."""
    try:
        theory = predict_phases(_reference_problem(design), which="W")
    except (ValueError, TypeError) as exc:
        return {"status": "not_applicable", "message": str(exc)}
    if theory.method != "reduced":
        # The full-flow fallback costs minutes per design (issue 9: 50-160 s): not run here.
        return {"status": "not_applicable", "message": "no exact reduced ODE for this design: skipped"}
    out: dict[str, Any] = {"method": theory.method, "runs": []}
    for opt, trajs in runs.items():
        clock = "lr" if opt == "gd" else "fit"
        for t in trajs:
            st, msg = run_status(t)
            if st != "ok":
                out["runs"].append(
                    {"optimizer": opt, "seed": t.meta["config"]["seed"], "status": st, "message": msg}
                )
                continue
            c = compare(theory.trajectory, t, design, clock=clock, which="W")
            out["runs"].append(
                {
                    "optimizer": opt,
                    "seed": t.meta["config"]["seed"],
                    "clock": c.clock,
                    "a": _num(c.a),
                    "b": _num(c.b),
                    "map_status": c.map_status,
                    "status": c.status,
                    "message": c.message,
                    "predicted_W": {k: _num(v) for k, v in c.predicted["W"].items()},
                    "measured_W": {k: _num(v) for k, v in c.measured["W"].items()},
                    "curve_rms_W": _num(c.errors["W"]["semantic_strength"]),
                }
            )
    return out


def run_validation(
    cfg: ValidationConfig = FULL,
    out: str | Path | None = None,
    *,
    log: Callable[[str], None] = print,
    trainer: Trainer | None = None,
) -> dict[str, Any]:
    """Run the protocol of the module docstring and write its files to ``out`` (if given).

    Args:
        cfg: the settings (:data:`FULL`, :data:`QUICK`, :data:`SMOKE` or your own).
        out: output folder (``None``: nothing is written, no cache).
        log: progress lines go here.
        trainer: ``trainer(design, train_kwargs) -> Trajectory`` (default: the baseline GPT).

    Returns:
        The results dictionary (also ``validation.json``).
    """
    start = time.perf_counter()
    out_dir = Path(out) if out is not None else None
    cache = out_dir / "runs" if out_dir is not None else None
    designs = validation_designs(cfg.designs)
    runs: dict[str, dict[str, list[Trajectory]]] = {}
    t_train = time.perf_counter()
    for name, design in designs.items():
        runs[name] = {}
        for opt in cfg.optimizers:
            runs[name][opt] = [
                _trained(design, name, opt, s, cfg, cache, log, trainer or _gpt_trainer) for s in cfg.seeds
            ]
    train_s = time.perf_counter() - t_train
    cal_name = cfg.designs[0]
    cal_opt = "adamw" if "adamw" in cfg.optimizers else cfg.optimizers[0]
    log(f"calibrating on {cal_name} ({cal_opt}, {len(cfg.seeds)} seeds)")
    t_cal = time.perf_counter()
    calib: Calibration = calibrate(
        runs[cal_name][cal_opt],
        designs[cal_name],
        "normalized",
        design_name=cal_name,
        grid=cfg.grid,
        dim=cfg.width,
        alpha_rule=cfg.alpha_rules[0],
    )
    cal_s = time.perf_counter() - t_cal
    log(
        f"  {calib.params} objective {calib.objective:.3g} ({calib.status}"
        f"{': ' + calib.message if calib.message else ''})"
    )
    results: dict[str, Any] = {
        "config": dataclasses.asdict(cfg),
        "calibration": calib.as_dict(),
        "validation": {},
        "reference_gf": {},
        "geometry": {},
    }
    figures: list[tuple[str, bytes]] = []
    t_val = time.perf_counter()
    for opt in cfg.optimizers:
        cases = {name: (designs[name], runs[name][opt]) for name in cfg.designs}
        val: Validation = validate(calib, cases)
        for row in val.rows:
            row["in_sample"] = row["design"] == cal_name and opt == cal_opt
        results["validation"][opt] = {
            "status": val.status,
            "message": val.message,
            "alpha_rule": calib.alpha_rule,
            "alpha": {r["design"]: r["alpha"] for r in val.rows},
            "summary": val.summary,
            "rows": val.rows,
            "table": val.table(),
        }
        log(f"\n{opt}: predicted/measured, median [min-max] over seeds\n{val.table()}")
        if out_dir is not None:
            for name in cfg.designs:
                fname = f"strength_{_slug(name)}_{opt}.png"
                png = _figure(
                    out_dir / fname, f"{name}, {opt}", designs[name], runs[name][opt], val.theories[name]
                )
                if png is not None:
                    figures.append((f"{name}, {opt}", png))
    results["alternatives"] = {}
    for rule in cfg.alpha_rules[1:]:
        alt_cal = dataclasses.replace(calib, alpha_rule=rule)
        results["alternatives"][rule] = {}
        for opt in cfg.optimizers:
            cases = {name: (designs[name], runs[name][opt]) for name in cfg.designs}
            alt = validate(alt_cal, cases)
            results["alternatives"][rule][opt] = {
                "status": alt.status,
                "message": alt.message,
                "summary": alt.summary,
                "alpha": {r["design"]: r["alpha"] for r in alt.rows},
                "table": alt.table(),
            }
            log(f"\n{opt}, alpha rule {rule!r}:\n{alt.table()}")
    val_s = time.perf_counter() - t_val
    for name in cfg.designs:
        results["geometry"][name] = model_input_geometry(
            [r for o in cfg.optimizers for r in runs[name][o]], designs[name]
        ).as_dict()
    t_ref = time.perf_counter()
    if cfg.reference_gf:
        for name in cfg.designs:
            results["reference_gf"][name] = _reference_comparisons(designs[name], name, runs[name], cfg)
    ref_s = time.perf_counter() - t_ref
    results["stats"] = {
        "wall_time_s": time.perf_counter() - start,
        "train_s": train_s,
        "calibrate_s": cal_s,
        "validate_s": val_s,
        "reference_s": ref_s,
    }
    results["markdown"] = markdown(results)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "validation.json", results)
        atomic_write_bytes(out_dir / "validation.md", results["markdown"].encode())
        atomic_write_bytes(out_dir / "report.html", _html(results, figures).encode())
    return results


def markdown(results: dict[str, Any]) -> str:
    """The validation tables as markdown (also the body of ``validation.md``)."""
    cal = results["calibration"]
    p = cal["params"]
    lines = [
        "# Validation: calibrated on one design, predicted on the others",
        "",
        f"Calibration on **{cal['design']}** ({cal['family']} modified UFM, same clock): "
        f"α = {_fmt(p.get('alpha'))}, β = {_fmt(p.get('beta'))}, radius {_fmt(p.get('normalize'))}, "
        f"dim {p.get('dim')}, init std {_fmt(p.get('init_std'))}; strength RMS {_fmt(cal['objective'])}; "
        f"status {cal['status']}{': ' + cal['message'] if cal['message'] else ''}.",
        f"α on other designs: {cal['alpha_rule']} rule (α/β of the step-0 H Gram, "
        f"{_fmt(cal['geometry']['alpha_over_beta'])} on the calibration design).",
        "",
        "Cells: median predicted/measured ratio over seeds [min–max]; `at step 0`: the phase is present "
        "at initialisation (no ratio); `not in model` / `not in theory` / `in neither`: "
        "the phase was not found.",
        "",
    ]
    for opt, val in results["validation"].items():
        lines += [f"## {opt}", "", val["table"], ""]
        lines += ["α per design: " + ", ".join(f"{k} {v:.3g}" for k, v in val.get("alpha", {}).items()), ""]
        if val["status"] != "ok":
            lines += [f"status: {val['status']}: {val['message']}", ""]
    for rule, by_opt in results.get("alternatives", {}).items():
        for opt, val in by_opt.items():
            lines += [f"## {opt}, α rule '{rule}'", "", val["table"], ""]
            lines += ["α per design: " + ", ".join(f"{k} {v:.3g}" for k, v in val["alpha"].items()), ""]
    geo = results.get("geometry", {})
    if geo:
        lines += [
            "## Input geometry (step-0 H Gram)",
            "",
            "| design | α/β | R² | status |",
            "|---|---|---|---|",
        ]
        for name, g in geo.items():
            lines.append(f"| {name} | {_fmt(g['alpha_over_beta'])} | {_fmt(g['r2'])} | {g['status']} |")
        lines.append("")
    ref = results.get("reference_gf", {})
    if ref:
        lines += [
            "## Published gradient-flow theory (ridge H, α = β = 1), W",
            "",
            "| design | optimizer | seed | clock | b | map status | W peak pred/meas "
            "| W collapse pred/meas |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, r in ref.items():
            if "runs" not in r:
                lines.append(f"| {name} | – | – | – | – | {r.get('status')} | {r.get('message')} | |")
                continue
            for x in r["runs"]:
                if "clock" not in x:
                    lines.append(f"| {name} | {x['optimizer']} | {x['seed']} | – | – | {x['status']} | | |")
                    continue
                pw, mw = x["predicted_W"], x["measured_W"]
                lines.append(
                    f"| {name} | {x['optimizer']} | {x['seed']} | {x['clock']} | {_fmt(x['b'])} | "
                    f"{x['map_status']} | {_fmt(pw['peak'])} / {_fmt(mw['peak'])} | "
                    f"{_fmt(pw['collapse'])} / {_fmt(mw['collapse'])} |"
                )
        lines.append("")
    st = results.get("stats", {})
    lines.append(f"Wall time {_fmt(st.get('wall_time_s'))} s (training {_fmt(st.get('train_s'))} s).")
    return "\n".join(lines) + "\n"


def _html(results: dict[str, Any], figures: list[tuple[str, bytes]]) -> str:
    body = []
    for line in results["markdown"].splitlines():
        if line.startswith("|") and set(line.replace("|", "").strip()) <= set("-"):
            continue
        if line.startswith("|"):
            cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
            body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
            continue
        if body and body[-1].startswith("<tr>") and not line.startswith("|"):
            body.append("</table>")
        if line.startswith("<tr>"):
            continue
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    # Open each table before its first row.
    out, in_table = [], False
    for piece in body:
        if piece.startswith("<tr>") and not in_table:
            out.append("<table>")
            in_table = True
        if piece == "</table>":
            in_table = False
        out.append(piece)
    if in_table:
        out.append("</table>")
    for title, png in figures:
        out.append(
            f'<figure><img src="{data_uri(png)}" alt="{html.escape(title)}"><figcaption>'
            f"{html.escape(title)}: median and min–max band over seeds</figcaption></figure>"
        )
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:.6em 0 1.4em;font-size:.9em}"
        "td{border:1px solid #ccc;padding:.2em .5em}figure img{max-width:100%}"
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>ufm validate</title>"
        f"<style>{style}</style></head><body>{''.join(out)}</body></html>"
    )
