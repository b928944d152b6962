"""The ``ufm`` command line: ``main`` and the registry of subcommands.

Each command lives in its own module of this package with two functions:

- ``add_parser(subparsers) -> argparse.ArgumentParser``: adds the subcommand (``subparsers.add_parser``);
- ``run(args) -> int``: does the work; returns the exit status (0: ok, 1: the run ended with a status
  other than ok).

A command is registered by listing its module in :data:`COMMANDS` (and importing it). Errors the user can
fix (:class:`~ufmtheory.cli._common.CLIError`, and the ValueError/TypeError the package raises for bad
input) are printed as one line ``ufm COMMAND: error: ...`` on stderr with exit status 2; any other failure
is one line with exit status 1 (``UFM_TRACEBACK=1`` shows the traceback). Usage errors are one line too
(exit status 2), and so is each distinct warning (``ufm COMMAND: warning: ...``).

Shared helpers for command modules (config files in JSON or TOML, ``--schema``, ``--out`` checks before any
work, designs from ``{"kind": ..., ...}`` specs) are in :mod:`ufmtheory.cli._common`.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from ufmtheory import __version__
from ufmtheory.cli import (
    check,
    compare,
    demo,
    predict,
    sweep,
    train,
    validate,
)
from ufmtheory.cli._common import CLIError

__all__ = ["COMMANDS", "main"]

COMMANDS = (
    demo,
    predict,
    train,
    compare,
    check,
    validate,
    sweep,
)
"""The command modules, in the order ``ufm --help`` lists them."""


class _Parser(argparse.ArgumentParser):
    """argparse with the one-line error contract (no usage block): ``ufm COMMAND: error: ...``, exit 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ufm", description="ufmtheory: unconstrained features model tools")
    parser.add_argument("--version", action="version", version=f"ufmtheory {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub).set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ufm`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    with warnings.catch_warnings():
        # Warnings keep the one-line form too: each distinct message once, as ``ufm COMMAND: warning: ...``
        # (which warnings show is left to the filters in force).
        warnings.showwarning = functools.partial(_show_warning, args.command, set())
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args._run(args))
    except (CLIError, ValueError, TypeError) as exc:
        _error(args.command, str(exc))
        return 2
    except OSError as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        _error(args.command, f"{where}{exc.strerror or exc}")
        return 2
    except KeyboardInterrupt:
        _error(args.command, "interrupted")
        return 130
    except Exception as exc:
        if os.environ.get("UFM_TRACEBACK"):
            raise
        _error(args.command, f"{type(exc).__name__}: {exc} (UFM_TRACEBACK=1 shows the traceback)")
        return 1


def _one_line(text: str, limit: int = 400) -> str:
    # The message of a nested exception may carry newlines, and a huge number in it thousands of digits.
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error(command: str, message: str) -> None:
    print(f"ufm {command}: error: {_one_line(message)}", file=sys.stderr)


def _show_warning(
    command: str, seen: set[str], message: Any, category: type[Warning], *args: Any, **kwargs: Any
) -> None:
    line = f"ufm {command}: warning: {category.__name__}: {_one_line(str(message))}"
    if line not in seen:
        seen.add(line)
        print(line, file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
