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

from ufmtheory._format import finite_or_none as _num
from ufmtheory._format import format_number as _fmt
from ufmtheory._format import to_jsonable
from ufmtheory.algebra.schemes import AssociationScheme, scheme
from ufmtheory.metrics import phase_times, trajectory_metrics
from ufmtheory.models import UFM, ModifiedUFM, check_nonnegative
from ufmtheory.solvers.reduced import ReducedProblem, aligned_full_init, reduced_solve
from ufmtheory.trajectory import Trajectory, log_grid

__all__ = [
    "Phases",
    "detect_phases",
    "predict_phases",
    "phase_estimates",
]

PHASE_NAMES = ("onset", "peak", "collapse", "etf_time")
"""The four phase times, in order."""

_REL_TOL = 1e-10  # as ufmtheory.metrics: a centred Gram this small relative to the Gram has no direction
_MIN_STRENGTH = 1e-8


# -- result ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Phases:
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
        status: ``"ok"`` or why a time is missing (e.g. ``"no collapse up to t = 1e12"``).
        stats: run statistics (``t1``, ``saved``, ``attempts``, ``wall_time``, initial coefficients, ...).
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
    stats: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    trajectory: Trajectory | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.which not in ("H", "W"):
            raise ValueError(f"which must be 'H' or 'W', got {self.which!r}")
        if self.time_unit not in ("gf", "step"):
            raise ValueError(f"time_unit must be 'gf' or 'step', got {self.time_unit!r}")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

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
    etf_tol = check_nonnegative("etf_tol", etf_tol)
    if etf_tol == 0:
        raise ValueError("etf_tol must be > 0")
    return etf_tol


def detect_phases(
    trajectory: Trajectory,
    design: Any,
    which: str = "H",
    etf_tol: float = 0.05,
    *,
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
        if not _mode_masks(design)[0].any():
            raise ValueError("detect_phases needs a scheme with attribute modes to measure semantics")
    elif design is None or getattr(design, "p", 0) == 0:
        raise ValueError("detect_phases needs a design with latent attributes (p > 0) to measure semantics")
    if not isinstance(trajectory, Trajectory):
        raise TypeError(f"trajectory must be a ufmtheory Trajectory, got {type(trajectory).__name__}")
    m = trajectory_metrics(trajectory, design, which=which)
    ts, strength, etf = m["ts"], m["semantic_strength"], m["etf_distance"]
    out = _phases_from_curves(ts, strength, etf, etf_tol, min_strength)
    status = "ok" if trajectory.ok else f"trajectory: {trajectory.status}"
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
        stats={"saved": len(trajectory), "t_end": float(ts[-1]), "trajectory_status": trajectory.status},
        curves={"ts": ts, "semantic_strength": strength, "etf_distance": etf},
    )


# -- modes of a scheme ------------------------------------------------------------------------------------
def _mode_masks(sch: AssociationScheme) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks ``(attr, free)`` over ``sch.labels``.

    ``attr``: the modes spanning the centred attribute indicators (factorial: main effects ``{f}``;
    hierarchical: levels ``1..D-1``), whose sum is :func:`ufmtheory.metrics.attribute_projector` of the
    design. ``free``: the modes only the per-context channel reaches (factorial: interactions ``|S| >= 2``;
    hierarchical: the leaf level ``D``). The trivial mode (``∅`` / level 0) is in neither.
    """
    if sch.kind == "factorial":
        attr = np.array([len(S) == 1 for S in sch.labels])
        free = np.array([len(S) >= 2 for S in sch.labels])
    else:
        D = sch.params["depth"]
        attr = np.array([1 <= level <= D - 1 for level in sch.labels])
        free = np.array([level == D for level in sch.labels])
    return attr, free


# -- the semantic saddle and the closed-form estimates ----------------------------------------------------
def _reduced(rp: ReducedProblem, t1: float, **kwargs: Any) -> Any:
    """:func:`~ufmtheory.reduced_solve` with structured Grams (nothing K×K is built here)."""
    return reduced_solve(rp, t1, structured=True, **kwargs)


def _escape_matrix(rp: ReducedProblem, g: float, kappa: float) -> np.ndarray:
    """Linearisation of one mode's ``(w_S, h_S)`` at a point where that mode is 0 and ``g_S = g``."""
    damp_h = kappa * rp.lam_X if rp.ridge == "H" else rp.lam_X
    return np.array([[-rp.lam_W, g], [kappa * g, -damp_h]])


