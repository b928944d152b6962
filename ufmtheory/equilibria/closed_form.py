"""Closed-form equilibria and exact mode dynamics (docs: Theory §4).

* :func:`etf_gram`: the simplex equiangular tight frame Gram.
* :func:`zhu`: the global minimiser of the regularised UFM on balanced one-hot designs
  [Zhu et al. 2021, arXiv 2105.02375], with its norms, or the zero solution when ``ε ≥ 1/K``.
* :func:`etf_mode_time` / :func:`etf_mode_u`: the exact ETF-mode flow ``du/dt = 2u/(e^u + K - 1)`` from an
  aligned balanced initialisation, solved in closed form with the exponential integral, and its inverse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import expi

from ufmtheory import _validate
from ufmtheory._results import ResultMixin
from ufmtheory.models import UFM
from ufmtheory.solvers.reduced import MATERIALISE_MAX_K

__all__ = ["Equilibrium", "etf_gram", "centering", "zhu", "etf_mode_time", "etf_mode_u"]


@dataclass(frozen=True, eq=False, kw_only=True)
class Equilibrium(ResultMixin):
    """A critical point (usually the global minimiser) of a UFM problem.

    Attributes:
        kind: ``"etf"``, ``"zero"`` (and, for structured problems, ``"semantic"``).
        gram_H: (m, m) context Gram ``HᵀH`` (``None`` for scheme equilibria with K > 4096: the coefficients
            are in ``stats``).
        gram_W: (V, V) label Gram ``W Wᵀ`` (or ``None``, as ``gram_H``).
        logits: (V, m) logits ``W H`` (determined up to nothing: they are rotation invariant; or ``None``).
        loss: objective value at the equilibrium.
        status: ``"ok"``, or ``"inaccurate"`` (a residual above the tolerance), ``"failed"``, ...
        message: why, for people.
        method: how it was obtained (``"zhu-closed-form"``, ...).
        stats: ``n_evals``, ``wall_time_s`` and extra numbers (``x_star``, ``epsilon``, squared norms, ...).
    """

    kind: str
    gram_H: np.ndarray | None
    gram_W: np.ndarray | None
    logits: np.ndarray | None
    loss: float
    status: str = "ok"
    message: str = ""
    method: str = ""
    stats: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check_result()
        if self.stats["n_evals"] is None:  # closed forms evaluate nothing
            self.stats["n_evals"] = 0


def centering(K: int) -> np.ndarray:
    """``C_K = I_K - 11ᵀ/K``, the centring projector: (K, K)."""
    K = _validate.integer("K", K, low=1)
    return np.eye(K) - 1.0 / K


def etf_gram(K: int) -> np.ndarray:
    """Gram of the K-vector simplex ETF with unit norms: ones on the diagonal, ``-1/(K-1)`` off it.

    Equals ``K/(K-1) C_K``. (K, K).

    Example:
        >>> etf_gram(3).round(3).tolist()
        [[1.0, -0.5, -0.5], [-0.5, 1.0, -0.5], [-0.5, -0.5, 1.0]]
    """
    K = _validate.integer("K", K, low=2)
    return K / (K - 1) * centering(K)


def zhu(problem: UFM) -> Equilibrium:
    """Global minimiser of the regularised UFM on a balanced one-hot design [Zhu et al. 2021].

    With K classes, n contexts per class, ``ε = sqrt(n λ_W λ_H)`` and ``d ≥ K - 1``: if ``ε < 1/K`` the
    class-mean logits are ``x* C_K`` with ``x* = ln(1/ε - (K - 1))``, the class-mean feature Gram is
    ``sqrt(λ_W/(n λ_H)) x* C_K`` and ``W Wᵀ = sqrt(n λ_H/λ_W) x* C_K``; every context sits at its class
    mean (NC1). If ``ε ≥ 1/K`` the minimiser is ``W = H = 0``.

    Args:
        problem: a :class:`ufmtheory.UFM` with ``lam_W > 0``, ``lam_H > 0`` on a balanced one-hot design.

    Returns:
        Equilibrium with ``kind`` ``"etf"`` or ``"zero"``; ``stats`` holds ``epsilon``, ``x_star``, the
        squared Frobenius norms of W and H.

    Example:
        >>> import ufmtheory as ut
        >>> eq = zhu(ut.UFM(ut.designs.factorial((4,)), dim=4, lam_W=1e-2, lam_H=1e-2))
        >>> eq.kind, round(eq.stats["x_star"], 4)  # ln(1/ε - (K-1)) = ln 97
        ('etf', 4.5747)
    """
    if not isinstance(problem, UFM):
        raise TypeError(f"problem must be a ufmtheory UFM, got {type(problem).__name__}")
    design = problem.design
    classes = design.balanced_one_hot_classes()
    if classes is None:
        raise ValueError(
            "zhu() needs a balanced one-hot design (every token the label of the same number of contexts, "
            "uniform pi); use the convex/SELI solvers for imbalanced or soft-label designs"
        )
    K, n = classes
    lam_W, lam_H = problem.lam_W, problem.lam_H
    if lam_W <= 0 or lam_H <= 0:
        raise ValueError(
            f"zhu() needs lam_W > 0 and lam_H > 0 (got lam_W={lam_W}, lam_H={lam_H}); without ridge the "
            "flow diverges in norm and only its direction (the ETF) converges: see etf_gram"
        )
    if problem.dim < K - 1:
        raise ValueError(f"zhu() needs dim >= K - 1 = {K - 1} for the ETF to fit, got dim={problem.dim}")
    prod = n * lam_W * lam_H
    # Tiny ridges (1e-300) underflow the product to 0: then take the roots one by one.
    eps = math.sqrt(prod) if prod > 1e-290 else math.sqrt(n) * math.sqrt(lam_W) * math.sqrt(lam_H)
    dense = max(K, design.m) <= MATERIALISE_MAX_K
    if eps >= 1.0 / K:
        m = design.m
        return Equilibrium(
            kind="zero",
            gram_H=np.zeros((m, m)) if dense else None,
            gram_W=np.zeros((K, K)) if dense else None,
            logits=np.zeros((K, m)) if dense else None,
            loss=math.log(K),
            method="zhu-closed-form",
            stats=_zhu_stats(K, n, eps, 0.0),
        )
    x_star = math.log(1.0 / eps - (K - 1))
    if not dense:
        return _zhu_scalars(K, n, lam_W, lam_H, eps, x_star)
    c_W, c_H = _zhu_coefficients(n, lam_W, lam_H, x_star)
    C = centering(K)
    Yl = design.Y  # (K, m): context j -> its class
    means_gram = c_H * C  # (K, K) Gram of class-mean features
    gram_W = c_W * C
    gram_H = Yl.T @ means_gram @ Yl  # every context at its class mean
    logits = x_star * C @ Yl
    logp = logits - np.log(np.exp(logits).sum(axis=0, keepdims=True))
    ce = float(-(Yl * logp).sum(axis=0) @ design.pi)
    norm_W2 = float(np.trace(gram_W))
    norm_H2 = float(np.trace(gram_H))
    loss = ce + 0.5 * lam_W * norm_W2 + 0.5 * lam_H * norm_H2
    return Equilibrium(
        kind="etf",
        gram_H=gram_H,
        gram_W=gram_W,
        logits=logits,
        loss=loss,
        method="zhu-closed-form",
        stats=_zhu_stats(K, n, eps, x_star, norm_W_sq=norm_W2, norm_H_sq=norm_H2),
    )


def _zhu_stats(K: int, n: int, eps: float, x_star: float, **extra: float) -> dict[str, Any]:
    """The ``stats`` every branch of :func:`zhu` reports, plus the branch's ``extra`` entries."""
    return {"epsilon": eps, "threshold": 1.0 / K, "x_star": x_star, "K": K, "n": n, **extra}


