"""How a sweep runs its points: executors (process pools, Dask clients), the worker-side evaluation of
one point, and the loops that keep a bounded number of points in flight.

:func:`~ufmtheory.experiments.sweep.sweep` is the public entry; :func:`connect` is re-exported by
:mod:`ufmtheory.experiments.sweep`, its one public home.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import math
import os
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ufmtheory.experiments._sweep_store import normalise_output

__all__ = ["connect"]


@dataclass(frozen=True)
class _Work:
    """What every point of one sweep runs: ``fn`` at ``point(flat)`` with ``retries`` extra attempts (axis
    ``names`` for the output check); ``finish(flat, result)`` records a point's result."""

    fn: Callable[..., Any]
    point: Callable[[int], dict[str, Any]]
    retries: int
    names: tuple[str, ...]
    finish: Callable[[int, dict[str, Any]], None]

    def args(self, flat: int) -> tuple[Any, ...]:
        """The arguments of :func:`_evaluate` for point ``flat`` (sent to a worker)."""
        return (self.fn, self.point(flat), self.retries, self.names)

    def run_serial(self, todo: list[int]) -> None:
        for flat in todo:
            self.finish(flat, _evaluate(*self.args(flat)))


# -- executors ---------------------------------------------------------------------------------------------
def _is_client(executor: Any) -> bool:
    return type(executor).__module__.startswith("distributed") and hasattr(executor, "submit")


def connect(address: str, timeout: float = 10.0) -> Any:
    """A Dask ``distributed.Client`` connected to the scheduler at ``address``.

    Args:
        address: ``"tcp://host:8786"`` (``dask scheduler`` prints it).
        timeout: seconds to wait for the scheduler.

    Raises:
        ConnectionError: no scheduler answered at ``address`` within ``timeout`` seconds.
    """
    from distributed import Client

    try:
        return Client(address, timeout=f"{float(timeout)}s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ConnectionError(
            f"could not reach the Dask scheduler at {address!r} within {timeout:g} s ({exc}); start one"
            " with `dask scheduler` and workers with `dask worker ADDRESS` (docs: Sweeps)"
        ) from None


def _make_executor(executor: Any, timeout: float) -> tuple[Any, bool, str]:
    """``(executor, owned, description)``; ``owned`` executors are shut down by the sweep."""
    if executor is None or (isinstance(executor, int) and not isinstance(executor, bool)):
        n = (os.cpu_count() or 1) if executor is None else executor
        if n < 1:
            raise ValueError(f"executor: a worker count must be >= 1, got {n}")
        return cf.ProcessPoolExecutor(max_workers=n), True, f"process pool ({n} workers)"
    if executor == "serial":
        return None, False, "serial"
    if isinstance(executor, str):
        client = connect(executor, timeout)
        return client, True, f"dask {executor}"
    if _is_client(executor):
        return executor, False, f"dask {getattr(executor.scheduler, 'address', '?')}"
    if isinstance(executor, cf.Executor):
        return executor, False, type(executor).__name__
    raise TypeError(
        "executor must be None, a worker count, 'serial', a scheduler address, a concurrent.futures"
        f" Executor or a distributed.Client, got {type(executor).__name__}"
    )


def _capacity(executor: Any) -> int:
    if _is_client(executor):
        try:
            return max(sum(executor.nthreads().values()), 1)
        except Exception:  # noqa: BLE001
            return 1
    return int(getattr(executor, "_max_workers", os.cpu_count() or 1))


