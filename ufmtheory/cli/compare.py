"""``ufm compare THEORY MODEL --design CONFIG [--out FILE]``: a theory trajectory against a trained model.

Both are saved trajectories (:meth:`~ufmtheory.trajectory.Trajectory.save` paths, e.g. from ``ufm train
--out``); CONFIG is any config file with a ``"design"`` key (as for ``ufm predict`` or ``ufm train``). Prints
:meth:`~ufmtheory.analysis.comparison_result.Comparison.table` and, with ``--out``, writes the comparison as
JSON.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ufmtheory.analysis.comparison import compare
from ufmtheory.cli._common import CLIError, add_out_argument, check_out, design_from_spec, load_config
from ufmtheory.report import write_json
from ufmtheory.trajectory import Trajectory

__all__ = ["add_parser", "run", "load_trajectory"]

_WHICH = {"H": ("H",), "W": ("W",), "both": ("H", "W")}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "compare",
        help="fit the time map between a theory trajectory and a trained model and compare them",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("theory", type=Path, help="saved theory trajectory (Trajectory.save path)")
    parser.add_argument("model", type=Path, help="saved model trajectory (e.g. from `ufm train --out`)")
    parser.add_argument(
        "--design", type=Path, required=True, help="config file with a 'design' key (as `ufm predict`)"
    )
    parser.add_argument("--which", choices=tuple(_WHICH), default="both")
    add_out_argument(parser, "also write the comparison as JSON")
    return parser


def load_trajectory(path: Path, name: str) -> Trajectory:
    """:meth:`Trajectory.load`, any failure turned into one CLIError naming the argument and the file."""
    try:
        return Trajectory.load(path)
    except FileNotFoundError as exc:
        raise CLIError(f"{name}: {exc.strerror or 'not found'}: {str(exc.filename or path)!r}") from None
    except Exception as exc:  # a corrupted file raises many kinds (zip, zlib, pickle-free npz, JSON, keys)
        raise CLIError(f"{name}: cannot load trajectory {str(path)!r}: {type(exc).__name__}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    out = args.out
    check_out(out, "file")
    cfg = load_config(args.design)
    if "design" not in cfg:
        raise CLIError(f"--design {str(args.design)!r}: the config has no 'design' object")
    design = design_from_spec(cfg["design"])
    theory = load_trajectory(args.theory, "THEORY")
    model = load_trajectory(args.model, "MODEL")
    cmp = compare(theory, model, design, which=_WHICH[args.which])
    print(f"ufm compare: {args.theory} vs {args.model}")
    print(cmp.table())
    if out is not None:
        write_json(out, cmp.as_dict())
        print(f"wrote {out}")
    return 0 if cmp.ok else 1
