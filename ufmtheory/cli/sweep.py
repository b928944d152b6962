"""``ufm sweep CONFIG [--out STORE] [--scheduler ADDRESS | --workers N] [--plot PNG]``: a phase diagram, a
K-scaling study or a training sweep described by a JSON or TOML file, written to a resumable zarr store.

Rerunning the same command with the same ``--out`` resumes the sweep (finished points are skipped); a store
written by a different config is refused. ``--scheduler`` runs the points on a Dask cluster
(``dask scheduler`` / ``dask worker ADDRESS``, docs: Sweeps), ``--workers`` on a local process pool (default:
one worker per core). Exit status 0 when every point has run (the status table says how each ended).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ufmtheory.cli._common import (
    CLIError,
    add_config_command,
    add_out_argument,
    add_progress_argument,
    check_out,
    config_from_args,
    design_from_spec,
    reject_unknown,
)
from ufmtheory.experiments.phase_diagram import phase_diagram, scaling
from ufmtheory.experiments.sweep import connect
from ufmtheory.experiments.sweep_plots import plot_phase_diagram, plot_scaling, plot_seed_bands
from ufmtheory.experiments.training_sweep import training_sweep
from ufmtheory.plotting import save_figure

__all__ = ["SCHEMA", "add_parser", "run", "expand_axes"]

SCHEMA = """\
{
  "kind": "phase_diagram",   # "phase_diagram" | "scaling" | "training"
  "design": {"kind": "factorial", "sizes": [4, 4]},      # phase_diagram, training
            # | {"kind": "hierarchical", "depth": 2, "branching": 3}
  "axes": {                  # phase_diagram: ModifiedUFM parameters (alpha, beta, lam_W, lam_H, lam_E, dim,
                             #   normalize, scale); training: TrainConfig fields (seed, lr, width, ...)
    "alpha": [0.5, 1.0, 2.0],                    # a list of values, or
    "beta": {"geomspace": [0.25, 4.0, 20]}       # {"linspace" | "geomspace": [start, stop, n]}
  },
  "mode": "product",         # optional: "product" (grid) or "zip" (axes taken together)
  "which": "H",              # optional: "H" or "W" (phase_diagram, scaling, training)
  "fixed": {"ridge": "E", "lam_W": 1e-4, "lam_E": 1e-4},  # optional: parameters not swept
  "options": {"points_per_decade": 10, "t1_max": 1e10},   # optional keyword arguments of the built-in
                             # (phase_diagram: scale, etf_tol, points_per_decade, t1_max, end_state;
                             #  scaling: alpha, beta, ridge, lam_times_K, lam, scale, ...;
                             #  training: etf_tol, checkpoint_every)
  "sizes": [[3, 3], [10, 10], [100, 100]],              # scaling only: A x B grid sizes
  "retries": 0               # optional: extra attempts for a point that raises
}
The same keys work in a TOML file (CONFIG ending in .toml)."""
"""The config schema of ``ufm sweep`` (``#`` comments are documentation, not JSON)."""

_KINDS = ("phase_diagram", "scaling", "training")
_KEYS = {"kind", "design", "axes", "mode", "which", "fixed", "options", "sizes", "retries"}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = add_config_command(
        subparsers,
        "sweep",
        help="phase diagram, K-scaling or training sweep into a resumable zarr store",
        description="Run a sweep described by CONFIG on a process pool or a Dask cluster; rerun to resume.",
        schema=SCHEMA,
    )
    add_out_argument(parser, "zarr store (folder; default runs/<CONFIG name>.zarr)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://host:8786")
    where.add_argument("--workers", type=int, default=None, help="local process pool size (default: cores)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the scheduler")
    parser.add_argument("--plot", type=Path, default=None, help="also write the standard figure (PNG)")
    add_progress_argument(parser, "no progress bar")
    return parser


def expand_axes(axes: Any) -> dict[str, list[Any]]:
    """Axis specs to value lists: a list stays; ``{"linspace"|"geomspace": [start, stop, n]}`` expands.

    Example:
        >>> expand_axes({"a": [1, 2], "b": {"geomspace": [1, 100, 3]}})
        {'a': [1, 2], 'b': [1.0, 10.0, 100.0]}
    """
    if not isinstance(axes, dict) or not axes:
        raise CLIError("config needs 'axes': an object of axis names to value lists")
    out: dict[str, list[Any]] = {}
    for name, spec in axes.items():
        if isinstance(spec, list):
            out[name] = spec
            continue
        if not (isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in ("linspace", "geomspace")):
            raise CLIError(f"axes.{name} must be a list or {{'linspace'|'geomspace': [start, stop, n]}}")
        how, args = next(iter(spec.items()))
        ok = isinstance(args, list) and len(args) == 3 and isinstance(args[2], int) and args[2] >= 1
        if not ok or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args[:2]):
            raise CLIError(f"axes.{name}.{how} must be [start, stop, n] with numbers and an integer n >= 1")
        if how == "geomspace" and not (args[0] > 0 and args[1] > 0):
            raise CLIError(f"axes.{name}.geomspace needs start, stop > 0")
        values = getattr(np, how)(args[0], args[1], args[2])
        out[name] = [float(f"{v:.12g}") for v in values]  # short, exact-looking coordinates in the store
    return out


