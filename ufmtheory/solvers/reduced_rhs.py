"""The reduced flow's right-hand side and Jacobian written out in numpy (no sympy on the solver's path).

The equations are those derived symbolically in :mod:`ufmtheory.solvers.symbolic` (docs: Theory §6), which
stays the independent check of this module in the tests. On a symmetric association scheme with projector
table ``P: (n_S, n_r)`` (``P[S, r] = P_S[r]``), ranks ``m_S``, valencies ``n_r`` and kernel eigenvalues
``κ_S``, with ``ℓ_S = w_S h_S``:

* logits ``L = Pᵀ ℓ: (n_r,)``; off-diagonal softmax entries ``q_r = e^{L_r} / Σ_r' n_r' e^{L_r'}``, ``r > 0``;
* ``g = C q`` with ``C[S, r] = n_r (1 - K P_S[r]/m_S)/K`` (the stable form ``g_S = (1 - σ_S)/K`` with the
  diagonal probability eliminated: no cancellation once ``p_0 → 1``; ``C[∅, ·] = 0`` exactly);
* ridge on H: ``ẇ = g∘h - λ_W w``, ``ḣ = κ∘(g∘w - λ_H h)``; ridge on E: ``ḣ = κ∘g∘w - λ_E h``.

Jacobian: with ``p`` the full softmax column (``p_0 = e^{L_0}/Z``), ``∂q/∂L = [0 | diag(q)] - q (n∘p)ᵀ`` and
``M = ∂g/∂ℓ = C (∂q/∂L) Pᵀ``, so ``∂g/∂w = M diag(h)`` and ``∂g/∂h = M diag(w)``; the blocks follow by the
product rule (:meth:`ReducedRHS.jac`).

Column normalisation (``H = r H_raw/‖·‖``; state ``(w, a)``, ``n = sqrt(Σ m_S a_S²/K)``, ``h = r a/n``):
``ẇ = g∘h - λ_W w`` and ``ȧ_S = κ_S (r/n)(w_S g_S - â_S Σ_T m_T â_T w_T g_T / K) - (κ_S λ_H | λ_E) a_S``
with ``â = a/n`` (the projected gradient; :func:`ufmtheory.solvers.symbolic.check_normalised_projection`).
No analytic Jacobian there (LSODA builds one by differences: 2 n_S evaluations).

Example:
    >>> from ufmtheory.algebra.schemes import factorial_scheme
    >>> f = ReducedRHS.from_scheme(factorial_scheme((3, 3)), "H")
    >>> w = h = np.array([0.0, 1.0, 1.0, 1.0])
    >>> bool(np.allclose(f.rhs(w, h, np.ones(4), 0.0, 0.0)[:4], f.g(w, h) * h))
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ufmtheory.algebra.schemes import AssociationScheme

__all__ = ["ReducedRHS", "offdiag_softmax"]


def offdiag_softmax(L: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, float]:
    """Softmax entries of one column with entry ``L[r]`` repeated ``counts[r]`` times, computed with a
    max shift: returns the off-diagonal entries ``p_1..p_{n_r-1}`` and the cross-entropy ``-log p_0``."""
    shifted = L - L.max()
    e = np.exp(shifted)
    Z = float(counts @ e)
    return e[1:] / Z, float(np.log(Z) - shifted[0])


@dataclass(frozen=True, eq=False)
class ReducedRHS:
    """The reduced dynamics of one scheme and ridge placement as numpy functions.

    Attributes:
        table: (n_S, n_r) projector entries ``P_S[r]``.
        ranks: (n_S,) ranks ``m_S``.
        counts: (n_r,) valencies ``n_r``.
        C: (n_S, n_r - 1) the matrix of the stable form ``g = C q`` (from the exact entries).
        ridge: ``"H"`` or ``"E"``.
        normalized: column-normalised features; ``h`` arguments are then the raw state ``a``.
    """

    table: np.ndarray
    ranks: np.ndarray
    counts: np.ndarray
    C: np.ndarray
    ridge: str = "H"
    normalized: bool = False

    @classmethod
    def from_scheme(cls, sch: AssociationScheme, ridge: str = "H", normalize: bool = False) -> ReducedRHS:
        """Build from an :class:`~ufmtheory.algebra.schemes.AssociationScheme` (``C`` from its exact table,
        so ``g_∅ = 0`` exactly)."""
        if ridge not in ("H", "E"):
            raise ValueError(f"ridge must be 'H' or 'E', got {ridge!r}")
        K = Fraction(sch.K)
        C = np.array(
            [
                [float(Fraction(n) * (1 - K * P[r] / m) / K) for r, n in enumerate(sch.counts) if r > 0]
                for P, m in zip(sch.exact_table, sch.ranks, strict=True)
            ]
        ).reshape(sch.n_S, sch.n_r - 1)
        return cls(
            table=np.array(sch.table, dtype=np.float64),
            ranks=np.array(sch.ranks, dtype=np.float64),
            counts=np.array(sch.counts, dtype=np.float64),
            C=C,
            ridge=ridge,
            normalized=bool(normalize),
        )

    # -- pieces ------------------------------------------------------------------------------------------
    def features(self, h: np.ndarray, radius: float | None) -> np.ndarray:
        """(n_S,) coefficients of H: ``h`` itself, or ``r a/n`` when normalised."""
        if not self.normalized:
            return h
        if radius is None:
            raise ValueError("a normalised reduced flow needs the radius")
        return radius * h / math.sqrt(float(self.ranks @ (h * h)) / float(self.counts.sum()))

    def logits(self, w: np.ndarray, h: np.ndarray, radius: float | None = None) -> np.ndarray:
        """(n_r,) logit entries ``L[r]``."""
        return (w * self.features(h, radius)) @ self.table

    def softmax(self, w: np.ndarray, h: np.ndarray, radius: float | None = None) -> tuple[np.ndarray, float]:
        """Off-diagonal softmax entries ``q: (n_r - 1,)`` and cross-entropy ``-log p_0`` at ``(w, h)``."""
        return offdiag_softmax(self.logits(w, h, radius), self.counts)

    def g(self, w: np.ndarray, h: np.ndarray, radius: float | None = None) -> np.ndarray:
        """(n_S,) ``g_S = (1 - σ_S)/K``."""
        return self.C @ self.softmax(w, h, radius)[0]

    def penalty(self, w: np.ndarray, h: np.ndarray, kappa: np.ndarray, lam_W: float, lam_X: float) -> float:
        """Ridge part of the loss, ``λ_W/2 Σ m w² + λ_X/2 Σ m h²`` (``/κ_S`` for ridge E; ``h``: state)."""
        pen_h = self.ranks * h * h
        if self.ridge == "E":
            pen_h = np.divide(pen_h, kappa, out=np.zeros_like(pen_h), where=kappa > 0)
        return 0.5 * lam_W * float(self.ranks @ (w * w)) + 0.5 * lam_X * float(pen_h.sum())

    def snapshot(
        self,
        kappa: np.ndarray,
        lam_W: float,
        lam_X: float,
        radius: float | None = None,
        materialise: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, float]]:
        """``snapshot(y) -> (gram_H, gram_W, loss)`` of a state ``y = [w, h]``: Gram coefficients ``(h_S²,
        w_S²)`` (or ``materialise`` of them) and the loss, as a Trajectory stores them."""
        n_S = self.ranks.size

        def snapshot(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
            w, a = y[:n_S], y[n_S:]
            h = self.features(a, radius)
            loss = offdiag_softmax((w * h) @ self.table, self.counts)[1] + self.penalty(
                w, a, kappa, lam_W, lam_X
            )
            if materialise is None:
                return h * h, w * w, loss
            return materialise(h * h), materialise(w * w), loss

        return snapshot

    # -- the flow ----------------------------------------------------------------------------------------
    def rhs(
        self,
        w: np.ndarray,
        h: np.ndarray,
        kappa: np.ndarray,
        lam_W: float,
        lam_X: float,
        radius: float | None = None,
    ) -> np.ndarray:
        """``[dw/dt, dh/dt]: (2 n_S,)`` (``h``: the raw state ``a`` when normalised)."""
        fun, _ = self.log_time(kappa, lam_W, lam_X, radius)
        return fun(0.0, np.concatenate([w, h]))

    def jac(self, w: np.ndarray, h: np.ndarray, kappa: np.ndarray, lam_W: float, lam_X: float) -> np.ndarray:
        """``∂[dw/dt, dh/dt]/∂[w, h]: (2 n_S, 2 n_S)`` (not normalised)."""
        _, jac = self.log_time(kappa, lam_W, lam_X, None)
        assert jac is not None
        return jac(0.0, np.concatenate([w, h]))

    def log_time(
        self, kappa: np.ndarray, lam_W: float, lam_X: float, radius: float | None = None
    ) -> tuple[Callable[[float, np.ndarray], np.ndarray], Callable[[float, np.ndarray], np.ndarray] | None]:
        """``(fun, jac)`` of the flow in log-time ``s = ln(1 + t)`` on ``y = [w, h]``:
        ``fun(s, y) = e^s · [ẇ, ḣ]`` and its Jacobian (``None`` when normalised). Closures over the
        constants: this is the solver's hot loop (~10⁴ calls)."""
        P, PT, C, counts = self.table, np.ascontiguousarray(self.table.T), self.C, self.counts
        n_S = P.shape[0]
        kappa = np.asarray(kappa, dtype=np.float64)
        lam_W, lam_X = float(lam_W), float(lam_X)
        exp = math.exp
        # ḣ = kh (g∘w) - lh h: ridge H has kh = κ, lh = κ λ_H; ridge E has lh = λ_E.
        lh = kappa * lam_X if self.ridge == "H" else np.full(n_S, lam_X)
        if self.normalized:
            if radius is None:
                raise ValueError("a normalised reduced flow needs the radius")
            r, ranks, K = float(radius), self.ranks, float(counts.sum())

            def fun_n(s: float, y: np.ndarray) -> np.ndarray:
                w, a = y[:n_S], y[n_S:]
                n = math.sqrt(float(ranks @ (a * a)) / K)
                ahat = a / n
                L = (w * (r * ahat)) @ P
                e = np.exp(L - L.max())
                g = C @ (e[1:] / (counts @ e))
                wg = w * g
                da = kappa * ((r / n) * (wg - ahat * (float(ranks @ (ahat * wg)) / K))) - lh * a
                return exp(s) * np.concatenate([g * r * ahat - lam_W * w, da])

            return fun_n, None

        def fun(s: float, y: np.ndarray) -> np.ndarray:
            w, h = y[:n_S], y[n_S:]
            L = (w * h) @ P
            e = np.exp(L - L.max())
            g = C @ (e[1:] / (counts @ e))
            return exp(s) * np.concatenate([g * h - lam_W * w, kappa * g * w - lh * h])

        eye_W = lam_W * np.eye(n_S)
        diag_h = np.diag(lh)

        def jac(s: float, y: np.ndarray) -> np.ndarray:
            w, h = y[:n_S], y[n_S:]
            L = (w * h) @ P
            e = np.exp(L - L.max())
            p = e / (counts @ e)
            q = p[1:]
            # ∂q/∂L = [0 | diag(q)] - q (n∘p)ᵀ, so C ∂q/∂L = [0 | C diag(q)] - (C q)(n∘p)ᵀ.
            g = C @ q
            CdqdL = -np.outer(g, counts * p)
            CdqdL[:, 1:] += C * q
            M = CdqdL @ PT  # ∂g/∂ℓ
            Mh, Mw = M * h, M * w  # ∂g/∂w = M diag(h), ∂g/∂h = M diag(w)
            J = np.empty((2 * n_S, 2 * n_S))
            J[:n_S, :n_S] = h[:, None] * Mh - eye_W
            J[:n_S, n_S:] = h[:, None] * Mw + np.diag(g)
            J[n_S:, :n_S] = (kappa * w)[:, None] * Mh + np.diag(kappa * g)
            J[n_S:, n_S:] = (kappa * w)[:, None] * Mw - diag_h
            return exp(s) * J

        return fun, jac


_CACHE: dict[tuple[Any, ...], ReducedRHS] = {}


def for_scheme(sch: AssociationScheme, ridge: str, normalize: bool) -> ReducedRHS:
    """:meth:`ReducedRHS.from_scheme`, cached on the scheme's key (a handful of schemes per session)."""
    key = (sch.key(), ridge, bool(normalize))
    out = _CACHE.get(key)
    if out is None:
        if len(_CACHE) > 64:
            _CACHE.clear()
        out = _CACHE[key] = ReducedRHS.from_scheme(sch, ridge, normalize)
    return out
