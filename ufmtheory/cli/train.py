"""``ufm train CONFIG [--out PATH]``: train the baseline transformer on a design and save its Gram trajectory.

The config names a design and any fields of :class:`ufmtheory.baseline.TrainConfig` (schema: :data:`SCHEMA`),
checked by ``TrainConfig`` itself. Prints the run and one :meth:`~ufmtheory.analysis.phases.Phases.table` per
Gram (in optimiser steps); with ``--out`` the trajectory is saved as ``PATH.npz`` + ``PATH.json``.
"""

from __future__ import annotations

import argparse
from typing import Any

from ufmtheory._format import format_number
from ufmtheory._validate import positive
from ufmtheory.analysis.phases import detect_phases
from ufmtheory.cli._common import (
    CLIError,
    add_config_command,
    add_out_argument,
    add_progress_argument,
    check_out,
    config_from_args,
    design_from_spec,
    require_design,
)
from ufmtheory.report import design_label

__all__ = ["SCHEMA", "add_parser", "run", "train_config"]

SCHEMA = """\
{
  "design": {"kind": "factorial", "sizes": [4, 4]}      # as in `ufm predict`
            | {"kind": "hierarchical", "depth": 2, "branching": 3},
  "etf_tol": 0.05,           # optional: ETF-distance tolerance of the phase table
  # any field of ufmtheory.baseline.TrainConfig (all optional), e.g.
  "steps": 3000, "lr": 0.001, "optimizer": "adamw", "weight_decay": 0.0,
  "n_layers": 2, "width": 64, "n_heads": 4, "seed": 0, "n_snapshots": 60,
  "num_threads": 1, "device": "cpu",
  "checkpoint_every": 0, "checkpoint_dir": null, "resume": false
}
The same keys work in a TOML file (CONFIG ending in .toml; leave out the null entries)."""
"""The config schema of ``ufm train`` (``#`` comments are documentation, not JSON)."""

# Not settable from a config file: a GPTConfig object, and the bar (--no-progress).
_EXCLUDED = ("model", "progress")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = add_config_command(
        subparsers,
        "train",
        help="train the baseline transformer on a design (config file) and save its Gram trajectory",
        description="Train the small GPT on a design's exact-statistics sequences.",
        schema=SCHEMA,
    )
    add_out_argument(parser, "save the trajectory (OUT.npz + OUT.json)")
    add_progress_argument(parser)
    return parser


def train_config(cfg: dict[str, Any], *, progress: bool = False) -> Any:
    """The :class:`~ufmtheory.baseline.TrainConfig` of a ``ufm train`` config (its own checks speak)."""
    # torch is imported only by the commands that train.
    from ufmtheory.baseline import TrainConfig

    fields = {k: v for k, v in cfg.items() if k not in ("design", "etf_tol")}
    excluded = sorted(set(fields) & set(_EXCLUDED))
    if excluded:
        raise CLIError(f"key(s) {excluded} cannot be set in a config file (see `ufm train --schema`)")
    try:
        return TrainConfig(**fields, progress=progress)
    except TypeError as exc:
        raise CLIError(f"{exc} (see `ufm train --schema`)") from None


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args, "train", SCHEMA)
    if cfg is None:
        return 0
    out = args.out
    check_out(out, "prefix")
    require_design(cfg, "train")
    design = design_from_spec(cfg["design"])
    config = train_config(cfg, progress=not args.no_progress)
    # etf_tol is used only after training (by detect_phases): check it now so a typo costs no run.
    etf_tol = positive("etf_tol", cfg.get("etf_tol", 0.05))

    from ufmtheory.baseline import train

    traj = train(design, config)
    if out is not None:
        traj.save(out)
    phases = {w: detect_phases(traj, design, which=w, etf_tol=etf_tol) for w in ("H", "W")}
    fmt = format_number
    print(
        f"ufm train: {design_label(design.summary())}, {traj.stats.get('steps_run')} steps in"
        f" {fmt(traj.stats.get('wall_time_s'))} s, final loss {fmt(traj.loss[-1])}, status {traj.status}"
        + ("" if traj.ok else f" ({traj.message})")
    )
    for w, ph in phases.items():
        print(f"\n{w} ({'contexts' if w == 'H' else 'labels'}), optimiser steps:")
        print(ph.table())
    if out is not None:
        print(f"\nwrote {out}.npz and {out}.json")
    # A short run may well end before the collapse: only the run itself decides the exit status.
    return 0 if traj.ok else 1
