"""sympy derivations for the exact symmetric reductions, lambdified to numpy for :mod:`ufmtheory.reduced`.

A symmetric association scheme on K points (THEORY.md section 4, "Exact symmetric reduction") is given by
its relation classes ``r`` (class 0 is the identity relation, ``n_0 = 1``) with valencies ``n_r``, its
primitive idempotents ``P_S`` with ranks ``m_S`` and the entry table ``P_S[r]`` (the value of ``P_S`` at
any pair in relation ``r``). With ``W = Σ w_S P_S``, ``H = Σ h_S P_S`` the logits are ``L = Σ ℓ_S P_S``
with ``ℓ_S = w_S h_S``; every column of ``softmax(L)`` holds ``p_r = exp(L[r]) / Σ_r' n_r' exp(L[r'])``
with multiplicity ``n_r``, its eigenvalues are ``σ_S = (K/m_S) Σ_r n_r p_r P_S[r]`` and ``g_S = (1-σ_S)/K``:

    ridge on H:  dw_S/dt = g_S h_S - λ_W w_S,   dh_S/dt = κ_S (g_S w_S - λ_H h_S)
    ridge on E:  dw_S/dt = g_S h_S - λ_W w_S,   dh_S/dt = κ_S g_S w_S - λ_E h_S

:func:`derive_reduced` builds these expressions (entries may be numbers or sympy symbols).
For numerics the diagonal probability is eliminated with ``p_0 = 1 - Σ_{r>0} n_r p_r`` and the scheme
identity ``P_S[0] = m_S/K`` (a projector's diagonal is its rank over K); sympy then expands ``g_S`` into
``Σ_{r>0} n_r p_r (1 - K P_S[r]/m_S)/K``, which has no cancellation when the flow has converged
(``p_0 → 1``, ``g_S ~ 1/t``). :func:`compile_reduced` lambdifies the logit entries and this stable
right-hand side; the softmax itself is evaluated in numpy with a max shift (:func:`offdiag_softmax`).

Example:
    >>> check_etf_mode()  # the ETF-mode ODE du/dt = 2u/(e^u + K - 1) is recovered exactly
    0
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import sympy as sp

__all__ = [
    "ReducedExprs",
    "CompiledReduced",
    "derive_reduced",
    "compile_reduced",
    "offdiag_softmax",
    "check_etf_mode",
]


@dataclass(frozen=True, eq=False)
class ReducedExprs:
    """sympy expressions of the reduced dynamics on one scheme.

    Attributes:
        w, h: (n_S,) coefficient symbols of ``W`` and ``H``.
        kappa: (n_S,) kernel eigenvalues ``κ_S`` (symbols unless numbers were given).
        lam_W, lam_X: ridge strengths (``lam_X`` is ``λ_H`` or ``λ_E`` depending on ``ridge``).
        q: (n_r - 1,) symbols for the off-diagonal softmax entries ``p_1, ..., p_{n_r-1}``.
        L: (n_r,) logit entries ``L[r] = Σ_S w_S h_S P_S[r]``.
        p: (n_r,) exact softmax entries as functions of ``w, h``.
        sigma: (n_S,) softmax eigenvalues ``σ_S`` as functions of ``w, h``.
        g: (n_S,) ``g_S = (1 - σ_S)/K`` in the stable form (functions of ``q``).
        dw, dh: (n_S,) right-hand sides in terms of ``w, h, q, kappa, lam_W, lam_X``.
        penalty: ridge part of the loss, ``λ_W/2 Σ m_S w_S² + λ_X/2 Σ m_S h_S² (/κ_S for ridge E)``.
        ridge: ``"H"`` or ``"E"``.
    """

    w: tuple[sp.Symbol, ...]
    h: tuple[sp.Symbol, ...]
    kappa: tuple[sp.Expr, ...]
    lam_W: sp.Expr
    lam_X: sp.Expr
    q: tuple[sp.Symbol, ...]
    L: tuple[sp.Expr, ...]
    p: tuple[sp.Expr, ...]
    sigma: tuple[sp.Expr, ...]
    g: tuple[sp.Expr, ...]
    dw: tuple[sp.Expr, ...]
    dh: tuple[sp.Expr, ...]
    penalty: sp.Expr
    ridge: str


def _sym(value: Any) -> sp.Expr:
    if isinstance(value, Fraction):
        return sp.Rational(value.numerator, value.denominator)
    return sp.sympify(value)


def derive_reduced(
    counts: Sequence[Any],
    table: Sequence[Sequence[Any]],
    ranks: Sequence[Any],
    kappa: Sequence[Any] | None = None,
    *,
    ridge: str = "H",
    lam_W: Any = None,
    lam_X: Any = None,
) -> ReducedExprs:
    """Derive the reduced right-hand side on a scheme with sympy.

    Args:
        counts: (n_r,) valencies ``n_r`` (``counts[0] = 1``: relation 0 is the identity).
        table: (n_S, n_r) projector entries ``P_S[r]`` (numbers, ``Fraction``s or sympy expressions).
        ranks: (n_S,) ranks ``m_S``.
        kappa: (n_S,) kernel eigenvalues ``κ_S``; symbols ``kappa_i`` when ``None``.
        ridge: ``"H"`` (ridge on the features) or ``"E"`` (ridge on the embeddings).
        lam_W, lam_X: ridge strengths; symbols when ``None``.

    Returns:
        :class:`ReducedExprs`.

    Raises:
        ValueError: shapes disagree, ``counts[0] != 1`` or ``P_S[0] != m_S/K`` (not a scheme in the
            expected normal form).
    """
    if ridge not in ("H", "E"):
        raise ValueError(f"ridge must be 'H' or 'E', got {ridge!r}")
    n = [_sym(c) for c in counts]
    P = [[_sym(x) for x in row] for row in table]
    m = [_sym(x) for x in ranks]
    n_S, n_r = len(P), len(n)
    if any(len(row) != n_r for row in P) or len(m) != n_S:
        raise ValueError(f"table must be (n_S, n_r) = ({len(m)}, {n_r}) to match ranks and counts")
    K = sp.Add(*n)
    if sp.simplify(n[0] - 1) != 0:
        raise ValueError(f"counts[0] must be 1 (relation 0 is the identity), got {n[0]}")
    for S in range(n_S):
        if sp.simplify(P[S][0] - m[S] / K) != 0:
            raise ValueError(f"table[{S}][0] must equal ranks[{S}]/K (a projector's diagonal), got {P[S][0]}")
    w = sp.symbols(f"w0:{n_S}", real=True)
    h = sp.symbols(f"h0:{n_S}", real=True)
    q = sp.symbols(f"q1:{n_r}", positive=True)
    kap = tuple(sp.symbols(f"kappa0:{n_S}", positive=True)) if kappa is None else tuple(map(_sym, kappa))
    if len(kap) != n_S:
        raise ValueError(f"kappa must have n_S = {n_S} entries, got {len(kap)}")
    lW = sp.Symbol("lam_W", nonnegative=True) if lam_W is None else _sym(lam_W)
    lX = sp.Symbol(f"lam_{ridge}", nonnegative=True) if lam_X is None else _sym(lam_X)

    L = tuple(sp.Add(*(w[S] * h[S] * P[S][r] for S in range(n_S))) for r in range(n_r))
    Z = sp.Add(*(n[r] * sp.exp(L[r]) for r in range(n_r)))
    p = tuple(sp.exp(L[r]) / Z for r in range(n_r))

    def sigma_of(probs: Sequence[sp.Expr]) -> tuple[sp.Expr, ...]:
        return tuple(K / m[S] * sp.Add(*(n[r] * probs[r] * P[S][r] for r in range(n_r))) for S in range(n_S))

    sigma = sigma_of(p)
    # Stable form: eliminate the diagonal probability (n_0 = 1) and the diagonal entries P_S[0] = m_S/K.
    p0 = 1 - sp.Add(*(n[r] * q[r - 1] for r in range(1, n_r)))
    sigma_q = sigma_of((p0, *q))
    # P_S[0] = m_S/K was checked above, so expanding cancels the leading 1 against K P_S[0]/m_S exactly.
    g = tuple(sp.collect(sp.expand((1 - sigma_q[S]) / K), q) for S in range(n_S))
    dw = tuple(g[S] * h[S] - lW * w[S] for S in range(n_S))
    if ridge == "H":
        dh = tuple(kap[S] * (g[S] * w[S] - lX * h[S]) for S in range(n_S))
        pen_h = sp.Add(*(m[S] * h[S] ** 2 for S in range(n_S)))
    else:
        dh = tuple(kap[S] * g[S] * w[S] - lX * h[S] for S in range(n_S))
        pen_h = sp.Add(*(m[S] * h[S] ** 2 / kap[S] for S in range(n_S)))
    penalty = lW / 2 * sp.Add(*(m[S] * w[S] ** 2 for S in range(n_S))) + lX / 2 * pen_h
    return ReducedExprs(
        w=tuple(w),
        h=tuple(h),
        kappa=kap,
        lam_W=lW,
        lam_X=lX,
        q=tuple(q),
        L=L,
        p=p,
        sigma=sigma,
        g=g,
        dw=dw,
        dh=dh,
        penalty=penalty,
        ridge=ridge,
    )


@dataclass(frozen=True, eq=False)
class CompiledReduced:
    """numpy functions lambdified from :func:`derive_reduced` for one scheme and ridge placement.

    Attributes:
        logits: ``logits(w, h) -> (n_r,)`` logit entries ``L[r]``.
        rhs_q: ``rhs_q(w, h, q, kappa, lam_W, lam_X) -> (2 n_S,)`` ``[dw, dh]`` given the off-diagonal
            softmax entries ``q: (n_r - 1,)``.
        g_q: ``g_q(q) -> (n_S,)`` the ``g_S``.
        penalty: ``penalty(w, h, kappa, lam_W, lam_X) -> float`` ridge part of the loss.
        counts: (n_r,) float valencies (for the softmax).
    """

    logits: Callable[..., Any]
    rhs_q: Callable[..., Any]
    g_q: Callable[..., Any]
    penalty: Callable[..., Any]
    counts: np.ndarray

    def softmax(self, w: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, float]:
        """Off-diagonal softmax entries ``q: (n_r - 1,)`` and cross-entropy ``-log p_0`` at ``(w, h)``."""
        return offdiag_softmax(np.asarray(self.logits(w, h), dtype=np.float64), self.counts)

    def rhs(self, w: np.ndarray, h: np.ndarray, kappa: np.ndarray, lam_W: float, lam_X: float) -> np.ndarray:
        """``[dw_S/dt, dh_S/dt]: (2 n_S,)`` at coefficients ``w, h``."""
        q, _ = self.softmax(w, h)
        return np.asarray(self.rhs_q(w, h, q, kappa, lam_W, lam_X), dtype=np.float64)


def offdiag_softmax(L: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, float]:
    """Softmax entries of one column with entry ``L[r]`` repeated ``counts[r]`` times, computed with a
    max shift: returns the off-diagonal entries ``p_1..p_{n_r-1}`` and the cross-entropy ``-log p_0``."""
    shifted = L - L.max()
    e = np.exp(shifted)
    Z = float(counts @ e)
    return e[1:] / Z, float(np.log(Z) - shifted[0])


@functools.lru_cache(maxsize=64)
def _compile(
    counts: tuple[int, ...], table: tuple[tuple[Fraction, ...], ...], ranks: tuple[int, ...], ridge: str
) -> CompiledReduced:
    ex = derive_reduced(counts, table, ranks, ridge=ridge)
    args_wh = [list(ex.w), list(ex.h)]
    logits = sp.lambdify(args_wh, list(ex.L), modules="numpy", cse=True)
    rhs_args = [list(ex.w), list(ex.h), list(ex.q), list(ex.kappa), ex.lam_W, ex.lam_X]
    rhs_q = sp.lambdify(rhs_args, [*ex.dw, *ex.dh], modules="numpy", cse=True)
    g_q = sp.lambdify([list(ex.q)], list(ex.g), modules="numpy", cse=True)
    pen = sp.lambdify([list(ex.w), list(ex.h), list(ex.kappa), ex.lam_W, ex.lam_X], ex.penalty, "numpy")
    return CompiledReduced(
        logits=logits, rhs_q=rhs_q, g_q=g_q, penalty=pen, counts=np.array(counts, dtype=np.float64)
    )


def compile_reduced(
    counts: Sequence[int], table: Sequence[Sequence[Any]], ranks: Sequence[int], ridge: str = "H"
) -> CompiledReduced:
    """Lambdified reduced dynamics for a concrete scheme, cached on the scheme's exact entries.

    Args:
        counts: (n_r,) integer valencies, ``counts[0] = 1``.
        table: (n_S, n_r) exact projector entries (``Fraction`` or int; floats are converted exactly).
        ranks: (n_S,) integer ranks.
        ridge: ``"H"`` or ``"E"``.

    Exact rationals let sympy cancel identically vanishing terms (``g_∅ = 0`` exactly).
    """
    key_table = tuple(tuple(Fraction(x) for x in row) for row in table)
    return _compile(tuple(int(c) for c in counts), key_table, tuple(int(r) for r in ranks), ridge)


def check_etf_mode() -> sp.Expr:
    """Symbolic check: one factor with K classes (projectors ∅ and the centred one, ``m = K - 1``), no
    ridge, ``κ = 1``, balanced ``h = w = sqrt(u)`` so ``ℓ = u``. Returns the simplified difference
    ``dℓ/dt - 2u/(e^u + K - 1)`` computed from both the exact softmax and the stable form (0 when the
    reduction recovers the ETF-mode ODE)."""
    K = sp.Symbol("K", positive=True, integer=True)
    u = sp.Symbol("u", positive=True)
    counts = (1, K - 1)
    ranks = (1, K - 1)
    table = ((1 / K, 1 / K), ((K - 1) / K, -1 / K))
    ex = derive_reduced(counts, table, ranks, kappa=(1, 1), lam_W=0, lam_X=0)
    sub = {ex.w[0]: 0, ex.h[0]: 0, ex.w[1]: sp.sqrt(u), ex.h[1]: sp.sqrt(u)}
    target = 2 * u / (sp.exp(u) + K - 1)
    # Exact route: g from the softmax eigenvalue σ built on p_r = exp(L[r]) / Z.
    g_exact = (1 - ex.sigma[1]) / K
    dl_exact = (g_exact * ex.h[1] * ex.h[1] + ex.w[1] * g_exact * ex.w[1]).subs(sub)
    # Stable route: the right-hand side used numerically, with q_1 = p_1 substituted.
    dl_stable = (ex.h[1] * ex.dw[1] + ex.w[1] * ex.dh[1]).subs({ex.q[0]: ex.p[1]}).subs(sub)
    diff = sp.simplify(sp.simplify(dl_exact - target) ** 2 + sp.simplify(dl_stable - target) ** 2)
    return diff
