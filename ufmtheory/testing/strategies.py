"""Hypothesis strategies that draw valid designs, problems, initialisations, Grams and feature/label data.

Every strategy draws only objects the package accepts (the validators never reject them) and shrinks
towards small readable examples: the fewest contexts and factors, two classes, zero ridges, round numbers.
Needs hypothesis (``pip install 'ufmtheory[testing]'``).

Example:
    >>> from hypothesis import given, settings
    >>> import ufmtheory as ut
    >>> from ufmtheory.testing import strategies as uts
    >>> @settings(max_examples=5, deadline=None)
    ... @given(uts.problems(design=uts.designs(kinds=("factorial",), max_K=6)))
    ... def test_loss_at_origin(prob):
    ...     params = {k: 0 * v for k, v in ut.init.small(prob, 1.0).items()}
    ...     assert abs(prob.loss(params) - __import__("math").log(prob.design.V)) < 1e-12
    >>> test_loss_at_origin()
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ufmtheory.designs import Design, factorial, from_counts, hierarchical
from ufmtheory.models import UFM, ModifiedUFM
from ufmtheory.solvers import init as _init

__all__ = ["DESIGN_KINDS", "designs", "problems", "inits", "grams", "features_and_labels"]

DESIGN_KINDS = ("factorial", "hierarchical", "random_attributes", "counts")
"""Design families :func:`designs` draws from."""

_FLOATS: dict[str, Any] = {"allow_nan": False, "allow_infinity": False, "allow_subnormal": False}


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


@st.composite
def _factorial(draw: Any, max_K: int) -> Design:
    sizes = [draw(st.integers(2, max_K))]
    while len(sizes) < 3 and math.prod(sizes) * 2 <= max_K and draw(st.booleans()):
        sizes.append(draw(st.integers(2, max_K // math.prod(sizes))))
    return factorial(tuple(sizes))


@st.composite
def _hierarchical(draw: Any, max_K: int) -> Design:
    branching = draw(st.integers(2, max_K))
    max_depth = max(1, int(math.floor(math.log(max_K) / math.log(branching) + 1e-9)))
    return hierarchical(draw(st.integers(1, min(max_depth, 3))), branching)


@st.composite
def _random_attributes(draw: Any, max_K: int) -> Design:
    p = draw(st.integers(2, 6))
    k = draw(st.integers(1, p - 1))
    # Distinct attribute codes: two contexts with the same code would be indistinguishable to the attributes.
    n_codes = math.comb(p, k)
    m = draw(st.integers(2, min(max_K, n_codes)))
    codes = draw(
        st.lists(
            st.frozensets(st.integers(0, p - 1), min_size=k, max_size=k), min_size=m, max_size=m, unique=True
        )
    )
    X = np.zeros((p, m))
    for j, code in enumerate(codes):
        X[sorted(code), j] = 1.0
    return Design(Y=np.eye(m), X=X, kind="random_attributes", params={"m": m, "p": p, "k": k})


@st.composite
def _counts(draw: Any, max_K: int) -> Design:
    m = draw(st.integers(1, max_K))
    V = draw(st.integers(2, max(2, max_K)))
    C = np.array(draw(st.lists(st.lists(st.integers(0, 5), min_size=V, max_size=V), min_size=m, max_size=m)))
    # A positive total per row: each context has at least one observed next token.
    first = draw(st.lists(st.integers(0, V - 1), min_size=m, max_size=m))
    C[np.arange(m), first] += 1
    return from_counts(C)


_KIND_BUILDERS = {
    "factorial": _factorial,
    "hierarchical": _hierarchical,
    "random_attributes": _random_attributes,
    "counts": _counts,
}


def designs(kinds: Sequence[str] = DESIGN_KINDS, max_K: int = 8) -> st.SearchStrategy[Design]:
    """Valid :class:`~ufmtheory.Design` objects with at most ``max_K`` contexts.

    Args:
        kinds: design families among :data:`DESIGN_KINDS`: ``"factorial"`` (1-3 factors),
            ``"hierarchical"`` (depth 1-3), ``"random_attributes"`` (one-hot labels, distinct binary
            attribute codes), ``"counts"`` (soft labels from next-token counts, ``V <= max(2, max_K)``).
        max_K: the largest number of contexts (>= 2).

    Raises:
        ValueError: ``max_K < 2`` (no design has fewer than two classes to separate) or an unknown kind.
    """
    max_K = _check_int("max_K", max_K, 2)
    if isinstance(kinds, str):
        kinds = (kinds,)
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in _KIND_BUILDERS]
    if not kinds or unknown:
        raise ValueError(f"kinds must be a non-empty subset of {DESIGN_KINDS}, got {kinds}")
    return st.one_of(*[_KIND_BUILDERS[k](max_K) for k in kinds])


_RIDGES = st.sampled_from([0.0, 1e-3, 1e-2, 0.1])


@st.composite
def _problem(
    draw: Any, design: Any, modified: bool | None, ridge: bool | None, normalize: bool
) -> UFM | ModifiedUFM:
    d = draw(design) if isinstance(design, st.SearchStrategy) else design
    if not isinstance(d, Design):
        raise TypeError(f"design must be a Design or a strategy of designs, got {type(d).__name__}")
    dim = draw(st.integers(1, d.m + 2))
    lam = st.just(0.0) if ridge is False else _RIDGES.filter(lambda v: v > 0) if ridge else _RIDGES
    lam_W, lam_X = draw(lam), draw(lam)
    use_modified = draw(st.booleans()) if modified is None else modified
    if not use_modified:
        return UFM(d, dim=dim, lam_W=lam_W, lam_H=lam_X)
    alpha = draw(st.sampled_from([0.0, 0.5, 1.0, 2.0]))
    beta = draw(st.sampled_from([1.0, 0.5, 2.0]))
    placement = draw(st.sampled_from(["H", "E"]))
    radius = draw(st.sampled_from([None, 1.0, 2.0])) if normalize else None
    lam_kw = {"lam_H": lam_X} if placement == "H" else {"lam_E": lam_X}
    return ModifiedUFM(
        d, dim=dim, alpha=alpha, beta=beta, ridge=placement, lam_W=lam_W, normalize=radius, **lam_kw
    )


def problems(
    design: Design | st.SearchStrategy[Design] | None = None,
    modified: bool | None = None,
    ridge: bool | None = None,
    normalize: bool = False,
) -> st.SearchStrategy[UFM | ModifiedUFM]:
    """Valid problems (:class:`~ufmtheory.UFM` or :class:`~ufmtheory.ModifiedUFM`) on a design.

    Args:
        design: a fixed design, a strategy of designs, or None (``designs()``).
        modified: True: modified UFM only (``α ∈ {0, ½, 1, 2}``, ``β ∈ {1, ½, 2}``, ridge on H or E);
            False: standard UFM only; None: either.
        ridge: True: both ridges > 0; False: no ridge; None: either (values in {0, 1e-3, 1e-2, 0.1}).
        normalize: also draw column-normalised modified problems (radius 1 or 2).
    """
    if design is None:
        design = designs()
    return _problem(design, modified, ridge, normalize)


def inits(problem: Any, scale: float | None = None) -> st.SearchStrategy[dict[str, np.ndarray]]:
    """Initial parameters for ``problem``: a seeded small random init (:func:`ufmtheory.init.small`), or the
    aligned balanced init (:func:`ufmtheory.init.aligned`) when the problem admits one.

    Args:
        problem: the problem the parameters are for.
        scale: the init scale; None draws it from {1e-3, 1e-2, 0.1, 0.5}.

    Raises:
        ValueError: ``scale`` is not > 0.
    """
    if scale is not None and not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a finite number > 0, got {scale!r}")
    scales = st.just(float(scale)) if scale is not None else st.sampled_from([1e-3, 1e-2, 0.1, 0.5])

    def aligned_or_small(s: float, seed: int, aligned: bool) -> dict[str, np.ndarray]:
        if aligned:
            try:
                return _init.aligned(problem, s)
            except (ValueError, TypeError):  # dim below the label rank, or no invertible kernel
                pass
        return _init.small(problem, s, seed=seed)

    return st.builds(aligned_or_small, scales, st.integers(0, 2**16), st.booleans())


def grams(K: int, psd: bool = True, max_rank: int | None = None) -> st.SearchStrategy[np.ndarray]:
    """(K, K) symmetric matrices with entries of order one: ``F Fᵀ`` for a drawn ``F: (K, r)`` when ``psd``
    (rank ``r <= max_rank``), any symmetric matrix otherwise.

    Raises:
        ValueError: ``K < 1`` or ``max_rank < 1``.
    """
    K = _check_int("K", K, 1)
    r_max = K if max_rank is None else min(K, _check_int("max_rank", max_rank, 1))
    elems = st.floats(-2.0, 2.0, **_FLOATS)
    if psd:
        return (
            st.integers(1, r_max)
            .flatmap(lambda r: hnp.arrays(np.float64, (K, r), elements=elems))
            .map(lambda F: F @ F.T)
        )
    return hnp.arrays(np.float64, (K, K), elements=elems).map(lambda A: (A + A.T) / 2)


def features_and_labels(K: int, d: int, n: int) -> st.SearchStrategy[tuple[np.ndarray, np.ndarray]]:
    """``(H, labels)``: features ``H: (d, n)`` (finite, of order one) and integer labels ``(n,)`` in
    ``[0, K)`` with every class present (as NC1 and class-mean metrics need).

    Raises:
        ValueError: ``K < 2``, ``d < 1`` or ``n < K`` (not every class could be present).
    """
    K = _check_int("K", K, 2)
    d = _check_int("d", d, 1)
    n = _check_int("n", n, 1)
    if n < K:
        raise ValueError(f"n must be >= K = {K} so that every class has a sample, got n={n}")
    H = hnp.arrays(np.float64, (d, n), elements=st.floats(-3.0, 3.0, **_FLOATS))
    # The first K samples carry the K classes (in a drawn order); the rest are free.
    labels = st.tuples(
        st.permutations(list(range(K))), st.lists(st.integers(0, K - 1), min_size=n - K, max_size=n - K)
    )
    return st.tuples(H, labels.map(lambda t: np.array(list(t[0]) + list(t[1]), dtype=np.int64)))
