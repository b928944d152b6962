"""The implicit stepper of the Gram flow: BDF whose Newton systems are solved through a Schur complement.

An implicit step solves ``(I - c J) x = r`` on the packed state ``y = [vec Z, a, b]`` (``a``, ``b``: the
upper triangles of ``A = W Wᵀ: (V, V)`` and ``B = EᵀE: (n, n)``). The Jacobian of the Gram flow
(:mod:`ufmtheory.solvers.gram_flow`) has a shape that makes most of that system cheap:

* the rows of ``A`` and ``B`` depend on ``A`` and ``B`` only through the ridge, ``Ȧ ∋ -2 λ_W A`` and
  ``Ḃ ∋ -(N B + B N)``, so the block ``D = I - c J_rr`` on ``r = (a, b)`` is ``(1 + 2 c λ_W)`` on ``a`` and
  ``X ↦ X + c (N X + X N)`` on ``b``, inverted exactly in the eigenbasis of ``N``;
* the columns of ``A`` and ``B`` enter ``Ż = -(M B + A M) - …`` through ``-(dA M + M dB)``: a product with
  ``M: (V, n)``, never a dense matrix.

Eliminating ``r`` leaves the Schur complement ``S = I - c J_zz - c² J_zr D⁻¹ J_rz`` on ``vec Z`` alone,
``V n`` unknowns instead of ``V n + V(V+1)/2 + n(n+1)/2``. For the 16 × 30 soft-label design that is a
480 × 480 LU in place of 1,081 × 1,081, about 11 times fewer operations; ``D`` is at least the identity
(``λ ≥ 0``, ``c > 0``). That alone does not make the elimination backward stable when ``c|M|`` is large and
the ridge small (review: random states with c·scale up to 1e9 lose up to 1e6-1e10 × eps·cond against a dense
solve); along the flows measured c|M| stayed ≤ 5 where D ≈ 1 and the block solves matched dense ones to
4.5e-9 at cond 7.8e7. A pivot-growth check with a dense fallback is left to do.

The stepper is scipy's :class:`~scipy.integrate.BDF` (its step-size and order control, its Newton
iteration, its dense output) with two hooks replaced: the Jacobian is this block object instead of a dense
array, and the factorisation and solve of ``I - c J`` are the block ones. Unlike LSODA, BDF keeps a
Jacobian across steps and refactors only ``I - c J`` when the step changes, so few Jacobians are needed.
The absolute tolerance may follow the state (``GramBDF(atol_rule=...)``): the Gram flow scales it with the
parameters' size, which grows by orders of magnitude after the escape from a small start
(:func:`atol_rule`), and keeps it above the rounding floor of the right-hand side (:func:`rounding_floor`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
from scipy.integrate import BDF
from scipy.linalg import lu_factor, lu_solve

__all__ = [
    "GramJacobian",
    "NewtonMatrix",
    "GramBDF",
    "NEWTON_TOL",
    "ROUNDING_FLOOR",
    "atol_rule",
    "rounding_floor",
    "upper_indices",
    "symmetric_from_upper",
]

NEWTON_TOL = 0.03
"""Newton's stopping tolerance, in units of the error weights ``atol + rtol |y|`` (scipy's BDF uses
``sqrt(rtol)``, 1e-4 at rtol 1e-8). The late soft-label flow's right-hand side carries rounding noise of
order ``t · eps · |Z|`` relative to itself (the gradient ~1/t is a difference of logits ~ln t), which at
t = 1e7..1e8 is a few 1e-3 of the weights per step: a 1e-4 target then fails Newton on noise and forces a
new Jacobian and a halved step, over and over (160 Jacobians to t = 1e8 on the 16 × 30 soft design). 0.03
keeps Newton's own error at 3 % of the tolerance, the usual choice for stiff BDF codes."""


