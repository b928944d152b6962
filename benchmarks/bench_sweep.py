"""Benchmark: a 20×20 (α, β) phase diagram of a 4×4 design on 1 and 2 workers, process pool and Dask.

Problem: ``ut.phase_diagram(factorial((4, 4)), {"alpha": geomspace(0.25, 4, 20), "beta": geomspace(0.25,
4, 20)}, ridge="H", lam_W = lam_H = 1e-3, points_per_decade=10)``: per point the exact reduced ODE through
the collapse (:func:`ufmtheory.predict_phases`) and the end state; 400 points of a few tenths of a second.

What it measures (DESIGN.md, "Performance expectations": side by side in one run, as ratios):

1. **Wall time** of the phase diagram on a ``ProcessPoolExecutor`` and on a Dask ``LocalCluster``
   (``threads_per_worker=1``, ``processes=True``) with 1 and 2 workers, and the **speed-up** 1 → 2 workers
   of each (target ≥ 1.7×). Executors are started and warmed before the clock starts (every worker has
   imported the package and compiled the 4×4 reduced equations, a one-off ~2 s per process); the start-up
   is timed separately.
2. **Scheduler overhead per point**: the same 20×20 sweep of a function that does nothing
   (``{"y": alpha}``), 2 workers, per executor and for ``executor="serial"``: wall time / points (target
   ≤ 20 ms), after a 2×2 warm-up sweep (first-call imports are not overhead); and again with a zarr
   store (per-point journal file, array flushes every 5 s, final flush).
3. **Cores obtained**: the points' summed CPU time (``cpu_time_s``) over the wall time. On a shared machine
   the session may get far less than one core per worker; the speed-up divided by the ratio of cores
   obtained (2 workers vs 1) separates the engine's scaling from the machine's.
4. **Peak memory**: the largest summed RSS of this process and all its children (psutil, sampled every
   0.1 s) during each run.
5. **Identical results**: every numeric output and the end states of the four phase-diagram runs compared
   with the first (NaN equal to NaN): the maximum absolute difference must be 0.

The **machine ceiling** puts the speed-up in context: the same pure-Python work in 2 processes against 1
process, timed at the start and the end (``cpu_ceiling``). On 2 idle cores it is ~2×; on a shared machine
whose sessions get a fixed CPU share it can be ~1×, and then no executor can do better.

BLAS runs single-threaded (``OPENBLAS_NUM_THREADS=1`` before numpy is imported; workers inherit it) so that
2 workers use 2 cores, not 4 threads. The machine is shared: load averages at the start and end are
recorded, and a busy machine lowers the speed-up (2 workers need 2 idle cores).

Run: ``.venv/bin/python benchmarks/bench_sweep.py [--grid 20] [--quick] [--out PATH]`` (about 5-10 min on 2
quiet cores; ``--quick``: a 6×6 grid, JSON to the temp folder).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import concurrent.futures as cf  # noqa: E402
import datetime as _dt  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import ufmtheory as ut  # noqa: E402
from ufmtheory._io import atomic_write_bytes  # noqa: E402
from ufmtheory.experiments.phase_diagram import phase_diagram  # noqa: E402
from ufmtheory.experiments.sweep import sweep  # noqa: E402

DESIGN = (4, 4)
FIXED = {"ridge": "H", "lam_W": 1e-3, "lam_H": 1e-3}
OPTIONS = {"points_per_decade": 10}


def nothing(alpha: float, beta: float) -> dict[str, float]:
    """The overhead probe: no work at all."""
    return {"y": alpha}


def warm() -> str:
    """Run in every worker before timing: import the package, compile the 4×4 reduced equations."""
    prob = ut.ModifiedUFM(ut.designs.factorial(DESIGN), dim=16, alpha=1.0, beta=1.0, **FIXED)
    ut.predict_phases(prob, **OPTIONS)
    return str(os.getpid())


def spin(n: int) -> float:
    """A fixed amount of pure-Python CPU work (no memory traffic, no BLAS)."""
    t0 = time.perf_counter()
    x = 0
    for i in range(n):
        x += i * i % 7
    return time.perf_counter() - t0


def cpu_ceiling(n: int = 2_000_000, rounds: int = 3) -> dict[str, Any]:
    """The speed-up 2 processes can get on this machine right now: two spins one after the other in one
    worker, against the same two spins side by side in two workers (``rounds`` alternations; the median
    ratio). On 2 idle cores it is ~2; when the session's CPU share is capped or the cores are busy, it is
    what any 2-worker run can reach."""
    ratios, ones, twos = [], [], []
    with cf.ProcessPoolExecutor(max_workers=1) as one_ex, cf.ProcessPoolExecutor(max_workers=2) as two_ex:
        one_ex.submit(spin, 1000).result()
        list(two_ex.map(spin, [1000, 1000]))
        for _ in range(rounds):
            t0 = time.perf_counter()
            one_ex.submit(spin, n).result()
            one_ex.submit(spin, n).result()
            ones.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            list(two_ex.map(spin, [n, n]))
            twos.append(time.perf_counter() - t0)
            ratios.append(ones[-1] / twos[-1])
    return {"one_worker_s": ones, "two_workers_s": twos, "speedup": float(np.median(ratios))}


class PeakRSS:
    """Largest summed RSS of this process and its descendants, sampled in a thread."""

    def __init__(self, interval: float = 0.1) -> None:
        import psutil

        self.proc, self.interval, self.peak = psutil.Process(), interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except Exception:  # noqa: BLE001 - a child that just exited
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


def start(kind: str, n: int) -> tuple[Any, Any, float]:
    """``(executor, cluster, start-up seconds)``, every worker warmed."""
    t0 = time.perf_counter()
    if kind == "pool":
        ex = cf.ProcessPoolExecutor(max_workers=n)  # forks from this (already warmed) process
        for fut in [ex.submit(warm) for _ in range(2 * n)]:
            fut.result()
        return ex, None, time.perf_counter() - t0
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    client.run(warm)
    return client, cluster, time.perf_counter() - t0


def stop(ex: Any, cluster: Any) -> None:
    if cluster is None:
        ex.shutdown(wait=True)
    else:
        ex.close()
        cluster.close()


def timed(fn: Any) -> tuple[Any, float, int]:
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        out = fn()
        wall = time.perf_counter() - t0
    return out, wall, mem.peak


def max_difference(a: Any, b: Any) -> float:
    worst = 0.0
    for name in a.data_vars:
        if name in ("wall_time_s", "cpu_time_s", "error", "attempts"):  # timings differ run to run
            continue
        x, y = a[name].values, b[name].values
        if x.dtype == object or y.dtype == object:
            worst = max(worst, float((x != y).sum()))  # mismatching strings counted as differences
            continue
        same = (x == y) | (np.isnan(x) & np.isnan(y))
        if not same.all():
            worst = max(worst, float(np.nanmax(np.abs(x - y)[~same])) if np.any(~same) else 0.0)
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="6×6 grid, JSON to the temp folder")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    grid = 6 if args.quick else args.grid
    out = args.out or (
        Path(tempfile.gettempdir()) / "bench_sweep.json"
        if args.quick
        else Path(__file__).parent / "results" / "bench_sweep.json"
    )
    axis = [float(f"{v:.6g}") for v in np.geomspace(0.25, 4.0, grid)]
    axes = {"alpha": axis, "beta": axis}
    load_start = os.getloadavg()
    ceiling = {"start": cpu_ceiling()}
    warm()  # this process too (the process pool forks from it)

    overhead: dict[str, Any] = {}
    small = {"alpha": axis[:2], "beta": axis[:2]}  # first-call imports (xarray, tqdm) are not overhead
    sweep(nothing, small, executor="serial", progress=False)
    _, wall, _ = timed(lambda: sweep(nothing, axes, executor="serial", progress=False))
    overhead["serial"] = {"wall_s": wall, "per_point_ms": 1e3 * wall / grid**2}
    runs: dict[str, Any] = {}
    results: dict[str, Any] = {}
    for kind in ("pool", "dask"):
        for n in (1, 2):
            ex, cluster, startup = start(kind, n)
            try:
                if n == 2:
                    sweep(nothing, small, executor=ex, progress=False)
                    _, wall, _ = timed(lambda ex=ex: sweep(nothing, axes, executor=ex, progress=False))
                    overhead[kind] = {"wall_s": wall, "per_point_ms": 1e3 * wall / grid**2}
                    with tempfile.TemporaryDirectory() as tmp:  # the same with a store (journal + flushes)
                        _, wall, _ = timed(
                            lambda ex=ex, tmp=tmp: sweep(
                                nothing, axes, executor=ex, progress=False, store=Path(tmp) / "s.zarr"
                            )
                        )
                    overhead[f"{kind}+store"] = {"wall_s": wall, "per_point_ms": 1e3 * wall / grid**2}
                ds, wall, peak = timed(
                    lambda ex=ex: phase_diagram(
                        ut.designs.factorial(DESIGN), axes, executor=ex, progress=False, **OPTIONS, **FIXED
                    )
                )
            finally:
                stop(ex, cluster)
            key = f"{kind}-{n}"
            results[key] = ds
            runs[key] = {
                "workers": n,
                "startup_s": startup,
                "wall_s": wall,
                "per_point_s": wall / grid**2,
                "peak_rss_mib": peak / 2**20,
                "point_time_s_mean": float(np.nanmean(ds["wall_time_s"].values)),
                "point_cpu_s_total": float(np.nansum(ds["cpu_time_s"].values)),
                # CPU cores the run actually obtained (point CPU time / wall time): on a shared machine this,
                # not the worker count, bounds the speed-up.
                "cores_obtained": float(np.nansum(ds["cpu_time_s"].values)) / wall,
                "statuses": {str(s): int((ds["status"] == s).sum()) for s in np.unique(ds["status"].values)},
            }
            print(f"{key}: {wall:.1f} s ({startup:.1f} s start-up), peak {peak / 2**20:.0f} MiB", flush=True)
    first = results["pool-1"]
    identical = {k: max_difference(first, v) for k, v in results.items()}
    speedup = {kind: runs[f"{kind}-1"]["wall_s"] / runs[f"{kind}-2"]["wall_s"] for kind in ("pool", "dask")}
    # Speed-up per core obtained: 1 means the engine turned every extra core the machine gave into speed.
    per_core = {
        kind: speedup[kind] / (runs[f"{kind}-2"]["cores_obtained"] / runs[f"{kind}-1"]["cores_obtained"])
        for kind in ("pool", "dask")
    }
    load_end = os.getloadavg()
    ceiling["end"] = cpu_ceiling()

    print(f"\n20×20 → {grid}×{grid} phase diagram of factorial{DESIGN}, {grid**2} points")
    print(
        f"{'executor':<10} {'workers':>7} {'wall s':>8} {'start s':>8} {'s/point':>8} {'cores got':>9}"
        f" {'peak MiB':>9}"
    )
    for key, r in runs.items():
        print(
            f"{key.split('-')[0]:<10} {r['workers']:>7} {r['wall_s']:>8.1f} {r['startup_s']:>8.1f}"
            f" {r['per_point_s']:>8.3f} {r['cores_obtained']:>9.2f} {r['peak_rss_mib']:>9.0f}"
        )
    print(
        "speed-up 1 → 2 workers: " + ", ".join(f"{k} {v:.2f}x" for k, v in speedup.items()) + " (target 1.7x)"
    )
    print("speed-up / (cores obtained 2 vs 1): " + ", ".join(f"{k} {v:.2f}" for k, v in per_core.items()))
    print(
        "machine ceiling (2 spinning processes vs 1): "
        + ", ".join(f"{k} {v['speedup']:.2f}x" for k, v in ceiling.items())
    )
    print(
        "overhead per point (no-op fn, 2 workers): "
        + ", ".join(f"{k} {v['per_point_ms']:.2f} ms" for k, v in overhead.items())
        + " (target 20 ms)"
    )
    print("max difference vs pool-1: " + ", ".join(f"{k} {v:g}" for k, v in identical.items()))
    print(f"load average: start {load_start[0]:.2f}, end {load_end[0]:.2f} ({os.cpu_count()} cores)")
    import dask
    import distributed
    import xarray
    import zarr

    report = {
        "benchmark": "bench_sweep",
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "problem": {
            "design": list(DESIGN),
            "grid": grid,
            "axes": axes,
            "fixed": FIXED,
            "options": OPTIONS,
            "points": grid**2,
        },
        "runs": runs,
        "speedup_1_to_2_workers": speedup,
        "machine_ceiling_speedup": ceiling,
        "speedup_per_core_obtained": per_core,
        "overhead_per_point": overhead,
        "max_difference_vs_pool_1": identical,
        "targets": {"speedup": 1.7, "overhead_ms": 20.0, "identical": 0.0},
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "affinity": len(os.sched_getaffinity(0)),
            "load_average_start": load_start,
            "load_average_end": load_end,
            "versions": {
                "ufmtheory": ut.__version__,
                "numpy": np.__version__,
                "dask": dask.__version__,
                "distributed": distributed.__version__,
                "xarray": xarray.__version__,
                "zarr": zarr.__version__,
            },
            "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        },
    }
    atomic_write_bytes(out, (json.dumps(report, indent=1) + "\n").encode())
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
