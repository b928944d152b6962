"""Neural Collapse metrics NC1-NC4 [Papyan, Han, Donoho 2020]: within-class variability, equinorm,
equiangularity, max angle deviation, self-duality, nearest-class-centre agreement."""

from __future__ import annotations

from typing import Any

import numpy as np

from ufmtheory.metrics._core import _REL_TOL, _as_array, _center, _centred_cos, _check_gram, _diag

__all__ = ["nc1", "equinorm", "equiangularity", "max_angle_deviation", "self_duality", "ncc_agreement"]


def nc1(H: Any, labels: Any) -> float:
    """NC1 within-class variability ``tr(Σ_W Σ_B⁺)/K`` [Papyan, Han, Donoho 2020, Fig. 6].

    ``Σ_W = (1/N) Σ_i (h_i - μ_{y_i})(h_i - μ_{y_i})ᵀ``, ``Σ_B = (1/K) Σ_k (μ_k - μ_G)(μ_k - μ_G)ᵀ`` with
    class means ``μ_k`` and the global mean ``μ_G`` of all N samples (Papyan's definition; other papers
    weight classes differently). Computed in the span of the centred means, never forming ``d × d``
    matrices: with ``[μ_k - μ_G]_k = U S Vᵀ``, ``tr(Σ_W Σ_B⁺)/K = ‖S⁻¹ Uᵀ R‖_F² / N``, ``R`` the residuals.

    Args:
        H: (d, N) features, one column per sample.
        labels: (N,) integer class labels (K = number of distinct labels, >= 2).

    Returns:
        NC1 (0 when every sample equals its class mean), or ``nan`` when all class means coincide.

    Raises:
        ValueError: on shape mismatch, non-integer labels, fewer than 2 classes or non-finite ``H``.

    Example:
        >>> H = np.array([[1.0, 1.0, -1.0, -1.0]])
        >>> nc1(H, [0, 0, 1, 1])
        0.0
    """
    H = _as_array("H", H, ndim=2)
    if H.shape[0] < 1:
        raise ValueError(f"H must have at least one row (feature), got shape {H.shape}")
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != H.shape[1]:
        raise ValueError(f"labels must have shape (N,) = ({H.shape[1]},) to match H, got {y.shape}")
    if y.dtype.kind not in "iu":
        if y.dtype.kind != "f" or not np.all(np.isfinite(y)) or np.any(y != np.rint(y)):
            raise ValueError("labels must be integers")
        y = y.astype(np.int64)
    classes, inv = np.unique(y, return_inverse=True)
    K, N = classes.size, H.shape[1]
    if K < 2:
        raise ValueError(f"labels must contain at least 2 classes, got {K}")
    counts = np.bincount(inv, minlength=K)
    means = (H @ np.eye(K)[inv]) / counts  # (d, K)
    R = H - means[:, inv]
    Mc = means - H.mean(axis=1, keepdims=True)
    U, s, _ = np.linalg.svd(Mc, full_matrices=False)
    if s[0] == 0 or s[0] <= _REL_TOL * float(np.abs(H).max()):
        return float("nan")  # all class means coincide: Σ_B = 0
    # Centring the means leaves rounding noise of order eps·‖means‖ (the *uncentred* size: features with a
    # large common offset), not eps·s[0]; and Σ_B has rank at most K - 1. Both bounds keep noise directions
    # out of Σ_B⁺ (an offset of 100 otherwise gave NC1 ~ 1e25).
    noise = max(Mc.shape) * np.finfo(np.float64).eps * max(float(s[0]), float(np.linalg.norm(means, 2)))
    r = min(int(np.sum(s > noise)), K - 1)
    # Σ_B⁺ = K U_r S_r⁻² U_rᵀ, so tr(Σ_W Σ_B⁺)/K = (1/N) ‖S_r⁻¹ U_rᵀ R‖_F².
    Z = (U[:, :r].T @ R) / s[:r, None]
    return float(np.sum(Z * Z) / N)


def equinorm(G: Any) -> float:
    """NC2 equinorm: coefficient of variation ``std/mean`` of the centred norms [Papyan et al. 2020].

    Norms are ``sqrt(diag(centered(G)))``, i.e. ``‖μ_k - μ_G‖`` when ``G`` is the Gram of class means.
    Population std (``ddof = 0``). 0 for the simplex ETF.

    Args:
        G: (K, K) Gram matrix.

    Returns:
        The coefficient of variation, or ``nan`` when the centred Gram vanishes.

    Example:
        >>> from ufmtheory.equilibria import etf_gram
        >>> round(equinorm(etf_gram(4)), 12)
        0.0
    """
    G = _check_gram(G)
    norms = np.sqrt(np.clip(_diag(_center(G)), 0.0, None))
    mean = float(norms.mean())
    if mean**2 <= _REL_TOL * float(np.max(np.abs(_diag(G)))) or mean == 0:
        return float("nan")
    return float(norms.std() / mean)


