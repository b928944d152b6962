"""The in-memory table and the on-disk store of a sweep (:func:`ufmtheory.experiments.sweep.sweep`).

Store layout (a zarr group, readable with ``xarray.open_zarr``):

* one zarr array per axis (coordinate), per output and for ``status``, ``error``, ``wall_time_s``,
  ``cpu_time_s`` and ``attempts``, each a single chunk (sweeps are tables of small values) written
  whole, atomically (zarr's local store writes a temporary file and renames it);
* ``_journal/<flat index>.json``: one small file per finished point, written (temporary file + rename) the
  moment the point finishes, so a killed sweep loses nothing. The arrays are brought up to date from the
  journal every ``flush_s`` seconds and at the end (outputs first, ``status`` last), after which the journal
  files they hold are deleted. :func:`load_sweep` and a resumed sweep read both.
* the sweep's identity in the group attributes (``sweep_fn``, ``sweep_version``, ``sweep_mode``,
  ``sweep_axes``): a resumed sweep with other axes or another function version is refused.

xarray and zarr are imported on first use (``import ufmtheory`` stays light).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ufmtheory._results import STATUSES

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

__all__ = [
    "STATUSES",
    "PENDING",
    "RESERVED",
    "Table",
    "Store",
    "load_sweep",
    "open_stored",
    "normalise_output",
]


PENDING = "pending"
"""Status of a point that has not run (yet)."""

RESERVED = ("status", "error", "wall_time_s", "cpu_time_s", "attempts", "point")
"""Variable names the sweep itself uses (``fn`` may return ``status`` and ``message``, see ``sweep``)."""

FORMAT = 1
_JOURNAL = "_journal"


# -- outputs -----------------------------------------------------------------------------------------------
def _value(name: str, v: Any) -> float | str | np.ndarray:
    """One output value as a float, a str or a float64 array (ndim >= 1)."""
    if v is None:
        return math.nan
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, int, float, np.bool_, np.integer, np.floating)):
        return float(v)
    arr = np.asarray(v)
    if arr.dtype.kind in "biuf" and arr.ndim >= 1:
        return arr.astype(np.float64)
    if arr.dtype.kind in "biuf" and arr.ndim == 0:
        return float(arr)
    raise TypeError(
        f"output {name!r}: values must be numbers, strings, None or numeric arrays, got {type(v).__name__}"
    )


def normalise_output(out: Any, axis_names: Sequence[str]) -> tuple[dict[str, Any], str, str]:
    """``(values, status, message)`` from what ``fn`` returned (a mapping of names to values).

    ``status`` (one of :data:`STATUSES`) and ``message`` keys, when present, become the point's status and
    error text; every other key is an output variable.
    """
    if not isinstance(out, Mapping):
        raise TypeError(f"fn must return a mapping of output names to values, got {type(out).__name__}")
    values: dict[str, Any] = {}
    status, message = "ok", ""
    for key, v in out.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise TypeError(f"output names must be identifier strings, got {key!r}")
        if key == "status":
            if v not in STATUSES:
                raise ValueError(f"returned status must be one of {list(STATUSES)}, got {v!r}")
            status = str(v)
        elif key == "message":
            message = "" if v is None else str(v)
        elif key in RESERVED or key in axis_names or key.endswith(tuple(f"_dim{i}" for i in range(8))):
            raise ValueError(f"output name {key!r} is reserved (axes, {list(RESERVED)}, *_dimN)")
        else:
            values[key] = _value(key, v)
    return values, status, message


# -- the in-memory table ----------------------------------------------------------------------------------
class Table:
    """Every point's outputs, status, error, wall time and attempts, as numpy arrays of the sweep's shape.

    Args:
        dims: the sweep dimensions (axis names, or ``("point",)`` in zip mode).
        shape: their lengths.
        coords: coordinate name -> (dims, values).
    """

    def __init__(self, dims: tuple[str, ...], shape: tuple[int, ...], coords: dict[str, Any]) -> None:
        self.dims, self.shape, self.coords = dims, shape, coords
        self.status = np.full(shape, PENDING, dtype=object)
        self.error = np.full(shape, "", dtype=object)
        self.wall_time_s = np.full(shape, math.nan)
        self.cpu_time_s = np.full(shape, math.nan)
        self.attempts = np.zeros(shape, dtype=np.int64)
        self.outputs: dict[str, np.ndarray] = {}

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def _slot(self, name: str, v: Any) -> np.ndarray:
        arr = self.outputs.get(name)
        if arr is None:
            if isinstance(v, str):
                arr = np.full(self.shape, "", dtype=object)
            else:
                tail = np.shape(v)
                arr = np.full(self.shape + tail, math.nan)
            self.outputs[name] = arr
        return arr

    def check(self, values: dict[str, Any]) -> str:
        """Why ``values`` do not fit the table ("" when they do)."""
        for name, v in values.items():
            arr = self.outputs.get(name)
            if arr is None:
                continue
            if (arr.dtype == object) != isinstance(v, str):
                return f"output {name!r} changed type between points (string vs number)"
            if arr.dtype != object and tuple(arr.shape[len(self.shape) :]) != np.shape(v):
                return (
                    f"output {name!r} has shape {np.shape(v)}, earlier points {arr.shape[len(self.shape) :]}"
                )
        return ""

    def record(self, flat: int, result: dict[str, Any]) -> None:
        """Store one point's result (as returned by the worker wrapper or read from the journal)."""
        idx = np.unravel_index(flat, self.shape)
        values, status, error = result["values"], result["status"], result["error"]
        mismatch = self.check(values)
        if mismatch:
            values, status, error = {}, "failed", mismatch
        for name, v in values.items():
            self._slot(name, v)[idx] = v
        self.status[idx] = status
        self.error[idx] = error
        self.wall_time_s[idx] = result.get("wall_time_s", math.nan)
        self.cpu_time_s[idx] = result.get("cpu_time_s", math.nan)
        self.attempts[idx] = result.get("attempts", 0)

    def variables(self) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
        """Name -> (dims, array) of every variable (outputs, then the sweep's own)."""
        out: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
        for name, arr in self.outputs.items():
            tail = tuple(f"{name}_dim{i}" for i in range(arr.ndim - len(self.shape)))
            out[name] = (self.dims + tail, arr)
        out["status"] = (self.dims, self.status)
        out["error"] = (self.dims, self.error)
        out["wall_time_s"] = (self.dims, self.wall_time_s)
        out["cpu_time_s"] = (self.dims, self.cpu_time_s)
        out["attempts"] = (self.dims, self.attempts)
        return out

    def dataset(self, attrs: dict[str, Any], names: Sequence[str] | None = None) -> xr.Dataset:
        import xarray as xr

        variables = self.variables()
        if names is not None:
            variables = {k: variables[k] for k in names}
        return xr.Dataset(
            {k: (d, a.copy()) for k, (d, a) in variables.items()}, coords=dict(self.coords), attrs=dict(attrs)
        )

    def load(self, ds: xr.Dataset) -> None:
        """Fill the table from a stored dataset (same dims and shape)."""
        for name, var in ds.data_vars.items():
            values = np.asarray(var.values)
            if values.dtype.kind in "OUT" or str(values.dtype).startswith("StringDType"):
                values = values.astype(object)
            if name in ("status", "error"):
                getattr(self, name)[...] = values
            elif name in ("wall_time_s", "cpu_time_s"):
                getattr(self, name)[...] = values
            elif name == "attempts":
                self.attempts[...] = values
            else:
                self.outputs[str(name)] = values.astype(np.float64) if values.dtype != object else values


