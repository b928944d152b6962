"""Problem specifications: the standard unconstrained features model (UFM).

A problem is a frozen dataclass holding a :class:`~ufmtheory.designs.Design`, a feature dimension and
regularisation strengths. It knows its parameter blocks (``W``, ``H``), the loss, the analytic gradient and
the Gram matrices; solvers (:func:`ufmtheory.gradient_flow`, :func:`ufmtheory.gradient_descent`) work on
the flat parameter vector through :meth:`UFM.pack`/:meth:`UFM.unpack` so that other problems (the modified
UFM) plug into the same solvers.

Loss (docs: Theory §3), soft-label weighted cross-entropy with ridge::

    f(W, H) = Σ_j π_j CE(y_j, softmax(W h_j)) + λ_W/2 ‖W‖² + λ_H/2 ‖H‖²,   W: (V, d), H: (d, m)

with gradient ``G = (softmax(WH) - Y) diag(π)``, ``∇_W = G Hᵀ + λ_W W``, ``∇_H = Wᵀ G + λ_H H``.
Every softmax and cross-entropy goes through log-sum-exp so that logits of size ``ln t`` (unregularised
flows to ``t = 1e8``) never overflow.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ufmtheory import _validate
from ufmtheory.designs import Design

__all__ = [
    "UFM",
    "ModifiedUFM",
    "cross_entropy_and_grads",
    "log_softmax_columns",
    "normalise_columns",
    "normalise_columns_backward",
    "Problem",
]


def _log_normaliser(e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(s, log s)`` for ``e = exp(Z - max): (V, m)``: the column sums ``s: (m,)`` and their logarithms.

    ``log s_j`` is ``log1p(r_j)`` with ``r_j`` the sum of the entries below 1, i.e. of all but one entry
    equal to the maximum, so a loss ``log s_j ≈ r_j`` keeps full relative precision however small it is
    (``log`` of the rounded ``s_j = 1 + r_j`` would lose ``r_j`` below ~1e-16). The entry at the maximum is
    exactly ``exp(0) = 1`` and the others are below 1 (or round to 1 when they are within ~1e-16 of the
    maximum); when ``s_j < 2`` that entry is the only 1, otherwise (ties) ``r_j = s_j - 1`` is as good.
    Cost: two passes over ``e`` (``floor``, subtract) and two matrix-vector sums.
    """
    ones = np.ones(e.shape[0])
    s = ones @ e
    frac = np.floor(e)
    np.subtract(e, frac, out=frac)  # e where e < 1, 0 where e == 1 (the maximum and ties)
    rest = np.where(s < 2.0, ones @ frac, s - 1.0)
    return s, np.log1p(rest)


def log_softmax_columns(Z: np.ndarray) -> np.ndarray:
    """Column-wise log-softmax of logits ``Z: (V, m)`` via log-sum-exp (no overflow for large logits); the
    normaliser is ``log1p`` of the non-maximal terms, so the entry at the maximum, ``-log1p(r)``, keeps full
    relative precision when ``r`` is tiny (see :func:`_softmax_parts`)."""
    shifted = Z - Z.max(axis=0, keepdims=True)
    _, log_s = _log_normaliser(np.exp(shifted))
    shifted -= log_s
    return shifted


