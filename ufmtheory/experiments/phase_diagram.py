"""Built-in theory sweeps: phase diagrams over modified-UFM parameters and the scaling of phase times with K.

* :func:`phase_diagram`: predicted onset / peak / collapse / ETF times, peak strength and closed-form
  estimates (:func:`ufmtheory.predict_phases`, exact reduced ODE where the design allows) and the end-state
  kind (:func:`ufmtheory.end_state`) at every point of a grid of :class:`~ufmtheory.ModifiedUFM` parameters.
* :func:`scaling`: the same phase times on A×B grids up to 1000×1000 (reduced ODE on the association
  scheme, no K×K design is built) with fitted power laws ``t ∝ K^b`` (:func:`fit_power_law`).
* :func:`etf_boundary_ratio`: the closed-form ETF / semantic end-state boundary ``β = r α`` of an A×B grid
  (ridge on E or no ridge; docs: Theory §8).

Both run on :func:`ufmtheory.experiments.sweep.sweep` (any executor, resumable stores).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ufmtheory import __version__
from ufmtheory.algebra.schemes import factorial_scheme
from ufmtheory.analysis.phases import predict_phases
from ufmtheory.designs import Design
from ufmtheory.equilibria import end_state as _end_state
from ufmtheory.experiments._portable import portable, rebuild
from ufmtheory.experiments.sweep import sweep
from ufmtheory.models import ModifiedUFM
from ufmtheory.solvers.reduced import ReducedProblem

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

__all__ = [
    "phase_diagram",
    "scaling",
    "fit_power_law",
    "etf_boundary_ratio",
    "MODEL_PARAMETERS",
    "PHASE_OUTPUTS",
]

MODEL_PARAMETERS = ("alpha", "beta", "ridge", "lam_W", "lam_H", "lam_E", "normalize", "dim")
""":class:`~ufmtheory.ModifiedUFM` parameters a phase diagram may sweep or fix (plus ``scale``, the
initial Gram scale of :func:`~ufmtheory.predict_phases`)."""

PHASE_OUTPUTS = ("onset", "peak", "collapse", "etf_time", "peak_strength", "t_sem", "t_col")
"""Numeric outputs of every phase point (times in gradient-flow time; NaN where a time does not exist)."""


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def _phase_outputs(ph: Any) -> dict[str, Any]:
    """Outputs shared by the phase-diagram and scaling points; the point's status and message are the
    prediction's (``"failed"`` with ``"no collapse up to t = ..."``: the strength did not fall within the
    horizon, as in the semantic end state; a solver's own status when the run failed)."""
    est = ph.estimates or {}
    out: dict[str, Any] = {
        "onset": _num(ph.onset),
        "peak": _num(ph.peak),
        "collapse": _num(ph.collapse),
        "etf_time": _num(ph.etf_time),
        "peak_strength": _num(ph.peak_strength),
        "t_sem": _num(est.get("t_sem")),
        "t_col": _num(est.get("t_col")),
        "method": str(ph.method),
        "n_evals": _num(ph.stats.get("n_evals")),
        "status": str(ph.status),
        "message": "" if ph.ok else str(ph.message),
    }
    return out


def _predict_options(options: dict[str, Any], scale: float | None) -> dict[str, Any]:
    out = {k: options[k] for k in ("etf_tol", "points_per_decade", "t1_max")}
    if scale is not None:
        out["scale"] = scale
    return out


def _phase_point(
    recipe: tuple[Any, ...], which: str, options: dict[str, Any], fixed: dict[str, Any], **point: Any
) -> dict[str, Any]:
    """One phase-diagram point (module level, so that it pickles to worker processes)."""
    design = rebuild(recipe)
    params = {**fixed, **point}
    scale = params.pop("scale", options["scale"])
    params.setdefault("dim", design.m)
    prob = ModifiedUFM(design, **params)
    ph = predict_phases(prob, which=which, **_predict_options(options, scale))
    out = _phase_outputs(ph)
    if options["end_state"]:
        try:
            eq = _end_state(prob)
        except (ValueError, NotImplementedError) as exc:
            out["end_state"] = "n/a"
            out["message"] = "; ".join(m for m in (out.get("message", ""), f"end_state: {exc}") if m)
        else:
            out["end_state"] = str(eq.kind)
            out["end_state_margin"] = _num(eq.stats.get("decision_margin"))
    return out


