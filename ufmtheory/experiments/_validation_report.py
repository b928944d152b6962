"""The files of ``ufm validate``: the markdown tables, the self-contained ``report.html`` and the strength
figures (model and same-clock theory, median and min-max band over seeds). See
:mod:`ufmtheory.experiments.validation`."""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any

import numpy as np

from ufmtheory._format import format_number as _fmt
from ufmtheory._io import atomic_write_bytes
from ufmtheory.analysis.comparison import run_status
from ufmtheory.report import data_uri
from ufmtheory.trajectory import Trajectory

__all__ = ["markdown", "report_html", "strength_figure"]


def _curve_band(trajs: list[Trajectory], design: Any, which: str) -> tuple[np.ndarray, np.ndarray]:
    """Common positive steps and the (n_runs, T) semantic strength interpolated on them."""
    grid = np.unique(np.concatenate([t.ts[t.ts > 0] for t in trajs]))
    rows = []
    for t in trajs:
        m = t.metrics(design, which=which)
        pos = m["ts"] > 0
        rows.append(np.interp(np.log(grid), np.log(m["ts"][pos]), np.asarray(m["semantic_strength"])[pos]))
    return grid, np.array(rows)


def strength_figure(
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
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    png = buf.getvalue()
    atomic_write_bytes(path, png)
    return png


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
            "| design | α/β | R² | status | note |",
            "|---|---|---|---|---|",
        ]
        for name, g in geo.items():
            ratio, r2, note = _fmt(g["alpha_over_beta"]), _fmt(g["r2"]), g.get("message", "")
            lines.append(f"| {name} | {ratio} | {r2} | {g['status']} | {note} |")
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


def report_html(results: dict[str, Any], figures: list[tuple[str, bytes]]) -> str:
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
