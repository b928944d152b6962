"""Theory vs trained model on a common clock: the same optimiser, ``t = lr·step``, or a fitted time map.

A theory run and a trained model have to be put on one clock before their curves and phase times can be
compared. :func:`compare` offers three clocks (``clock=``):

* ``"same"``: the theory ran the model's own optimiser for the same steps (:func:`ufmtheory.optimize`;
  ``time_unit="step"``). Step ``s`` of the model is step ``s`` of the theory: no time parameter at all. A
  problem given as ``theory`` is run with the model's optimiser settings (``model.meta["config"]``) from
  :func:`ufmtheory.init.normal` (std 0.02, the GPT's init).
* ``"lr"``: the theory is a gradient flow (``time_unit="gf"``) and the model was trained by full-batch
  gradient descent, so step ``s`` is flow time ``t = lr·s`` (GD approaches the flow with first-order error).
  For any other optimiser this clock does not apply: the map status says so and no mapped time is given.
* ``"fit"`` (a fallback): a map affine in log-time, ``log t = a + b log s``, fitted by least squares on the
  semantic-strength curves. The fit is global: every ``(a, b)`` of a grid (``b`` log-spaced over
  ``b_range``, ``a`` over every shift that lets the two runs overlap) is scored, then the best few are
  refined by Nelder-Mead. A slope at a bound of ``b_range`` or too short an overlap means the map explains
  nothing (least squares squeezes the model's run onto one feature of the theory): ``map_status`` says so,
  the comparison's status is ``"inaccurate"`` and no mapped phase time is reported as a number.
* ``"auto"`` (default): ``"same"`` for a theory in steps, or a problem and a model that carries its
  training config; ``"lr"`` for a model trained by plain full-batch GD (SGD without momentum, from its
  ``meta``); ``"fit"`` otherwise.

Misfit of a map (``"fit"``): the mean squared difference between the model's strength at its saved steps
``s_i > 0`` and the theory's strength interpolated (linearly in log t) at the mapped times, summed over
``which``. Mapped times outside the theory's saved range are scored against the nearest end value but at
least at the spread of the model's curve (so that sliding the model off the theory's range never pays); the
reported errors use only the snapshots whose mapped times fall inside it.

After the clock, per-metric curve errors are the RMS differences over those snapshots for the semantic
strength, the ETF distance and the shared-attribute gap, each for H (contexts) and W (labels). Phase times
detected on the theory (:func:`~ufmtheory.analysis.detect_phases`) are mapped to steps and set beside
those detected on the model.

With ``variants`` (modified-UFM problems or their trajectories, e.g. from :func:`variant_grid`) every
variant gets its own clock (its own fitted map for ``"fit"``) and total error (the sum of the per-metric
RMS errors); the best one (lowest finite total) is reported, and a variant whose error is ``nan`` is listed
with the reason.

Example:
    >>> import numpy as np, ufmtheory as ut
    >>> d = ut.designs.factorial((2, 2))
    >>> prob = ut.ModifiedUFM(d, dim=4, lam_W=1e-3, lam_H=1e-3)
    >>> theory = ut.predict_phases(prob, t1=1e4).trajectory
    >>> ts = theory.ts[1:]  # the positive times
    >>> steps = np.exp((np.log(ts) - 1.0) / 0.8)  # a = 1, b = 0.8
    >>> model = ut.Trajectory(ts=steps, gram_H=theory.gram_H[1:], gram_W=theory.gram_W[1:],
    ...                       loss=theory.loss[1:], time_unit="step")
    >>> cmp = compare(theory, model, d, clock="fit")
    >>> round(cmp.a, 3), round(cmp.b, 3), cmp.map_status, bool(cmp.total_error < 1e-3)
    (1.0, 0.8, 'ok', True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ufmtheory._format import finite_or_none as _num
from ufmtheory._format import format_number as _fmt
from ufmtheory._format import to_jsonable
from ufmtheory._results import STATUSES, split_legacy_status
from ufmtheory.analysis.phases import PHASE_NAMES, Phases, detect_phases, predict_phases
from ufmtheory.models import UFM, ModifiedUFM
from ufmtheory.solvers.init import normal as normal_init
from ufmtheory.solvers.optimize import optimize
from ufmtheory.trajectory import Trajectory

__all__ = [
    "Comparison",
    "VariantFit",
    "compare",
    "variant_grid",
    "CURVE_METRICS",
    "CLOCKS",
    "MAP_STATUSES",
    "run_status",
    "same_clock_theory",
]

CURVE_METRICS = ("semantic_strength", "etf_distance", "shared_gap")
"""The metric curves compared after the clock (names of :func:`ufmtheory.metrics.trajectory_metrics`)."""

CLOCKS = ("auto", "same", "lr", "fit")
"""Accepted values of ``compare(..., clock=)``."""

MAP_STATUSES = ("ok", "at_bound", "short_overlap", "extrapolated", "not_applicable", "no_fit")
"""``map_status`` values: ``ok``; ``at_bound`` (the fitted slope sits at a bound of ``b_range``);
``short_overlap`` (too few model snapshots map into the theory's range); ``not_applicable`` (the ``"lr"``
clock for a model not trained by plain GD); ``extrapolated`` (a fitted map puts the theory's peak more than
a decade outside the model's saved steps: the map squeezed the run onto one feature); ``no_fit`` (the misfit
is nowhere finite)."""

# An overlap shorter than this many snapshots, or than this fraction of the model's positive snapshots,
# leaves the map unconstrained: too short to report mapped times.
MIN_OVERLAP = 5
MIN_OVERLAP_FRACTION = 0.25
# A fitted log-slope within this distance of log(b_lo) or log(b_hi) counts as sitting at the bound.
_BOUND_TOL = 0.01


def run_status(traj: Trajectory) -> tuple[str, str]:
    """``(status word, message)`` of a trajectory; a pre-0.2 free-text status is mapped onto the vocabulary
    by :func:`ufmtheory._results.split_legacy_status` (the one home of that mapping)."""
    status = str(traj.status)
    message = str(getattr(traj, "message", "") or traj.stats.get("message", "") or "")
    if status in STATUSES:
        return status, message or status
    return split_legacy_status(status)


@dataclass(frozen=True, kw_only=True)
class VariantFit:
    """One variant's comparison with the model.

    Attributes:
        name: the variant's name.
        a, b: its time map ``log t = a + b log step`` (``"same"``: 0, 1; ``"lr"``: ``log lr``, 1).
        map_status: see :data:`MAP_STATUSES`.
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
        map_status: ``"ok"`` or why the map explains nothing (:data:`MAP_STATUSES`); then ``predicted`` holds
            ``None`` everywhere and ``status`` is ``"inaccurate"`` / ``"not_applicable"``.
        which: the Grams compared (``"H"``, ``"W"``).
        fit_rms: RMS semantic-strength misfit of the map (all positive steps, ends clamped).
        errors: ``{which: {metric: rms}}`` for the metrics in :data:`CURVE_METRICS` (``nan``: no overlap).
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


