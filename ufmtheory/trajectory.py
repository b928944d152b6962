"""Gram-matrix trajectories: the one result type shared by theory solvers and trained models.

A :class:`Trajectory` holds, on a time grid ``ts``, the context Gram ``HᵀH`` and the label Gram ``W Wᵀ``
(plus the loss), the solver's status and statistics, and the unit of time (``"gf"``: gradient-flow time,
``t = lr × iterations``; ``"step"``: optimiser steps). Metrics, phase detection, plots and comparisons take
any Trajectory, whatever produced it.

Grams are stored densely (``(T, K, K)`` arrays) or, for exact reduced flows on large designs, as
:class:`StructuredGrams`: coefficients ``c_S(t)`` on the orthogonal projectors ``P_S`` of an association
scheme (``G(t) = Σ_S c_S(t) P_S``), so that a 1000×1000 factorial design (K = 10⁶) needs ``T × 4`` numbers
instead of ``T × 10¹²``. A :class:`StructuredGrams` behaves like a read-only ``(T, K, K)`` array: indexing
one time materialises that K×K matrix, a slice stays structured, and ``np.asarray`` materialises the whole
stack, each refused with :class:`GramTooLargeError` above :attr:`StructuredGrams.max_bytes`.
"""

from __future__ import annotations

import io
import json
import os
import uuid
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ufmtheory._format import to_jsonable
from ufmtheory._io import atomic_write_bytes, check_output_file
from ufmtheory._results import ResultMixin, split_legacy_status
from ufmtheory.algebra.schemes import scheme_from_description
from ufmtheory.algebra.structured import StructuredGrams, is_structured
from ufmtheory.metrics import trajectory_metrics

__all__ = ["Trajectory", "log_grid"]

_FORMAT_DENSE = "ufmtheory.Trajectory/1"
_FORMAT_STRUCTURED = "ufmtheory.Trajectory/2"  # /1 plus structured Grams (coefficients + scheme)


def log_grid(t1: float, n: int = 200, t_min: float | None = None) -> np.ndarray:
    """Default saving grid: ``0`` followed by ``n`` log-spaced times up to ``t1``.

    Phases span many decades of time, so a log grid resolves the early growth and the late collapse alike.
    ``t_min`` defaults to ``min(1e-2, t1 * 1e-3)``.

    Example:
        >>> g = log_grid(1e4, n=7)
        >>> g.tolist()[:2], g.tolist()[-1], g.size
        ([0.0, 0.01], 10000.0, 8)
    """
    if not np.isfinite(t1) or t1 <= 0:
        raise ValueError(f"t1 must be finite and > 0, got {t1}")
    if int(n) < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    t_min = min(1e-2, t1 * 1e-3) if t_min is None else float(t_min)
    if not 0 < t_min < t1:
        raise ValueError(f"t_min must satisfy 0 < t_min < t1, got t_min={t_min}, t1={t1}")
    grid = np.logspace(np.log10(t_min), np.log10(t1), int(n))
    grid[0], grid[-1] = t_min, t1  # exact endpoints (logspace rounds: t1 could come out as t1 + 1 ulp)
    return np.concatenate([[0.0], grid])


