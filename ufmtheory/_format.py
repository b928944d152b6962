"""Small shared helpers for numbers in tables and JSON (results, saved trajectories, reports)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["finite_or_none", "format_number", "to_jsonable"]


def finite_or_none(value: Any) -> float | None:
    """``float(value)``, or ``None`` for ``None``, NaN and infinities (strict JSON has no NaN).

    Example:
        >>> finite_or_none(np.float64(2.5)), finite_or_none(float("nan")), finite_or_none(None)
        (2.5, None, None)
    """
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def format_number(value: Any) -> str:
    """Four significant digits for tables; ``"-"`` for missing or non-finite values.

    Example:
        >>> format_number(1234.5678), format_number(None), format_number(float("inf"))
        ('1235', '-', '-')
    """
    value = finite_or_none(value)
    return "-" if value is None else f"{value:.4g}"


def to_jsonable(value: Any) -> Any:
    """Recursively convert numpy arrays and scalars to plain Python, non-finite floats to ``None``.

    Example:
        >>> to_jsonable({"a": np.array([1.0, np.nan]), 2: (np.int64(3),)})
        {'a': [1.0, None], '2': [3]}
    """
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        return finite_or_none(value)
    if isinstance(value, np.generic):
        return value.item()
    return value
