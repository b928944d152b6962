"""Input geometry of a trained model (step 1 of :mod:`ufmtheory.analysis.calibration`): how much two
contexts share by their inputs alone, read from the step-0 context Gram, and the checks on lists of runs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ufmtheory import _validate
from ufmtheory._format import finite_or_none as _num
from ufmtheory.trajectory import Trajectory

__all__ = [
    "InputGeometry",
    "input_geometry",
    "model_input_geometry",
    "token_columns",
]


# -- 1. input geometry -----------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class InputGeometry:
    """The input geometry of a context Gram (:func:`input_geometry`): shared vs free energy.

    Attributes:
        alpha_over_beta: ``sqrt(c_attr / c_free)``; ``inf`` when ``c_free`` is 0 up to rounding
            (``c_free ≤ 1e-10 c_attr``; status ok);
            ``nan`` when ``c_attr`` is not positive.
        c_attr, c_free: the fitted coefficients.
        r2: the fraction of the centred Gram's energy the two terms explain.
        status: ``"ok"``, or ``"inaccurate"`` when ``c_attr`` is not positive or ``r2 < 0.5``.
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


def token_columns(design: Any, split_last: bool = True) -> np.ndarray:
    """The shared input terms of a design's contexts, one row per term: ``(q, m)`` 0/1 indicators.

    Row ``i`` of ``X`` (the contexts carrying attribute ``i``), and, with ``split_last``, for an attribute
    that is the *last* input token of some contexts but not of others, two more rows: the contexts where
    it is the last token, and the rest. The baseline GPT reads ``<bos> x_{a_1} … x_{a_k} [ctx[j]]`` with
    ``a_1 < … < a_k`` (:mod:`ufmtheory.baseline.data`), and a context gets an id token ``ctx[j]`` (then last)
    when another context carries the same attribute set. At initialisation a GPT's last position is
    mostly its last token's embedding, so an attribute contributes differently where it is last: on
    factorial and hierarchical designs every attribute sits at one position (no split, the rows of
    ``X``), on random attributes the same feature is last in some contexts and not in others.

    Args:
        design: the design (``X: (p, m)``).
        split_last: add the last/other split rows (``False``: the rows of ``X`` only).

    Returns:
        ``(q, m)`` float array, ``q >= p``.

    Example:
        >>> import ufmtheory as ut
        >>> token_columns(ut.designs.factorial((2, 2))).shape  # every attribute at one position: X itself
        (4, 4)
    """
    split_last = _validate.flag("split_last", split_last)
    X = np.asarray(design.X, dtype=np.float64)
    if not split_last or X.size == 0:
        return X
    p, m = X.shape
    sets = [tuple(np.flatnonzero(X[:, j]).tolist()) for j in range(m)]
    has_id = [sets.count(a) > 1 for a in sets]  # the baseline's context_ids="auto" rule
    last = np.zeros_like(X)
    for j, a in enumerate(sets):
        if a and not has_id[j]:
            last[a[-1], j] = 1.0
    rows = [X]
    for i in range(p):
        if last[i].any() and (X[i] - last[i]).any():
            rows += [last[i][None], (X[i] - last[i])[None]]
    return np.vstack(rows)


