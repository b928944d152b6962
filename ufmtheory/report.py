"""A self-contained HTML report of a ``ufm demo`` run, and the strict-JSON writer of results files.

:func:`html_report` turns the demo's results dictionary and its PNG figures into one HTML page: figures are
embedded as base64 ``data:`` URIs, styles are inline, and there are no external URLs, so the page reads
offline and can be mailed as a single file. :func:`write_report` writes it atomically (temporary file +
rename).

Example:
    >>> page = html_report({"design": {"kind": "factorial", "m": 4, "factor_sizes": [2, 2]}}, [])
    >>> page.startswith("<!DOCTYPE html>") and "http" not in page, "factorial 2×2 (K = 4)" in page
    (True, True)
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ufmtheory._format import format_number, to_jsonable
from ufmtheory._io import atomic_write_bytes

__all__ = ["html_report", "write_report", "write_json", "data_uri", "design_label"]

PHASES = ("onset", "peak", "collapse", "etf_time")

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.6em 0 1.4em; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f2f2f2; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
code { background: #f5f5f5; padding: 0 0.2em; }
"""


def design_label(summary: dict[str, Any]) -> str:
    """A design named in words, from :meth:`~ufmtheory.designs.Design.summary` (or a scheme's description:
    ``kind``, ``K`` or ``m``, and the constructor arguments flat or under ``params``).

    Example:
        >>> design_label({"kind": "factorial", "m": 9, "factor_sizes": [3, 3]})
        'factorial 3×3 (K = 9)'
        >>> design_label({"kind": "hierarchical", "K": 9, "depth": 2, "branching": 3})
        'hierarchical, depth 2, branching 3 (K = 9)'
    """
    params = {**summary, **(summary.get("params") or {})}
    kind = str(params.get("kind", "custom"))
    K = params.get("m", params.get("K"))
    size = f" (K = {K})" if K is not None else ""
    sizes = params.get("factor_sizes") or params.get("sizes")
    if kind == "factorial" and sizes:
        return f"factorial {'×'.join(str(int(a)) for a in sizes)}{size}"
    if kind == "hierarchical" and "depth" in params and "branching" in params:
        return f"hierarchical, depth {params['depth']}, branching {params['branching']}{size}"
    extra = f", V = {params['V']}" if "V" in params and params.get("V") != K else ""
    return f"{kind} design{size[:-1] + extra + ')' if size else ''}"


