"""Geometry of Gram matrices: centring, cosines, distance to the simplex ETF, effective rank."""

from __future__ import annotations

from typing import Any

import numpy as np

from ufmtheory.metrics._core import (
    _center,
    _centred_cos,
    _check_gram,
    _cos,
    _effective_rank,
    _etf_distance,
)

__all__ = ["centered", "cosine", "etf_distance", "effective_rank"]


def centered(G: Any) -> np.ndarray:
    """Double-centred Gram ``C G C`` with ``C = I - 11ᵀ/K``.

    If ``G = HᵀH`` for features ``H: (d, K)``, then ``C G C`` is the Gram of the features with their mean
    removed, ``(H - h̄1ᵀ)ᵀ(H - h̄1ᵀ)`` [Papyan, Han, Donoho 2020 centre by the global mean].

    Args:
        G: (K, K) Gram matrix.

    Returns:
        (K, K) centred Gram.

    Raises:
        ValueError: if ``G`` is not a finite square matrix.

    Example:
        >>> centered(np.ones((3, 3))).tolist()
        [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """
    return _center(_check_gram(G, min_K=1))


def cosine(G: Any) -> np.ndarray:
    """Cosine-normalised Gram ``D^{-1/2} G D^{-1/2}`` with ``D = diag(G)``.

    Rows with zero norm (squared norm ``<= 1e-10`` times the largest, or negative) give zero rows and
    columns instead of a division by zero.

    Args:
        G: (K, K) Gram matrix.

    Returns:
        (K, K) matrix of cosines (ones on the diagonal of non-zero rows).

    Raises:
        ValueError: if ``G`` is not a finite square matrix.

    Example:
        >>> cosine(np.array([[4.0, 2.0, 0.0], [2.0, 4.0, 0.0], [0.0, 0.0, 0.0]])).tolist()
        [[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 0.0]]
    """
    return _cos(_check_gram(G, min_K=1))[0]


def etf_distance(G: Any) -> float:
    """Distance of a Gram's direction from the simplex ETF.

    ``‖Ĝ/‖Ĝ‖_F - C_K/‖C_K‖_F‖_F`` with ``Ĝ = cosine(centered(G))`` (docs: Theory §10). It is 0 exactly
    for a (scaled) simplex ETF and at most 2. Scale- and permutation-invariant.

    Args:
        G: (K, K) Gram matrix, K >= 2.

    Returns:
        The distance, or ``nan`` when the centred Gram vanishes (all vectors equal, e.g. all zero): its
        direction is undefined.

    Raises:
        ValueError: if ``G`` is not a finite square matrix with K >= 2.

    Example:
        >>> from ufmtheory.equilibria import etf_gram
        >>> round(etf_distance(3.0 * etf_gram(5)), 12)
        0.0
        >>> etf_distance(np.zeros((3, 3)))
        nan
    """
    G = _check_gram(G)
    _, Gh, deg = _centred_cos(G[None])
    return float(_etf_distance(Gh, deg)[0])


def effective_rank(G: Any) -> float:
    """Effective rank of the centred Gram [Roy & Vetterli 2007].

    ``exp(-Σ p_i ln p_i)`` with ``p_i = λ_i / Σ λ`` the normalised eigenvalues of ``centered(G)`` (negative
    rounding noise clipped to 0). A simplex ETF of K vectors gives ``K - 1``; the semantic phase of a
    factorial design about ``Σ_f (A_f - 1)`` (docs: Theory §10).

    Args:
        G: (K, K) symmetric Gram matrix, K >= 2.

    Returns:
        Effective rank in ``[1, K - 1]``, or ``nan`` when the centred Gram vanishes.

    Raises:
        ValueError: if ``G`` is not a finite square matrix with K >= 2.

    Example:
        >>> from ufmtheory.equilibria import etf_gram
        >>> round(effective_rank(etf_gram(6)), 9)
        5.0
    """
    G = _check_gram(G)
    return float(_effective_rank(G[None], _center(G[None]))[0])
