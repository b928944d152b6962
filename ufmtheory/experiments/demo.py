"""The demo experiment (``ufm demo``): standard vs modified UFM on a 3×3 factorial design, and a transformer.

Standard UFM: a regularised gradient flow from a small random initialisation to Zhu et al.'s simplex ETF,
checked against the closed form, and an unregularised flow to ``t = 1e8`` checked against the exact ETF-mode
time. Modified UFM (ridge on H, ``α = β = 1``, the same small ``λ``): the phases predicted by the exact
reduced ODE (through the semantic plateau and the collapse) and detected on a full gradient flow from the
same aligned initialisation. Then (unless skipped) the baseline transformer (2 layers, width 64, AdamW lr
1e-3, :data:`DEMO_STEPS` steps, one thread) trains on the same design and is compared with both theory runs
(:func:`ufmtheory.analysis.comparison.compare`: fitted time map, curve errors, phase times in steps, best
variant of :func:`ufmtheory.analysis.variants.variant_grid`).

Output folder: Gram heatmaps over time, ETF-distance/loss curves, phase figures, the semantic-strength
overlay (PNG), the saved trajectories, ``results.json`` and a self-contained ``report.html``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ufmtheory import designs, equilibria, init, metrics, plotting
from ufmtheory._format import format_number, to_jsonable
from ufmtheory._results import ResultMixin, make_stats
from ufmtheory.analysis.comparison import compare
from ufmtheory.analysis.comparison_result import Comparison
from ufmtheory.analysis.phases import Phases, detect_phases, predict_phases
from ufmtheory.analysis.variants import variant_grid
from ufmtheory.designs import Design
from ufmtheory.models import UFM, ModifiedUFM
from ufmtheory.report import design_label, write_json, write_report
from ufmtheory.solvers import gradient_flow
from ufmtheory.solvers.reduced import aligned_full_init
from ufmtheory.trajectory import Trajectory

__all__ = ["DEMO_STEPS", "DemoResult", "run_demo"]

DEMO_STEPS = 3000
"""Transformer steps of the demo (2 layers, width 64, AdamW lr 1e-3, one thread)."""

_PHASE_KEYS = ("onset", "peak", "collapse", "etf_time", "peak_strength")


@dataclass(frozen=True, kw_only=True)
class DemoResult(ResultMixin):
    """What :func:`run_demo` wrote, and its numbers.

    Attributes:
        out: the output folder.
        results: the contents of ``results.json`` (JSON-ready: floats, ``None``, lists, dicts).
        status: ``"ok"``, or ``"failed"`` when a theory run or the transformer did not end ok.
        message: which run did not end ok, and its status.
        stats: ``n_evals`` (gradient evaluations of the theory flows), ``wall_time_s``.
    """

    out: Path
    results: dict[str, Any] = field(repr=False)
    status: str
    message: str = ""
    stats: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check_result()

    def table(self) -> str:
        """A text summary: the checks against closed forms and the phase times of every run."""
        res, fmt = self.results, format_number
        reg, mode = res["regularised"], res["etf_mode"]
        lines = [
            f"ufm demo: {design_label(res['design'])}, standard vs modified UFM (results in {self.out})",
            f"  regularised flow: status {reg['status']}, {reg['stats']['n_evals']} evaluations,"
            f" {fmt(reg['stats']['wall_time_s'])} s",
            f"  vs Zhu et al. closed form: max |ΔHᵀH| = {reg['max_abs_error_vs_zhu_gram_H']:.2e},"
            f" max |ΔWWᵀ| = {reg['max_abs_error_vs_zhu_gram_W']:.2e},"
            f" final ETF distance {reg['final_etf_distance_H']:.2e}, ETF time {fmt(reg['etf_time'])}",
            f"  ETF mode to t = 1e8: status {mode['status']}, max rel. error vs the closed form"
            f" {mode['max_relative_error_vs_closed_form']:.2e}, u(1e8) = {fmt(mode['u_final'])}",
            "  phases (gradient-flow time; H: contexts, W: labels)",
            f"    {'':<24}"
            + "".join(f" {k if k != 'peak_strength' else 'strength':>9}" for k in _PHASE_KEYS),
        ]
        rows = [
            ("standard, detected", res["standard_phases"]["detected"]),
            ("modified, predicted", res["modified"]["predicted"]),
            ("modified, detected", res["modified"]["detected"]),
        ]
        tr, comp = res.get("transformer"), res.get("comparison")
        if tr:
            rows.append(("transformer (steps)", tr["phases"]))
        if comp:
            mapped = comp["modified"]["predicted_steps"]
            if any(v is not None for times in mapped.values() for v in times.values()):
                rows.append(("modified → steps", mapped))
        for name, by_which in rows:
            for which in ("H", "W"):
                cells = "".join(f" {fmt(by_which[which].get(k)):>9}" for k in _PHASE_KEYS)
                lines.append(f"    {name + ' ' + which:<24}{cells}")
        est = res["modified"]["predicted"]["H"]["estimates"]
        lines.append(
            f"    closed-form estimates: t_sem = {fmt(est.get('t_sem'))}, t_col = {fmt(est.get('t_col'))}"
        )
        if tr and comp:
            cfg = tr["config"]
            lines.append(
                f"  transformer: {cfg['n_layers']} layers, width {cfg['width']}, {cfg['optimizer']}"
                f" lr {cfg['lr']:g}, {cfg['steps']} steps in {fmt(tr['wall_time_s'])} s,"
                f" final loss {fmt(tr['final_loss'])}"
            )
            ws = tr["W_semantic"]
            lines.append(
                f"  transformer W semantic strength: peak {fmt(ws['peak_strength'])} at step"
                f" {fmt(ws['peak_step'])} (above ETF value: {ws['rises_above_etf_value']};"
                f" later below half peak: {ws['falls_below_half_peak']})"
            )
            for key, label in (("modified", "modified UFM α=β=1"), ("standard", "standard UFM")):
                c, tm = comp[key], comp[key]["time_map"]
                verdict = "" if c.get("status", "ok") == "ok" else f"; {c['status']}: {c.get('message', '')}"
                lines.append(
                    f"  {label}: time map log t = {fmt(tm['a'])} + {fmt(tm['b'])} log step,"
                    f" curve error {fmt(c['total_error'])}{verdict}"
                )
            best = comp["modified"].get("best_variant")
            if best:
                err = next(v["total_error"] for v in comp["modified"]["variants"] if v["name"] == best)
                lines.append(f"  best-matching variant: {best} (total curve error {fmt(err)})")
        lines.append(f"  status: {self.status} ({self.message})")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def run_demo(
    out: str | Path,
    *,
    progress: bool = True,
    t1: float = 1e5,
    lam: float = 1e-3,
    transformer_steps: int | None = DEMO_STEPS,
) -> DemoResult:
    """Run the demo and write its figures, trajectories, ``results.json`` and ``report.html`` into ``out``.

    Args:
        out: output folder (created if missing).
        progress: show progress bars.
        t1: final time of the regularised standard-UFM flow.
        lam: the ridge strengths (``lam_W = lam_H``) of the regularised runs.
        transformer_steps: optimiser steps of the transformer (default :data:`DEMO_STEPS`); ``None`` skips it.

    Returns:
        A :class:`DemoResult` (``results`` is also written to ``out/results.json``).
    """
    # The transformer's config is built (and so checked) before any work starts.
    config = None if transformer_steps is None else _train_config(transformer_steps, progress)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    design = designs.factorial((3, 3))
    results: dict[str, Any] = {"design": design.summary()}
    results["design"]["name"] = design_label(results["design"])

    results["regularised"], traj, prob = _regularised(out, design, t1, lam, progress)
    results["etf_mode"] = _etf_mode(design, progress)
    results["modified"], results["standard_phases"], mod_traj = _modified(
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
    if config is not None:
        results["transformer"], results["comparison"], extra = _transformer(
            out, design, traj, mod_traj, lam, config
        )
        figures = extra + figures
    runs = {
        "regularised flow": results["regularised"]["status"],
        "ETF-mode flow": results["etf_mode"]["status"],
        "modified full flow": results["modified"]["full_flow"]["status"],
    }
    if "transformer" in results:
        runs["transformer"] = results["transformer"]["status"]
    failed = [f"{name}: {status}" for name, status in runs.items() if status != "ok"]
    n_evals = sum(results[k]["stats"]["n_evals"] or 0 for k in ("regularised", "etf_mode"))
    results["files"] = sorted(
        {p.name for p in out.iterdir() if not p.name.startswith(".")} | {"results.json", "report.html"}
    )
    write_report(
        out / "report.html",
        results,
        [(cap, out / name) for cap, name in figures if (out / name).exists()],
        title=f"ufm demo: {results['design']['name']}",
    )
    write_json(out / "results.json", results)
    return DemoResult(
        out=out,
        results=to_jsonable(results),
        status="failed" if failed else "ok",
        message="; ".join(failed),
        stats=make_stats(n_evals, time.perf_counter() - start),
    )


def _stats(traj: Trajectory) -> dict[str, Any]:
    """The run statistics under the fixed keys ``n_evals``, ``wall_time_s``."""
    return make_stats(traj.stats["n_evals"], traj.stats["wall_time_s"])


def _regularised(
    out: Path, design: Design, t1: float, lam: float, progress: bool
) -> tuple[dict[str, Any], Trajectory, UFM]:
    """Regularised standard UFM from a small random init to Zhu et al.'s ETF; Gram heatmaps and curves."""
    prob = UFM(design, dim=design.m, lam_W=lam, lam_H=lam)
    traj = gradient_flow(prob, t1, init=init.small(prob, scale=1e-2, seed=0), progress=progress)
    eq = equilibria.zhu(prob)
    traj.save(out / "trajectory_regularised")
    mH = traj.metrics(design, which="H")
    phases = metrics.phase_times(traj.ts, mH["semantic_strength"], mH["etf_distance"], etf_tol=0.05)
    section = {
        "problem": prob.describe(),
        "status": traj.status,
        "stats": _stats(traj),
        "final_etf_distance_H": float(mH["etf_distance"][-1]),
        "max_abs_error_vs_zhu_gram_H": float(np.abs(traj.gram_H[-1] - eq.gram_H).max()),
        "max_abs_error_vs_zhu_gram_W": float(np.abs(traj.gram_W[-1] - eq.gram_W).max()),
        "zhu": dict(eq.stats),
        "zhu_loss": eq.loss,
        "final_loss": float(traj.loss[-1]),
        "etf_time": phases["etf_time"],
        "peak_semantic_strength_H": float(np.nanmax(mH["semantic_strength"])),
    }
    times = [t for t in (1.0, 30.0, 300.0, 1e3, 3e3, t1) if t <= t1]
    for which in ("H", "W"):
        names = design.context_names if which == "H" else design.label_names
        fig, _ = plotting.plot_gram_snapshots(traj, times, which=which, labels=names)
        plotting.save_figure(fig, out / f"gram_{which}.png")
    fig, _ = plotting.plot_curves(traj, design)
    plotting.save_figure(fig, out / "curves.png")
    return section, traj, prob


