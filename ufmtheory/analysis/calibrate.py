"""Calibrate the theory once on one design's trained runs, then predict held-out designs with no refit.

Three steps (issue 9):

1. **Input geometry from the model itself** (:func:`input_geometry`): the trained model's step-0 context
   Gram ``G₀ = HᵀH`` (before any training) says how much two contexts share by their inputs alone. Least
   squares of the centred ``G₀`` on ``span{C XᵀX C, C}`` (``C = I - 11ᵀ/m``) gives
   ``G₀ ≈ c_attr XᵀX + c_free I`` (up to a constant), the modified UFM's kernel ``α² XᵀX + β² I`` at
   initialisation, so ``ρ = sqrt(c_attr / c_free)`` estimates ``α/β`` of *this* model on *this* design's
   encoding. A design whose last token is a per-context id (hierarchical leaves) starts near-isotropic:
   small ``ρ``. Factorial designs read ``<bos> a₁ … a_F`` and share the last token with a third of the
   contexts: larger ``ρ``.
2. **Calibrate** (:func:`calibrate`): on ONE design's runs (all seeds) and on the same clock (the model's
   optimiser, learning rate and steps; :func:`ufmtheory.analysis.compare.same_clock_theory`), a grid
   search over the free parameters of a family of modified UFMs (``α``, ``β``; the ridge ``λ`` for the
   ridge family; the normalisation radius is ``sqrt(dim)`` as a final LayerNorm gives; the init std is
   the GPT's 0.02) minimises the mean RMS difference of the semantic-strength curves of H and W over the
   seeds. A best point on the edge of the grid is reported as ``status="inaccurate"`` (``at_bound``).
3. **Predict** (:func:`validate`): on held-out designs, with no refit, the calibrated problem, with
   ``α`` rescaled by the input geometry (``α_design = α_cal · ρ_design / ρ_cal`` for
   ``alpha_rule="geometry"``, or kept for ``"fixed"``), runs on each held-out run's clock and init seed;
   the phase times (onset, peak, collapse, ETF time of H and W) and heights (peak and final strength) are
   set beside the measured ones as predicted/measured ratios, with their spread over seeds.

Example:
    >>> import numpy as np, ufmtheory as ut
    >>> from ufmtheory.analysis.calibrate import input_geometry
    >>> d = ut.designs.factorial((3, 3))
    >>> G0 = 4.0 * d.X.T @ d.X + 1.0 * np.eye(9) + 0.5  # alpha/beta = 2, plus a shared constant
    >>> round(input_geometry(G0, d).alpha_over_beta, 6)
    2.0
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ufmtheory._format import finite_or_none as _num
from ufmtheory.analysis.compare import compare, run_status, same_clock_theory
from ufmtheory.analysis.phases import PHASE_NAMES, detect_phases
from ufmtheory.metrics import trajectory_metrics
from ufmtheory.models import ModifiedUFM
from ufmtheory.trajectory import Trajectory

__all__ = [
    "InputGeometry",
    "Calibration",
    "Validation",
    "FAMILIES",
    "input_geometry",
    "model_input_geometry",
    "calibrate",
    "validate",
    "QUANTITIES",
]

FAMILIES = ("normalized", "ridge")
"""``"normalized"``: modified UFM with every context's feature on the sphere of radius ``sqrt(dim)`` (the
GPT's final LayerNorm), no ridge; ``"ridge"``: unnormalised, ridge on H and W with a fitted ``λ``."""

QUANTITIES = tuple(f"{w} {p}" for w in ("W", "H") for p in PHASE_NAMES) + (
    "W peak height",
    "H peak height",
    "W final height",
    "H final height",
    "W final etf_distance",
    "H final etf_distance",
)
"""The predicted quantities: phase times (steps), heights (semantic strength: peak and final) and the final
ETF distance of W and H."""

_DEFAULT_GRID = {
    # Normalised features depend on α and β only through α/β (N(c E X̃) = N(E X̃), so the loss as a function
    # of E is the same): β = 1 and α is the ratio.
    "normalized": {"alpha": (1.0, 1.5, 2.0, 3.0, 4.5, 6.0, 9.0), "beta": (1.0,)},
    "ridge": {"alpha": (1.0, 2.0, 3.0, 4.5), "beta": (0.5, 1.0, 2.0), "lam": (1e-3, 1e-2)},
}


