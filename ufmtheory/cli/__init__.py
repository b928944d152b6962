"""The ``ufm`` command line.

``ufm demo [--out DIR]`` runs a 3×3 factorial design through the standard and the modified UFM side by side.
Standard UFM: a regularised gradient flow from a small random initialisation to Zhu et al.'s simplex ETF,
checked against the closed form, and an unregularised flow to ``t = 1e8`` checked against the exact
ETF-mode time. Modified UFM (ridge on H, ``α = β = 1``, the same small ``λ``): the phases predicted by the
exact reduced ODE (through the semantic plateau and the collapse) and detected on a full gradient flow from
the same aligned initialisation. It writes Gram heatmaps at several times, ETF-distance/loss curves, the
phase figures (PNG) and ``results.json``. It then trains the baseline transformer (2 layers, width 64,
AdamW lr 1e-3, :data:`DEMO_STEPS` steps, one thread) on the same design and compares it with both theory
runs (:func:`ufmtheory.analysis.compare`: fitted time map, curve errors, phase times in steps, best variant
of :func:`ufmtheory.analysis.compare.variant_grid`): Gram heatmaps of all three runs over time, the overlaid
semantic-strength curves (``strength_overlay.png``), sections ``"transformer"`` and ``"comparison"`` of
``results.json`` and a self-contained ``report.html``. ``--no-transformer`` skips the transformer.

``ufm train CONFIG [--out PATH]`` trains the transformer on the design of a JSON config (schema:
:data:`TRAIN_SCHEMA`), saves the trajectory (``Trajectory.save``) and prints its phase table in steps.

``ufm compare THEORY MODEL --design CONFIG [--out FILE]`` compares two saved trajectories and prints the
:class:`~ufmtheory.analysis.compare.Comparison` table.

``ufm predict CONFIG [--out FILE]`` prints the predicted phase times of the problem described by the JSON
file CONFIG (schema: :data:`PREDICT_SCHEMA`) and optionally writes them as JSON. A bad config (of any
command) exits with status 2 and a message (no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ufmtheory._format import format_number as _fmt

__all__ = [
    "main",
    "run_demo",
    "run_predict",
    "run_train",
    "run_compare",
    "load_predict_config",
    "load_train_config",
    "load_design_config",
    "ConfigError",
    "PREDICT_SCHEMA",
    "TRAIN_SCHEMA",
    "DEMO_STEPS",
]

DEMO_STEPS = 3000
"""Transformer steps of ``ufm demo`` (2 layers, width 64, AdamW lr 1e-3, one thread)."""

PREDICT_SCHEMA = """\
{
  "design": {"kind": "factorial", "sizes": [3, 3]}
            | {"kind": "hierarchical", "depth": 2, "branching": 3},
  "model": {
    "alpha": 1.0,            # weight of the shared attribute path (>= 0; 0 with beta = 1: standard UFM)
    "beta": 1.0,             # weight of the per-context path (>= 0)
    "ridge": "H",            # "H" (penalty on the features E X~) or "E" (on the embeddings E)
    "lam_W": 0.001,          # ridge on W (>= 0)
    "lam_H": 0.001,          # ridge on the features (ridge "H" only)   | "lam_E" (ridge "E" only)
    "normalize": null,       # optional: column-normalisation radius r > 0
    "dim": 9                 # optional feature dimension (default K)
  },
  "init_scale": 0.001,       # optional (default 1e-3)
  "t1": null,                # optional final time (default: automatic, extended until the collapse)
  "etf_tol": 0.05,           # optional
  "which": "both",           # optional: "H", "W" or "both"
  "method": "reduced",       # optional: "reduced" (exact reduced ODE) or "full" (full gradient flow)
  "points_per_decade": 20    # optional save-grid density
}
Designs with K > 4096 contexts are handled by the reduced ODE alone (no K x K design is built)."""
"""The JSON schema of ``ufm predict`` configs (``#`` comments are documentation, not JSON)."""


class ConfigError(ValueError):
    """A ``ufm predict`` config that does not follow :data:`PREDICT_SCHEMA`."""


def _save_figure(fig: Any, path: Path) -> None:
    import io

    from ufmtheory._io import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    import matplotlib.pyplot as plt

    plt.close(fig)


def run_demo(
    out: Path,
    progress: bool = True,
    t1: float = 1e5,
    lam: float = 1e-3,
    transformer_steps: int | None = DEMO_STEPS,
) -> dict[str, Any]:
    """Run the demo and write its figures, ``results.json`` and ``report.html`` into ``out``.

    With ``transformer_steps`` (default :data:`DEMO_STEPS`; ``None`` skips it) the baseline transformer is
    trained on the same design and compared with the theory runs (:func:`ufmtheory.analysis.compare.compare`):
    sections ``"transformer"`` and ``"comparison"`` of the results.

    Returns the results dictionary (also written to ``out/results.json``).
    """
    import ufmtheory as ut
    from ufmtheory import metrics, plotting
    from ufmtheory._io import atomic_write_bytes

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    design = ut.designs.factorial((3, 3))
    K = design.m
    results: dict[str, Any] = {"design": design.summary()}

    # 1. Regularised flow from small random init to Zhu's ETF.
    prob = ut.UFM(design, dim=K, lam_W=lam, lam_H=lam)
    init = ut.init.small(prob, scale=1e-2, seed=0)
    traj = ut.gradient_flow(prob, t1, init=init, progress=progress)
    eq = ut.zhu(prob)
    traj.save(out / "trajectory_regularised")
    mH = traj.metrics(design, which="H")
    phases = metrics.phase_times(traj.ts, mH["semantic_strength"], mH["etf_distance"], etf_tol=0.05)
    results["regularised"] = {
        "problem": prob.describe(),
        "status": traj.status,
        "stats": traj.stats,
        "final_etf_distance_H": float(mH["etf_distance"][-1]),
        "max_abs_error_vs_zhu_gram_H": float(np.abs(traj.gram_H[-1] - eq.gram_H).max()),
        "max_abs_error_vs_zhu_gram_W": float(np.abs(traj.gram_W[-1] - eq.gram_W).max()),
        "zhu": {k: v for k, v in eq.stats.items()},
        "zhu_loss": eq.loss,
        "final_loss": float(traj.loss[-1]),
        "etf_time": phases["etf_time"],
        "peak_semantic_strength_H": float(np.nanmax(mH["semantic_strength"])),
    }
    times = [t for t in (1.0, 30.0, 300.0, 1e3, 3e3, t1) if t <= t1]
    for which in ("H", "W"):
        names = design.context_names if which == "H" else design.label_names
        fig, _ = plotting.plot_gram_snapshots(traj, times, which=which, labels=names)
        _save_figure(fig, out / f"gram_{which}.png")
    fig, _ = plotting.plot_curves(traj, design)
    _save_figure(fig, out / "curves.png")

    # 2. Unregularised flow from the aligned init: the exact ETF mode, to t = 1e8.
    u0 = 1e-2
    free = ut.UFM(design, dim=K)
    start = time.perf_counter()
    exact = ut.gradient_flow(free, 1e8, init=ut.init.aligned(free, u0), progress=progress)
    u_flow = np.trace(exact.gram_H, axis1=1, axis2=2) / (K - 1)
    u_exact = ut.etf_mode_u(exact.ts, K, u0)
    results["etf_mode"] = {
        "status": exact.status,
        "t1": 1e8,
        "u0": u0,
        "max_relative_error_vs_closed_form": float(np.max(np.abs(u_flow / u_exact - 1))),
        "u_final": float(u_flow[-1]),
        "ln_t_final": float(np.log(1e8)),
        "evaluations": exact.stats["evaluations"],
        "wall_time": time.perf_counter() - start,
    }
    # 3. Modified UFM beside the standard one: predicted (reduced ODE) and detected (full flow) phases.
    results["modified"], results["standard_phases"], mod_traj = _demo_modified(
        out, design, traj, prob, lam, progress
    )
    figures = [
        ("Standard UFM: Gram heatmaps of H over time (cosines of centred features)", "gram_H.png"),
        ("Standard UFM: Gram heatmaps of W over time", "gram_W.png"),
        ("Standard UFM: ETF distance and loss", "curves.png"),
        ("Standard vs modified UFM: phases of H", "phases.png"),
        ("Standard vs modified UFM: phases of W", "phases_W.png"),
        ("Modified UFM: H Grams at the phase times", "gram_phases.png"),
        ("Modified UFM: W Grams at the phase times", "gram_phases_W.png"),
    ]
    # 4. The transformer baseline on the same design, compared with both theory runs.
    if transformer_steps is not None:
        results["transformer"], results["comparison"], extra = _demo_transformer(
            out, design, traj, mod_traj, lam, transformer_steps, progress
        )
        figures += extra

    from ufmtheory.report import write_report

    results["files"] = sorted(
        {p.name for p in out.iterdir() if not p.name.startswith(".")} | {"results.json", "report.html"}
    )
    write_report(
        out / "report.html",
        results,
        [(cap, out / name) for cap, name in figures if (out / name).exists()],
        title="ufm demo: " + "x".join(map(str, design.factor_sizes)) + " factorial design",
    )
    results["files"] = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    atomic_write_bytes(out / "results.json", json.dumps(results, indent=2, default=_json_default).encode())
    return results


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return float(value)


def _plateau_cosines(G: np.ndarray, X: np.ndarray) -> dict[str, float]:
    """Mean centred cosine of pairs sharing exactly one attribute and of pairs sharing none."""
    from ufmtheory.metrics import centered, cosine

    C = cosine(centered(G))
    shared = X.T @ X
    off = ~np.eye(G.shape[0], dtype=bool)
    return {
        "share_one": float(C[off & (shared == 1)].mean()),
        "share_none": float(C[off & (shared == 0)].mean()),
    }


def _demo_modified(
    out: Path, design: Any, std_traj: Any, std_prob: Any, lam: float, progress: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    import ufmtheory as ut
    from ufmtheory import plotting
    from ufmtheory.analysis.phases import detect_phases, predict_phases
    from ufmtheory.solvers.reduced import aligned_full_init

    K = design.m
    mod = ut.ModifiedUFM(design, dim=K, alpha=1.0, beta=1.0, ridge="H", lam_W=lam, lam_H=lam)
    start = time.perf_counter()
    predicted = {w: predict_phases(mod, which=w) for w in ("H", "W")}
    wall_reduced = time.perf_counter() - start
    ref = predicted["H"]
    init = ref.stats["init"]
    # The full flow from the same aligned init on the same grid: the same phases, and Grams for heatmaps.
    start = time.perf_counter()
    full = ut.gradient_flow(
        mod,
        ref.stats["t1"],
        init=aligned_full_init(mod, init["w0"], init["h0"]),
        saveat=ref.curves["ts"],
        progress=progress,
    )
    wall_full = time.perf_counter() - start
    detected = {w: detect_phases(full, design, which=w) for w in ("H", "W")}
    reduced_traj = ref.trajectory
    err_H = float(np.abs(np.asarray(reduced_traj.gram_H) - full.gram_H).max() / np.abs(full.gram_H).max())
    std_predicted = {w: predict_phases(std_prob, which=w) for w in ("H", "W")}
    std_detected = {w: detect_phases(std_traj, design, which=w) for w in ("H", "W")}

    for which, suffix in (("H", ""), ("W", "_W")):
        fig, _ = plotting.plot_phases(
            [std_traj, full],
            design,
            phases=[std_detected[which], detected[which]],
            labels=["standard UFM (random init)", "modified UFM α=β=1 (full flow)"],
            which=which,
        )
        _save_figure(fig, out / f"phases{suffix}.png")
        fig, _ = plotting.plot_gram_at_phases(full, detected[which], design)
        _save_figure(fig, out / f"gram_phases{suffix}.png")

    A = design.factor_sizes[0]
    peak_gram = full.at(detected["H"].peak)[0]
    modified = {
        "problem": mod.describe(),
        "predicted": {w: p.as_dict() for w, p in predicted.items()},
        "detected": {w: p.as_dict() for w, p in detected.items()},
        "full_flow": {
            "status": full.status,
            "t1": ref.stats["t1"],
            "evaluations": full.stats["evaluations"],
            "wall_time": wall_full,
            "max_rel_error_vs_reduced_gram_H": err_H,
        },
        "reduced_wall_time": wall_reduced,
        "plateau_cosines_H": {
            "measured_at_peak": _plateau_cosines(peak_gram, design.X),
            "theory": {"share_one": (A - 2) / (2 * (A - 1)), "share_none": -1.0 / (A - 1)},
        },
    }
    standard = {
        "predicted": {w: p.as_dict() for w, p in std_predicted.items()},
        "detected": {w: p.as_dict() for w, p in std_detected.items()},
    }
    return modified, standard, full


def _demo_transformer(
    out: Path, design: Any, std_traj: Any, mod_traj: Any, lam: float, steps: int, progress: bool
) -> tuple[dict[str, Any], dict[str, Any], list[tuple[str, str]]]:
    """Train the baseline GPT on ``design``; compare with the standard and modified UFM runs."""
    import dataclasses

    from ufmtheory import plotting
    from ufmtheory.analysis.compare import compare, variant_grid
    from ufmtheory.analysis.phases import detect_phases
    from ufmtheory.baseline import TrainConfig, train

    config = TrainConfig(steps=steps, n_layers=2, width=64, n_heads=4, lr=1e-3, num_threads=1, seed=0)
    start = time.perf_counter()
    gpt = train(design, config, progress=progress)
    wall = time.perf_counter() - start
    gpt.save(out / "trajectory_transformer")
    phases = {w: detect_phases(gpt, design, which=w) for w in ("H", "W")}
    mW = gpt.metrics(design, which="W")
    sW = mW["semantic_strength"]
    k_peak = int(np.nanargmax(sW))
    after = sW[k_peak:]
    transformer = {
        "config": {k: v for k, v in dataclasses.asdict(config).items() if k != "model"},
        "status": gpt.status,
        "wall_time": wall,
        "stats": gpt.stats,
        "final_loss": float(gpt.loss[-1]),
        "phases": {w: p.as_dict() for w, p in phases.items()},
        # The semantic strength is measured relative to its ETF value: > 0 is "above the ETF value".
        "W_semantic": {
            "peak_strength": float(sW[k_peak]),
            "peak_step": float(gpt.ts[k_peak]),
            "rises_above_etf_value": bool(sW[k_peak] > 0),
            "falls_below_half_peak": bool(np.any(after < 0.5 * sW[k_peak])),
            "final_strength": float(sW[-1]),
        },
    }
    variants = {f"standard UFM (λ={lam:g}, random init)": std_traj, **variant_grid(design, lam=lam)}
    cmp_mod = compare(mod_traj, gpt, design, variants=variants)
    cmp_std = compare(std_traj, gpt, design)
    comparison = {"modified": cmp_mod.as_dict(), "standard": cmp_std.as_dict()}

    # Gram heatmaps over time for the modified UFM and the transformer (the standard UFM: gram_H/W.png).
    figures: list[tuple[str, str]] = []
    t_mod = [
        t for t in (1.0, 10.0, 100.0, 1e3, 1e4, mod_traj.ts[-1]) if mod_traj.ts[0] <= t <= mod_traj.ts[-1]
    ]
    s_gpt = [s for s in (0, 10, 30, 100, 300, 1000, steps) if s <= steps]
    s_gpt = sorted(set(s_gpt))
    for which in ("H", "W"):
        names = design.context_names if which == "H" else design.label_names
        fig, _ = plotting.plot_gram_snapshots(mod_traj, t_mod, which=which, labels=names)
        _save_figure(fig, out / f"gram_modified_{which}.png")
        fig, _ = plotting.plot_gram_snapshots(gpt, s_gpt, which=which, labels=names)
        _save_figure(fig, out / f"gram_transformer_{which}.png")
        figures += [
            (f"Modified UFM: Gram heatmaps of {which} over gradient-flow time", f"gram_modified_{which}.png"),
            (f"Transformer: Gram heatmaps of {which} over steps", f"gram_transformer_{which}.png"),
        ]
    fig = _overlay_figure(
        design, gpt, [("standard UFM", std_traj, cmp_std), ("modified UFM", mod_traj, cmp_mod)]
    )
    _save_figure(fig, out / "strength_overlay.png")
    figures.insert(
        0,
        (
            "Semantic strength: transformer vs theory mapped to steps (fitted time map)",
            "strength_overlay.png",
        ),
    )
    return transformer, comparison, figures


def _overlay_figure(design: Any, gpt: Any, theories: list[tuple[str, Any, Any]]) -> Any:
    """Semantic strength of H and W against steps: the transformer and each theory run after its time map."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    styles = {"onset": ":", "peak": "-", "collapse": "--", "etf_time": "-."}
    colours = ["C0", "C1", "C2", "C3"]
    for ax, which in zip(axes, ("H", "W"), strict=True):
        m = gpt.metrics(design, which=which)
        pos = m["ts"] > 0
        ax.plot(m["ts"][pos], m["semantic_strength"][pos], color="k", lw=2, label="transformer")
        for name, t in theories[0][2].measured[which].items():
            if t:
                ax.axvline(t, color="k", ls=styles[name], lw=0.8)
        for (label, traj, cmp), colour in zip(theories, colours, strict=False):
            mt = traj.metrics(design, which=which)
            keep = mt["ts"] > 0
            steps = cmp.to_step(mt["ts"][keep])
            inside = (steps >= m["ts"][pos][0] / 3) & (steps <= m["ts"][-1] * 3)
            ax.plot(
                steps[inside],
                mt["semantic_strength"][keep][inside],
                color=colour,
                label=f"{label} (log t = {cmp.a:.2f} + {cmp.b:.2f} log s)",
            )
            for name, s in cmp.predicted[which].items():
                if s and m["ts"][pos][0] / 3 <= s <= m["ts"][-1] * 3:
                    ax.axvline(s, color=colour, ls=styles[name], lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("optimiser step")
        ax.set_ylabel(f"semantic strength of {which}")
        ax.set_title(f"{which}: lines = onset (:), peak (-), collapse (--), ETF (-.)", fontsize=9)
        ax.axhline(0, color="grey", lw=0.5)
    axes[1].legend(fontsize=8)
    return fig


def _print_summary(results: dict[str, Any], out: Path) -> None:
    reg, mode = results["regularised"], results["etf_mode"]
    print(f"ufm demo: 3x3 factorial design, standard UFM (results in {out})")
    print(
        f"  regularised flow  status={reg['status']}  evaluations={reg['stats']['evaluations']}"
        f"  wall={reg['stats']['wall_time']:.2f}s"
    )
    print(
        f"  vs Zhu et al. closed form: max |ΔHᵀH| = {reg['max_abs_error_vs_zhu_gram_H']:.2e},"
        f" max |ΔWWᵀ| = {reg['max_abs_error_vs_zhu_gram_W']:.2e}, final ETF distance"
        f" {reg['final_etf_distance_H']:.2e}, ETF time {reg['etf_time']}"
    )
    print(
        f"  ETF mode to t=1e8: status={mode['status']}, max rel. error vs t(u) closed form"
        f" {mode['max_relative_error_vs_closed_form']:.2e}, u(1e8) = {mode['u_final']:.2f}"
    )
    mod, std = results["modified"], results["standard_phases"]
    print("  phases (gradient-flow time; H: contexts, W: labels)")
    print(f"    {'':<22} {'onset':>9} {'peak':>9} {'collapse':>9} {'etf_time':>9} {'strength':>9}")
    rows = [
        ("standard, detected", std["detected"]),
        ("modified, predicted", mod["predicted"]),
        ("modified, detected", mod["detected"]),
    ]
    for name, by_which in rows:
        for which in ("H", "W"):
            ph = by_which[which]
            cells = [_fmt(ph[k]) for k in ("onset", "peak", "collapse", "etf_time", "peak_strength")]
            print(f"    {name + ' ' + which:<22} " + " ".join(f"{c:>9}" for c in cells))
    est = mod["predicted"]["H"]["estimates"]
    print(f"    closed-form estimates: t_sem = {_fmt(est.get('t_sem'))}, t_col = {_fmt(est.get('t_col'))}")
    tr, comp = results.get("transformer"), results.get("comparison")
    if tr and comp:
        cfg = tr["config"]
        print(
            f"  transformer: {cfg['n_layers']} layers, width {cfg['width']}, {cfg['optimizer']}"
            f" lr {cfg['lr']:g}, {cfg['steps']} steps in {tr['wall_time']:.1f}s,"
            f" final loss {_fmt(tr['final_loss'])}"
        )
        cm = comp["modified"]
        tm = cm["time_map"]
        print(f"  phases in steps, modified UFM mapped by log t = {tm['a']:.3g} + {tm['b']:.3g} log step:")
        print(f"    {'':<22} {'onset':>9} {'peak':>9} {'collapse':>9} {'etf_time':>9}")
        for which in ("H", "W"):
            for name, times in (("predicted", cm["predicted_steps"]), ("measured", cm["measured_steps"])):
                cells = [_fmt(times[which][k]) for k in ("onset", "peak", "collapse", "etf_time")]
                print(f"    {name + ' ' + which:<22} " + " ".join(f"{c:>9}" for c in cells))
        ws = tr["W_semantic"]
        print(
            f"  transformer W semantic strength: peak {ws['peak_strength']:.3g} at step {ws['peak_step']:g}"
            f" (above ETF value: {ws['rises_above_etf_value']}; later below half peak:"
            f" {ws['falls_below_half_peak']})"
        )
        for key, label in (("modified", "modified UFM α=β=1"), ("standard", "standard UFM")):
            print(f"  curve error after time map, {label}: total {_fmt(comp[key]['total_error'])}")
        best = cm.get("best_variant")
        if best:
            err = next(v["total_error"] for v in cm["variants"] if v["name"] == best)
            print(f"  best-matching variant: {best} (total curve error {_fmt(err)})")


_TOP_KEYS = {
    "design",
    "model",
    "init_scale",
    "t1",
    "etf_tol",
    "which",
    "method",
    "points_per_decade",
    "t_max",
}
_MODEL_KEYS = {"alpha", "beta", "ridge", "lam_W", "lam_H", "lam_E", "normalize", "dim"}


def _number(where: str, value: Any, *, positive: bool = False, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ConfigError(f"{where} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def _integer(where: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where} must be an integer >= {minimum}, got {value!r}")
    return value


def _parse_design(spec: Any) -> dict[str, Any]:
    """Validate a design spec (``{"kind": "factorial", "sizes": [...]}`` or hierarchical)."""
    if not isinstance(spec, dict):
        raise ConfigError("config needs a 'design' object (see `ufm predict --schema`)")
    design = dict(spec)
    kind = design.get("kind")
    if kind == "factorial":
        if set(design) - {"kind", "sizes"}:
            raise ConfigError(f"design: unknown key(s) {sorted(set(design) - {'kind', 'sizes'})}")
        sizes = design.get("sizes")
        if not isinstance(sizes, list) or not sizes:
            raise ConfigError(f"design.sizes must be a non-empty list of integers >= 2, got {sizes!r}")
        design["sizes"] = [_integer(f"design.sizes[{i}]", a, 2) for i, a in enumerate(sizes)]
    elif kind == "hierarchical":
        if set(design) - {"kind", "depth", "branching"}:
            raise ConfigError(
                f"design: unknown key(s) {sorted(set(design) - {'kind', 'depth', 'branching'})}"
            )
        design["depth"] = _integer("design.depth", design.get("depth"), 1)
        design["branching"] = _integer("design.branching", design.get("branching"), 2)
    else:
        raise ConfigError(f"design.kind must be 'factorial' or 'hierarchical', got {kind!r}")
    return design


def _make_design(d: dict[str, Any]) -> Any:
    import ufmtheory as ut

    if d["kind"] == "factorial":
        return ut.designs.factorial(d["sizes"])
    return ut.designs.hierarchical(d["depth"], d["branching"])


def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None


def load_predict_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a ``ufm predict`` config (:data:`PREDICT_SCHEMA`); defaults filled in.

    Raises:
        ConfigError: the file is missing, not JSON, or does not follow the schema (the message says where).
    """
    path = Path(path)
    cfg = _read_json(path)
    if not isinstance(cfg, dict):
        raise ConfigError("the config must be a JSON object with keys 'design' and 'model'")
    unknown = set(cfg) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"unknown config key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    for key in ("design", "model"):
        if not isinstance(cfg.get(key), dict):
            raise ConfigError(f"config needs a '{key}' object (see `ufm predict --schema`)")
    design = _parse_design(cfg["design"])
    model = dict(cfg["model"])
    unknown = set(model) - _MODEL_KEYS
    if unknown:
        raise ConfigError(f"model: unknown key(s) {sorted(unknown)}; allowed: {sorted(_MODEL_KEYS)}")
    model.setdefault("alpha", 1.0)
    model.setdefault("beta", 1.0)
    model.setdefault("ridge", "H")
    if model["ridge"] not in ("H", "E"):
        raise ConfigError(f"model.ridge must be 'H' or 'E', got {model['ridge']!r}")
    for key in ("alpha", "beta", "lam_W", "lam_H", "lam_E"):
        model[key] = _number(f"model.{key}", model.get(key, 0.0))
    if model["alpha"] == 0 and model["beta"] == 0:
        raise ConfigError("model.alpha and model.beta must not both be 0")
    if model["ridge"] == "H" and model["lam_E"]:
        raise ConfigError("model.lam_E must be 0 with ridge 'H' (use lam_H)")
    if model["ridge"] == "E" and model["lam_H"]:
        raise ConfigError("model.lam_H must be 0 with ridge 'E' (use lam_E)")
    model["normalize"] = _number("model.normalize", model.get("normalize"), positive=True, allow_none=True)
    if model.get("dim") is not None:
        model["dim"] = _integer("model.dim", model["dim"], 1)
    out = {
        "design": design,
        "model": model,
        "init_scale": _number("init_scale", cfg.get("init_scale", 1e-3), positive=True),
        "t1": _number("t1", cfg.get("t1"), positive=True, allow_none=True),
        "etf_tol": _number("etf_tol", cfg.get("etf_tol", 0.05), positive=True),
        "which": cfg.get("which", "both"),
        "method": cfg.get("method", "reduced"),
        "points_per_decade": _integer("points_per_decade", cfg.get("points_per_decade", 20), 1),
        "t_max": _number("t_max", cfg.get("t_max", 1e12), positive=True),
    }
    if out["which"] not in ("H", "W", "both"):
        raise ConfigError(f"which must be 'H', 'W' or 'both', got {out['which']!r}")
    if out["method"] not in ("reduced", "full"):
        raise ConfigError(f"method must be 'reduced' or 'full', got {out['method']!r}")
    return out


def _build_problem(cfg: dict[str, Any]) -> tuple[Any, str]:
    """The problem of a validated config, and a one-line description."""
    import math

    import ufmtheory as ut
    from ufmtheory.algebra.schemes import factorial_scheme, hierarchical_scheme
    from ufmtheory.solvers.reduced import MATERIALISE_MAX_K, ReducedProblem

    d, m = cfg["design"], cfg["model"]
    if d["kind"] == "factorial":
        K = math.prod(d["sizes"])
        label = "factorial " + "x".join(map(str, d["sizes"]))
    else:
        K = d["branching"] ** d["depth"]
        label = f"hierarchical depth {d['depth']} branching {d['branching']}"
    desc = (
        f"{label} (K = {K}), alpha={m['alpha']:g}, beta={m['beta']:g}, ridge {m['ridge']},"
        f" lam_W={m['lam_W']:g}, lam_{m['ridge']}={m['lam_H'] if m['ridge'] == 'H' else m['lam_E']:g}"
        + (f", normalize={m['normalize']:g}" if m["normalize"] is not None else "")
    )
    kw = {k: m[k] for k in ("alpha", "beta", "ridge", "lam_W", "lam_H", "lam_E")}
    if m["normalize"] is not None:
        kw["normalize"] = m["normalize"]
    if K > MATERIALISE_MAX_K:
        if cfg["method"] == "full":
            raise ConfigError(
                f"method 'full' needs a K x K design; K = {K} > {MATERIALISE_MAX_K}: use 'reduced'"
            )
        if m.get("dim") is not None and m["dim"] < K - 1:
            raise ConfigError(f"model.dim = {m['dim']} < K - 1 = {K - 1}: the reduced ODE needs dim >= K - 1")
        sch = (
            factorial_scheme(d["sizes"])
            if d["kind"] == "factorial"
            else hierarchical_scheme(d["depth"], d["branching"])
        )
        return ReducedProblem.from_parts(sch, **kw), desc
    design = (
        ut.designs.factorial(d["sizes"])
        if d["kind"] == "factorial"
        else ut.designs.hierarchical(d["depth"], d["branching"])
    )
    try:
        return ut.ModifiedUFM(design, dim=m.get("dim") or K, **kw), desc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model: {exc}") from None


def run_predict(cfg: dict[str, Any]) -> dict[str, Any]:
    """Predicted phases of a validated config.

    Returns:
        ``{"config", "problem" (a description), "phases": {which: Phases.as_dict()}}``.
    """
    from ufmtheory.analysis.phases import predict_phases

    problem, desc = _build_problem(cfg)
    whichs = ("H", "W") if cfg["which"] == "both" else (cfg["which"],)
    phases = {}
    for which in whichs:
        try:
            ph = predict_phases(
                problem,
                t1=cfg["t1"],
                init_scale=cfg["init_scale"],
                which=which,
                etf_tol=cfg["etf_tol"],
                method=cfg["method"],
                points_per_decade=cfg["points_per_decade"],
                t_max=cfg["t_max"],
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc)) from None
        phases[which] = ph.as_dict()
    return {"config": cfg, "problem": desc, "phases": phases}


def _print_predict(result: dict[str, Any]) -> None:
    phases = result["phases"]
    first = next(iter(phases.values()))
    print(f"ufm predict: {result['problem']}")
    print(
        f"  method {first['method']}, t1 = {_fmt(first['stats']['t1'])} ({first['time_unit']}),"
        f" init_scale {result['config']['init_scale']:g}, etf_tol {first['etf_tol']:g}"
    )
    whichs = list(phases)
    print(f"  {'phase':<10}" + "".join(f" {w:>12}" for w in whichs) + f" {'estimate':>12}")
    est = first["estimates"]
    estimate = {"peak": est.get("t_sem"), "collapse": est.get("t_col")}
    for key in ("onset", "peak", "collapse", "etf_time", "peak_strength"):
        cells = "".join(f" {_fmt(phases[w][key]):>12}" for w in whichs)
        name = "strength" if key == "peak_strength" else key
        print(f"  {name:<10}{cells} {_fmt(estimate.get(key)):>12}")
    print("  status:   " + "; ".join(f"{w}: {phases[w]['status']}" for w in whichs))
    if est.get("t_sem") is not None:
        print(
            f"  estimates: t_sem = K ln(K/l0)/(2 sqrt(kappa_attr)) = {_fmt(est['t_sem'])};"
            f" t_col = t_sem + ln(delta_end/delta(t_sem))/mu = {_fmt(est.get('t_col'))}"
            f" (mu = {_fmt(est.get('mu'))})"
        )


# -- ufm train / ufm compare -------------------------------------------------------------------------------
TRAIN_SCHEMA = """\
{
  "design": {"kind": "factorial", "sizes": [4, 4]}      # as in `ufm predict`
            | {"kind": "hierarchical", "depth": 2, "branching": 3},
  # any field of ufmtheory.baseline.TrainConfig (all optional), e.g.
  "steps": 3000, "lr": 0.001, "optimizer": "adamw", "weight_decay": 0.0,
  "n_layers": 2, "width": 64, "n_heads": 4, "seed": 0, "n_snapshots": 60,
  "num_threads": 1, "device": "cpu", "etf_tol": 0.05   # etf_tol: for the phase table only
}"""
"""The JSON schema of ``ufm train`` configs (``#`` comments are documentation, not JSON)."""

_TRAIN_EXCLUDED = {"model", "checkpoint_dir", "resume", "checkpoint_every", "keep_checkpoints", "stop_at"}


def _train_fields() -> set[str]:
    import dataclasses

    from ufmtheory.baseline import TrainConfig

    return {f.name for f in dataclasses.fields(TrainConfig)} - _TRAIN_EXCLUDED


def load_train_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a ``ufm train`` config (:data:`TRAIN_SCHEMA`).

    Returns:
        ``{"design": spec, "train": {TrainConfig fields}, "etf_tol": float}``.

    Raises:
        ConfigError: missing file, bad JSON, unknown key, bad design or a TrainConfig field it refuses.
    """
    from ufmtheory.baseline import TrainConfig

    cfg = _read_json(Path(path))
    if not isinstance(cfg, dict):
        raise ConfigError("the config must be a JSON object with a 'design' key and TrainConfig fields")
    if "design" not in cfg:
        raise ConfigError("config needs a 'design' object (see `ufm train --schema`)")
    allowed = _train_fields() | {"design", "etf_tol"}
    unknown = set(cfg) - allowed
    if unknown:
        raise ConfigError(f"unknown config key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    design = _parse_design(cfg["design"])
    train = {k: v for k, v in cfg.items() if k not in ("design", "etf_tol")}
    if "betas" in train and isinstance(train["betas"], list):
        train["betas"] = tuple(train["betas"])
    try:
        TrainConfig(**train)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"train config: {exc}") from None
    return {
        "design": design,
        "train": train,
        "etf_tol": _number("etf_tol", cfg.get("etf_tol", 0.05), positive=True),
    }


def run_train(cfg: dict[str, Any], out: Path | None = None) -> tuple[Any, dict[str, Any]]:
    """Train the baseline GPT on a validated :func:`load_train_config` config.

    Returns:
        ``(trajectory, {which: Phases})``; the trajectory is saved with ``Trajectory.save(out)`` when
        ``out`` is given.
    """
    from ufmtheory.analysis.phases import detect_phases
    from ufmtheory.baseline import TrainConfig, train

    design = _make_design(cfg["design"])
    traj = train(design, TrainConfig(**cfg["train"]))
    if out is not None:
        traj.save(out)
    phases = {w: detect_phases(traj, design, which=w, etf_tol=cfg["etf_tol"]) for w in ("H", "W")}
    return traj, phases


def _print_phase_table(title: str, phases: dict[str, Any], unit: str) -> None:
    print(title)
    print(f"  {'phase (' + unit + ')':<16}" + "".join(f" {w:>10}" for w in phases))
    for key in ("onset", "peak", "collapse", "etf_time", "peak_strength"):
        name = "strength" if key == "peak_strength" else key
        print(f"  {name:<16}" + "".join(f" {_fmt(getattr(p, key)):>10}" for p in phases.values()))


def load_design_config(path: str | Path) -> Any:
    """The design of a JSON config with a ``"design"`` key (a ``ufm predict`` or ``ufm train`` config)."""
    cfg = _read_json(Path(path))
    if not isinstance(cfg, dict) or "design" not in cfg:
        raise ConfigError(f"{path}: the design config must be a JSON object with a 'design' key")
    return _make_design(_parse_design(cfg["design"]))


def _load_trajectory(path: Path, name: str) -> Any:
    from ufmtheory.trajectory import Trajectory

    try:
        return Trajectory.load(path)
    except FileNotFoundError as exc:
        raise ConfigError(f"{name}: {exc}") from None
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{name}: cannot load trajectory {str(path)!r}: {exc}") from None


def run_compare(theory: Path, model: Path, design_config: Path, which: str = "both") -> Any:
    """:func:`ufmtheory.analysis.compare` of two saved trajectories on the design of ``design_config``."""
    from ufmtheory.analysis.compare import compare

    design = load_design_config(design_config)
    th = _load_trajectory(theory, "THEORY")
    mo = _load_trajectory(model, "MODEL")
    whichs = ("H", "W") if which == "both" else (which,)
    try:
        return compare(th, mo, design, which=whichs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


def _config_or_exit_code(command: str, args: Any, schema: str, loader: Any) -> tuple[Any, int | None]:
    """``(config, None)``, or ``(None, exit code)`` after printing the schema (``--schema``, 0) or a
    config error (2, no traceback)."""
    if args.schema:
        print(schema)
        return None, 0
    if args.config is None:
        print(f"ufm {command}: error: CONFIG is required (see `ufm {command} --schema`)", file=sys.stderr)
        return None, 2
    try:
        return loader(args.config), None
    except ConfigError as exc:
        print(f"ufm {command}: error: {exc}", file=sys.stderr)
        return None, 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ufm`` console script."""
    from ufmtheory import __version__

    parser = argparse.ArgumentParser(prog="ufm", description="ufmtheory: unconstrained features model tools")
    parser.add_argument("--version", action="version", version=f"ufmtheory {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="standard vs modified UFM on a 3x3 factorial design: figures, phases, results.json"
    )
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    demo.add_argument(
        "--no-transformer", action="store_true", help="skip the transformer baseline (fast; theory only)"
    )
    # Debug/testing: a short transformer run.
    demo.add_argument("--transformer-steps", type=int, default=DEMO_STEPS, help=argparse.SUPPRESS)
    trainp = sub.add_parser(
        "train",
        help="train the baseline transformer on a design (JSON config) and save its Gram trajectory",
        description="Train the small GPT on a design's exact-statistics sequences. CONFIG schema:\n"
        + TRAIN_SCHEMA,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    trainp.add_argument("config", type=Path, nargs="?", help="JSON config file")
    trainp.add_argument("--out", type=Path, default=None, help="save the trajectory (OUT.npz + OUT.json)")
    trainp.add_argument("--schema", action="store_true", help="print the config schema and exit")
    comparep = sub.add_parser(
        "compare",
        help="fit the time map between a theory trajectory and a trained model and compare them",
    )
    comparep.add_argument("theory", type=Path, help="saved theory trajectory (Trajectory.save path)")
    comparep.add_argument("model", type=Path, help="saved model trajectory (e.g. from `ufm train --out`)")
    comparep.add_argument(
        "--design", type=Path, required=True, help="JSON config with a 'design' key (as `ufm predict`)"
    )
    comparep.add_argument("--which", choices=("H", "W", "both"), default="both")
    comparep.add_argument("--out", type=Path, default=None, help="also write the comparison as JSON")
    predict = sub.add_parser(
        "predict",
        help="predicted phase times of the problem in a JSON config",
        description="Predict the phase times (onset, peak, collapse, ETF time) of a (modified) UFM."
        " CONFIG schema:\n" + PREDICT_SCHEMA,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    predict.add_argument("config", type=Path, nargs="?", help="JSON config file")
    predict.add_argument("--out", type=Path, default=None, help="also write the phases as JSON to this file")
    predict.add_argument("--schema", action="store_true", help="print the config schema and exit")
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.transformer_steps < 1:
            print("ufm demo: error: --transformer-steps must be >= 1", file=sys.stderr)
            return 2
        steps = None if args.no_transformer else args.transformer_steps
        results = run_demo(args.out, progress=not args.no_progress, transformer_steps=steps)
        _print_summary(results, args.out)
        ok = results["regularised"]["status"] == "ok" and results["etf_mode"]["status"] == "ok"
        return 0 if ok else 1
    if args.command == "predict":
        config, code = _config_or_exit_code("predict", args, PREDICT_SCHEMA, load_predict_config)
        if code is not None:
            return code
        try:
            result = run_predict(config)
        except ConfigError as exc:
            print(f"ufm predict: error: {exc}", file=sys.stderr)
            return 2
        _print_predict(result)
        if args.out is not None:
            from ufmtheory._io import atomic_write_bytes

            atomic_write_bytes(args.out, json.dumps(result, indent=2, default=_json_default).encode())
            print(f"  wrote {args.out}")
        return 0 if all(p["status"] == "ok" for p in result["phases"].values()) else 1
    if args.command == "train":
        cfg, code = _config_or_exit_code("train", args, TRAIN_SCHEMA, load_train_config)
        if code is not None:
            return code
        traj, phases = run_train(cfg, args.out)
        d = cfg["design"]
        label = "x".join(map(str, d["sizes"])) if d["kind"] == "factorial" else f"hierarchical {d}"
        print(
            f"ufm train: {label} design, {traj.stats.get('steps_run')} steps in"
            f" {_fmt(traj.stats.get('wall_time_s'))} s, final loss {_fmt(traj.loss[-1])},"
            f" status {traj.status}"
        )
        _print_phase_table("  phases (optimiser steps; H: contexts, W: labels)", phases, "steps")
        if args.out is not None:
            print(f"  wrote {args.out}.npz / .json")
        return 0 if traj.ok else 1
    if args.command == "compare":
        try:
            cmp = run_compare(args.theory, args.model, args.design, which=args.which)
        except ConfigError as exc:
            print(f"ufm compare: error: {exc}", file=sys.stderr)
            return 2
        print(f"ufm compare: {args.theory} vs {args.model}")
        print(cmp.table())
        if args.out is not None:
            from ufmtheory._io import atomic_write_bytes

            atomic_write_bytes(args.out, json.dumps(cmp.as_dict(), indent=2, default=_json_default).encode())
            print(f"  wrote {args.out}")
        return 0 if cmp.ok else 1
    parser.error(f"unknown command {args.command}")  # pragma: no cover - argparse enforces choices
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
