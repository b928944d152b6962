"""Figures from Trajectory and Phases objects.

Every function returns ``(fig, axes)`` and never calls ``show``.

matplotlib is imported lazily so that the theory side imports fast.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from ufmtheory._format import format_number
from ufmtheory._io import atomic_write_bytes
from ufmtheory.analysis.phases import Phases, detect_phases
from ufmtheory.metrics import centered
from ufmtheory.metrics import cosine as cosine_gram
from ufmtheory.trajectory import Trajectory

__all__ = [
    "plot_gram_snapshots",
    "plot_curves",
    "plot_phases",
    "plot_gram_at_phases",
    "plot_strength_overlay",
    "save_figure",
]


def _pyplot() -> Any:
    # matplotlib picks Agg by itself on headless machines (CI, the CLI); notebooks keep their backend.
    import matplotlib.pyplot as plt

    return plt


def plot_gram_snapshots(
    traj: Trajectory,
    times: Sequence[float],
    which: str = "H",
    labels: Sequence[str] | None = None,
    cosine: bool = True,
) -> tuple[Any, np.ndarray]:
    """Heatmaps of the Gram matrix at several times (interpolated in log-time by ``traj.at``).

    Args:
        traj: a trajectory.
        times: times to show (within ``[traj.ts[0], traj.ts[-1]]``).
        which: ``"H"`` (context Gram ``HᵀH``) or ``"W"`` (label Gram ``W Wᵀ``).
        labels: tick labels (context or token names); omitted when there are more than 16.
        cosine: show cosine similarities of the centred vectors (the quantity the metrics use), so the
            colour scale is [-1, 1] at every time; otherwise the raw Gram.

    Returns:
        ``(fig, axes)`` with one axis per time.
    """
    if which not in ("H", "W"):
        raise ValueError(f"which must be 'H' or 'W', got {which!r}")
    if len(times) == 0:
        raise ValueError("times must not be empty")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(times), figsize=(2.6 * len(times) + 0.8, 2.8), squeeze=False)
    axes = axes[0]
    image = None
    for ax, t in zip(axes, times, strict=True):
        gH, gW = traj.at(t)
        G = gH if which == "H" else gW
        if cosine:
            G = cosine_gram(centered(G))
            image = ax.imshow(G, vmin=-1, vmax=1, cmap="RdBu_r")
        else:
            image = ax.imshow(G, cmap="RdBu_r")
        ax.set_title(f"{'step' if traj.time_unit == 'step' else 't'} = {format_number(t)}", fontsize=9)
        if labels is not None and len(labels) <= 16:
            # Row labels on the first panel only: the panels share rows, and labels on every panel run into
            # the panel to their left.
            ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
            ax.set_yticks(range(len(labels)), labels if ax is axes[0] else [], fontsize=6)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
    name = "HᵀH" if which == "H" else "WWᵀ"
    fig.suptitle(f"{'centred cosine ' if cosine else ''}Gram {name}", fontsize=10)
    if image is not None:
        fig.colorbar(image, ax=list(axes), shrink=0.8)
    return fig, axes


def plot_curves(traj: Trajectory, design: Any = None) -> tuple[Any, np.ndarray]:
    """ETF distance (H and W) and loss against log time; semantic strength too when a design with
    attributes is given.

    Returns:
        ``(fig, axes)``: axes[0] ETF distance, axes[1] loss, axes[2] semantic strength (if design has
        attributes).
    """
    plt = _pyplot()
    has_sem = design is not None and getattr(design, "p", 0) > 0
    fig, axes = plt.subplots(1, 3 if has_sem else 2, figsize=(11 if has_sem else 8, 3.2), squeeze=False)
    axes = axes[0]
    keep = traj.ts > 0  # log axis
    ts = traj.ts[keep]
    mH = traj.metrics(design, which="H")
    mW = traj.metrics(design, which="W")
    axes[0].semilogx(ts, mH["etf_distance"][keep], label="H (contexts)")
    axes[0].semilogx(ts, mW["etf_distance"][keep], "--", label="W (labels)")
    axes[0].set_ylabel("ETF distance")
    axes[0].legend(fontsize=8)
    axes[1].loglog(ts, traj.loss[keep])
    axes[1].set_ylabel("loss")
    if has_sem:
        axes[2].semilogx(ts, mH["semantic_strength"][keep], label="H")
        axes[2].semilogx(ts, mW["semantic_strength"][keep], "--", label="W")
        axes[2].axhline(0, color="gray", lw=0.5)
        axes[2].set_ylabel("semantic strength")
        axes[2].legend(fontsize=8)
    for ax in axes:
        ax.set_xlabel(f"t ({traj.time_unit})")
    fig.tight_layout()
    return fig, axes


# Line styles of the phase markers (vertical lines), shared by the phase figures.
_PHASE_STYLE = {
    "onset": {"color": "tab:green", "ls": ":", "label": "onset"},
    "peak": {"color": "tab:red", "ls": "-", "label": "peak"},
    "collapse": {"color": "tab:purple", "ls": "--", "label": "collapse"},
    "etf_time": {"color": "black", "ls": "-.", "label": "ETF time"},
}


def _phase_curves(item: Any, design: Any, phases: Any, which: str) -> tuple[Any, dict[str, np.ndarray], str]:
    """``(phases, curves, time_unit)`` for a Trajectory (phases detected unless given) or a Phases object
    that carries its curves (e.g. from :func:`ufmtheory.analysis.phases.predict_phases` on a large design)."""
    if isinstance(item, Phases):
        if not item.curves:
            raise ValueError("a Phases object given in place of a trajectory must carry its curves")
        return (phases if phases is not None else item), item.curves, item.time_unit
    if not isinstance(item, Trajectory):
        raise TypeError(f"expected a Trajectory or Phases, got {type(item).__name__}")
    ph = phases if phases is not None else detect_phases(item, design, which=which)
    curves = ph.curves if getattr(ph, "curves", None) else None
    if curves is None or len(curves.get("ts", ())) != len(item):
        m = item.metrics(design, which=which)
        curves = {
            "ts": m["ts"],
            "semantic_strength": m["semantic_strength"],
            "etf_distance": m["etf_distance"],
        }
    return ph, curves, item.time_unit


def _mark_phases(ax: Any, phases: Any, t_lo: float, with_labels: bool, color: str | None = None) -> None:
    for name, style in _PHASE_STYLE.items():
        t = getattr(phases, name, None)
        if t is None:
            continue
        # t = 0 cannot sit on a log axis: draw it at the first positive saved time.
        x = max(float(t), t_lo)
        kw = dict(style)
        label = kw.pop("label")
        if color is not None:
            kw["color"] = color
        ax.axvline(x, lw=1.0, alpha=0.8, label=label if with_labels else None, **kw)


def plot_phases(
    traj_or_list: Any,
    design: Any,
    phases: Any = None,
    labels: Sequence[str] | None = None,
    *,
    which: str = "H",
    overlay: bool = False,
) -> tuple[Any, np.ndarray]:
    """Semantic strength and ETF distance against log t, with the phase times marked.

    Onset (dotted), peak (solid), collapse (dashed) and ETF time (dash-dot) are vertical lines; a time 0
    (a run that starts above half its peak) is drawn at the first positive saved time.

    Args:
        traj_or_list: a :class:`~ufmtheory.Trajectory` or a list of them (theory runs, trained models); a
            :class:`~ufmtheory.analysis.Phases` that carries its curves may stand in for a trajectory (e.g. a
            K = 10⁶ prediction).
        design: the design (attribute code) for the semantic strength; for structured trajectories its
            scheme also works.
        phases: ``None`` (detected with :func:`ufmtheory.analysis.phases.detect_phases`), one
            :class:`~ufmtheory.Phases`, or a list matching the trajectories (entries may be ``None``).
        labels: one name per trajectory (titles, or legend entries when overlaid).
        which: ``"H"`` or ``"W"``.
        overlay: one column with every run overlaid (phase lines in each run's colour) instead of one
            column per run.

    Returns:
        ``(fig, axes)`` with ``axes`` of shape ``(2, n_columns)``: row 0 semantic strength, row 1 ETF
        distance.
    """
    items = list(traj_or_list) if isinstance(traj_or_list, (list, tuple)) else [traj_or_list]
    if not items:
        raise ValueError("traj_or_list must not be empty")
    if isinstance(phases, (list, tuple)):
        if len(phases) != len(items):
            raise ValueError(f"phases has {len(phases)} entries for {len(items)} trajectories")
        ph_list = list(phases)
    else:
        if phases is not None and len(items) > 1:
            raise ValueError("give one Phases per trajectory (a list) when plotting several trajectories")
        ph_list = [phases] * len(items)
    if labels is not None and len(labels) != len(items):
        raise ValueError(f"labels has {len(labels)} entries for {len(items)} trajectories")
    names = list(labels) if labels is not None else [f"run {i}" for i in range(len(items))]
    plt = _pyplot()
    ncol = 1 if overlay else len(items)
    fig, axes = plt.subplots(
        2, ncol, figsize=(4.6 * ncol + (1.6 if overlay else 0.4), 5.4), squeeze=False, sharex="col"
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    for i, (item, ph_in) in enumerate(zip(items, ph_list, strict=True)):
        ph, curves, unit = _phase_curves(item, design, ph_in, which)
        ts = np.asarray(curves["ts"])
        keep = ts > 0
        t_lo = float(ts[keep][0]) if keep.any() else 1.0
        col = 0 if overlay else i
        color = colors[i % len(colors)] if overlay else None
        ax_s, ax_e = axes[0, col], axes[1, col]
        ax_s.semilogx(
            ts[keep], np.asarray(curves["semantic_strength"])[keep], color=color or "C0", label=names[i]
        )
        ax_e.semilogx(ts[keep], np.asarray(curves["etf_distance"])[keep], color=color or "C0", label=names[i])
        if ph is not None and np.isfinite(ph.peak_strength) and ph.onset is not None:
            ax_s.axhline(0.5 * ph.peak_strength, color=color or "gray", lw=0.6, ls=":")
        if ph is not None:
            _mark_phases(ax_s, ph, t_lo, with_labels=(i == 0 or not overlay), color=color)
            _mark_phases(ax_e, ph, t_lo, with_labels=False, color=color)
            ax_e.axhline(ph.etf_tol, color="gray", lw=0.6, ls=":")
        ax_s.axhline(0, color="gray", lw=0.5)
        if not overlay:
            ax_s.set_title(names[i], fontsize=10)
        ax_e.set_xlabel(f"t ({unit})")
    # Phases stand-ins carry their own Gram (H or W); label the rows with it when they all agree.
    kinds = {item.which if isinstance(item, Phases) else which for item in items}
    tag = f" ({kinds.pop()})" if len(kinds) == 1 else ""
    for r, ylabel in enumerate((f"semantic strength{tag}", f"ETF distance{tag}")):
        axes[r, 0].set_ylabel(ylabel)
    axes[0, 0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig, axes


def plot_gram_at_phases(
    traj: Trajectory,
    phases: Any,
    design: Any = None,
    *,
    which: str | None = None,
    cosine: bool = True,
) -> tuple[Any, np.ndarray]:
    """Heatmaps of the Gram at the onset, peak and collapse and at the end of the run.

    Args:
        traj: the trajectory the phases belong to (its Grams are interpolated in log t by ``traj.at``).
        phases: a :class:`~ufmtheory.analysis.Phases` (from :func:`~ufmtheory.analysis.detect_phases` or
            :func:`~ufmtheory.analysis.phases.predict_phases`).
        design: optional design, for tick labels (context or label names; omitted past 16).
        which: ``"H"`` or ``"W"``; default ``phases.which``.
        cosine: centred cosine similarities (colour scale [-1, 1]) rather than the raw Gram.

    Returns:
        ``(fig, axes)`` with 4 axes (onset, peak, collapse, end); a phase that did not happen is shown as
        an empty panel saying so.
    """
    which = phases.which if which is None else which
    if which not in ("H", "W"):
        raise ValueError(f"which must be 'H' or 'W', got {which!r}")
    panels = [
        ("onset", phases.onset),
        ("peak", phases.peak),
        ("collapse", phases.collapse),
        ("end", float(traj.ts[-1])),
    ]
    names = None
    if design is not None and hasattr(design, "context_names"):
        names = design.context_names if which == "H" else design.label_names
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(2.7 * len(panels) + 0.8, 3.0), squeeze=False)
    axes = axes[0]
    image = None
    t_lo, t_hi = float(traj.ts[0]), float(traj.ts[-1])
    for ax, (label, t) in zip(axes, panels, strict=True):
        if t is None or not (t_lo <= t <= t_hi):
            ax.text(0.5, 0.5, f"no {label}", ha="center", va="center", transform=ax.transAxes, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(label, fontsize=9)
            continue
        gH, gW = traj.at(t)
        G = np.asarray(gH if which == "H" else gW)
        if which == "W" and design is not None and hasattr(design, "used_labels"):
            used = np.asarray(design.used_labels)
            G = G[np.ix_(used, used)]
        if cosine:
            image = ax.imshow(cosine_gram(centered(G)), vmin=-1, vmax=1, cmap="RdBu_r")
        else:
            image = ax.imshow(G, cmap="RdBu_r")
        ax.set_title(
            f"{label}: {'step' if traj.time_unit == 'step' else 't'} = {format_number(t)}", fontsize=9
        )
        if names is not None and len(names) <= 16 and len(names) == G.shape[0]:
            ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
            ax.set_yticks(range(len(names)), names if ax is axes[0] else [], fontsize=6)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
    gram = "HᵀH" if which == "H" else "WWᵀ"
    fig.suptitle(
        f"{'centred cosine ' if cosine else ''}Gram {gram} at the phases ({traj.time_unit})", fontsize=10
    )
    if image is not None:
        fig.colorbar(image, ax=list(axes), shrink=0.8)
    return fig, axes


def plot_strength_overlay(
    design: Any, model: Trajectory, theories: Sequence[tuple[str, Trajectory, Any]]
) -> Any:
    """Semantic strength of H and W against optimiser steps: a trained model and theory runs mapped to steps.

    Args:
        design: the design (attribute code) for the semantic strength.
        model: the trained model's trajectory (``time_unit="step"``).
        theories: ``(label, theory trajectory, Comparison)`` triples; each theory is drawn after its
            comparison's fitted time map (``Comparison.to_step``) with its predicted phase steps as vertical
            lines; the first comparison's measured phase steps are drawn in black.

    Returns:
        The figure (two axes: H and W).
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    styles = {"onset": ":", "peak": "-", "collapse": "--", "etf_time": "-."}
    colours = ["C0", "C1", "C2", "C3"]
    for ax, which in zip(axes, ("H", "W"), strict=True):
        m = model.metrics(design, which=which)
        pos = m["ts"] > 0
        lo, hi = m["ts"][pos][0] / 3, m["ts"][-1] * 3
        ax.plot(m["ts"][pos], m["semantic_strength"][pos], color="k", lw=2, label="transformer")
        if theories:
            for name, t in theories[0][2].measured[which].items():
                if t:
                    ax.axvline(t, color="k", ls=styles[name], lw=0.8)
        for (label, traj, cmp), colour in zip(theories, colours, strict=False):
            mt = traj.metrics(design, which=which)
            keep = mt["ts"] > 0
            steps = cmp.to_step(mt["ts"][keep])
            inside = (steps >= lo) & (steps <= hi)
            ax.plot(
                steps[inside],
                mt["semantic_strength"][keep][inside],
                color=colour,
                label=f"{label} (log t = {cmp.a:.2f} + {cmp.b:.2f} log s)",
            )
            for name, s in cmp.predicted[which].items():
                if s and lo <= s <= hi:
                    ax.axvline(s, color=colour, ls=styles[name], lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("optimiser step")
        ax.set_ylabel(f"semantic strength of {which}")
        ax.set_title(f"{which}: lines = onset (:), peak (-), collapse (--), ETF (-.)", fontsize=9)
        ax.axhline(0, color="grey", lw=0.5)
    axes[1].legend(fontsize=8)
    return fig


def save_figure(fig: Any, path: Any, *, dpi: int = 120) -> None:
    """Write ``fig`` as a PNG atomically (temporary file + rename) and close it."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        _pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())
