"""The result of :func:`ufmtheory.analysis.comparison.compare`: :class:`Comparison` (with its text table)
and the per-variant :class:`VariantFit`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ufmtheory._format import finite_or_none as _num
from ufmtheory._format import format_number as _fmt
from ufmtheory.analysis.phases import PHASE_NAMES, Phases
from ufmtheory.analysis.timemap import CURVE_METRICS

__all__ = [
    "Comparison",
    "VariantFit",
]


@dataclass(frozen=True, kw_only=True)
class VariantFit:
    """One variant's comparison with the model.

    Attributes:
        name: the variant's name.
        a, b: its time map ``log t = a + b log step`` (``"same"``: 0, 1; ``"lr"``: ``log lr``, 1).
        map_status: see :data:`~ufmtheory.analysis.timemap.MAP_STATUSES`.
        total_error: sum of its per-metric RMS curve errors (``nan`` when a metric has no overlap).
        errors: ``{which: {metric: rms}}``.
        status: ``"ok"`` or what stands in the way of reading its numbers (vocabulary of the package).
        message: why, in words (e.g. which metric is ``nan``).
        describe: the problem's description (``{}`` for a bare trajectory).
    """

    name: str
    a: float
    b: float
    total_error: float
    errors: dict[str, dict[str, float]]
    map_status: str = "ok"
    status: str = "ok"
    message: str = ""
    describe: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "a": _num(self.a),
            "b": _num(self.b),
            "map_status": self.map_status,
            "total_error": _num(self.total_error),
            "errors": {w: {k: _num(v) for k, v in e.items()} for w, e in self.errors.items()},
            "status": self.status,
            "message": self.message,
            "problem": self.describe,
        }


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """A theory run set against a trained model on a common clock (see the module docstring).

    Attributes:
        clock: ``"same"``, ``"lr"`` or ``"fit"`` (the clock used).
        a, b: the time map ``log t_theory = a + b log step``.
        map_status: ``"ok"`` or why the map explains nothing
            (:data:`~ufmtheory.analysis.timemap.MAP_STATUSES`); then ``predicted`` holds ``None`` everywhere
            and ``status`` is ``"inaccurate"`` / ``"not_applicable"``.
        which: the Grams compared (``"H"``, ``"W"``).
        fit_rms: RMS semantic-strength misfit of the map (all positive steps, ends clamped).
        errors: ``{which: {metric: rms}}`` for the metrics in
            :data:`~ufmtheory.analysis.timemap.CURVE_METRICS` (``nan``: no overlap).
        total_error: sum of all entries of ``errors``.
        n_overlap: snapshots (steps > 0) whose mapped times lie in the theory's saved range.
        predicted: ``{which: {phase: step or None}}``: phase times detected on the theory, mapped to steps.
        measured: ``{which: {phase: step or None}}``: phase times detected on the model.
        theory_phases, model_phases: the :class:`~ufmtheory.analysis.Phases` behind them.
        variants: per-variant fits (empty without ``variants``), in the order given.
        best_variant: the name of the variant with the lowest finite total error (``None`` without).
        status: ``"ok"``, ``"inaccurate"`` (map at a bound / short overlap), ``"not_applicable"``, or the
            status of a run that blew up (``"diverged"``, ``"nonfinite"``, ...).
        message: why, in words.
    """

    clock: str
    a: float
    b: float
    map_status: str
    which: tuple[str, ...]
    fit_rms: float
    errors: dict[str, dict[str, float]]
    total_error: float
    n_overlap: int
    predicted: dict[str, dict[str, float | None]]
    measured: dict[str, dict[str, float | None]]
    theory_phases: dict[str, Phases] = field(repr=False)
    model_phases: dict[str, Phases] = field(repr=False)
    variants: tuple[VariantFit, ...] = ()
    best_variant: str | None = None
    status: str = "ok"
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_time(self, step: Any) -> Any:
        """Theory time of a step (``0 -> 0``)."""
        s = np.asarray(step, dtype=np.float64)
        with np.errstate(divide="ignore"):
            out = np.where(s > 0, np.exp(self.a + self.b * np.log(np.where(s > 0, s, 1.0))), 0.0)
        return float(out) if out.ndim == 0 else out

    def to_step(self, t: Any) -> Any:
        """Step of a theory time (``0 -> 0``)."""
        t = np.asarray(t, dtype=np.float64)
        out = np.where(t > 0, np.exp((np.log(np.where(t > 0, t, 1.0)) - self.a) / self.b), 0.0)
        return float(out) if out.ndim == 0 else out

    @property
    def best(self) -> VariantFit | None:
        """The best-matching :class:`VariantFit` (``None`` without variants)."""
        for v in self.variants:
            if v.name == self.best_variant:
                return v
        return None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly dictionary (floats and ``None``)."""
        return {
            "clock": self.clock,
            "time_map": {
                "a": _num(self.a),
                "b": _num(self.b),
                "form": "log t_theory = a + b log step",
                "map_status": self.map_status,
            },
            "which": list(self.which),
            "fit_rms": _num(self.fit_rms),
            "errors": {w: {k: _num(v) for k, v in e.items()} for w, e in self.errors.items()},
            "total_error": _num(self.total_error),
            "n_overlap": self.n_overlap,
            "predicted_steps": {w: {k: _num(v) for k, v in p.items()} for w, p in self.predicted.items()},
            "measured_steps": {w: {k: _num(v) for k, v in p.items()} for w, p in self.measured.items()},
            "theory_times": {
                w: {k: _num(v) for k, v in p.times.items()} for w, p in self.theory_phases.items()
            },
            "peak_strength": {
                w: {
                    "theory": _num(self.theory_phases[w].peak_strength),
                    "model": _num(p.peak_strength),
                }
                for w, p in self.model_phases.items()
            },
            "variants": [v.as_dict() for v in self.variants],
            "best_variant": self.best_variant,
            "status": self.status,
            "message": self.message,
        }

    def table(self) -> str:
        """Text tables: the clock, phase steps (predicted vs measured) and curve errors."""
        if self.clock == "same":
            head = "clock: same optimiser, same steps (no time parameter)"
        elif self.clock == "lr":
            head = f"clock: gradient-flow time t = lr * step, lr = {math.exp(self.a):.4g}"
        else:
            head = f"clock: fitted time map log t = {self.a:.4g} + {self.b:.4g} log step"
            head += f"   (fit RMS {self.fit_rms:.3g})"
        lines = [head]
        if self.map_status != "ok":
            lines.append(f"map status: {self.map_status}: no mapped time is reported ({self.message})")
        head = f"{'phase (steps)':<14}" + "".join(f" {w + ' pred':>10} {w + ' meas':>10}" for w in self.which)
        lines.append(head)
        for name in PHASE_NAMES:
            cells = "".join(
                f" {_fmt(self.predicted[w][name]):>10} {_fmt(self.measured[w][name]):>10}" for w in self.which
            )
            lines.append(f"{name:<14}{cells}")
        lines.append(f"{'curve error (RMS)':<18}" + "".join(f" {w:>10}" for w in self.which))
        for metric in CURVE_METRICS:
            lines.append(
                f"{metric:<18}" + "".join(f" {_fmt(self.errors[w][metric]):>10}" for w in self.which)
            )
        lines.append(f"{'total':<18} {_fmt(self.total_error):>10}   ({self.n_overlap} snapshots overlap)")
        if self.variants:
            lines.append(f"{'variant':<40} {'a':>8} {'b':>8} {'map':>14} {'total err':>10}")
            for v in self.variants:
                mark = " *" if v.name == self.best_variant else ""
                note = f"  ({v.message})" if v.message and not v.ok else ""
                lines.append(
                    f"{v.name:<40} {_fmt(v.a):>8} {_fmt(v.b):>8} {v.map_status:>14} "
                    f"{_fmt(v.total_error):>10}{mark}{note}"
                )
        if not self.ok:
            lines.append(f"status: {self.status}: {self.message}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()
