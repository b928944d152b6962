"""Validation and vectorised kernels shared by the metrics (stacks of Grams ``(..., K, K)``).

Degenerate inputs: a centred Gram below ``_REL_TOL`` relative to the uncentred one has no direction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Relative size below which a (centred) Gram, a squared norm or a norm counts as zero: centring a Gram of
# identical vectors leaves rounding noise of order K·eps relative to the Gram itself, far below this.
_REL_TOL = 1e-10


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


# A Gram is symmetric with a non-negative diagonal; products such as H.T @ H are symmetric to rounding
# (~1e-16 relative in float64, ~1e-7 for Grams a float32 model computed), so beyond 1e-6 it is not a Gram.
_SYM_TOL = 1e-6


def _check_gram_values(G: np.ndarray, name: str) -> None:
    scale = np.max(np.abs(G), axis=(-2, -1), keepdims=True)
    asym = np.abs(G - np.swapaxes(G, -1, -2))
    if np.any(asym > _SYM_TOL * scale):
        worst = float(np.max(asym / np.where(scale > 0, scale, 1.0)))
        raise ValueError(f"{name} must be a symmetric Gram matrix (relative asymmetry {worst:.3g})")
    if np.any(_diag(G) < -_SYM_TOL * scale[..., 0]):
        raise ValueError(f"{name} must be a Gram matrix: its diagonal (squared norms) has negative entries")


def _check_gram(G: Any, name: str = "G", min_K: int = 2) -> np.ndarray:
    G = _as_array(name, G, ndim=2)
    if G.shape[0] != G.shape[1]:
        raise ValueError(f"{name} must be a square (K, K) Gram matrix, got shape {G.shape}")
    if G.shape[0] < min_K:
        raise ValueError(f"{name} must be at least {min_K}x{min_K}, got shape {G.shape}")
    _check_gram_values(G, name)
    return G


def _check_gram_stack(G: Any, name: str) -> np.ndarray:
    G = _as_array(name, G, ndim=3)
    if G.shape[1] != G.shape[2] or G.shape[1] < 2:
        raise ValueError(f"{name} must have shape (T, K, K) with K >= 2, got {G.shape}")
    _check_gram_values(G, name)
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
