"""sympy derivations of the exact symmetric reductions: the independent check of the solver's equations.

A symmetric association scheme on K points (docs: Theory §6) is given by
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
:func:`ufmtheory.reduced_solve` itself runs the same equations written out in numpy
(:mod:`ufmtheory.solvers.reduced_rhs`: no sympy import on the solver's path); the tests check the two against
each other on every scheme kind, ridge placement and normalisation.

**Column normalisation** (``ModifiedUFM(normalize=r)``, ``H = r H_raw / ‖columns‖``): in the algebra every
column of ``H_raw = Σ a_S P_S`` has the same norm ``n = sqrt(Σ_S m_S a_S² / K)``, so ``H = Σ h_S P_S`` with
``h_S = r a_S / n`` and the state is ``(w, a)``. ``derive_reduced(..., normalize=True)`` derives its flow by
the *gradient route*: the full flow restricted to the algebra is the preconditioned gradient flow of the
reduced loss ``F(w, a) = CE(L(w, a)) + penalty`` (``CE = -log p_0``, ``L[r] = Σ_S w_S h_S(a) P_S[r]``),

    dw_S/dt = -(1/m_S) ∂F/∂w_S,
    ridge on H:  da_S/dt = -(κ_S/m_S) ∂F/∂a_S          (penalty λ_H/2 Σ m_S a_S²),
    ridge on E:  da_S/dt = -(κ_S/m_S) ∂CE/∂a_S - λ_E a_S,

(``⟨∇_W f, P_S R⟩ = m_S × coefficient``) and ``∂CE/∂θ = Σ_{r>0} n_r q_r (∂L[r]/∂θ - ∂L[0]/∂θ)`` (the
chain rule through the softmax with ``n_0 p_0 - 1 = -Σ_{r>0} n_r q_r``: stable at convergence). sympy
differentiates ``h_S(a)`` through the norm, which reproduces the projection
``g_raw = (r/n)(g - ĥ ĥᵀg)`` of the full model (:func:`check_normalised_projection`); with
``normalize=False`` the same route reproduces the equations above (:func:`check_gradient_route`).

Example:
    >>> check_etf_mode()  # the ETF-mode ODE du/dt = 2u/(e^u + K - 1) is recovered exactly
    0
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

from ufmtheory.solvers.reduced_rhs import offdiag_softmax

if TYPE_CHECKING:
    import sympy as sp

__all__ = [
    "ReducedExprs",
    "CompiledReduced",
    "derive_reduced",
    "compile_reduced",
    "offdiag_softmax",
    "check_etf_mode",
    "check_gradient_route",
    "check_normalised_projection",
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
        normalize: whether ``H`` is column-normalised; then ``h`` are the raw coefficients ``a_S`` of
            ``E X̃`` (the state), ``features`` the coefficients ``h_S = r a_S / n`` of ``H`` and ``radius``
            the symbol ``r``; ``L``, ``p``, ``sigma`` are in terms of ``features``.
        radius: the normalisation radius (``None`` without normalisation).
        features: (n_S,) coefficients of ``H`` in terms of the state (``h`` itself without normalisation).
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
    normalize: bool = False
    radius: sp.Expr | None = None
    features: tuple[sp.Expr, ...] = ()


def _sym(value: Any) -> sp.Expr:
    import sympy as sp  # lazy: importing the package never loads sympy

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
    normalize: bool = False,
    radius: Any = None,
    route: str = "auto",
) -> ReducedExprs:
    """Derive the reduced right-hand side on a scheme with sympy.

    Args:
        counts: (n_r,) valencies ``n_r`` (``counts[0] = 1``: relation 0 is the identity).
        table: (n_S, n_r) projector entries ``P_S[r]`` (numbers, ``Fraction``s or sympy expressions).
        ranks: (n_S,) ranks ``m_S``.
        kappa: (n_S,) kernel eigenvalues ``κ_S``; symbols ``kappa_i`` when ``None``.
        ridge: ``"H"`` (ridge on the features) or ``"E"`` (ridge on the embeddings).
        lam_W, lam_X: ridge strengths; symbols when ``None``.
        normalize: column-normalised features ``H = r H_raw/‖·‖`` (state ``w, a``; see the module notes).
        radius: the radius ``r`` (symbol ``r`` when ``None``; used only with ``normalize``).
        route: ``"direct"`` (the closed-form equations, no normalisation only), ``"gradient"`` (the
            preconditioned gradient of the reduced loss) or ``"auto"`` (direct unless ``normalize``).

    Returns:
        :class:`ReducedExprs`.

    Raises:
        ValueError: shapes disagree, ``counts[0] != 1`` or ``P_S[0] != m_S/K`` (not a scheme in the
            expected normal form).
    """
    import sympy as sp  # lazy: importing the package never loads sympy

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
    if route == "auto":
        route = "gradient" if normalize else "direct"
    if route not in ("direct", "gradient"):
        raise ValueError(f"route must be 'auto', 'direct' or 'gradient', got {route!r}")
    if normalize and route == "direct":
        raise ValueError("normalize=True needs route='gradient' (or 'auto')")
    w = sp.symbols(f"w0:{n_S}", real=True)
    h = sp.symbols(f"a0:{n_S}" if normalize else f"h0:{n_S}", real=True)
    q = sp.symbols(f"q1:{n_r}", positive=True)
    kap = tuple(sp.symbols(f"kappa0:{n_S}", positive=True)) if kappa is None else tuple(map(_sym, kappa))
    if len(kap) != n_S:
        raise ValueError(f"kappa must have n_S = {n_S} entries, got {len(kap)}")
    lW = sp.Symbol("lam_W", nonnegative=True) if lam_W is None else _sym(lam_W)
    lX = sp.Symbol(f"lam_{ridge}", nonnegative=True) if lam_X is None else _sym(lam_X)

    if normalize:
        rad = sp.Symbol("r", positive=True) if radius is None else _sym(radius)
        norm = sp.sqrt(sp.Add(*(m[S] * h[S] ** 2 for S in range(n_S))) / K)
        feat = tuple(rad * h[S] / norm for S in range(n_S))
    else:
        rad, feat = None, tuple(h)
    L = tuple(sp.Add(*(w[S] * feat[S] * P[S][r] for S in range(n_S))) for r in range(n_r))
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
    if ridge == "H":
        pen_h = sp.Add(*(m[S] * h[S] ** 2 for S in range(n_S)))
    else:
        pen_h = sp.Add(*(m[S] * h[S] ** 2 / kap[S] for S in range(n_S)))
    penalty = lW / 2 * sp.Add(*(m[S] * w[S] ** 2 for S in range(n_S))) + lX / 2 * pen_h
    if route == "direct":
        dw = tuple(g[S] * h[S] - lW * w[S] for S in range(n_S))
        if ridge == "H":
            dh = tuple(kap[S] * (g[S] * w[S] - lX * h[S]) for S in range(n_S))
        else:
            dh = tuple(kap[S] * g[S] * w[S] - lX * h[S] for S in range(n_S))
    else:
        # Gradient route: ∂CE/∂θ = Σ_{r>0} n_r q_r (∂L[r]/∂θ - ∂L[0]/∂θ) (softmax chain rule with the
        # diagonal probability eliminated), then the flow preconditioned by 1/m_S (W) and κ_S/m_S (E X̃).
        def dce(theta: sp.Symbol) -> sp.Expr:
            d0 = sp.diff(L[0], theta)
            return sp.Add(*(n[r] * q[r - 1] * (sp.diff(L[r], theta) - d0) for r in range(1, n_r)))

        dw = tuple(-dce(w[S]) / m[S] - lW * w[S] for S in range(n_S))
        if ridge == "H":
            dh = tuple(-kap[S] / m[S] * dce(h[S]) - kap[S] * lX * h[S] for S in range(n_S))
        else:
            dh = tuple(-kap[S] / m[S] * dce(h[S]) - lX * h[S] for S in range(n_S))
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
        normalize=bool(normalize),
        radius=rad,
        features=feat,
    )


@dataclass(frozen=True, eq=False)
class CompiledReduced:
    """numpy functions lambdified from :func:`derive_reduced` for one scheme and ridge placement.

    Attributes:
        logits: ``logits(w, h[, r]) -> (n_r,)`` logit entries ``L[r]`` (``r``: radius, normalised only).
        rhs_q: ``rhs_q(w, h, q, kappa, lam_W, lam_X[, r]) -> (2 n_S,)`` ``[dw, dh]`` given the off-diagonal
            softmax entries ``q: (n_r - 1,)``.
        g_q: ``g_q(q) -> (n_S,)`` the ``g_S``.
        penalty: ``penalty(w, h, kappa, lam_W, lam_X) -> float`` ridge part of the loss.
        counts: (n_r,) float valencies (for the softmax).
        normalized: column-normalised features; ``h`` is then the raw state ``a`` (coefficients of E X̃).
    """

    logits: Callable[..., Any]
    rhs_q: Callable[..., Any]
    g_q: Callable[..., Any]
    penalty: Callable[..., Any]
    counts: np.ndarray
    normalized: bool = False

    def _extra(self, radius: float | None) -> tuple[float, ...]:
        if self.normalized:
            if radius is None:
                raise ValueError("a normalised reduced flow needs the radius")
            return (float(radius),)
        return ()

    def softmax(self, w: np.ndarray, h: np.ndarray, radius: float | None = None) -> tuple[np.ndarray, float]:
        """Off-diagonal softmax entries ``q: (n_r - 1,)`` and cross-entropy ``-log p_0`` at ``(w, h)``."""
        L = self.logits(w, h, *self._extra(radius))
        return offdiag_softmax(np.asarray(L, dtype=np.float64), self.counts)

    def rhs(
        self,
        w: np.ndarray,
        h: np.ndarray,
        kappa: np.ndarray,
        lam_W: float,
        lam_X: float,
        radius: float | None = None,
    ) -> np.ndarray:
        """``[dw_S/dt, dh_S/dt]: (2 n_S,)`` at coefficients ``w, h`` (``h``: raw ``a`` when normalised)."""
        extra = self._extra(radius)
        q, _ = offdiag_softmax(np.asarray(self.logits(w, h, *extra), dtype=np.float64), self.counts)
        return np.asarray(self.rhs_q(w, h, q, kappa, lam_W, lam_X, *extra), dtype=np.float64)


@functools.lru_cache(maxsize=64)
def _compile(
    counts: tuple[int, ...],
    table: tuple[tuple[Fraction, ...], ...],
    ranks: tuple[int, ...],
    ridge: str,
    normalize: bool = False,
) -> CompiledReduced:
    import sympy as sp  # lazy: importing the package never loads sympy

    ex = derive_reduced(counts, table, ranks, ridge=ridge, normalize=normalize)
    extra = [ex.radius] if normalize else []
    args_wh = [list(ex.w), list(ex.h), *extra]
    logits = sp.lambdify(args_wh, list(ex.L), modules="numpy", cse=True)
    rhs_args = [list(ex.w), list(ex.h), list(ex.q), list(ex.kappa), ex.lam_W, ex.lam_X, *extra]
    rhs_q = sp.lambdify(rhs_args, [*ex.dw, *ex.dh], modules="numpy", cse=True)
    g_q = sp.lambdify([list(ex.q)], list(ex.g), modules="numpy", cse=True)
    pen = sp.lambdify([list(ex.w), list(ex.h), list(ex.kappa), ex.lam_W, ex.lam_X], ex.penalty, "numpy")
    return CompiledReduced(
        logits=logits,
        rhs_q=rhs_q,
        g_q=g_q,
        penalty=pen,
        counts=np.array(counts, dtype=np.float64),
        normalized=bool(normalize),
    )


def compile_reduced(
    counts: Sequence[int],
    table: Sequence[Sequence[Any]],
    ranks: Sequence[int],
    ridge: str = "H",
    normalize: bool = False,
) -> CompiledReduced:
    """Lambdified reduced dynamics for a concrete scheme, cached on the scheme's exact entries.

    Args:
        counts: (n_r,) integer valencies, ``counts[0] = 1``.
        table: (n_S, n_r) exact projector entries (``Fraction`` or int; floats are converted exactly).
        ranks: (n_S,) integer ranks.
        ridge: ``"H"`` or ``"E"``.
        normalize: column-normalised features (the radius becomes a trailing argument).

    Exact rationals let sympy cancel identically vanishing terms (``g_∅ = 0`` exactly).
    """
    key_table = tuple(tuple(Fraction(x) for x in row) for row in table)
    return _compile(
        tuple(int(c) for c in counts), key_table, tuple(int(r) for r in ranks), ridge, bool(normalize)
    )


def check_etf_mode() -> sp.Expr:
    """Symbolic check: one factor with K classes (projectors ∅ and the centred one, ``m = K - 1``), no
    ridge, ``κ = 1``, balanced ``h = w = sqrt(u)`` so ``ℓ = u``. Returns the simplified difference
    ``dℓ/dt - 2u/(e^u + K - 1)`` computed from both the exact softmax and the stable form (0 when the
    reduction recovers the ETF-mode ODE)."""
    import sympy as sp  # lazy: importing the package never loads sympy

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


def check_gradient_route(
    counts: Sequence[Any], table: Sequence[Sequence[Any]], ranks: Sequence[Any], ridge: str = "H"
) -> list[sp.Expr]:
    """Symbolic check that the gradient route reproduces the closed-form reduced equations without
    normalisation: returns the simplified differences ``[dw_S, dh_S]`` (all 0 when they agree)."""
    import sympy as sp  # lazy: importing the package never loads sympy

    direct = derive_reduced(counts, table, ranks, ridge=ridge, route="direct")
    grad = derive_reduced(counts, table, ranks, ridge=ridge, route="gradient")
    return [
        sp.simplify(sp.expand(a - b))
        for a, b in zip((*direct.dw, *direct.dh), (*grad.dw, *grad.dh), strict=True)
    ]


def check_normalised_projection(
    counts: Sequence[Any], table: Sequence[Sequence[Any]], ranks: Sequence[Any], ridge: str = "H"
) -> list[sp.Expr]:
    """Symbolic check of the normalised reduction against the projected full-model gradient.

    The full model moves ``E X̃ = H_raw`` by ``-(g_raw + λ_H H_raw) K_x`` (ridge H) with
    ``g_raw = (r/n)(∇_H f - ĥ diag(ĥᵀ ∇_H f))``, ``ĥ = H/r``. In the algebra ``∇_H f = -Σ w_S g_S P_S``
    and ``ĥᵀ∇_H f`` has the common diagonal ``s = -Σ_S ĥ_S w_S g_S m_S/K``, so
    ``da_S/dt = κ_S [(r/n)(w_S g_S + s ĥ_S) - λ_H a_S]`` (ridge E: ``- λ_E a_S`` outside the bracket)
    and ``dw_S/dt = g_S h_S - λ_W w_S``. Returns the simplified differences from :func:`derive_reduced`'s
    gradient route (all 0 when they agree).
    """
    import sympy as sp  # lazy: importing the package never loads sympy

    ex = derive_reduced(counts, table, ranks, ridge=ridge, normalize=True)
    n = [_sym(c) for c in counts]
    m = [_sym(x) for x in ranks]
    K = sp.Add(*n)
    n_S = len(m)
    r, a, w, g = ex.radius, ex.h, ex.w, ex.g
    norm = sp.sqrt(sp.Add(*(m[S] * a[S] ** 2 for S in range(n_S))) / K)
    hat = [a[S] / norm for S in range(n_S)]
    s_diag = -sp.Add(*(hat[S] * w[S] * g[S] * m[S] / K for S in range(n_S)))
    out = []
    for S in range(n_S):
        dw = g[S] * r * hat[S] - ex.lam_W * w[S]
        tangential = (r / norm) * (w[S] * g[S] + s_diag * hat[S])
        if ridge == "H":
            da = ex.kappa[S] * (tangential - ex.lam_X * a[S])
        else:
            da = ex.kappa[S] * tangential - ex.lam_X * a[S]
        out.append(sp.simplify(ex.dw[S] - dw))
        out.append(sp.simplify(ex.dh[S] - da))
    return out
