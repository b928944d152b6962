"""Input geometry of a trained model (step 1 of :mod:`ufmtheory.analysis.calibration`): how much two
contexts share by their inputs alone, read from the step-0 context Gram, and the checks on lists of runs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ufmtheory._format import finite_or_none as _num
from ufmtheory.trajectory import Trajectory

__all__ = [
    "InputGeometry",
    "input_geometry",
    "model_input_geometry",
]


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