# -- 1. input geometry -----------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class InputGeometry:
    """The input geometry of a context Gram (:func:`input_geometry`): shared vs free energy.

    Attributes:
        alpha_over_beta: ``sqrt(c_attr / c_free)`` (``nan`` when either coefficient is not positive).
        c_attr, c_free: the fitted coefficients.
        r2: the fraction of the centred Gram's energy the two terms explain.
        status: ``"ok"``, or ``"inaccurate"`` when a coefficient is not positive or ``r2 < 0.5``.
        message: why.
    """

    alpha_over_beta: float
    c_attr: float
    c_free: float
    r2: float
    status: str = "ok"
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "alpha_over_beta": _num(self.alpha_over_beta),
            "c_attr": _num(self.c_attr),
            "c_free": _num(self.c_free),
            "r2": _num(self.r2),
            "status": self.status,
            "message": self.message,
        }


def input_geometry(gram_H0: Any, design: Any) -> InputGeometry:
    """The shared-vs-free energy split of a context Gram, as the modified UFM's ``α/β`` (module docstring).

    Non-negative least squares of the centred Gram on one term per attribute plus the identity,
    ``C G₀ C ≈ Σ_i w_i C x_i x_iᵀ C + c_free C`` (``x_i``: row i of ``X``, ``C = I - 11ᵀ/m``): a trained
    model at initialisation weighs its input tokens unequally (the last token dominates a GPT's last
    position), so one weight per attribute row is needed to see how much of the Gram is *shared*. The
    equivalent modified UFM puts the same fraction of the centred energy on the attribute path:
    ``(α/β)² = (E_shared / tr(C XᵀX C)) / (E_free / tr C)`` with ``E_shared = Σ_i w_i ‖C x_i‖²`` and
    ``E_free = c_free tr C``. For ``G₀ = α² XᵀX + β² I (+ const)`` this returns exactly ``α/β``.

    Args:
        gram_H0: (m, m) context Gram (e.g. a trained model's ``gram_H[0]``).
        design: the design (``X: (p, m)``, ``p > 0``).

    Returns:
        :class:`InputGeometry` (``c_attr = E_shared / tr(C XᵀX C)``, ``c_free``; ``r2`` the fraction of
        the centred Gram's energy explained).
    """
    from scipy.optimize import nnls

    G = np.asarray(gram_H0, dtype=np.float64)
    m = design.m
    if G.shape != (m, m):
        raise ValueError(f"gram_H0 must have shape ({m}, {m}) for this design, got {G.shape}")
    if not np.all(np.isfinite(G)):
        raise ValueError("gram_H0 contains NaN or inf")
    if design.p == 0:
        raise ValueError("input_geometry needs a design with latent attributes (p > 0)")
    C = np.eye(m) - 1.0 / m
    X = np.asarray(design.X, dtype=np.float64)
    Xc = X @ C  # (p, m): centred attribute rows
    keep = np.linalg.norm(Xc, axis=1) > 1e-12  # an attribute every context carries has no centred part
    Xc = Xc[keep]
    Gc = C @ G @ C
    cols = [np.outer(x, x).ravel() for x in Xc] + [C.ravel()]
    M = np.stack(cols, axis=1)
    scale = float(np.abs(Gc).max()) or 1.0
    coef, _ = nnls(M, Gc.ravel() / scale)
    coef = coef * scale
    w, c_free = coef[:-1], float(coef[-1])
    e_shared = float(np.sum(w * (Xc * Xc).sum(axis=1)))
    c_attr = e_shared / float(np.trace(Xc.T @ Xc))
    resid = Gc.ravel() - M @ coef
    energy = float(Gc.ravel() @ Gc.ravel())
    r2 = 1.0 - float(resid @ resid) / energy if energy > 0 else math.nan
    status, message = "ok", ""
    ratio = math.sqrt(c_attr / c_free) if c_attr > 0 and c_free > 0 else math.nan
    if c_free <= 0 < c_attr:
        ratio = math.inf
    if not math.isfinite(ratio):
        status = "inaccurate"
        message = f"a fitted energy is not positive (shared {c_attr:.3g}, free {c_free:.3g})"
    elif not r2 >= 0.5:
        status, message = "inaccurate", f"the attribute rows and I explain only {r2:.0%} of the centred Gram"
    return InputGeometry(
        alpha_over_beta=ratio, c_attr=c_attr, c_free=c_free, r2=r2, status=status, message=message
    )