@lru_cache(maxsize=32)
def upper_indices(k: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.triu_indices(k)``, cached (the packed Gram state is read and written on every evaluation)."""
    rows, cols = np.triu_indices(k)
    rows.flags.writeable = cols.flags.writeable = False
    return rows, cols


def symmetric_from_upper(upper: np.ndarray, *, k: int) -> np.ndarray:
    """The symmetric ``(k, k)`` matrix whose upper triangle, row by row, is ``upper: (k(k+1)/2,)``."""
    rows, cols = upper_indices(k)
    out = np.empty((k, k))
    out[rows, cols] = upper
    out[cols, rows] = upper
    return out


# -- tolerances ------------------------------------------------------------------------------------------
def atol_rule(
    atol: float, theta0: np.ndarray, A0: np.ndarray, B0: np.ndarray
) -> Callable[[np.ndarray], float]:
    """``rule(y) -> atol · min(1, |θ|)`` on the packed Gram state ``y``, ``|θ|`` the parameters' size, from
    the start's parameters ``theta0: (n_params,)`` and Grams ``A0: (V, V)``, ``B0: (n, n)``.

    The Grams are quadratic in the parameters: an error δ in θ moves them by about ``|θ| δ``, so the
    parameter flow's ``atol`` is ``atol · |θ|`` on the Grams. At the start ``|θ| = max|θ0|`` (init std 1e-3:
    Grams ~1e-4, where an unscaled 1e-10 would be a 1e-6 relative error through the escape); it then grows
    with ``sqrt(max(diag A, diag B))``, the largest row norm of ``[W; Eᵀ]``. A tolerance left at the start's
    value (4e-13 on the 16 × 30 soft design) sits below what the Newton iteration can resolve once ``c J``
    is large (rounding ~ ``cond · eps · |y|``), and the stepper then fails and restarts near-zero entries
    again and again: on that design, 185 instead of 87 Jacobians to t = 1e5 under LSODA.
    """
    start = float(np.abs(theta0).max(initial=0.0))
    row0 = _row_size(A0, B0)
    if start == 0.0 or row0 == 0.0:
        return lambda y: atol
    V, n = A0.shape[0], B0.shape[0]
    nz, na = V * n, V * (V + 1) // 2
    diag_A = nz + np.cumsum(np.r_[0, np.arange(V, 1, -1)])  # packed positions of A's diagonal
    diag_B = nz + na + np.cumsum(np.r_[0, np.arange(n, 1, -1)])

    def rule(y: np.ndarray) -> float:
        size = math.sqrt(max(float(y[diag_A].max()), float(y[diag_B].max()), 0.0))
        return atol * min(1.0, start * size / row0)

    return rule


ROUNDING_FLOOR = 1.0
"""Factor of the Gram flow's rounding floor on the absolute tolerance (:func:`rounding_floor`)."""


def rounding_floor(t: float, y: np.ndarray) -> float:
    """``ROUNDING_FLOOR · eps · (1 + t) · max|y|``: the smallest absolute tolerance worth asking for at time
    ``t`` on the state ``y: (size,)``.

    The right-hand side is a sum of terms of size about ``|y|`` whose result can be far smaller (late in a
    soft-label flow the gradient is ~1/t, a difference of logits ~ln t), so each evaluation carries an
    absolute rounding error of order ``eps |y|`` that no stepper can remove; over a step of length ~t it
    moves the state by ``eps · t · |y|``. Asking for less makes Newton fail on that noise, fetch a new
    Jacobian and halve the step, again and again. Measured on the 16 × 30 soft-label design to t = 1e8 at
    rtol 1e-10: 29 Jacobians and an end-point error of 2.0e-9 against an rtol 1e-12 run, against 165
    Jacobians and 9.8e-9 without the floor; a factor of 10 instead of 1 lets the error grow to 3.2e-7.
    """
    return ROUNDING_FLOOR * float(np.finfo(float).eps) * (1.0 + t) * float(np.abs(y).max(initial=0.0))


def _row_size(A: np.ndarray, B: np.ndarray) -> float:
    return math.sqrt(max(float(np.diag(A).max()), float(np.diag(B).max()), 0.0))