def _etf_mode(design: Design, progress: bool) -> dict[str, Any]:
    """Unregularised flow from the aligned init: the exact ETF mode, to t = 1e8, against its closed form."""
    K, u0, t1 = design.m, 1e-2, 1e8
    free = UFM(design, dim=K)
    exact = gradient_flow(free, t1, init=init.aligned(free, u0), progress=progress)
    u_flow = np.trace(exact.gram_H, axis1=1, axis2=2) / (K - 1)
    u_exact = equilibria.etf_mode_u(exact.ts, K, u0)
    return {
        "status": exact.status,
        "t1": t1,
        "u0": u0,
        "max_relative_error_vs_closed_form": float(np.max(np.abs(u_flow / u_exact - 1))),
        "u_final": float(u_flow[-1]),
        "ln_t_final": float(np.log(t1)),
        "stats": _stats(exact),
    }


def _plateau_cosines(G: np.ndarray, X: np.ndarray) -> dict[str, float]:
    """Mean centred cosine of pairs sharing exactly one attribute and of pairs sharing none."""
    C = metrics.cosine(metrics.centered(G))
    shared = X.T @ X
    off = ~np.eye(G.shape[0], dtype=bool)
    return {
        "share_one": float(C[off & (shared == 1)].mean()),
        "share_none": float(C[off & (shared == 0)].mean()),
    }