def model_input_geometry(runs: Sequence[Trajectory], design: Any) -> InputGeometry:
    """:func:`input_geometry` of the step-0 Gram averaged over ``runs`` (each run's Gram scaled to unit
    trace first, so every seed counts the same)."""
    runs = _check_runs(runs, "runs")
    grams = []
    for r in runs:
        G = np.asarray(r.gram_H[0], dtype=np.float64)
        grams.append(G / max(float(np.trace(G)), 1e-300))
    return input_geometry(np.mean(grams, axis=0), design)


# -- 2. calibration ---------------------------------------------------------------------------------------
def _check_runs(runs: Any, name: str) -> list[Trajectory]:
    if isinstance(runs, Trajectory):
        runs = [runs]
    if not isinstance(runs, Sequence) or isinstance(runs, str) or not runs:
        raise ValueError(f"{name} must be a non-empty list of trained-model Trajectories")
    for r in runs:
        if not isinstance(r, Trajectory):
            raise ValueError(f"{name} must hold Trajectories, got {type(r).__name__}")
        if r.time_unit != "step":
            raise ValueError(f"{name} must be trained models on optimiser steps (time_unit='step')")
    return list(runs)


def _run_seed(run: Trajectory, default: int) -> int:
    cfg = run.meta.get("config", {}) if isinstance(run.meta, dict) else {}
    return int(cfg.get("seed", default)) if isinstance(cfg, dict) else default


def _width(run: Trajectory) -> int | None:
    model = run.meta.get("model", {}) if isinstance(run.meta, dict) else {}
    cfg = run.meta.get("config", {}) if isinstance(run.meta, dict) else {}
    for src in (model, cfg):
        if isinstance(src, dict) and isinstance(src.get("width"), int):
            return int(src["width"])
    return None


def _strength_rms(theory: Trajectory, model: Trajectory, design: Any) -> float:
    """Mean over H and W of the RMS semantic-strength difference at the model's positive steps."""
    out = []
    for w in ("H", "W"):
        mt = trajectory_metrics(model, design, which=w)
        tt = trajectory_metrics(theory, design, which=w)
        pos = mt["ts"] > 0
        tpos = tt["ts"] > 0
        s_model = np.asarray(mt["semantic_strength"])[pos]
        s_th = np.interp(
            np.log(mt["ts"][pos]), np.log(tt["ts"][tpos]), np.asarray(tt["semantic_strength"])[tpos]
        )
        d = s_model - s_th
        d = d[np.isfinite(d)]
        out.append(float(np.sqrt(np.mean(d * d))) if d.size else math.nan)
    return float(np.mean(out))