# -- the worker side ---------------------------------------------------------------------------------------
def _evaluate(
    fn: Callable[..., Any], point: dict[str, Any], retries: int, axis_names: tuple[str, ...]
) -> dict:
    """Run one point in a worker: ``fn(**point)`` with retries, the outputs normalised (never raises)."""
    start, cpu = time.perf_counter(), time.process_time()
    attempts = 0
    while True:
        attempts += 1
        try:
            out = fn(**point)
            break
        except Exception as exc:  # noqa: BLE001 - a failing point is recorded, never fatal
            if attempts > retries:
                return _failed(exc, time.perf_counter() - start, attempts, time.process_time() - cpu)
    try:
        values, status, message = normalise_output(out, axis_names)
    except Exception as exc:  # noqa: BLE001
        return _failed(exc, time.perf_counter() - start, attempts, time.process_time() - cpu)
    return {
        "values": values,
        "status": status,
        "error": message,
        "wall_time_s": time.perf_counter() - start,
        "cpu_time_s": time.process_time() - cpu,
        "attempts": attempts,
    }


def _failed(exc: BaseException, wall: float, attempts: int, cpu: float = math.nan) -> dict[str, Any]:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    return {
        "values": {},
        "status": "failed",
        "error": f"{type(exc).__name__}: {exc}{where}",
        "wall_time_s": wall,
        "cpu_time_s": cpu,
        "attempts": attempts,
    }


def _run_executor(pool: list[Any], owned: bool, work: _Work, todo: list[int]) -> None:
    """Keep a bounded number of points in flight on a concurrent.futures executor."""
    from concurrent.futures.process import BrokenProcessPool

    ex, finish, retries = pool[0], work.finish, work.retries
    limit = max(2 * _capacity(ex), 4)
    queue: Iterator[int] = iter(todo)
    in_flight: dict[cf.Future[Any], int] = {}
    crashes: dict[int, int] = {}
    retry: list[int] = []
    while True:
        while len(in_flight) < limit:
            flat = retry.pop() if retry else next(queue, None)
            if flat is None:
                break
            in_flight[ex.submit(_evaluate, *work.args(flat))] = flat
        if not in_flight:
            return
        done, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
        broken = False
        for fut in done:
            flat = in_flight.pop(fut)
            try:
                result = fut.result()
            except BrokenProcessPool as exc:
                # A worker died (killed, out of memory, segfault): every point in flight is lost. Each
                # such point is charged one crash and run again on a fresh pool up to `retries` times.
                broken = True
                crashes[flat] = crashes.get(flat, 0) + 1
                if crashes[flat] > retries or not owned:
                    finish(flat, _failed(exc, math.nan, crashes[flat]) | {"error": f"worker died: {exc}"})
                else:
                    retry.append(flat)
            except Exception as exc:  # noqa: BLE001
                finish(flat, _failed(exc, math.nan, 1))
            else:
                finish(flat, result)
        if broken:
            if not owned:
                for flat in in_flight.values():
                    finish(flat, _failed(RuntimeError("the executor's process pool broke"), math.nan, 0))
                raise RuntimeError(
                    "the executor's process pool broke (a worker died); finished points are kept, rerun to"
                    " resume"
                )
            retry.extend(in_flight.values())
            in_flight.clear()
            n = _capacity(ex)
            ex.shutdown(wait=False, cancel_futures=True)
            ex = pool[0] = cf.ProcessPoolExecutor(max_workers=n)


def _run_dask(client: Any, work: _Work, todo: list[int]) -> None:
    """Keep a bounded number of points in flight on a Dask cluster (``retries`` also covers lost workers)."""
    from distributed import as_completed

    retries = work.retries
    limit = max(4 * _capacity(client), 8)
    queue = iter(todo)
    keys: dict[str, int] = {}

    def submit(flat: int) -> Any:
        fut = client.submit(_evaluate, *work.args(flat), pure=False, retries=retries)
        keys[fut.key] = flat
        return fut

    ac = as_completed([submit(flat) for flat in itertools.islice(queue, limit)])
    for fut in ac:
        flat = keys.pop(fut.key)
        try:
            result = fut.result()
        except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker after the retries
            result = _failed(exc, math.nan, retries + 1)
        fut.release()
        work.finish(flat, result)
        nxt = next(queue, None)
        if nxt is not None:
            ac.add(submit(nxt))