# -- the Jacobian and its Newton systems ---------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class GramJacobian:
    """The Jacobian of the packed Gram flow at one state, by blocks; the Jacobian is ``scale`` times them.

    Attributes:
        Jzz: (V n, V n) ``∂ vec Ż / ∂ vec Z`` (row-major vecs).
        dA_dZ: (V, V, V n) ``∂Ȧ/∂ vec Z`` (symmetric in its first two axes).
        dB_dZ: (n, n, V n) ``∂Ḃ/∂ vec Z``.
        M: (V, n) the loss gradient on the logits mapped to Z (``Ż ∋ -(A M + M B)``).
        lam_W: ridge on W (``Ȧ ∋ -2 λ_W A``).
        N_values, N_vectors: (n,), (n, n) eigen-decomposition of the symmetric ridge operator ``N``
            (``Ḃ ∋ -(N B + B N)``).
        scale: factor on the whole Jacobian (``e^s`` when the flow runs in log-time ``s = ln(1 + t)``).
    """

    Jzz: np.ndarray
    dA_dZ: np.ndarray
    dB_dZ: np.ndarray
    M: np.ndarray
    lam_W: float
    N_values: np.ndarray
    N_vectors: np.ndarray
    scale: float = 1.0

    @property
    def shape_Vn(self) -> tuple[int, int]:
        return int(self.M.shape[0]), int(self.M.shape[1])

    def __rmul__(self, c: float) -> _ScaledJacobian:
        # BDF forms ``I - c * J``; the product stays symbolic until the factorisation.
        return _ScaledJacobian(self, float(c) * self.scale)

    @cached_property
    def _J_rz(self) -> np.ndarray:
        """(V(V+1)/2 + n(n+1)/2, V n): the packed rows of ``∂(a, b)/∂ vec Z``."""
        V, n = self.shape_Vn
        return np.concatenate([self.dA_dZ[upper_indices(V)], self.dB_dZ[upper_indices(n)]])

    @cached_property
    def _K_A(self) -> np.ndarray:
        """(V n, V n): ``-J_za J_az``, column k is ``vec(dA_k M)``: the A part of ``J_zr J_rz`` up to sign."""
        V, n = self.shape_Vn
        return np.einsum("vwc,wi->vic", self.dA_dZ, self.M, optimize=True).reshape(V * n, V * n)

    @cached_property
    def _B_rotated(self) -> tuple[np.ndarray, np.ndarray]:
        """``(M Q: (V, n), Qᵀ dB_k Q: (n, n, V n))``: the B part in the eigenbasis of N."""
        Q = self.N_vectors
        return self.M @ Q, np.einsum("ih,ijc,jl->hlc", Q, self.dB_dZ, Q, optimize=True)

    @cached_property
    def _K_B_uniform(self) -> np.ndarray:
        """(V n, V n): column k is ``vec(M dB_k)`` (used when N is a multiple of the identity)."""
        V, n = self.shape_Vn
        return np.einsum("vh,hic->vic", self.M, self.dB_dZ, optimize=True).reshape(V * n, V * n)

    def _uniform_N(self) -> bool:
        values = self.N_values
        return bool(values.size == 0 or np.ptp(values) <= 1e-15 * max(1.0, float(np.abs(values).max())))

    def b_denominator(self, c: float) -> np.ndarray:
        """(n, n) ``1 + c (ν_h + ν_l)``: the diagonal of ``X ↦ X + c(N X + X N)`` in N's eigenbasis."""
        nu = self.N_values
        return 1.0 + c * (nu[:, None] + nu[None, :])

    def solve_D_b(self, X: np.ndarray, c: float) -> np.ndarray:
        """``Y: (n, n)`` with ``Y + c (N Y + Y N) = X: (n, n)``."""
        Q = self.N_vectors
        return Q @ ((Q.T @ X @ Q) / self.b_denominator(c)) @ Q.T

    def schur(self, c: float) -> np.ndarray:
        """(V n, V n) ``S = I - c J_zz - c² J_zr D⁻¹ J_rz`` for the already-scaled step factor ``c``."""
        V, n = self.shape_Vn
        # J_zr x = -(X_A M + M X_B), so J_zr D⁻¹ J_rz = -(K_A / (1 + 2cλ_W) + [M D_b⁻¹(dB_k)]_k).
        coupling = self._K_A / (1.0 + 2.0 * c * self.lam_W)
        if self._uniform_N():
            coupling = coupling + self._K_B_uniform / float(self.b_denominator(c).flat[0] if n else 1.0)
        else:
            MQ, R = self._B_rotated
            R_scaled = R / self.b_denominator(c)[:, :, None]
            coupling = coupling + np.einsum(
                "vh,hlc,il->vic", MQ, R_scaled, self.N_vectors, optimize=True
            ).reshape(V * n, V * n)
        S = -c * self.Jzz + (c * c) * coupling
        S[np.diag_indices_from(S)] += 1.0
        return S


@dataclass(frozen=True, eq=False)
class _ScaledJacobian:
    jac: GramJacobian
    c: float


class _Identity:
    """BDF's ``self.I``: ``I - c J`` becomes a :class:`NewtonMatrix` instead of a dense array."""

    def __sub__(self, scaled: _ScaledJacobian) -> NewtonMatrix:
        return NewtonMatrix(scaled.jac, scaled.c)


