"""Calibrate the theory once on one design's trained runs, then predict held-out designs with no refit.

Three steps (issue 9):

1. **Input geometry from the model itself** (:func:`~ufmtheory.analysis.geometry.input_geometry`): the
   trained model's step-0 context Gram ``G₀ = HᵀH`` (before any training) says how much two contexts share
   by their inputs alone. Least squares of the centred ``G₀`` on ``span{C XᵀX C, C}`` (``C = I - 11ᵀ/m``)
   gives ``G₀ ≈ c_attr XᵀX + c_free I`` (up to a constant), the modified UFM's kernel ``α² XᵀX + β² I`` at
   initialisation, so ``ρ = sqrt(c_attr / c_free)`` estimates ``α/β`` of *this* model on *this* design's
   encoding. A design whose last token is a per-context id (hierarchical leaves) starts near-isotropic:
   small ``ρ``. Factorial designs read ``<bos> a₁ … a_F`` and share the last token with a third of the
   contexts: larger ``ρ``.
2. **Calibrate** (:func:`calibrate`): on ONE design's runs (all seeds) and on the same clock (the model's
   optimiser, learning rate and steps; :func:`ufmtheory.analysis.timemap.same_clock_theory`), a grid
   search over the free parameters of a family of modified UFMs (``α``, ``β``; the ridge ``λ`` for the
   ridge family; the normalisation radius is ``sqrt(dim)`` as a final LayerNorm gives; the init std is
   the GPT's 0.02) minimises the mean RMS difference of the semantic-strength curves of H and W over the
   seeds. A best point on the edge of the grid is reported as ``status="inaccurate"`` (``at_bound``).
3. **Predict** (:func:`~ufmtheory.analysis.validation.validate`): on held-out designs, with no refit, the
   calibrated problem, with ``α`` rescaled by the input geometry (``α_design = α_cal · ρ_design / ρ_cal`` for
   ``alpha_rule="geometry"``, or kept for ``"fixed"``), runs on each held-out run's clock and init seed;
   the phase times (onset, peak, collapse, ETF time of H and W) and heights (peak and final strength) are
   set beside the measured ones as predicted/measured ratios, with their spread over seeds.

Example:
    >>> import numpy as np, ufmtheory as ut
    >>> from ufmtheory.analysis.geometry import input_geometry
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
from ufmtheory.analysis.comparison import run_status
from ufmtheory.analysis.deep_context import DeepContextUFM
from ufmtheory.analysis.geometry import InputGeometry, _check_runs, _run_seed, _width, model_input_geometry
from ufmtheory.analysis.timemap import same_clock_theory
from ufmtheory.metrics import trajectory_metrics
from ufmtheory.models import ModifiedUFM
from ufmtheory.trajectory import Trajectory

__all__ = [
    "Calibration",
    "FAMILIES",
    "calibrate",
]

FAMILIES = ("normalized", "ridge", "deep")
"""``"normalized"``: modified UFM with every context's feature on the sphere of radius ``sqrt(dim)`` (the
GPT's final LayerNorm), no ridge; ``"ridge"``: unnormalised, ridge on H and W with a fitted ``λ``;
``"deep"``: :class:`~ufmtheory.analysis.deep_context.DeepContextUFM`, normalised like ``"normalized"``,
whose per-context channel is a product ``β A B`` of inner width ``dim`` (α = 1 on the calibration design,
β fitted)."""


_DEFAULT_GRID = {
    # Normalised features depend on α and β only through α/β (N(c E X̃) = N(E X̃), so the loss as a function
    # of E is the same): β = 1 and α is the ratio.
    "normalized": {"alpha": (1.0, 1.5, 2.0, 3.0, 4.5, 6.0, 9.0), "beta": (1.0,)},
    "ridge": {"alpha": (1.0, 2.0, 3.0, 4.5), "beta": (0.5, 1.0, 2.0), "lam": (1e-3, 1e-2)},
    # Same invariance: α = 1 and β (the deep channel's weight) is the one free parameter.
    "deep": {"alpha": (1.0,), "beta": (0.25, 0.35, 0.5, 0.7, 1.0)},
}


# -- 2. calibration ---------------------------------------------------------------------------------------
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
        family: ``"normalized"``, ``"ridge"`` or ``"deep"``.
        design_name: the calibration design's label.
        params: the fitted parameters: ``alpha``, ``beta``, ``lam`` (ridge family), ``normalize``, ``dim``,
            ``init_std``.
        geometry: the calibration design's :class:`~ufmtheory.analysis.geometry.InputGeometry` (``ρ_cal``).
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
        """``α`` on a design of the given input geometry (``alpha_rule``; ``"fixed"``, a failed geometry
        estimate or an unbounded ``ρ`` — no free energy at all, the contexts' step-0 features are
        functions of their shared tokens, as on the calibration design up to noise — keep the calibrated
        ``α``)."""
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
        if self.family == "deep":
            return DeepContextUFM(
                design, dim=p["dim"], alpha=alpha, beta=p["beta"], ridge="E", normalize=p["normalize"]
            )
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
        family: ``"normalized"``, ``"ridge"`` or ``"deep"`` (:data:`FAMILIES`).
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
