"""``ufm check [CLAIM ...] [--examples N]``: check the theory's claims (:mod:`ufmtheory.testing.claims`).

Each claim runs on its default cases, then on ``N`` cases drawn by hypothesis (deterministic: the same
command gives the same cases). Prints a table (claim, examples, worst error, tolerance, status, seconds);
exits with status 1 when a claim has a counterexample, which it prints as a reproducible Python call
(shrunk by hypothesis to a small case). ``--list`` prints the catalogue with statements and conditions.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

from ufmtheory.cli._common import CLIError
from ufmtheory.testing import claims as catalogue

__all__ = ["add_parser", "run"]

DEFAULT_EXAMPLES = 5
"""Hypothesis examples per claim unless ``--examples`` says otherwise (small: the check stays quick)."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "check",
        help="check the theory's claims on default and hypothesis-drawn cases",
        description=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument(
        "claims",
        nargs="*",
        metavar="CLAIM",
        help=f"claims to check (default: all): {', '.join(catalogue.names())}",
    )
    parser.add_argument(
        "--examples",
        type=int,
        default=DEFAULT_EXAMPLES,
        help=f"hypothesis examples per claim (default {DEFAULT_EXAMPLES}; 0: default cases only)",
    )
    parser.add_argument(
        "--no-shrink", action="store_true", help="report a counterexample without shrinking it"
    )
    parser.add_argument("--list", action="store_true", help="list the claims with statements and conditions")
    return parser


def _fmt_error(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.2e}"


def run(args: argparse.Namespace) -> int:
    names = list(args.claims) or catalogue.names()
    selected = [catalogue.get(n) for n in names]  # unknown name: ValueError listing the catalogue (exit 2)
    if args.list:
        for c in selected:
            print(f"{c.name}  [{c.section}]\n  {c.statement}\n  conditions: {'; '.join(c.conditions)}\n")
        return 0
    if args.examples < 0:
        raise CLIError(f"--examples must be >= 0, got {args.examples}")
    if args.examples > 0:
        try:
            import hypothesis  # noqa: F401  (only to give a clear message before any work)
        except ImportError:
            raise CLIError(
                "--examples needs hypothesis: pip install 'ufmtheory[testing]' "
                "(or --examples 0: default cases only)"
            ) from None
    header = f"{'claim':<22} {'examples':>8} {'worst error':>12} {'tol':>9} {'status':<15} {'seconds':>7}"
    print(header)
    print("-" * len(header))
    failures: list[str] = []
    for claim in selected:
        start = time.perf_counter()
        res = claim.check()
        n, worst, status = len(res.cases), res.error, res.status
        if not res.ok:
            bad = next(c for c in res.cases if not c.ok)
            failures.append(f"{claim.name} ({bad.status}): {bad.message}\n  rerun: {bad.call()}")
        if res.ok and args.examples > 0:
            ex = claim.explore(args.examples, shrink=not args.no_shrink)
            n += ex.examples
            if math.isfinite(ex.worst_error):
                worst = max(worst, ex.worst_error) if math.isfinite(worst) else ex.worst_error
            if ex.status == "failed" and ex.counterexample is not None:
                status = "failed"
                cx = ex.counterexample
                failures.append(f"{claim.name} ({cx.status}): {cx.message}\n  rerun: {cx.call()}")
        seconds = time.perf_counter() - start
        print(
            f"{claim.name:<22} {n:>8} {_fmt_error(worst):>12} {claim.tol:>9.1e} {status:<15} {seconds:>7.2f}"
        )
    if failures:
        print(f"\n{len(failures)} counterexample(s):")
        for f in failures:
            print(f"- {f}")
        return 1
    return 0
