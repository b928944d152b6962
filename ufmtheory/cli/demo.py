"""``ufm demo [--out DIR]``: the demo experiment (:mod:`ufmtheory.experiments.demo`).

A 3×3 factorial design through the standard and the modified UFM side by side, and the baseline transformer
trained on it and compared with both (``--no-transformer`` skips it). Writes figures, trajectories,
``results.json`` and ``report.html`` into ``DIR`` (default ``runs/demo``) and prints a summary.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ufmtheory.cli._common import add_out_argument, add_progress_argument, check_out
from ufmtheory.experiments.demo import DEMO_STEPS, run_demo

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo",
        help="standard vs modified UFM and a transformer on a 3x3 factorial design: figures, report.html",
        description=__doc__.split("\n\n")[1],
    )
    add_out_argument(parser, "output folder (default runs/demo)", default=Path("runs/demo"))
    add_progress_argument(parser, "hide the progress bars")
    parser.add_argument(
        "--no-transformer", action="store_true", help="skip the transformer baseline (fast; theory only)"
    )
    # For tests and quick looks: a short transformer run.
    parser.add_argument("--transformer-steps", type=int, default=DEMO_STEPS, help=argparse.SUPPRESS)
    return parser


def run(args: argparse.Namespace) -> int:
    out = args.out
    check_out(out, "dir")
    result = run_demo(
        out,
        progress=not args.no_progress,
        transformer_steps=None if args.no_transformer else args.transformer_steps,
    )
    print(result.table())
    print(f"  report: {out / 'report.html'}")
    return 0 if result.ok else 1