@dataclass(frozen=True, kw_only=True)
class Calibration:
    """The calibrated theory (see the module docstring).

    Attributes:
        family: ``"normalized"`` or ``"ridge"``.
        design_name: the calibration design's label.
        params: the fitted parameters: ``alpha``, ``beta``, ``lam`` (ridge family), ``normalize``, ``dim``,
            ``init_std``.
        geometry: the calibration design's :class:`InputGeometry` (``ρ_cal``).
        alpha_rule: ``"geometry"`` or ``"fixed"`` (how α moves to a held-out design).
        objective: mean RMS semantic-strength error (H and W, over the seeds) at the best point.
        grid: ``[{params..., "objective": value}]`` for every grid point scored.
        status: ``"ok"``; ``"inaccurate"`` when the best point sits on the edge of the grid or the geometry
            estimate failed; the status of the runs when they blew up.
        message: why.
        stats: ``n_evals`` (theory runs), ``wall_time_s``.
    """

    family: str
    design_name: str
    params: dict[str, Any]
    geometry: InputGeometry
    alpha_rule: str
    objective: float
    grid: list[dict[str, Any]] = field(default_factory=list, repr=False)
    status: str = "ok"
    message: str = ""
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def alpha_for(self, geometry: InputGeometry | None) -> float:
        """``α`` on a design of the given input geometry (``alpha_rule``; ``"fixed"`` or a failed geometry
        estimate keep the calibrated ``α``)."""
        alpha = float(self.params["alpha"])
        if self.alpha_rule != "geometry" or geometry is None:
            return alpha
        r_cal, r_new = self.geometry.alpha_over_beta, geometry.alpha_over_beta
        if not (math.isfinite(r_cal) and math.isfinite(r_new) and r_cal > 0):
            return alpha
        return alpha * r_new / r_cal

    def problem(self, design: Any, geometry: InputGeometry | None = None) -> ModifiedUFM:
        """The calibrated modified UFM on ``design`` (``α`` from :meth:`alpha_for`)."""
        p = self.params
        alpha = self.alpha_for(geometry)
        if self.family == "normalized":
            return ModifiedUFM(
                design, dim=p["dim"], alpha=alpha, beta=p["beta"], ridge="E", normalize=p["normalize"]
            )
        return ModifiedUFM(
            design, dim=p["dim"], alpha=alpha, beta=p["beta"], ridge="H", lam_W=p["lam"], lam_H=p["lam"]
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "design": self.design_name,
            "params": {k: _num(v) if isinstance(v, float) else v for k, v in self.params.items()},
            "geometry": self.geometry.as_dict(),
            "alpha_rule": self.alpha_rule,
            "objective": _num(self.objective),
            "grid": [{k: _num(v) if isinstance(v, float) else v for k, v in g.items()} for g in self.grid],
            "status": self.status,
            "message": self.message,
            "stats": self.stats,
        }


