"""The clocks of :func:`ufmtheory.analysis.comparison.compare`: metric curves, the fitted log-time map and
its status, and the theory run on the model's own optimiser (:func:`same_clock_theory`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ufmtheory.analysis.phases import Phases, predict_phases
from ufmtheory.models import UFM
from ufmtheory.solvers.init import normal as normal_init
from ufmtheory.solvers.optimizer import optimize
from ufmtheory.trajectory import Trajectory

__all__ = [
    "CURVE_METRICS",
    "CLOCKS",
    "MAP_STATUSES",
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
        if clock == "same":
            a, b = 0.0, 1.0
        elif lr is None:
            raise ValueError("clock='lr' needs lr= (a number > 0)")
        else:
            a, b = math.log(lr), 1.0
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
        traj = predict_phases(item, which="H").trajectory
        if traj is None:  # a prediction always carries its run; a Phases without one cannot be mapped
            raise ValueError(f"{name}: the prediction carries no trajectory")
        return traj
    raise ValueError(
        f"{name} must be a Trajectory, a predicted Phases or a UFM/ModifiedUFM problem, got {item!r}"
    )


def _check_clock_unit(theory: Trajectory, clock: str, name: str) -> None:
    if clock == "same" and theory.time_unit != "step":
        raise ValueError(f"clock='same' needs {name} in optimiser steps (time_unit='step', from ut.optimize)")
    if clock == "lr" and theory.time_unit != "gf":
        raise ValueError(f"clock='lr' needs {name} in gradient-flow time (time_unit='gf')")