def _saddle_here(rp: ReducedProblem, init_scale: float) -> dict[str, Any] | None:
    """The semantic saddle from the reduced ODE, for schemes ``equilibria.semantic_saddle`` refuses.

    The free (interaction / leaf) modes vanish on an invariant subspace; inside it the flow from a small
    balanced init converges (ridge on W and on the features) to the saddle, which a root finder polishes.
    ``μ`` is the top eigenvalue over free modes of ``[[-λ_W, g_S*], [κ_S g_S*, -κ_S λ_H]]`` (ridge H;
    ``-λ_E`` in the corner for ridge E).
    """
    # TODO: drop once equilibria.semantic_saddle accepts K > 4096 (it refuses only to build K×K Grams).
    from scipy.optimize import root

    from ufmtheory.solvers.symbolic import compile_reduced

    sch = rp.scheme
    attr, free = _mode_masks(sch)
    fn = compile_reduced(sch.counts, sch.exact_table, sch.ranks, rp.ridge)
    w0 = np.where(attr, init_scale, 0.0)
    h0 = np.sqrt(rp.kappa) * w0
    slow = min(rp.lam_W, rp.lam_X * (float(rp.kappa[attr].min()) if rp.ridge == "H" else 1.0))
    t_relax = min(1e4 / slow, 1e14)
    sol = _reduced(rp, t_relax, init=(w0, h0), saveat=np.array([0.0, t_relax]))
    w, h = sol.w[-1].copy(), sol.h[-1].copy()
    idx = np.flatnonzero(attr)

    def resid(x: np.ndarray) -> np.ndarray:
        ww, hh = np.zeros(sch.n_S), np.zeros(sch.n_S)
        ww[idx], hh[idx] = x[: idx.size], x[idx.size :]
        r = fn.rhs(ww, hh, rp.kappa, rp.lam_W, rp.lam_X)
        return np.concatenate([r[: sch.n_S][idx], r[sch.n_S :][idx]])

    x0 = np.concatenate([w[idx], h[idx]])
    polished = root(resid, x0, method="hybr", tol=1e-14)
    if np.all(np.isfinite(polished.x)) and np.abs(resid(polished.x)).max() <= np.abs(resid(x0)).max():
        w[idx], h[idx] = polished.x[: idx.size], polished.x[idx.size :]
    w[~attr] = h[~attr] = 0.0
    q, _ = fn.softmax(w, h)
    g = np.array([float(v) for v in fn.g_q(q)])  # g_∅ is the constant 0
    mu = max(
        float(np.linalg.eigvals(_escape_matrix(rp, float(g[S]), float(rp.kappa[S]))).real.max())
        for S in np.flatnonzero(free)
    )
    return {"w": w, "h": h, "mu": mu, "source": "reduced ODE + root (ufmtheory.analysis.phases)"}


def _saddle(rp: ReducedProblem, problem: Any, init_scale: float) -> dict[str, Any] | None:
    """``{"w", "h", "mu", "source"}`` of the semantic saddle, or ``None`` without a finite one.

    Taken from :func:`ufmtheory.equilibria.semantic_saddle` when it handles the problem (K <= 4096),
    otherwise computed here from the reduced ODE."""
    attr, free = _mode_masks(rp.scheme)
    if rp.lam_W <= 0 or rp.lam_X <= 0 or not attr.any() or not free.any():
        return None
    if getattr(rp, "normalize", None) is not None:
        # The escape-rate block [[-λ_W, g*], [κ g*, -κ λ]] is derived for un-normalised features; the
        # normalised variant has no such closed form, so no t_col estimate is reported for it.
        return None
    from ufmtheory import equilibria

    fn = getattr(equilibria, "semantic_saddle", None)
    if fn is not None:
        try:
            eq = fn(problem if problem is not None else rp)
        except (TypeError, ValueError, NotImplementedError):
            eq = None
        if eq is not None and eq.kind == "semantic" and np.isfinite(eq.stats.get("mu", np.nan)):
            return {
                "w": np.asarray(eq.stats["w"], dtype=np.float64),
                "h": np.asarray(eq.stats["h"], dtype=np.float64),
                "mu": float(eq.stats["mu"]),
                "source": "ufmtheory.equilibria.semantic_saddle",
            }
    return _saddle_here(rp, init_scale)