@dataclass(frozen=True, eq=False, kw_only=True)
class Trajectory(ResultMixin):
    """Gram matrices along a run.

    Attributes:
        ts: (T,) increasing times (``time_unit``).
        gram_H: (T, m, m) context Grams ``HᵀH``: a dense array, or :class:`StructuredGrams` (coefficients on
            an association scheme's projectors, materialised on request; reduced flows on large designs).
        gram_W: (T, V, V) label Grams ``W Wᵀ`` (dense or :class:`StructuredGrams`).
        loss: (T,) objective values.
        status: one word of :data:`ufmtheory._results.STATUSES` (``"ok"``, ``"max_evals"``, ``"nonfinite"``,
            ``"failed"``, ...); when not ok, ``ts`` ends where the run stopped.
        message: why it stopped, for people (default: the status's fixed message).
        stats: solver statistics; always ``n_evals`` and ``wall_time_s`` (``None`` when unknown), plus
            method-specific entries (steps, tolerances, ...).
        time_unit: ``"gf"`` (gradient-flow time) or ``"step"`` (optimiser steps).
        method: the solver used (``"RK45"``, ``"gd"``, ...).
        meta: description of the problem / run (JSON-friendly).
        params: optional ``{name: (T, ...)}`` parameter snapshots (``save_params=True``).
        dense: optional continuous output of the solver, ``dense(t) -> (gram_H, gram_W, loss)`` for ``t`` in
            ``[ts[0], ts[-1]]`` (scheme coefficient vectors for structured Grams), accurate to the solver's
            tolerance; :meth:`at`, :meth:`coefficients_at` and :meth:`loss_at` use it when present. It lives
            in memory only (``gradient_flow(..., dense_output=True)``): :meth:`save` does not store it, and a
            loaded trajectory interpolates its saved grid; pickling (e.g. returning a run from a worker
            process) drops it likewise (it is a closure over the solver's steps).
    """

    ts: np.ndarray
    gram_H: np.ndarray | StructuredGrams
    gram_W: np.ndarray | StructuredGrams
    loss: np.ndarray
    status: str = "ok"
    message: str = ""
    stats: dict[str, Any] = field(default_factory=dict)
    time_unit: str = "gf"
    method: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    params: dict[str, np.ndarray] | None = None
    dense: Callable[[float], tuple[Any, Any, float]] | None = field(default=None, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        # The dense output is a closure (not picklable) and lives in memory only, as with save().
        return {**self.__dict__, "dense": None}

    def __post_init__(self) -> None:
        ts = np.asarray(self.ts, dtype=np.float64)
        gH = self.gram_H if is_structured(self.gram_H) else np.asarray(self.gram_H, dtype=np.float64)
        gW = self.gram_W if is_structured(self.gram_W) else np.asarray(self.gram_W, dtype=np.float64)
        loss = np.asarray(self.loss, dtype=np.float64)
        T = ts.shape[0] if ts.ndim == 1 else -1
        if ts.ndim != 1 or T < 1:
            raise ValueError(f"ts must be a non-empty 1-D array, got shape {ts.shape}")
        if np.any(np.diff(ts) <= 0):
            raise ValueError("ts must be strictly increasing")
        if gH.ndim != 3 or gH.shape[0] != T or gH.shape[1] != gH.shape[2]:
            raise ValueError(f"gram_H must have shape (T, m, m) with T = {T}, got {gH.shape}")
        if gW.ndim != 3 or gW.shape[0] != T or gW.shape[1] != gW.shape[2]:
            raise ValueError(f"gram_W must have shape (T, V, V) with T = {T}, got {gW.shape}")
        if loss.shape != (T,):
            raise ValueError(f"loss must have shape ({T},), got {loss.shape}")
        if self.time_unit not in ("gf", "step"):
            raise ValueError(f"time_unit must be 'gf' or 'step', got {self.time_unit!r}")
        if self.dense is not None and not callable(self.dense):
            raise TypeError(
                f"dense must be None or a callable t -> Grams and loss, got {type(self.dense).__name__}"
            )
        for name, arr in (("ts", ts), ("gram_H", gH), ("gram_W", gW), ("loss", loss)):
            object.__setattr__(self, name, arr)
        self._check_result()

    # -- access --------------------------------------------------------------------------------------
    @property
    def structured(self) -> bool:
        """True when the Grams are :class:`StructuredGrams` (coefficients on a scheme) rather than arrays."""
        return is_structured(self.gram_H) or is_structured(self.gram_W)

    @property
    def scheme(self) -> Any:
        """The association scheme of structured Grams (that of ``gram_H``), or ``None`` for dense Grams."""
        for G in (self.gram_H, self.gram_W):
            if isinstance(G, StructuredGrams):
                return G.scheme
        return None

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def _stencil(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Indices and weights interpolating at ``t``: cubic (4-point Lagrange) in ``log t``.

        Phases span decades, so the saved grid is uniform in log-time and the Grams are smooth there; a cubic
        through the four nearest saved times is accurate to O(h⁴) in the log-spacing h (on the default
        201-point grid ~1e-5 relative in the fastest part of an ETF-mode flow, against 1e-3 for linear
        interpolation). Exact at saved times; linear on an interval that starts at ``t = 0`` or where fewer
        than four positive times exist.
        """
        ts = self.ts
        if not (np.isfinite(t) and ts[0] <= t <= ts[-1]):
            raise ValueError(f"t must lie in [{ts[0]}, {ts[-1]}], got {t}")
        hi = int(np.searchsorted(ts, t, side="left"))
        if ts[hi] == t:
            return np.array([hi]), np.array([1.0])
        lo = hi - 1
        a, b = ts[lo], ts[hi]
        positive = np.flatnonzero(ts > 0)
        if a <= 0 or positive.size < 4:
            w = (np.log(t) - np.log(a)) / (np.log(b) - np.log(a)) if a > 0 else (t - a) / (b - a)
            return np.array([lo, hi]), np.array([1.0 - w, w])
        first = int(positive[0])
        start = min(max(lo - 1, first), ts.size - 4)
        idx = np.arange(start, start + 4)
        s, x = np.log(ts[idx]), np.log(t)
        weights = np.array(
            [np.prod([(x - s[k]) / (s[m] - s[k]) for k in range(4) if k != m]) for m in range(4)]
        )
        return idx, weights

    def _dense_at(self, t: float) -> tuple[Any, Any, float] | None:
        """The solver's continuous output at ``t`` (``None`` without one), after the range check."""
        if self.dense is None:
            return None
        if not (np.isfinite(t) and self.ts[0] <= t <= self.ts[-1]):
            raise ValueError(f"t must lie in [{self.ts[0]}, {self.ts[-1]}], got {t}")
        return self.dense(t)

    def at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """``(gram_H, gram_W)`` at time ``t``.

        Accuracy: with the solver's continuous output (:attr:`dense`), that of the solver (its ``rtol``);
        otherwise cubic interpolation in log-time between saved times, O(h⁴) in the grid's log-spacing h
        (see :meth:`_stencil`; on the default 201-point grid of an ETF-mode flow ≤ 1.6e-4 relative
        anywhere, against 3e-10 for the solver at rtol 1e-11): save more points (``saveat``) or keep the
        dense output where more is needed. Always dense arrays: structured Grams are materialised (refused
        with :class:`GramTooLargeError` above :attr:`StructuredGrams.max_bytes`; use :meth:`coefficients_at`).
        """
        exact = self._dense_at(float(t))
        if exact is not None:
            gH, gW = (
                G.materialise_coefficients(np.asarray(c)) if isinstance(G, StructuredGrams) else np.asarray(c)
                for G, c in ((self.gram_H, exact[0]), (self.gram_W, exact[1]))
            )
            return gH, gW
        idx, w = self._stencil(float(t))
        out = []
        for G in (self.gram_H, self.gram_W):
            if isinstance(G, StructuredGrams):
                out.append(G.materialise_coefficients(np.tensordot(w, G.coefficients[idx], axes=1)))
            else:
                out.append(np.tensordot(w, G[idx], axes=1))
        return out[0], out[1]

    def coefficients_at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """``(c_H, c_W)``: (n_S,) scheme coefficients of ``gram_H`` and ``gram_W`` at time ``t``, interpolated
        like :meth:`at` (structured Grams only).

        Raises:
            ValueError: when a Gram is stored densely (it has no scheme).
        """
        coefficients = []
        for name, G in (("gram_H", self.gram_H), ("gram_W", self.gram_W)):
            if not isinstance(G, StructuredGrams):
                raise ValueError(f"{name} is a dense array, not StructuredGrams: use .at(t)")
            coefficients.append(G.coefficients)
        exact = self._dense_at(float(t))
        if exact is not None:
            return np.asarray(exact[0]), np.asarray(exact[1])
        idx, w = self._stencil(float(t))
        return np.tensordot(w, coefficients[0][idx], axes=1), np.tensordot(w, coefficients[1][idx], axes=1)

    def loss_at(self, t: float) -> float:
        """The loss at time ``t``, from the solver's continuous output or interpolated like :meth:`at`."""
        exact = self._dense_at(float(t))
        if exact is not None:
            return float(exact[2])
        idx, w = self._stencil(float(t))
        return float(w @ self.loss[idx])

    def final(self) -> tuple[np.ndarray, np.ndarray]:
        """``(gram_H, gram_W)`` at the last saved time (materialised when structured)."""
        return self.gram_H[-1], self.gram_W[-1]

    def metrics(self, design: Any = None, which: str = "H") -> dict[str, np.ndarray]:
        """Standard metric curves (see :func:`ufmtheory.metrics.gram_metrics`) along the trajectory.

        Args:
            design: the design (for attribute-based semantic metrics); without it only ETF distance and
                effective rank are computed. Structured trajectories also accept their association scheme
                (``traj.scheme``), whose attributes are those of the design it came from (K = 10⁶ designs
                cannot be built) and their metrics are computed from the coefficients.
            which: ``"H"`` (context Grams) or ``"W"`` (label Grams, restricted to used labels).
        """

        return trajectory_metrics(self, design, which=which)

    # -- persistence ---------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write ``PATH.npz`` (arrays) and ``PATH.json`` (status, stats, metadata), each atomically.

        Structured Grams are saved as their coefficients (``gram_H_coeffs``, ``gram_W_coeffs``) with the
        scheme's description in the JSON (format ``ufmtheory.Trajectory/2``); dense trajectories keep format
        ``ufmtheory.Trajectory/1``. Returns the two paths. ``path`` may be given with or without the
        ``.npz`` suffix.
        """
        base = Path(path)
        if base.suffix in (".npz", ".json"):
            base = base.with_suffix("")
        # Any values: numpy's stub reads a ``**`` dict of arrays as if it could hold ``allow_pickle``.
        arrays: dict[str, Any] = {"ts": self.ts, "loss": self.loss}
        storage: dict[str, Any] = {}
        for name, G in (("gram_H", self.gram_H), ("gram_W", self.gram_W)):
            if isinstance(G, StructuredGrams):
                arrays[f"{name}_coeffs"] = G.coefficients
                storage[name] = {"storage": "structured", "scheme": G.describe()}
            else:
                arrays[name] = G
        if self.params is not None:
            arrays.update({f"param_{k}": v for k, v in self.params.items()})
        # One token in both files: load() refuses arrays and metadata from different saves (a save killed
        # between the two renames leaves new arrays beside old metadata).
        save_id = uuid.uuid4().hex
        arrays["save_id"] = np.array(save_id)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        npz = base.with_name(base.name + ".npz")
        js = base.with_name(base.name + ".json")
        for target in (npz, js):  # refuse devices and folders before writing either file
            check_output_file(target, "path")
        info = {
            "format": _FORMAT_STRUCTURED if storage else _FORMAT_DENSE,
            "save_id": save_id,
            "status": self.status,
            "message": self.message,
            "stats": to_jsonable(self.stats),
            "time_unit": self.time_unit,
            "method": self.method,
            "meta": to_jsonable(self.meta),
        }
        if storage:
            info["grams"] = to_jsonable(storage)
        atomic_write_bytes(npz, buf.getvalue())
        atomic_write_bytes(js, json.dumps(info, indent=2).encode())
        return npz, js

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Trajectory:
        """Read a trajectory written by :meth:`save` (structured Grams come back structured).

        Raises:
            FileNotFoundError: one of ``PATH.npz`` / ``PATH.json`` is missing.
            ValueError: the files are corrupt, truncated, not a ufmtheory trajectory, come from two
                different saves, or describe a scheme too large to build; the message names the file.
        """
        base = Path(path)
        if base.suffix in (".npz", ".json"):
            base = base.with_suffix("")
        npz = base.with_name(base.name + ".npz")
        js = base.with_name(base.name + ".json")
        if not npz.exists() or not js.exists():
            raise FileNotFoundError(f"need both {npz} and {js}")
        try:
            info = json.loads(js.read_text())
            if not isinstance(info, dict) or info.get("format") not in (_FORMAT_DENSE, _FORMAT_STRUCTURED):
                fmt = info.get("format") if isinstance(info, dict) else type(info).__name__
                raise ValueError(f"not a ufmtheory trajectory (format {fmt!r})")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
            raise ValueError(f"{js}: cannot read trajectory metadata: {exc}") from None
        try:
            # our own handle: np.load leaves its file open when the archive is corrupt
            with open(npz, "rb") as fh, np.load(fh, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error, KeyError) as exc:
            raise ValueError(f"{npz}: cannot read trajectory arrays: {type(exc).__name__}: {exc}") from None
        saved_id = str(arrays.pop("save_id")) if "save_id" in arrays else None
        if saved_id != info.get("save_id"):
            raise ValueError(
                f"{npz} and {js} come from different saves (an interrupted save?); save the trajectory again"
            )
        try:
            return cls._from_saved(info, arrays)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, MemoryError) as exc:
            raise ValueError(f"{base}: corrupt trajectory ({type(exc).__name__}: {exc})") from None

    @classmethod
    def _from_saved(cls, info: dict[str, Any], arrays: dict[str, np.ndarray]) -> Trajectory:
        storage = info.get("grams", {})
        if not isinstance(storage, dict):
            raise TypeError("'grams' must be a mapping")
        grams: dict[str, Any] = {}
        for name in ("gram_H", "gram_W"):
            spec = storage.get(name)
            if spec is not None and spec.get("storage") == "structured":
                scheme = scheme_from_description(spec["scheme"])  # size-checked before any array is used
                grams[name] = StructuredGrams(arrays[f"{name}_coeffs"], scheme)
            else:
                grams[name] = arrays[name]
        params = {k[len("param_") :]: v for k, v in arrays.items() if k.startswith("param_")} or None
        for key, typ in (
            ("status", str),
            ("stats", dict),
            ("time_unit", str),
            ("method", str),
            ("meta", dict),
        ):
            if not isinstance(info.get(key), typ):
                raise TypeError(f"{key!r} must be a {typ.__name__}, got {type(info.get(key)).__name__}")
        return cls(
            ts=arrays["ts"],
            gram_H=grams["gram_H"],
            gram_W=grams["gram_W"],
            loss=arrays["loss"],
            status=split_legacy_status(info["status"])[0],
            message=info.get("message") or split_legacy_status(info["status"])[1],
            stats=info["stats"],
            time_unit=info["time_unit"],
            method=info["method"],
            meta=info["meta"],
            params=params,
        )

    def __repr__(self) -> str:
        extra = ""
        if self.structured:
            sch = self.scheme
            extra = f", structured(n_S={sch.n_S}, {sch.describe()})"
        return (
            f"Trajectory(T={len(self)}, t=[{self.ts[0]:.3g}, {self.ts[-1]:.3g}] {self.time_unit}, "
            f"m={self.gram_H.shape[1]}, V={self.gram_W.shape[1]}, method={self.method!r}, "
            f"status={self.status!r}{extra})"
        )
