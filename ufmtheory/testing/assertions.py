"""Assertions for theory tests whose failure messages say what differs, where, and by how much.

Each function raises :class:`AssertionError` (so it works under pytest, unittest and plain scripts) and
returns the measured quantity on success, so a test can log it or compare it further.

Example:
    >>> import numpy as np
    >>> from ufmtheory.testing import assert_grams_close, assert_order
    >>> assert_grams_close(np.eye(3), np.eye(3) + 1e-12) < 1e-11
    True
    >>> round(assert_order([4e-2, 2e-2, 1e-2], [0.4, 0.2, 0.1], order=1), 6)
    1.0
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "assert_grams_close",
    "assert_reaches",
    "assert_order",
    "assert_invariant",
    "assert_monotone",
]


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _dense(name: str, value: Any) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array, got {type(value).__name__}") from exc
    return arr


def assert_grams_close(
    actual: Any, expected: Any, *, rtol: float = 1e-7, atol: float = 0.0, name: str = "Gram"
) -> float:
    """Assert two Gram matrices (or stacks of them) agree: ``max |A - E| <= atol + rtol * max |E|``.

    The tolerance is relative to the largest entry of ``expected`` (not entrywise): Gram entries near zero
    carry the rounding of the large ones, so an entrywise relative test would fail on noise.

    Args:
        actual: (m, m) or (T, m, m) Gram(s) (dense or :class:`~ufmtheory.StructuredGrams` small enough to
            materialise).
        expected: same shape as ``actual``.
        rtol: tolerance relative to ``max |expected|``.
        atol: absolute tolerance (for an expected Gram that is zero).
        name: what the matrices are, for the message.

    Returns:
        The relative error ``max |A - E| / max |E|`` (the absolute error when ``E`` is zero).

    Raises:
        AssertionError: naming the largest difference, its index, both values, and how many entries are
            outside the tolerance.
    """
    A, E = _dense("actual", actual), _dense("expected", expected)
    if A.shape != E.shape:
        raise AssertionError(f"{name}s have different shapes: actual {A.shape}, expected {E.shape}")
    if A.ndim not in (2, 3) or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"{name}s must have shape (m, m) or (T, m, m), got {A.shape}")
    if not np.all(np.isfinite(A)):
        bad = np.unravel_index(int(np.flatnonzero(~np.isfinite(A))[0]), A.shape)
        raise AssertionError(f"actual {name} has non-finite entries (first at index {tuple(map(int, bad))})")
    diff = np.abs(A - E)
    scale = float(np.abs(E).max()) if E.size else 0.0
    bound = atol + rtol * scale
    worst = float(diff.max()) if diff.size else 0.0
    rel = worst / scale if scale > 0 else worst
    if worst > bound:
        idx = np.unravel_index(int(diff.argmax()), diff.shape)
        where = ", ".join(f"{k}={int(i)}" for k, i in zip(("t", "i", "j")[-len(idx) :], idx, strict=True))
        n_bad = int(np.sum(diff > bound))
        raise AssertionError(
            f"{name}s differ: max |actual - expected| = {_fmt(worst)} at ({where}) "
            f"(actual {A[idx]:.6g}, expected {E[idx]:.6g}); relative to max |expected| = {_fmt(scale)} "
            f"that is {_fmt(rel)} > rtol {_fmt(rtol)} (atol {_fmt(atol)}); "
            f"{n_bad} of {diff.size} entries outside the tolerance"
        )
    return rel


def assert_reaches(trajectory: Any, equilibrium: Any, tol: float = 1e-5, *, which: str = "both") -> float:
    """Assert a run ends at an equilibrium: its last Grams are within ``tol`` of the equilibrium's.

    The distance is ``max |G(t_end) - G*| / max(1, max |G*|)``: absolute for Grams of order one or
    smaller (including the zero solution), relative for large ones.

    Args:
        trajectory: a :class:`~ufmtheory.Trajectory` (``gram_H``, ``gram_W``, ``ts``, ``status``).
        equilibrium: an object with ``gram_H`` and ``gram_W`` (e.g. :func:`ufmtheory.zhu`'s result).
        tol: largest allowed distance.
        which: ``"H"``, ``"W"`` or ``"both"``.

    Returns:
        The largest distance over the compared Grams.

    Raises:
        AssertionError: if the run did not finish (its status) or ends too far away, naming the Gram, the
            final distance, the closest approach along the run and when it happened.
    """
    if which not in ("H", "W", "both"):
        raise ValueError(f"which must be 'H', 'W' or 'both', got {which!r}")
    status = getattr(trajectory, "status", "ok")
    ts = np.asarray(trajectory.ts, dtype=np.float64)
    if not getattr(trajectory, "ok", status == "ok"):
        raise AssertionError(
            f"the run did not finish: status {status!r} at t = {_fmt(float(ts[-1]))} "
            f"({getattr(trajectory, 'message', '')})".rstrip(" ()")
        )
    names = ("H", "W") if which == "both" else (which,)
    worst = 0.0
    for n in names:
        G = _dense(f"trajectory.gram_{n}", getattr(trajectory, f"gram_{n}"))
        target = _dense(f"equilibrium.gram_{n}", getattr(equilibrium, f"gram_{n}"))
        if G.shape[1:] != target.shape:
            raise AssertionError(
                f"gram_{n} shapes differ: trajectory {G.shape[1:]}, equilibrium {target.shape}"
            )
        scale = max(1.0, float(np.abs(target).max()))
        dist = np.abs(G - target).max(axis=(1, 2)) / scale
        if dist[-1] > tol:
            best = int(np.argmin(dist))
            raise AssertionError(
                f"gram_{n} ends {_fmt(float(dist[-1]))} from the equilibrium at t = {_fmt(float(ts[-1]))} "
                f"(tol {_fmt(tol)}; distance max|ΔG|/max(1, max|G*|)); it started {_fmt(float(dist[0]))} "
                f"away and came closest ({_fmt(float(dist[best]))}) at t = {_fmt(float(ts[best]))}"
            )
        worst = max(worst, float(dist[-1]))
    return worst


def assert_order(
    errors: Sequence[float], steps: Sequence[float], order: float = 1, *, tol: float = 0.1
) -> float:
    """Assert errors shrink like ``step**order``: the slope of ``log error`` on ``log step`` is
    ``order ± tol`` (least squares over all points, as diffrax's convergence tests do).

    Args:
        errors: (n,) positive errors, n >= 2.
        steps: (n,) distinct positive step sizes (learning rates, time steps, ...).
        order: the expected order.
        tol: allowed deviation of the fitted slope.

    Returns:
        The fitted order (slope).

    Raises:
        ValueError: bad input (lengths, non-positive values).
        AssertionError: the fitted order is off, with the errors, the steps, and the successive ratios.
    """
    e, h = np.asarray(errors, dtype=np.float64), np.asarray(steps, dtype=np.float64)
    if e.ndim != 1 or h.shape != e.shape or e.size < 2:
        raise ValueError(f"errors and steps must be 1-D of the same length >= 2, got {e.shape} and {h.shape}")
    if not (np.all(np.isfinite(h)) and np.all(h > 0)) or np.unique(h).size != h.size:
        raise ValueError("steps must be distinct, finite and > 0")
    if not np.all(np.isfinite(e)):
        raise AssertionError(f"errors must be finite, got {e.tolist()} at steps {h.tolist()}")
    if np.any(e <= 0):
        raise AssertionError(
            f"errors must be > 0 to fit an order (an error of exactly 0 has no order), got {e.tolist()}"
        )
    slope = float(np.polyfit(np.log(h), np.log(e), 1)[0])
    if not abs(slope - order) <= tol:
        local = np.diff(np.log(e)) / np.diff(np.log(h))
        raise AssertionError(
            f"convergence order {slope:.4g} (least-squares slope of log error on log step over {e.size} "
            f"points), expected {order} ± {tol}; errors {[float(_fmt(x)) for x in e]} at steps "
            f"{h.tolist()}; local orders {[round(float(x), 3) for x in local]}"
        )
    return slope


def _leaves(value: Any, path: str = "") -> list[tuple[str, np.ndarray]]:
    if isinstance(value, Mapping):
        out: list[tuple[str, np.ndarray]] = []
        for k in value:
            out += _leaves(value[k], f"{path}[{k!r}]")
        return out
    if isinstance(value, (tuple, list)) and not all(isinstance(v, (int, float)) for v in value):
        out = []
        for i, v in enumerate(value):
            out += _leaves(v, f"{path}[{i}]")
        return out
    return [(path or "output", np.asarray(value, dtype=np.float64))]


def assert_invariant(
    fn: Callable[[Any], Any],
    transform: Callable[[Any], Any],
    x: Any,
    *,
    output_map: Callable[[Any], Any] | None = None,
    rtol: float = 1e-8,
    atol: float = 0.0,
) -> float:
    """Assert ``fn(transform(x)) == output_map(fn(x))`` (invariance when ``output_map`` is None, else
    equivariance), e.g. Gram trajectories under rotations ``(W, H) -> (W Q, Qᵀ H)`` or the permuted
    Grams under a relabelling of contexts and tokens.

    Outputs may be numbers, arrays, or dicts/tuples of them; each leaf is compared with the tolerance
    ``atol + rtol * max |expected leaf|``.

    Args:
        fn: the quantity (e.g. ``lambda p: gradient_flow(prob, 10.0, init=p).gram_H``).
        transform: the symmetry acting on the input.
        x: the input.
        output_map: how the symmetry acts on the output (identity when None).
        rtol, atol: tolerances.

    Returns:
        The largest relative difference over the leaves.

    Raises:
        AssertionError: naming the leaf that differs, the largest difference, its index and both values.
    """
    base = fn(x)
    expected = base if output_map is None else output_map(base)
    moved = fn(transform(x))
    exp_leaves, got_leaves = _leaves(expected), _leaves(moved)
    if [p for p, _ in exp_leaves] != [p for p, _ in got_leaves]:
        raise AssertionError(
            f"outputs have different structure: {[p for p, _ in got_leaves]} vs {[p for p, _ in exp_leaves]}"
        )
    worst = 0.0
    kind = "invariant" if output_map is None else "equivariant"
    for (path, E), (_, A) in zip(exp_leaves, got_leaves, strict=True):
        if A.shape != E.shape:
            raise AssertionError(f"{path}: shape {A.shape} after the transform, expected {E.shape}")
        diff = np.abs(A - E)
        scale = float(np.abs(E).max()) if E.size else 0.0
        big = float(diff.max()) if diff.size else 0.0
        rel = big / scale if scale > 0 else big
        if not big <= atol + rtol * scale:
            idx = np.unravel_index(int(diff.argmax()), diff.shape) if diff.ndim else ()
            raise AssertionError(
                f"fn is not {kind} under the transform: {path} differs by {_fmt(big)} at index "
                f"{tuple(int(i) for i in idx)} (transformed {A[idx]:.6g}, expected {E[idx]:.6g}); "
                f"relative to max |expected| = {_fmt(scale)} that is {_fmt(rel)} > rtol {_fmt(rtol)}"
            )
        worst = max(worst, rel)
    return worst


def assert_monotone(
    values: Any, *, increasing: bool = False, rtol: float = 1e-12, name: str = "loss"
) -> float:
    """Assert a sequence never increases (default) or never decreases, up to ``rtol`` relative steps.

    Args:
        values: (T,) numbers, or a :class:`~ufmtheory.Trajectory` (its ``loss``, with times in messages).
        increasing: assert non-decreasing instead.
        rtol: allowed step against the direction, relative to ``|value|`` (rounding of the integrator).
        name: what the values are, for the message.

    Returns:
        The largest relative step against the direction (<= rtol on success; negative if strictly monotone).

    Raises:
        AssertionError: naming how many steps go the wrong way, the largest one, and where (index and time).
    """
    ts = None
    if hasattr(values, "loss") and hasattr(values, "ts"):
        ts = np.asarray(values.ts, dtype=np.float64)
        values = values.loss
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size < 2:
        raise ValueError(f"{name} must be 1-D with at least 2 values, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        i = int(np.flatnonzero(~np.isfinite(v))[0])
        raise AssertionError(
            f"{name} is not finite at index {i}" + (f" (t = {_fmt(ts[i])})" if ts is not None else "")
        )
    step = np.diff(v) if not increasing else -np.diff(v)
    rel = step / np.maximum(np.abs(v[:-1]), np.finfo(float).tiny)
    worst = float(rel.max())
    if worst > rtol:
        i = int(rel.argmax())
        n_bad = int(np.sum(rel > rtol))
        when = f" (t = {_fmt(ts[i])} -> {_fmt(ts[i + 1])})" if ts is not None else ""
        word = "increases" if not increasing else "decreases"
        raise AssertionError(
            f"{name} {word} at {n_bad} of {step.size} steps; the largest, from index {i} to {i + 1}{when}, "
            f"goes {v[i]:.10g} -> {v[i + 1]:.10g} (relative {_fmt(worst)} > rtol {_fmt(rtol)})"
        )
    return worst
