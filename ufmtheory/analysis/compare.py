"""Theory vs trained model: fit the time map between gradient-flow time and optimiser steps, then compare.

A theory run (gradient-flow time ``t``) and a trained model (optimiser steps ``s``) live on different
clocks. :func:`compare` fits a map affine in log-time,

    log t = a + b log s,

by least squares on the semantic-strength curves (docs: Theory §10): over ``(a, b)`` it minimises the
mean squared difference between the model's strength at its saved steps ``s_i > 0`` and the theory's
strength interpolated (linearly in log t) at ``exp(a + b log s_i)``, summed over ``which`` (``H`` and/or
``W``). Mapped times outside the theory's saved range are scored against the nearest end value (so that a
map cannot win by sliding the model off the theory's range), but the reported errors use only the
snapshots whose mapped times fall inside it. The optimiser (Nelder-Mead on ``(a, log b)``) starts from the
best of a few maps that align the peaks of the two strength curves.

After the map, per-metric curve errors are the RMS differences over those snapshots for the semantic
strength, the ETF distance and the shared-attribute gap (mean centred cosine of pairs sharing an attribute
minus pairs sharing none), each for H (contexts) and W (labels). Phase times detected on the theory
(:func:`~ufmtheory.analysis.detect_phases`) are mapped to steps (``s = exp((log t - a)/b)``) and set beside
those detected on the model.

With ``variants`` (modified-UFM problems or their trajectories, e.g. from :func:`variant_grid`) every
variant gets its own fitted map and total error (the sum of the per-metric RMS errors), and the best one
(lowest total) is reported.

Example:
    >>> import numpy as np, ufmtheory as ut
    >>> d = ut.designs.factorial((2, 2))
    >>> prob = ut.ModifiedUFM(d, dim=4, lam_W=1e-3, lam_H=1e-3)
    >>> theory = ut.predict_phases(prob, t1=1e4).trajectory
    >>> ts = theory.ts[1:]  # the positive times
    >>> steps = np.exp((np.log(ts) - 1.0) / 0.8)  # a = 1, b = 0.8
    >>> model = ut.Trajectory(ts=steps, gram_H=theory.gram_H[1:], gram_W=theory.gram_W[1:],
    ...                       loss=theory.loss[1:], time_unit="step")
    >>> cmp = compare(theory, model, d)
    >>> round(cmp.a, 3), round(cmp.b, 3), bool(cmp.total_error < 1e-3)
    (1.0, 0.8, True)
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
from ufmtheory.analysis.phases import PHASE_NAMES, Phases, detect_phases, predict_phases
from ufmtheory.models import UFM
from ufmtheory.trajectory import Trajectory

__all__ = ["Comparison", "VariantFit", "compare", "variant_grid", "CURVE_METRICS"]

CURVE_METRICS = ("semantic_strength", "etf_distance", "shared_gap")
"""The metric curves compared after the time map (names of :func:`ufmtheory.metrics.trajectory_metrics`)."""


@dataclass(frozen=True)
class VariantFit:
    """One variant's fit against the model.

    Attributes:
        name: the variant's name.
        a, b: its fitted time map ``log t = a + b log step``.
        total_error: sum of its per-metric RMS curve errors (``nan`` when nothing overlaps).
        errors: ``{which: {metric: rms}}``.
        describe: the problem's description (``{}`` for a bare trajectory).
    """

    name: str
    a: float
    b: float
    total_error: float
    errors: dict[str, dict[str, float]]
    describe: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "a": self.a,
            "b": self.b,
            "total_error": _num(self.total_error),
            "errors": {w: {k: _num(v) for k, v in e.items()} for w, e in self.errors.items()},
            "problem": self.describe,
        }


@dataclass(frozen=True)
class Comparison:
    """A theory run set against a trained model after the fitted time map (see the module docstring).

    Attributes:
        a, b: the time map ``log t_theory = a + b log step``.
        which: the Grams compared (``"H"``, ``"W"``).
        fit_rms: RMS semantic-strength misfit of the fit (all positive steps, ends clamped).
        errors: ``{which: {metric: rms}}`` for the metrics in :data:`CURVE_METRICS` (``nan``: no overlap).
        total_error: sum of all entries of ``errors``.
        n_overlap: snapshots (steps > 0) whose mapped times lie in the theory's saved range.
        predicted: ``{which: {phase: step or None}}``: phase times detected on the theory, mapped to steps.
        measured: ``{which: {phase: step or None}}``: phase times detected on the model.
        theory_phases, model_phases: the :class:`~ufmtheory.analysis.Phases` behind them (theory time unit /
            steps), with their curves.
        variants: per-variant fits (empty without ``variants``), in the order given.
        best_variant: the name of the variant with the lowest total error (``None`` without variants).
        status: ``"ok"`` or what went wrong (e.g. too little overlap).
    """

    a: float
    b: float
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
            "time_map": {"a": self.a, "b": self.b, "form": "log t_theory = a + b log step"},
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
        }

    def table(self) -> str:
        """Text tables: the time map, phase steps (predicted vs measured) and curve errors."""
        lines = [f"time map: log t = {self.a:.4g} + {self.b:.4g} log step   (fit RMS {self.fit_rms:.3g})"]
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
            lines.append(f"{'variant':<40} {'a':>8} {'b':>8} {'total err':>10}")
            for v in self.variants:
                mark = " *" if v.name == self.best_variant else ""
                lines.append(f"{v.name:<40} {_fmt(v.a):>8} {_fmt(v.b):>8} {_fmt(v.total_error):>10}{mark}")
        if not self.ok:
            lines.append(f"status: {self.status}")
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


def _as_theory(item: Any, name: str) -> Trajectory:
    """A trajectory from a Trajectory, a Phases carrying one, or a (modified) UFM problem."""
    if isinstance(item, Trajectory):
        return item
    if isinstance(item, Phases):
        if item.trajectory is None:
            raise ValueError(f"{name}: a Phases object must carry its trajectory (a predicted one)")
        return item.trajectory
    if isinstance(item, UFM):
        return predict_phases(item, which="H").trajectory  # type: ignore[return-value]
    raise ValueError(
        f"{name} must be a Trajectory, a predicted Phases or a UFM/ModifiedUFM problem, got {item!r}"
    )


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


# -- the fit -------------------------------------------------------------------------------------------------
class _Problem:
    """The curves of one theory/model pair on the positive times, ready for the fit."""

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
            inside = (mapped >= log_ts[0] - 1e-12) & (mapped <= log_ts[-1] + 1e-12)
            n_overlap = max(n_overlap, int(inside.sum()))
            errors[w] = {}
            for k in CURVE_METRICS:
                d = mo[k][inside] - _interp(mapped[inside], log_ts, th[k])
                d = d[np.isfinite(d)]
                errors[w][k] = float(np.sqrt(np.mean(d * d))) if d.size else math.nan
        return errors, n_overlap

    def initial_guesses(self) -> list[tuple[float, float]]:
        """Maps aligning the strength peaks (for several slopes), plus a shift of a decade either way."""
        guesses = []
        for b in (0.5, 0.75, 1.0, 1.5, 2.0):
            anchors = []
            for w in self.which:
                log_ts, th = self.th[w]
                log_s, mo = self.mo[w]
                s_th, s_mo = th["semantic_strength"], mo["semantic_strength"]
                if np.isfinite(s_th).any() and np.isfinite(s_mo).any():
                    anchors.append(log_ts[np.nanargmax(s_th)] - b * log_s[np.nanargmax(s_mo)])
            a0 = float(np.mean(anchors)) if anchors else float(self.log_lo)
            guesses += [(a0, b), (a0 - math.log(10), b), (a0 + math.log(10), b)]
        return guesses

    def fit(self, b_range: tuple[float, float]) -> tuple[float, float, float]:
        from scipy.optimize import minimize

        def objective(x: np.ndarray) -> float:
            return self.misfit(float(x[0]), float(math.exp(x[1])))

        lo, hi = math.log(b_range[0]), math.log(b_range[1])
        guesses = [(a, b) for a, b in self.initial_guesses() if b_range[0] <= b <= b_range[1]]
        guesses = guesses or [(float(self.log_lo), math.sqrt(b_range[0] * b_range[1]))]
        starts = sorted(guesses, key=lambda ab: self.misfit(*ab))[:3]
        best = None
        for a0, b0 in starts:
            res = minimize(
                objective,
                np.array([a0, math.log(b0)]),
                method="Nelder-Mead",
                bounds=[(None, None), (lo, hi)],
                options={"xatol": 1e-8, "fatol": 1e-14, "maxiter": 4000},
            )
            if best is None or res.fun < best.fun:
                best = res
        assert best is not None
        return float(best.x[0]), float(math.exp(best.x[1])), float(math.sqrt(max(best.fun, 0.0)))


def _fit_pair(
    th: dict[str, dict[str, np.ndarray]], mo: dict[str, dict[str, np.ndarray]], b_range: tuple[float, float]
) -> tuple[float, float, float, dict[str, dict[str, float]], int]:
    prob = _Problem(th, mo)
    a, b, rms = prob.fit(b_range)
    errors, n_overlap = prob.errors(a, b)
    return a, b, rms, errors, n_overlap


def _total(errors: dict[str, dict[str, float]]) -> float:
    vals = [v for e in errors.values() for v in e.values()]
    return float(sum(vals)) if vals and all(math.isfinite(v) for v in vals) else math.nan


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


def compare(
    theory: Any,
    model: Trajectory,
    design: Any,
    *,
    which: Sequence[str] | str = ("H", "W"),
    variants: Any = None,
    etf_tol: float = 0.05,
    b_range: tuple[float, float] = (0.2, 5.0),
) -> Comparison:
    """Fit the time map between a theory run and a trained model and compare their curves and phases.

    Args:
        theory: a :class:`~ufmtheory.Trajectory` (gradient-flow time), a predicted
            :class:`~ufmtheory.analysis.Phases` carrying its trajectory, or a (modified) UFM problem (its
            phases are predicted with :func:`~ufmtheory.analysis.phases.predict_phases`).
        model: the trained model's :class:`~ufmtheory.Trajectory` (``time_unit="step"``, e.g. from
            :func:`ufmtheory.baseline.train`); any time unit is accepted.
        design: the design both ran on (its attributes define the semantic metrics).
        which: ``"H"``, ``"W"`` or both (default): the Grams fitted and compared.
        variants: optional list or ``{name: item}`` of further theory runs (problems or trajectories, e.g.
            :func:`variant_grid`); each gets its own fitted map and total error.
        etf_tol: ETF-distance tolerance of the detected phases.
        b_range: allowed slopes ``b`` of the map. Without a bound, least squares can squeeze the model's
            whole run onto one feature of the theory curve (``b → 0``: all steps map to nearly one time),
            which fits but explains nothing; ``0 < b_lo <= 1 <= b_hi``.

    Returns:
        :class:`Comparison`.

    Raises:
        ValueError: bad ``which``, inputs that are not trajectories/problems, a design without attributes or
            not matching the Grams, fewer than 3 positive times in either run.
    """
    which_t = _check_which(which)
    try:
        b_lo, b_hi = (float(v) for v in b_range)
    except (TypeError, ValueError):
        raise ValueError(f"b_range must be a pair of numbers, got {b_range!r}") from None
    if not (0 < b_lo <= 1 <= b_hi < math.inf):
        raise ValueError(f"b_range must satisfy 0 < b_lo <= 1 <= b_hi < inf, got {b_range!r}")
    if not isinstance(model, Trajectory):
        raise ValueError(f"model must be a Trajectory, got {type(model).__name__}")
    if design is None or getattr(design, "p", 0) == 0:
        raise ValueError("compare needs a design with latent attributes (p > 0)")
    theory_traj = _as_theory(theory, "theory")
    for name, tr in (("theory", theory_traj), ("model", model)):
        if int((tr.ts > 0).sum()) < 3:
            raise ValueError(f"{name} needs at least 3 saved times > 0, got {int((tr.ts > 0).sum())}")
    th = _curves(theory_traj, design, which_t, "theory")
    mo = _curves(model, design, which_t, "model")
    a, b, rms, errors, n_overlap = _fit_pair(th, mo, (b_lo, b_hi))
    theory_phases = {w: detect_phases(theory_traj, design, which=w, etf_tol=etf_tol) for w in which_t}
    model_phases = {w: detect_phases(model, design, which=w, etf_tol=etf_tol) for w in which_t}

    def to_step(t: float | None) -> float | None:
        if t is None:
            return None
        return 0.0 if t <= 0 else float(math.exp((math.log(t) - a) / b))

    predicted = {w: {k: to_step(v) for k, v in p.times.items()} for w, p in theory_phases.items()}
    measured = {w: dict(p.times) for w, p in model_phases.items()}

    fits: list[VariantFit] = []
    best_name = None
    if variants is not None:
        for name, item in _variant_items(variants):
            vt = _as_theory(item, f"variants[{name!r}]")
            va, vb, _, verr, _ = _fit_pair(
                _curves(vt, design, which_t, f"variants[{name!r}]"), mo, (b_lo, b_hi)
            )
            desc = item.describe() if isinstance(item, UFM) else dict(vt.meta)
            fits.append(VariantFit(name, va, vb, _total(verr), verr, to_jsonable(desc)))
        finite = [v for v in fits if math.isfinite(v.total_error)]
        if finite:
            best_name = min(finite, key=lambda v: v.total_error).name
    status = "ok" if n_overlap >= 3 else f"only {n_overlap} model snapshots map into the theory's time range"
    return Comparison(
        a=a,
        b=b,
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
    from ufmtheory.models import ModifiedUFM

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