def _modified(
    out: Path, design: Design, std_traj: Trajectory, std_prob: UFM, lam: float, progress: bool
) -> tuple[dict[str, Any], dict[str, Any], Trajectory]:
    """Modified UFM: phases predicted by the reduced ODE and detected on the full flow from the same init;
    the standard UFM's phases beside them; phase figures.

    Returns:
        ``(modified section, standard section, the full flow's trajectory)``.
    """
    mod = ModifiedUFM(design, dim=design.m, alpha=1.0, beta=1.0, ridge="H", lam_W=lam, lam_H=lam)
    start = time.perf_counter()
    predicted = {w: predict_phases(mod, which=w) for w in ("H", "W")}
    wall_reduced = time.perf_counter() - start
    ref = predicted["H"]
    w0h0 = ref.stats["init"]
    # The full flow from the same aligned init on the same grid: the same phases, and Grams for heatmaps.
    full = gradient_flow(
        mod,
        ref.stats["t1"],
        init=aligned_full_init(mod, w0h0["w0"], w0h0["h0"]),
        saveat=ref.curves["ts"],
        progress=progress,
    )
    detected = {w: detect_phases(full, design, which=w) for w in ("H", "W")}
    err_H = math.nan
    if ref.trajectory is not None:
        reduced_gram_H = np.asarray(ref.trajectory.gram_H)
        err_H = float(np.abs(reduced_gram_H - full.gram_H).max() / np.abs(full.gram_H).max())
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
        plotting.save_figure(fig, out / f"phases{suffix}.png")
        fig, _ = plotting.plot_gram_at_phases(full, detected[which], design)
        plotting.save_figure(fig, out / f"gram_phases{suffix}.png")

    A = design.factor_sizes[0] if design.factor_sizes else 2
    peak = detected["H"].peak
    peak_gram = full.at(peak)[0] if peak is not None else full.gram_H[-1]
    modified = {
        "problem": mod.describe(),
        "predicted": _as_dicts(predicted),
        "detected": _as_dicts(detected),
        "full_flow": {
            "status": full.status,
            "t1": ref.stats["t1"],
            "stats": _stats(full),
            "max_rel_error_vs_reduced_gram_H": err_H,
        },
        "reduced_wall_time_s": wall_reduced,
        "plateau_cosines_H": {
            "measured_at_peak": _plateau_cosines(peak_gram, design.X),
            "theory": {"share_one": (A - 2) / (2 * (A - 1)), "share_none": -1.0 / (A - 1)},
        },
    }
    standard = {"predicted": _as_dicts(std_predicted), "detected": _as_dicts(std_detected)}
    return modified, standard, full


