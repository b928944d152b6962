"""Semantic structure of Grams relative to an attribute code ``X: (p, K)``: attribute projector and
energy, semantic strength, CKA, shared-attribute gap, pair cosines."""

from __future__ import annotations

from typing import Any

import numpy as np

from ufmtheory.metrics._core import (
    _attribute_energy,
    _center,
    _centred_cos,
    _check_gram,
    _check_X,
    _cka,
    _kernel_norm,
    _masked_mean,
    _nan_where,
    _projector,
    _shared_masks,
)

__all__ = [
    "attribute_projector",
    "attribute_energy",
    "etf_attribute_energy",
    "semantic_strength",
    "cka",
    "shared_attribute_gap",
    "pair_cosines",
]


def attribute_projector(X: Any) -> np.ndarray:
    """Orthogonal projector onto the span of the centred attribute indicators.

    With ``Xc = X C_K`` (each attribute row centred over contexts), ``P = Xcᵀ (Xc Xcᵀ)⁺ Xc``. For a
    factorial design this is the sum of the main-effect projectors ``Σ_f P_{{f}}`` (docs: Theory §6),
    of rank ``Σ_f (A_f - 1)``; for a hierarchical design it spans every non-leaf level. ``P 1 = 0``, so
    ``tr(P G) = tr(P C G C)``.

    Args:
        X: (p, K) attribute code (binary in the designs; any real code is accepted). ``p = 0`` gives 0.

    Returns:
        (K, K) symmetric idempotent matrix.

    Raises:
        ValueError: if ``X`` is not a finite 2-D array with at least 2 columns.

    Example:
        >>> from ufmtheory.designs import factorial
        >>> P = attribute_projector(factorial((2, 3)).X)
        >>> round(float(np.trace(P)), 9)  # (2 - 1) + (3 - 1)
        3.0
    """
    return _projector(_check_X(X))


def etf_attribute_energy(X: Any) -> float:
    """Attribute-energy fraction of a simplex ETF: ``rank(P)/(K - 1)``, ``P = attribute_projector(X)``.

    For a factorial design ``Σ_f (A_f - 1)/(K - 1)`` (docs: Theory §10): the share of an isotropic
    centred Gram that happens to lie in the attribute subspace.

    Args:
        X: (p, K) attribute code, K >= 2.

    Example:
        >>> from ufmtheory.designs import factorial
        >>> round(etf_attribute_energy(factorial((3, 3)).X), 12)  # (2 + 2) / 8
        0.5
    """
    X = _check_X(X)
    return float(np.trace(_projector(X))) / (X.shape[1] - 1)


def attribute_energy(G: Any, X: Any) -> float:
    """Fraction of the centred Gram's energy in the attribute subspace [derived, docs: Theory §10].

    ``ρ_sem = tr(P Gc)/tr(Gc)``, ``Gc = centered(G)``, ``P = attribute_projector(X)``; for a factorial design
    ``Σ_{main effects S} tr(G P_S)/tr(C G C)``. In ``[0, 1]`` for a positive semi-definite ``G``.

    Args:
        G: (K, K) Gram matrix.
        X: (p, K) attribute code.

    Returns:
        The fraction, or ``nan`` when the centred Gram vanishes.

    Raises:
        ValueError: on non-square/non-finite ``G`` or ``X`` without K columns.

    Example:
        >>> from ufmtheory.designs import factorial
        >>> X = factorial((2, 2)).X
        >>> P = attribute_projector(X)
        >>> round(attribute_energy(P, X), 12)
        1.0
    """
    G = _check_gram(G)
    X = _check_X(X, G.shape[0])
    return float(_attribute_energy(G[None], _center(G[None]), _projector(X))[0])


def semantic_strength(G: Any, X: Any) -> float:
    """Semantic strength: attribute energy minus its ETF value (docs: Theory §10).

    ``attribute_energy(G, X) - etf_attribute_energy(X)``: 0 for the simplex ETF (and any isotropic centred
    Gram), positive when attribute structure is over-represented, at most ``1 - rank(P)/(K - 1)``.

    Args:
        G: (K, K) Gram matrix.
        X: (p, K) attribute code.

    Returns:
        The strength, or ``nan`` when the centred Gram vanishes.

    Example:
        >>> from ufmtheory.equilibria import etf_gram
        >>> from ufmtheory.designs import factorial
        >>> round(semantic_strength(etf_gram(4), factorial((2, 2)).X), 12)
        0.0
    """
    G = _check_gram(G)
    X = _check_X(X, G.shape[0])
    P = _projector(X)
    rank = float(np.trace(P))
    return float(_attribute_energy(G[None], _center(G[None]), P)[0]) - rank / (G.shape[0] - 1)