def _executor(args: argparse.Namespace) -> Any:
    if args.scheduler is not None:
        try:
            return connect(args.scheduler, args.timeout)
        except ConnectionError as exc:
            raise CLIError(str(exc)) from None
    if args.workers is not None and args.workers < 1:
        raise CLIError(f"--workers must be >= 1, got {args.workers}")
    return args.workers


def _dict(cfg: dict[str, Any], key: str) -> dict[str, Any]:
    value = cfg.get(key, {})
    if not isinstance(value, dict):
        raise CLIError(f"'{key}' must be an object, got {type(value).__name__}")
    return value


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args, "sweep", SCHEMA)
    if cfg is None:
        return 0
    reject_unknown("config", cfg, _KEYS)
    kind = cfg.get("kind")
    if kind not in _KINDS:
        raise CLIError(f"kind must be one of {list(_KINDS)}, got {kind!r}")
    out = args.out if args.out is not None else Path("runs") / f"{Path(args.config).stem}.zarr"
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {str(out)!r} exists and is not a folder (a sweep store is a zarr folder)")
    check_out(out, "dir")
    check_out(args.plot, "file")
    fixed, options = _dict(cfg, "fixed"), _dict(cfg, "options")
    common: dict[str, Any] = {
        "store": out,
        "progress": not args.no_progress,
        "retries": cfg.get("retries", 0),
    }
    if kind == "scaling":
        if "design" in cfg or "axes" in cfg or fixed:
            raise CLIError("a scaling sweep takes 'sizes' and 'options' (no design, axes or fixed)")
        sizes = cfg.get("sizes")
        if not isinstance(sizes, list) or not all(isinstance(s, list) for s in sizes):
            raise CLIError("a scaling sweep needs 'sizes': a list of [A, B] pairs")
        run_sweep: Any = lambda ex: scaling(  # noqa: E731
            [tuple(s) for s in sizes], which=cfg.get("which", "H"), executor=ex, **common, **options
        )
    else:
        design = design_from_spec(cfg.get("design"))
        axes = expand_axes(cfg.get("axes"))
        fn = phase_diagram if kind == "phase_diagram" else training_sweep
        run_sweep = lambda ex: fn(  # noqa: E731
            design, axes, cfg.get("which", "H"), mode=cfg.get("mode", "product"), executor=ex,
            **common, **options, **fixed,
        )  # fmt: skip
    executor = _executor(args)
    try:
        ds = run_sweep(executor)
    finally:
        if executor is not None and not isinstance(executor, int):
            executor.close()
    _summary(ds, kind, out)
    if args.plot is not None:
        _plot(ds, kind, args.plot)
    return 0


def _summary(ds: Any, kind: str, out: Path) -> None:
    stats = json.loads(ds.attrs["sweep_stats"])
    counts = Counter(str(s) for s in ds["status"].values.reshape(-1))
    print(
        f"ufm sweep: {kind}, {stats['n_points']} points ({stats['n_run']} run now, the rest from the store),"
        f" {stats['wall_time_s']:.1f} s on {stats['executor']}"
    )
    print("status: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    errors = [str(e) for e in ds["error"].values.reshape(-1) if e]
    for message, n in Counter(errors).most_common(3):
        print(f"  {n} x {message}")
    if "end_state" in ds:
        ends = Counter(str(s) for s in ds["end_state"].values.reshape(-1))
        print("end states: " + ", ".join(f"{k} {v}" for k, v in sorted(ends.items())))
    for key in sorted(k for k in ds.attrs if k.startswith("fit_")):
        fit = json.loads(ds.attrs[key])
        print(f"{key[4:]}: t ~ K^{fit['exponent']:.3f} (R² {fit['r2']:.4f}, {fit['n']} sizes)")
    print(f"store: {out} (reopen with ut.load_sweep)")


def _plot(ds: Any, kind: str, path: Path) -> None:
    if kind == "scaling":
        fig, _ = plot_scaling(ds)
    elif kind == "phase_diagram":
        if ds["collapse"].ndim != 2:
            raise CLIError("--plot needs a phase diagram over exactly two parameters")
        fig, _ = plot_phase_diagram(ds, "collapse")
    else:
        if "seed" not in ds.dims or "strength" not in ds:
            raise CLIError("--plot needs a training sweep over 'seed' with curves (steps not swept)")
        fig, _ = plot_seed_bands(ds, "strength")
    save_figure(fig, path)
    print(f"wrote {path}")
