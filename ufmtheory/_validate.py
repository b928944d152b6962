"""Argument checks shared by every public entry point (the bottom floor: numpy only).

One rule for the exception type everywhere: a value of the wrong *type* (a string, ``None``, a bool where
a number is expected, a float where an integer is expected) raises :class:`TypeError`; a value of the right
type outside its range (NaN, infinity, a negative ridge, a zero tolerance) raises :class:`ValueError`.
Both messages name the argument and the rule, e.g. ``"lam_W must be finite and >= 0, got -1.0"``. Each
checker returns the value converted to its canonical Python type, so callers write
``lam_W = nonnegative("lam_W", lam_W)``.

Example:
    >>> positive("t1", 3)
    3.0
    >>> integer("steps", 10, low=1)
    10
    >>> nonnegative("lam_W", -1.0)
    Traceback (most recent call last):
    ...
    ValueError: lam_W must be finite and >= 0, got -1.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = [
    "real",
    "nonnegative",
    "positive",
    "integer",
    "tolerance",
    "choice",
    "flag",
    "float_array",
]

_REAL_TYPES = (int, float, np.integer, np.floating)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool | np.bool_) or not isinstance(value, _REAL_TYPES):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError as exc:  # a Python int beyond float range
        raise ValueError(f"{name} must be finite, got an integer of {len(str(value))} digits") from exc


def real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite real number, optionally in ``[low, high]`` (``low_open``/``high_open``: strict bounds).

    Raises:
        TypeError: not a real number (bools and strings included).
        ValueError: NaN, infinite or out of range.
    """
    x = _number(name, value)
    ok = math.isfinite(x)
    if ok and low is not None:
        ok = x > low if low_open else x >= low
    if ok and high is not None:
        ok = x < high if high_open else x <= high
    if not ok:
        if low is not None and high is None:
            rule = f"finite and {'>' if low_open else '>='} {low:g}"
        elif low is None and high is not None:
            rule = f"finite and {'<' if high_open else '<='} {high:g}"
        elif low is not None and high is not None:
            rule = f"finite and in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        else:
            rule = "finite"
        raise ValueError(f"{name} must be {rule}, got {x!r}")
    return x


def nonnegative(name: str, value: Any) -> float:
    """A finite real number ``>= 0`` (ridges, radii, weights)."""
    return real(name, value, low=0.0)


def positive(name: str, value: Any) -> float:
    """A finite real number ``> 0`` (times, learning rates, scales)."""
    return real(name, value, low=0.0, low_open=True)


def integer(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """A Python ``int`` (numpy integers accepted, bools and floats refused) in ``[low, high]``.

    Raises:
        TypeError: not an integer.
        ValueError: out of range.
    """
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    n = int(value)
    if low is not None and n < low:
        raise ValueError(f"{name} must be >= {low}, got {n}")
    if high is not None and n > high:
        raise ValueError(f"{name} must be <= {high}, got {n}")
    return n


def tolerance(name: str, value: Any) -> float:
    """A relative or absolute tolerance: finite and in ``(0, 1)``."""
    return real(name, value, low=0.0, high=1.0, low_open=True, high_open=True)


def choice(name: str, value: Any, options: Iterable[str]) -> str:
    """One of ``options`` (strings).

    Raises:
        TypeError: not a string.
        ValueError: not one of ``options``.
    """
    opts = tuple(options)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {opts}, got {type(value).__name__}")
    if value not in opts:
        raise ValueError(f"{name} must be one of {opts}, got {value!r}")
    return value


def flag(name: str, value: Any) -> bool:
    """A ``bool`` (numpy bools accepted; ``0``/``1`` and strings refused)."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__}")
    return bool(value)


def float_array(
    name: str,
    value: Any,
    *,
    ndim: int | None = None,
    shape: tuple[int, ...] | None = None,
    finite: bool = True,
) -> np.ndarray:
    """A float64 array (a new array when ``value`` needs converting), optionally of a given rank / shape.

    Raises:
        TypeError: not numeric (strings, objects).
        ValueError: wrong rank or shape, or (``finite=True``) NaN / infinite entries.
    """
    if isinstance(value, str | bytes):
        raise TypeError(f"{name} must be a numeric array, got {type(value).__name__}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"{name} must be a numeric array, got {type(value).__name__}") from exc
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {arr.shape}")
    if finite and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain only finite values (found NaN or inf)")
    return arr
