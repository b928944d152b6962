"""Linearised dynamics of one scheme mode: the 2×2 escape block (docs: Theory §7, §9).

Where a mode's coefficients ``(w_S, h_S)`` are 0 and the softmax sees the gradient coefficient ``g_S``,
the reduced flow ``dw = g h - λ_W w``, ``dh = κ (g w - λ_H h)`` (ridge on H) or ``dh = κ g w - λ_E h``
(ridge on E) is linear in that mode, with matrix

    ridge H:  [[-λ_W, g], [κ g, -κ λ_H]]        ridge E:  [[-λ_W, g], [κ g, -λ_E]]

Its top eigenvalue is the mode's growth (escape) rate: at the origin (``g = 1/K``) the early growth of
:func:`ufmtheory.solvers.linear.linear_rates`, at the semantic saddle (``g = g_S*``) the escape rate ``μ``
of :func:`ufmtheory.equilibria.semantic_saddle`.

Example:
    >>> escape_block(0.25, 4.0, lam_W=0.0, lam_X=0.0, ridge="H").tolist()
    [[-0.0, 0.25], [1.0, -0.0]]
    >>> round(escape_rate(0.25, 4.0), 12)  # sqrt(κ) g
    0.5
"""

from __future__ import annotations

import numpy as np

__all__ = ["escape_block", "escape_rate"]


def escape_block(
    g: float, kappa: float, *, lam_W: float = 0.0, lam_X: float = 0.0, ridge: str = "H"
) -> np.ndarray:
    """(2, 2) linearisation ``[[-λ_W, g], [κ g, -κ λ_X]]`` (ridge H) or ``[[-λ_W, g], [κ g, -λ_X]]`` (ridge E)
    of one mode's ``(w_S, h_S)`` at a point where that mode is 0 and ``g_S = g``; ``lam_X`` is λ_H or λ_E."""
    if ridge not in ("H", "E"):
        raise ValueError(f"ridge must be 'H' or 'E', got {ridge!r}")
    damp_h = kappa * lam_X if ridge == "H" else lam_X
    return np.array([[-lam_W, g], [kappa * g, -damp_h]], dtype=np.float64)


def escape_rate(g: float, kappa: float, *, lam_W: float = 0.0, lam_X: float = 0.0, ridge: str = "H") -> float:
    """Top eigenvalue (real part) of :func:`escape_block`: the mode's exponential growth rate."""
    return float(np.linalg.eigvals(escape_block(g, kappa, lam_W=lam_W, lam_X=lam_X, ridge=ridge)).real.max())