def _zhu_coefficients(n: int, lam_W: float, lam_H: float, x_star: float) -> tuple[float, float]:
    """``(c_W, c_H)``: ``W Wᵀ = c_W C_K`` and the class means' Gram is ``c_H C_K``."""
    return math.sqrt(n * lam_H / lam_W) * x_star, math.sqrt(lam_W / (n * lam_H)) * x_star


def _zhu_scalars(K: int, n: int, lam_W: float, lam_H: float, eps: float, x_star: float) -> Equilibrium:
    """Zhu's minimiser for K above MATERIALISE_MAX_K: no K×K array, the Grams as their coefficients on
    ``C_K`` (``W Wᵀ = c_W C_K``, class-mean Gram ``c_H C_K``) in ``stats``."""
    c_W, c_H = _zhu_coefficients(n, lam_W, lam_H, x_star)
    # every context has logits x* C e_j: CE = log(1 + (K - 1) e^{-x*})
    ce = math.log1p((K - 1) * math.exp(-x_star))
    norm_W2, norm_H2 = c_W * (K - 1), n * c_H * (K - 1)  # traces of c C_K and of Yᵀ (c_H C_K) Y
    return Equilibrium(
        kind="etf",
        gram_H=None,
        gram_W=None,
        logits=None,
        loss=ce + 0.5 * lam_W * norm_W2 + 0.5 * lam_H * norm_H2,
        method="zhu-closed-form",
        message=f"K = {K} > {MATERIALISE_MAX_K}: Grams given as coefficients on C_K in stats",
        stats=_zhu_stats(
            K,
            n,
            eps,
            x_star,
            norm_W_sq=norm_W2,
            norm_H_sq=norm_H2,
            gram_W_centred_coefficient=c_W,
            class_mean_gram_centred_coefficient=c_H,
        ),
    )


