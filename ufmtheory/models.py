"""Problem specifications: the standard unconstrained features model (UFM).

A problem is a frozen dataclass holding a :class:`~ufmtheory.designs.Design`, a feature dimension and
regularisation strengths. It knows its parameter blocks (``W``, ``H``), the loss, the analytic gradient and
the Gram matrices; solvers (:func:`ufmtheory.gradient_flow`, :func:`ufmtheory.gradient_descent`) work on
the flat parameter vector through :meth:`UFM.pack`/:meth:`UFM.unpack` so that other problems (the modified
UFM) plug into the same solvers.

Loss (THEORY.md section 3), soft-label weighted cross-entropy with ridge::

    f(W, H) = Σ_j π_j CE(y_j, softmax(W h_j)) + λ_W/2 ‖W‖² + λ_H/2 ‖H‖²,   W: (V, d), H: (d, m)

with gradient ``G = (softmax(WH) - Y) diag(π)``, ``∇_W = G Hᵀ + λ_W W``, ``∇_H = Wᵀ G + λ_H H``.
Every softmax and cross-entropy goes through log-sum-exp so that logits of size ``ln t`` (unregularised
flows to ``t = 1e8``) never overflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .designs import Design

__all__ = ["UFM", "log_softmax_columns", "check_nonnegative", "check_dim"]


def log_softmax_columns(Z: np.ndarray) -> np.ndarray:
    """Column-wise log-softmax of logits ``Z: (V, m)`` via log-sum-exp (no overflow for large logits)."""
    zmax = Z.max(axis=0, keepdims=True)
    shifted = Z - zmax
    return shifted - np.log(np.exp(shifted).sum(axis=0, keepdims=True))


def check_nonnegative(name: str, value: Any) -> float:
    """Return ``value`` as a float, raising a ValueError naming ``name`` unless it is finite and >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value}")
    return value


def check_dim(value: Any) -> int:
    """Validate a feature dimension (integer >= 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"dim must be an integer, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"dim must be >= 1, got {value}")
    return int(value)


@dataclass(frozen=True, eq=False)
class UFM:
    """Standard unconstrained features model on a design (THEORY.md section 3).

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
        >>> round(loss, 3), grads["W"].shape, grads["H"].shape
        (1.386, (4, 4), (4, 4))
    """

    design: Design
    dim: int
    lam_W: float = 0.0
    lam_H: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.design, Design):
            raise TypeError(f"design must be a ufmtheory Design, got {type(self.design).__name__}")
        object.__setattr__(self, "dim", check_dim(self.dim))
        object.__setattr__(self, "lam_W", check_nonnegative("lam_W", self.lam_W))
        object.__setattr__(self, "lam_H", check_nonnegative("lam_H", self.lam_H))

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
        Z = W @ H
        logp = log_softmax_columns(Z)
        Y, pi = self.design.Y, self.design.pi
        ce = -(Y * logp).sum(axis=0)
        loss = float(ce @ pi)
        if self.lam_W:
            loss += 0.5 * self.lam_W * float(np.vdot(W, W))
        if self.lam_H:
            loss += 0.5 * self.lam_H * float(np.vdot(H, H))
        if not need_grad:
            return loss, {}
        G = (np.exp(logp) - Y) * pi  # (V, m): softmax minus labels, columns weighted by pi
        gW = G @ H.T
        gH = W.T @ G
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