def _split_fixed(axes: Mapping[str, Any], fixed: Mapping[str, Any]) -> None:
    allowed = set(MODEL_PARAMETERS) | {"scale"}
    unknown = sorted(set(axes) - allowed)
    if unknown:
        raise ValueError(f"axes: unknown parameter(s) {unknown}; a phase diagram sweeps {sorted(allowed)}")
    unknown = sorted(set(fixed) - allowed)
    if unknown:
        raise TypeError(f"unknown fixed parameter(s) {unknown}; allowed: {sorted(allowed)}")
    both = sorted(set(axes) & set(fixed))
    if both:
        raise ValueError(f"parameter(s) {both} are both swept (axes) and fixed")


def phase_diagram(
    design: Design,
    axes: Mapping[str, Sequence[Any]],
    which: str = "H",
    *,
    mode: str = "product",
    scale: float | None = None,
    etf_tol: float = 0.05,
    points_per_decade: int = 20,
    t1_max: float = 1e12,
    end_state: bool = True,
    executor: Any = None,
    store: Any = None,
    progress: bool = True,
    retries: int = 0,
    **fixed: Any,
) -> xr.Dataset:
    """Predicted phase times and end state at every point of a grid of modified-UFM parameters.

    Each point builds ``ModifiedUFM(design, **fixed, **point)`` (``dim`` defaults to K) and runs
    :func:`ufmtheory.predict_phases` (exact reduced ODE for one-hot factorial and hierarchical designs,
    the full flow otherwise) and :func:`ufmtheory.end_state`.

    Args:
        design: the design (any :class:`~ufmtheory.designs.Design`).
        axes: parameter name -> values; names from :data:`MODEL_PARAMETERS` and ``scale``.
        which: ``"H"`` or ``"W"``: the Gram whose phases are reported.
        mode: ``"product"`` or ``"zip"`` (see :func:`~ufmtheory.experiments.sweep.sweep`).
        scale, etf_tol, points_per_decade, t1_max: passed to :func:`~ufmtheory.predict_phases` (``scale``
            ``None``: its default).
        end_state: also compute the end-state kind (variable ``end_state``: ``"etf"``, ``"semantic"``,
            ``"mixed"``, ``"zero"`` or ``"n/a"``) and ``end_state_margin`` (ridge E: > 0 means the ETF is
            cheaper).
        executor, store, progress, retries: as for :func:`~ufmtheory.experiments.sweep.sweep`.
        **fixed: modified-UFM parameters not swept (e.g. ``ridge="E", lam_W=1e-4, lam_E=1e-4``).

    Returns:
        ``xarray.Dataset`` with :data:`PHASE_OUTPUTS` (NaN where a time does not exist, e.g. no collapse
        when the end state is semantic; ``message`` in ``error`` says why), ``method``, ``n_evals``,
        ``end_state``, ``end_state_margin`` and the sweep's ``status``/``error``; attributes ``design``,
        ``which``, ``fixed`` (JSON) and, for an A×B factorial design, ``boundary_ratio``
        (:func:`etf_boundary_ratio`).

    Raises:
        ValueError: unknown or doubly given parameters, bad ``which``, or a first point that
            :class:`~ufmtheory.ModifiedUFM` rejects (checked before any work).

    Example:
        >>> import ufmtheory as ut
        >>> ds = ut.phase_diagram(ut.designs.factorial((2, 2)), {"beta": [0.5, 2.0]}, ridge="E",
        ...                       lam_W=1e-3, lam_E=1e-3, alpha=1.0, executor="serial", progress=False)
        >>> ds["end_state"].values.tolist()
        ['semantic', 'etf']
    """
    if not isinstance(design, Design):
        raise TypeError(f"design must be a ufmtheory Design, got {type(design).__name__}")
    if which not in ("H", "W"):
        raise ValueError(f"which must be 'H' or 'W', got {which!r}")
    if not isinstance(axes, Mapping) or not axes:
        raise ValueError("axes must be a non-empty mapping of parameter names to lists of values")
    _split_fixed(axes, fixed)
    options = {
        "scale": scale,
        "etf_tol": etf_tol,
        "points_per_decade": points_per_decade,
        "t1_max": t1_max,
        "end_state": bool(end_state),
    }
    # The first point through the model's own validation: a bad parameter fails here, before any work.
    first = {k: (v[0] if len(v) else None) for k, v in axes.items()}
    params = {**fixed, **first}
    params.pop("scale", None)
    if all(v is not None for v in first.values()):
        ModifiedUFM(design, **{"dim": design.m, **params})
    fn = functools.partial(_phase_point, portable(design), which, options, dict(fixed))
    attrs: dict[str, Any] = {
        "kind": "phase_diagram",
        "design": json.dumps(design.summary()),
        "which": which,
        "fixed": json.dumps(fixed),
        "options": json.dumps(options),
        "ufmtheory_version": __version__,
    }
    sizes = _two_factor_sizes(design)
    ridge = fixed.get("ridge", "H")
    if sizes is not None and ridge == "E" and "ridge" not in axes:
        attrs["boundary_ratio"] = etf_boundary_ratio(*sizes)
    return sweep(
        fn, axes, mode=mode, executor=executor, store=store, progress=progress, retries=retries, attrs=attrs
    )


