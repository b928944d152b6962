"""Design constructors: factorial, hierarchical and random-attribute designs, and designs from data.

The lazy builders below are module-level functions bound with :func:`functools.partial`, so the designs
they make pickle. Public names are re-exported by :mod:`ufmtheory.designs`, their one public home.
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from typing import Any

import numpy as np

from ufmtheory.designs._design import (
    _COLUMN_SUM_TOL,
    DENSE_MAX_BYTES,
    Design,
    _as_float_matrix,
    _fmt_bytes,
)

__all__ = [
    "MAX_CONTEXTS",
    "MAX_FEATURES",
    "factorial",
    "hierarchical",
    "random_attributes",
    "from_distributions",
    "from_counts",
]

# Most contexts a constructor accepts. Factorial and hierarchical designs hold nothing per context until
# asked (labels are Y = I, the attribute indices are built on first use), so the bound only guards against
# absurd sizes; the reduced solvers work on any size through ``ReducedProblem.from_parts(...)``.
MAX_CONTEXTS = 10**9


def _check_positive_ints(name: str, values: Any, minimum: int) -> tuple[int, ...]:
    if isinstance(values, str | bytes):
        raise TypeError(f"{name} must be a sequence of integers, got {type(values).__name__}")
    try:
        items = list(values)
    except TypeError as exc:
        raise TypeError(f"{name} must be a sequence of integers, got {type(values).__name__}") from exc
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, int | np.integer | float | np.floating):
            raise TypeError(f"{name} must contain integers, got {v!r}")
        if isinstance(v, float | np.floating) and (not math.isfinite(v) or not float(v).is_integer()):
            raise TypeError(f"{name} must contain integers, got {v!r}")
        out.append(int(v))
    if not out or any(v < minimum for v in out):
        raise ValueError(f"{name} must be a non-empty sequence of integers >= {minimum}, got {tuple(out)}")
    return tuple(out)


def _count(n: int) -> str:
    digits = len(str(n))  # exact for Python ints of any size (float() would overflow past 1e308)
    return str(n) if digits <= 12 else f"~1e{digits - 1}"


def _check_contexts(name: str, K: int) -> None:
    if K > MAX_CONTEXTS:
        raise ValueError(
            f"{name} gives {_count(K)} contexts, more than ufmtheory.designs.MAX_CONTEXTS = "
            f"{MAX_CONTEXTS:.0e}; for larger symmetric designs use ut.ReducedProblem.from_parts("
            "ut.algebra.factorial_scheme(sizes)) or hierarchical_scheme(depth, branching), which need no "
            "per-context arrays"
        )


def _letters(i: int) -> str:
    return "abcdefghijklmnopqrstuvwxyz"[i] if i < 26 else f"f{i}_"


# Builders a Design calls on first use: module-level functions bound with functools.partial, so designs
# pickle (process pools, Dask) and stay cheap until asked.
def _factorial_context_names(sizes: tuple[int, ...], template: str = "{}") -> list[str]:
    return [
        template.format("".join(f"{_letters(f)}{v}" for f, v in enumerate(t)))
        for t in itertools.product(*map(range, sizes))
    ]


def _factorial_attributes(sizes: tuple[int, ...]) -> np.ndarray:
    K = math.prod(sizes)
    idx = np.arange(K, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    strides = [math.prod(sizes[f + 1 :]) for f in range(len(sizes))]
    return np.stack([offsets[f] + (idx // strides[f]) % a for f, a in enumerate(sizes)], axis=1)


def _hierarchical_attributes(depth: int, branching: int) -> np.ndarray:
    K = branching**depth
    leaves = np.arange(K, dtype=np.int64)
    offsets = np.cumsum([0] + [branching**level for level in range(1, depth)])
    # the ancestor at level l of leaf j is node j // b^(D-l) of that level
    columns = [offsets[level - 1] + leaves // branching ** (depth - level) for level in range(1, depth)]
    return np.stack(columns, axis=1) if columns else np.zeros((K, 0), dtype=np.int64)


def _hierarchical_attribute_names(depth: int, branching: int) -> list[str]:
    return [f"L{level}n{node}" for level in range(1, depth) for node in range(branching**level)]


def _leaf_names(depth: int, branching: int, template: str) -> list[str]:
    return [template.format(np.base_repr(i, branching).zfill(depth)) for i in range(branching**depth)]


def factorial(sizes: tuple[int, ...] | list[int]) -> Design:
    """All tuples of F factors with sizes ``A_1..A_F``, each context with its own one-hot label.

    Contexts are ordered lexicographically (last factor fastest), so the context index of tuple
    ``(a_1, ..., a_F)`` is ``np.ravel_multi_index(a, sizes)``. ``X`` stacks one indicator row per value of
    each factor (``p = Σ A_f``); ``Y = I_K``. Labels and attributes are held as index arrays (``K × (F + 1)``
    integers), so large grids such as ``(1000, 1000)`` are cheap; dense ``Y``/``X`` are built on access.

    Args:
        sizes: factor sizes ``(A_1, ..., A_F)``, each >= 2, with ``Π A_f <= MAX_CONTEXTS``.

    Returns:
        Design with ``K = V = m = Π A_f``.

    Example:
        >>> d = factorial((3, 3))
        >>> d.X.shape, d.groups
        ((6, 9), (0, 0, 0, 1, 1, 1))
        >>> big = factorial((1000, 1000))
        >>> big.m, big.attributes.shape
        (1000000, (1000000, 2))
    """
    sizes = _check_positive_ints("sizes", sizes, minimum=2)
    K = math.prod(sizes)
    _check_contexts(f"sizes {sizes}", K)

    groups = tuple(f for f, a in enumerate(sizes) for _ in range(a))
    attr_names = tuple(f"{_letters(f)}{v}" for f, a in enumerate(sizes) for v in range(a))
    return Design(
        labels="identity",
        m=K,
        attributes=functools.partial(_factorial_attributes, sizes),
        p=sum(sizes),
        groups=groups,
        factor_sizes=sizes,
        kind="factorial",
        context_names=functools.partial(_factorial_context_names, sizes),
        label_names=functools.partial(_factorial_context_names, sizes, "next[{}]"),
        attribute_names=attr_names,
        params={"sizes": sizes},
    )


def hierarchical(depth: int, branching: int) -> Design:
    """Leaves of a complete tree of the given depth and branching; attributes are the leaf's ancestors.

    ``K = branching**depth`` leaves, each with its own one-hot label. Attributes are the internal nodes at
    levels ``1..depth-1`` (the root is shared by all leaves and carries no information), grouped by level.

    Args:
        depth: tree depth D >= 1 (depth 1: no shared attributes, a plain one-hot design).
        branching: children per node b >= 2 (``b**D <= MAX_CONTEXTS``).

    Example:
        >>> d = hierarchical(2, 3)
        >>> d.m, d.p, d.groups
        (9, 3, (1, 1, 1))
    """
    (depth,) = _check_positive_ints("depth", [depth], minimum=1)
    (branching,) = _check_positive_ints("branching", [branching], minimum=2)
    # compare in logs first: branching**depth with a huge depth would never finish
    if depth * math.log2(branching) > math.log2(MAX_CONTEXTS) + 1:
        _check_contexts(f"hierarchical(depth={depth}, branching={branching})", MAX_CONTEXTS + 1)
    K = branching**depth
    _check_contexts(f"hierarchical(depth={depth}, branching={branching})", K)
    groups, offsets = [], [0]
    for level in range(1, depth):
        groups.extend([level] * branching**level)
        offsets.append(offsets[-1] + branching**level)

    return Design(
        labels="identity",
        m=K,
        attributes=functools.partial(_hierarchical_attributes, depth, branching),
        p=offsets[-1],
        groups=tuple(groups),
        kind="hierarchical",
        context_names=functools.partial(_leaf_names, depth, branching, "leaf{}"),
        label_names=functools.partial(_leaf_names, depth, branching, "next[leaf{}]"),
        attribute_names=functools.partial(_hierarchical_attribute_names, depth, branching),
        params={"depth": depth, "branching": branching},
    )


MAX_FEATURES = 10**6  # random codes draw k of p features per context; the dense code is (p, m)
_LOOP_MAX_CONTEXTS = 100_000  # above this, random codes are drawn vectorised (another stream, same seed rule)


def _draw_codes(rng: np.random.Generator, m: int, p: int, k: int, distinct: bool) -> list[np.ndarray]:
    """m codes, each ``(k,)`` sorted feature indices of p, drawn one by one; with ``distinct`` a code seen
    before is drawn again (the caller has checked that ``C(p, k) >= m``), so a draw without repeats is the
    same as without ``distinct``.

    Redraws get slow when the codes nearly exhaust ``C(p, k)`` (coupon collector): after ``20 m + 1000``
    draws the remaining codes are taken at random among the unused ones (then collisions were frequent, so
    ``C(p, k)`` is small enough to list)."""
    codes: list[np.ndarray] = []
    seen: set[tuple[int, ...]] = set()
    draws, cap = 0, 20 * m + 1000
    while len(codes) < m:
        if distinct and draws >= cap:
            unused = np.array([c for c in itertools.combinations(range(p), k) if c not in seen])
            codes.extend(unused[rng.permutation(unused.shape[0])[: m - len(codes)]])
            break
        draws += 1
        code = np.sort(rng.choice(p, size=k, replace=False))
        key = tuple(code.tolist())
        if distinct and key in seen:
            continue
        seen.add(key)
        codes.append(code)
    return codes


def _redraw_repeats(rng: np.random.Generator, attributes: np.ndarray, p: int, k: int) -> np.ndarray:
    """``attributes: (m, k)`` with each repeated code (after its first occurrence) redrawn until all differ.

    When ``C(p, k) <= 4 m`` (redraws would collide for long) the codes are a random choice among all of them.
    """
    m = attributes.shape[0]
    if math.comb(p, k) <= 4 * m:
        every = np.array(list(itertools.combinations(range(p), k)))
        return every[rng.permutation(every.shape[0])[:m]]
    attributes = np.sort(attributes, axis=1)
    while True:
        _, first = np.unique(attributes, axis=0, return_index=True)
        repeat = np.setdiff1d(np.arange(m), first)
        if repeat.size == 0:
            return attributes
        attributes[repeat] = np.sort(np.argsort(rng.random((repeat.size, p)), axis=1)[:, :k], axis=1)


def random_attributes(
    m: int, p: int, k: int, seed: int | np.random.Generator = 0, *, distinct: bool | None = None
) -> Design:
    """m contexts, each carrying k of p binary features chosen at random, each with its own label.

    Args:
        m: number of contexts (2 <= m <= MAX_CONTEXTS).
        p: number of binary features (>= 1).
        k: features per context, ``1 <= k <= p``.
        seed: integer seed or ``numpy.random.Generator``. Same seed, same design (up to 10^5 contexts the
            features are drawn context by context; above, in one vectorised draw).
        distinct: whether every context gets its own code. Two contexts with the same k features share
            their whole input, which changes the data encoding (a model then needs an id token to tell them
            apart) and the phenomenon; independent draws collide often (m = 12, p = 6, k = 2: for every
            seed below 100). ``True``: a code drawn before is drawn again (seeds whose draw had no repeat
            give the same design as ``False``); ``ValueError`` when fewer than m codes exist
            (``C(p, k) < m``). ``False``: independent draws, repeats allowed. ``None`` (default): distinct
            whenever ``C(p, k) >= m``; otherwise repeats cannot be avoided and a ``UserWarning`` says so.

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
    if p > MAX_FEATURES:
        raise ValueError(f"p must be <= MAX_FEATURES = {MAX_FEATURES} features, got {_count(p)}")
    _check_contexts(f"m = {m}", m)
    if m > _LOOP_MAX_CONTEXTS and 8 * m * p > DENSE_MAX_BYTES:
        raise ValueError(
            f"m * p = {_count(m * p)}: drawing this many random codes at once needs {_fmt_bytes(8 * m * p)}; "
            "use fewer contexts or features"
        )
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer | np.random.Generator):
        raise TypeError(f"seed must be an integer or numpy.random.Generator, got {type(seed).__name__}")
    if distinct is not None and not isinstance(distinct, bool | np.bool_):
        raise TypeError(f"distinct must be True, False or None, got {distinct!r}")
    enough = math.comb(p, k) >= m
    if distinct and not enough:
        raise ValueError(
            f"distinct=True needs m <= C(p, k): only {math.comb(p, k)} distinct codes of k={k} of p={p}"
            f" features exist for m={m} contexts (use more features, or distinct=False to allow repeats)"
        )
    if distinct is None:
        distinct = enough
        if not enough:
            warnings.warn(
                f"random_attributes: only C({p}, {k}) = {math.comb(p, k)} codes exist for m={m} contexts, so"
                " some contexts share their code (pass distinct=False to accept this without a warning)",
                UserWarning,
                stacklevel=2,
            )
    rng = np.random.default_rng(seed)
    if m <= _LOOP_MAX_CONTEXTS:
        attributes = np.stack(_draw_codes(rng, m, p, k, bool(distinct)))
    else:
        attributes = np.argsort(rng.random((m, p)), axis=1)[:, :k]
        if distinct:
            attributes = _redraw_repeats(rng, attributes, p, k)
    return Design(
        labels="identity",
        m=m,
        attributes=np.sort(attributes, axis=1),
        p=p,
        kind="random_attributes",
        params={"m": m, "p": p, "k": k, "seed": int(seed) if isinstance(seed, int | np.integer) else None},
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
