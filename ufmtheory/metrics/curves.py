"""Metrics on Gram matrices and features (THEORY.md section 5): collapse, semantic structure, phase times.

Every function here is pure numpy. Grams are ``(K, K)`` (``K`` contexts or labels); features are ``(d, N)``
(columns are samples); attribute codes ``X`` are ``(p, K)`` (``X[a, j] = 1`` when context ``j`` carries
attribute ``a``), as in :class:`ufmtheory.designs.Design`.

* Geometry: :func:`centered`, :func:`cosine`, :func:`etf_distance`, :func:`effective_rank`.
* Neural Collapse [Papyan, Han, Donoho 2020]: :func:`nc1` (NC1), :func:`equinorm`, :func:`equiangularity`,
  :func:`max_angle_deviation` (NC2), :func:`self_duality` (NC3), :func:`ncc_agreement` (NC4).
* Semantic structure: :func:`attribute_projector`, :func:`attribute_energy`, :func:`semantic_strength`,
  :func:`cka`, :func:`shared_attribute_gap`, :func:`pair_cosines`.
* Curves: :func:`gram_metrics`, :func:`trajectory_metrics`, :func:`phase_times`.

Degenerate inputs: a Gram whose centred version vanishes (all vectors equal, e.g. a zero initialisation at
``t = 0``) has no direction, so direction-based metrics return ``nan`` there instead of rounding noise.
"Vanishes" means below ``1e-10`` relative to the uncentred Gram (trace or largest squared norm).

References:
    V. Papyan, X. Y. Han, D. L. Donoho (2020). Prevalence of neural collapse during the terminal phase of
    deep learning training. PNAS 117(40).
    S. Kornblith, M. Norouzi, H. Lee, G. Hinton (2019). Similarity of neural network representations
    revisited. ICML.
    O. Roy, M. Vetterli (2007). The effective rank: a measure of effective dimensionality. EUSIPCO.

Example:
    >>> import numpy as np
    >>> from ufmtheory.equilibria import etf_gram
    >>> m = gram_metrics(etf_gram(4))
    >>> round(m["etf_distance"], 12), round(m["effective_rank"], 6)
    (0.0, 3.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "centered",
    "cosine",
    "etf_distance",
    "effective_rank",
    "attribute_projector",
    "attribute_energy",
    "etf_attribute_energy",
    "semantic_strength",
    "cka",
    "shared_attribute_gap",
    "pair_cosines",
    "nc1",
    "equinorm",
    "equiangularity",
    "max_angle_deviation",
    "self_duality",
    "ncc_agreement",
    "phase_times",
    "gram_metrics",
    "trajectory_metrics",
]

# Relative size below which a (centred) Gram, a squared norm or a norm counts as zero: centring a Gram of
# identical vectors leaves rounding noise of order K·eps relative to the Gram itself, far below this.
_REL_TOL = 1e-10
# Elements per chunk when a trajectory's Grams are processed as a stack (bounds temporary memory).
_CHUNK_ELEMENTS = 1 << 22


# -- validation ------------------------------------------------------------------------------------------
def _as_array(name: str, value: Any, ndim: int) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array, got {type(value).__name__}") from exc
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain only finite values (found NaN or inf)")
    return arr


def _check_gram(G: Any, name: str = "G", min_K: int = 2) -> np.ndarray:
    G = _as_array(name, G, ndim=2)
    if G.shape[0] != G.shape[1]:
        raise ValueError(f"{name} must be a square (K, K) Gram matrix, got shape {G.shape}")
    if G.shape[0] < min_K:
        raise ValueError(f"{name} must be at least {min_K}x{min_K}, got shape {G.shape}")
    return G


def _check_gram_stack(G: Any, name: str) -> np.ndarray:
    G = _as_array(name, G, ndim=3)
    if G.shape[1] != G.shape[2] or G.shape[1] < 2:
        raise ValueError(f"{name} must have shape (T, K, K) with K >= 2, got {G.shape}")
    return G


def _check_X(X: Any, K: int | None = None, name: str = "X", nonneg: bool = False) -> np.ndarray:
    X = _as_array(name, X, ndim=2)
    if K is not None and X.shape[1] != K:
        raise ValueError(f"{name} must have K = {K} columns (one per context of G), got shape {X.shape}")
    if X.shape[1] < 2:
        raise ValueError(f"{name} must have at least 2 columns (contexts), got shape {X.shape}")
    if nonneg and np.any(X < 0):
        raise ValueError(f"{name} must be non-negative (an attribute code)")
    return X


# -- stacked kernels: arrays of shape (..., K, K) ----------------------------------------------------------
def _diag(G: np.ndarray) -> np.ndarray:
    return np.diagonal(G, axis1=-2, axis2=-1)


def _center(G: np.ndarray) -> np.ndarray:
    # C G C = G - row means - column means + grand mean, without forming C.
    return (
        G
        - G.mean(axis=-1, keepdims=True)
        - G.mean(axis=-2, keepdims=True)
        + G.mean(axis=(-2, -1), keepdims=True)
    )


def _cos(G: np.ndarray, ref: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cosine Gram and a mask of rows with non-zero norm; ``ref`` (...,) is the squared-norm scale."""
    d = _diag(G)
    if ref is None:
        ref = np.max(np.abs(d), axis=-1)
    ok = (d > 0) & (d > _REL_TOL * np.asarray(ref)[..., None])
    inv = np.where(ok, 1.0 / np.sqrt(np.where(ok, d, 1.0)), 0.0)
    return G * inv[..., :, None] * inv[..., None, :], ok