# -- the store ---------------------------------------------------------------------------------------------
def _write_small(path: Path, data: bytes) -> None:
    # Temporary file + rename: a reader (or a resumed sweep) sees the whole record or none. No fsync: the
    # guarantee is against a killed process, not a power cut, and a per-point fsync costs milliseconds.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _jsonable(v: Any) -> Any:
    return v.tolist() if isinstance(v, np.ndarray) else v


def _read_attrs(path: Path) -> dict[str, Any] | None:
    """The group attributes of a zarr v3 store (``None``: not a zarr group)."""
    meta = path / "zarr.json"
    if not meta.is_file():
        return None
    try:
        return dict(json.loads(meta.read_text()).get("attributes", {}))
    except (OSError, ValueError):
        return None


class Store:
    """A sweep's zarr store: journal writes per point, periodic flushes of whole arrays.

    Args:
        path: the store folder (created when missing).
        identity: ``sweep_fn``, ``sweep_version``, ``sweep_mode``, ``sweep_axes`` (strings).
    """

    def __init__(self, path: str | os.PathLike[str], identity: dict[str, str]) -> None:
        self.path = Path(path)
        self.identity = identity
        self.journal_dir = self.path / _JOURNAL
        self._arrays: dict[str, Any] = {}
        self._group: Any = None
        self._journaled: list[Path] = []
        self.attrs: dict[str, Any] = {}  # the group attributes (xarray's append mode rewrites them)
        self.stored: set[str] = set()  # variables that have arrays in the store

    # identity -------------------------------------------------------------------------------------------
    def check(self) -> bool:
        """True when the store exists (and is this sweep's); False when it is to be created.

        Raises:
            ValueError: the path exists and is not a sweep store, or holds a different sweep.
        """
        if not self.path.exists():
            if self.path.parent.exists() and not os.access(self.path.parent, os.W_OK | os.X_OK):
                raise ValueError(f"store: folder {str(self.path.parent)!r} is not writable")
            return False
        attrs = _read_attrs(self.path) if self.path.is_dir() else None
        if attrs is None or "sweep_format" not in attrs:
            raise ValueError(
                f"store {str(self.path)!r} exists and is not a sweep store (no zarr group with sweep"
                " attributes); choose another path"
            )
        self.attrs = attrs
        self.stored = _stored_names(self.path)
        for key, mine in self.identity.items():
            theirs = attrs.get(key)
            if theirs != mine:
                what = {"sweep_axes": "axes", "sweep_version": "function version", "sweep_fn": "function"}
                raise ValueError(
                    f"store {str(self.path)!r} was written by a different sweep: {what.get(key, key)}"
                    f" {_short(theirs)} there, {_short(mine)} here. Use another store, delete this one, or"
                    " rerun with the same function, version and axes to resume it"
                )
        return True

    # writing --------------------------------------------------------------------------------------------
    def create(self, table: Table, attrs: dict[str, Any]) -> None:
        """Write the empty store (coordinates and the sweep's own variables) atomically (folder rename)."""
        import warnings

        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"))
        try:
            self.attrs = {**attrs, "sweep_format": FORMAT}
            ds = table.dataset(self.attrs)
            with warnings.catch_warnings():  # consolidated metadata is not in the zarr v3 spec (yet)
                warnings.simplefilter("ignore")
                ds.to_zarr(tmp, mode="w", encoding=self._encoding(ds), consolidated=True)
            os.replace(tmp, self.path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.stored = {str(k) for k in ds.data_vars}
        self.journal_dir.mkdir(exist_ok=True)

    @staticmethod
    def _encoding(ds: xr.Dataset) -> dict[str, Any]:
        return {str(k): {"chunks": ds[k].shape} for k in ds.data_vars}

    def journal(self, flat: int, result: dict[str, Any]) -> None:
        """Write one finished point to the journal (the moment it finishes)."""
        rec = {**result, "flat": flat, "values": {k: _jsonable(v) for k, v in result["values"].items()}}
        path = self.journal_dir / f"{flat}.json"
        _write_small(path, json.dumps(rec).encode())
        self._journaled.append(path)

    def replay(self, table: Table) -> int:
        """Apply journal records not yet in the arrays; returns how many."""
        n = 0
        if not self.journal_dir.is_dir():
            return 0
        for path in sorted(self.journal_dir.glob("*.json")):
            try:
                rec = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # cannot happen with rename-writes; a stray file is ignored, the point reruns
            rec["values"] = {k: (np.asarray(v, dtype=np.float64) if isinstance(v, list) else v)
                             for k, v in rec["values"].items()}  # fmt: skip
            table.record(int(rec["flat"]), rec)
            self._journaled.append(path)
            n += 1
        return n

    def flush(self, table: Table) -> None:
        """Write every array whole (outputs first, status last), then drop the journal files it holds."""
        import warnings

        import zarr

        done = list(self._journaled)
        names = [k for k in table.outputs if k not in self.stored]
        if names:
            ds = table.dataset(self.attrs, names=names)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds.to_zarr(self.path, mode="a", encoding=self._encoding(ds), consolidated=True)
            self.stored.update(names)
            self._group = None
        if self._group is None:
            self._group = zarr.open_group(self.path, mode="r+")
            self._arrays = {}
        variables = table.variables()
        order = [k for k in variables if k != "status"] + ["status"]
        for name in order:
            arr = self._arrays.get(name)
            if arr is None:
                arr = self._arrays[name] = self._group[name]
            arr[...] = variables[name][1]
        for path in done:
            path.unlink(missing_ok=True)
        self._journaled = self._journaled[len(done) :]


def _stored_names(path: Path) -> set[str]:
    try:
        meta = json.loads((path / "zarr.json").read_text())
        return set(meta["consolidated_metadata"]["metadata"])
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 200 else s[:197] + "..."


def load_sweep(path: str | os.PathLike[str]) -> xr.Dataset:
    """Read a sweep store into memory, finished points of an interrupted sweep included.

    Points that have not run have ``status == "pending"`` and missing outputs (NaN, ``""``).

    Args:
        path: the store written by :func:`ufmtheory.sweep` (``store=``).

    Raises:
        ValueError: ``path`` is not a sweep store.
    """
    path = Path(path)
    attrs = _read_attrs(path) if path.is_dir() else None
    if attrs is None or "sweep_format" not in attrs:
        raise ValueError(f"path {str(path)!r} is not a sweep store")
    stored = open_stored(path)
    sweep_dims = tuple(str(d) for d in stored["status"].dims)
    coords = {str(k): (v.dims, _plain(v.values)) for k, v in stored.coords.items()}
    table = Table(sweep_dims, tuple(stored["status"].shape), coords)
    table.load(stored)
    Store(path, {}).replay(table)
    attrs = {k: v for k, v in stored.attrs.items() if k != "sweep_format"}
    return table.dataset(attrs)


def open_stored(path: Path) -> xr.Dataset:
    """The store's arrays as a dataset in memory (without the journal)."""
    import warnings

    import xarray as xr

    with warnings.catch_warnings():  # consolidated metadata is not in the zarr v3 spec (yet)
        warnings.simplefilter("ignore")
        return xr.open_zarr(path).load()


def _plain(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in "OT" or str(values.dtype).startswith("StringDType"):
        return values.astype(object)
    return values