def _check_which(which: Any) -> tuple[str, ...]:
    if isinstance(which, str):
        which = (which,)
    which = tuple(which)
    if not which or any(w not in ("H", "W") for w in which) or len(set(which)) != len(which):
        raise ValueError(f"which must be a non-empty selection of 'H' and 'W', got {which!r}")
    return which


def _curves(
    traj: Trajectory, design: Any, which: tuple[str, ...], name: str
) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for w in which:
        try:
            m = traj.metrics(design, which=w)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: {exc}") from None
        if "semantic_strength" not in m:
            raise ValueError(f"{name}: the design has no latent attributes (p = 0): nothing to compare")
        out[w] = {k: np.asarray(m[k], dtype=np.float64) for k in ("ts", *CURVE_METRICS)}
    return out


def _interp(log_t: np.ndarray, log_ts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Linear interpolation in log-time, constant beyond the ends, ignoring non-finite samples."""
    ok = np.isfinite(values)
    if ok.sum() == 0:
        return np.full_like(log_t, np.nan)
    return np.interp(log_t, log_ts[ok], values[ok])


# -- the clocks ------------------------------------------------------------------------------------------
class _Problem:
    """The curves of one theory/model pair on the positive times, ready for a clock."""

    def __init__(self, th: dict[str, dict[str, np.ndarray]], mo: dict[str, dict[str, np.ndarray]]):
        self.which = tuple(th)
        self.th: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
        self.mo: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
        for w in self.which:
            pos = th[w]["ts"] > 0
            self.th[w] = (np.log(th[w]["ts"][pos]), {k: th[w][k][pos] for k in CURVE_METRICS})
            pos = mo[w]["ts"] > 0
            self.mo[w] = (np.log(mo[w]["ts"][pos]), {k: mo[w][k][pos] for k in CURVE_METRICS})
        self.spread = {w: float(np.nanstd(self.mo[w][1]["semantic_strength"])) for w in self.which}
        first = self.which[0]
        self.log_lo, self.log_hi = self.th[first][0][0], self.th[first][0][-1]
        self.log_s_lo, self.log_s_hi = self.mo[first][0][0], self.mo[first][0][-1]
        self.n_model = int(self.mo[first][0].size)

    def misfit(self, a: float, b: float) -> float:
        total, n = 0.0, 0
        for w in self.which:
            log_s, mo = self.mo[w]
            log_ts, th = self.th[w]
            mapped = a + b * log_s
            d = mo["semantic_strength"] - _interp(mapped, log_ts, th["semantic_strength"])
            # A snapshot mapped off the theory's range is scored against the end value, but at least at the
            # spread of the model's curve: sliding the model off the theory's range never pays.
            outside = (mapped < log_ts[0]) | (mapped > log_ts[-1])
            d = np.where(outside, np.maximum(np.abs(d), self.spread[w]), d)
            d = d[np.isfinite(d)]
            total += float(d @ d)
            n += d.size
        return total / n if n else math.inf

    def errors(self, a: float, b: float) -> tuple[dict[str, dict[str, float]], int]:
        errors: dict[str, dict[str, float]] = {}
        n_overlap = 0
        for w in self.which:
            log_s, mo = self.mo[w]
            log_ts, th = self.th[w]
            mapped = a + b * log_s
            inside = (mapped >= log_ts[0] - 1e-9) & (mapped <= log_ts[-1] + 1e-9)
            n_overlap = max(n_overlap, int(inside.sum()))
            errors[w] = {}
            for k in CURVE_METRICS:
                d = mo[k][inside] - _interp(mapped[inside], log_ts, th[k])
                d = d[np.isfinite(d)]
                errors[w][k] = float(np.sqrt(np.mean(d * d))) if d.size else math.nan
        return errors, n_overlap

    def fit(self, b_range: tuple[float, float], n_b: int = 41, n_a: int = 81) -> tuple[float, float, float]:
        """Global least squares over ``(a, log b)``: a full grid, then Nelder-Mead from its best 4 points.

        ``a`` runs over every shift for which the model's mapped steps overlap the theory's saved range (for
        each slope), so that no starting guess decides the answer.
        """
        from scipy.optimize import minimize

        lo, hi = math.log(b_range[0]), math.log(b_range[1])
        scored = []
        for log_b in np.linspace(lo, hi, n_b):
            b = math.exp(log_b)
            a_lo = self.log_lo - b * self.log_s_hi
            a_hi = self.log_hi - b * self.log_s_lo
            for a in np.linspace(a_lo, a_hi, n_a):
                scored.append((self.misfit(float(a), b), float(a), float(log_b)))
        scored.sort(key=lambda r: r[0])
        if not math.isfinite(scored[0][0]):
            return math.nan, math.nan, math.nan
        step_a = max((self.log_hi - self.log_lo) / n_a, 1e-3)
        step_b = (hi - lo) / n_b if hi > lo else 0.05

        def objective(x: np.ndarray) -> float:
            return self.misfit(float(x[0]), float(math.exp(x[1])))

        best = (scored[0][0], scored[0][1], scored[0][2])
        for _, a0, lb0 in scored[:4]:
            simplex = np.array(
                [[a0, lb0], [a0 + step_a, lb0], [a0, min(lb0 + step_b, hi) if lb0 < hi else lb0 - step_b]]
            )
            res = minimize(
                objective,
                np.array([a0, lb0]),
                method="Nelder-Mead",
                bounds=[(None, None), (lo, hi)],
                options={"xatol": 1e-9, "fatol": 1e-15, "maxiter": 4000, "initial_simplex": simplex},
            )
            if res.fun < best[0]:
                best = (float(res.fun), float(res.x[0]), float(res.x[1]))
        return best[1], float(math.exp(best[2])), float(math.sqrt(max(best[0], 0.0)))


def _map_status(
    prob: _Problem, clock: str, b: float, b_range: tuple[float, float], n_overlap: int
) -> tuple[str, str]:
    if not math.isfinite(b):
        return "no_fit", "the misfit is not finite for any map"
    if clock == "fit" and b_range[0] < b_range[1]:
        if math.log(b) - math.log(b_range[0]) < _BOUND_TOL or math.log(b_range[1]) - math.log(b) < _BOUND_TOL:
            return "at_bound", (
                f"the fitted slope b = {b:.4g} sits at a bound of b_range = {b_range}: "
                "no affine log-time map lines the two curves up"
            )
    need = max(MIN_OVERLAP, math.ceil(MIN_OVERLAP_FRACTION * prob.n_model))
    if n_overlap < need:
        return "short_overlap", (
            f"only {n_overlap} of {prob.n_model} model snapshots map into the theory's time range "
            f"(need {need})"
        )
    return "ok", ""


def _extrapolated(peak_steps: Sequence[float | None], model_steps: np.ndarray) -> str:
    """Why a fitted map is an extrapolation (a mapped peak over a decade outside the model's positive saved
    steps), or ``""``."""
    pos = model_steps[model_steps > 0]
    if pos.size == 0:
        return ""
    lo, hi = float(pos.min()) / 10.0, float(pos.max()) * 10.0
    for s in peak_steps:
        if s is not None and s > 0 and not (lo <= s <= hi):
            return (
                f"the map puts the theory's peak at step {s:.3g}, over a decade outside the model's steps "
                f"[{pos.min():.3g}, {pos.max():.3g}]"
            )
    return ""


def _clock_pair(
    th: dict[str, dict[str, np.ndarray]],
    mo: dict[str, dict[str, np.ndarray]],
    clock: str,
    lr: float | None,
    b_range: tuple[float, float],
) -> tuple[float, float, float, dict[str, dict[str, float]], int, str, str]:
    prob = _Problem(th, mo)
    if clock == "fit":
        a, b, rms = prob.fit(b_range)
    else:
        a, b = (0.0, 1.0) if clock == "same" else (math.log(lr), 1.0)  # type: ignore[arg-type]
        rms = math.sqrt(prob.misfit(a, b))
    if not math.isfinite(b):
        nan_err = {w: {k: math.nan for k in CURVE_METRICS} for w in prob.which}
        return a, b, rms, nan_err, 0, "no_fit", "the misfit is not finite for any map"
    errors, n_overlap = prob.errors(a, b)
    status, message = _map_status(prob, clock, b, b_range, n_overlap)
    return a, b, rms, errors, n_overlap, status, message


def _total(errors: dict[str, dict[str, float]]) -> float:
    vals = [v for e in errors.values() for v in e.values()]
    return float(sum(vals)) if vals and all(math.isfinite(v) for v in vals) else math.nan


def _nan_reason(errors: dict[str, dict[str, float]]) -> str:
    bad = [f"{w}.{k}" for w, e in errors.items() for k, v in e.items() if not math.isfinite(v)]
    return f"no finite error for {', '.join(bad)} (no overlapping finite values)" if bad else ""


def _variant_items(variants: Any) -> list[tuple[str, Any]]:
    if isinstance(variants, Mapping):
        items = [(str(k), v) for k, v in variants.items()]
    elif isinstance(variants, Sequence) and not isinstance(variants, str):
        items = [(_variant_name(v, i), v) for i, v in enumerate(variants)]
    else:
        raise ValueError(
            f"variants must be a list or a dict of problems/trajectories, got {type(variants).__name__}"
        )
    if not items:
        raise ValueError("variants must not be empty")
    return items


def _variant_name(item: Any, i: int) -> str:
    if isinstance(item, UFM):
        return _problem_name(item)
    return f"variant {i}"


def _problem_name(p: Any) -> str:
    alpha = getattr(p, "alpha", 0.0)
    beta = getattr(p, "beta", 1.0)
    ridge = getattr(p, "ridge", "H")
    lam = p.lam_H if ridge == "H" else getattr(p, "lam_E", 0.0)
    parts = [f"α={alpha:g} β={beta:g}"]
    parts.append(f"ridge {ridge} λ={lam:g}" if (lam or p.lam_W) else "no ridge")
    if getattr(p, "normalize", None) is not None:
        parts.append(f"norm r={p.normalize:g}")
    return ", ".join(parts)


def _model_config(model: Trajectory) -> dict[str, Any]:
    cfg = model.meta.get("config") if isinstance(model.meta, dict) else None
    return dict(cfg) if isinstance(cfg, dict) else {}


def _is_plain_gd(model: Trajectory) -> bool:
    cfg = _model_config(model)
    full = model.stats.get("full_batch", True) if isinstance(model.stats, dict) else True
    return (
        cfg.get("optimizer") == "sgd"
        and not cfg.get("momentum")
        and not cfg.get("weight_decay")
        and bool(full)
    )


def same_clock_theory(
    problem: Any, model: Trajectory, *, init_std: float = 0.02, seed: int | None = None
) -> Trajectory:
    """Run ``problem`` with the model's own optimiser (``model.meta["config"]``: optimizer, lr, betas,
    weight_decay, momentum, steps) from ``init.normal(problem, init_std, seed)``, saving at the model's
    steps: the theory on the model's clock.

    Raises:
        ValueError: when the model's trajectory carries no training configuration.
    """
    cfg = _model_config(model)
    if "optimizer" not in cfg or "lr" not in cfg:
        raise ValueError(
            "clock='same' with a problem needs the model's training config in model.meta['config'] "
            "(optimizer, lr, ...): pass a theory trajectory from ut.optimize instead"
        )
    opt = str(cfg["optimizer"]).lower()
    momentum = float(cfg.get("momentum") or 0.0)
    if opt == "sgd":
        opt = "momentum" if momentum > 0 else "gd"
    steps = int(round(float(model.ts[-1])))
    seed = int(cfg.get("seed", 0)) if seed is None else seed
    kw: dict[str, Any] = {"lr": float(cfg["lr"]), "weight_decay": float(cfg.get("weight_decay") or 0.0)}
    if opt in ("adam", "adamw"):
        kw["betas"] = tuple(cfg.get("betas", (0.9, 0.999)))
    if opt == "momentum":
        kw["momentum"] = momentum
    grid = np.unique(np.rint(model.ts).astype(np.int64))
    return optimize(
        problem,
        max(steps, 1),
        optimizer=opt,
        init=normal_init(problem, init_std, seed=seed),
        saveat=grid[grid <= steps],
        **kw,
    )


def _as_theory(item: Any, name: str, clock: str, model: Trajectory) -> Trajectory:
    """A trajectory from a Trajectory, a Phases carrying one, or a (modified) UFM problem."""
    if isinstance(item, Trajectory):
        return item
    if isinstance(item, Phases):
        if item.trajectory is None:
            raise ValueError(f"{name}: a Phases object must carry its trajectory (a predicted one)")
        return item.trajectory
    if isinstance(item, UFM):
        if clock == "same":
            return same_clock_theory(item, model)
        return predict_phases(item, which="H").trajectory  # type: ignore[return-value]
    raise ValueError(
        f"{name} must be a Trajectory, a predicted Phases or a UFM/ModifiedUFM problem, got {item!r}"
    )


def _check_clock_unit(theory: Trajectory, clock: str, name: str) -> None:
    if clock == "same" and theory.time_unit != "step":
        raise ValueError(f"clock='same' needs {name} in optimiser steps (time_unit='step', from ut.optimize)")
    if clock == "lr" and theory.time_unit != "gf":
        raise ValueError(f"clock='lr' needs {name} in gradient-flow time (time_unit='gf')")


def _blown_up(clock: str, which: tuple[str, ...], status: str, message: str) -> Comparison:
    none = {w: dict.fromkeys(PHASE_NAMES) for w in which}
    return Comparison(
        clock=clock,
        a=math.nan,
        b=math.nan,
        map_status="not_applicable",
        which=which,
        fit_rms=math.nan,
        errors={w: dict.fromkeys(CURVE_METRICS, math.nan) for w in which},
        total_error=math.nan,
        n_overlap=0,
        predicted=none,
        measured={w: dict(v) for w, v in none.items()},
        theory_phases={},
        model_phases={},
        status=status,
        message=message,
    )


def compare(
    theory: Any,
    model: Trajectory,
    design: Any,
    *,
    which: Sequence[str] | str = ("H", "W"),
    clock: str = "auto",
    lr: float | None = None,
    variants: Any = None,
    etf_tol: float = 0.05,
    b_range: tuple[float, float] = (0.2, 5.0),
) -> Comparison:
    """Put a theory run and a trained model on one clock and compare their curves and phase times.

    Args:
        theory: a :class:`~ufmtheory.Trajectory` (gradient-flow time, or steps from
            :func:`ufmtheory.optimize`), a predicted :class:`~ufmtheory.analysis.Phases` carrying its
            trajectory, or a (modified) UFM problem (``clock="same"``: run by :func:`same_clock_theory`;
            otherwise its phases are predicted by :func:`~ufmtheory.analysis.phases.predict_phases`).
        model: the trained model's :class:`~ufmtheory.Trajectory` (``time_unit="step"``, e.g. from
            :func:`ufmtheory.baseline.train`).
        design: the design both ran on (its attributes define the semantic metrics).
        which: ``"H"``, ``"W"`` or both (default).
        clock: ``"auto"`` (default), ``"same"``, ``"lr"`` or ``"fit"`` (module docstring).
        lr: learning rate of the ``"lr"`` clock (default: ``model.meta["config"]["lr"]``).
        variants: optional list or ``{name: item}`` of further theory runs (problems or trajectories, e.g.
            :func:`variant_grid`); each gets its own clock and total error.
        etf_tol: ETF-distance tolerance of the detected phases.
        b_range: allowed slopes of a fitted map (``clock="fit"``), ``0 < b_lo <= 1 <= b_hi``. A slope at
            either bound is reported as ``map_status="at_bound"``.

    Returns:
        :class:`Comparison`. A model or theory run that blew up gives its status (``"diverged"``,
        ``"nonfinite"``) and no mapped time, never ``"ok"``.

    Raises:
        ValueError: bad ``which``/``clock``/``lr``/``b_range``, inputs that are not trajectories/problems, a
            design without attributes or not matching the Grams, a theory on the wrong time unit for the
            clock, fewer than 3 positive times in either run.
    """
    which_t = _check_which(which)
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {CLOCKS}, got {clock!r}")
    try:
        b_lo, b_hi = (float(v) for v in b_range)
    except (TypeError, ValueError):
        raise ValueError(f"b_range must be a pair of numbers, got {b_range!r}") from None
    if not (0 < b_lo <= 1 <= b_hi < math.inf):
        raise ValueError(f"b_range must satisfy 0 < b_lo <= 1 <= b_hi < inf, got {b_range!r}")
    if not isinstance(model, Trajectory):
        raise ValueError(f"model must be a Trajectory, got {type(model).__name__}")
    if lr is not None and (
        isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0)
    ):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if design is None or getattr(design, "p", 0) == 0:
        raise ValueError("compare needs a design with latent attributes (p > 0)")
    if clock == "auto":
        if (isinstance(theory, Trajectory) and theory.time_unit == "step") or (
            isinstance(theory, UFM) and "optimizer" in _model_config(model)
        ):
            clock = "same"
        elif _is_plain_gd(model):
            clock = "lr"
        else:
            clock = "fit"
    map_note = ""
    if clock == "lr":
        if lr is None:
            lr_cfg = _model_config(model).get("lr")
            if lr_cfg is None:
                raise ValueError("clock='lr' needs lr= (the model's trajectory carries no training config)")
            lr = float(lr_cfg)
        if _model_config(model) and not _is_plain_gd(model):
            map_note = (
                "the lr clock holds for plain full-batch gradient descent only; "
                "this model was trained otherwise"
            )
    theory_traj = _as_theory(theory, "theory", clock, model)
    _check_clock_unit(theory_traj, clock, "theory")
    for name, tr in (("model", model), ("theory", theory_traj)):
        st, msg = run_status(tr)
        if st != "ok" and int((tr.ts > 0).sum()) < 3:
            # A run that blew up early: say so, rather than fail on its short time axis.
            return _blown_up(clock, which_t, st, f"{name} run: {msg}")
    for name, tr in (("theory", theory_traj), ("model", model)):
        if int((tr.ts > 0).sum()) < 3:
            raise ValueError(f"{name} needs at least 3 saved times > 0, got {int((tr.ts > 0).sum())}")
    th = _curves(theory_traj, design, which_t, "theory")
    mo = _curves(model, design, which_t, "model")
    a, b, rms, errors, n_overlap, map_status, map_message = _clock_pair(th, mo, clock, lr, (b_lo, b_hi))
    if map_note:
        map_status, map_message = "not_applicable", map_note
    theory_phases = {w: detect_phases(theory_traj, design, which=w, etf_tol=etf_tol) for w in which_t}
    model_phases = {w: detect_phases(model, design, which=w, etf_tol=etf_tol) for w in which_t}
    if clock == "fit" and map_status == "ok":
        peaks = [
            None if p.peak is None else (0.0 if p.peak <= 0 else math.exp((math.log(p.peak) - a) / b))
            for p in theory_phases.values()
        ]
        why = _extrapolated(peaks, model.ts)
        if why:
            map_status, map_message = "extrapolated", why

    def to_step(t: float | None) -> float | None:
        if t is None or map_status != "ok":
            return None
        if clock == "same":
            return float(t)  # the identity, without a round trip through log/exp
        return 0.0 if t <= 0 else float(math.exp((math.log(t) - a) / b))

    predicted = {w: {k: to_step(v) for k, v in p.times.items()} for w, p in theory_phases.items()}
    measured = {w: dict(p.times) for w, p in model_phases.items()}

    fits: list[VariantFit] = []
    best_name = None
    if variants is not None:
        for name, item in _variant_items(variants):
            vt = _as_theory(item, f"variants[{name!r}]", clock, model)
            _check_clock_unit(vt, clock, f"variants[{name!r}]")
            desc = item.describe() if isinstance(item, UFM) else dict(vt.meta)
            try:
                vcurves = _curves(vt, design, which_t, f"variants[{name!r}]")
            except ValueError as exc:
                # A variant that cannot be measured (non-finite Grams, a run that blew up) is listed with
                # the reason, never dropped.
                vst = run_status(vt)[0]
                fits.append(
                    VariantFit(
                        name=name,
                        a=math.nan,
                        b=math.nan,
                        total_error=math.nan,
                        errors={w: dict.fromkeys(CURVE_METRICS, math.nan) for w in which_t},
                        map_status="no_fit",
                        status=vst if vst != "ok" else "failed",
                        message=str(exc),
                        describe=to_jsonable(desc),
                    )
                )
                continue
            va, vb, _, verr, _, vmap, vmsg = _clock_pair(vcurves, mo, clock, lr, (b_lo, b_hi))
            if map_note:
                vmap, vmsg = "not_applicable", map_note
            vstatus, vrun_msg = run_status(vt)
            total = _total(verr)
            if vstatus != "ok":
                vmsg = f"theory run {vstatus}: {vrun_msg}"
            elif vmap != "ok":
                vstatus = "not_applicable" if vmap == "not_applicable" else "inaccurate"
            elif not math.isfinite(total):
                vstatus, vmsg = "inaccurate", _nan_reason(verr)
            fits.append(
                VariantFit(
                    name=name,
                    a=va,
                    b=vb,
                    total_error=total,
                    errors=verr,
                    map_status=vmap,
                    status=vstatus,
                    message=vmsg,
                    describe=to_jsonable(desc),
                )
            )
        finite = [v for v in fits if math.isfinite(v.total_error) and v.map_status == "ok"]
        if finite:
            best_name = min(finite, key=lambda v: v.total_error).name
    status, message = "ok", ""
    for name, tr in (("model", model), ("theory", theory_traj)):
        st, msg = run_status(tr)
        if st != "ok":
            status, message = st, f"{name} run: {msg}"
            break
    if status == "ok" and map_status != "ok":
        status = "not_applicable" if map_status == "not_applicable" else "inaccurate"
        message = map_message
    return Comparison(
        clock=clock,
        a=a,
        b=b,
        map_status=map_status,
        which=which_t,
        fit_rms=rms,
        errors=errors,
        total_error=_total(errors),
        n_overlap=n_overlap,
        predicted=predicted,
        measured=measured,
        theory_phases=theory_phases,
        model_phases=model_phases,
        variants=tuple(fits),
        best_variant=best_name,
        status=status,
        message=message,
    )


def variant_grid(
    design: Any,
    *,
    alphas: Sequence[float] = (0.5, 1.0, 2.0),
    betas: Sequence[float] = (1.0,),
    ridges: Sequence[str] = ("H", "E"),
    normalize: Sequence[float | None] = (None, 1.0),
    lam: float = 1e-3,
    dim: int | None = None,
) -> dict[str, Any]:
    """A small grid of modified-UFM problems over α, β, ridge placement and normalisation.

    Unnormalised variants carry the ridge ``lam`` on W and on H (``ridge="H"``) or on E (``ridge="E"``);
    normalised variants (radius ``r``) carry no ridge at all (as in docs: Theory §12: normalised
    features, no ridge), once per ``(α, β)``.

    Returns:
        ``{name: ModifiedUFM}`` (names as in :attr:`Comparison.variants`).
    """

    K = design.m
    d = dim or K
    out: dict[str, Any] = {}
    for alpha in alphas:
        for beta in betas:
            for r in normalize:
                if r is None:
                    for ridge in ridges:
                        lam_kw = {"lam_H": lam} if ridge == "H" else {"lam_E": lam}
                        p = ModifiedUFM(
                            design, dim=d, alpha=alpha, beta=beta, ridge=ridge, lam_W=lam, **lam_kw
                        )
                        out[_problem_name(p)] = p
                else:
                    p = ModifiedUFM(design, dim=d, alpha=alpha, beta=beta, ridge="E", normalize=r)
                    out[_problem_name(p)] = p
    return out
