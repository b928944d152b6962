"""Training sweeps: the baseline transformer over seeds × learning rate × width × weight decay (any
:class:`~ufmtheory.baseline.train.TrainConfig` field), one checkpointed run per point.

Each point trains :func:`ufmtheory.baseline.train.train` on the design and measures its phases with
:func:`ufmtheory.detect_phases`. With a checkpoint folder (by default ``<store>/_checkpoints`` when a store
is given) every run writes checkpoints to its own sub-folder and starts with ``resume=True``, so a sweep
killed in the middle of a run continues that run from its newest checkpoint (bit-identical on CPU); a
finished point's checkpoints are deleted. torch is imported only inside the workers that train.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ufmtheory import __version__
from ufmtheory.analysis.phases import detect_phases
from ufmtheory.designs import Design
from ufmtheory.experiments._portable import portable, rebuild
from ufmtheory.experiments.sweep import function_version, sweep

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

__all__ = ["training_sweep", "TRAIN_AXES"]

TRAIN_AXES = (
    "seed",
    "lr",
    "width",
    "weight_decay",
    "n_layers",
    "n_heads",
    "steps",
    "batch_size",
    "optimizer",
    "momentum",
    "dropout",
    "tied",
    "n_snapshots",
    "loss_positions",
    "context_ids",
    "soft_targets",
    "max_rows",
    "device",
    "num_threads",
)
""":class:`~ufmtheory.baseline.train.TrainConfig` fields a training sweep may sweep or fix (their values are
checked by ``TrainConfig`` in the worker; a bad value fails that point)."""

_CURVE_FIXING = ("steps", "n_snapshots")  # swept, they change the snapshot grid: no curves then


def _point_key(point: Mapping[str, Any]) -> str:
    text = "__".join(f"{k}={v}" for k, v in point.items())
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", text)


def _train_point(
    recipe: tuple[Any, ...], which: str, options: dict[str, Any], fixed: dict[str, Any], **point: Any
) -> dict[str, Any]:
    """One training run (module level, so that it pickles; torch is imported here, in the worker)."""
    from ufmtheory.baseline.train import TrainConfig, train

    design = rebuild(recipe)
    cfg = TrainConfig(**{**fixed, **point, "progress": False})
    ckpt: Path | None = None
    if options["checkpoint_dir"] is not None:
        ckpt = Path(options["checkpoint_dir"]) / _point_key(point)
        every = options["checkpoint_every"] or max(cfg.steps // 10, 1)
        cfg = dataclasses.replace(cfg, checkpoint_every=every, checkpoint_dir=str(ckpt), resume=True)
    traj = train(design, cfg)
    ph = detect_phases(traj, design, which=which, etf_tol=options["etf_tol"])
    out: dict[str, Any] = {
        "onset": ph.onset,
        "peak": ph.peak,
        "collapse": ph.collapse,
        "etf_time": ph.etf_time,
        "peak_strength": float(ph.peak_strength),
        "final_loss": float(traj.loss[-1]),
        "train_wall_time_s": float(traj.stats.get("wall_time_s", math.nan)),
        "resumed_from": Path(traj.stats["resumed_from"]).name if traj.stats.get("resumed_from") else "",
        "status": str(ph.status),
        "message": "" if ph.ok else str(ph.message),
    }
    if options["curves"]:
        out["steps"] = np.asarray(ph.curves["ts"], dtype=np.float64)
        out["strength"] = np.asarray(ph.curves["semantic_strength"], dtype=np.float64)
        out["etf_distance"] = np.asarray(ph.curves["etf_distance"], dtype=np.float64)
        out["loss"] = np.asarray(traj.loss, dtype=np.float64)
    if ckpt is not None and traj.ok:
        shutil.rmtree(ckpt, ignore_errors=True)  # finished: a resumed sweep skips this point
    return out


def training_sweep(
    design: Design,
    axes: Mapping[str, Sequence[Any]],
    which: str = "H",
    *,
    mode: str = "product",
    etf_tol: float = 0.05,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    executor: Any = None,
    store: Any = None,
    progress: bool = True,
    retries: int = 0,
    **fixed: Any,
) -> xr.Dataset:
    """Train the baseline transformer at every point of a grid of training settings.

    Args:
        design: the design to train on.
        axes: :data:`TRAIN_AXES` names -> values, e.g. ``{"seed": [0, 1, 2], "lr": [1e-3, 3e-3]}``.
        which: ``"H"`` or ``"W"``: the Gram whose phases are measured.
        mode: ``"product"`` or ``"zip"``.
        etf_tol: ETF-distance tolerance of :func:`~ufmtheory.detect_phases`.
        checkpoint_dir: folder for the runs' checkpoints (one sub-folder per point); default
            ``<store>/_checkpoints`` with a store, none without. On a cluster it must be a shared folder.
        checkpoint_every: steps between checkpoints (default: a tenth of the run).
        executor, store, progress, retries: as for :func:`~ufmtheory.experiments.sweep.sweep` (the default
            process pool runs one training per core; runs use one torch thread each).
        **fixed: other :class:`~ufmtheory.baseline.train.TrainConfig` fields (``steps=2000, width=64``).

    Returns:
        ``xarray.Dataset`` with ``onset``, ``peak``, ``collapse``, ``etf_time`` (in steps),
        ``peak_strength``, ``final_loss``, ``train_wall_time_s``, ``resumed_from`` (the checkpoint a run
        continued from, ``""`` for a fresh run) and, unless ``steps``/``n_snapshots`` are
        swept, the curves ``steps``, ``strength``, ``etf_distance``, ``loss`` (dim ``<name>_dim0``: the
        snapshots).

    Raises:
        ValueError: unknown or doubly given fields, bad ``which`` (before any work).
    """
    if not isinstance(design, Design):
        raise TypeError(f"design must be a ufmtheory Design, got {type(design).__name__}")
    if which not in ("H", "W"):
        raise ValueError(f"which must be 'H' or 'W', got {which!r}")
    if not isinstance(axes, Mapping) or not axes:
        raise ValueError("axes must be a non-empty mapping of TrainConfig fields to lists of values")
    unknown = sorted(set(axes) - set(TRAIN_AXES))
    if unknown:
        raise ValueError(
            f"axes: unknown training field(s) {unknown}; a training sweep sweeps {list(TRAIN_AXES)}"
        )
    unknown = sorted(set(fixed) - set(TRAIN_AXES))
    if unknown:
        raise TypeError(f"unknown fixed training field(s) {unknown}; allowed: {list(TRAIN_AXES)}")
    both = sorted(set(axes) & set(fixed))
    if both:
        raise ValueError(f"field(s) {both} are both swept (axes) and fixed")
    if checkpoint_every is not None and (
        isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 1
    ):
        raise ValueError(f"checkpoint_every must be an integer >= 1, got {checkpoint_every!r}")
    if checkpoint_dir is None and store is not None:
        checkpoint_dir = Path(store) / "_checkpoints"
    options = {
        "etf_tol": etf_tol,
        "checkpoint_dir": None if checkpoint_dir is None else str(Path(checkpoint_dir).resolve()),
        "checkpoint_every": checkpoint_every,
        "curves": not any(name in axes for name in _CURVE_FIXING),
    }
    recipe = portable(design)
    fn = functools.partial(_train_point, recipe, which, options, dict(fixed))
    # The checkpoint folder is where runs resume from, not what they compute: keep it out of the version.
    version_fn = functools.partial(
        _train_point, recipe, which, {**options, "checkpoint_dir": None}, dict(fixed)
    )
    attrs = {
        "kind": "training",
        "design": json.dumps(design.summary()),
        "which": which,
        "fixed": json.dumps(fixed),
        "ufmtheory_version": __version__,
    }
    return sweep(
        fn,
        axes,
        mode=mode,
        executor=executor,
        store=store,
        progress=progress,
        retries=retries,
        version=function_version(version_fn),
        attrs=attrs,
    )