def _centred_cos(G: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(Gc, Ĝ, degenerate)``: centred Gram, its cosine Gram, and where Ĝ has no non-zero row."""
    Gc = _center(G)
    # Measure "zero norm" against the uncentred Gram: a centred Gram of identical vectors is pure noise.
    ref = np.max(np.abs(_diag(G)), axis=-1)
    Gh, ok = _cos(Gc, ref)
    return Gc, Gh, ~np.any(ok, axis=-1)


def _nan_where(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask, np.nan, values)


def _etf_distance(Gh: np.ndarray, degenerate: np.ndarray) -> np.ndarray:
    K = Gh.shape[-1]
    norm = np.sqrt(np.sum(Gh * Gh, axis=(-2, -1)))
    target = (np.eye(K) - 1.0 / K) / np.sqrt(K - 1.0)  # C_K / ||C_K||_F
    bad = degenerate | (norm == 0)
    unit = Gh / np.where(bad, 1.0, norm)[..., None, None]
    return _nan_where(np.sqrt(np.sum((unit - target) ** 2, axis=(-2, -1))), bad)


def _effective_rank(G: np.ndarray, Gc: np.ndarray) -> np.ndarray:
    lam = np.clip(np.linalg.eigvalsh(0.5 * (Gc + np.swapaxes(Gc, -1, -2))), 0.0, None)
    total = lam.sum(axis=-1)
    bad = total <= _REL_TOL * np.sum(np.abs(_diag(G)), axis=-1)
    p = lam / np.where(bad, 1.0, total)[..., None]
    entropy = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)
    return _nan_where(np.exp(entropy), bad)


def _attribute_energy(G: np.ndarray, Gc: np.ndarray, P: np.ndarray) -> np.ndarray:
    num = np.einsum("ij,...ij->...", P, Gc)
    den = np.trace(Gc, axis1=-2, axis2=-1)
    bad = den <= _REL_TOL * np.sum(np.abs(_diag(G)), axis=-1)
    return _nan_where(num / np.where(bad, 1.0, den), bad)


def _cka(G: np.ndarray, Gc: np.ndarray, Kc: np.ndarray, Kc_norm: float) -> np.ndarray:
    num = np.einsum("ij,...ij->...", Kc, Gc)
    nG = np.sqrt(np.sum(Gc * Gc, axis=(-2, -1)))
    bad = (nG <= _REL_TOL * np.sqrt(np.sum(G * G, axis=(-2, -1)))) | (Kc_norm == 0)
    return _nan_where(num / np.where(bad, 1.0, nG * (Kc_norm if Kc_norm > 0 else 1.0)), bad)


def _kernel_norm(X: np.ndarray, Kc: np.ndarray) -> float:
    """‖Kc‖_F, or 0 when the centred attribute kernel vanishes (every attribute shared by all contexts)."""
    n = float(np.sqrt(np.sum(Kc * Kc)))
    S = X.T @ X
    return n if n > _REL_TOL * float(np.sqrt(np.sum(S * S))) else 0.0


def _masked_mean(Gh: np.ndarray, mask: np.ndarray) -> np.ndarray:
    n = int(mask.sum())
    if n == 0:
        return np.full(Gh.shape[:-2], np.nan)
    return np.einsum("ij,...ij->...", mask.astype(np.float64), Gh) / n


def _shared_masks(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    S = X.T @ X
    off = ~np.eye(X.shape[1], dtype=bool)
    return (S > 0) & off, (S <= 0) & off


def _projector(X: np.ndarray) -> np.ndarray:
    K = X.shape[1]
    Xc = X - X.mean(axis=1, keepdims=True)
    if Xc.size == 0:
        return np.zeros((K, K))
    _, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    if s.size == 0 or s[0] == 0:
        return np.zeros((K, K))
    # numpy.linalg.matrix_rank's default tolerance.
    r = int(np.sum(s > s[0] * max(Xc.shape) * np.finfo(np.float64).eps))
    V = Vt[:r]
    P = V.T @ V
    return 0.5 * (P + P.T)


# -- geometry -----------------------------------------------------------------------------------------------
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

    ``‖Ĝ/‖Ĝ‖_F - C_K/‖C_K‖_F‖_F`` with ``Ĝ = cosine(centered(G))`` (THEORY.md section 5). It is 0 exactly
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
    factorial design about ``Σ_f (A_f - 1)`` (THEORY.md section 5).

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


# -- semantic structure -------------------------------------------------------------------------------------
def attribute_projector(X: Any) -> np.ndarray:
    """Orthogonal projector onto the span of the centred attribute indicators.

    With ``Xc = X C_K`` (each attribute row centred over contexts), ``P = Xcᵀ (Xc Xcᵀ)⁺ Xc``. For a
    factorial design this is the sum of the main-effect projectors ``Σ_f P_{{f}}`` (THEORY.md section 4),
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

    For a factorial design ``Σ_f (A_f - 1)/(K - 1)`` (THEORY.md section 5): the share of an isotropic
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
    """Fraction of the centred Gram's energy in the attribute subspace [derived, THEORY.md section 5].

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
    """Semantic strength: attribute energy minus its ETF value (THEORY.md section 5).

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
    with ``(XᵀX)_ij = 0`` (THEORY.md section 5). 0 for the simplex ETF; on an A×A grid in the semantic phase
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
    ``s`` that occurs. Semantic phase of an A×A grid [derived, THEORY.md section 5]: ``s = 1`` gives
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


# -- neural collapse [Papyan, Han, Donoho 2020] ----------------------------------------------------------
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
    r = int(np.sum(s > s[0] * max(Mc.shape) * np.finfo(np.float64).eps))
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
    # ‖h - μ_k‖² = ‖h‖² - 2 μ_kᵀh + ‖μ_k‖²; ‖h‖² is common to all k.
    nearest = np.argmin(np.sum(M * M, axis=0)[:, None] - 2.0 * (M.T @ H), axis=0)
    return float(np.mean(pred == nearest))


# -- curves ---------------------------------------------------------------------------------------------
def _crossing(t0: float, t1: float, v0: float, v1: float, level: float) -> float:
    """Time where the segment (t0, v0)-(t1, v1) crosses ``level``, linear in log t (in t when t0 <= 0)."""
    w = float(np.clip((level - v0) / (v1 - v0), 0.0, 1.0)) if v1 != v0 else 0.0
    if t0 > 0:
        return float(np.exp(np.log(t0) + w * (np.log(t1) - np.log(t0))))
    return float(t0 + w * (t1 - t0))


def phase_times(
    ts: Any, strength: Any, etf_dist: Any = None, etf_tol: float = 0.05
) -> dict[str, float | None]:
    """Phase times of a semantic-strength curve (THEORY.md section 5).

    * ``onset``: first time the strength reaches half its peak;
    * ``peak``, ``peak_strength``: time (a saved time, not interpolated) and value of the maximum;
    * ``collapse``: first time after the peak that the strength falls below half the peak;
    * ``etf_time``: first time after which ``etf_dist < etf_tol`` holds up to the end.

    Crossing times are interpolated linearly in ``log t`` between the two saved times that bracket them
    (linearly in ``t`` on a segment starting at ``t <= 0``, e.g. ``ts[0] = 0``). Non-finite strengths (a
    vanishing Gram, e.g. a zero initialisation) are skipped; a non-finite ETF distance counts as "not
    below".

    Args:
        ts: (T,) strictly increasing times.
        strength: (T,) semantic strength (or any curve with a transient bump).
        etf_dist: optional (T,) ETF distance.
        etf_tol: tolerance for ``etf_time`` (> 0).

    Returns:
        Dict with ``onset``, ``peak``, ``peak_strength``, ``collapse``, ``etf_time``. ``onset`` and
        ``collapse`` are ``None`` when the peak is ``<= 0`` (no semantic phase); ``collapse`` is ``None``
        when the curve stays above half the peak; ``etf_time`` is ``None`` without ``etf_dist`` or when
        the distance does not end below ``etf_tol``. Everything is ``None`` (``peak_strength`` ``nan``)
        when no strength is finite.

    Example:
        >>> ts = np.array([0.0, 1.0, 10.0, 100.0, 1000.0])
        >>> out = phase_times(ts, [0.0, 0.0, 1.0, 0.0, 0.0], etf_dist=[1.0, 1.0, 0.5, 0.1, 0.0])
        >>> round(out["onset"], 6), out["peak"], round(out["collapse"], 6)  # sqrt(1 * 10), sqrt(10 * 100)
        (3.162278, 10.0, 31.622777)
        >>> round(out["etf_time"], 6)  # 0.05 is halfway from 0.1 to 0.0: sqrt(100 * 1000)
        316.227766
    """
    ts = _as_array("ts", ts, ndim=1)
    T = ts.shape[0]
    if T < 1 or np.any(np.diff(ts) <= 0):
        raise ValueError("ts must be a non-empty, strictly increasing 1-D array")
    try:
        s_all = np.asarray(strength, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError("strength must be a numeric array") from exc
    if s_all.shape != (T,):
        raise ValueError(f"strength must have shape ({T},) like ts, got {s_all.shape}")
    if not np.isfinite(etf_tol) or etf_tol <= 0:
        raise ValueError(f"etf_tol must be finite and > 0, got {etf_tol}")
    out: dict[str, float | None] = {
        "onset": None,
        "peak": None,
        "peak_strength": float("nan"),
        "collapse": None,
        "etf_time": None,
    }
    if etf_dist is not None:
        try:
            e = np.asarray(etf_dist, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError("etf_dist must be a numeric array") from exc
        if e.shape != (T,):
            raise ValueError(f"etf_dist must have shape ({T},) like ts, got {e.shape}")
        below = np.isfinite(e) & (e < etf_tol)
        if below[-1]:
            above = np.flatnonzero(~below)
            if above.size == 0:
                out["etf_time"] = float(ts[0])
            else:
                k = int(above[-1])
                if np.isfinite(e[k]):
                    out["etf_time"] = _crossing(ts[k], ts[k + 1], e[k], e[k + 1], etf_tol)
                else:
                    out["etf_time"] = float(ts[k + 1])

    keep = np.isfinite(s_all)
    t, s = ts[keep], s_all[keep]
    if t.size == 0:
        return out
    ip = int(np.argmax(s))
    peak = float(s[ip])
    out["peak"], out["peak_strength"] = float(t[ip]), peak
    if peak <= 0:
        return out
    half = 0.5 * peak
    i = int(np.argmax(s >= half))  # exists: s[ip] >= half
    out["onset"] = float(t[0]) if i == 0 else _crossing(t[i - 1], t[i], s[i - 1], s[i], half)
    after = np.flatnonzero(s[ip:] < half)
    if after.size:
        j = ip + int(after[0])
        out["collapse"] = _crossing(t[j - 1], t[j], s[j - 1], s[j], half)
    return out


def _stack_metrics(G: np.ndarray, X: np.ndarray | None) -> dict[str, np.ndarray]:
    """Metric curves for a stack of Grams ``G: (T, K, K)``; the attribute structure is computed once."""
    T, K, _ = G.shape
    with_X = X is not None and X.shape[0] > 0
    names = ["etf_distance", "effective_rank"]
    if with_X:
        names += ["semantic_strength", "attribute_energy", "cka", "shared_gap"]
        assert X is not None
        P = _projector(X)
        etf_energy = float(np.trace(P)) / (K - 1)
        Kc = _center(X.T @ X)
        Kc_norm = _kernel_norm(X, Kc)
        share, none = _shared_masks(X)
    out = {name: np.empty(T) for name in names}
    chunk = max(1, _CHUNK_ELEMENTS // (K * K))
    for a in range(0, T, chunk):
        g = G[a : a + chunk]
        Gc, Gh, deg = _centred_cos(g)
        out["etf_distance"][a : a + chunk] = _etf_distance(Gh, deg)
        out["effective_rank"][a : a + chunk] = _effective_rank(g, Gc)
        if with_X:
            energy = _attribute_energy(g, Gc, P)
            out["attribute_energy"][a : a + chunk] = energy
            out["semantic_strength"][a : a + chunk] = energy - etf_energy
            out["cka"][a : a + chunk] = _cka(g, Gc, Kc, Kc_norm)
            gap = _masked_mean(Gh, share) - _masked_mean(Gh, none)
            out["shared_gap"][a : a + chunk] = _nan_where(gap, deg)
    return out


def gram_metrics(G: Any, X: Any = None) -> dict[str, float]:
    """The standard metrics of one Gram matrix (THEORY.md section 5).

    Args:
        G: (K, K) Gram matrix.
        X: optional (p, K) non-negative attribute code.

    Returns:
        ``etf_distance`` and ``effective_rank``; when ``X`` has ``p > 0`` rows also ``semantic_strength``,
        ``attribute_energy``, ``cka`` and ``shared_gap`` (see the functions of those names;
        ``shared_gap`` is :func:`shared_attribute_gap`). Values are ``nan`` where undefined.

    Example:
        >>> from ufmtheory.designs import factorial
        >>> X = factorial((3, 3)).X
        >>> m = gram_metrics(attribute_projector(X), X)
        >>> round(m["effective_rank"], 6), round(m["semantic_strength"], 6), round(m["shared_gap"], 6)
        (4.0, 0.5, 0.75)
    """
    G = _check_gram(G)
    Xa = None if X is None else _check_X(X, G.shape[0], nonneg=True)
    return {k: float(v[0]) for k, v in _stack_metrics(G[None], Xa).items()}


def _structured_stack_metrics(G: Any, attributes: bool) -> dict[str, np.ndarray]:
    """:func:`_stack_metrics` of Grams ``G_t = Σ_S c[t, S] P_S`` in a scheme's algebra, from the (T, n_S)
    coefficients alone (nothing K×K) [derived; equal to the dense metrics up to rounding]:

    * ``P_∅ = J/K`` (index 0), so ``C G C = Σ_{S≠∅} c_S P_S``; ``‖·‖_F² = Σ m_S c_S²``, trace ``Σ m_S c_S``.
    * every diagonal entry is ``Σ_S c_S m_S/K`` (centred: ``d_c = Σ_{S≠∅} c_S m_S/K``), so the cosine
      normalisation is the scalar ``1/d_c`` and ``Ĝ = Σ_{S≠∅} (c_S/d_c) P_S``.
    * ETF distance: ``C_K/‖C_K‖ = Σ_{S≠∅} P_S/sqrt(K-1)``, so the squared distance is
      ``Σ_{S≠∅} m_S (c_S/sqrt(Σ m c²) - 1/sqrt(K-1))²``.
    * effective rank: the centred Gram has eigenvalue ``c_S`` with multiplicity ``m_S`` (and 0 on ``1``).
    * attribute energy ``Σ_{attr S} m_S c_S / Σ_{S≠∅} m_S c_S`` (attribute projector ``Σ_{attr} P_S``).
    * CKA with ``XᵀX = Σ_S k_S P_S`` (coefficients of the shared-attribute counts per relation).
    * shared gap from the cosine entries per relation ``Ĝ[r] = Σ_{S≠∅} c_S P_S[r]/d_c``, weighted by the
      valencies ``n_r`` of the relations whose pairs share (``s_r > 0``) or share no attribute.
    """
    sch = G.scheme
    c = np.asarray(G.coefficients, dtype=np.float64)
    K = int(sch.K)
    m = np.array(sch.ranks, dtype=np.float64)
    n = np.array(sch.counts, dtype=np.float64)
    table = np.asarray(sch.table, dtype=np.float64)
    cc, mm = c[:, 1:], m[1:]
    diag_abs = np.abs(c @ m) / K  # |diag(G)|, the same for every row
    dc = cc @ mm / K  # diagonal of the centred Gram
    deg = ~((dc > 0) & (dc > _REL_TOL * diag_abs))
    sq = (cc * cc) @ mm  # ‖C G C‖_F²
    nrm = np.sqrt(sq)
    out: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        bad = deg | (nrm == 0)
        u = cc / np.where(bad, 1.0, nrm)[:, None]
        dist = np.sqrt(((u - 1.0 / np.sqrt(K - 1.0)) ** 2) @ mm)
        out["etf_distance"] = _nan_where(dist, bad)
        lam = np.clip(cc, 0.0, None)
        total = lam @ mm
        bad_r = total <= _REL_TOL * K * diag_abs
        pr = lam / np.where(bad_r, 1.0, total)[:, None]
        ent = -(np.where(pr > 0, pr * np.log(np.where(pr > 0, pr, 1.0)), 0.0) @ mm)
        out["effective_rank"] = _nan_where(np.exp(ent), bad_r)
        if not attributes:
            return out
        attr = np.array(sch.attribute_labels(), dtype=np.int64)
        den = cc @ mm
        bad_e = den <= _REL_TOL * K * diag_abs
        energy = _nan_where((c[:, attr] @ m[attr]) / np.where(bad_e, 1.0, den), bad_e)
        out["semantic_strength"] = energy - float(m[attr].sum()) / (K - 1)
        out["attribute_energy"] = energy
        shared = np.asarray(sch.shared_attributes(), dtype=np.float64)  # (n_r,) entries of XᵀX
        k = sch.algebra_coefficients(shared)  # XᵀX = Σ_S k_S P_S
        kc_norm = float(np.sqrt((k[1:] ** 2) @ mm))
        if kc_norm <= _REL_TOL * float(np.sqrt((k**2) @ m)):
            kc_norm = 0.0
        bad_c = (nrm <= _REL_TOL * np.sqrt((c * c) @ m)) | (kc_norm == 0)
        cka_val = (cc @ (mm * k[1:])) / np.where(bad_c, 1.0, nrm * (kc_norm if kc_norm > 0 else 1.0))
        out["cka"] = _nan_where(cka_val, bad_c)
        cos_r = (cc @ table[1:]) / np.where(deg, 1.0, dc)[:, None]  # (T, n_r) centred cosine per relation
        off = np.arange(len(n)) != 0
        means = []
        for sel in (off & (shared > 0), off & (shared <= 0)):
            cnt = float(n[sel].sum())
            means.append(cos_r[:, sel] @ n[sel] / cnt if cnt > 0 else np.full(c.shape[0], np.nan))
        out["shared_gap"] = _nan_where(means[0] - means[1], deg)
    return out


def _structured_design_check(G: Any, design: Any, which: str) -> bool:
    """Whether ``design`` (None, an AssociationScheme, or a Design) asks for attribute metrics on the
    structured Grams ``G``; raises when it does not describe ``G``'s scheme."""
    sch = G.scheme
    if design is None:
        return False
    if hasattr(design, "key") and hasattr(design, "attribute_labels"):  # an AssociationScheme
        if design.key() != sch.key():
            raise ValueError(
                f"the scheme {design.describe()} is not the trajectory's scheme {sch.describe()}"
            )
    else:
        from .reduced import scheme as scheme_of

        try:
            other = scheme_of(design)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"design does not match the structured trajectory's scheme: {exc}") from exc
        if other.key() != sch.key():
            raise ValueError(
                f"design's scheme {other.describe()} is not the trajectory's scheme {sch.describe()}"
            )
        X = np.asarray(design.X if which == "H" else design.label_X, dtype=np.float64)
        # Guard: the scheme's attributes must be the design's own (X is built canonically by the
        # constructors; a hand-made Design with another code would get other metrics densely).
        if not np.array_equal(X.T @ X, sch.shared_attributes()[sch.relation_matrix()]):
            raise ValueError("design.X is not the attribute code of its factorial/hierarchical scheme")
        if X.shape[0] == 0:
            return False
    return len(sch.attribute_labels()) > 0


def trajectory_metrics(traj: Any, design: Any = None, which: str = "H") -> dict[str, np.ndarray]:
    """:func:`gram_metrics` along a :class:`~ufmtheory.trajectory.Trajectory`.

    Args:
        traj: a Trajectory (anything with ``ts``, ``gram_H: (T, m, m)`` and ``gram_W: (T, V, V)``).
        design: optional :class:`~ufmtheory.designs.Design` supplying the attribute code; without it (or
            with ``p = 0``) only ``etf_distance`` and ``effective_rank`` are computed. For structured Grams
            (:class:`~ufmtheory.trajectory.StructuredGrams`) the scheme itself (``traj.scheme``) may be
            given instead: its attributes are those of the factorial/hierarchical design it comes from.
        which: ``"H"``: context Grams with ``design.X``; ``"W"``: label Grams restricted to
            ``design.used_labels`` (rows and columns) with ``design.label_X[:, used]`` (without a design,
            the whole label Gram).

    Returns:
        ``{"ts": (T,), name: (T,) ...}`` with the names of :func:`gram_metrics`. Structured Grams are never
        materialised: the metrics come from their coefficients in O(T n_S n_r)
        (:func:`_structured_stack_metrics`).

    Raises:
        ValueError: if ``which`` is not ``"H"`` or ``"W"``, or the design does not match the Grams.
    """
    if which not in ("H", "W"):
        raise ValueError(f"which must be 'H' or 'W', got {which!r}")
    ts = _as_array("traj.ts", traj.ts, ndim=1)
    raw = traj.gram_H if which == "H" else traj.gram_W
    if hasattr(raw, "coefficients") and hasattr(raw, "scheme"):  # StructuredGrams: the fast path
        if len(raw) != ts.shape[0]:
            raise ValueError(
                f"traj.gram_{which} must have T = {ts.shape[0]} Grams like traj.ts, got {len(raw)}"
            )
        if raw.K < 2:
            raise ValueError(f"traj.gram_{which} must have K >= 2, got K = {raw.K}")
        with_X = _structured_design_check(raw, design, which)
        out_s: dict[str, np.ndarray] = {"ts": ts.copy()}
        out_s.update(_structured_stack_metrics(raw, with_X))
        return out_s
    G = _check_gram_stack(raw, f"traj.gram_{which}")
    if G.shape[0] != ts.shape[0]:
        raise ValueError(
            f"traj.gram_{which} must have T = {ts.shape[0]} Grams like traj.ts, got {G.shape[0]}"
        )
    X = None
    if design is not None:
        if which == "H":
            X = np.asarray(design.X, dtype=np.float64)
        else:
            used = np.asarray(design.used_labels)
            if int(design.V) != G.shape[1]:
                raise ValueError(f"design has V = {design.V} labels but traj.gram_W is {G.shape[1:]}")
            G = _check_gram_stack(G[:, used][:, :, used], "traj.gram_W[used labels]")
            X = np.asarray(design.label_X, dtype=np.float64)[:, used]
        X = _check_X(X, G.shape[1], name="design.X" if which == "H" else "design.label_X", nonneg=True)
    out: dict[str, np.ndarray] = {"ts": ts.copy()}
    out.update(_stack_metrics(G, X))
    return out