def phase_estimates(
    rp: ReducedProblem,
    init_scale: float = 1e-3,
    which: str = "H",
    problem: Any = None,
) -> dict[str, Any]:
    """Closed-form phase-time estimates (docs: Theory §7, §11) for a balanced aligned init.

    * ``t_sem = K ln(ℓ*/ℓ₀)/(2 sqrt(κ_attr))`` (:func:`ufmtheory.linear.semantic_time`, ``ℓ* = K``), with
      ``κ_attr`` the largest attribute-mode eigenvalue and ``ℓ₀ = sqrt(κ_attr) init_scale²`` the initial
      logit coefficient ``w_S h_S`` of the balanced init ``w_S = init_scale``, ``h_S = sqrt(κ_S) w_S``.
    * ``t_col = t_sem + ln(δ_end/δ(t_sem))/μ``: ``δ`` is the free-mode coefficient (``h_S`` for
      ``which="H"``, ``w_S`` for ``"W"``), growing at the linearised rate ``μ_lin`` (half the logit rate of
      :func:`ufmtheory.linear.linear_rates` at the origin) until ``t_sem``, so ``δ(t_sem) = δ(0) e^{μ_lin
      t_sem}``, then at the escape rate ``μ`` of the semantic saddle. ``δ_end`` is the free-mode amplitude
      at which the strength falls to half its plateau with the attribute modes at their saddle values:
      free-mode energy ``E_attr (1 - ρ₀)/(1 + ρ₀)`` spread over the free ranks (``ρ₀ = Σ_A m_S/(K-1)``).

    The saddle and ``μ`` come from :func:`ufmtheory.equilibria.semantic_saddle` (K <= 4096), otherwise from
    the reduced ODE integrated inside the attribute-only subspace (``mu_source`` says which). Entries that do
    not apply are ``None`` (no attribute modes; ``κ_attr <= κ_free``: no semantic phase; no ridge: no finite
    saddle).
    """
    from ufmtheory.solvers.linear import linear_rates, semantic_time

    sch = rp.scheme
    K = sch.K
    attr, free = _mode_masks(sch)
    out: dict[str, Any] = {
        "t_sem": None,
        "t_col": None,
        "kappa_attr": None,
        "kappa_free": None,
        "l0": None,
        "growth_rate": None,
        "mu_lin": None,
        "mu": None,
        "mu_source": None,
        "delta_sem": None,
        "delta_end": None,
    }
    if not attr.any():
        return out
    kappa_attr = float(rp.kappa[attr].max())
    out["kappa_attr"] = kappa_attr
    if kappa_attr <= 0 or init_scale <= 0:
        return out
    l0 = math.sqrt(kappa_attr) * init_scale**2
    t_sem = semantic_time(kappa_attr, K, l0)
    out.update(l0=l0, t_sem=t_sem, growth_rate=2.0 * math.sqrt(kappa_attr) / K)
    if not free.any():
        return out
    kappa_free = float(rp.kappa[free].max())
    out["kappa_free"] = kappa_free
    if kappa_free >= kappa_attr:
        return out  # no attribute head start: no semantic phase to escape from
    mu_lin = 0.5 * linear_rates(kappa_free, K, rp.lam_W, rp.lam_X, rp.ridge)
    out["mu_lin"] = mu_lin
    saddle = _saddle(rp, problem, init_scale)
    if saddle is None:
        return out
    mu = saddle["mu"]
    out.update(mu=mu, mu_source=saddle["source"])
    coef = saddle["h"] if which == "H" else saddle["w"]
    ranks = np.array(sch.ranks, dtype=np.float64)
    e_attr = float((coef[attr] ** 2) @ ranks[attr])
    rho0 = ranks[attr].sum() / (K - 1)
    delta_end = math.sqrt(e_attr * (1 - rho0) / (1 + rho0) / ranks[free].sum())
    delta0 = init_scale * (math.sqrt(kappa_free) if which == "H" else 1.0)
    delta_sem = delta0 * math.exp(mu_lin * t_sem)
    out.update(delta_sem=delta_sem, delta_end=delta_end)
    if mu > 0 and delta_end > 0 and delta_sem > 0:
        out["t_col"] = t_sem + max(math.log(delta_end / delta_sem), 0.0) / mu
    return out


# -- prediction ----------------------------------------------------------------------------------------------
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