def _softmax_parts(Z: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(e, s, ce)`` for logits ``Z: (V, m)``: ``e = exp(Z - max)``, column sums ``s: (m,)`` and the
    per-context cross-entropy ``ce: (m,)`` against ``Y: (V, m)``.

    ``ce_j = log s_j · Σ_v Y_vj - Σ_v Y_vj (Z - max)_vj`` equals ``-Σ_v Y_vj log softmax(z_j)_v`` without
    forming the (V, m) log-probabilities. Both terms are >= 0 (no cancellation), and ``log s_j`` is
    ``log1p(r_j)`` with ``r_j = Σ_{v ≠ argmax} exp(z_v - max)`` summed without the 1 of the maximum
    (:func:`_log_normaliser`), so a one-hot label on the largest logit gives ``ce_j = log1p(r_j)`` to
    relative precision, down to the smallest losses (1e-300), not just to ~1e-16 absolute.

    Error bound (u = 2^-53, n = V - 1 terms in ``r_j``): each ``exp(fl(z_v - max))`` is within
    ``(|z_v - max| + 1) u`` of ``exp(z_v - max)`` relative (the rounding of the difference, then exp's own
    ulp); weighted by the terms, the mean of ``|z_v - max|`` over ``r_j`` is <= ``ln(n / r_j)``; the sum of
    ``n`` positive terms adds ``(n - 1) u`` at worst, and ``log1p`` is no worse conditioned than the sum
    (``r / ((1 + r) log1p r) <= 1``) plus its own ulp. So ``|Δce/ce| <= (ln(n / ce) + n + 3) u``: ~1e-15 for a
    loss of 1e-8, ~8e-14 at 1e-300 (from the ``ln`` term, which is the rounding of the logit difference
    itself: a 1-ulp change of logits that far apart moves the loss by as much). For soft labels the second
    term adds at most ``(V + 1) u`` relative; there the loss is bounded below by the entropy of ``y_j``, and
    the precision is relative to the loss, not to its excess over the entropy.
    """
    shifted = Z - Z.max(axis=0, keepdims=True)
    linear = np.einsum("vm,vm->m", Y, shifted)
    e = np.exp(shifted, out=shifted)
    s, log_s = _log_normaliser(e)
    ce = log_s * Y.sum(axis=0) - linear
    return e, s, ce


def cross_entropy_and_grads(
    W: np.ndarray, H: np.ndarray, design: Design, need_grad: bool = True
) -> tuple[float, tuple[np.ndarray, np.ndarray]]:
    """Weighted soft-label cross-entropy ``Σ_j π_j CE(y_j, softmax(W h_j))`` and its gradients.

    Args:
        W: (V, d) classifier. H: (d, m) features. design: supplies ``Y: (V, m)`` and ``pi: (m,)``.

    Returns:
        ``(loss, (∇_W, ∇_H))`` with ``∇_W = G Hᵀ: (V, d)``, ``∇_H = Wᵀ G: (d, m)`` and
        ``G = (softmax(WH) - Y) diag(π)``; when ``need_grad`` is False the gradients are empty arrays.
    """
    Y, pi = design.Y, design.pi
    e, s, ce = _softmax_parts(W @ H, Y)
    loss = float(ce @ pi)
    if not need_grad:
        return loss, (np.empty(0), np.empty(0))
    # G = (softmax - Y) diag(π), built in place from e (one exp per logit for loss and gradient together)
    e *= pi / s
    G = e
    G -= Y * pi
    return loss, (G @ H.T, W.T @ G)


def normalise_columns(H_raw: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """``(H, norms)``: every column of ``H_raw: (d, m)`` put on the sphere of radius ``radius``, and the
    ``(1, m)`` column norms it was divided by (kept for :func:`normalise_columns_backward`)."""
    norms = np.linalg.norm(H_raw, axis=0, keepdims=True)
    return radius * H_raw / norms, norms


def normalise_columns_backward(gH: np.ndarray, H: np.ndarray, norms: np.ndarray, radius: float) -> np.ndarray:
    """The gradient on ``H_raw: (d, m)`` from the gradient ``gH`` on ``H = normalise_columns(H_raw)``."""
    # d(r x/|x|)/dx = (r/|x|)(I - x̂x̂ᵀ): project out the radial part of each column's gradient.
    unit = H / radius
    return (radius / norms) * (gH - unit * (unit * gH).sum(axis=0, keepdims=True))


@runtime_checkable
class Problem(Protocol):
    """What the solvers need from a problem (:class:`UFM`, :class:`ModifiedUFM` or your own).

    Attributes:
        design: the co-occurrence design.
        dim: feature dimension d.
        param_shapes: ``{block: shape}`` in packing order.
        n_params: total number of parameters.
    """

    # Read-only in the protocol: UFM and ModifiedUFM are frozen dataclasses, and no solver sets them.
    @property
    def design(self) -> Design: ...

    @property
    def dim(self) -> int: ...

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]: ...

    @property
    def n_params(self) -> int: ...

    def pack(self, params: dict[str, np.ndarray]) -> np.ndarray: ...

    def unpack(self, theta: np.ndarray) -> dict[str, np.ndarray]: ...

    def grams(self, params: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]: ...

    def loss(self, params: dict[str, np.ndarray]) -> float: ...

    def flat_loss_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass(frozen=True, eq=False)
class UFM:
    """Standard unconstrained features model on a design (docs: Theory §3).

    Attributes:
        design: the co-occurrence design (``Y: (V, m)``, ``pi: (m,)``).
        dim: feature dimension d >= 1.
        lam_W: ridge on the classifier ``W: (V, d)``, >= 0.
        lam_H: ridge on the features ``H: (d, m)``, >= 0.

    Example:
        >>> import ufmtheory as ut
        >>> prob = ut.UFM(ut.designs.factorial((2, 2)), dim=4, lam_W=1e-3, lam_H=1e-3)
        >>> params = ut.init.small(prob, scale=0.1, seed=0)
        >>> loss, grads = prob.loss_and_grad(params)
        >>> round(loss, 2), grads["W"].shape, grads["H"].shape  # near ln 4: logits start small
        (1.38, (4, 4), (4, 4))
    """

    design: Design
    dim: int
    lam_W: float = 0.0
    lam_H: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.design, Design):
            raise TypeError(f"design must be a ufmtheory Design, got {type(self.design).__name__}")
        object.__setattr__(self, "dim", _validate.integer("dim", self.dim, low=1))
        object.__setattr__(self, "lam_W", _validate.nonnegative("lam_W", self.lam_W))
        object.__setattr__(self, "lam_H", _validate.nonnegative("lam_H", self.lam_H))

    # -- parameter blocks ----------------------------------------------------------------------------
    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of the parameter blocks, in packing order."""
        return {"W": (self.design.V, self.dim), "H": (self.dim, self.design.m)}

    @property
    def n_params(self) -> int:
        return sum(math.prod(s) for s in self.param_shapes.values())

    @property
    def is_regularised(self) -> bool:
        return self.lam_W > 0 or self.lam_H > 0

    def pack(self, params: dict[str, np.ndarray]) -> np.ndarray:
        """Concatenate parameter blocks into one flat float64 vector (validating shapes and values)."""
        if not isinstance(params, dict):
            raise TypeError(f"params must be a dict of arrays {list(self.param_shapes)}, got {type(params)}")
        chunks = []
        for name, shape in self.param_shapes.items():
            if name not in params:
                raise ValueError(f"params is missing block {name!r} (expected {list(self.param_shapes)})")
            arr = np.asarray(params[name], dtype=np.float64)
            if arr.shape != shape:
                raise ValueError(f"params[{name!r}] must have shape {shape}, got {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"params[{name!r}] contains NaN or inf")
            chunks.append(arr.ravel())
        return np.concatenate(chunks)

    def unpack(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Split a flat vector into parameter blocks (views, no copy)."""
        if theta.size != self.n_params:
            raise ValueError(f"theta must have {self.n_params} entries, got {theta.size}")
        out, start = {}, 0
        for name, shape in self.param_shapes.items():
            size = math.prod(shape)
            out[name] = theta[start : start + size].reshape(shape)
            start += size
        return out

    # -- model ---------------------------------------------------------------------------------------
    def features(self, params: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``(W: (V, d), H: (d, m))`` from the parameters (for the standard UFM they *are* the parameters)."""
        return params["W"], params["H"]

    def logits(self, params: dict[str, np.ndarray]) -> np.ndarray:
        """``L = W H: (V, m)``."""
        W, H = self.features(params)
        return W @ H

    def grams(self, params: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``(HᵀH: (m, m), W Wᵀ: (V, V))``."""
        W, H = self.features(params)
        return H.T @ H, W @ W.T

    def loss(self, params: dict[str, np.ndarray]) -> float:
        """Objective value ``f(W, H)``."""
        return self.loss_and_grad(params, need_grad=False)[0]

    def loss_and_grad(
        self, params: dict[str, np.ndarray], need_grad: bool = True
    ) -> tuple[float, dict[str, np.ndarray]]:
        """Loss and analytic gradient ``{"W": (V, d), "H": (d, m)}``.

        Cost: three matmuls of ``V·d·m`` (the logits and the two gradients) plus O(V·m) for softmax.
        """
        W, H = params["W"], params["H"]
        loss, grads = cross_entropy_and_grads(W, H, self.design, need_grad)
        if self.lam_W:
            loss += 0.5 * self.lam_W * float(np.vdot(W, W))
        if self.lam_H:
            loss += 0.5 * self.lam_H * float(np.vdot(H, H))
        if not need_grad:
            return loss, {}
        gW, gH = grads
        if self.lam_W:
            gW += self.lam_W * W
        if self.lam_H:
            gH += self.lam_H * H
        return loss, {"W": gW, "H": gH}

    def flat_loss_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Loss and gradient on the flat parameter vector (what the solvers call)."""
        loss, grads = self.loss_and_grad(self.unpack(theta))
        return loss, self.pack_unchecked(grads)

    def pack_unchecked(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        """Fast concatenation without validation (for gradients inside solvers)."""
        return np.concatenate([blocks[name].ravel() for name in self.param_shapes])

    def grad_flops(self) -> float:
        """Floating-point operations of one loss-and-gradient call (the three matmuls)."""
        return 6.0 * self.design.V * self.dim * self.design.m

    def describe(self) -> dict[str, Any]:
        """JSON-friendly description (for reports and saved trajectories)."""
        return {
            "model": type(self).__name__,
            "dim": self.dim,
            "lam_W": self.lam_W,
            "lam_H": self.lam_H,
            "design": self.design.summary(),
        }


@dataclass(frozen=True, eq=False)
class ModifiedUFM(UFM):
    """Modified UFM with structured inputs (docs: Theory §5, [derived]).

    Features keep a shared path through the latent factors: ``H = N(E X̃)`` with
    ``X̃ = [α X; β I_m]: (p + m, m)`` and trainable ``E: (d, p + m)``. ``α`` weights the shared attribute
    embeddings, ``β`` the per-context free channel (capacity); ``N`` is the identity or, with
    ``normalize=r``, the projection of every column onto the sphere of radius r (as a final LayerNorm does).
    Without ``N``, gradient flow on E moves H by ``dH/dt = -∇_H f · K_x`` with ``K_x = X̃ᵀX̃ = α²XᵀX + β²I``:
    the standard UFM preconditioned by the attribute-sharing kernel.

    Attributes:
        design, dim, lam_W: as in :class:`UFM`.
        alpha: weight of the shared attribute path (>= 0).
        beta: weight of the per-context path (>= 0; ``alpha`` and ``beta`` not both 0).
        ridge: ``"H"`` (penalty ``lam_H/2 ‖E X̃‖²`` on the pre-normalisation features) or ``"E"``
            (``lam_E/2 ‖E‖²`` on the embeddings).
        lam_H: ridge on features (``ridge="H"`` only).
        lam_E: ridge on embeddings (``ridge="E"`` only).
        normalize: ``None`` or the radius ``r > 0`` of the column normalisation.

    ``alpha=0, beta=1, normalize=None, ridge="H"`` is the standard UFM on ``H = E[:, p:]``.

    Example:
        >>> import ufmtheory as ut
        >>> prob = ut.ModifiedUFM(ut.designs.factorial((2, 2)), dim=4, alpha=1.0, beta=1.0)
        >>> {k: v for k, v in prob.param_shapes.items()}
        {'W': (4, 4), 'E': (4, 8)}
    """

    alpha: float = 1.0
    beta: float = 1.0
    ridge: str = "H"
    lam_E: float = 0.0
    normalize: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "alpha", _validate.real("alpha", self.alpha, low=0.0, high=1e100))
        object.__setattr__(self, "beta", _validate.real("beta", self.beta, low=0.0, high=1e100))
        object.__setattr__(self, "lam_E", _validate.nonnegative("lam_E", self.lam_E))
        if self.alpha == 0 and self.beta == 0:
            raise ValueError("alpha and beta must not both be 0 (the features would be identically zero)")
        if self.ridge not in ("H", "E"):
            raise ValueError(f"ridge must be 'H' or 'E', got {self.ridge!r}")
        if self.ridge == "H" and self.lam_E:
            raise ValueError("lam_E must be 0 when ridge='H' (the ridge sits on the features; use lam_H)")
        if self.ridge == "E" and self.lam_H:
            raise ValueError("lam_H must be 0 when ridge='E' (the ridge sits on the embeddings; use lam_E)")
        if self.normalize is not None:
            object.__setattr__(self, "normalize", _validate.positive("normalize", self.normalize))

    @functools.cached_property
    def X_tilde(self) -> np.ndarray:
        """``X̃ = [α X; β I_m]: (p + m, m)``, built on first use (large designs go through the reduced
        solvers, which never need it)."""
        X_tilde = np.vstack([self.alpha * self.design.X, self.beta * np.eye(self.design.m)])
        X_tilde.setflags(write=False)
        return X_tilde

    @property
    def kernel(self) -> np.ndarray:
        """``K_x = X̃ᵀX̃ = α² XᵀX + β² I: (m, m)``, the attribute-sharing kernel."""
        return self.X_tilde.T @ self.X_tilde

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"W": (self.design.V, self.dim), "E": (self.dim, self.design.p + self.design.m)}

    def raw_features(self, params: dict[str, np.ndarray]) -> np.ndarray:
        """The features before normalisation, ``E X̃: (d, m)`` (subclasses with another feature path
        override this one method)."""
        return params["E"] @ self.X_tilde

    def features(self, params: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        H_raw = self.raw_features(params)
        return params["W"], H_raw if self.normalize is None else normalise_columns(H_raw, self.normalize)[0]

    def loss_and_grad(
        self, params: dict[str, np.ndarray], need_grad: bool = True
    ) -> tuple[float, dict[str, np.ndarray]]:
        """Loss and gradient ``{"W": (V, d), "E": (d, p + m)}`` via the chain rule through ``H = N(E X̃)``."""
        W, E = params["W"], params["E"]
        H_raw = self.raw_features(params)
        H, norms = (H_raw, None) if self.normalize is None else normalise_columns(H_raw, self.normalize)
        loss, grads = cross_entropy_and_grads(W, H, self.design, need_grad)
        loss += 0.5 * self.lam_W * float(np.vdot(W, W))
        if self.ridge == "H":
            loss += 0.5 * self.lam_H * float(np.vdot(H_raw, H_raw))
        else:
            loss += 0.5 * self.lam_E * float(np.vdot(E, E))
        if not need_grad:
            return loss, {}
        gW, gH = grads
        if norms is not None and self.normalize is not None:
            gH = normalise_columns_backward(gH, H, norms, self.normalize)
        if self.ridge == "H" and self.lam_H:
            gH = gH + self.lam_H * H_raw
        gE = gH @ self.X_tilde.T
        if self.lam_E:
            gE += self.lam_E * E
        if self.lam_W:
            gW += self.lam_W * W
        return loss, {"W": gW, "E": gE}

    def grad_flops(self) -> float:
        V, d, m, p = self.design.V, self.dim, self.design.m, self.design.p
        return 6.0 * V * d * m + 4.0 * d * (p + m) * m

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(
            alpha=self.alpha, beta=self.beta, ridge=self.ridge, lam_E=self.lam_E, normalize=self.normalize
        )
        return out
