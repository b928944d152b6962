"""Property-based testing of theory claims: strategies, assertions and a catalogue of the theory's claims.

* :mod:`ufmtheory.testing.strategies`: hypothesis strategies that draw valid designs, problems,
  initialisations, Gram matrices and feature/label data (needs ``hypothesis``: ``pip install
  'ufmtheory[testing]'``; imported only when first used).
* :mod:`ufmtheory.testing.assertions`: ``assert_grams_close``, ``assert_reaches``, ``assert_order``,
  ``assert_invariant``, ``assert_monotone``; each failure message says what differs and by how much.
* :mod:`ufmtheory.testing.claims`: the theory's claims (Zhu's closed form, the ETF-mode time, the
  conserved ``WᵀW - HHᵀ``, ...), each with its statement, docs section, validity conditions and a
  ``check(**params)`` that returns a :class:`ClaimResult`.

``import ufmtheory.testing`` does not import hypothesis; ``ufmtheory.testing.strategies`` does.

Example:
    >>> import ufmtheory.testing as ufmt
    >>> res = ufmt.check("lp_boundary", A=3, B=3, alpha=0.5, beta=1.0)
    >>> res.status, res.ok
    ('ok', True)
"""

from __future__ import annotations

import importlib
from typing import Any

from ufmtheory.testing import assertions, claims
from ufmtheory.testing.assertions import (
    assert_grams_close,
    assert_invariant,
    assert_monotone,
    assert_order,
    assert_reaches,
)
from ufmtheory.testing.claims import CLAIMS, Claim, ClaimResult, ExploreResult, check, get, names

__all__ = [
    "assertions",
    "claims",
    "strategies",
    "assert_grams_close",
    "assert_reaches",
    "assert_order",
    "assert_invariant",
    "assert_monotone",
    "Claim",
    "ClaimResult",
    "ExploreResult",
    "CLAIMS",
    "check",
    "get",
    "names",
]


def __getattr__(name: str) -> Any:
    # hypothesis is an optional dependency (the `testing` extra): import the strategies on first use only.
    if name == "strategies":
        return importlib.import_module("ufmtheory.testing.strategies")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