def _initial_coefficients(rp: ReducedProblem, init_scale: float, radius: float | None) -> tuple[Any, Any]:
    """Balanced aligned init ``w_S = init_scale``, ``h_S = sqrt(κ_S) w_S`` (``S ≠ ∅``).

    With column normalisation (``radius``) the raw features are put on the sphere of that radius instead:
    the normalised flow conserves ``‖E‖`` and moves H at a rate ``∝ (r/‖E x̃_j‖)²``, so a tiny E would be
    an arbitrarily fast (stiff) H rather than a slow start.
    """
    w0 = np.full(rp.scheme.n_S, init_scale)
    w0[0] = 0.0
    h0 = np.sqrt(rp.kappa) * w0
    if radius is not None:
        ranks = np.array(rp.scheme.ranks, dtype=np.float64)
        col = math.sqrt(float((h0**2) @ ranks) / rp.scheme.K)
        if col > 0:
            h0 = h0 * (radius / col)
    return w0, h0


def _symmetric_scheme(problem: Any) -> AssociationScheme | None:
    try:
        return scheme(problem.design)
    except (ValueError, TypeError):
        return None


def predict_phases(
    problem: UFM | ModifiedUFM | ReducedProblem,
    *,
    t1: float | None = None,
    init_scale: float = 1e-3,
    which: str = "H",
    etf_tol: float = 0.05,
    method: str = "reduced",
    points_per_decade: int = 20,
    t_max: float = 1e12,
    min_strength: float = _MIN_STRENGTH,
) -> Phases:
    """Predict the phase times of a (modified) UFM by integrating its gradient flow.

    The exact reduced ODE (:func:`~ufmtheory.reduced_solve`) is integrated from the balanced aligned
    init ``w_S = init_scale``, ``h_S = sqrt(κ_S) w_S`` (``S ≠ ∅``): the Gram structure of a small random
    init (``E[HᵀH] ∝ K_x``, ``E[WWᵀ] ∝ I``) without its noise. Where the reduction does not apply (designs
    other than one-hot factorial/hierarchical, ``dim < K - 1``) or ``method="full"``, the full
    :func:`~ufmtheory.gradient_flow` runs instead, from the same aligned init when the design is symmetric
    and ``dim >= K`` (``method`` ``"full-aligned (...)"``) or from ``init.small(problem, init_scale, seed=0)``
    (``"full-small (...)"``); the reason follows in brackets. With column normalisation the raw features
    start on the sphere of the normalisation radius (the normalised flow conserves ``‖E‖`` and moves H at a
    rate ``∝ (r/‖E x̃_j‖)²``: a tiny E is a stiff, arbitrarily fast H rather than a slow start).

    The times are then read off by :func:`detect_phases` on the run's trajectory, so predicted and detected
    phases share their definitions. Times are saved on a log grid with ``points_per_decade`` points per
    decade from ``min(1e-2, t1/1000)`` to ``t1`` (``curves["ts"]``); a full flow on the same grid from
    ``stats["init"]`` (via :func:`~ufmtheory.solvers.reduced.aligned_full_init`) gives the same phases.

    Args:
        problem: :class:`~ufmtheory.UFM`, :class:`~ufmtheory.ModifiedUFM` or a
            :class:`~ufmtheory.solvers.reduced.ReducedProblem` (no K×K design needed: K = 10⁶ is fine).
        t1: final time; ``None`` (default): start at ten times the closed-form estimate (rounded up to a
            power of 10) and extend by factors of 10 until the collapse and the ETF time are found (or there
            is no semantic phase and the ETF time is found) with a decade of margin, or ``t_max`` is reached.
        init_scale: initial coefficient scale (> 0).
        which: ``"H"`` or ``"W"``: the Gram whose phases are reported.
        etf_tol: ETF-distance tolerance for ``etf_time`` (> 0).
        method: ``"reduced"`` (default; falls back to the full flow where it does not apply) or ``"full"``.
        points_per_decade: save-grid density (>= 1).
        t_max: cap of the automatic horizon.
        min_strength: a peak below this is rounding noise: no semantic phase.

    Returns:
        :class:`Phases` with ``estimates`` from :func:`phase_estimates` (symmetric designs, no
        normalisation), ``stats["init"] = {"w0", "h0"}`` (aligned inits) and ``trajectory`` (the run;
        structured Grams for the reduced flow).
    """
    _check_which(which)
    etf_tol = _check_tol(etf_tol)
    init_scale = check_nonnegative("init_scale", init_scale)
    if init_scale == 0:
        raise ValueError("init_scale must be > 0 (the origin is a critical point)")
    if method not in ("reduced", "full"):
        raise ValueError(f"method must be 'reduced' or 'full', got {method!r}")
    if isinstance(points_per_decade, bool) or not isinstance(points_per_decade, (int, np.integer)):
        raise TypeError("points_per_decade must be an integer")
    if points_per_decade < 1:
        raise ValueError(f"points_per_decade must be >= 1, got {points_per_decade}")
    if t1 is not None:
        t1 = check_nonnegative("t1", t1)
        if t1 == 0:
            raise ValueError("t1 must be > 0")
    t_max = check_nonnegative("t_max", t_max)
    if t_max == 0:
        raise ValueError("t_max must be > 0")
    if isinstance(problem, ReducedProblem) and method == "full":
        raise ValueError("method='full' needs a UFM or ModifiedUFM (a ReducedProblem has no full flow)")

    rp, reason = _reduction(problem)
    radius = getattr(problem, "normalize", None)
    use_reduced = rp is not None and method == "reduced"
    init: Any
    init_stats: dict[str, Any] = {}
    if use_reduced:
        assert rp is not None
        init = _initial_coefficients(rp, init_scale, radius)
        init_stats = {"w0": init[0].tolist(), "h0": init[1].tolist()}
        method_name = "reduced"
        metric_design: Any = rp.scheme
    else:
        reason = reason or "requested"
        metric_design = problem.design
        sch = _symmetric_scheme(problem)
        if sch is not None and problem.dim >= sch.K:
            # The reduced theory's aligned init lifted to the full parameters (raw features with normalize).
            twin = dataclasses.replace(problem, normalize=None) if radius is not None else problem
            rp_twin = ReducedProblem.from_problem(twin)
            w0, h0 = _initial_coefficients(rp_twin, init_scale, radius)
            init = aligned_full_init(twin, w0, h0)
            init_stats = {"w0": w0.tolist(), "h0": h0.tolist()}
            method_name = f"full-aligned ({reason})"
            rp = rp if rp is not None else (rp_twin if radius is None else None)
        else:
            from ufmtheory.solvers.init import small

            init = small(problem, init_scale, seed=0)
            if radius is not None and "E" in init:
                cols = float(np.linalg.norm(init["E"] @ problem.X_tilde, axis=0).mean())
                init["E"] = init["E"] * (radius / cols)
            method_name = f"full-small ({reason}; seed 0)"

    estimates: dict[str, Any] = {}
    if rp is not None and getattr(rp, "normalize", None) is None and radius is None:
        estimates = phase_estimates(rp, init_scale, which, problem=problem)

    if t1 is None:
        guess = max(v for v in (estimates.get("t_col"), estimates.get("t_sem"), 10.0) if v is not None)
        horizon, auto = min(10.0 ** math.ceil(math.log10(10.0 * guess)), t_max), True
    else:
        horizon, auto = t1, False
    start = time.perf_counter()
    attempts = evaluations = 0
    while True:
        attempts += 1
        grid = _save_grid(horizon, points_per_decade)
        if use_reduced:
            assert rp is not None
            traj = _reduced(rp, horizon, init=init, saveat=grid).trajectory
        else:
            from ufmtheory.solvers.flow import gradient_flow

            traj = gradient_flow(problem, horizon, init=init, saveat=grid)
        evaluations += int(traj.stats.get("evaluations", 0))
        ph = detect_phases(traj, metric_design, which, etf_tol, min_strength=min_strength)
        if not auto or not traj.ok:
            break
        found = [v for v in ph.times.values() if v is not None]
        complete = ph.etf_time is not None and (ph.collapse is not None or ph.onset is None)
        margin = not found or traj.ts[-1] >= 10.0 * max(found)
        if (complete and margin) or horizon >= t_max:
            break
        horizon = min(horizon * 10.0, t_max)

    t_end = float(traj.ts[-1])
    if not traj.ok:
        status = f"solver: {traj.status}"
    elif ph.peak is None:
        status = "no finite semantic strength"
    elif ph.onset is not None and ph.collapse is None:
        status = f"no collapse up to t = {t_end:.3g}"
    elif ph.etf_time is None:
        status = f"ETF distance not below {etf_tol} at t = {t_end:.3g}"
    else:
        status = "ok"
    stats: dict[str, Any] = {
        "t1": t_end,
        "saved": len(traj),
        "points_per_decade": points_per_decade,
        "attempts": attempts,
        "evaluations": evaluations,
        "wall_time": time.perf_counter() - start,
        "solver": traj.method,
        "init_scale": init_scale,
    }
    if init_stats:
        stats["init"] = init_stats
    return dataclasses.replace(
        ph, method=method_name, estimates=estimates, status=status, stats=stats, trajectory=traj
    )