def _as_dicts(phases: dict[str, Phases]) -> dict[str, dict[str, Any]]:
    return {w: p.as_dict() for w, p in phases.items()}


def _train_config(steps: int, progress: bool) -> Any:
    # torch is imported only when the transformer runs (the theory side stays torch-free).
    from ufmtheory.baseline import TrainConfig

    return TrainConfig(
        steps=steps, n_layers=2, width=64, n_heads=4, lr=1e-3, num_threads=1, seed=0, progress=progress
    )


def _transformer(
    out: Path, design: Design, std_traj: Trajectory, mod_traj: Trajectory, lam: float, config: Any
) -> tuple[dict[str, Any], dict[str, Any], list[tuple[str, str]]]:
    """Train the baseline GPT on ``design``; compare it with the standard and modified UFM runs."""
    from ufmtheory.baseline import train

    steps = config.steps
    start = time.perf_counter()
    gpt = train(design, config)
    wall = time.perf_counter() - start
    gpt.save(out / "trajectory_transformer")
    phases = {w: detect_phases(gpt, design, which=w) for w in ("H", "W")}
    sW = gpt.metrics(design, which="W")["semantic_strength"]
    k_peak = int(np.nanargmax(sW))
    transformer = {
        "config": {k: v for k, v in dataclasses.asdict(config).items() if k not in ("model", "progress")},
        "status": gpt.status,
        "wall_time_s": wall,
        "stats": dict(gpt.stats),
        "final_loss": float(gpt.loss[-1]),
        "phases": _as_dicts(phases),
        # The semantic strength is measured relative to its ETF value: > 0 is "above the ETF value".
        "W_semantic": {
            "peak_strength": float(sW[k_peak]),
            "peak_step": float(gpt.ts[k_peak]),
            "rises_above_etf_value": bool(sW[k_peak] > 0),
            "falls_below_half_peak": bool(np.any(sW[k_peak:] < 0.5 * sW[k_peak])),
            "final_strength": float(sW[-1]),
        },
    }
    variants = {f"standard UFM (λ={lam:g}, random init)": std_traj, **variant_grid(design, lam=lam)}
    cmp_mod: Comparison = compare(mod_traj, gpt, design, variants=variants)
    cmp_std: Comparison = compare(std_traj, gpt, design)
    comparison = {"modified": cmp_mod.as_dict(), "standard": cmp_std.as_dict()}

    # Gram heatmaps over time for the modified UFM and the transformer (the standard UFM: gram_H/W.png).
    figures: list[tuple[str, str]] = []
    lo, hi = float(mod_traj.ts[0]), float(mod_traj.ts[-1])
    t_mod = [t for t in (1.0, 10.0, 100.0, 1e3, 1e4, hi) if lo <= t <= hi]
    s_gpt = sorted({s for s in (0, 10, 30, 100, 300, 1000, steps) if s <= steps})
    for which in ("H", "W"):
        names = design.context_names if which == "H" else design.label_names
        fig, _ = plotting.plot_gram_snapshots(mod_traj, t_mod, which=which, labels=names)
        plotting.save_figure(fig, out / f"gram_modified_{which}.png")
        fig, _ = plotting.plot_gram_snapshots(gpt, s_gpt, which=which, labels=names)
        plotting.save_figure(fig, out / f"gram_transformer_{which}.png")
        figures += [
            (f"Modified UFM: Gram heatmaps of {which} over gradient-flow time", f"gram_modified_{which}.png"),
            (f"Transformer: Gram heatmaps of {which} over steps", f"gram_transformer_{which}.png"),
        ]
    fig = plotting.plot_strength_overlay(
        design, gpt, [("standard UFM", std_traj, cmp_std), ("modified UFM", mod_traj, cmp_mod)]
    )
    plotting.save_figure(fig, out / "strength_overlay.png")
    overlay = (
        "Semantic strength: transformer vs theory mapped to steps (fitted time map)",
        "strength_overlay.png",
    )
    return transformer, comparison, [overlay, *figures]