def data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return format_number(value)
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _phase_rows(results: dict[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    sources = [
        ("standard UFM, detected", "t", results.get("standard_phases", {}).get("detected")),
        ("modified UFM, predicted", "t", results.get("modified", {}).get("predicted")),
        ("modified UFM, detected", "t", results.get("modified", {}).get("detected")),
        ("transformer, measured", "step", results.get("transformer", {}).get("phases")),
    ]
    for name, unit, by_which in sources:
        if not by_which:
            continue
        for w in ("H", "W"):
            ph = by_which.get(w)
            if ph:
                rows.append([f"{name} {w}", unit, *[ph.get(k) for k in PHASES], ph.get("peak_strength")])
    cmp = results.get("comparison", {}).get("modified")
    if cmp:
        for w, times in cmp.get("predicted_steps", {}).items():
            if all(times.get(k) is None for k in PHASES):
                continue  # no usable time map (see the comparison's status)
            rows.append(
                [f"modified UFM → steps (time map) {w}", "step", *[times.get(k) for k in PHASES], None]
            )
    return rows


def _comparison_html(results: dict[str, Any]) -> str:
    comp = results.get("comparison")
    if not comp:
        return "<p>No transformer run (<code>--no-transformer</code>).</p>"
    parts = []
    rows = []
    notes: list[str] = []
    for label, key in (("modified UFM (α=β=1, ridge H)", "modified"), ("standard UFM", "standard")):
        c = comp.get(key)
        if not c:
            continue
        err = c["errors"]
        rows.append(
            [
                label,
                c["time_map"]["a"],
                c["time_map"]["b"],
                *[
                    err.get(w, {}).get(m)
                    for w in ("H", "W")
                    for m in ("semantic_strength", "etf_distance", "shared_gap")
                ],
                c["total_error"],
                c.get("status", "ok"),
            ]
        )
        if c.get("status", "ok") != "ok" and c.get("message"):
            notes.append(
                f"<p>{html.escape(label)}: <b>{html.escape(c['status'])}</b>: {html.escape(c['message'])}</p>"
            )
    header = (
        ["theory", "a", "b"]
        + [f"{w} {m}" for w in ("H", "W") for m in ("strength", "ETF dist.", "shared gap")]
        + ["total", "status"]
    )
    parts.append(
        "<p>Time map <code>log t = a + b log step</code>, fitted on the semantic-strength curves; "
        "errors are RMS over the transformer's snapshots after the map.</p>"
    )
    parts.append(_table(header, rows))
    parts.extend(notes)
    variants = comp.get("modified", {}).get("variants") or []
    if variants:
        best = comp["modified"].get("best_variant")
        vrows = [
            [("★ " if v["name"] == best else "") + v["name"], v["a"], v["b"], v["total_error"]]
            for v in variants
        ]
        parts.append("<h3>Variants (each with its own time map)</h3>")
        parts.append(_table(["variant", "a", "b", "total error"], vrows))
    return "\n".join(parts)


def _checks_html(results: dict[str, Any]) -> str:
    """The theory runs against their closed forms (the numbers a reader checks first)."""
    reg, mode = results.get("regularised"), results.get("etf_mode")
    mod = results.get("modified", {})
    full = mod.get("full_flow")
    # (check, the run's results, the number to show): each row is [check, number, the run's status].
    checks = [
        ("regularised standard UFM vs Zhu et al.: max |ΔHᵀH|", reg, "max_abs_error_vs_zhu_gram_H"),
        ("regularised standard UFM vs Zhu et al.: max |ΔWWᵀ|", reg, "max_abs_error_vs_zhu_gram_W"),
        ("regularised standard UFM: ETF time", reg, "etf_time"),
        ("ETF mode to t = 1e8: max relative error vs t(u)", mode, "max_relative_error_vs_closed_form"),
        (
            "modified UFM: full flow vs reduced ODE, max relative error of HᵀH",
            full,
            "max_rel_error_vs_reduced_gram_H",
        ),
    ]
    rows: list[list[Any]] = [[check, run.get(key), run.get("status")] for check, run, key in checks if run]
    cos = mod.get("plateau_cosines_H")
    if cos:
        for key, words in (("share_one", "one shared attribute"), ("share_none", "no shared attribute")):
            rows.append(
                [
                    f"plateau cosine, pairs with {words} (theory {_fmt(cos['theory'][key])})",
                    cos["measured_at_peak"][key],
                    "measured at the peak",
                ]
            )
    return _table(["check", "value", "status"], rows) if rows else ""


def html_report(
    results: dict[str, Any],
    figures: Sequence[tuple[str, bytes]] | Sequence[tuple[str, Path]],
    *,
    title: str = "ufm demo",
) -> str:
    """The report page.

    Args:
        results: the demo's results dictionary (missing sections are skipped).
        figures: ``(caption, PNG bytes or path)`` pairs, embedded in order.
        title: the page title.
    """
    design = results.get("design", {})
    fig_html = []
    for caption, png in figures:
        data = Path(png).read_bytes() if isinstance(png, (str, Path)) else bytes(png)
        cap = html.escape(caption)
        fig_html.append(
            f'<figure><img alt="{cap}" src="{data_uri(data)}"><figcaption>{cap}</figcaption></figure>'
        )
    tr = results.get("transformer")
    tr_html = ""
    if tr:
        cfg = tr.get("config", {})
        tr_html = (
            f"<p>Transformer: {cfg.get('n_layers')} layers, width {cfg.get('width')}, {cfg.get('optimizer')} "
            f"lr {cfg.get('lr')}, {cfg.get('steps')} steps, wall time {_fmt(tr.get('wall_time_s'))} s, "
            f"final loss {_fmt(tr.get('final_loss'))}.</p>"
        )
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Design: {html.escape(design_label(design))}</p>" if design else "",
        tr_html,
        "<h2>Checks against closed forms</h2>",
        _checks_html(results),
        "<h2>Phase times</h2>",
        "<p>Onset: semantic strength first reaches half its peak; collapse: first falls below half the peak "
        "after it; ETF time: ETF distance stays below the tolerance.</p>",
        _table(["run", "time", *PHASES, "peak strength"], _phase_rows(results)),
        "<h2>Theory vs transformer</h2>",
        _comparison_html(results),
        "<h2>Figures</h2>",
        *fig_html,
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def write_report(
    path: str | Path, results: dict[str, Any], figures: Sequence[tuple[str, Any]], **kw: Any
) -> Path:
    """Write :func:`html_report` to ``path`` atomically; returns the path."""
    path = Path(path)
    atomic_write_bytes(path, html_report(results, figures, **kw).encode("utf-8"))
    return path


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as strict JSON (numpy to Python, NaN and infinities to ``null``; see
    :func:`ufmtheory._format.to_jsonable`) atomically; returns the path."""
    path = Path(path)
    text = json.dumps(to_jsonable(data), indent=2, allow_nan=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))
    return path
