"""Input geometry (ufmtheory.analysis.geometry): the last-token split of the shared terms, checked on
closed-form Grams, and the unbounded reading (no free energy) that keeps the calibrated α."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ufmtheory as ut
from ufmtheory.analysis.calibration import Calibration
from ufmtheory.analysis.geometry import InputGeometry, input_geometry, token_columns

D33 = ut.designs.factorial((3, 3))


def _random_design():
    """12 contexts, 2 of 8 features each, every code distinct (the validation protocol's design)."""
    for seed in range(200):
        d = ut.designs.random_attributes(12, 8, 2, seed=seed)
        if len({tuple(c) for c in np.asarray(d.X).T.tolist()}) == 12:
            return d
    raise AssertionError("no distinct design")


RAND = _random_design()


def _last_rows(design):
    """Closed form: L[i, j] = 1 when attribute i is context j's highest-index (last) attribute."""
    X = np.asarray(design.X)
    L = np.zeros(X.shape)
    for j in range(design.m):
        L[np.flatnonzero(X[:, j]).max(), j] = 1
    return L


def test_token_columns_split_only_where_an_attribute_changes_position():
    np.testing.assert_array_equal(token_columns(D33), D33.X)  # factorial: each attribute at one position
    h = ut.designs.hierarchical(3, 2)
    np.testing.assert_array_equal(token_columns(h), h.X)  # leaves end with an id token: nothing is last
    T = token_columns(RAND)
    L = _last_rows(RAND)
    X = np.asarray(RAND.X, dtype=float)
    assert T.shape[0] > RAND.p
    np.testing.assert_array_equal(T[: RAND.p], X)
    split = [i for i in range(RAND.p) if L[i].any() and (X[i] - L[i]).any()]
    assert split  # some feature is last in some contexts and not in others
    expected = np.vstack([np.vstack([L[i], X[i] - L[i]]) for i in split])
    np.testing.assert_array_equal(T[RAND.p :], expected)
    np.testing.assert_array_equal(token_columns(RAND, split_last=False), X)


def test_a_last_token_gram_is_read_as_shared():
    """G₀ = Σ_i w_i l_i l_iᵀ + c I (each context reads its last token): the split fit is exact and gives
    the closed-form energy ratio; the unsplit fit misreads part of it as free energy."""
    L = _last_rows(RAND)
    w = np.linspace(1.0, 2.0, RAND.p)
    c = 0.05
    G = (L.T * w) @ L + c * np.eye(RAND.m) + 0.3
    C = np.eye(RAND.m) - 1 / RAND.m
    e_shared = sum(w[i] * float(np.sum((C @ L[i]) ** 2)) for i in range(RAND.p))
    X = np.asarray(RAND.X, dtype=float)
    expected = math.sqrt(e_shared / np.trace(C @ X.T @ X @ C) / c)
    g = input_geometry(G, RAND)
    assert g.ok and g.r2 == pytest.approx(1.0, abs=1e-9)
    assert g.alpha_over_beta == pytest.approx(expected, rel=1e-6)
    old = input_geometry(G, RAND, split_last=False)
    assert old.r2 < 0.99 and old.alpha_over_beta < 0.5 * expected


@pytest.mark.parametrize("ratio", [0.3, 1.0, 3.0])
def test_modified_ufm_kernel_is_still_exact_on_random_attributes(ratio):
    G = ratio**2 * RAND.X.T @ RAND.X + np.eye(RAND.m) + 0.7
    g = input_geometry(G, RAND)
    assert g.ok and g.alpha_over_beta == pytest.approx(ratio, rel=1e-6) and g.r2 == pytest.approx(1.0)


def test_no_free_energy_is_an_unbounded_reading_and_keeps_the_calibrated_alpha():
    L = _last_rows(RAND)
    g = input_geometry(L.T @ L, RAND)
    assert g.ok and g.alpha_over_beta == math.inf and "no free energy" in g.message
    cal = Calibration(
        family="normalized",
        design_name="3x3",
        params={"alpha": 3.0, "beta": 1.0, "dim": 8, "normalize": 8**0.5, "init_std": 0.02},
        geometry=InputGeometry(alpha_over_beta=18.0, c_attr=1.0, c_free=1 / 324, r2=1.0),
        alpha_rule="geometry",
        objective=0.0,
    )
    assert cal.alpha_for(g) == 3.0
    assert cal.alpha_for(InputGeometry(alpha_over_beta=9.0, c_attr=1.0, c_free=1 / 81, r2=1.0)) == 1.5


def test_split_last_must_be_a_bool():
    """A string flag is refused before any work ("no" is truthy: it would have split)."""
    with pytest.raises(TypeError, match="split_last"):
        token_columns(RAND, split_last="no")
    with pytest.raises(TypeError, match="split_last"):
        input_geometry(np.eye(RAND.m), RAND, split_last=0)