def calibrate(
    runs: Sequence[Trajectory],
    design: Any,
    family: str = "normalized",
    *,
    design_name: str = "calibration design",
    grid: Mapping[str, Sequence[float]] | None = None,
    dim: int | None = None,
    init_std: float = 0.02,
    alpha_rule: str = "geometry",
    grid_seeds: int = 1,
) -> Calibration:
    """Fit a family's free parameters on ONE design's trained runs, on the runs' own clock.

    Args:
        runs: the trained model's trajectories on ``design`` (one per seed, ``time_unit="step"``, with
            ``meta["config"]`` from :func:`ufmtheory.baseline.train`: optimiser, lr, steps, seed).
        design: the calibration design (``p > 0``).
        family: ``"normalized"`` or ``"ridge"`` (:data:`FAMILIES`).
        design_name: a label for reports.
        grid: ``{"alpha": [...], "beta": [...], "lam": [...]}`` (defaults per family in the module).
        dim: feature dimension (default: the model's width from its meta, else ``m``).
        init_std: std of the theory's initial parameters (the GPT's 0.02).
        alpha_rule: ``"geometry"`` (α follows the input geometry on held-out designs) or ``"fixed"``.
        grid_seeds: how many of the runs score each grid point (the first ones; the best point is then
            scored on all runs).

    Returns:
        :class:`Calibration`.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    if alpha_rule not in ("geometry", "fixed"):
        raise ValueError(f"alpha_rule must be 'geometry' or 'fixed', got {alpha_rule!r}")
    if design is None or getattr(design, "p", 0) == 0:
        raise ValueError("calibrate needs a design with latent attributes (p > 0)")
    runs = _check_runs(runs, "runs")
    if isinstance(grid_seeds, bool) or not isinstance(grid_seeds, int) or grid_seeds < 1:
        raise ValueError(f"grid_seeds must be an integer >= 1, got {grid_seeds!r}")
    grid_d = dict(_DEFAULT_GRID[family])
    if grid is not None:
        unknown = set(grid) - set(grid_d)
        if unknown:
            raise ValueError(f"grid has unknown parameters {sorted(unknown)} for family {family!r}")
        grid_d.update({k: tuple(float(x) for x in v) for k, v in grid.items()})
    for k, vals in grid_d.items():
        if not vals or any(not (math.isfinite(v) and v >= 0) for v in vals):
            raise ValueError(f"grid[{k!r}] must be a non-empty list of finite numbers >= 0")
    dim = dim or _width(runs[0]) or design.m
    start = time.perf_counter()
    blown = [(i, run_status(r)) for i, r in enumerate(runs)]
    bad = [(i, s) for i, s in blown if s[0] != "ok"]
    usable = [r for r, (_, s) in zip(runs, blown, strict=True) if s[0] == "ok"]
    geometry = model_input_geometry(runs, design)
    base = {"normalize": math.sqrt(dim), "dim": int(dim), "init_std": float(init_std)}
    if family == "ridge":
        base["normalize"] = None
    if not usable:
        return Calibration(
            family=family,
            design_name=design_name,
            params={**base, "alpha": math.nan, "beta": math.nan},
            geometry=geometry,
            alpha_rule=alpha_rule,
            objective=math.nan,
            status=bad[0][1][0],
            message=f"every calibration run failed: {bad[0][1][1]}",
        )

    keys = list(grid_d)
    points = [dict(zip(keys, vals, strict=True)) for vals in _product([grid_d[k] for k in keys])]
    scored: list[dict[str, Any]] = []
    n_evals = 0

    def score(params: dict[str, Any], which_runs: list[Trajectory]) -> float:
        nonlocal n_evals
        cal = Calibration(
            family=family,
            design_name=design_name,
            params={**base, **params},
            geometry=geometry,
            alpha_rule="fixed",
            objective=math.nan,
        )
        prob = cal.problem(design)
        errs = []
        for i, r in enumerate(which_runs):
            th = same_clock_theory(prob, r, init_std=init_std, seed=_run_seed(r, i))
            n_evals += 1
            errs.append(_strength_rms(th, r, design) if run_status(th)[0] == "ok" else math.inf)
        return float(np.mean(errs))

    for pt in points:
        scored.append({**pt, "objective": score(pt, usable[:grid_seeds])})
    finite = [g for g in scored if math.isfinite(g["objective"])]
    if not finite:
        return Calibration(
            family=family,
            design_name=design_name,
            params={**base, **points[0]},
            geometry=geometry,
            alpha_rule=alpha_rule,
            objective=math.nan,
            grid=scored,
            status="failed",
            message="every theory run in the grid blew up",
            stats={"n_evals": n_evals},
        )
    best = min(finite, key=lambda g: g["objective"])
    best_params = {k: best[k] for k in keys}
    objective = score(best_params, usable) if len(usable) > grid_seeds else best["objective"]
    status, msgs = "ok", []
    if not math.isfinite(objective):
        # the grid's best point blew up on a seed outside the grid subset: not a calibration
        status = "nonfinite"
        msgs.append(f"the best grid point's theory run blew up on one of all {len(usable)} seeds")
    edges = [k for k in keys if len(grid_d[k]) > 1 and best[k] in (min(grid_d[k]), max(grid_d[k]))]
    if edges:
        status = "inaccurate" if status == "ok" else status
        msgs.append(
            f"at_bound: the best {', '.join(f'{k}={best[k]:g}' for k in edges)} is on the edge of the grid"
        )
    if alpha_rule == "geometry" and not geometry.ok:
        status = "inaccurate" if status == "ok" else status
        msgs.append(f"input geometry: {geometry.message}")
    if bad:
        msgs.append(f"{len(bad)} of {len(runs)} runs skipped ({bad[0][1][0]}: {bad[0][1][1]})")
    return Calibration(
        family=family,
        design_name=design_name,
        params={**base, **best_params},
        geometry=geometry,
        alpha_rule=alpha_rule,
        objective=objective,
        grid=scored,
        status=status,
        message="; ".join(msgs),
        stats={"n_evals": n_evals, "wall_time_s": time.perf_counter() - start, "n_runs": len(usable)},
    )


def _product(lists: list[Sequence[float]]) -> list[tuple[float, ...]]:
    out: list[tuple[float, ...]] = [()]
    for vals in lists:
        out = [o + (v,) for o in out for v in vals]
    return out


# -- 3. prediction on held-out designs --------------------------------------------------------------------
def _quantities(traj: Trajectory, design: Any) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for w in ("W", "H"):
        ph = detect_phases(traj, design, which=w)
        for name in PHASE_NAMES:
            out[f"{w} {name}"] = ph.times[name]
        out[f"{w} peak height"] = _num(ph.peak_strength)
        s = np.asarray(ph.curves.get("semantic_strength", [np.nan]), dtype=np.float64)
        out[f"{w} final height"] = _num(float(s[-1])) if s.size else None
        e = np.asarray(ph.curves.get("etf_distance", [np.nan]), dtype=np.float64)
        out[f"{w} final etf_distance"] = _num(float(e[-1])) if e.size else None
    return out


def _ratio(pred: float | None, meas: float | None) -> float | None:
    if pred is None or meas is None or not (math.isfinite(pred) and math.isfinite(meas)):
        return None
    if meas <= 0 or pred <= 0:
        return None  # a time 0 (phase present at initialisation) or a height at or below its ETF value
    return pred / meas


def _spread(values: list[float | None]) -> dict[str, Any]:
    """Geometric mean and min/max of positive ratios (``n`` of them; ``missing``: seeds without one)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0, "missing": len(values)}
    return {
        "median": float(np.median(vals)),
        "min": float(min(vals)),
        "max": float(max(vals)),
        "n": len(vals),
        "missing": len(values) - len(vals),
    }


