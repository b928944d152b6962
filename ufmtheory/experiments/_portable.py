"""Designs sent to worker processes: a small picklable recipe instead of the object.

A :class:`~ufmtheory.designs.Design` may hold lazy builders (closures) that do not pickle, and a
1000×1000 grid should not be shipped to every task anyway. :func:`portable` turns a design into a recipe
(constructor name and arguments for factorial and hierarchical designs; dense ``Y``, ``X``, ``pi`` for
the rest) and :func:`rebuild` builds it back in the worker, once per process.
"""

from __future__ import annotations

import functools
import pickle
from typing import Any

import numpy as np

from ufmtheory import designs
from ufmtheory.designs import Design

__all__ = ["portable", "rebuild"]


def portable(design: Design) -> tuple[Any, ...]:
    """A picklable recipe of ``design`` (see the module docstring)."""
    if design.kind == "factorial" and design.factor_sizes:
        return ("factorial", tuple(int(a) for a in design.factor_sizes))
    if design.kind == "hierarchical" and {"depth", "branching"} <= set(design.params):
        return ("hierarchical", int(design.params["depth"]), int(design.params["branching"]))
    try:
        return ("object", pickle.dumps(design, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:  # noqa: BLE001 - lazy builders: ship the dense arrays instead
        return ("dense", np.asarray(design.Y), np.asarray(design.X), np.asarray(design.pi))


@functools.lru_cache(maxsize=8)
def rebuild(recipe: tuple[Any, ...]) -> Design:
    """The design a :func:`portable` recipe describes (cached per process)."""
    kind = recipe[0]
    if kind == "factorial":
        return designs.factorial(recipe[1])
    if kind == "hierarchical":
        return designs.hierarchical(recipe[1], recipe[2])
    if kind == "object":
        return pickle.loads(recipe[1])
    return Design(Y=recipe[1], X=recipe[2], pi=recipe[3])