def cka(G: Any, X: Any) -> float:
    """Linear CKA between the Gram and the attribute-sharing kernel ``XᵀX`` [Kornblith et al. 2019].

    ``⟨Gc, Kc⟩_F / (‖Gc‖_F ‖Kc‖_F)`` with ``Gc = centered(G)``, ``Kc = centered(XᵀX)`` (the HSIC
    normalisation; ``tr(G C L C) = ⟨CGC, CLC⟩``).

    Args:
        G: (K, K) Gram matrix.
        X: (p, K) attribute code.

    Returns:
        CKA in ``[-1, 1]`` (``[0, 1]`` for PSD ``G``), or ``nan`` when either centred kernel vanishes.

    Example:
        >>> from ufmtheory.designs import factorial
        >>> X = factorial((2, 3)).X
        >>> round(cka(X.T @ X, X), 12)
        1.0
    """
    G = _check_gram(G)
    X = _check_X(X, G.shape[0])
    Kc = _center(X.T @ X)
    return float(_cka(G[None], _center(G[None]), Kc, _kernel_norm(X, Kc))[0])


def shared_attribute_gap(G: Any, X: Any) -> float:
    """Mean cosine of pairs sharing an attribute minus mean cosine of pairs sharing none.

    On ``Ĝ = cosine(centered(G))``, over ordered pairs ``i ≠ j``: pairs with ``(XᵀX)_ij > 0`` against pairs
    with ``(XᵀX)_ij = 0`` (docs: Theory §10). 0 for the simplex ETF; on an A×A grid in the semantic phase
    ``(A-2)/(2(A-1)) + 1/(A-1) = A/(2(A-1))``.

    Args:
        G: (K, K) Gram matrix.
        X: (p, K) non-negative attribute code.

    Returns:
        The gap, or ``nan`` when either set of pairs is empty (no pair shares / every pair shares an
        attribute) or when the centred Gram vanishes.

    Example:
        >>> from ufmtheory.designs import factorial
        >>> X = factorial((2, 2)).X
        >>> round(shared_attribute_gap(attribute_projector(X), X), 12)  # A = 2: cosines 0 and -1
        1.0
    """
    G = _check_gram(G)
    X = _check_X(X, G.shape[0], nonneg=True)
    _, Gh, deg = _centred_cos(G[None])
    share, none = _shared_masks(X)
    return float(_nan_where(_masked_mean(Gh, share) - _masked_mean(Gh, none), deg)[0])


def pair_cosines(G: Any, X: Any) -> dict[int, float]:
    """Mean centred cosine by number of shared attributes.

    On ``Ĝ = cosine(centered(G))``, the mean of ``Ĝ_ij`` over pairs ``i ≠ j`` with ``(XᵀX)_ij = s``, for each
    ``s`` that occurs. Semantic phase of an A×A grid [derived, docs: Theory §10]: ``s = 1`` gives
    ``(A-2)/(2(A-1))``, ``s = 0`` gives ``-1/(A-1)``; the ETF gives ``-1/(K-1)`` for every ``s``.

    Args:
        G: (K, K) Gram matrix.
        X: (p, K) binary attribute code.

    Returns:
        ``{s: mean cosine}`` in increasing ``s`` (values ``nan`` when the centred Gram vanishes).

    Raises:
        ValueError: if ``X`` is not binary or shapes disagree.

    Example:
        >>> from ufmtheory.designs import factorial
        >>> X = factorial((3, 3)).X
        >>> {s: round(c, 6) for s, c in pair_cosines(attribute_projector(X), X).items()}
        {0: -0.5, 1: 0.25}
    """
    G = _check_gram(G)
    X = _check_X(X, G.shape[0])
    if not np.all((X == 0) | (X == 1)):
        raise ValueError("X must be a binary (0/1) attribute code to count shared attributes")
    _, Gh, deg = _centred_cos(G[None])
    S = np.rint(X.T @ X).astype(np.int64)
    off = ~np.eye(G.shape[0], dtype=bool)
    out: dict[int, float] = {}
    for s in np.unique(S[off]):
        mean = _masked_mean(Gh, (S == s) & off)
        out[int(s)] = float(_nan_where(mean, deg)[0])
    return out
