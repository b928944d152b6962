"""Closed-form proxies for the max-margin geometry and their gap to the convex optimum (docs: Theory §4.5).

* :func:`centred_support_proxy` ``S(I - 11ᵀ/V)`` and :func:`sel_matrix` (simplex-encoded labels,
  [Thrampoulidis et al. 2022, arXiv 2208.05512]) are closed-form proxies for
  :func:`ufmtheory.programs.max_margin.nn_svm`; :func:`proxy_gap` compares a proxy with the convex optimum.
  The centred support is exact for one-hot labels and for disjoint equal-size support blocks, **not in
  general** (8 contexts with supports of 3 cyclically consecutive tokens of 8: proxy ``‖L‖_* ≈ 8.657``,
  optimum ≈ 8.243).
* :func:`gram_cosine`: the Frobenius cosine of two Grams.

Logit matrices are (m, V): contexts × tokens, as in :mod:`ufmtheory.programs.max_margin`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ufmtheory._results import ResultMixin, finish
from ufmtheory.designs import Design
from ufmtheory.programs.max_margin import (
    ConvexResult,
    _distributions,
    _one_hot_labels,
    _result,
    nn_svm,
    support_margins,
    support_matrix,
)

__all__ = ["ProxyGap", "centred_support_proxy", "sel_matrix", "gram_cosine", "proxy_gap"]


@dataclass(frozen=True, eq=False, kw_only=True)
class ProxyGap(ResultMixin):
    """Closed-form proxy vs convex optimum (:func:`proxy_gap`).

    Attributes:
        proxy: which proxy (``"centred"`` or ``"sel"``).
        proxy_nuclear: ``‖proxy‖_*`` (after scaling to margin 1).
        optimum_nuclear: the convex optimum ``‖L*‖_*``.
        relative_gap: ``proxy_nuclear / optimum_nuclear - 1`` (>= 0 up to solver tolerance).
        gram_cosine_H, gram_cosine_W: Frobenius cosines between the proxy's and the optimum's Grams.
        logit_error: ``max |proxy - L*|`` (meaningful where the optimum is unique).
        proxy_result, optimum_result: the two :class:`ConvexResult` objects.
        status, message: those of the optimum (the proxy is a closed form).
        stats: ``n_evals``, ``wall_time_s`` (the optimum's solve included when solved here).
    """

    proxy: str
    proxy_nuclear: float
    optimum_nuclear: float
    relative_gap: float
    gram_cosine_H: float
    gram_cosine_W: float
    logit_error: float
    proxy_result: ConvexResult
    optimum_result: ConvexResult
    status: str = "ok"
    message: str = ""
    stats: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check_result()


def centred_support_proxy(design: Design | np.ndarray) -> ConvexResult:
    """Closed-form proxy ``S (I - 11ᵀ/V)`` for :func:`nn_svm`, scaled so that its smallest margin is 1.

    Exact for one-hot labels and for disjoint equal-size support blocks, an approximation in general
    (strictly above the optimum for overlapping cyclic supports). ``S: (m, V)`` is the 0/1 support matrix.
    Returns a :class:`ConvexResult` with ``method="centred-support-proxy"`` and ``stats["scale"]``.
    """
    S = support_matrix(design)
    V = S.shape[1]
    L = S - S.sum(axis=1, keepdims=True) / V
    margin, _ = support_margins(L, S)
    scale = 1.0 / margin if math.isfinite(margin) and margin > 0 else 1.0
    return _result(scale * L, S, solver="none", method="centred-support-proxy", stats={"scale": scale})


def sel_matrix(design: Design | np.ndarray) -> ConvexResult:
    """Simplex-encoded labels ``Ẑ = Yᵀ (I - 11ᵀ/V): (m, V)`` of a one-hot design and its SVD (the SELI
    geometry ``HᵀH = U Σ Uᵀ``, ``W Wᵀ = V Σ Vᵀ``) [Thrampoulidis et al. 2022, arXiv 2208.05512].

    For one-hot designs it coincides with :func:`centred_support_proxy`; with imbalance it departs from
    the ETF (which it is only for balanced classes). Raises ``ValueError`` for soft labels.
    """
    labels = _one_hot_labels(design)
    V = _distributions(design).shape[1]
    Z = np.full((labels.size, V), -1.0 / V)
    Z[np.arange(labels.size), labels] += 1.0
    return _result(Z, (Z > 0).astype(float), solver="none", method="sel")


def gram_cosine(A: np.ndarray, B: np.ndarray) -> float:
    """Frobenius cosine ``⟨A, B⟩ / (‖A‖ ‖B‖)`` of two Grams (1 when equal up to scale; 0 if one is 0)."""
    A, B = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
    if A.shape != B.shape:
        raise ValueError(f"Gram shapes differ: {A.shape} vs {B.shape}")
    na, nb = np.linalg.norm(A), np.linalg.norm(B)
    return float(np.vdot(A, B) / (na * nb)) if na > 0 and nb > 0 else 0.0


def proxy_gap(
    design: Design | np.ndarray,
    *,
    proxy: str = "centred",
    optimum: ConvexResult | None = None,
    solver: str | None = None,
    throw: bool = False,
) -> ProxyGap:
    """Compare a closed-form proxy (``"centred"`` or ``"sel"``) with the nuclear-norm SVM optimum.

    Args:
        design: Design or (m, V) distributions.
        proxy: ``"centred"`` (:func:`centred_support_proxy`) or ``"sel"`` (:func:`sel_matrix`, one-hot only).
        optimum: a precomputed :func:`nn_svm` result for this design (solved if ``None``).
        solver: passed to :func:`nn_svm`.
        throw: raise :class:`~ufmtheory._results.SolverError` when the optimum is not ``"ok"``.
    """
    start = time.perf_counter()
    makers = {"centred": centred_support_proxy, "sel": sel_matrix}
    if proxy not in makers:
        raise ValueError(f"proxy must be one of {sorted(makers)}, got {proxy!r}")
    pr = makers[proxy](design)
    opt = optimum if optimum is not None else nn_svm(design, solver=solver)
    if opt.solution.shape != pr.solution.shape:
        raise ValueError(
            f"optimum has shape {opt.solution.shape} but the design's logits are {pr.solution.shape}"
        )
    gap = ProxyGap(
        proxy=proxy,
        proxy_nuclear=pr.objective,
        optimum_nuclear=opt.objective,
        relative_gap=pr.objective / opt.objective - 1.0 if opt.objective > 0 else 0.0,
        gram_cosine_H=gram_cosine(pr.gram_H, opt.gram_H),
        gram_cosine_W=gram_cosine(pr.gram_W, opt.gram_W),
        logit_error=float(np.abs(pr.solution - opt.solution).max()),
        proxy_result=pr,
        optimum_result=opt,
        status=opt.status,
        message=opt.message,
        stats={
            "n_evals": opt.stats["n_evals"] if optimum is None else 0,
            "wall_time_s": time.perf_counter() - start,
        },
    )
    return finish(gap, throw)
