"""Co-occurrence designs: contexts with latent factors, next-token distributions, weights.

A :class:`Design` is the data a UFM sees (THEORY.md section 2): ``m`` contexts with weights ``pi``,
next-token distributions ``Y`` (one column per context, each summing to 1) and a binary latent factor code
``X`` saying which attribute values each context carries. Labels are usually one-hot (every context its own
next token) so the factors live in the *inputs* only: that is the regime where Neural Collapse predicts a
structure-blind simplex ETF.

Example:
    >>> import ufmtheory as ut
    >>> d = ut.designs.factorial((2, 3))
    >>> d.m, d.V, d.p
    (6, 6, 5)
    >>> d.context_names[:2]
    ('a0b0', 'a0b1')
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Design",
    "factorial",
    "hierarchical",
    "random_attributes",
    "from_distributions",
    "from_counts",
]

_COLUMN_SUM_TOL = 1e-8


def _as_float_matrix(name: str, value: Any, ndim: int = 2) -> np.ndarray:
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array, got {type(value).__name__}") from exc
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain only finite values (found NaN or inf)")
    return arr


@dataclass(frozen=True, eq=False)
class Design:
    """A co-occurrence design (THEORY.md section 2).

    Attributes:
        Y: (V, m) next-token distributions; column j is the label distribution of context j and sums to 1.
        X: (p, m) binary latent factor code; ``X[a, j] = 1`` when context j carries attribute a.
        pi: (m,) context weights, positive, summing to 1 (uniform by default).
        groups: (p,) factor index of each attribute row of ``X`` (attributes of one factor are mutually
            exclusive in factorial designs; in hierarchical designs the group is the tree level).
        factor_sizes: number of values of each factor (factorial), or ``None``.
        kind: which constructor made the design (``"factorial"``, ``"hierarchical"``, ...).
        context_names, label_names, attribute_names: readable names for contexts, tokens, attributes.
        params: constructor arguments (for reports and for reduced solvers that exploit the structure).
    """

    Y: np.ndarray
    X: np.ndarray
    pi: np.ndarray | None = None
    groups: tuple[int, ...] | None = None
    factor_sizes: tuple[int, ...] | None = None
    kind: str = "custom"
    context_names: tuple[str, ...] | None = None
    label_names: tuple[str, ...] | None = None
    attribute_names: tuple[str, ...] | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        Y = _as_float_matrix("Y", self.Y)
        V, m = Y.shape
        if V < 2 or m < 1:
            raise ValueError(
                f"Y must have at least 2 rows (tokens) and 1 column (context), got shape {Y.shape}"
            )
        if np.any(Y < 0):
            raise ValueError("Y must be non-negative (columns are next-token distributions)")
        col_sums = Y.sum(axis=0)
        bad = np.flatnonzero(np.abs(col_sums - 1.0) > _COLUMN_SUM_TOL)
        if bad.size:
            raise ValueError(
                f"Y columns must sum to 1; column {int(bad[0])} sums to {col_sums[bad[0]]:.6g}"
                f" ({bad.size} bad column(s))"
            )
        X = _as_float_matrix("X", self.X)
        if X.shape[1] != m:
            raise ValueError(f"X must have m = {m} columns (one per context, like Y), got shape {X.shape}")
        if not np.all((X == 0) | (X == 1)):
            raise ValueError("X must be a binary (0/1) attribute code")
        if self.pi is None:
            pi = np.full(m, 1.0 / m)
        else:
            pi = _as_float_matrix("pi", self.pi, ndim=1)
            if pi.shape != (m,):
                raise ValueError(f"pi must have shape (m,) = ({m},), got {pi.shape}")
            if np.any(pi <= 0):
                raise ValueError("pi must be strictly positive")
            if abs(pi.sum() - 1.0) > 1e-8:
                raise ValueError(f"pi must sum to 1, got {pi.sum():.6g}")
        p = X.shape[0]
        groups = tuple(range(p)) if self.groups is None else tuple(int(g) for g in self.groups)
        if len(groups) != p:
            raise ValueError(
                f"groups must have one entry per attribute row of X (p = {p}), got {len(groups)}"
            )
        names = {
            "context_names": (self.context_names, m, "c"),
            "label_names": (self.label_names, V, "y"),
            "attribute_names": (self.attribute_names, p, "x"),
        }
        for attr, (value, n, prefix) in names.items():
            value = tuple(f"{prefix}{i}" for i in range(n)) if value is None else tuple(map(str, value))
            if len(value) != n:
                raise ValueError(f"{attr} must have {n} entries, got {len(value)}")
            object.__setattr__(self, attr, value)
        if self.factor_sizes is not None:
            sizes = tuple(int(a) for a in self.factor_sizes)
            if int(np.prod(sizes)) != m:
                raise ValueError(f"factor_sizes {sizes} must multiply to m = {m}")
            object.__setattr__(self, "factor_sizes", sizes)
        for arr in (Y, X, pi):
            arr.setflags(write=False)
        object.__setattr__(self, "Y", Y)
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "pi", pi)
        object.__setattr__(self, "groups", groups)

    # -- shapes -------------------------------------------------------------------------------------
    @property
    def V(self) -> int:
        """Vocabulary size (rows of ``Y``)."""
        return int(self.Y.shape[0])

    @property
    def m(self) -> int:
        """Number of contexts (columns of ``Y``)."""
        return int(self.Y.shape[1])

    @property
    def p(self) -> int:
        """Number of latent attributes (rows of ``X``)."""
        return int(self.X.shape[0])

    # -- structure ----------------------------------------------------------------------------------
    @property
    def is_one_hot(self) -> bool:
        """True when every context has a single next token."""
        return bool(np.all((self.Y == 0) | (self.Y == 1)))

    @property
    def label_mass(self) -> np.ndarray:
        """(V,) probability of each token as a next token, ``Y @ pi``."""
        return self.Y @ self.pi

    @property
    def used_labels(self) -> np.ndarray:
        """Indices of tokens that follow at least one context (``label_mass > 0``)."""
        return np.flatnonzero(self.label_mass > 0)

    @property
    def label_X(self) -> np.ndarray:
        """(p, V) attribute code of each label token: the pi-weighted mean code of the contexts it follows.

        For one-hot designs where every context has its own label this is just ``X`` with columns permuted
        to label order, so metrics on the label Gram ``W Wᵀ`` can use the same attribute structure.
        Tokens that follow no context get a zero column.
        """
        weighted = self.X @ (self.pi[:, None] * self.Y.T)  # (p, V)
        mass = self.label_mass
        out = np.zeros_like(weighted)
        used = mass > 0
        out[:, used] = weighted[:, used] / mass[used]
        return out

    def balanced_one_hot_classes(self) -> tuple[int, int] | None:
        """``(K, n)`` when the design is balanced one-hot: every token follows exactly ``n`` contexts,
        weights are uniform, so Zhu et al.'s closed form applies; otherwise ``None``."""
        if not self.is_one_hot or not np.allclose(self.pi, 1.0 / self.m):
            return None
        counts = self.Y.sum(axis=1)
        if np.any(counts == 0) or not np.all(counts == counts[0]):
            return None
        return self.V, int(counts[0])

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description (for reports)."""
        return {
            "kind": self.kind,
            "V": self.V,
            "m": self.m,
            "p": self.p,
            "factor_sizes": list(self.factor_sizes) if self.factor_sizes else None,
            "one_hot": self.is_one_hot,
            "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.params.items()},
        }

    def __repr__(self) -> str:
        return f"Design(kind={self.kind!r}, V={self.V}, m={self.m}, p={self.p}, params={self.params})"


# -- constructors ----------------------------------------------------------------------------------
def _check_positive_ints(name: str, values: Any, minimum: int) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in values)
    except TypeError as exc:
        raise TypeError(f"{name} must be a sequence of integers") from exc
    if any(int(v) != v for v in values):
        raise TypeError(f"{name} must contain integers, got {tuple(values)}")
    if not out or any(v < minimum for v in out):
        raise ValueError(f"{name} must be a non-empty sequence of integers >= {minimum}, got {out}")
    return out


def _letters(i: int) -> str:
    return "abcdefghijklmnopqrstuvwxyz"[i] if i < 26 else f"f{i}_"


def factorial(sizes: tuple[int, ...] | list[int]) -> Design:
    """All tuples of F factors with sizes ``A_1..A_F``, each context with its own one-hot label.

    Contexts are ordered lexicographically (last factor fastest), so the context index of tuple
    ``(a_1, ..., a_F)`` is ``np.ravel_multi_index(a, sizes)``. ``X`` stacks one indicator row per value of
    each factor (``p = Σ A_f``); ``Y = I_K``.

    Args:
        sizes: factor sizes ``(A_1, ..., A_F)``, each >= 2.

    Returns:
        Design with ``K = V = m = Π A_f``.

    Example:
        >>> d = factorial((3, 3))
        >>> d.X.shape, d.groups
        ((6, 9), (0, 0, 0, 1, 1, 1))
    """
    sizes = _check_positive_ints("sizes", sizes, minimum=2)
    K = int(np.prod(sizes))
    tuples = list(itertools.product(*(range(a) for a in sizes)))
    X = np.zeros((sum(sizes), K))
    groups: list[int] = []
    attr_names: list[str] = []
    offset = 0
    for f, a in enumerate(sizes):
        for v in range(a):
            X[offset + v] = [t[f] == v for t in tuples]
            groups.append(f)
            attr_names.append(f"{_letters(f)}{v}")
        offset += a
    names = tuple("".join(f"{_letters(f)}{v}" for f, v in enumerate(t)) for t in tuples)
    return Design(
        Y=np.eye(K),
        X=X,
        groups=tuple(groups),
        factor_sizes=sizes,
        kind="factorial",
        context_names=names,
        label_names=tuple(f"next[{n}]" for n in names),
        attribute_names=tuple(attr_names),
        params={"sizes": sizes},
    )


def hierarchical(depth: int, branching: int) -> Design:
    """Leaves of a complete tree of the given depth and branching; attributes are the leaf's ancestors.

    ``K = branching**depth`` leaves, each with its own one-hot label. Attributes are the internal nodes at
    levels ``1..depth-1`` (the root is shared by all leaves and carries no information), grouped by level.

    Args:
        depth: tree depth D >= 1 (depth 1: no shared attributes, a plain one-hot design).
        branching: children per node b >= 2.

    Example:
        >>> d = hierarchical(2, 3)
        >>> d.m, d.p, d.groups
        (9, 3, (1, 1, 1))
    """
    (depth,) = _check_positive_ints("depth", [depth], minimum=1)
    (branching,) = _check_positive_ints("branching", [branching], minimum=2)
    K = branching**depth
    leaves = np.arange(K)
    rows, groups, attr_names = [], [], []
    for level in range(1, depth):
        block = branching ** (depth - level)  # leaves under one node at this level
        for node in range(branching**level):
            rows.append((leaves // block) == node)
            groups.append(level)
            attr_names.append(f"L{level}n{node}")
    X = np.array(rows, dtype=float).reshape(len(rows), K)
    digits = [np.base_repr(i, branching).zfill(depth) for i in range(K)]
    return Design(
        Y=np.eye(K),
        X=X,
        groups=tuple(groups),
        kind="hierarchical",
        context_names=tuple(f"leaf{d}" for d in digits),
        label_names=tuple(f"next[leaf{d}]" for d in digits),
        attribute_names=tuple(attr_names),
        params={"depth": depth, "branching": branching},
    )


def random_attributes(m: int, p: int, k: int, seed: int | np.random.Generator = 0) -> Design:
    """m contexts, each carrying k of p binary features chosen at random, each with its own label.

    Args:
        m: number of contexts (>= 2).
        p: number of binary features (>= 1).
        k: features per context, ``1 <= k <= p``.
        seed: integer seed or ``numpy.random.Generator``.

    Example:
        >>> d = random_attributes(5, 4, 2, seed=1)
        >>> d.X.sum(axis=0).tolist()
        [2.0, 2.0, 2.0, 2.0, 2.0]
    """
    (m,) = _check_positive_ints("m", [m], minimum=2)
    (p,) = _check_positive_ints("p", [p], minimum=1)
    (k,) = _check_positive_ints("k", [k], minimum=1)
    if k > p:
        raise ValueError(f"k must be <= p, got k={k}, p={p}")
    rng = np.random.default_rng(seed)
    X = np.zeros((p, m))
    for j in range(m):
        X[rng.choice(p, size=k, replace=False), j] = 1.0
    return Design(
        Y=np.eye(m),
        X=X,
        kind="random_attributes",
        params={"m": m, "p": p, "k": k, "seed": seed if isinstance(seed, int) else None},
    )


def from_distributions(P: Any, X: Any = None, pi: Any = None) -> Design:
    """A soft-label (next-token) design from an (m, V) matrix whose rows are next-token distributions.

    Args:
        P: (m, V) rows are distributions (non-negative, summing to 1).
        X: optional (p, m) binary attribute code; defaults to none (``p = 0``).
        pi: optional (m,) context weights; uniform by default.

    Example:
        >>> d = from_distributions([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
        >>> d.Y.shape
        (3, 2)
    """
    P = _as_float_matrix("P", P)
    if np.any(P < 0):
        raise ValueError("P must be non-negative (rows are next-token distributions)")
    sums = P.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > _COLUMN_SUM_TOL)
    if bad.size:
        raise ValueError(f"P rows must sum to 1; row {int(bad[0])} sums to {sums[bad[0]]:.6g}")
    Xa = np.zeros((0, P.shape[0])) if X is None else X
    return Design(Y=P.T, X=Xa, pi=pi, kind="distributions", params={"m": P.shape[0], "V": P.shape[1]})


def from_counts(C: Any, X: Any = None) -> Design:
    """A design from an (m, V) matrix of next-token counts: rows normalised to distributions, context
    weights proportional to row totals (the empirical statistics of a corpus).

    Example:
        >>> d = from_counts([[3, 1], [0, 4]])
        >>> d.pi.tolist(), d.Y[:, 0].tolist()
        ([0.5, 0.5], [0.75, 0.25])
    """
    C = _as_float_matrix("C", C)
    if np.any(C < 0):
        raise ValueError("C must contain non-negative counts")
    totals = C.sum(axis=1)
    if np.any(totals <= 0):
        raise ValueError(f"C rows must have a positive total; row {int(np.argmin(totals))} is empty")
    Xa = np.zeros((0, C.shape[0])) if X is None else X
    design = Design(
        Y=(C / totals[:, None]).T,
        X=Xa,
        pi=totals / totals.sum(),
        kind="counts",
        params={"m": C.shape[0], "V": C.shape[1], "total": float(totals.sum())},
    )
    return design
