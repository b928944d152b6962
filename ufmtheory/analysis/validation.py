"""Prediction on held-out designs with no refit (step 3 of :mod:`ufmtheory.analysis.calibration`):
:func:`validate` and its :class:`Validation` table."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ufmtheory._format import finite_or_none as _num
from ufmtheory.analysis.calibration import Calibration
from ufmtheory.analysis.comparison import compare, run_status
from ufmtheory.analysis.geometry import _check_runs, _run_seed, model_input_geometry
from ufmtheory.analysis.phases import PHASE_NAMES, detect_phases
from ufmtheory.analysis.timemap import same_clock_theory
from ufmtheory.trajectory import Trajectory

__all__ = [
    "Validation",
    "validate",
    "QUANTITIES",
]

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
        calibration: from :func:`~ufmtheory.analysis.calibration.calibrate`.
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
