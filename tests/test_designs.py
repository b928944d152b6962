"""Designs: constructors (shapes, names, groups, attribute codes checked against independent enumerations),
derived quantities (label_X, balanced_one_hot_classes, ...) and validation."""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ufmtheory as ut
from ufmtheory.designs import Design

from helpers import budget


def _check_common(d: Design) -> None:
    assert d.Y.shape == (d.V, d.m) and d.X.shape == (d.p, d.m) and d.pi.shape == (d.m,)
    np.testing.assert_allclose(d.Y.sum(axis=0), 1.0, atol=1e-12)
    assert np.all(d.Y >= 0)
    assert np.all(d.pi > 0) and d.pi.sum() == pytest.approx(1.0, abs=1e-12)
    assert set(np.unique(d.X)) <= {0.0, 1.0}
    assert len(d.context_names) == d.m and len(d.label_names) == d.V and len(d.attribute_names) == d.p
    assert len(d.groups) == d.p
    for arr in (d.Y, d.X, d.pi):
        assert not arr.flags.writeable


# -- factorial ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("sizes", [(2,), (5,), (2, 3), (3, 3), (2, 3, 4)])
def test_factorial_structure(sizes):
    d = ut.designs.factorial(sizes)
    _check_common(d)
    K = int(np.prod(sizes))
    assert (d.m, d.V, d.p) == (K, K, sum(sizes))
    assert d.kind == "factorial" and d.factor_sizes == tuple(sizes)
    np.testing.assert_array_equal(d.Y, np.eye(K))
    np.testing.assert_allclose(d.pi, 1.0 / K)
    assert d.groups == tuple(f for f, a in enumerate(sizes) for _ in range(a))
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    letters = "abcdefghij"
    for j, tup in enumerate(itertools.product(*(range(a) for a in sizes))):
        assert np.ravel_multi_index(tup, sizes) == j  # lexicographic, last factor fastest
        expected = np.zeros(sum(sizes))
        expected[offsets + np.array(tup)] = 1
        np.testing.assert_array_equal(d.X[:, j], expected)
        assert d.context_names[j] == "".join(f"{letters[f]}{v}" for f, v in enumerate(tup))
    # two contexts share exactly the attributes on which their tuples agree
    tuples = np.array(list(itertools.product(*(range(a) for a in sizes))))
    agree = (tuples[:, None, :] == tuples[None, :, :]).sum(axis=2)
    np.testing.assert_array_equal(d.X.T @ d.X, agree)
    assert d.is_one_hot and d.balanced_one_hot_classes() == (K, 1)
    np.testing.assert_array_equal(d.label_X, d.X)  # Y = I: label v is the label of context v


def test_factorial_rejects_bad_sizes():
    for bad in [(), (1, 3), (0,)]:
        with pytest.raises(ValueError, match="sizes"):
            ut.designs.factorial(bad)
    with pytest.raises(TypeError, match="sizes"):
        ut.designs.factorial((2.5, 3))


