"""Initialisers for UFM problems.

* :func:`small`: i.i.d. Gaussian entries of standard deviation ``scale`` (the "small random init" of the
  theory: every mode starts near the origin, with no alignment).
* :func:`aligned`: balanced (``WᵀW = HHᵀ``, or ``WᵀW = EEᵀ`` for the modified UFM) and aligned with the SVD
  of the centred label matrix, as the exact ETF-mode and reduced dynamics assume (docs: Theory §4.3, §6).
  Its ``scale`` is the size of the starting label Gram ``W Wᵀ``, the same ``scale`` as
  :func:`ufmtheory.reduced_solve`'s: both start from the same Grams.

Both return a dict of parameter blocks keyed like ``problem.param_shapes``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ufmtheory import _validate
from ufmtheory.designs import Design
from ufmtheory.models import Problem

__all__ = ["small", "normal", "aligned", "centred_labels", "MAX_SCALE"]

MAX_SCALE = 1e100
"""Largest accepted init scale: beyond it the starting Grams (scale² · d entries for ``small``) overflow and
the softmax is saturated from the first step, so no flow of interest starts there."""


def _check_scale(scale: Any) -> float:
    scale = _validate.real("scale", scale, low=0.0, high=MAX_SCALE)
    if scale == 0:
        raise ValueError("scale must be > 0 (the origin is a critical point: gradient flow never leaves it)")
    return scale


def small(
    problem: Problem, scale: float = 1e-3, seed: int | np.random.Generator = 0
) -> dict[str, np.ndarray]:
    """Small random initialisation: every entry of every block ~ N(0, scale²).

    Args:
        problem: a problem with ``param_shapes`` (e.g. :class:`ufmtheory.UFM`).
        scale: standard deviation of the entries (> 0).
        seed: integer seed or ``numpy.random.Generator``; same seed, same numbers.

    Returns:
        ``{name: array}`` with the shapes of ``problem.param_shapes``.

    Example:
        >>> import ufmtheory as ut
        >>> prob = ut.UFM(ut.designs.factorial((2, 2)), dim=3)
        >>> {k: v.shape for k, v in ut.init.small(prob, 0.1, seed=0).items()}
        {'W': (4, 3), 'H': (3, 4)}
    """
    scale = _check_scale(scale)
    rng = np.random.default_rng(seed)
    return {name: scale * rng.standard_normal(shape) for name, shape in problem.param_shapes.items()}


def _check_std(name: str, value: Any) -> float:
    value = _validate.nonnegative(name, value)
    if value == 0:
        raise ValueError(f"{name} must be > 0 (the origin is a critical point)")
    return value


def normal(
    problem: Problem, std: float | dict[str, float] = 0.02, seed: int | np.random.Generator = 0
) -> dict[str, np.ndarray]:
    """The baseline GPT's initialisation: every entry ~ N(0, std²), default ``std = 0.02``.

    The GPT draws its token embeddings and unembedding from N(0, 0.02²); a context's residual stream is the
    sum of its tokens' embeddings, which is ``E X̃`` of the modified UFM with ``E`` drawn the same way. So
    ``normal(ModifiedUFM(...), 0.02)`` starts the theory where the trained model starts (for
    :func:`ufmtheory.optimize` on the model's own clock).

    Args:
        problem: a problem with ``param_shapes``.
        std: standard deviation (> 0), or ``{block: std}`` for every block (e.g. ``{"W": 0.02, "E": 0.02}``).
        seed: integer seed or ``numpy.random.Generator``.

    Returns:
        ``{name: array}`` with the shapes of ``problem.param_shapes``.

    Example:
        >>> import ufmtheory as ut
        >>> prob = ut.ModifiedUFM(ut.designs.factorial((2, 2)), dim=64)
        >>> p = ut.init.normal(prob, 0.02, seed=0)
        >>> {k: v.shape for k, v in p.items()}, round(float(p["E"].std()), 2)
        ({'W': (4, 64), 'E': (64, 8)}, 0.02)
    """
    shapes = problem.param_shapes
    if isinstance(std, dict):
        if set(std) != set(shapes):
            raise ValueError(f"std as a dict must have exactly the blocks {list(shapes)}, got {list(std)}")
        stds = {k: _check_std(f"std[{k!r}]", v) for k, v in std.items()}
    else:
        s = _check_std("std", std)
        stds = {k: s for k in shapes}
    rng = np.random.default_rng(seed)
    return {name: stds[name] * rng.standard_normal(shape) for name, shape in shapes.items()}


def centred_labels(design: Design) -> np.ndarray:
    """``(Y - 11ᵀ/V) diag(π): (V, m)``: the label matrix the linearised dynamics grow along.

    Near the origin ``softmax(WH) ≈ 1/V``, so the gradient is ``G ≈ -(Y - 11ᵀ/V) diag(π)`` and logit modes
    grow along the singular vectors of this matrix (fastest for the largest singular values).
    """
    return (design.Y - 1.0 / design.V) * design.pi


def aligned(problem: Problem, scale: float = 1e-6) -> dict[str, np.ndarray]:
    """Balanced initialisation aligned with the SVD of the centred labels; ``scale`` sizes the Grams.

    With ``centred_labels(design) = U S Vᵀ`` (rank r), ``D = (S/s_max)^{1/2}`` and ``R`` the first r
    coordinate axes of ``R^d``, the standard UFM starts at::

        W = sqrt(scale) U D Rᵀ,   H = sqrt(scale) R D Vᵀ

    so ``WᵀW = HHᵀ`` (balanced), ``W Wᵀ = scale · U D² Uᵀ`` and the logits are ``scale · U D² Vᵀ``. For a
    balanced one-hot design with K classes and one context per class this is ``L = W H = scale · C_K`` and
    ``W Wᵀ = HᵀH = scale · C_K``: the exact ETF mode (docs: Theory §4.3), ``u(0) = scale``.

    For a :class:`ufmtheory.ModifiedUFM` (blocks ``W`` and ``E``) the raw features carry the attribute
    kernel ``K_x = X̃ᵀX̃``: ``H = E X̃ = sqrt(scale) R D Vᵀ K_x^{1/2}`` with the minimum-norm
    ``E = H K_x^{-1} X̃ᵀ``, which makes the start balanced for the modified flow (``WᵀW = EEᵀ``, a conserved
    quantity without ridge). On a one-hot factorial or hierarchical design the Grams are then exactly
    those of :func:`ufmtheory.reduced_solve` at the same ``scale``: ``W Wᵀ = Σ_S scale P_S``,
    ``HᵀH = Σ_S κ_S scale P_S`` (``S ≠ ∅``), and every column of H has the same norm (so with
    ``normalize=r`` the normalised features stay aligned).

    Args:
        problem: a problem with blocks ``(W, H)`` or ``(W, E)``.
        scale: size of the starting label Gram (> 0); default 1e-6.

    Raises:
        ValueError: if ``problem.dim`` is smaller than the rank of the centred labels, ``K_x`` is singular,
            or the problem normalises its features (``normalize=r``) and a context's aligned feature is zero
            (its centred label column is zero and the attributes do not move it off zero).

    Example:
        >>> import numpy as np, ufmtheory as ut
        >>> prob = ut.UFM(ut.designs.factorial((3,)), dim=3)
        >>> p = ut.init.aligned(prob, scale=0.5)
        >>> C = np.eye(3) - 1/3
        >>> bool(np.allclose(p["H"].T @ p["H"], 0.5 * C) and np.allclose(p["W"] @ p["H"], 0.5 * C))
        True
    """
    scale = _check_scale(scale)
    blocks = set(problem.param_shapes)
    if blocks not in ({"W", "H"}, {"W", "E"}):
        raise TypeError(f"aligned() needs blocks (W, H) or (W, E), got {list(problem.param_shapes)}")
    # Blocks (W, E) are the modified UFM's, or a user model's that carries the same attribute matrix: read by
    # name (the Problem protocol does not have it).
    X_tilde: Any = getattr(problem, "X_tilde", None)
    if blocks == {"W", "E"} and X_tilde is None:
        raise TypeError(
            "aligned() with blocks (W, E) needs the problem's attribute matrix X_tilde (ModifiedUFM)"
        )
    design = problem.design
    U, S, Vt = np.linalg.svd(centred_labels(design), full_matrices=False)
    rank = int(np.sum(S > S[0] * 1e-10)) if S.size and S[0] > 0 else 0
    if rank == 0:
        raise ValueError("the centred label matrix is zero: every context has the uniform distribution")
    if problem.dim < rank:
        raise ValueError(
            f"dim must be >= rank of the centred labels ({rank}) for an aligned init, got dim={problem.dim}"
        )
    root = np.sqrt(scale * S[:rank] / S[0])
    W = np.zeros((design.V, problem.dim))
    H = np.zeros((problem.dim, design.m))
    W[:, :rank] = U[:, :rank] * root
    if blocks == {"W", "H"}:
        H[:rank, :] = root[:, None] * Vt[:rank]
        return {"W": W, "H": H}
    # (p + m, m); K_x = X̃ᵀX̃ is positive definite when beta > 0.
    evals, Q = np.linalg.eigh(X_tilde.T @ X_tilde)
    if evals[0] <= 1e-12 * evals[-1]:
        raise ValueError("aligned() needs an invertible attribute kernel K_x (beta > 0)")
    sqrt_K = (Q * np.sqrt(evals)) @ Q.T
    inv_sqrt_K = (Q / np.sqrt(evals)) @ Q.T
    H[:rank, :] = (root[:, None] * Vt[:rank]) @ sqrt_K  # E X̃ = H
    radius = getattr(problem, "normalize", None)
    if radius is not None:
        # Column normalisation needs every raw feature to be nonzero; a context whose label distribution is
        # the mean of the others' (its centred label column is 0, e.g. uniform next tokens when alpha = 0)
        # gets the zero feature here, and normalising it would give NaN loss and gradient.
        norms = np.linalg.norm(H, axis=0)
        if norms.min() <= 1e-10 * norms.max():
            raise ValueError(
                f"aligned() gives context {int(norms.argmin())} a zero feature, which normalize="
                f"{radius!r} cannot project onto the sphere: use a small random init"
            )
    E = ((root[:, None] * Vt[:rank]) @ inv_sqrt_K) @ X_tilde.T  # H K_x^{-1} X̃ᵀ
    E_full = np.zeros((problem.dim, X_tilde.shape[0]))
    E_full[:rank] = E
    return {"W": W, "E": E_full}
