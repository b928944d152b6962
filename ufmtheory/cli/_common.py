"""Shared pieces of the ``ufm`` commands: config files, ``--schema``, ``--out`` checks, JSON output.

The error contract of every command: a failure the user can fix (a bad config, an unreadable file, an
``--out`` that cannot be written) raises :class:`CLIError` (or the package's own ValueError/TypeError);
:func:`ufmtheory.cli.main` prints it as one line ``ufm COMMAND: error: ...`` on stderr and exits with
status 2. ``--out`` is checked before any work starts, so a long run never ends in an unwritable path.
"""

from __future__ import annotations

import argparse
import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from ufmtheory import designs
from ufmtheory.designs import Design

__all__ = [
    "CLIError",
    "add_config_arguments",
    "add_config_command",
    "add_out_argument",
    "add_progress_argument",
    "check_out",
    "config_from_args",
    "design_from_spec",
    "design_kind_and_arguments",
    "load_config",
    "reject_unknown",
    "require_design",
]

DESIGN_KINDS = ("factorial", "hierarchical")
"""Design constructors a config may name (``{"kind": ..., **constructor arguments}``)."""


class CLIError(ValueError):
    """A failure the user can fix (bad config, unreadable file, unwritable ``--out``): one line, exit 2."""


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a config file: TOML when the name ends in ``.toml``, JSON otherwise.

    Raises:
        CLIError: missing or unreadable file, a syntax error, or a top level that is not an object/table.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CLIError(f"config file {str(path)!r} not found") from None
    except OSError as exc:
        raise CLIError(f"cannot read config file {str(path)!r}: {exc.strerror or exc}") from None
    try:
        if path.suffix.lower() == ".toml":
            cfg = tomllib.loads(raw.decode("utf-8"))
        else:
            cfg = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise CLIError(f"{path}: not a text file (UTF-8)") from None
    except tomllib.TOMLDecodeError as exc:
        raise CLIError(f"{path}: not valid TOML: {exc}") from None
    except json.JSONDecodeError as exc:
        raise CLIError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(cfg, dict):
        raise CLIError(
            f"{path}: the config must be a JSON object (or a TOML table), got {type(cfg).__name__}"
        )
    return cfg


def reject_unknown(where: str, cfg: dict[str, Any], allowed: set[str] | frozenset[str]) -> None:
    """Raise CLIError naming the keys of ``cfg`` outside ``allowed``."""
    unknown = sorted(set(cfg) - set(allowed))
    if unknown:
        raise CLIError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def design_from_spec(spec: Any, *, where: str = "design") -> Design:
    """Build a design from ``{"kind": "factorial", "sizes": [3, 3]}`` or
    ``{"kind": "hierarchical", "depth": 2, "branching": 3}`` through the constructors of
    :mod:`ufmtheory.designs` (their validation speaks, prefixed with ``where``)."""
    kind, kwargs = design_kind_and_arguments(spec, where=where)
    try:
        return getattr(designs, kind)(**kwargs)
    except (TypeError, ValueError, OverflowError, MemoryError) as exc:
        raise CLIError(f"{where}: {exc}") from None


def design_kind_and_arguments(spec: Any, *, where: str = "design") -> tuple[str, dict[str, Any]]:
    """``(kind, constructor keyword arguments)`` of a design spec; the arguments are not yet checked."""
    if not isinstance(spec, dict):
        raise CLIError(f'config needs a \'{where}\' object, e.g. {{"kind": "factorial", "sizes": [3, 3]}}')
    kwargs = dict(spec)
    kind = kwargs.pop("kind", None)
    if kind not in DESIGN_KINDS:
        raise CLIError(f"{where}.kind must be one of {list(DESIGN_KINDS)}, got {kind!r}")
    if kind == "factorial" and isinstance(kwargs.get("sizes"), list):
        kwargs["sizes"] = tuple(kwargs["sizes"])
    return kind, kwargs


def check_out(path: Path | None, kind: Literal["file", "dir", "prefix"] = "file") -> None:
    """Check an ``--out`` path before any work starts.

    Args:
        path: the path (``None``: no output, nothing to check).
        kind: ``"file"`` (one file at ``path``), ``"prefix"`` (``path.npz`` and ``path.json``, as
            :meth:`~ufmtheory.trajectory.Trajectory.save` writes) or ``"dir"`` (a folder, created if missing).

    Raises:
        CLIError: an existing target that is not a regular file (a folder, a device) or, for ``"dir"``, not a
            folder; a parent that is a file; or a parent folder that is not writable.
    """
    if path is None:
        return
    path = Path(path)
    if kind == "dir":
        if path.exists() and not path.is_dir():
            raise CLIError(f"--out {str(path)!r} exists and is not a folder")
        if path.is_dir():
            _check_writable_dir(path, path)
            return
    else:
        targets = [path] if kind == "file" else [path.with_name(path.name + s) for s in (".npz", ".json")]
        for target in targets:
            if target.is_symlink() or target.exists():
                if not target.resolve().is_file():
                    raise CLIError(f"--out {str(target)!r} exists and is not a regular file")
        if path.name in ("", ".", ".."):
            raise CLIError(f"--out {str(path)!r} names a folder, not a file")
    # The nearest existing ancestor must be a writable folder (missing folders below it are created).
    parent = path.parent
    while not parent.exists():
        if parent.is_symlink():
            raise CLIError(f"--out {str(path)!r}: {str(parent)!r} is a broken link")
        parent = parent.parent
    if not parent.is_dir():
        raise CLIError(f"--out {str(path)!r}: {str(parent)!r} is not a folder")
    _check_writable_dir(parent, path)


def _check_writable_dir(folder: Path, path: Path) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CLIError(f"--out {str(path)!r}: folder {str(folder)!r} is not writable")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """``CONFIG`` (optional, so ``--schema`` works alone) and ``--schema``."""
    parser.add_argument("config", type=Path, nargs="?", help="config file (.json, or .toml)")
    parser.add_argument("--schema", action="store_true", help="print the config schema and exit")


def add_config_command(
    subparsers: Any, name: str, *, help: str, description: str, schema: str
) -> argparse.ArgumentParser:
    """The parser of a command that reads a CONFIG file: ``CONFIG``, ``--schema``, and the schema printed
    verbatim under ``description`` in ``--help``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description=f"{description} CONFIG schema:\n{schema}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(parser)
    return parser


def add_out_argument(parser: argparse.ArgumentParser, help: str, default: Path | None = None) -> None:
    """``--out PATH`` (checked by :func:`check_out` before any work, in the command's ``run``)."""
    parser.add_argument("--out", type=Path, default=default, help=help)


def add_progress_argument(parser: argparse.ArgumentParser, help: str = "hide the progress bar") -> None:
    """``--no-progress`` (``args.no_progress``)."""
    parser.add_argument("--no-progress", action="store_true", help=help)


def require_design(cfg: dict[str, Any], command: str) -> None:
    """Raise CLIError when the config of ``ufm COMMAND`` has no ``design`` key."""
    if "design" not in cfg:
        raise CLIError(f"config needs a 'design' object (see `ufm {command} --schema`)")


def config_from_args(args: argparse.Namespace, command: str, schema: str) -> dict[str, Any] | None:
    """The config file named by ``args`` (``None`` after printing the schema for ``--schema``)."""
    if args.schema:
        print(schema)
        return None
    if args.config is None:
        raise CLIError(f"CONFIG is required (see `ufm {command} --schema`)")
    return load_config(args.config)