@dataclass(frozen=True, kw_only=True)
class Validation:
    """Predicted vs measured on held-out designs (see :func:`validate`).

    Attributes:
        calibration: the :class:`Calibration` used (no refit).
        rows: one dict per (design, seed): ``design``, ``seed``, ``alpha``, ``geometry``, ``predicted``,
            ``measured`` (``{quantity: value}``), ``ratio`` (``{quantity: predicted/measured or None}``),
            ``status``, ``message``.
        summary: ``{design: {quantity: {"median", "min", "max", "n", "missing"}}}`` over seeds, plus the
            fraction of seeds where the phase is present in the prediction and in the measurement.
        status: ``"ok"``, or the worst status of the rows / the calibration.
        message: why.
        stats: ``n_evals``, ``wall_time_s``.
        theories: ``{design: [same-clock theory Trajectory per seed]}`` (for figures).
    """

    calibration: Calibration
    rows: list[dict[str, Any]]
    summary: dict[str, dict[str, dict[str, Any]]]
    status: str = "ok"
    message: str = ""
    stats: dict[str, Any] = field(default_factory=dict)
    theories: dict[str, list[Trajectory]] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "calibration": self.calibration.as_dict(),
            "rows": self.rows,
            "summary": self.summary,
            "status": self.status,
            "message": self.message,
            "stats": self.stats,
        }

    def table(
        self,
        quantities: Sequence[str] = (
            "W onset",
            "W peak",
            "W collapse",
            "H collapse",
            "W etf_time",
            "W peak height",
            "H peak height",
            "W final etf_distance",
            "curve RMS W",
            "curve RMS H",
        ),
    ) -> str:
        """Markdown table: design × quantity, median predicted/measured ratio [min-max] over seeds (the
        ``curve RMS`` columns are RMS differences of the strength curves, not ratios)."""
        head = "| design | " + " | ".join(quantities) + " |"
        lines = [head, "|" + "---|" * (len(quantities) + 1)]
        for name, q in self.summary.items():
            cells = [_cell(q.get(k, {}), ratio=not k.startswith("curve RMS")) for k in quantities]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _short(x: float) -> str:
    return f"{x:.2f}" if 0.01 <= abs(x) < 1000 else f"{x:.1e}"


def _cell(s: dict[str, Any], ratio: bool = True) -> str:
    if not s or s.get("n", 0) == 0:
        return s.get("why", "n/a") if s else "n/a"
    cell = ("×" if ratio else "") + _short(s["median"])
    if s["n"] > 1:
        cell += f" [{_short(s['min'])}–{_short(s['max'])}]"
    if s.get("blown_up"):
        cell += f" ({s['blown_up']} {s['blown_status']})"
    elif s.get("missing"):
        cell += f" ({s['missing']} n/a)"
    return cell


