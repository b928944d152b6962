"""``ufm validate [--quick | --smoke] [--out DIR] [--seeds N]``: calibrate on one design, predict the others.

Trains the baseline GPT on 3×3, 4×4, 3×5, 2×2×3, hierarchical(3, 2) and 12 random-attribute contexts
(distinct codes) with AdamW and full-batch GD for 3 seeds, calibrates the normalised modified UFM on the
3×3 AdamW runs only (same clock), predicts every other (design, optimiser) with no refit and prints the
table of predicted/measured ratios (median and min-max over seeds); the published gradient-flow theory
is compared beside it (fitted map for AdamW, with its map status; ``t = lr·step`` for GD). Writes
``validation.json``, ``validation.md``, ``report.html`` and figures to DIR (default ``runs/validate``);
trained runs are cached under ``DIR/runs`` and reused by a later call with the same settings.
``--quick``: 4 designs, 1000 steps (a few minutes); ``--smoke``: two tiny designs, one seed (seconds).
The seeds of each (design, optimiser) train as one batched model (``train_many``); independent parts run
in ``--workers`` processes (default 2).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from ufmtheory.cli._common import CLIError, check_out
from ufmtheory.experiments.validation import FULL, QUICK, SMOKE, run_validation

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "validate",
        help="calibrate the theory on one design's trained runs and predict held-out designs",
        description=__doc__.split("\n\n")[1],
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="4 designs, 1000 steps (a few minutes)")
    size.add_argument("--smoke", action="store_true", help="two tiny designs, one seed (seconds)")
    parser.add_argument("--out", type=Path, default=Path("runs/validate"), help="output folder")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3; smoke 1)")
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default 2; smoke 1); 1: all in this one"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    check_out(args.out, "dir")
    cfg = SMOKE if args.smoke else QUICK if args.quick else FULL
    if args.seeds is not None:
        if args.seeds < 1:
            raise CLIError(f"--seeds must be >= 1, got {args.seeds}")
        cfg = dataclasses.replace(cfg, seeds=tuple(range(args.seeds)))
    if args.workers is not None:
        if args.workers < 1:
            raise CLIError(f"--workers must be >= 1, got {args.workers}")
        cfg = dataclasses.replace(cfg, workers=args.workers)
    res = run_validation(cfg, args.out)
    cal = res["calibration"]
    print(
        f"\ncalibration ({cal['design']}): {cal['status']}{': ' + cal['message'] if cal['message'] else ''}"
    )
    for opt, val in res["validation"].items():
        if val["status"] != "ok":
            print(f"{opt}: {val['status']}: {val['message']}")
    for name, ref in res["reference_gf"].items():
        bad = [r for r in ref.get("runs", []) if r.get("map_status", "ok") != "ok"]
        if bad:
            print(
                f"published gradient-flow theory on {name}: {len(bad)} of {len(ref['runs'])} runs without a "
                f"usable clock ({bad[0].get('map_status')}: {bad[0].get('message')})"
            )
    print(
        f"wrote {args.out / 'validation.json'}, validation.md, report.html "
        f"({res['stats']['wall_time_s']:.0f} s)"
    )
    return 0
