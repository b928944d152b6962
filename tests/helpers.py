"""Builders shared by several test files (import with ``from helpers import ...``; pytest puts ``tests/``
on the path through ``conftest.py``).

Everything here is written from definitions (Kronecker products, label distributions), never from the
code under test, so tests may use it to compute expected values.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce

import numpy as np
from hypothesis import settings

import ufmtheory as ut

# Small designs by name; each test file picks the ones it needs (`{k: DESIGNS[k] for k in (...)}`).
DESIGNS: dict[str, Callable[[], ut.Design]] = {
    "fact2x3": lambda: ut.designs.factorial((2, 3)),
    "fact3x3": lambda: ut.designs.factorial((3, 3)),
    "fact3x4": lambda: ut.designs.factorial((3, 4)),
    "fact2x2x2": lambda: ut.designs.factorial((2, 2, 2)),
    "fact2x2x3": lambda: ut.designs.factorial((2, 2, 3)),
    "hier2x3": lambda: ut.designs.hierarchical(2, 3),
    "hier3x2": lambda: ut.designs.hierarchical(3, 2),
    "hier1x4": lambda: ut.designs.hierarchical(1, 4),  # no attributes: only ETF distance / effective rank
    "random": lambda: ut.designs.random_attributes(7, 5, 2, seed=3),
}


def designs(*names: str) -> dict[str, Callable[[], ut.Design]]:
    """The named subset of :data:`DESIGNS`, in the given order (for ``parametrize``)."""
    return {name: DESIGNS[name] for name in names}


def budget(n: int) -> int:
    """Hypothesis ``max_examples`` for a test written with budget ``n``: ``n`` under the ``ci`` and ``dev``
    profiles, 20·n under ``many`` (the profile's ``max_examples`` over the base of 100, see conftest)."""
    return max(1, n * settings.default.max_examples // 100)


def kron_projector(sizes: tuple[int, ...], S: tuple[int, ...]) -> np.ndarray:
    """Projector of a factorial design onto the effect of the factor set ``S``, shape (K, K), K = prod(sizes):
    ``⊗_f (I - J/A_f if f ∈ S else J/A_f)`` with contexts in lexicographic order."""
    blocks = [np.eye(a) - 1.0 / a if f in S else np.full((a, a), 1.0 / a) for f, a in enumerate(sizes)]
    return reduce(np.kron, blocks)


def soft_distributions(rng: np.random.Generator, m: int, V: int, keep: float, boost: float) -> np.ndarray:
    """Random label distributions, shape (m, V): uniform weights with each entry kept with probability
    ``keep`` (so many exact zeros), ``boost`` added at one random token per row (no empty row), rows
    normalised."""
    P = rng.random((m, V)) * (rng.random((m, V)) < keep)
    P[np.arange(m), rng.integers(0, V, m)] += boost
    return P / P.sum(axis=1, keepdims=True)


def soft_design(m: int, V: int, seed: int, p: int = 3) -> ut.Design:
    """Random soft-label design: ``m`` contexts over ``V`` tokens (:func:`soft_distributions` with 30% zeros),
    random context weights and ``p`` random binary attributes."""
    rng = np.random.default_rng(seed)
    P = soft_distributions(rng, m, V, keep=0.7, boost=0.2)
    pi = rng.random(m) + 0.1
    X = (rng.random((p, m)) < 0.5).astype(float)
    return ut.designs.from_distributions(P, X=X, pi=pi / pi.sum())