def validate(
    calibration: Calibration,
    cases: Mapping[str, tuple[Any, Sequence[Trajectory]]],
) -> Validation:
    """Predict held-out designs with the calibrated theory (no refit) and score the predictions.

    Args:
        calibration: from :func:`calibrate`.
        cases: ``{design name: (design, runs)}``: each design's trained runs (one per seed); every run is
            predicted by the calibrated problem on its own clock (optimiser, lr, steps) from its own seed.

    Returns:
        :class:`Validation`: per-seed rows and the per-design summary of predicted/measured ratios. A run
        that blew up is a row with its status (``"diverged"``, ``"nonfinite"``), not an error.
    """
    if not isinstance(calibration, Calibration):
        raise TypeError(f"calibration must be a Calibration, got {type(calibration).__name__}")
    if not isinstance(cases, Mapping) or not cases:
        raise ValueError("cases must be a non-empty {name: (design, runs)} mapping")
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    worst = "ok"
    n_evals = 0
    theories: dict[str, list[Trajectory]] = {}
    for name, case in cases.items():
        if not (isinstance(case, tuple) and len(case) == 2):
            raise ValueError(f"cases[{name!r}] must be a (design, runs) pair")
        design, runs = case
        runs = _check_runs(runs, f"cases[{name!r}] runs")
        geometry = model_input_geometry(runs, design)
        prob = calibration.problem(design, geometry)
        design_rows = []
        theories[name] = []
        for i, run in enumerate(runs):
            seed = _run_seed(run, i)
            row: dict[str, Any] = {
                "design": name,
                "seed": seed,
                "alpha": prob.alpha,
                "geometry": geometry.as_dict(),
            }
            st, msg = run_status(run)
            if st != "ok":
                row.update(status=st, message=f"model run: {msg}", predicted={}, measured={}, ratio={})
                worst = st if worst == "ok" else worst
                rows.append(row)
                design_rows.append(row)
                continue
            th = same_clock_theory(prob, run, init_std=calibration.params["init_std"], seed=seed)
            n_evals += 1
            theories[name].append(th)
            tst, tmsg = run_status(th)
            # A theory run that blew up predicts nothing: its partial curve is kept, its ratios are not.
            pred = _quantities(th, design) if tst == "ok" or th.ts.size >= 3 else {}
            meas = _quantities(run, design)
            ratio = {q: _ratio(pred.get(q), meas.get(q)) if tst == "ok" else None for q in QUANTITIES}
            cmp = compare(th, run, design, clock="same")
            row.update(
                status=tst if tst != "ok" else "ok",
                message=f"theory run: {tmsg}" if tst != "ok" else "",
                predicted=pred,
                measured=meas,
                ratio=ratio,
                curve_rms={w: _num(cmp.errors[w]["semantic_strength"]) for w in ("H", "W")},
            )
            if tst != "ok" and worst == "ok":
                worst = tst
            rows.append(row)
            design_rows.append(row)
        q_summary: dict[str, dict[str, Any]] = {}
        for q in QUANTITIES:
            s = _spread([r.get("ratio", {}).get(q) for r in design_rows])
            n_pred = sum(r.get("predicted", {}).get(q) is not None for r in design_rows)
            n_meas = sum(r.get("measured", {}).get(q) is not None for r in design_rows)
            s["present_predicted"], s["present_measured"] = n_pred, n_meas
            blown = [r["status"] for r in design_rows if r.get("status", "ok") != "ok"]
            s["blown_up"] = len(blown)
            s["blown_status"] = blown[0] if blown else None
            if s["n"] == 0 and blown and len(blown) == len(design_rows):
                s["why"] = f"every run {blown[0]}"
            elif s["n"] == 0:
                s["why"] = (
                    "not in model"
                    if n_meas == 0 and n_pred > 0
                    else "not in theory"
                    if n_pred == 0 and n_meas > 0
                    else "in neither"
                    if n_pred == 0
                    else "at step 0"
                )
            q_summary[q] = s
        for w in ("W", "H"):
            # Not a ratio: the RMS difference of the strength curves on the same clock (0 is perfect).
            q_summary[f"curve RMS {w}"] = _spread([r.get("curve_rms", {}).get(w) for r in design_rows])
        summary[name] = q_summary
    status = worst
    message = ""
    if worst != "ok":
        bad = [r for r in rows if r.get("status", "ok") != "ok"]
        message = f"{len(bad)} of {len(rows)} runs did not finish ({bad[0]['status']}: {bad[0]['message']})"
    if status == "ok" and not calibration.ok:
        status, message = calibration.status, f"calibration: {calibration.message}"
    return Validation(
        calibration=calibration,
        rows=rows,
        summary=summary,
        status=status,
        message=message,
        stats={"n_evals": n_evals, "wall_time_s": time.perf_counter() - start},
        theories=theories,
    )