# -- hierarchical ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("depth", "branching"), [(1, 3), (2, 2), (2, 3), (3, 2), (3, 3)])
def test_hierarchical_structure(depth, branching):
    d = ut.designs.hierarchical(depth, branching)
    _check_common(d)
    K = branching**depth
    assert d.m == d.V == K
    assert d.p == sum(branching**level for level in range(1, depth))
    assert d.groups == tuple(level for level in range(1, depth) for _ in range(branching**level))
    np.testing.assert_array_equal(d.X.sum(axis=0), depth - 1)  # one ancestor per non-root internal level

    # independent check: leaves i, j share the level-l ancestor iff their first l base-b digits agree
    def digits(i):
        return [(i // branching ** (depth - 1 - k)) % branching for k in range(depth)]

    shared = np.zeros((K, K))
    for i in range(K):
        for j in range(K):
            di, dj = digits(i), digits(j)
            shared[i, j] = sum(di[:level] == dj[:level] for level in range(1, depth))
    np.testing.assert_array_equal(d.X.T @ d.X, shared)
    assert d.balanced_one_hot_classes() == (K, 1)
    assert d.params == {"depth": depth, "branching": branching}


def test_hierarchical_rejects_bad_args():
    with pytest.raises(ValueError, match="depth"):
        ut.designs.hierarchical(0, 2)
    with pytest.raises(ValueError, match="branching"):
        ut.designs.hierarchical(2, 1)


# -- random attributes -------------------------------------------------------------------------------
@settings(max_examples=budget(25))
@given(m=st.integers(2, 12), p=st.integers(1, 8), data=st.data(), seed=st.integers(0, 10**6))
def test_random_attributes(m, p, data, seed):
    """Shapes, k ones per code, reproducible seeds, and the distinct-codes contract: every context gets its
    own code whenever C(p, k) >= m, and a UserWarning (nothing else) says so when fewer codes exist."""
    k = data.draw(st.integers(1, p))
    enough = math.comb(p, k) >= m
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = ut.designs.random_attributes(m, p, k, seed=seed)
        again = ut.designs.random_attributes(m, p, k, seed=np.random.default_rng(seed))
    assert [str(w.message).count("codes exist") for w in caught] == ([] if enough else [1, 1])
    _check_common(d)
    assert (d.m, d.p, d.V) == (m, p, m)
    np.testing.assert_array_equal(d.X.sum(axis=0), k)
    np.testing.assert_array_equal(d.Y, np.eye(m))
    if enough:
        assert len(set(_codes(d))) == m
    np.testing.assert_array_equal(again.X, d.X)  # same seed, same numbers (int or Generator)


def _codes(design):
    return [tuple(col) for col in np.asarray(design.X).T.tolist()]


def test_random_attributes_codes_are_distinct_unless_impossible_or_asked():
    # Issue 9: m = 12, p = 6, k = 2 drew repeated codes for every seed below 100 (contexts sharing their
    # whole input); now every context gets its own code whenever C(p, k) >= m.
    for seed in range(20):
        d = ut.designs.random_attributes(12, 6, 2, seed=seed)
        assert len(set(_codes(d))) == 12
        assert len(set(_codes(ut.designs.random_attributes(12, 6, 2, seed=seed, distinct=False)))) < 12
    # All C(6, 2) = 15 codes for 15 contexts (the redraws would otherwise collide for long).
    assert sorted(_codes(ut.designs.random_attributes(15, 6, 2, seed=3))) == sorted(
        tuple(float(i in c) for i in range(6)) for c in itertools.combinations(range(6), 2)
    )
    # A draw that had no repeat is unchanged by distinct (same stream).
    same = 0
    for seed in range(100):
        loose = ut.designs.random_attributes(12, 8, 2, seed=seed, distinct=False)
        if len(set(_codes(loose))) == 12:
            same += 1
            assert _codes(ut.designs.random_attributes(12, 8, 2, seed=seed, distinct=True)) == _codes(loose)
    assert same > 0
    with pytest.raises(ValueError, match="C\\(p, k\\)"):
        ut.designs.random_attributes(16, 6, 2, distinct=True)
    with pytest.warns(UserWarning, match="share their code"):
        ut.designs.random_attributes(16, 6, 2)
    with pytest.raises(TypeError, match="distinct"):
        ut.designs.random_attributes(6, 6, 2, distinct="yes")
    big = ut.designs.random_attributes(100_001, 70, 4, seed=0)  # vectorised draw; ~5k repeats redrawn
    assert np.unique(np.asarray(big.attributes), axis=0).shape[0] == 100_001


def test_random_attributes_seed_matters_and_validation():
    a = ut.designs.random_attributes(20, 10, 3, seed=0)
    b = ut.designs.random_attributes(20, 10, 3, seed=1)
    assert not np.array_equal(a.X, b.X)
    with pytest.raises(ValueError, match="k"):
        ut.designs.random_attributes(5, 3, 4)
    with pytest.raises(ValueError, match="m"):
        ut.designs.random_attributes(1, 3, 1)


# -- soft labels -------------------------------------------------------------------------------------
@settings(max_examples=budget(30))
@given(m=st.integers(1, 6), V=st.integers(2, 7), seed=st.integers(0, 10**6), weighted=st.booleans())
def test_from_distributions(m, V, seed, weighted):
    rng = np.random.default_rng(seed)
    P = rng.random((m, V)) * (rng.random((m, V)) < 0.5)
    P[np.arange(m), rng.integers(0, V, m)] += 0.3
    P /= P.sum(axis=1, keepdims=True)
    pi = None
    if weighted:
        pi = rng.random(m) + 0.01
        pi /= pi.sum()
    d = ut.designs.from_distributions(P, pi=pi)
    _check_common(d)
    np.testing.assert_array_equal(d.Y, P.T)
    np.testing.assert_allclose(d.pi, np.full(m, 1 / m) if pi is None else pi, rtol=0, atol=1e-15)
    assert d.p == 0 and d.X.shape == (0, m)
    assert d.is_one_hot == bool(np.all((P == 0) | (P == 1)))
    # label_mass and used_labels from a loop over contexts
    mass = np.zeros(V)
    for j in range(m):
        mass += d.pi[j] * P[j]
    np.testing.assert_allclose(d.label_mass, mass, atol=1e-15)
    np.testing.assert_array_equal(d.used_labels, [v for v in range(V) if mass[v] > 0])


def test_from_distributions_rejects_bad_rows():
    with pytest.raises(ValueError, match="P rows must sum to 1"):
        ut.designs.from_distributions([[0.5, 0.4], [0.0, 1.0]])
    with pytest.raises(ValueError, match="P must be non-negative"):
        ut.designs.from_distributions([[1.5, -0.5]])
    with pytest.raises(ValueError, match="P"):
        ut.designs.from_distributions([[np.nan, 1.0]])
    with pytest.raises(ValueError, match="X"):
        ut.designs.from_distributions([[0.5, 0.5], [1.0, 0.0]], X=np.ones((2, 3)))


@settings(max_examples=budget(25))
@given(m=st.integers(1, 6), V=st.integers(2, 6), seed=st.integers(0, 10**6))
def test_from_counts(m, V, seed):
    rng = np.random.default_rng(seed)
    C = rng.integers(0, 9, size=(m, V))
    C[:, 0] += 1  # no empty row
    d = ut.designs.from_counts(C)
    _check_common(d)
    total = C.sum()
    for j in range(m):
        assert d.pi[j] == pytest.approx(C[j].sum() / total, rel=1e-14)
        np.testing.assert_allclose(d.Y[:, j], C[j] / C[j].sum(), rtol=1e-14)
    # pi-weighted label mass equals the empirical token frequency of the corpus
    np.testing.assert_allclose(d.label_mass, C.sum(axis=0) / total, rtol=1e-13)
    assert d.params["total"] == float(total)


def test_from_counts_rejects_bad_counts():
    with pytest.raises(ValueError, match="C rows must have a positive total"):
        ut.designs.from_counts([[1, 2], [0, 0]])
    with pytest.raises(ValueError, match="C must contain non-negative"):
        ut.designs.from_counts([[1, -2], [3, 0]])


# -- label_X and balanced classes ---------------------------------------------------------------------
def test_label_X_permuted_and_soft():
    rng = np.random.default_rng(3)
    X = (rng.random((4, 5)) < 0.5).astype(float)
    perm = np.array([3, 0, 4, 1, 2])  # context j -> label perm[j]
    Y = np.zeros((6, 5))  # token 5 follows nobody
    Y[perm, np.arange(5)] = 1
    d = Design(Y=Y, X=X)
    for j in range(5):
        np.testing.assert_array_equal(d.label_X[:, perm[j]], X[:, j])
    np.testing.assert_array_equal(d.label_X[:, 5], 0)
    assert d.balanced_one_hot_classes() is None  # an unused token breaks balance
    # soft labels with weights: the pi-weighted mean code of the contexts each token follows
    P = np.array([[0.5, 0.5, 0.0], [0.0, 0.2, 0.8], [1.0, 0.0, 0.0]])
    pi = np.array([0.2, 0.3, 0.5])
    Xs = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    ds = ut.designs.from_distributions(P, X=Xs, pi=pi)
    for v in range(3):
        w = np.array([pi[j] * P[j, v] for j in range(3)])
        np.testing.assert_allclose(ds.label_X[:, v], (Xs * w).sum(axis=1) / w.sum(), rtol=1e-14)


def test_balanced_one_hot_classes():
    Y = np.kron(np.eye(3), np.ones((1, 2)))  # 3 labels, 2 contexts each
    assert Design(Y=Y, X=np.zeros((0, 6))).balanced_one_hot_classes() == (3, 2)
    unbalanced = Y.copy()
    unbalanced[:, 1] = [0, 1, 0]  # label counts 1, 3, 2
    assert Design(Y=unbalanced, X=np.zeros((0, 6))).balanced_one_hot_classes() is None
    weighted = Design(Y=np.eye(3), X=np.zeros((0, 3)), pi=[0.2, 0.3, 0.5])
    assert weighted.balanced_one_hot_classes() is None
    soft = ut.designs.from_distributions([[0.5, 0.5], [0.5, 0.5]])
    assert not soft.is_one_hot and soft.balanced_one_hot_classes() is None
    assert ut.designs.from_counts([[2, 0], [0, 2]]).balanced_one_hot_classes() == (2, 1)


# -- validation --------------------------------------------------------------------------------------
def test_design_validation_names_the_field():
    I3 = np.eye(3)
    cases = [
        (dict(Y=[[0.5, 0.2], [0.4, 0.8]], X=np.zeros((0, 2))), "Y columns must sum to 1"),
        (dict(Y=[[1.5, 1.0], [-0.5, 0.0]], X=np.zeros((0, 2))), "Y must be non-negative"),
        (dict(Y=[[np.nan, 1.0], [0.0, 0.0]], X=np.zeros((0, 2))), "Y must contain only finite"),
        (dict(Y=[[1.0, 1.0]], X=np.zeros((0, 2))), "Y must have at least 2 rows"),
        (dict(Y=np.ones(3), X=np.zeros((0, 3))), "Y must be 2-dimensional"),
        (dict(Y=I3, X=np.zeros((2, 4))), "X must have m = 3 columns"),
        (dict(Y=I3, X=np.full((1, 3), 0.5)), "X must be a binary"),
        (dict(Y=I3, X=[[np.nan, 0, 1]]), "X must contain only finite"),
        (dict(Y=I3, X=np.zeros((0, 3)), pi=[0.5, 0.5]), r"pi must have shape \(m,\)"),
        (dict(Y=I3, X=np.zeros((0, 3)), pi=[0.5, 0.6, -0.1]), "pi must be strictly positive"),
        (dict(Y=I3, X=np.zeros((0, 3)), pi=[0.5, 0.5, 0.5]), "pi must sum to 1"),
        (dict(Y=I3, X=np.zeros((0, 3)), pi=[np.nan, 0.5, 0.5]), "pi must contain only finite"),
        (dict(Y=I3, X=np.ones((2, 3)), groups=(0,)), "groups must have one entry"),
        (dict(Y=I3, X=np.zeros((0, 3)), context_names=("a", "b")), "context_names must have 3"),
        (dict(Y=I3, X=np.zeros((0, 3)), label_names=("a",)), "label_names must have 3"),
        (dict(Y=I3, X=np.ones((1, 3)), attribute_names=()), "attribute_names must have 1"),
        (dict(Y=I3, X=np.zeros((0, 3)), factor_sizes=(2, 2)), "factor_sizes"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            Design(**kwargs)


def test_design_is_frozen_and_copies_input():
    Y = np.eye(3)
    d = Design(Y=Y, X=np.zeros((0, 3)))
    Y[0, 0] = 0.0  # mutating the caller's array must not change the design
    assert d.Y[0, 0] == 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.kind = "other"
    with pytest.raises(ValueError):
        d.Y[0, 0] = 2.0


def test_default_names_and_summary():
    d = Design(Y=np.eye(2), X=np.ones((1, 2)))
    assert d.context_names == ("c0", "c1") and d.label_names == ("y0", "y1") and d.attribute_names == ("x0",)
    assert d.groups == (0,) and d.kind == "custom"
    s = ut.designs.factorial((2, 3)).summary()
    assert s == {
        "kind": "factorial",
        "V": 6,
        "m": 6,
        "p": 5,
        "factor_sizes": [2, 3],
        "one_hot": True,
        "params": {"sizes": [2, 3]},
    }


# -- designs held as index arrays (large designs by the natural API) -----------------------------------
def test_implicit_design_equals_its_dense_twin():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, size=7)
    labels[:4] = np.arange(4)  # every token used
    attributes = np.stack([rng.choice(5, size=2, replace=False) for _ in range(7)])
    d = Design(labels=labels, V=4, attributes=attributes, p=5)
    Y = np.zeros((4, 7))
    X = np.zeros((5, 7))
    for j in range(7):  # written out entry by entry, independently of the class
        Y[labels[j], j] = 1.0
        X[attributes[j], j] = 1.0
    dense = Design(Y=Y, X=X)
    np.testing.assert_array_equal(d.Y, Y)
    np.testing.assert_array_equal(d.X, X)
    for name in ("label_mass", "label_X", "used_labels"):
        np.testing.assert_array_equal(getattr(d, name), getattr(dense, name))
    assert d.is_one_hot and d.implicit and not dense.implicit
    assert d.balanced_one_hot_classes() == dense.balanced_one_hot_classes()


def test_large_factorial_is_cheap_and_refuses_dense_labels():
    d = ut.designs.factorial((1000, 1000))
    assert (d.m, d.V, d.p) == (10**6, 10**6, 2000)
    assert d.has_identity_labels and d.has_uniform_weights and d.balanced_one_hot_classes() == (10**6, 1)
    with pytest.raises(ValueError, match=r"TiB.*DENSE_MAX_BYTES"):
        _ = d.Y
    with pytest.raises(ValueError, match="design.X"):
        _ = d.X
    # attribute indices, checked against the lexicographic order (last factor fastest)
    att = d.attributes
    j = 123_456
    np.testing.assert_array_equal(att[j], [j // 1000, 1000 + j % 1000])


def test_large_hierarchy_and_random_attributes_by_the_natural_api():
    d = ut.designs.hierarchical(8, 8)
    assert d.m == 8**8 and d.p == sum(8**level for level in range(1, 8))
    small = ut.designs.hierarchical(3, 2)
    # leaf j's ancestor at level l is node j // b^(D-l); rows offset by the sizes of earlier levels
    np.testing.assert_array_equal(small.attributes[5], [5 // 4, 2 + 5 // 2])
    r = ut.designs.random_attributes(10**6, 3, 2, seed=0, distinct=False)
    assert r.attributes.shape == (10**6, 2) and np.all(r.attributes[:, 0] < r.attributes[:, 1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"labels": [0, 5], "V": 3}, "labels entries"),
        ({"labels": [0.0, 1.0], "V": 3}, "integer array"),
        ({"labels": [0, 1], "V": None}, "V must be an integer"),
        ({"labels": [0, 1], "V": 2, "attributes": [[0, 0], [1, 0]], "p": 2}, "repeat"),
        ({"labels": [0, 1], "V": 2, "attributes": [[0], [1], [0]], "p": 2}, "m = 2 rows"),
        ({"labels": [0, 1], "V": 2, "m": 3}, "disagrees"),
        ({"Y": np.eye(2), "labels": [0, 1]}, "exactly one"),
        ({"Y": np.eye(2), "V": 2}, "V is implied"),
    ],
)
def test_implicit_design_rejects_bad_input(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        Design(**kwargs)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "call",
    [
        lambda: ut.designs.factorial([1e300]),
        lambda: ut.designs.factorial([float("nan"), 2]),
        lambda: ut.designs.factorial("33"),
        lambda: ut.designs.hierarchical(1e300, 2),
        lambda: ut.designs.hierarchical(2, 10**300),
        lambda: ut.designs.random_attributes(10**12, 3, 2),
    ],
)
def test_absurd_sizes_fail_fast_with_an_argument_named(call):
    with pytest.raises((ValueError, TypeError), match="sizes|depth|branching|m = |contexts"):
        call()


def test_designs_pickle_with_their_lazy_parts():
    import pickle

    for d in (
        ut.designs.factorial((2, 3)),
        ut.designs.hierarchical(3, 2),
        ut.designs.random_attributes(5, 4, 2, seed=1),
        ut.designs.from_counts([[1, 2], [3, 0]]),
    ):
        back = pickle.loads(pickle.dumps(d))
        np.testing.assert_array_equal(back.X, d.X)
        np.testing.assert_array_equal(back.Y, d.Y)
        assert back.context_names == d.context_names and back.attribute_names == d.attribute_names
    big = pickle.loads(pickle.dumps(ut.designs.factorial((1000, 1000))))  # nothing per context travels
    assert big.m == 10**6 and len(pickle.dumps(big)) < 100_000


def test_every_slot_of_design_is_annotated() -> None:
    # mypy reads the class-level annotations: a slot added without one would be invisible to it.
    assert set(Design.__annotations__) == set(Design.__slots__)
