"""Sweeps: run a function over a grid of named parameters on any executor, into a labelled, resumable table.

:func:`sweep` evaluates ``fn(**point)`` at every point of ``axes`` (cartesian product, or zipped) on a
``concurrent.futures.Executor`` (default: a process pool sized to the cores) or a Dask
``distributed.Client`` (one machine or a cluster), and returns an :class:`xarray.Dataset`: the axes as
coordinates, one variable per output of ``fn`` and per point ``status``, ``error``, ``wall_time_s``,
``cpu_time_s`` (the worker process's CPU time: far below the wall time when the machine is busy) and
``attempts``. A point that raises is recorded (``status="failed"``, ``error`` the exception), never fatal.
With ``store=`` every finished point is on disk the moment it finishes; re-running the same sweep resumes
(finished points are skipped); a changed axis or function version is refused (:mod:`._sweep_store`).

Example:
    >>> ds = sweep(_example, {"x": [1.0, 2.0], "y": [10.0, 20.0, 30.0]}, executor="serial", progress=False)
    >>> ds["total"].values.tolist(), ds["status"].values[0, 0]
    ([[11.0, 21.0, 31.0], [12.0, 22.0, 32.0]], 'ok')
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import hashlib
import inspect
import json
import math
import os
import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ufmtheory.experiments._sweep_exec import (
    _is_client,
    _make_executor,
    _run_dask,
    _run_executor,
    _Work,
    connect,
)
from ufmtheory.experiments._sweep_store import (
    PENDING,
    RESERVED,
    Store,
    Table,
    load_sweep,
    open_stored,
)

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

__all__ = ["sweep", "load_sweep", "connect", "function_version", "MODES"]

MODES = ("product", "zip")
"""``"product"``: one dimension per axis (cartesian product); ``"zip"``: one dimension ``point``."""


def _example(x: float, y: float) -> dict[str, float]:
    return {"total": x + y}


# -- input checks ------------------------------------------------------------------------------------------
def _check_axes(axes: Any, mode: str) -> dict[str, list[Any]]:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    if not isinstance(axes, Mapping) or not axes:
        raise ValueError("axes must be a non-empty mapping of axis names to lists of values")
    out: dict[str, list[Any]] = {}
    for name, values in axes.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"axis names must be identifier strings, got {name!r}")
        if name in RESERVED:
            raise ValueError(f"axis name {name!r} is reserved ({list(RESERVED)})")
        if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
            raise TypeError(f"axes[{name!r}] must be a list of values, got {type(values).__name__}")
        vals = [v.item() if isinstance(v, np.generic) else v for v in values]
        if not vals:
            raise ValueError(f"axes[{name!r}] is empty: every axis needs at least one value")
        kinds = set()
        for v in vals:
            if isinstance(v, bool):
                kinds.add("bool")
            elif isinstance(v, (int, float)):
                kinds.add("number")
                if isinstance(v, float) and not math.isfinite(v):
                    raise ValueError(f"axes[{name!r}]: values must be finite, got {v}")
            elif isinstance(v, str):
                kinds.add("str")
            else:
                raise TypeError(
                    f"axes[{name!r}]: values must be numbers, strings or booleans, got {type(v).__name__}"
                    " (for tuples such as grid sizes use one axis per component with mode='zip')"
                )
        if len(kinds) > 1:
            raise TypeError(f"axes[{name!r}] mixes value types {sorted(kinds)}")
        if mode == "product" and len(set(vals)) != len(vals):
            raise ValueError(f"axes[{name!r}] has repeated values (coordinates must be unique)")
        out[name] = vals
    if mode == "zip":
        lengths = {name: len(v) for name, v in out.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"mode='zip' needs axes of equal length, got {lengths}")
    return out


def _check_signature(fn: Callable[..., Any], names: Sequence[str]) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins without a signature: errors surface per point
    params = sig.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    accepted = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = [n for n in names if n not in accepted]
    if unknown:
        raise ValueError(f"unknown axis name(s) {unknown} for fn{sig}: it accepts {sorted(accepted)}")
    missing = [
        p.name
        for p in params
        if p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in names
    ]
    if missing:
        raise ValueError(f"fn{sig} needs argument(s) {missing} that no axis provides")


def _fn_name(fn: Any) -> str:
    if isinstance(fn, functools.partial):
        return f"partial({_fn_name(fn.func)})"
    mod = getattr(fn, "__module__", None) or type(fn).__module__
    return f"{mod}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"


def _check_picklable(fn: Any, executor: Any) -> None:
    if executor in (None, "serial") or isinstance(executor, cf.ThreadPoolExecutor):
        return
    if _is_client(executor) or (isinstance(executor, str)):
        import cloudpickle

        dumps, how = cloudpickle.dumps, "cloudpickle (Dask)"
    else:
        dumps, how = functools.partial(pickle.dumps, protocol=pickle.HIGHEST_PROTOCOL), "pickle"
    try:
        dumps(fn)
    except Exception as exc:  # noqa: BLE001 - any pickling failure means the same thing here
        raise TypeError(
            f"fn {_fn_name(fn)} cannot be sent to worker processes ({how}: {type(exc).__name__}: {exc});"
            " define it at module level (not a lambda or a nested function), or use executor='serial' or a"
            " ThreadPoolExecutor"
        ) from None


def function_version(fn: Callable[..., Any]) -> str:
    """A fingerprint of ``fn``: its name, source code and (for ``functools.partial``) bound arguments.

    A stored sweep records it; resuming with a function whose fingerprint differs is refused. Pass
    ``version=`` to :func:`sweep` to fix the version by hand instead (e.g. to allow cosmetic edits).
    """
    h = hashlib.sha256(_fn_name(fn).encode())
    target = fn
    while isinstance(target, functools.partial):
        for part in (target.args, sorted(target.keywords.items())):
            try:
                h.update(pickle.dumps(part, protocol=4))
            except Exception:  # noqa: BLE001 - unpicklable bound arguments are refused later, by name
                h.update(repr(part).encode())
        target = target.func
    try:
        h.update(inspect.getsource(target).encode())
    except (OSError, TypeError):
        h.update(repr(getattr(target, "__code__", target)).encode())
    return h.hexdigest()[:16]


# -- the sweep ---------------------------------------------------------------------------------------------
def sweep(
    fn: Callable[..., Mapping[str, Any]],
    axes: Mapping[str, Sequence[Any]],
    *,
    mode: str = "product",
    executor: Any = None,
    store: str | os.PathLike[str] | None = None,
    progress: bool = True,
    retries: int = 0,
    version: str | None = None,
    rerun_failed: bool = False,
    flush_s: float = 5.0,
    timeout: float = 10.0,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Evaluate ``fn(**point)`` at every point of ``axes``, in parallel, into a labelled dataset.

    Args:
        fn: a picklable callable (module-level function or ``functools.partial`` of one) taking the axis
            names as keyword arguments and returning a mapping of output names to numbers, strings, ``None``
            (missing: NaN) or small numeric arrays (the same shape at every point). Optional keys ``status``
            (one of the package's statuses) and ``message`` set the point's ``status`` and ``error``.
        axes: axis name -> non-empty list of numbers, strings or booleans.
        mode: ``"product"`` (cartesian product, one dimension per axis) or ``"zip"`` (axes of equal
            length taken together, one dimension ``point`` with the axes as coordinates).
        executor: ``None`` (a process pool with one worker per core), a worker count, ``"serial"`` (in this
            process), a ``concurrent.futures.Executor``, a Dask ``distributed.Client`` or a scheduler
            address (``"tcp://host:8786"``). Executors and clients passed in are not shut down.
        store: zarr folder written as points finish; ``None``: memory only. Rerunning the same sweep on
            the same store resumes it.
        progress: show a progress bar (points done, rate, ETA).
        retries: extra attempts for a point whose ``fn`` raises (and, on Dask, whose worker dies).
        version: the function's version recorded in the store (default: :func:`function_version`).
        rerun_failed: on resume, run the failed points again too.
        flush_s: seconds between updates of the store's arrays from its per-point journal.
        timeout: seconds to wait for a Dask scheduler given by address.
        attrs: extra dataset attributes (JSON-friendly values).

    Returns:
        ``xarray.Dataset``: dims the axis names (``"point"`` in zip mode), one variable per output (array
        outputs get extra dims ``<name>_dim0, ...``), ``status``, ``error``, ``wall_time_s``, ``cpu_time_s``,
        ``attempts``;
        attributes ``sweep_fn``, ``sweep_version``, ``sweep_mode``, ``sweep_axes`` (JSON) and
        ``sweep_stats`` (JSON: ``n_points``, ``n_run``, ``n_failed``, ``wall_time_s``, ``executor``).

    Raises:
        ValueError: empty or malformed axes, axis names ``fn`` does not accept, a store written by a
            different sweep or not a sweep store.
        TypeError: non-picklable ``fn`` for a process or Dask executor, a bad executor.
        ConnectionError: no Dask scheduler at the given address.
    """
    start = time.perf_counter()
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    values = _check_axes(axes, mode)
    names = tuple(values)
    _check_signature(fn, names)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an integer >= 0, got {retries!r}")
    if not (isinstance(flush_s, (int, float)) and flush_s >= 0):
        raise ValueError(f"flush_s must be a number >= 0, got {flush_s!r}")
    _check_picklable(fn, executor)

    if mode == "product":
        dims = names
        shape = tuple(len(v) for v in values.values())
        coords: dict[str, Any] = {n: ((n,), _coord(v)) for n, v in values.items()}
    else:
        dims, shape = ("point",), (len(next(iter(values.values()))),)
        coords = {n: (("point",), _coord(v)) for n, v in values.items()}
    identity = {  # checked in this order on resume: the first difference is the one reported
        "sweep_axes": json.dumps(values),
        "sweep_mode": mode,
        "sweep_fn": _fn_name(fn),
        "sweep_version": str(version) if version is not None else function_version(fn),
    }
    ds_attrs = {**identity, **dict(attrs or {})}
    table = Table(dims, shape, coords)
    st = Store(store, identity) if store is not None else None
    if st is not None:
        if st.check():
            table.load(open_stored(st.path))
            st.replay(table)
        else:
            st.create(table, ds_attrs)

    def point(flat: int) -> dict[str, Any]:
        if mode == "zip":
            return {n: v[flat] for n, v in values.items()}
        idx = np.unravel_index(flat, shape)
        return {n: values[n][int(i)] for n, i in zip(names, idx, strict=True)}

    todo_status = {PENDING, "failed"} if rerun_failed else {PENDING}
    todo = [i for i, s in enumerate(table.status.reshape(-1)) if s in todo_status]
    ex, owned, description = (None, False, "serial") if not todo else _make_executor(executor, timeout)

    from tqdm import tqdm  # plain text bar: tqdm.auto warns in notebooks without ipywidgets

    bar = tqdm(
        total=table.size, initial=table.size - len(todo), unit="pt", desc="sweep", disable=not progress
    )
    last_flush = time.perf_counter()
    n_failed = 0

    def finish(flat: int, result: dict[str, Any]) -> None:
        nonlocal last_flush, n_failed
        table.record(flat, result)
        n_failed += table.status.reshape(-1)[flat] == "failed"
        if st is not None:
            st.journal(flat, result)
            if time.perf_counter() - last_flush >= flush_s:
                st.flush(table)
                last_flush = time.perf_counter()
        bar.update(1)
        if n_failed:
            bar.set_postfix(failed=n_failed, refresh=False)

    work = _Work(fn, point, retries, names, finish)
    try:
        if ex is None:
            work.run_serial(todo)
        elif _is_client(ex):
            _run_dask(ex, work, todo)
        else:
            pool = [ex]  # an owned pool that breaks is replaced in place
            try:
                _run_executor(pool, owned, work, todo)
            finally:
                ex = pool[0]
    finally:
        bar.close()
        if st is not None:
            st.flush(table)
        if owned and ex is not None:
            if _is_client(ex):
                ex.close()
            else:
                ex.shutdown(wait=True, cancel_futures=True)
    stats = {
        "n_points": table.size,
        "n_run": len(todo),
        "n_failed": int((table.status == "failed").sum()),
        "wall_time_s": time.perf_counter() - start,
        "executor": description,
    }
    return table.dataset({**ds_attrs, "sweep_stats": json.dumps(stats)})


def _coord(values: list[Any]) -> np.ndarray:
    if isinstance(values[0], str):
        return np.array(values, dtype=object)
    return np.asarray(values)
