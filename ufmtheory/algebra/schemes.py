"""Association schemes of one-hot factorial and hierarchical designs: the projectors ``P_S`` spanning the
Bose-Mesner algebra, their relation classes and exact (``Fraction``) tables (docs: Theory §6)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from ufmtheory.designs import Design

__all__ = [
    "AssociationScheme",
    "scheme",
    "factorial_scheme",
    "hierarchical_scheme",
    "scheme_from_description",
]


@dataclass(frozen=True, eq=False)
class AssociationScheme:
    """A symmetric association scheme on K contexts in normal form (relation 0 is the identity).

    Attributes:
        kind: ``"factorial"`` or ``"hierarchical"``.
        params: ``{"sizes": (A_1, ..)}`` or ``{"depth": D, "branching": b}``.
        K: number of contexts (= labels).
        labels: (n_S,) projector labels: tuples of factors ``S`` (factorial) or levels ``l`` (hierarchy).
        ranks: (n_S,) ranks ``m_S``.
        relations: (n_r,) relation labels: tuples of differing factors, or LCA heights.
        counts: (n_r,) valencies ``n_r`` (number of i in relation r to a fixed j).
        exact_table: (n_S, n_r) entries ``P_S[r]`` as ``Fraction``.

    Example:
        >>> s = factorial_scheme((2, 3))
        >>> s.labels, s.ranks, s.counts
        (((), (0,), (1,), (0, 1)), (1, 1, 2, 2), (1, 1, 2, 2))
    """

    kind: str
    params: dict[str, Any]
    K: int
    labels: tuple[Any, ...]
    ranks: tuple[int, ...]
    relations: tuple[Any, ...]
    counts: tuple[int, ...]
    exact_table: tuple[tuple[Fraction, ...], ...]
    _table: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        table = np.array([[float(x) for x in row] for row in self.exact_table])
        table.setflags(write=False)
        object.__setattr__(self, "_table", table)
        if sum(self.ranks) != self.K or sum(self.counts) != self.K:
            raise ValueError(f"ranks and counts must each sum to K = {self.K}")

    @property
    def table(self) -> np.ndarray:
        """(n_S, n_r) float entries ``P_S[r]``."""
        return self._table

    @property
    def n_S(self) -> int:
        return len(self.labels)

    @property
    def n_r(self) -> int:
        return len(self.counts)

    def index(self, label: Any) -> int:
        """Position of a projector label (factorial labels may be given as any iterable of factors)."""
        if self.kind == "factorial" and not isinstance(label, int):
            label = tuple(sorted(label))
        try:
            return self.labels.index(label)
        except ValueError:
            raise KeyError(f"{label!r} is not a projector label of this scheme {self.labels}") from None

    def relation_matrix(self) -> np.ndarray:
        """(K, K) integer relation index of every pair of contexts (materialises K² entries)."""
        if self.kind == "factorial":
            sizes = self.params["sizes"]
            digits = np.unravel_index(np.arange(self.K), sizes)
            rel = np.zeros((self.K, self.K), dtype=np.int64)
            for f, a in enumerate(digits):
                rel |= (a[:, None] != a[None, :]).astype(np.int64) << f
            return rel
        b = self.params["branching"]
        idx = np.arange(self.K)
        rel = np.zeros((self.K, self.K), dtype=np.int64)
        for c in range(1, self.params["depth"] + 1):
            block_prev = idx // b ** (c - 1)
            rel += (block_prev[:, None] != block_prev[None, :]).astype(np.int64)
        return rel

    def materialise(self, coeffs: np.ndarray, rel: np.ndarray | None = None) -> np.ndarray:
        """``Σ_S c_S P_S: (K, K)`` from coefficients ``(n_S,)`` (or a stack ``(T, K, K)`` from ``(T, n_S)``).

        ``rel`` is an optional precomputed :meth:`relation_matrix`."""
        rel = self.relation_matrix() if rel is None else rel
        entries = np.asarray(coeffs, dtype=np.float64) @ self.table  # (..., n_r) entries per relation
        return entries[..., rel]

    def projector(self, label: Any) -> np.ndarray:
        """The (K, K) projector ``P_S`` (materialised on request)."""
        return self.table[self.index(label)][self.relation_matrix()]

    def coefficients(self, G: np.ndarray) -> np.ndarray:
        """``c_S = tr(G P_S)/m_S: (n_S,)`` of a (K, K) matrix (exact when G lies in the algebra)."""
        rel = self.relation_matrix()
        sums = np.bincount(rel.ravel(), weights=np.asarray(G, dtype=np.float64).ravel(), minlength=self.n_r)
        return (self.table @ sums) / np.array(self.ranks, dtype=np.float64)

    def kernel_eigenvalues(self, alpha: float, beta: float) -> np.ndarray:
        """Eigenvalues ``κ_S`` of ``K_x = α² XᵀX + β² I`` on each ``P_S`` (X: the design's attribute code).

        Factorial: ``κ_∅ = α² Σ_f K/A_f + β²``, main effect ``{f}``: ``α² K/A_f + β²``, interactions ``β²``.
        Hierarchy: ``κ_k = α² Σ_{l=max(k,1)}^{D-1} b^{D-l} + β²``.
        """
        a2, b2 = float(alpha) ** 2, float(beta) ** 2
        if self.kind == "factorial":
            sizes = self.params["sizes"]
            out = []
            for S in self.labels:
                if len(S) == 0:
                    out.append(a2 * sum(self.K / A for A in sizes) + b2)
                elif len(S) == 1:
                    out.append(a2 * self.K / sizes[S[0]] + b2)
                else:
                    out.append(b2)
            return np.array(out)
        D, b = self.params["depth"], self.params["branching"]
        return np.array([a2 * sum(b ** (D - l) for l in range(max(k, 1), D)) + b2 for k in self.labels])

    def key(self) -> tuple[Any, ...]:
        """Hashable key of the scheme's shape and entries."""
        return (self.counts, self.exact_table, self.ranks)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly description, rebuilt by :func:`scheme_from_description`."""
        if self.kind == "factorial":
            return {"kind": "factorial", "sizes": list(self.params["sizes"])}
        return {"kind": "hierarchical", "depth": self.params["depth"], "branching": self.params["branching"]}

    @property
    def attribute_mask(self) -> np.ndarray:
        """(n_S,) True on the modes spanning the design's centred attribute subspace.

        Factorial: the main effects ``{f}`` (the attribute code has one indicator per factor value).
        Hierarchy: levels ``1..D-1`` (attributes are the internal nodes below the root); none when D = 1.
        Their sum is :func:`ufmtheory.metrics.attribute_projector` of the design's ``X``.
        """
        if self.kind == "factorial":
            return np.array([len(S) == 1 for S in self.labels])
        D = self.params["depth"]
        return np.array([1 <= lvl <= D - 1 for lvl in self.labels])

    @property
    def free_mask(self) -> np.ndarray:
        """(n_S,) True on the per-context-only ("free") modes, whose kernel eigenvalue is ``β²`` for every α:
        factorial interactions (``|S| >= 2``) and the leaf level of a hierarchy. The trivial mode (``∅`` /
        level 0) is in neither mask.

        Example:
            >>> factorial_scheme((2, 2, 2)).free_mask.astype(int).tolist()
            [0, 0, 0, 1, 0, 1, 1, 1]
        """
        if self.kind == "factorial":
            return np.array([len(S) >= 2 for S in self.labels])
        return np.array([lvl == self.params["depth"] for lvl in self.labels])

    def attribute_labels(self) -> tuple[int, ...]:
        """Indices of the modes of :attr:`attribute_mask` (the projectors spanning the attribute subspace)."""
        return tuple(int(i) for i in np.flatnonzero(self.attribute_mask))

    def shared_attributes(self) -> np.ndarray:
        """(n_r,) number of attributes shared by two contexts in relation ``r``: the design's ``XᵀX``.

        Factorial: ``F - |D|`` (D: the factors where they differ). Hierarchy: ancestors at levels
        ``1..D-1`` in common, ``max(0, min(D - 1, D - c))`` for LCA height c.
        """
        if self.kind == "factorial":
            F = len(self.params["sizes"])
            return np.array([F - len(Dset) for Dset in self.relations], dtype=np.float64)
        D = self.params["depth"]
        return np.array([max(0, min(D - 1, D - c)) for c in self.relations], dtype=np.float64)

    def algebra_coefficients(self, entries: np.ndarray) -> np.ndarray:
        """``c_S: (..., n_S)`` of the algebra element whose value at relation ``r`` is ``entries[..., r]``.

        ``c_S = tr(G P_S)/m_S = (K/m_S) Σ_r n_r G[r] P_S[r]`` (the inverse of ``coeffs @ table``)."""
        weights = np.array(self.counts, dtype=np.float64)[:, None] * self.table.T  # (n_r, n_S)
        return (np.asarray(entries, dtype=np.float64) @ weights) * (
            self.K / np.array(self.ranks, dtype=np.float64)
        )


MAX_FACTORS = 10  # 2^F projectors and a 4^F-entry exact eigenvalue table
MAX_DEPTH = 64


def factorial_scheme(sizes: Sequence[int]) -> AssociationScheme:
    """Hamming (product) scheme of a factorial design with factor sizes ``A_1..A_F`` (Kronecker order,
    last factor fastest, as :func:`ufmtheory.designs.factorial`). Projectors and relations are indexed by
    bitmask: bit f set when factor f is in S (resp. the contexts differ in factor f)."""
    if isinstance(sizes, str | bytes) or not isinstance(sizes, Sequence | np.ndarray):
        raise TypeError(f"sizes must be a sequence of integers, got {type(sizes).__name__}")
    if any(isinstance(a, bool) or not isinstance(a, int | np.integer) for a in sizes):
        raise TypeError(f"sizes must contain integers, got {tuple(sizes)!r}")
    sizes = tuple(int(a) for a in sizes)
    if not sizes or any(a < 2 for a in sizes):
        raise ValueError(f"sizes must be a non-empty sequence of integers >= 2, got {sizes}")
    F = len(sizes)
    if F > MAX_FACTORS:
        # the eigenvalue table has 4^F exact entries: F = 30 would never finish
        raise ValueError(
            f"sizes has {F} factors; the exact scheme supports at most MAX_FACTORS = {MAX_FACTORS}"
        )
    subsets = [tuple(f for f in range(F) if mask >> f & 1) for mask in range(2**F)]
    ranks = tuple(math.prod(sizes[f] - 1 for f in S) for S in subsets)
    table = []
    for S in subsets:
        row = []
        for D in subsets:
            val = Fraction(1)
            for f, A in enumerate(sizes):
                if f in S:
                    val *= Fraction(-1, A) if f in D else Fraction(A - 1, A)
                else:
                    val *= Fraction(1, A)
            row.append(val)
        table.append(tuple(row))
    return AssociationScheme(
        kind="factorial",
        params={"sizes": sizes},
        K=math.prod(sizes),
        labels=tuple(subsets),
        ranks=ranks,
        relations=tuple(subsets),
        counts=ranks,  # n_D = Π_{f∈D}(A_f - 1) = m_D
        exact_table=tuple(table),
    )


def hierarchical_scheme(depth: int, branching: int) -> AssociationScheme:
    """Scheme of the leaves of a complete tree (depth D, branching b, K = b^D).

    Projector labels are levels ``l = 0..D`` (``P_0 = J/K``, ``P_l = Q_l - Q_{l-1}``, rank
    ``b^l - b^{l-1}``); relation ``c = 0..D`` is the height of the lowest common ancestor above the leaves
    (``n_0 = 1``, ``n_c = b^c - b^{c-1}``)."""
    for name, value in (("depth", depth), ("branching", branching)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"{name} must be an integer, got {value!r}")
    D, b = int(depth), int(branching)
    if D > MAX_DEPTH:
        raise ValueError(f"depth = {D} exceeds MAX_DEPTH = {MAX_DEPTH}")
    if D < 1 or b < 2:
        raise ValueError(f"need depth >= 1 and branching >= 2, got depth={depth}, branching={branching}")

    def q_entry(level: int, c: int) -> Fraction:
        # Q_l averages over blocks of b^{D-l} leaves; a pair at LCA height c shares a block iff c <= D - l.
        return Fraction(1, b ** (D - level)) if c <= D - level else Fraction(0)

    table = []
    for k in range(D + 1):
        row = tuple(q_entry(k, c) - (q_entry(k - 1, c) if k > 0 else 0) for c in range(D + 1))
        table.append(row)
    ranks = tuple(1 if k == 0 else b**k - b ** (k - 1) for k in range(D + 1))
    return AssociationScheme(
        kind="hierarchical",
        params={"depth": D, "branching": b},
        K=b**D,
        labels=tuple(range(D + 1)),
        ranks=ranks,
        relations=tuple(range(D + 1)),
        counts=ranks,  # n_c = b^c - b^{c-1}: same numbers as the ranks
        exact_table=tuple(table),
    )


def scheme(design: Design) -> AssociationScheme:
    """The association scheme of a one-hot factorial or hierarchical design.

    Raises:
        ValueError: for other design kinds, or when labels are not ``Y = I`` with uniform weights.
    """
    if not isinstance(design, Design):
        raise TypeError(f"design must be a ufmtheory Design, got {type(design).__name__}")
    if design.kind not in ("factorial", "hierarchical"):
        raise ValueError(
            f"exact reduction needs a factorial or hierarchical design, got kind={design.kind!r}"
        )
    if not design.has_identity_labels or not design.has_uniform_weights:
        raise ValueError(
            "exact reduction needs one-hot labels Y = I (each context its own token) and uniform pi"
        )
    if design.kind == "factorial":
        if design.factor_sizes is None:
            raise ValueError("factorial design has no factor_sizes")
        return factorial_scheme(design.factor_sizes)
    return hierarchical_scheme(design.params["depth"], design.params["branching"])


def scheme_from_description(desc: Mapping[str, Any]) -> AssociationScheme:
    """Rebuild a scheme from :meth:`AssociationScheme.describe` (e.g. when loading a saved Trajectory)."""
    if not isinstance(desc, Mapping):
        raise TypeError(f"scheme description must be a mapping, got {type(desc).__name__}")
    kind = desc.get("kind")
    try:
        if kind == "factorial":
            return factorial_scheme(desc["sizes"])
        if kind == "hierarchical":
            return hierarchical_scheme(desc["depth"], desc["branching"])
    except KeyError as exc:
        raise ValueError(f"scheme description {dict(desc)!r} lacks {exc}") from None
    raise ValueError(
        f"unknown scheme description {dict(desc)!r} (kind must be 'factorial' or 'hierarchical')"
    )
