"""Helpers shared by the benchmark scripts: machine information, memory and CPU-load probes, strict JSON
output, key/value tables, and the ``--quick`` / ``--out`` command line every script has.

The scripts run as ``python benchmarks/bench_x.py``, so this folder is on ``sys.path`` and they import
``from _common import ...``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ufmtheory._format import to_jsonable
from ufmtheory._io import atomic_write_bytes

RESULTS = Path(__file__).resolve().parent / "results"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


# -- probes ------------------------------------------------------------------------------------------------
def maxrss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def minor_faults() -> int:
    """Minor page faults of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def load_average() -> list[float]:
    """The 1-, 5- and 15-minute load averages (empty where the platform has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return []


class ForeignLoad:
    """CPU time used by *other* processes while a block of code runs, as a fraction of the machine's
    capacity (wall × CPUs): machine-wide busy time from /proc/stat minus this process's own CPU time (and
    its children's). Load averages cannot tell a benchmark's own threads from others'; this can.
    ``fraction()`` is ``None`` off Linux."""

    def __init__(self) -> None:
        self.start = self._snapshot()

    @staticmethod
    def _snapshot() -> tuple[float, float, float] | None:
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        except OSError:
            return None
        ticks = [int(x) for x in fields]
        busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        own_s = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
        return busy / os.sysconf("SC_CLK_TCK"), own_s, time.perf_counter()

    def fraction(self) -> float | None:
        end = self._snapshot()
        if self.start is None or end is None:
            return None
        busy, own, wall = (e - s for e, s in zip(end, self.start, strict=True))
        return max(0.0, busy - own) / (wall * (os.cpu_count() or 1))


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """CPU model, core count and affinity, Python, numpy (with its BLAS), scipy, sympy, torch (with its
    thread counts, when the script imported it), the thread environment variables and the load average."""
    blas: dict[str, Any] = {}
    try:
        cfg = np.show_config(mode="dicts")  # numpy >= 1.26
        blas = {k: cfg["Build Dependencies"]["blas"].get(k) for k in ("name", "version")}
    except Exception:  # noqa: BLE001 - informational only
        pass
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:  # pragma: no cover
        pass
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "numpy": np.__version__,
        "numpy_blas": blas,
        "scipy": _version("scipy"),
        "sympy": _version("sympy"),
        "ufmtheory": _version("ufmtheory"),
        "thread_env": {k: os.environ.get(k) for k in THREAD_VARS},
        "load_average": load_average(),
    }
    torch = sys.modules.get("torch")  # only when the benchmark uses it: importing torch costs ~1 s
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_num_threads"] = torch.get_num_threads()
        info["torch_num_interop_threads"] = torch.get_num_interop_threads()
    return info


def timestamp() -> str:
    """Now, UTC, ISO 8601 to the second."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


# -- output ------------------------------------------------------------------------------------------------
def log(msg: str) -> None:
    """Progress line on stderr (tables and the final summary go to stdout)."""
    print(msg, file=sys.stderr, flush=True)


def write_json(path: Path, result: Any) -> None:
    """Strict JSON (non-finite numbers become ``null``, numpy values plain Python), written atomically."""
    text = json.dumps(to_jsonable(result), indent=2, allow_nan=False) + "\n"
    atomic_write_bytes(path, text.encode())
    log(f"wrote {path}")


def print_rows(rows: Sequence[tuple[str, str]], footer: str = "") -> None:
    """A two-column table of ``(label, value)`` rows between rules."""
    width = max(len(k) for k, _ in rows)
    rule = "-" * (width + 80)
    print("\n" + rule)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print(rule + (f"\n{footer}" if footer else ""))


def fmt(x: Any, spec: str) -> str:
    """``format(x, spec)``, or ``-`` padded to the spec's width for a missing value."""
    if x is None:
        width = "".join(ch for ch in spec.split(".")[0] if ch.isdigit())
        return "-".rjust(int(width) if width else 1)
    return format(x, spec)


# -- numbers -----------------------------------------------------------------------------------------------
def rel_err(A: np.ndarray, B: np.ndarray) -> float:
    """``‖A - B‖_F / ‖B‖_F`` (B is the reference)."""
    return float(np.linalg.norm(A - B) / np.linalg.norm(B))


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Least-squares slope of ``log y`` against ``log x`` over the positive pairs (``None`` below two)."""
    pts = [(a, b) for a, b in zip(x, y, strict=True) if a is not None and b is not None and a > 0 and b > 0]
    if len(pts) < 2:
        return None
    return float(np.polyfit(np.log([a for a, _ in pts]), np.log([b for _, b in pts]), 1)[0])


# -- command line ------------------------------------------------------------------------------------------
def parser(doc: str | None, quick_help: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark has: ``--quick`` (a smoke test that proves the
    script runs; its numbers mean little) and ``--out`` (JSON path or folder)."""
    p = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"smoke test: {quick_help}")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON output file, or an existing folder (default: results/<name>.json; with --quick the "
        "temporary folder, so that a smoke test never overwrites a committed result)",
    )
    return p


def output_path(args: argparse.Namespace, name: str) -> Path:
    """Where the result JSON goes: ``--out`` (a folder gets ``<name>.json``), else ``results/<name>.json``,
    or ``$TMPDIR/<name>_quick.json`` under ``--quick``."""
    if args.out is not None:
        return args.out / f"{name}.json" if args.out.is_dir() else args.out
    return Path(tempfile.gettempdir()) / f"{name}_quick.json" if args.quick else RESULTS / f"{name}.json"


def run_worker(script: str, argv: Sequence[str]) -> dict[str, Any]:
    """Run ``script`` with ``argv`` in a fresh interpreter (its own ``ru_maxrss``, nothing imported or
    cached) and return the JSON object on the last line of its stdout."""
    proc = subprocess.run([sys.executable, script, *argv], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {script} {' '.join(argv)} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def emit(obj: Any) -> None:
    """A worker's answer: one strict-JSON line on stdout (read by :func:`run_worker`)."""
    print(json.dumps(to_jsonable(obj), allow_nan=False), flush=True)