def _offdiag_cos(G: Any) -> tuple[np.ndarray, bool, int]:
    G = _check_gram(G)
    _, Gh, deg = _centred_cos(G[None])
    K = G.shape[0]
    return Gh[0][~np.eye(K, dtype=bool)], bool(deg[0]), K


def equiangularity(G: Any) -> float:
    """NC2 equiangularity: std of the off-diagonal centred cosines [Papyan et al. 2020, Fig. 4].

    Standard deviation (``ddof = 0``) of ``Ĝ_ij``, ``i ≠ j``, ``Ĝ = cosine(centered(G))``. 0 for the ETF.

    Args:
        G: (K, K) Gram matrix.

    Returns:
        The std, or ``nan`` when the centred Gram vanishes.

    Example:
        >>> from ufmtheory.equilibria import etf_gram
        >>> round(equiangularity(etf_gram(5)), 12)
        0.0
    """
    c, deg, _ = _offdiag_cos(G)
    return float("nan") if deg else float(c.std())


def max_angle_deviation(G: Any) -> float:
    """NC2 maximal-angle deviation ``mean_{i≠j} |Ĝ_ij + 1/(K-1)|`` [Papyan et al. 2020, Fig. 5].

    0 exactly when all centred cosines equal the simplex value ``-1/(K-1)``.

    Args:
        G: (K, K) Gram matrix.

    Returns:
        The mean deviation, or ``nan`` when the centred Gram vanishes.

    Example:
        >>> round(max_angle_deviation(np.eye(3)), 12)  # centred basis vectors form a simplex
        0.0
    """
    c, deg, K = _offdiag_cos(G)
    return float("nan") if deg else float(np.abs(c + 1.0 / (K - 1)).mean())


def self_duality(W: Any, M: Any) -> float:
    """NC3 self-duality ``‖Wᵀ/‖W‖_F - Mc/‖Mc‖_F‖_F`` [Papyan, Han, Donoho 2020, Fig. 7].

    ``Mc = M C_K``: class means centred by their (unweighted) average.

    Args:
        W: (K, d) classifier rows.
        M: (d, K) class means (columns).

    Returns:
        The distance in ``[0, 2]``, or ``nan`` when ``W`` or ``Mc`` is zero.

    Example:
        >>> M = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        >>> Mc = M - M.mean(axis=1, keepdims=True)
        >>> round(self_duality(2.0 * Mc.T, M), 12)
        0.0
    """
    W = _as_array("W", W, ndim=2)
    M = _as_array("M", M, ndim=2)
    if W.shape != M.T.shape:
        raise ValueError(f"W must have shape (K, d) = {M.T.shape} to match M (d, K), got {W.shape}")
    Mc = M - M.mean(axis=1, keepdims=True)
    nW, nM = float(np.linalg.norm(W)), float(np.linalg.norm(Mc))
    if nW == 0 or nM <= _REL_TOL * float(np.linalg.norm(M)) or nM == 0:
        return float("nan")
    return float(np.linalg.norm(W.T / nW - Mc / nM))


def ncc_agreement(W: Any, H: Any, M: Any) -> float:
    """NC4: fraction of samples where the classifier agrees with the nearest class centre [Papyan et al.].

    For each column ``h`` of ``H``: ``argmax_k (W h)_k == argmin_k ‖h - μ_k‖`` (ties: lowest index).

    Args:
        W: (K, d) classifier rows (no bias, as in the UFM).
        H: (d, N) features.
        M: (d, K) class means.

    Returns:
        Agreement in ``[0, 1]``.

    Example:
        >>> M = np.array([[1.0, -1.0]])
        >>> ncc_agreement(M.T, np.array([[0.5, 2.0, -3.0]]), M)
        1.0
    """
    W = _as_array("W", W, ndim=2)
    H = _as_array("H", H, ndim=2)
    M = _as_array("M", M, ndim=2)
    if W.shape != M.T.shape:
        raise ValueError(f"W must have shape (K, d) = {M.T.shape} to match M (d, K), got {W.shape}")
    if H.shape[0] != M.shape[0]:
        raise ValueError(f"H must have d = {M.shape[0]} rows like M, got shape {H.shape}")
    if H.shape[1] == 0:
        raise ValueError("H must have at least one column (sample)")
    pred = np.argmax(W @ H, axis=0)
    # Distances are translation invariant: measure them from the centre of the means, so a large common
    # offset (1e8) does not cancel away the digits that decide the nearest centre.
    centre = M.mean(axis=1, keepdims=True)
    Mc, Hc = M - centre, H - centre
    # ‖h - μ_k‖² = ‖h‖² - 2 μ_kᵀh + ‖μ_k‖²; ‖h‖² is common to all k.
    nearest = np.argmin(np.sum(Mc * Mc, axis=0)[:, None] - 2.0 * (Mc.T @ Hc), axis=0)
    return float(np.mean(pred == nearest))
