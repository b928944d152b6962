"""Figures from Trajectory objects. Every function returns ``(fig, axes)`` and never calls ``show``.

matplotlib is imported lazily so that the theory side imports fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .trajectory import Trajectory

__all__ = ["plot_gram_snapshots", "plot_curves"]


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
    from .metrics import centered
    from .metrics import cosine as cosine_gram

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
        ax.set_title(f"t = {t:.3g}", fontsize=9)
        if labels is not None and len(labels) <= 16:
            ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
            ax.set_yticks(range(len(labels)), labels, fontsize=6)
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
