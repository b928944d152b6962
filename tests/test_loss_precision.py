"""Relative precision of the cross-entropy for tiny losses (late one-hot flows), against mpmath.

The bound (derived in ``ufmtheory.models._softmax_parts``): with u = 2^-53 and n = V - 1 non-maximal terms,
``|Δce / ce| <= (ln(n / ce) + n + 3) u`` for a one-hot label on the largest logit; the ``ln`` term is the
rounding of the logit differences ``z_v - max`` (absent when they are exact, e.g. max = 0). Soft labels add
at most ``(V + 1) u`` from the linear term; their loss is at least the label entropy, and precision is
relative to the loss.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ufmtheory.models import _softmax_parts, log_softmax_columns

from helpers import budget

U = 2.0**-53


def reference_ce(z: np.ndarray, y: np.ndarray) -> mpmath.mpf:
    """``-Σ_v y_v log softmax(z)_v`` from the exact float inputs with the textbook formula in 400-digit
    arithmetic (enough for ``log(1 + r)`` with ``r`` down to 1e-330 to keep 60+ digits)."""
    with mpmath.workdps(400):
        zs = [mpmath.mpf(float(v)) for v in z]
        top = max(zs)
        lse = top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in zs))
        return +mpmath.fsum(mpmath.mpf(float(w)) * (lse - v) for w, v in zip(y, zs, strict=True) if w)


def bound(ce: float, V: int, soft: bool = False) -> float:
    n = max(V - 1, 1)
    return (max(math.log(n / ce), 0.0) + n + 3 + (V + 1 if soft else 0)) * U


def rel_err(got: float, ref: mpmath.mpf) -> float:
    with mpmath.workdps(400):
        return float(abs(mpmath.mpf(got) - ref) / ref)


def ce_column(z: np.ndarray, y: np.ndarray) -> float:
    return float(_softmax_parts(z[:, None], y[:, None])[2][0])


@pytest.mark.parametrize("exponent", list(range(-2, -301, -7)) + [-300])
@pytest.mark.parametrize("V", [2, 5])
def test_tiny_one_hot_losses_keep_relative_precision(exponent, V):
    """Logits ``(0, -g, ..., -g)`` with ``(V-1) e^-g = 10^exponent``: exact differences, so the error is a
    few ulps all the way down to 1e-300 (the old ``log(s)`` gave 0 below ~1e-16)."""
    g = math.log(V - 1) - exponent * math.log(10)
    z = np.array([0.0] + [-g] * (V - 1))
    y = np.eye(V)[0]
    ref = reference_ce(z, y)
    got = ce_column(z, y)
    assert rel_err(got, ref) <= (V + 4) * U  # ~1e-15
    got_lsm = -float(log_softmax_columns(z[:, None])[0, 0])
    assert rel_err(got_lsm, ref) <= (V + 4) * U


@pytest.mark.parametrize("exponent", [-2, -8, -13, -20, -50, -100, -200, -300])
def test_tiny_losses_with_rounded_differences_within_derived_bound(exponent):
    """Logits away from 0 (``z - max`` rounds): within ``(ln(n/ce) + n + 3) u``; <= 1e-14 down to ~1e-30."""
    rng = np.random.default_rng(-exponent)
    V = 6
    top = 123.456789 + rng.random()
    gaps = -exponent * math.log(10) + rng.random(V - 1) * 3.0
    z = np.concatenate([[top], top - gaps])
    y = np.eye(V)[0]
    ref = reference_ce(z, y)
    got = ce_column(z, y)
    assert rel_err(got, ref) <= bound(float(ref), V)
    if exponent >= -30:
        assert rel_err(got, ref) <= 1e-14


@settings(max_examples=budget(60))
@given(
    V=st.integers(2, 12),
    top=st.floats(-50.0, 50.0),
    gap=st.floats(0.0, 700.0),
    spread=st.floats(0.0, 20.0),
    seed=st.integers(0, 2**32 - 1),
    label=st.integers(0, 11),
)
def test_random_logits_one_hot(V, top, gap, spread, seed, label):
    """Random logits, any one-hot label (on the maximum or not): within the derived bound."""
    rng = np.random.default_rng(seed)
    z = top - gap - spread * rng.random(V)
    z[rng.integers(V)] = top
    y = np.eye(V)[label % V]
    ref = reference_ce(z, y)
    if ref == 0:
        return
    got = ce_column(z, y)
    lsm = -float(log_softmax_columns(z[:, None])[label % V, 0])
    tol = bound(float(ref), V) + float(max(abs(top), top - z.min())) * 2 * U  # linear term rounding
    assert rel_err(got, ref) <= tol
    assert rel_err(lsm, ref) <= tol


@settings(max_examples=budget(40))
@given(V=st.integers(2, 10), seed=st.integers(0, 2**32 - 1), scale=st.floats(0.0, 300.0))
def test_soft_labels_relative_to_the_loss(V, seed, scale):
    """Soft labels: the loss is >= the label entropy > 0 (both terms of ce are >= 0, no cancellation), so
    precision is relative to the loss, within the bound plus ``(V + 1) u`` for the linear term (scaled by the
    size of the logit differences, which round)."""
    rng = np.random.default_rng(seed)
    z = scale * rng.standard_normal(V)
    y = rng.random(V) * (rng.random(V) < 0.7)
    y[rng.integers(V)] += 0.2
    y /= y.sum()
    ref = reference_ce(z, y)
    entropy = -sum(float(w) * math.log(w) for w in y if w > 0)
    got = ce_column(z, y)
    assert got >= entropy * (1 - 1e-12)
    assert rel_err(got, ref) <= bound(float(ref), V, soft=True)


def test_ties_two_equal_maxima():
    """Two equal largest logits: the normaliser is log(2 + r); a label on either one gives the same loss."""
    for rest in (None, 1e-300, 1e-20, 1e-3):
        z = np.array([5.0, 5.0]) if rest is None else np.array([5.0, 5.0, 5.0 + math.log(rest)])
        V = z.size
        for k in (0, 1):
            y = np.eye(V)[k]
            ref = reference_ce(z, y)
            assert rel_err(ce_column(z, y), ref) <= 4 * U
            assert rel_err(-float(log_softmax_columns(z[:, None])[k, 0]), ref) <= 4 * U
    # three-way tie, many columns at once (the per-column case split)
    Z = np.array([[1.0, 0.0, 7.0], [1.0, -40.0, 7.0], [1.0, -800.0, 7.0 - 1e-15]])
    s = np.exp(log_softmax_columns(Z)).sum(axis=0)
    np.testing.assert_allclose(s, 1.0, rtol=4 * U)
    assert abs(-log_softmax_columns(Z)[0, 0] - math.log(3)) <= 4 * U * math.log(3)


def test_huge_logits_no_overflow():
    """Logits in the 1e300 range: no overflow, finite exact answers (tiny losses underflow to 0 correctly)."""
    z = np.array([1e300, 1e300 - 1e285, -1e300])
    y = np.eye(3)[0]
    with np.errstate(over="raise", invalid="raise"):
        e, s, ce = _softmax_parts(z[:, None], y[:, None])
        lsm = log_softmax_columns(z[:, None])
    assert np.isfinite(e).all() and np.isfinite(lsm).all()
    assert ce[0] == 0.0  # exp(-1e285) underflows: the exact loss is below the smallest float
    assert lsm[1, 0] == z[1] - z[0]
    z = np.array([1e300, 1e300, 0.0])
    with np.errstate(over="raise", invalid="raise"):
        lsm = log_softmax_columns(z[:, None])
    assert lsm[0, 0] == pytest.approx(-math.log(2), rel=4 * U)
    assert lsm[2, 0] == pytest.approx(-1e300, rel=4 * U)


def test_gradient_unchanged_and_consistent():
    """softmax from the parts sums to 1 and matches exp(log_softmax_columns) to rounding."""
    rng = np.random.default_rng(0)
    Z = 30 * rng.standard_normal((7, 9))
    Y = np.eye(7)[:, rng.integers(0, 7, 9)]
    e, s, ce = _softmax_parts(Z.copy(), Y)
    P = e / s
    np.testing.assert_allclose(P.sum(axis=0), 1.0, rtol=8 * U)
    np.testing.assert_allclose(P, np.exp(log_softmax_columns(Z)), rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(ce, -(Y * log_softmax_columns(Z)).sum(axis=0), rtol=1e-14)
