"""Phase times of the semantic transient: predicted from the theory, detected on any trajectory.

Definitions (docs: Theory §11), shared by both entry points so that they can be compared directly:

* ``onset``: first time the semantic strength reaches half its peak;
* ``peak``, ``peak_strength``: the (saved) time and value of the maximal semantic strength;
* ``collapse``: first time after the peak that the strength falls below half the peak;
* ``etf_time``: first time after which the ETF distance stays below ``etf_tol``.

Crossings are interpolated linearly in ``log t`` between saved times (:func:`ufmtheory.metrics.phase_times`).
A peak below ``min_strength`` (rounding noise, e.g. the standard UFM from an aligned init whose Gram is
exactly isotropic) counts as "no semantic phase": ``onset`` and ``collapse`` are then ``None``.

* :func:`detect_phases` measures the phases on any :class:`~ufmtheory.Trajectory` (a theory run or a
  trained model; its ``time_unit`` is kept).
* :func:`predict_phases` integrates the exact reduced ODE (:func:`ufmtheory.reduced_solve`) of a
  factorial or hierarchical (modified) UFM from a small aligned, balanced initialisation, extends the time
  horizon until the collapse and the ETF time are found, and reports the closed-form estimates of docs:
  Theory §7, §11 beside the integrated times: ``t_sem ≈ K ln(ℓ*/ℓ₀)/(2 sqrt(κ_attr))`` and
  ``t_col ≈ t_sem + ln(δ_end/δ(t_sem))/μ`` with ``μ`` the escape rate from the semantic saddle.

Example:
    >>> import ufmtheory as ut
    >>> from ufmtheory.analysis.phases import predict_phases
    >>> prob = ut.ModifiedUFM(ut.designs.factorial((3, 3)), dim=9, alpha=1.0, beta=1.0, ridge="H",
    ...                       lam_W=1e-3, lam_H=1e-3)
    >>> ph = predict_phases(prob, which="W")
    >>> ph.method, ph.onset < ph.peak < ph.collapse < ph.etf_time
    ('reduced', True)
    >>> round(ph.peak_strength, 3)  # the attribute-only geometry: 1 - (2 + 2)/8
    0.499
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ufmtheory import _validate
from ufmtheory._format import finite_or_none as _num
from ufmtheory._format import format_number as _fmt
from ufmtheory._format import to_jsonable
from ufmtheory._results import ResultMixin, make_stats
from ufmtheory.algebra.schemes import AssociationScheme, scheme
from ufmtheory.algebra.structured import StructuredGrams
from ufmtheory.analysis.estimates import phase_estimates
from ufmtheory.designs import Design
from ufmtheory.metrics import phase_times, trajectory_metrics
from ufmtheory.models import UFM, ModifiedUFM
from ufmtheory.solvers._frontend import DEFAULT_SCALE, MAX_SCALE
from ufmtheory.solvers.flow import gradient_flow
from ufmtheory.solvers.init import small
from ufmtheory.solvers.reduced import ReducedProblem, aligned_full_init, initial_coefficients, reduced_solve
from ufmtheory.trajectory import Trajectory, log_grid

__all__ = [
    "Phases",
    "detect_phases",
    "predict_phases",
]

PHASE_NAMES = ("onset", "peak", "collapse", "etf_time")
"""The four phase times, in order."""

_REL_TOL = 1e-10  # as ufmtheory.metrics: a centred Gram this small relative to the Gram has no direction
_MIN_STRENGTH = 1e-8


# -- result ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False, kw_only=True)
class Phases(ResultMixin):
    """Phase times of one semantic-strength / ETF-distance curve pair.

    Attributes:
        onset: first time the semantic strength reaches half its peak (``None``: no semantic phase).
        peak: saved time of the maximal semantic strength (``None``: no finite strength).
        collapse: first time after the peak the strength falls below half the peak (``None``: it does not,
            within the run, or there is no semantic phase).
        etf_time: first time after which the ETF distance stays below ``etf_tol`` (``None``: not reached).
        peak_strength: the maximal semantic strength (``nan`` when no strength is finite).
        method: how the times were obtained: ``"reduced"`` (exact reduced ODE), ``"full-aligned ..."`` /
            ``"full-small ..."`` (full gradient flow; the reason for the fallback follows in brackets) or
            ``"detect[<trajectory method>]"``.
        which: ``"H"`` (context Gram ``HᵀH``) or ``"W"`` (label Gram ``WWᵀ``).
        time_unit: ``"gf"`` (gradient-flow time) or ``"step"`` (optimiser steps).
        estimates: closed-form estimates beside the integrated times (predicted phases only): ``t_sem``,
            ``t_col``, ``kappa_attr``, ``kappa_free``, ``l0``, ``growth_rate``, ``mu``, ``delta_sem``,
            ``delta_end``, ... (``None`` where not applicable).
        etf_tol: the ETF-distance tolerance used.
        status: ``"ok"``; the solver's status when the run failed; ``"nonfinite"`` (no finite strength);
            ``"failed"`` when a phase time is missing (``message``: e.g. ``"no collapse up to t = 1e12"``).
        message: why (the status's fixed message when ok).
        stats: ``n_evals``, ``wall_time_s``, and run statistics (``t1``, ``saved``, ``attempts``, initial
            coefficients, ...).
        curves: ``{"ts", "semantic_strength", "etf_distance"}``: (T,) arrays the times were read from.
        trajectory: the trajectory behind a prediction (``None`` for detected phases).
    """

    onset: float | None
    peak: float | None
    collapse: float | None
    etf_time: float | None
    peak_strength: float
    method: str
    which: str = "H"
    time_unit: str = "gf"
    estimates: dict[str, Any] = field(default_factory=dict)
    etf_tol: float = 0.05
    status: str = "ok"
    message: str = ""
    stats: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    trajectory: Trajectory | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.which not in ("H", "W"):
            raise ValueError(f"which must be 'H' or 'W', got {self.which!r}")
        if self.time_unit not in ("gf", "step"):
            raise ValueError(f"time_unit must be 'gf' or 'step', got {self.time_unit!r}")
        self._check_result()

    @property
    def times(self) -> dict[str, float | None]:
        """``{"onset", "peak", "collapse", "etf_time"}``."""
        return {name: getattr(self, name) for name in PHASE_NAMES}

    @property
    def has_semantic_phase(self) -> bool:
        """True when the strength has a (non-noise) positive peak."""
        return self.onset is not None

    def as_dict(self, curves: bool = False) -> dict[str, Any]:
        """JSON-friendly dictionary (floats, ``None``; the curves only when ``curves=True``)."""
        out: dict[str, Any] = {
            **self.times,
            "peak_strength": _num(self.peak_strength),
            "method": self.method,
            "which": self.which,
            "time_unit": self.time_unit,
            "etf_tol": self.etf_tol,
            "status": self.status,
            "message": self.message,
            "estimates": to_jsonable(self.estimates),
            "stats": to_jsonable(self.stats),
        }
        if curves:
            out["curves"] = {k: np.asarray(v).tolist() for k, v in self.curves.items()}
        return out

    def table(self) -> str:
        """A small text table: each phase time beside its closed-form estimate (where there is one)."""
        est = {"onset": None, "peak": self.estimates.get("t_sem"), "collapse": self.estimates.get("t_col")}
        rows = [f"{'phase':<10} {'time':>12} {'estimate':>12}"]
        for name in PHASE_NAMES:
            rows.append(f"{name:<10} {_fmt(getattr(self, name)):>12} {_fmt(est.get(name)):>12}")
        rows.append(f"{'strength':<10} {_fmt(self.peak_strength):>12}")
        return "\n".join(rows)

    def __str__(self) -> str:
        return f"Phases(which={self.which}, method={self.method}, status={self.status})\n{self.table()}"


def _phases_from_curves(
    ts: np.ndarray, strength: np.ndarray, etf: np.ndarray, etf_tol: float, min_strength: float
) -> dict[str, Any]:
    out = phase_times(ts, strength, etf, etf_tol=etf_tol)
    if not (out["peak_strength"] >= min_strength):  # noise-level (or nan) peak: no semantic phase
        out["onset"] = out["collapse"] = None
    return out


def _check_which(which: str) -> None:
    if which not in ("H", "W"):
        raise ValueError(f"which must be 'H' or 'W', got {which!r}")


def _check_tol(etf_tol: Any) -> float:
    etf_tol = _validate.nonnegative("etf_tol", etf_tol)
    if etf_tol == 0:
        raise ValueError("etf_tol must be > 0")
    return etf_tol


def detect_phases(
    trajectory: Trajectory,
    design: Design | AssociationScheme,
    *,
    which: str = "H",
    etf_tol: float = 0.05,
    min_strength: float = _MIN_STRENGTH,
) -> Phases:
    """Measure the phase times on any trajectory (theory run or trained model).

    Semantic strength and ETF distance come from :func:`ufmtheory.metrics.trajectory_metrics`, the times
    from :func:`ufmtheory.metrics.phase_times` (definitions in the module docstring).

    Args:
        trajectory: a :class:`~ufmtheory.Trajectory`; its ``time_unit`` is kept.
        design: the design whose attribute code defines the semantic strength (``p > 0``); for a trajectory
            with structured Grams (a large reduced run) its association scheme (``trajectory.scheme``).
        which: ``"H"`` (context Grams) or ``"W"`` (label Grams on the used labels).
        etf_tol: ETF-distance tolerance for ``etf_time`` (> 0).
        min_strength: a peak strength below this is rounding noise: no semantic phase.

    Returns:
        :class:`Phases` with ``method = "detect[<trajectory.method>]"``.

    Example:
        >>> import numpy as np, ufmtheory as ut
        >>> from ufmtheory.equilibria import etf_gram
        >>> d = ut.designs.factorial((2, 2))
        >>> G = np.stack([etf_gram(4)] * 3)
        >>> tr = ut.Trajectory(ts=[0.0, 1.0, 2.0], gram_H=G, gram_W=G, loss=np.zeros(3))
        >>> ph = detect_phases(tr, d)
        >>> ph.onset, ph.collapse, ph.etf_time
        (None, None, 0.0)
    """
    _check_which(which)
    etf_tol = _check_tol(etf_tol)
    if isinstance(design, AssociationScheme):
        if not design.attribute_mask.any():
            raise ValueError("detect_phases needs a scheme with attribute modes to measure semantics")
    elif design is None or getattr(design, "p", 0) == 0:
        raise ValueError("detect_phases needs a design with latent attributes (p > 0) to measure semantics")
    if not isinstance(trajectory, Trajectory):
        raise TypeError(f"trajectory must be a ufmtheory Trajectory, got {type(trajectory).__name__}")
    m = trajectory_metrics(trajectory, design, which=which)
    ts, strength, etf = m["ts"], m["semantic_strength"], m["etf_distance"]
    out = _phases_from_curves(ts, strength, etf, etf_tol, min_strength)
    start = time.perf_counter()
    status, message = trajectory.status, "" if trajectory.ok else f"trajectory: {trajectory.message}"
    return Phases(
        onset=out["onset"],
        peak=out["peak"],
        collapse=out["collapse"],
        etf_time=out["etf_time"],
        peak_strength=float(out["peak_strength"]),
        method=f"detect[{trajectory.method}]",
        which=which,
        time_unit=trajectory.time_unit,
        etf_tol=etf_tol,
        status=status,
        message=message,
        stats=make_stats(
            0,
            time.perf_counter() - start,
            saved=len(trajectory),
            t_end=float(ts[-1]),
            trajectory_status=trajectory.status,
        ),
        curves={"ts": ts, "semantic_strength": strength, "etf_distance": etf},
    )


# -- prediction helpers -----------------------------------------------------------------------------------
def _reduced(
    rp: ReducedProblem, t1: float, init: Any, grid: np.ndarray, previous: Any = None
) -> tuple[Trajectory, Any]:
    """Reduced solve to ``t1`` with structured Grams (nothing K×K is built here), saved on ``grid``.

    ``previous`` (the ``(trajectory, (w, h_raw))`` of an earlier, shorter horizon) is continued rather than
    recomputed: the flow is autonomous, so the flow from its final state with the clock shifted by its end
    time is the same flow (to the solver's tolerance). Returns the joined trajectory and its final state.
    A run that ended in the adiabatic limit of a normalised ridge flow (``stats["late_limit"]``: its raw
    scale is extrapolated and may have underflowed to 0) is recomputed from ``init`` instead.
    """
    if previous is not None and "adiabatic_from" in previous[0].stats.get("late_limit", {}):
        previous = None
    if previous is None:
        sol = reduced_solve(rp, t1, init=init, saveat=grid, structured=True)
        return sol.trajectory, (sol.w[-1], sol.h_raw[-1])
    old, state = previous
    t0 = float(old.ts[-1])
    new = grid[grid > t0 * (1.0 + 1e-12)]
    sol = reduced_solve(rp, t1 - t0, init=state, saveat=np.concatenate([[0.0], new - t0]), structured=True)
    T = len(sol.ts) - 1  # the first saved state is the old end
    stats = dict(sol.trajectory.stats)
    for key in ("n_evals", "wall_time_s"):
        stats[key] = (old.stats.get(key) or 0) + (stats.get(key) or 0)
    stats["saved"] = len(old) + T
    stats["segments"] = old.stats.get("segments", 1) + 1
    joined = dataclasses.replace(
        sol.trajectory,
        ts=np.concatenate([old.ts, new[:T]]),
        gram_H=StructuredGrams(np.concatenate([old.gram_H.coefficients, sol.gram_H_coeffs[1:]]), sol.scheme),
        gram_W=StructuredGrams(np.concatenate([old.gram_W.coefficients, sol.gram_W_coeffs[1:]]), sol.scheme),
        loss=np.concatenate([old.loss, sol.loss[1:]]),
        stats=stats,
    )
    return joined, (sol.w[-1], sol.h_raw[-1])


def _save_grid(t1: float, points_per_decade: int) -> np.ndarray:
    t_min = min(1e-2, t1 * 1e-3)
    n = max(int(math.ceil(points_per_decade * math.log10(t1 / t_min))) + 1, 2)
    return log_grid(t1, n=n, t_min=t_min)


def _reduction(problem: Any) -> tuple[ReducedProblem | None, str]:
    """The reduced problem, or ``None`` and the reason why the exact reduction does not apply."""
    if isinstance(problem, ReducedProblem):
        return problem, ""
    if not isinstance(problem, UFM):
        raise TypeError(f"problem must be a UFM, ModifiedUFM or ReducedProblem, got {type(problem).__name__}")
    try:
        rp = ReducedProblem.from_problem(problem)
    except NotImplementedError as exc:
        return None, str(exc).split(";")[0]
    except ValueError as exc:
        return None, str(exc)
    if problem.dim < problem.design.m - 1:
        return None, f"dim = {problem.dim} < K - 1 = {problem.design.m - 1}: no aligned init"
    return rp, ""


def _symmetric_scheme(problem: Any) -> AssociationScheme | None:
    try:
        return scheme(problem.design)
    except (ValueError, TypeError):
        return None


def predict_phases(
    problem: UFM | ModifiedUFM | ReducedProblem,
    *,
    t1: float | None = None,
    scale: float = DEFAULT_SCALE,
    which: str = "H",
    etf_tol: float = 0.05,
    method: str = "reduced",
    points_per_decade: int = 20,
    t1_max: float = 1e12,
    min_strength: float = _MIN_STRENGTH,
) -> Phases:
    """Predict the phase times of a (modified) UFM by integrating its gradient flow.

    The exact reduced ODE (:func:`~ufmtheory.reduced_solve`) is integrated from the balanced aligned init
    ``w_S = sqrt(scale)``, ``h_S = sqrt(κ_S) w_S`` (``S ≠ ∅``; the Grams of ``init.aligned(problem, scale)``):
    the Gram structure of a small random init (``E[HᵀH] ∝ K_x``, ``E[WWᵀ] ∝ I``) without its noise. Where the
    reduction does not apply (designs other than one-hot factorial/hierarchical, ``dim < K - 1``) or
    ``method="full"``, the full :func:`~ufmtheory.gradient_flow` runs instead, from the same aligned init when
    the design is symmetric and ``dim >= K`` (``method`` ``"full-aligned (...)"``) or from
    ``init.small(problem, sqrt(scale), seed=0)`` (``"full-small (...)"``); the reason follows in brackets.
    With column normalisation the raw features start on the sphere of the normalisation radius (the normalised
    flow conserves ``‖E‖`` and moves H at a rate ``∝ (r/‖E x̃_j‖)²``: a tiny E is a stiff, arbitrarily fast H
    rather than a slow start).

    The times are then read off by :func:`detect_phases` on the run's trajectory, so predicted and detected
    phases share their definitions. Times are saved on a log grid with ``points_per_decade`` points per
    decade from ``min(1e-2, t1/1000)`` to ``t1`` (``curves["ts"]``); a full flow on the same grid from
    ``stats["init"]`` (via :func:`~ufmtheory.solvers.reduced.aligned_full_init`) gives the same phases.

    Args:
        problem: :class:`~ufmtheory.UFM`, :class:`~ufmtheory.ModifiedUFM` or a
            :class:`~ufmtheory.solvers.reduced.ReducedProblem` (no K×K design needed: K = 10⁶ is fine).
        t1: final time; ``None`` (default): start at ten times the closed-form estimate (rounded up to a
            power of 10) and extend by factors of 10 until the collapse and the ETF time are found (or there
            is no semantic phase and the ETF time is found) with a decade of margin, or ``t1_max`` is reached.
        scale: size of the starting label Gram (> 0; default 1e-6, i.e. coefficients ``w_S = 1e-3``).
        which: ``"H"`` or ``"W"``: the Gram whose phases are reported.
        etf_tol: ETF-distance tolerance for ``etf_time`` (> 0).
        method: ``"reduced"`` (default; falls back to the full flow where it does not apply) or ``"full"``.
        points_per_decade: save-grid density (>= 1).
        t1_max: cap of the automatic horizon.
        min_strength: a peak below this is rounding noise: no semantic phase.

    Returns:
        :class:`Phases` with ``estimates`` from :func:`phase_estimates` (symmetric designs, no
        normalisation), ``stats["init"] = {"w0", "h0"}`` (aligned inits) and ``trajectory`` (the run;
        structured Grams for the reduced flow).
    """
    _check_which(which)
    etf_tol = _check_tol(etf_tol)
    scale = _validate.real("scale", scale, low=0.0, low_open=True, high=MAX_SCALE)
    method = _validate.choice("method", method, ("reduced", "full"))
    # 10⁴ points per decade over the 14 decades of t1_max is already 1.4·10⁵ saved Grams.
    points_per_decade = _validate.integer("points_per_decade", points_per_decade, low=1, high=10_000)
    if t1 is not None:
        t1 = _validate.positive("t1", t1)
    t1_max = _validate.positive("t1_max", t1_max)
    if isinstance(problem, ReducedProblem) and method == "full":
        raise ValueError("method='full' needs a UFM or ModifiedUFM (a ReducedProblem has no full flow)")

    rp, reason = _reduction(problem)
    radius = getattr(problem, "normalize", None)
    use_reduced = rp is not None and method == "reduced"
    init: Any
    init_stats: dict[str, Any] = {}
    if use_reduced:
        assert rp is not None
        init = initial_coefficients(rp, None, scale, on_sphere=True)
        init_stats = {"w0": init[0].tolist(), "h0": init[1].tolist()}
        method_name = "reduced"
        metric_design: Any = rp.scheme
    else:
        reason = reason or "requested"
        metric_design = problem.design
        sch = _symmetric_scheme(problem)
        if sch is not None and problem.dim >= sch.K and type(problem) in (UFM, ModifiedUFM):
            # (A subclass such as DeepContextUFM has its own parameters and loss: a small random start.)
            # The reduced theory's aligned init lifted to the full parameters (raw features with normalize).
            twin = dataclasses.replace(problem, normalize=None) if radius is not None else problem
            rp_twin = ReducedProblem.from_problem(twin)
            w0, h0 = initial_coefficients(rp_twin, None, scale)
            if radius is not None:  # the raw features on the sphere of the normalisation radius
                ranks = np.array(rp_twin.scheme.ranks, dtype=np.float64)
                h0 = h0 * (radius / math.sqrt(float((h0**2) @ ranks) / rp_twin.scheme.K))
            init = aligned_full_init(twin, w0, h0)
            init_stats = {"w0": w0.tolist(), "h0": h0.tolist()}
            method_name = f"full-aligned ({reason})"
            rp = rp if rp is not None else (rp_twin if radius is None else None)
        else:
            init = small(problem, math.sqrt(scale), seed=0)
            if radius is not None and "E" in init:
                cols = float(np.linalg.norm(init["E"] @ problem.X_tilde, axis=0).mean())
                init["E"] = init["E"] * (radius / cols)
            method_name = f"full-small ({reason}; seed 0)"

    estimates: dict[str, Any] = {}
    if rp is not None and getattr(rp, "normalize", None) is None and radius is None:
        estimates = phase_estimates(rp, scale=scale, which=which, model=problem)

    if t1 is None:
        guess = max(v for v in (estimates.get("t_col"), estimates.get("t_sem"), 10.0) if v is not None)
        horizon, auto = min(10.0 ** math.ceil(math.log10(10.0 * guess)), t1_max), True
    else:
        horizon, auto = t1, False
    start = time.perf_counter()
    attempts = evaluations = 0
    previous = None
    while True:
        attempts += 1
        grid = _save_grid(horizon, points_per_decade)
        if use_reduced:
            assert rp is not None
            traj, state = _reduced(rp, horizon, init, grid, previous)
            previous = (traj, state)
            evaluations = int(traj.stats["n_evals"] or 0)  # the joined run's total
        else:
            traj = gradient_flow(problem, horizon, init=init, saveat=grid)
            evaluations += int(traj.stats["n_evals"] or 0)
        ph = detect_phases(traj, metric_design, which=which, etf_tol=etf_tol, min_strength=min_strength)
        if not auto or not traj.ok:
            break
        found = [v for v in ph.times.values() if v is not None]
        complete = ph.etf_time is not None and (ph.collapse is not None or ph.onset is None)
        margin = not found or traj.ts[-1] >= 10.0 * max(found)
        if (complete and margin) or horizon >= t1_max:
            break
        horizon = min(horizon * 10.0, t1_max)

    t_end = float(traj.ts[-1])
    message = ""
    if not traj.ok:
        status, message = traj.status, f"solver: {traj.message}"
    elif ph.peak is None:
        status, message = "nonfinite", "no finite semantic strength"
    elif ph.onset is not None and ph.collapse is None:
        status, message = "failed", f"no collapse up to t = {t_end:.3g}"
    elif ph.etf_time is None:
        status, message = "failed", f"ETF distance not below {etf_tol} at t = {t_end:.3g}"
    else:
        status = "ok"
    stats: dict[str, Any] = {
        "n_evals": evaluations,
        "wall_time_s": time.perf_counter() - start,
        "t1": t_end,
        "saved": len(traj),
        "points_per_decade": points_per_decade,
        "attempts": attempts,
        "solver": traj.method,
        "scale": scale,
    }
    if init_stats:
        stats["init"] = init_stats
    return dataclasses.replace(
        ph,
        method=method_name,
        estimates=estimates,
        status=status,
        message=message,
        stats=stats,
        trajectory=traj,
    )