@dataclass(frozen=True, eq=False)
class NewtonMatrix:
    """``I - c J`` for a :class:`GramJacobian` ``J`` (``c`` includes ``J.scale``); :meth:`factor` gives the
    object whose :meth:`NewtonFactor.solve` solves it."""

    jac: GramJacobian
    c: float

    def factor(self) -> NewtonFactor:
        return NewtonFactor(self.jac, self.c, lu_factor(self.jac.schur(self.c), overwrite_a=True))


@dataclass(frozen=True, eq=False)
class NewtonFactor:
    """A factorised Newton matrix: the LU of the Schur complement on ``vec Z``."""

    jac: GramJacobian
    c: float
    lu: tuple[np.ndarray, np.ndarray]

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``x: (size,)`` with ``(I - c J) x = rhs: (size,)`` on the packed state."""
        J, c = self.jac, self.c
        V, n = J.shape_Vn
        nz, na = V * n, V * (V + 1) // 2
        a_den = 1.0 + 2.0 * c * J.lam_W
        r_z, r_a, r_b = rhs[:nz], rhs[nz : nz + na], rhs[nz + na :]
        # D⁻¹ r_r, then its push into the Z rows: J_zr y = -(Y_A M + M Y_B).
        Y_A = symmetric_from_upper(r_a, k=V) / a_den
        Y_B = J.solve_D_b(symmetric_from_upper(r_b, k=n), c)
        x_z = lu_solve(self.lu, r_z - c * (Y_A @ J.M + J.M @ Y_B).ravel())
        # Back-substitution: x_r = D⁻¹ (r_r + c J_rz x_z).
        x_r = rhs[nz:] + c * (J._J_rz @ x_z)
        x_a = x_r[:na] / a_den
        x_b = J.solve_D_b(symmetric_from_upper(x_r[na:], k=n), c)[upper_indices(n)]
        return np.concatenate([x_z, x_a, x_b])


class GramBDF(BDF):
    """scipy's BDF with the Gram flow's block Newton solves (module docstring).

    Args:
        fun, t0, y0, t_bound, rtol, atol: as :class:`scipy.integrate.BDF`.
        jac: ``jac(t, y) -> GramJacobian`` (required).
        atol_rule: optional ``atol_rule(t, y) -> float``, the absolute tolerance to use from the next step on.
        time_scale: optional ``time_scale(t) -> float``, the factor the right-hand side carries at ``t``
            (``e^s`` in log-time). A Jacobian evaluated at one time is then rescaled to the time of each
            factorisation: the factor changes by ``e^{Δs}`` between steps while the rest of the Jacobian
            changes slowly, so BDF's reused Jacobian stays good and Newton keeps converging.
    """

    def __init__(
        self,
        fun: Callable[[float, np.ndarray], np.ndarray],
        t0: float,
        y0: np.ndarray,
        t_bound: float,
        *,
        jac: Callable[[float, np.ndarray], GramJacobian],
        atol_rule: Callable[[float, np.ndarray], float] | None = None,
        time_scale: Callable[[float], float] | None = None,
        **options: Any,
    ) -> None:
        if not callable(jac):
            raise TypeError("GramBDF needs jac(t, y) -> GramJacobian")
        super().__init__(fun, t0, y0, t_bound, jac=jac, **options)
        self.lu = self._factor
        self.solve_lu = self._solve
        self.I = _Identity()
        self._atol_rule = atol_rule
        self._time_scale = time_scale
        self.newton_tol = NEWTON_TOL

    def _validate_jac(self, jac: Any, sparsity: Any) -> tuple[Any, GramJacobian]:
        # BDF would turn the Jacobian into a dense array; keep the block object.
        return jac, jac(self.t, self.y)

    def _factor(self, newton: NewtonMatrix) -> NewtonFactor:
        self.nlu += 1
        if self._time_scale is not None:
            # BDF's c is h / alpha[order] (h signed): the system is solved at t + h, with factor e^{t + h}.
            c_raw = newton.c / newton.jac.scale
            t_new = self.t + c_raw * self.alpha[self.order]
            newton = NewtonMatrix(newton.jac, c_raw * self._time_scale(t_new))
        return newton.factor()

    @staticmethod
    def _solve(factor: NewtonFactor, rhs: np.ndarray) -> np.ndarray:
        return factor.solve(rhs)

    def _step_impl(self) -> tuple[bool, str | None]:
        result = super()._step_impl()
        if result[0] and self._atol_rule is not None:
            self.atol = self._atol_rule(self.t, self.y)
        return result
