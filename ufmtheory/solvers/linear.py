"""Early-phase closed forms: linearised mode dynamics of the (modified) UFM near the origin.

Near the origin the softmax is uniform, so the cross-entropy is linear in the centred labels: on a
one-hot factorial design every non-constant mode S of the Hamming scheme sees the same gradient
coefficient ``g_S = 1/K``. The feature path through the latent factors preconditions mode S by the
attribute-kernel eigenvalue ``κ_S`` (docs: Theory §5, §7), so with balanced coefficients
``h_S = sqrt(κ_S) w_S`` the logit coefficient ``ℓ_S = w_S h_S`` grows like ``exp(2 sqrt(κ_S) t / K)``:
main effects (``κ_f = α²K/A_f + β²``) before interactions (``κ = β²``). That is the semantic phase.

Keeping the quadratic term of the cross-entropy around the origin (Hessian ``C_K/K`` per context) turns each
mode into a Saxe-type logistic curve [Saxe, McClelland, Ganguli 2014, arXiv 1312.6120]:
``dℓ/dt = 2 ℓ (sqrt(κ) (1 - ℓ/K)/K - λ)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ufmtheory import _validate
from ufmtheory.algebra.modes import escape_rate

__all__ = [
    "factorial_kernel_eigenvalues",
    "growth_rate",
    "linear_rates",
    "saxe_mode",
    "semantic_time",
]


def _check_positive(name: str, value: Any, allow_zero: bool = False) -> float:
    return _validate.nonnegative(name, value) if allow_zero else _validate.positive(name, value)


def factorial_kernel_eigenvalues(sizes: tuple[int, ...], alpha: float, beta: float) -> dict[str, Any]:
    """Eigenvalues of ``K_x = α² XᵀX + β² I`` on a factorial design, per kind of mode.

    Returns:
        ``{"main": [κ_f for each factor], "interaction": β², "multiplicity_main": [A_f - 1],
        "multiplicity_interaction": K - 1 - Σ(A_f - 1), "K": K}`` with ``κ_f = α² K/A_f + β²``.

    Example:
        >>> factorial_kernel_eigenvalues((3, 3), alpha=1.0, beta=1.0)["main"]
        [4.0, 4.0]
    """
    sizes = tuple(int(a) for a in sizes)
    if not sizes or any(a < 2 for a in sizes):
        raise ValueError(f"sizes must be a non-empty sequence of integers >= 2, got {sizes}")
    alpha = _check_positive("alpha", alpha, allow_zero=True)
    beta = _check_positive("beta", beta, allow_zero=True)
    K = math.prod(sizes)
    main = [alpha**2 * K / a + beta**2 for a in sizes]
    mult = [a - 1 for a in sizes]
    return {
        "main": main,
        "interaction": beta**2,
        "multiplicity_main": mult,
        "multiplicity_interaction": K - 1 - sum(mult),
        "K": K,
    }


def growth_rate(kappa: float, K: int) -> float:
    """Early exponential growth rate ``2 sqrt(κ)/K`` of a balanced logit mode (no ridge).

    Example:
        >>> growth_rate(4.0, 9)  # a main effect of a 3x3 grid with alpha = beta = 1
        0.4444444444444444
    """
    kappa = _check_positive("kappa", kappa, allow_zero=True)
    K = _validate.integer("K", K, low=2)
    return 2.0 * math.sqrt(kappa) / K


def linear_rates(kappa: float, K: int, *, lam_W: float = 0.0, lam_X: float = 0.0, ridge: str = "E") -> float:
    """Growth rate of the logit coefficient ``ℓ = w h`` of the linearised dynamics with ridge.

    Near the origin ``g = 1/K`` and ``(w, h)`` obey the linear system ``d/dt (w, h) = A (w, h)`` with
    ``A = [[-λ_W, g], [κ g, -κ λ_H]]`` (ridge on H) or ``[[-λ_W, g], [κ g, -λ_E]]`` (ridge on E). The
    logits grow at twice the top eigenvalue μ of A; without ridge ``2μ = 2 sqrt(κ)/K``.

    Args:
        kappa: attribute-kernel eigenvalue of the mode (>= 0).
        K: number of contexts.
        lam_W: ridge on W.
        lam_X: ridge on H (``ridge="H"``) or on E (``ridge="E"``).
        ridge: ``"H"`` or ``"E"``.

    Example:
        >>> round(linear_rates(4.0, 9), 6) == round(growth_rate(4.0, 9), 6)
        True
    """
    kappa = _check_positive("kappa", kappa, allow_zero=True)
    lam_W = _check_positive("lam_W", lam_W, allow_zero=True)
    lam_X = _check_positive("lam_X", lam_X, allow_zero=True)
    if ridge not in ("H", "E"):
        raise ValueError(f"ridge must be 'H' or 'E', got {ridge!r}")
    growth_rate(kappa, K)  # validates K
    return 2.0 * escape_rate(1.0 / K, kappa, lam_W=lam_W, lam_X=lam_X, ridge=ridge)


def saxe_mode(t: Any, kappa: float, K: int, l0: float, *, lam_WX: float = 0.0) -> Any:
    """Saxe-type logistic trajectory of one balanced logit mode with the quadratic CE surrogate.

    ``dℓ/dt = 2ℓ (sqrt(κ)(1 - ℓ/K)/K - λ)`` (balanced ``h = sqrt(κ) w``, ridge ``λ = lam_WX`` on E and W) has
    the solution ``ℓ(t) = ℓ* / (1 + (ℓ*/ℓ0 - 1) e^{-r t})`` with ``r = 2(sqrt(κ)/K - λ)`` and
    ``ℓ* = K (1 - λ K / sqrt(κ))``. Only the early, sigmoidal rise is meaningful: the surrogate saturates at
    ``ℓ* ≈ K`` where the true cross-entropy keeps growing logits like ``ln t``.

    Args:
        t: time(s) >= 0.
        kappa: attribute-kernel eigenvalue (> 0).
        K: number of contexts.
        l0: initial logit coefficient (> 0).
        lam_WX: ridge ``sqrt(λ_W λ_E)`` (equal ridges λ on W and E: λ) (>= 0).

    Example:
        >>> float(saxe_mode(0.0, 4.0, 9, 1e-3))
        0.001
    """
    kappa = _check_positive("kappa", kappa)
    l0 = _check_positive("l0", l0)
    lam = _check_positive("lam_WX", lam_WX, allow_zero=True)
    growth_rate(kappa, K)
    t = np.asarray(t, dtype=np.float64)
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("t must be finite and >= 0")
    r = 2.0 * (math.sqrt(kappa) / K - lam)
    l_star = K * (1.0 - lam * K / math.sqrt(kappa))
    if l_star <= 0:
        # Ridge beats the gradient: the mode decays exponentially.
        out = l0 * np.exp(r * t)
    else:
        out = l_star / (1.0 + (l_star / l0 - 1.0) * np.exp(-r * t))
    return out if out.ndim else float(out)


def semantic_time(kappa_attr: float, K: int, l0: float, l_star: float | None = None) -> float:
    """Estimate of when attribute modes reach their plateau: ``t_sem ≈ K ln(ℓ*/ℓ0) / (2 sqrt(κ_attr))``.

    Args:
        kappa_attr: kernel eigenvalue of the attribute (main-effect) modes.
        K: number of contexts.
        l0: initial logit coefficient of those modes.
        l_star: plateau logit coefficient (default ``K``, the scale where the softmax saturates).

    Example:
        >>> round(semantic_time(4.0, 9, 1e-4, 9.0), 3)
        25.667
    """
    kappa_attr = _check_positive("kappa_attr", kappa_attr)
    l0 = _check_positive("l0", l0)
    growth_rate(kappa_attr, K)
    l_star = float(K) if l_star is None else _check_positive("l_star", l_star)
    return K * math.log(l_star / l0) / (2.0 * math.sqrt(kappa_attr))