def _two_factor_sizes(design: Design) -> tuple[int, int] | None:
    sizes = design.factor_sizes
    if design.kind != "factorial" or not design.is_one_hot or sizes is None or len(sizes) != 2:
        return None
    return int(sizes[0]), int(sizes[1])


def etf_boundary_ratio(A: int, B: int) -> float:
    """The slope ``r`` of the end-state boundary ``β = r α`` of an A×B grid (ridge on E, ``λ → 0``).

    docs: Theory §8: the flow ends in the ETF iff ``1/β < 1/sqrt(α² B + β²) + 1/sqrt(α² A + β²)``.
    Both sides scale as ``1/α`` at fixed ``β/α``, so the boundary is a ray; ``r`` solves
    ``1/r = 1/sqrt(B + r²) + 1/sqrt(A + r²)`` (the left side minus the right side changes sign once) and
    the ETF wins above it (``β > r α``).

    Example:
        >>> etf_boundary_ratio(3, 3)  # 1 = 2/sqrt(3 + 1)
        1.0
    """
    from scipy.optimize import brentq

    for name, v in (("A", A), ("B", B)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 2:
            raise ValueError(f"{name} must be an integer >= 2, got {v!r}")

    def gap(r: float) -> float:
        return r * (1.0 / math.sqrt(B + r * r) + 1.0 / math.sqrt(A + r * r)) - 1.0

    return float(round(brentq(gap, 1e-9, 1e9, xtol=1e-14, rtol=1e-15), 12))


# -- scaling with K ------------------------------------------------------------------------------------------
def _scaling_point(options: dict[str, Any], A: int, B: int) -> dict[str, Any]:
    """One size of :func:`scaling` (reduced ODE on the A×B scheme; nothing K×K is built)."""
    K = A * B
    lam = options["lam_times_K"] / K if options["lam_times_K"] is not None else options["lam"]
    lam_X = {"lam_H": lam} if options["ridge"] == "H" else {"lam_E": lam}
    rp = ReducedProblem.from_parts(
        factorial_scheme((A, B)),
        alpha=options["alpha"],
        beta=options["beta"],
        ridge=options["ridge"],
        lam_W=lam,
        **lam_X,
    )
    ph = predict_phases(rp, which=options["which"], **_predict_options(options, options["scale"]))
    return {**_phase_outputs(ph), "K": float(K), "lam": lam}


def fit_power_law(K: Any, t: Any) -> dict[str, float]:
    """Least-squares fit of ``log t = log c + b log K`` over the finite, positive pairs.

    Returns:
        ``{"exponent": b, "prefactor": c, "r2": R², "n": points used}`` (NaN when fewer than 2 points).

    Example:
        >>> fit = fit_power_law([10, 100, 1000], [3.0, 30.0, 300.0])
        >>> round(fit["exponent"], 12), round(fit["prefactor"], 12)
        (1.0, 0.3)
    """
    K = np.asarray(K, dtype=np.float64).reshape(-1)
    t = np.asarray(t, dtype=np.float64).reshape(-1)
    if K.shape != t.shape:
        raise ValueError(f"K and t must have the same length, got {K.size} and {t.size}")
    keep = np.isfinite(K) & np.isfinite(t) & (K > 0) & (t > 0)
    n = int(keep.sum())
    if n < 2 or np.ptp(np.log(K[keep])) == 0:
        return {"exponent": math.nan, "prefactor": math.nan, "r2": math.nan, "n": n}
    x, y = np.log(K[keep]), np.log(t[keep])
    b, a = np.polyfit(x, y, 1)
    resid = y - (a + b * x)
    ss = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss if ss > 0 else 1.0
    return {"exponent": float(b), "prefactor": float(math.exp(a)), "r2": r2, "n": n}


def scaling(
    sizes: Sequence[tuple[int, int]],
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    ridge: str = "H",
    lam_times_K: float | None = 9e-3,
    lam: float | None = None,
    which: str = "H",
    scale: float | None = None,
    etf_tol: float = 0.05,
    points_per_decade: int = 10,
    t1_max: float = 1e16,
    executor: Any = None,
    store: Any = None,
    progress: bool = True,
    retries: int = 0,
) -> xr.Dataset:
    """Collapse and ETF times against K on A×B grids, with fitted power laws.

    Every size runs :func:`ufmtheory.predict_phases` on the reduced problem of
    ``ModifiedUFM(factorial((A, B)), alpha, beta, ridge, lam_W = lam_X = λ)`` built from the association
    scheme alone (1000×1000, K = 10⁶, takes seconds). The ridge is ``λ = lam_times_K / K`` by default: with
    a fixed λ the origin turns stable once ``λ >= 1/K`` (ridge H) and large grids have no semantic phase at
    all; ``lam_times_K = 9e-3`` is ``λ = 1e-3`` on the 3×3 grid. Pass ``lam_times_K=None, lam=...`` for a
    fixed ridge.

    Args:
        sizes: ``[(A, B), ...]`` grid sizes (each >= 2).
        alpha, beta, ridge: model parameters.
        lam_times_K, lam: the ridge (see above).
        which, scale, etf_tol, points_per_decade, t1_max: passed to :func:`~ufmtheory.predict_phases`.
        executor, store, progress, retries: as for :func:`~ufmtheory.experiments.sweep.sweep`.

    Returns:
        ``xarray.Dataset`` along ``point`` with coordinates ``A``, ``B``, the outputs of
        :func:`phase_diagram` (no end state), ``K`` and ``lam``, and attributes ``fit_<name>`` (JSON of
        :func:`fit_power_law`) for ``collapse``, ``etf_time``, ``t_sem``, ``t_col`` and ``peak``.

    Example:
        >>> ds = scaling([(2, 2), (2, 3)], t1_max=1e3, points_per_decade=4, executor="serial", progress=False)
        >>> ds["K"].values.tolist(), ds["lam"].values.tolist() == [9e-3 / 4, 9e-3 / 6]
        ([4.0, 6.0], True)
    """
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or not sizes:
        raise ValueError("sizes must be a non-empty list of (A, B) grid sizes")
    As, Bs = [], []
    for s in sizes:
        if not (isinstance(s, Sequence) and len(s) == 2):
            raise ValueError(f"each size must be a pair (A, B), got {s!r}")
        for v in s:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 2:
                raise ValueError(f"grid sizes must be integers >= 2, got {s!r}")
        As.append(int(s[0]))
        Bs.append(int(s[1]))
    if ridge not in ("H", "E"):
        raise ValueError(f"ridge must be 'H' or 'E', got {ridge!r}")
    if (lam_times_K is None) == (lam is None):
        raise ValueError("give exactly one of lam_times_K and lam")
    ridge_value = lam_times_K if lam_times_K is not None else lam
    if not (isinstance(ridge_value, (int, float)) and ridge_value >= 0 and math.isfinite(ridge_value)):
        raise ValueError(f"the ridge must be a finite number >= 0, got {ridge_value!r}")
    if which not in ("H", "W"):
        raise ValueError(f"which must be 'H' or 'W', got {which!r}")
    # The smallest grid through the model's own checks (alpha, beta) before any work.
    ReducedProblem.from_parts(factorial_scheme((2, 2)), alpha=alpha, beta=beta, ridge=ridge)
    options = {
        "alpha": float(alpha),
        "beta": float(beta),
        "ridge": ridge,
        "lam_times_K": lam_times_K,
        "lam": lam,
        "which": which,
        "scale": scale,
        "etf_tol": etf_tol,
        "points_per_decade": points_per_decade,
        "t1_max": t1_max,
    }
    attrs = {"kind": "scaling", "options": json.dumps(options), "ufmtheory_version": __version__}
    ds = sweep(
        functools.partial(_scaling_point, options),
        {"A": As, "B": Bs},
        mode="zip",
        executor=executor,
        store=store,
        progress=progress,
        retries=retries,
        attrs=attrs,
    )
    if "K" in ds:
        for name in ("collapse", "etf_time", "t_sem", "t_col", "peak"):
            if name in ds:
                ds.attrs[f"fit_{name}"] = json.dumps(fit_power_law(ds["K"].values, ds[name].values))
    return ds
