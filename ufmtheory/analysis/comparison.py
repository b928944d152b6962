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

With ``variants`` (modified-UFM problems or their trajectories, e.g. from
:func:`~ufmtheory.analysis.variants.variant_grid`) every variant gets its own clock (its own fitted map for
``"fit"``) and total error (the sum of the per-metric RMS errors); the best one (lowest finite total) is
reported, and a variant whose error is ``nan`` is listed with the reason.

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
from collections.abc import Sequence
from typing import Any

from ufmtheory._format import to_jsonable
from ufmtheory._results import STATUSES, split_legacy_status
from ufmtheory.analysis.comparison_result import Comparison, VariantFit
from ufmtheory.analysis.phases import PHASE_NAMES, detect_phases
from ufmtheory.analysis.timemap import (
    CLOCKS,
    CURVE_METRICS,
    _as_theory,
    _check_clock_unit,
    _check_which,
    _clock_pair,
    _curves,
    _extrapolated,
    _is_plain_gd,
    _model_config,
    _nan_reason,
    _total,
)
from ufmtheory.analysis.variants import _variant_items
from ufmtheory.models import UFM
from ufmtheory.trajectory import Trajectory

__all__ = [
    "compare",
    "run_status",
]


def run_status(traj: Trajectory) -> tuple[str, str]:
    """``(status word, message)`` of a trajectory; a pre-0.2 free-text status is mapped onto the vocabulary
    by :func:`ufmtheory._results.split_legacy_status` (the one home of that mapping)."""
    status = str(traj.status)
    message = str(getattr(traj, "message", "") or traj.stats.get("message", "") or "")
    if status in STATUSES:
        return status, message or status
    return split_legacy_status(status)


def _combined_status(
    runs: tuple[tuple[str, Trajectory], ...], map_status: str, map_message: str
) -> tuple[str, str]:
    """``(status, message)`` of a comparison: the first of ``runs`` (name, trajectory) that did not end ok,
    else a time map that is not ok (``"not_applicable"`` stays, any other failure is ``"inaccurate"``), else
    ``("ok", "")``."""
    for name, tr in runs:
        st, msg = run_status(tr)
        if st != "ok":
            return st, f"{name} run: {msg}"
    if map_status != "ok":
        return ("not_applicable" if map_status == "not_applicable" else "inaccurate"), map_message
    return "ok", ""


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
            trajectory, or a (modified) UFM problem (``clock="same"``: run by
            :func:`~ufmtheory.analysis.timemap.same_clock_theory`; otherwise its phases are predicted by
            :func:`~ufmtheory.analysis.phases.predict_phases`).
        model: the trained model's :class:`~ufmtheory.Trajectory` (``time_unit="step"``, e.g. from
            :func:`ufmtheory.baseline.train`).
        design: the design both ran on (its attributes define the semantic metrics).
        which: ``"H"``, ``"W"`` or both (default).
        clock: ``"auto"`` (default), ``"same"``, ``"lr"`` or ``"fit"`` (module docstring).
        lr: learning rate of the ``"lr"`` clock (default: ``model.meta["config"]["lr"]``).
        variants: optional list or ``{name: item}`` of further theory runs (problems or trajectories, e.g.
            :func:`~ufmtheory.analysis.variants.variant_grid`); each gets its own clock and total error.
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
            total = _total(verr)
            vstatus, why = _combined_status((("theory", vt),), vmap, vmsg)
            if vstatus != "ok":
                vmsg = why
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
    status, message = _combined_status((("model", model), ("theory", theory_traj)), map_status, map_message)
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
