"""A modified UFM whose per-context channel is *deep*: a product of two learned matrices (issue 9).

The normalised modified UFM ``H = N(E X̃)`` times the GPT's W transient on its own AdamW clock, but its H
loses the attribute structure 1.4-2.1× later than the GPT's (docs/validation.md). In that model the
per-context part of a feature is one embedding column ``β e_j``: under Adam every entry moves about
``lr`` per step, so it grows linearly in the step and the attribute share of H decays slowly. A GPT has
no per-context parameter: what tells two contexts with the same last token apart is built by attention
and MLP weights acting on the token embeddings, a product of learned matrices that starts near zero and,
under Adam, grows like the *square* of the step. :class:`DeepContextUFM` gives the per-context channel
that form,

    ``H = N(E X̂ + β A B)``,   ``X̂ = [α X; I_ids]: (p + n_id, m)``,   ``A: (d, r)``, ``B: (r, m)``,

with ``r = d`` by default (one hidden layer of the model's width, not fitted). ``I_ids`` holds one row per
context that carries an id token in the baseline GPT's encoding (a context whose attribute set another
context shares, :func:`~ufmtheory.analysis.geometry.token_columns`): a shallow per-context embedding, as
the GPT's id-token embedding is (weight 1: α and β do not scale it). With ``N`` the sphere of radius
``r₀`` and no id tokens (factorial designs, such as the calibration design) the loss and the flow depend on
``(α, β)`` only up to a common factor, so the calibrated family fixes ``α = 1`` on the calibration design
and fits ``β`` (:func:`ufmtheory.analysis.calibration.calibrate`, ``family="deep"``).

Example:
    >>> import ufmtheory as ut
    >>> from ufmtheory.analysis.deep_context import DeepContextUFM
    >>> prob = DeepContextUFM(ut.designs.factorial((2, 2)), dim=8, beta=0.5, normalize=8 ** 0.5)
    >>> {k: v for k, v in prob.param_shapes.items()}
    {'W': (4, 8), 'E': (8, 4), 'A': (8, 8), 'B': (8, 4)}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ufmtheory import _validate
from ufmtheory.models import (
    ModifiedUFM,
    cross_entropy_and_grads,
    normalise_columns,
    normalise_columns_backward,
)

__all__ = ["DeepContextUFM", "id_token_contexts"]


def id_token_contexts(design: Any) -> np.ndarray:
    """``(m,)`` bool: the contexts that carry an id token in the baseline GPT's encoding
    (``context_ids="auto"``: a context whose attribute set another context carries too)."""
    X = np.asarray(design.X)
    sets = [tuple(np.flatnonzero(X[:, j]).tolist()) for j in range(design.m)]
    return np.array([sets.count(a) > 1 for a in sets], dtype=bool)


@dataclass(frozen=True, eq=False)
class DeepContextUFM(ModifiedUFM):
    """``H = N(E X̂ + β A B)``: shallow attribute (and id-token) embeddings plus a deep per-context path.

    Attributes:
        design, dim, alpha, beta, normalize: as in :class:`~ufmtheory.models.ModifiedUFM` (``alpha``
            weights the attribute rows of ``X̂``, ``beta`` the product path ``A B``).
        rank: inner width ``r`` of the product path (default ``dim``).

    Parameters (``param_shapes``): ``W: (V, d)``, ``E: (d, p + n_id)``, ``A: (d, r)``, ``B: (r, m)``.
    No ridge: ``lam_W``, ``lam_H`` and ``lam_E`` must be 0.
    """

    rank: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lam_W or self.lam_H or self.lam_E:
            raise ValueError("DeepContextUFM has no ridge: lam_W, lam_H and lam_E must be 0")
        if self.design.p == 0:
            raise ValueError("DeepContextUFM needs a design with latent attributes (p > 0)")
        rank = self.dim if self.rank is None else self.rank
        object.__setattr__(self, "rank", _validate.integer("rank", rank, low=1))
        ids = id_token_contexts(self.design)
        shallow = np.vstack(
            [self.alpha * np.asarray(self.design.X, dtype=np.float64), np.eye(self.design.m)[ids]]
        )
        shallow.setflags(write=False)
        object.__setattr__(self, "_shallow", shallow)

    @property
    def X_tilde(self) -> np.ndarray:
        """``X̂ = [α X; I_ids]: (p + n_id, m)``, the shallow inputs (attribute rows, then id-token rows)."""
        return self._shallow  # type: ignore[attr-defined, no-any-return]

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        d, m = self.dim, self.design.m
        r = int(self.rank)  # type: ignore[arg-type]
        return {"W": (self.design.V, d), "E": (d, self.X_tilde.shape[0]), "A": (d, r), "B": (r, m)}

    def raw_features(self, params: dict[str, np.ndarray]) -> np.ndarray:
        """``E X̂ + β A B: (d, m)``, the features before normalisation."""
        return params["E"] @ self.X_tilde + self.beta * (params["A"] @ params["B"])

    def loss_and_grad(
        self, params: dict[str, np.ndarray], need_grad: bool = True
    ) -> tuple[float, dict[str, np.ndarray]]:
        """Loss and gradient ``{"W", "E", "A", "B"}`` by the chain rule through ``H = N(E X̂ + β A B)``."""
        W = params["W"]
        H_raw = self.raw_features(params)
        H, norms = (H_raw, None) if self.normalize is None else normalise_columns(H_raw, self.normalize)
        loss, grads = cross_entropy_and_grads(W, H, self.design, need_grad)
        if not need_grad:
            return loss, {}
        gW, gH = grads
        if norms is not None and self.normalize is not None:
            gH = normalise_columns_backward(gH, H, norms, self.normalize)
        return loss, {
            "W": gW,
            "E": gH @ self.X_tilde.T,
            "A": self.beta * (gH @ params["B"].T),
            "B": self.beta * (params["A"].T @ gH),
        }

    def grad_flops(self) -> float:
        d, m, r = self.dim, self.design.m, int(self.rank)  # type: ignore[arg-type]
        return 6.0 * self.design.V * d * m + 6.0 * d * r * m + 4.0 * d * self.X_tilde.shape[0] * m

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(rank=self.rank, n_id_tokens=int(self.X_tilde.shape[0] - self.design.p))
        return out