def input_geometry(gram_H0: Any, design: Any, *, split_last: bool = True) -> InputGeometry:
    """The shared-vs-free energy split of a context Gram, as the modified UFM's ``α/β`` (module docstring).

    Non-negative least squares of the centred Gram on one term per shared input plus the identity,
    ``C G₀ C ≈ Σ_c w_c C t_c t_cᵀ C + c_free C`` (``t_c``: the rows of :func:`token_columns`, i.e. the
    attribute rows ``x_i`` of ``X`` and, with ``split_last``, each attribute split by whether it is the
    context's last token; ``C = I - 11ᵀ/m``): a trained model at initialisation weighs its input tokens
    unequally (the last token dominates a GPT's last position), so one weight per term is needed to see
    how much of the Gram is *shared*. Without the split, the step-0 Gram of random attributes (where a
    feature is last in some contexts only) is misread as free energy (``ρ`` 1.2 instead of 6.5, R² 0.85
    instead of 0.95; docs/validation.md). The equivalent modified UFM puts the same fraction of the
    centred energy on the attribute path: ``(α/β)² = (E_shared / tr(C XᵀX C)) / (E_free / tr C)`` with
    ``E_shared = Σ_c w_c ‖C t_c‖²`` and ``E_free = c_free tr C``. For ``G₀ = α² XᵀX + β² I (+ const)``
    this returns exactly ``α/β``.

    Args:
        gram_H0: (m, m) context Gram (e.g. a trained model's ``gram_H[0]``).
        design: the design (``X: (p, m)``, ``p > 0``).
        split_last: fit the last-token split terms too (:func:`token_columns`); ``False`` is the rule of
            version 0.2 (one term per attribute row).

    Returns:
        :class:`InputGeometry` (``c_attr = E_shared / tr(C XᵀX C)``, ``c_free``; ``r2`` the fraction of
        the centred Gram's energy explained).
    """
    from scipy.optimize import nnls

    split_last = _validate.flag("split_last", split_last)
    G = np.asarray(gram_H0, dtype=np.float64)
    m = design.m
    if G.shape != (m, m):
        raise ValueError(f"gram_H0 must have shape ({m}, {m}) for this design, got {G.shape}")
    if not np.all(np.isfinite(G)):
        raise ValueError("gram_H0 contains NaN or inf")
    if design.p == 0:
        raise ValueError("input_geometry needs a design with latent attributes (p > 0)")
    C = np.eye(m) - 1.0 / m
    Xa = np.asarray(design.X, dtype=np.float64) @ C  # (p, m): centred attribute rows
    Xc = token_columns(design, split_last) @ C  # (q, m): centred shared terms
    keep = np.linalg.norm(Xc, axis=1) > 1e-12  # a term every context carries has no centred part
    Xc = Xc[keep]
    Gc = C @ G @ C
    cols = [np.outer(x, x).ravel() for x in Xc] + [C.ravel()]
    M = np.stack(cols, axis=1)
    scale = float(np.abs(Gc).max()) or 1.0
    coef, _ = nnls(M, Gc.ravel() / scale)
    coef = coef * scale
    w, c_free = coef[:-1], float(coef[-1])
    e_shared = float(np.sum(w * (Xc * Xc).sum(axis=1)))
    c_attr = e_shared / float(np.trace(Xa.T @ Xa))
    resid = Gc.ravel() - M @ coef
    energy = float(Gc.ravel() @ Gc.ravel())
    r2 = 1.0 - float(resid @ resid) / energy if energy > 0 else math.nan
    status, message = "ok", ""
    ratio = math.sqrt(c_attr / c_free) if c_attr > 0 and c_free > 0 else math.nan
    if c_free <= 1e-10 * c_attr and c_attr > 0:  # 1e-10: rounding of the NNLS solve, not free energy
        # Every context's feature is a function of its shared tokens (a GPT at init reads its last token):
        # no free energy at all, an unbounded ratio, which is a reading, not a failure.
        ratio = math.inf
        message = (
            "no free energy: the Gram is explained by the shared terms alone (alpha/beta unbounded; the"
            " geometry rule cannot scale α by it and keeps the calibrated α)"
        )
    if math.isnan(ratio):
        status = "inaccurate"
        message = f"a fitted energy is not positive (shared {c_attr:.3g}, free {c_free:.3g})"
    elif not r2 >= 0.5:
        status, message = "inaccurate", f"the attribute rows and I explain only {r2:.0%} of the centred Gram"
    return InputGeometry(
        alpha_over_beta=ratio, c_attr=c_attr, c_free=c_free, r2=r2, status=status, message=message
    )


def model_input_geometry(
    runs: Sequence[Trajectory], design: Any, *, split_last: bool = True
) -> InputGeometry:
    """:func:`input_geometry` of the step-0 Gram averaged over ``runs`` (each run's Gram scaled to unit
    trace first, so every seed counts the same)."""
    split_last = _validate.flag("split_last", split_last)
    runs = _check_runs(runs, "runs")
    grams = []
    for r in runs:
        G = np.asarray(r.gram_H[0], dtype=np.float64)
        grams.append(G / max(float(np.trace(G)), 1e-300))
    return input_geometry(np.mean(grams, axis=0), design, split_last=split_last)


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
