"""Closed forms and helpers written out from the docs for the claims (not the package's implementations)."""

from __future__ import annotations

import math
from functools import reduce
from typing import Any, TypeVar

import numpy as np

from ufmtheory.testing._claim import RunFailed

T = TypeVar("T")

TIGHT: dict[str, Any] = {"rtol": 1e-11, "atol": 1e-13}


# -- closed-form helpers written out from the docs (not the package's implementations) -------------------
def centering(K: int) -> np.ndarray:
    return np.eye(K) - np.ones((K, K)) / K


def kron_projector(sizes: tuple[int, ...], S: tuple[int, ...]) -> np.ndarray:
    """``P_S = ⊗_{f∈S}(I - J/A_f) ⊗_{f∉S} J/A_f`` (Kronecker order, last factor fastest)."""
    blocks = [np.eye(a) - 1.0 / a if f in S else np.full((a, a), 1.0 / a) for f, a in enumerate(sizes)]
    return reduce(np.kron, blocks)


def softmax_columns(L: np.ndarray) -> np.ndarray:
    Z = np.exp(L - L.max(axis=0))
    return Z / Z.sum(axis=0)


def centred_cosines(G: np.ndarray) -> np.ndarray:
    C = centering(G.shape[0])
    Gc = C @ G @ C
    d = np.sqrt(np.clip(np.diag(Gc), 1e-300, None))
    return Gc / np.outer(d, d)


def digits(sizes: tuple[int, ...]) -> np.ndarray:
    """(F, K) factor values of each context (Kronecker order)."""
    return np.array(np.unravel_index(np.arange(math.prod(sizes)), sizes))


def required(value: T | None, what: str) -> T:
    """``value``; a run that left it out (``None``) is a failed run, reported as such."""
    if value is None:
        raise RunFailed("failed", f"{what} is missing (None)")
    return value


def finished(run: Any, what: str) -> None:
    if not run.ok:
        raise RunFailed(str(run.status).split(":")[0].split(" ")[0] or "failed", f"{what}: {run.status}")


def sizes_reason(sizes: Any, min_factors: int = 1, max_K: int = 64) -> str | None:
    if sizes is None or len(sizes) < min_factors:
        return f"needs a factorial design with at least {min_factors} factor(s), got sizes={sizes}"
    if any(a < 2 for a in sizes):
        return f"every factor needs >= 2 values, got sizes={sizes}"
    if math.prod(sizes) > max_K:
        return f"K = {math.prod(sizes)} > {max_K}: too large for a quick check"
    return None


def scheme_projectors(
    sizes: Any = None, depth: int | None = None, branching: int | None = None
) -> list[np.ndarray]:
    """The orthogonal projectors of a design's association scheme, built from their definitions:
    factorial ``P_S`` for every ``S ⊆ [F]`` (Kronecker products); hierarchical ``P_0 = Q_0``,
    ``P_l = Q_l - Q_{l-1}`` with ``Q_l`` the average over the leaves below each level-l node."""
    if depth is None:
        F = len(sizes)
        subsets: list[tuple[int, ...]] = [()]
        for f in range(F):
            subsets += [s + (f,) for s in subsets]
        return [kron_projector(tuple(sizes), S) for S in subsets]
    if branching is None:
        raise ValueError("a hierarchical scheme needs both depth and branching")
    K = branching**depth
    Q = [
        np.kron(np.eye(branching**l), np.full((K // branching**l,) * 2, branching**l / K))
        for l in range(depth + 1)
    ]
    return [Q[0]] + [Q[l] - Q[l - 1] for l in range(1, depth + 1)]
