"""The exact Gram flow: gradient flow of the UFM and the unnormalised modified UFM on ``(Z, A, B)``.

The parameter flow ``Ẇ = -∇_W f``, ``Ė = -∇_E f`` closes on three Gram-type variables whatever the feature
dimension d is (docs: Standard UFM, "Exact Gram flow"). With features ``H = E X̃`` (``X̃ = [αX; βI]:
(n, m)``, ``n = p + m``; the standard UFM is ``X̃ = I``, ``E = H``), ``A = W Wᵀ: (V, V)``, ``B = EᵀE: (n, n)``,
``Z = W E: (V, n)``, ``M = G X̃ᵀ: (V, n)`` with ``G = (softmax(Z X̃) - Y) diag(π): (V, m)`` and the ridge
operator ``N: (n, n)`` (``λ_H X̃X̃ᵀ`` for a ridge on the features, ``λ_E I`` on the embeddings)::

    Ż = -(M B + A M) - λ_W Z - Z N
    Ȧ = -(M Zᵀ + Z Mᵀ) - 2 λ_W A
    Ḃ = -(Mᵀ Z + Zᵀ M) - (N B + B N)

The state holds ``V n + V(V+1)/2 + n(n+1)/2`` numbers (A and B packed by their upper triangles), and the
Jacobian is analytic: the only non-polynomial term is the softmax, whose derivative is
``dG[:, j] = π_j S_j dL[:, j]`` with ``S_j = diag(p_j) - p_j p_jᵀ`` and ``dL = dZ X̃``. Late soft-label
and ridge flows are stiff (their curvature stays O(1) while log-time multiplies the right-hand side by
``1 + t``), and BDF with this Jacobian crosses them in a few hundred steps; its Newton systems are solved
on ``vec Z`` alone (:mod:`ufmtheory.solvers.gram_newton`).

What it cannot give: the parameters themselves (the Grams fix ``[W; Eᵀ]`` only up to a rotation of the
feature space), and the normalised modified UFM (its column normalisation does not close on these
variables).

Example:
    >>> import numpy as np, ufmtheory as ut
    >>> prob = ut.UFM(ut.designs.factorial((3,)), dim=2, lam_W=0.1, lam_H=0.1)
    >>> system = GramSystem.from_problem(prob)
    >>> Z, A, B = initial_state(prob, ut.init.small(prob, 0.1, seed=0))
    >>> [x.shape for x in gram_rhs(system, Z, A, B)]
    [(3, 3), (3, 3), (3, 3)]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ufmtheory._results import make_stats
from ufmtheory.models import UFM, ModifiedUFM, log_softmax_columns
from ufmtheory.solvers._frontend import AUTO_STIFF_MAX_PARAMS, choose_method, dense_snapshots, integrate
from ufmtheory.solvers.gram_newton import (
    GramBDF,
    GramJacobian,
    atol_rule,
    rounding_floor,
    symmetric_from_upper,
    upper_indices,
)
from ufmtheory.trajectory import Trajectory

__all__ = [
    "GRAM_STEPPER",
    "GramSystem",
    "GRAM_AUTO_MAX_STATE",
    "gram_supported",
    "check_gram_problem",
    "choose_flow_method",
    "gram_state_size",
    "initial_state",
    "gram_rhs",
    "gram_jacobian",
    "gram_snapshot",
    "pack_state",
    "unpack_state",
    "packed_jacobian",
    "solve_gram_flow",
]

GRAM_STEPPER = "BDF"
"""The stepper of ``method="gram"``: scipy's BDF with the analytic Jacobian by blocks and Newton solves
through the Schur complement on Z (:class:`~ufmtheory.solvers.gram_newton.GramBDF`)."""


GRAM_AUTO_MAX_STATE = 2500
"""Largest packed Gram state that ``method="auto"`` hands to the Gram flow. The stepper never forms the
dense Jacobian (it keeps ``∂/∂Z`` blocks of ``(Vn)² + (V² + n²) Vn`` entries) and factorises a ``Vn × Vn``
Schur complement (:mod:`ufmtheory.solvers.gram_newton`), so this bound keeps those below about 2,000 and
40 MB."""


def _closes(problem: Any) -> bool:
    if type(problem) is UFM:
        return True
    return type(problem) is ModifiedUFM and problem.normalize is None


def _width(problem: Any) -> int:
    """``V + n``: the size of the joint Gram ``[[A, Z], [Zᵀ, B]]``."""
    design = problem.design
    return design.V + design.m + (0 if type(problem) is UFM else design.p)


def gram_supported(problem: Any) -> bool:
    """Whether ``gradient_flow(problem, method="gram")`` runs: ``problem`` is exactly
    :class:`~ufmtheory.models.UFM` or a :class:`~ufmtheory.models.ModifiedUFM` without ``normalize`` (a
    subclass may change the loss, so it is not assumed to close), with ``dim >= V + n``
    (:func:`check_gram_problem` says why)."""
    return _closes(problem) and problem.dim >= _width(problem)


def check_gram_problem(problem: Any) -> None:
    """``ValueError`` unless :func:`gram_supported`.

    The Gram flow is exact for any d, but for ``d < V + n`` the joint Gram ``[[A, Z], [Zᵀ, B]]`` has rank
    at most d: the state lies on the boundary of the positive semidefinite cone, and a rounding error off
    it acts like an extra feature dimension started at 1e-16, which the flow can amplify as it amplifies a
    small start (measured: 9e-6 relative error at t = 1e3 with rtol 1e-11 for d = 3, V + n = 12, against
    3e-12 for d = 8 and d = 12). The parameter flow has no such direction, and below ``d = V + n`` it has
    at most about twice as many unknowns as the packed Gram state.
    """
    if not _closes(problem):
        raise ValueError(
            "method='gram' needs a UFM or a ModifiedUFM with normalize=None (the column normalisation"
            f" does not close on Gram variables), got {type(problem).__name__}"
            + (f" with normalize={problem.normalize}" if isinstance(problem, ModifiedUFM) else "")
        )
    if problem.dim < _width(problem):
        raise ValueError(
            f"method='gram' needs dim >= V + n = {_width(problem)} (got dim = {problem.dim}): below that the"
            " Grams have rank <= dim and rounding errors off that rank can grow; use the parameter flow"
        )


def gram_state_size(problem: Any) -> int:
    """Length of the packed Gram state, ``V n + V(V+1)/2 + n(n+1)/2`` (``n = m`` for the UFM, ``p + m`` for
    the modified UFM), whatever the feature dimension."""
    V = problem.design.V
    n = problem.design.m if type(problem) is UFM else problem.design.p + problem.design.m
    return V * n + V * (V + 1) // 2 + n * (n + 1) // 2


def choose_flow_method(method: str, problem: Any, n_params: int, save_params: bool) -> str:
    """Resolve ``method="auto"`` for :func:`ufmtheory.gradient_flow`.

    ``"gram"`` when all of: the problem has a Gram flow (:func:`gram_supported`), no parameters are asked
    for, there are more than :data:`~ufmtheory.solvers._frontend.AUTO_STIFF_MAX_PARAMS` parameters (fewer:
    LSODA's finite-difference Jacobian is cheap), the late flow is stiff (a ridge, or soft labels), and the
    packed Gram state is at most :data:`GRAM_AUTO_MAX_STATE` (``dim >= V + n`` makes it smaller than the
    parameter vector). Otherwise
    :func:`~ufmtheory.solvers._frontend.choose_method` (LSODA up to 1000 parameters, DOP853 above).
    Any other name is returned unchanged.
    """
    if method != "auto":
        return method
    if (
        not save_params
        and n_params > AUTO_STIFF_MAX_PARAMS
        and gram_supported(problem)
        and _stiff(problem)
        and gram_state_size(problem) <= GRAM_AUTO_MAX_STATE
    ):
        return "gram"
    return choose_method(method, n_params)


def _stiff(problem: Any) -> bool:
    ridge = problem.lam_W > 0 or problem.lam_H > 0 or getattr(problem, "lam_E", 0.0) > 0
    return ridge or not problem.design.is_one_hot


@dataclass(frozen=True, eq=False)
class GramSystem:
    """The constants of the Gram flow of one problem.

    Attributes:
        Y: (V, m) labels. pi: (m,) context weights.
        X_tilde: (n, m) input map (``I_m`` for the UFM).
        N: (n, n) symmetric ridge operator on the embeddings (``λ_H X̃X̃ᵀ`` or ``λ_E I``).
        lam_W: ridge on W.
        ridge_B: (n, n) the loss's ridge on ``B``: ``λ_H/2 tr(X̃ᵀBX̃)`` or ``λ_E/2 tr B`` is
            ``½ Σ ridge_B ∘ B``.
        identity_X: whether ``X̃ = I`` (skips the products with it).
    """

    Y: np.ndarray
    pi: np.ndarray
    X_tilde: np.ndarray
    N: np.ndarray
    lam_W: float
    ridge_B: np.ndarray
    identity_X: bool

    @property
    def V(self) -> int:
        return int(self.Y.shape[0])

    @property
    def n(self) -> int:
        return int(self.X_tilde.shape[0])

    @classmethod
    def from_problem(cls, problem: Any) -> GramSystem:
        """The system of a UFM or an unnormalised ModifiedUFM (any ``dim``: the right-hand side is exact for
        every d; :func:`check_gram_problem` is what the solve requires); ``ValueError`` for anything else."""
        if not _closes(problem):
            check_gram_problem(problem)
        design = problem.design
        if type(problem) is UFM:
            n = design.m
            X_tilde = np.eye(n)
            N = problem.lam_H * np.eye(n)
            return cls(
                Y=design.Y,
                pi=design.pi,
                X_tilde=X_tilde,
                N=N,
                lam_W=problem.lam_W,
                ridge_B=N,
                identity_X=True,
            )
        X_tilde = np.asarray(problem.X_tilde)
        n = X_tilde.shape[0]
        if problem.ridge == "H":
            N = problem.lam_H * (X_tilde @ X_tilde.T)
        else:
            N = problem.lam_E * np.eye(n)
        return cls(
            Y=design.Y, pi=design.pi, X_tilde=X_tilde, N=N, lam_W=problem.lam_W, ridge_B=N, identity_X=False
        )

    @cached_property
    def N_eigen(self) -> tuple[np.ndarray, np.ndarray]:
        """``(values: (n,), vectors: (n, n))`` of the symmetric ridge operator ``N``."""
        values, vectors = np.linalg.eigh(self.N)
        return values, vectors

    def logits(self, Z: np.ndarray) -> np.ndarray:
        """``L = Z X̃: (V, m)`` from ``Z: (V, n)``."""
        return Z if self.identity_X else Z @ self.X_tilde

    def softmax_and_M(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(log p: (V, m), p: (V, m), M = G X̃ᵀ: (V, n))`` at ``Z: (V, n)``."""
        logp = log_softmax_columns(self.logits(Z))
        P = np.exp(logp)
        G = (P - self.Y) * self.pi
        return logp, P, G if self.identity_X else G @ self.X_tilde.T


def initial_state(problem: Any, params: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(Z = W E: (V, n), A = W Wᵀ: (V, V), B = EᵀE: (n, n))`` from the parameter blocks (``E = H`` for the
    UFM)."""
    W = params["W"]
    E = params["H"] if type(problem) is UFM else params["E"]
    return W @ E, W @ W.T, E.T @ E


def gram_rhs(
    system: GramSystem, Z: np.ndarray, A: np.ndarray, B: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(Ż: (V, n), Ȧ: (V, V), Ḃ: (n, n))`` of the gradient flow at ``Z: (V, n)``, ``A: (V, V)``,
    ``B: (n, n)`` (A and B symmetric); the time derivatives of ``W E``, ``W Wᵀ`` and ``EᵀE`` along
    ``Ẇ = -∇_W f``, ``Ė = -∇_E f``."""
    _, _, M = system.softmax_and_M(Z)
    N, lam_W = system.N, system.lam_W
    MZt = M @ Z.T
    ZtM = Z.T @ M
    NB = N @ B
    dZ = -(M @ B + A @ M) - lam_W * Z - Z @ N
    dA = -(MZt + MZt.T) - 2.0 * lam_W * A
    dB = -(ZtM + ZtM.T) - (NB + NB.T)
    return dZ, dA, dB


def jacobian_blocks(
    system: GramSystem, Z: np.ndarray, A: np.ndarray, B: np.ndarray, scale: float = 1.0
) -> GramJacobian:
    """The Jacobian of :func:`gram_rhs` at ``Z: (V, n)``, ``A: (V, V)``, ``B: (n, n)`` by blocks
    (:class:`~ufmtheory.solvers.gram_newton.GramJacobian`: what the implicit stepper factorises), with
    ``scale`` recorded as the factor the stepper applies to all of it.

    The softmax enters through ``T[v, i, u, k] = ∂M[v, i]/∂Z[u, k] = Σ_j π_j S_j[v, u] X̃[i, j] X̃[k, j]``
    (``S_j = diag(p_j) - p_j p_jᵀ``); every other term is bilinear in the state, and the columns of A and
    B act through ``M`` and the ridge alone (kept implicit in the block object).
    """
    V, n, m = system.V, system.n, system.Y.shape[1]
    _, P, M = system.softmax_and_M(Z)
    Spi = -np.einsum("vj,uj->jvu", P, P)
    Spi[:, np.arange(V), np.arange(V)] += P.T
    Spi *= system.pi[:, None, None]  # (m, V, V): π_j S_j
    nz = V * n
    if system.identity_X:
        T = np.zeros((V, n, V, n))
        T[:, np.arange(n), :, np.arange(n)] = Spi  # δ_ik π_i S_i[v, u]
    else:
        Xo = np.einsum("ij,kj->ikj", system.X_tilde, system.X_tilde).reshape(n * n, m)
        T = (Xo @ Spi.reshape(m, V * V)).reshape(n, n, V, V).transpose(2, 0, 3, 1)
    T3 = T.reshape(V, n, nz)  # [v, i, (u, k)]
    rows, cols = np.arange(V), np.arange(n)
    # Rows of Z: -(dM B + A dM) - λ_W dZ - dZ N.
    Jzz = -(np.matmul(B.T, T3) + (A @ T3.reshape(V, n * nz)).reshape(V, n, nz)).reshape(nz, nz)
    Jzz -= np.kron(np.eye(V), system.N.T + system.lam_W * np.eye(n))  # δ_vu (N[k, h] + λ_W δ_kh)
    # Rows of A: -(dM Zᵀ + Z dMᵀ + dZ Mᵀ + M dZᵀ).
    TZ = np.matmul(Z, T3)  # [v, w, (u, k)] = Σ_i Z[w, i] T[v, i, u, k]
    dA = (TZ + TZ.transpose(1, 0, 2)).reshape(V, V, V, n)
    dA[rows, :, rows, :] += M  # δ_vu M[w, k], indexed [u, w, k]
    dA[:, rows, rows, :] += M[:, None, :]  # M[v, k] δ_wu, indexed [v, u, k]
    # Rows of B: -(dMᵀ Z + Zᵀ dM + Mᵀ dZ + dZᵀ M).
    ZT = (Z.T @ T3.reshape(V, n * nz)).reshape(n, n, nz)  # [i, h, (u, k)] = Σ_v Z[v, i] T[v, h, u, k]
    dB = (ZT + ZT.transpose(1, 0, 2)).reshape(n, n, V, n)
    dB[:, cols, :, cols] += M.T[None]  # M[u, i] δ_hk, indexed [k, i, u]
    dB[cols, :, :, cols] += M.T[None]  # δ_ik M[u, h], indexed [k, h, u]
    values, vectors = system.N_eigen
    return GramJacobian(
        Jzz=Jzz,
        dA_dZ=-dA.reshape(V, V, nz),
        dB_dZ=-dB.reshape(n, n, nz),
        M=M,
        lam_W=system.lam_W,
        N_values=values,
        N_vectors=vectors,
        scale=scale,
    )


def gram_jacobian(system: GramSystem, Z: np.ndarray, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Dense Jacobian of :func:`gram_rhs` on the full state ``[vec Z, vec A, vec B]`` (row-major vecs,
    A and B treated as general matrices): shape ``(Vn + V² + n², Vn + V² + n²)``; assembled from
    :func:`jacobian_blocks` (the implicit stepper never forms it: it is the reference for checks)."""
    blocks = jacobian_blocks(system, Z, A, B)
    V, n, M, N = system.V, system.n, blocks.M, system.N
    nz, nA = V * n, V * V
    size = nz + nA + n * n
    rows, cols = np.arange(V), np.arange(n)
    J = np.zeros((size, size))
    J[:nz, :nz] = blocks.Jzz
    J[nz : nz + nA, :nz] = blocks.dA_dZ.reshape(nA, nz)
    J[nz + nA :, :nz] = blocks.dB_dZ.reshape(n * n, nz)
    # Columns of A: Ż gets -dA M, Ȧ gets -2 λ_W dA.
    JZA = np.zeros((V, n, V, V))
    JZA[rows, :, rows, :] = -M.T[None]  # -δ_va M[b, i], indexed [a, i, b]
    J[:nz, nz : nz + nA] = JZA.reshape(nz, nA)
    diag = np.arange(nz, nz + nA)
    J[diag, diag] = -2.0 * system.lam_W
    # Columns of B: Ż gets -M dB, Ḃ gets -(N dB + dB N).
    JZB = np.zeros((V, n, n, n))
    JZB[:, cols, :, cols] = -M[None]  # -M[v, a] δ_ib, indexed [b, v, a]
    J[:nz, nz + nA :] = JZB.reshape(nz, n * n)
    J[nz + nA :, nz + nA :] = -(np.kron(N, np.eye(n)) + np.kron(np.eye(n), N.T))
    return J


def gram_snapshot(
    system: GramSystem, Z: np.ndarray, A: np.ndarray, B: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """``(HᵀH = X̃ᵀ B X̃: (m, m), W Wᵀ = A: (V, V), loss)``: what a Trajectory saves, from the Gram state.

    The loss is ``Σ_j π_j CE(y_j, softmax(Z X̃)_j) + λ_W/2 tr A + ½ Σ ridge_B ∘ B``.
    """
    logp = log_softmax_columns(system.logits(Z))
    loss = float(-(system.Y * logp).sum(axis=0) @ system.pi)
    loss += 0.5 * system.lam_W * float(np.trace(A)) + 0.5 * float(np.vdot(system.ridge_B, B))
    gram_H = B if system.identity_X else system.X_tilde.T @ B @ system.X_tilde
    return gram_H, A.copy(), loss


# -- packing: A and B by their upper triangles -----------------------------------------------------------
def pack_state(Z: np.ndarray, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``[vec Z, upper triangle of A, upper triangle of B]``: shape ``(Vn + V(V+1)/2 + n(n+1)/2,)``."""
    return np.concatenate([Z.ravel(), A[upper_indices(A.shape[0])], B[upper_indices(B.shape[0])]])


def unpack_state(y: np.ndarray, V: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`pack_state`: ``(Z: (V, n), A: (V, V), B: (n, n))``, A and B symmetric."""
    nz, na = V * n, V * (V + 1) // 2
    Z = y[:nz].reshape(V, n)
    return Z, symmetric_from_upper(y[nz : nz + na], k=V), symmetric_from_upper(y[nz + na :], k=n)


def _packed_indices(k: int, offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-vector indices of a packed symmetric block: (entry (a, b), entry (b, a), a != b)."""
    a, b = np.triu_indices(k)
    return offset + a * k + b, offset + b * k + a, a != b


def packed_jacobian(J_full: np.ndarray, V: int, n: int) -> np.ndarray:
    """The Jacobian on the packed state from :func:`gram_jacobian`'s: rows of the upper triangles, and a
    packed off-diagonal column ``(a, b)`` moves both ``(a, b)`` and ``(b, a)``."""
    nz = V * n
    upA, loA, offA = _packed_indices(V, nz)
    upB, loB, offB = _packed_indices(n, nz + V * V)
    z = np.arange(nz)
    rows = np.concatenate([z, upA, upB])
    Jr = J_full[rows]
    cols = [Jr[:, z], Jr[:, upA] + Jr[:, loA] * offA, Jr[:, upB] + Jr[:, loB] * offB]
    return np.concatenate(cols, axis=1)


# -- the solve ---------------------------------------------------------------------------------------------
def solve_gram_flow(
    problem: Any,
    theta0: np.ndarray,
    t1: float,
    ts: np.ndarray,
    *,
    rtol: float,
    atol: float,
    max_evals: int | None,
    log_time: bool,
    progress: Callable[[float], None] | None = None,
    dense_output: bool = False,
) -> Trajectory:
    """Integrate the Gram flow of ``problem`` from the parameters ``theta0: (n_params,)`` to ``t1``, saving at
    ``ts: (T,)`` (checked by the caller, :func:`ufmtheory.gradient_flow`); not yet passed through ``finish``.

    The stepper's absolute tolerance follows the parameters' size (the Grams are quadratic in them) and
    never drops below the rounding floor (:func:`~ufmtheory.solvers.gram_newton.atol_rule`,
    :func:`~ufmtheory.solvers.gram_newton.rounding_floor`); the largest one used is ``stats["atol_state"]``.

    Returns:
        Trajectory with the conventions of :func:`ufmtheory.gradient_flow` (``method="gram-BDF"``; stats
        also ``n_jac``, the analytic Jacobians computed, ``n_lu``, the factorisations, ``state_size`` and
        ``atol_state``).
    """
    check_gram_problem(problem)
    system = GramSystem.from_problem(problem)
    V, n = system.V, system.n
    y0 = pack_state(*initial_state(problem, problem.unpack(theta0)))
    parameter_atol = atol_rule(atol, theta0, *unpack_state(y0, V, n)[1:])
    atol_state = parameter_atol(y0)
    n_jac = 0

    def rhs(s: float, y: np.ndarray) -> np.ndarray:
        dZ, dA, dB = gram_rhs(system, *unpack_state(y, V, n))
        dy = pack_state(dZ, dA, dB)
        dy *= math.exp(s) if log_time else 1.0
        return dy

    def jac(s: float, y: np.ndarray) -> GramJacobian:
        nonlocal n_jac
        n_jac += 1
        return jacobian_blocks(system, *unpack_state(y, V, n), scale=math.exp(s) if log_time else 1.0)

    made: list[GramBDF] = []

    def stepper(fun: Any, s0: float, y_start: np.ndarray, s_end: float, **options: Any) -> GramBDF:
        def rule(s: float, y: np.ndarray) -> float:
            nonlocal atol_state
            t = math.expm1(s) if log_time else s
            atol_state = max(atol_state, parameter_atol(y), rounding_floor(t, y))
            return atol_state

        scale = math.exp if log_time else None
        made.append(GramBDF(fun, s0, y_start, s_end, atol_rule=rule, time_scale=scale, **options))
        return made[-1]

    stepper.name = GRAM_STEPPER  # type: ignore[attr-defined]

    T = ts.size
    m = system.Y.shape[1]
    gram_H, gram_W, loss = np.empty((T, m, m)), np.empty((T, V, V)), np.empty(T)
    count = 0

    def record(y: np.ndarray) -> None:
        nonlocal count
        gram_H[count], gram_W[count], loss[count] = gram_snapshot(system, *unpack_state(y, V, n))
        count += 1

    s1 = math.log1p(t1) if log_time else t1
    s_eval = np.clip(np.log1p(ts) if log_time else ts, 0.0, s1)
    start = time.perf_counter()
    segments: list[tuple[float, float, Any]] | None = [] if dense_output else None
    status, message, n_evals = integrate(
        rhs,
        y0,
        s1,
        s_eval,
        record,
        method=stepper,
        rtol=rtol,
        atol=atol_state,
        max_evals=max_evals,
        variable="s" if log_time else "t",
        progress=progress,
        jac=jac,
        segments=segments,
    )
    wall = time.perf_counter() - start
    if count == 0:
        record(y0)
    gH, gW, ls = gram_H[:count], gram_W[:count], loss[:count]
    if status == "ok" and not (np.all(np.isfinite(ls)) and np.all(np.isfinite(gH))):
        status, message = "nonfinite", "non-finite loss or Grams at a saved time"
    stats = make_stats(
        n_evals,
        wall,
        saved=count,
        log_time=log_time,
        rtol=rtol,
        atol=atol,
        n_jac=n_jac,
        n_lu=made[0].nlu if made else 0,
        state_size=y0.size,
        atol_state=atol_state,
    )
    return Trajectory(
        ts=ts[:count],
        gram_H=gH,
        gram_W=gW,
        loss=ls,
        status=status,
        message=message,
        stats=stats,
        time_unit="gf",
        method=f"gram-{GRAM_STEPPER}",
        meta=problem.describe(),
        dense=None
        if not segments
        else dense_snapshots(segments, log_time, lambda y: gram_snapshot(system, *unpack_state(y, V, n))),
    )