def _check_u(name: str, u: Any) -> np.ndarray:
    arr = _validate.float_array(name, u, finite=False)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be finite and > 0")
    return arr


def _check_K(K: Any) -> int:
    return _validate.integer("K", K, low=2)


def etf_mode_time(u: Any, K: int, u0: float) -> Any:
    """Time for the exact ETF mode to grow from ``u0`` to ``u`` (docs: Theory §4.3, [derived]).

    From an aligned balanced init (``L = u C_K``, ``W Wᵀ = HᵀH = u C_K``, uniform one-hot design, no ridge)
    ``du/dt = 2u/(e^u + K - 1)``, so ``t(u) = ½[(K-1) ln(u/u0) + Ei(u) - Ei(u0)]``. Late in the flow
    ``u ≈ ln t``.

    Args:
        u: mode amplitude(s) > 0 (scalar or array); below ``u0`` the time is negative.
        K: number of classes (>= 2).
        u0: initial amplitude > 0.

    Example:
        >>> float(etf_mode_time(1e-3, 4, 1e-3))
        0.0
    """
    K = _check_K(K)
    u = _check_u("u", u)
    u0 = float(_check_u("u0", u0))
    with np.errstate(over="ignore", under="ignore"):
        ratio = u / u0  # ln(u/u0) keeps precision when u ≈ u0; the difference of logs when u/u0 overflows
    ok = np.isfinite(ratio) & (ratio > 0)
    log_ratio = np.array(np.log(u) - math.log(u0), dtype=np.float64)
    log_ratio[ok] = np.log(ratio[ok])
    t = 0.5 * ((K - 1) * log_ratio + expi(u) - expi(u0))
    return t if t.ndim else float(t)


def etf_mode_u(t: Any, K: int, u0: float) -> Any:
    """Inverse of :func:`etf_mode_time`: the amplitude ``u(t)`` of the exact ETF mode at time(s) ``t ≥ 0``.

    Solved by safeguarded Newton iteration on ``t(u)`` (monotone increasing, ``t'(u) = (e^u + K - 1)/(2u)``)
    in the variable ``ln u``, to machine precision.

    Example:
        >>> u = etf_mode_u(123.0, 5, 0.01)
        >>> round(float(etf_mode_time(u, 5, 0.01)), 9)
        123.0
    """
    K = _check_K(K)
    u0 = float(_check_u("u0", u0))
    t = _validate.float_array("t", t, finite=False)
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("t must be finite and >= 0")
    # Start from the bigger of the early (exponential) and late (u ~ ln t) asymptotes.
    early = np.log(u0) + 2 * t / (K - 1 + math.exp(min(u0, 700)))
    late = np.log(np.maximum(np.log1p(2 * t), u0))
    x = np.maximum(np.minimum(early, np.log(np.maximum(np.log1p(2 * t) + 1, u0))), late)
    x = np.maximum(x, np.log(u0))
    for _ in range(200):
        u = np.exp(x)
        f = 0.5 * ((K - 1) * (x - math.log(u0)) + expi(u) - expi(u0)) - t
        dfdx = 0.5 * (K - 1 + np.exp(u))  # d t / d ln u
        step = f / dfdx
        # t(ln u) is convex and increasing, so Newton from the right converges monotonically (never past the
        # root): only steps to the right, which can overshoot where e^u grows, are damped. (Damping both
        # ways took more than 200 steps from the late asymptote down to ln u0 ≈ -744 for u0 = 5e-324.)
        step = np.maximum(step, -2.0)
        x = x - step
        if np.all(np.abs(step) < 1e-15 * np.maximum(1.0, np.abs(x))):
            break
    u = np.exp(x)
    return u if u.ndim else float(u)
