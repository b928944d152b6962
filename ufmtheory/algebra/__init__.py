"""The Bose-Mesner algebra of a design's association scheme: its one home in the package.

* :class:`AssociationScheme` (:func:`factorial_scheme`, :func:`hierarchical_scheme`, :func:`scheme`): the
  orthogonal projectors ``P_S``, relation classes, kernel eigenvalues ``κ_S`` and attribute/free mode labels
  (docs: Theory §6).
* :func:`escape_block`, :func:`escape_rate`: the linearised 2×2 dynamics of one mode.
* :class:`StructuredGrams`: stacks of Grams held as coefficients on those projectors, materialised on request.
"""

from ufmtheory.algebra.modes import escape_block, escape_rate
from ufmtheory.algebra.schemes import (
    AssociationScheme,
    factorial_scheme,
    hierarchical_scheme,
    scheme,
    scheme_from_description,
)
from ufmtheory.algebra.structured import GramTooLargeError, StructuredGrams

__all__ = [
    "AssociationScheme",
    "factorial_scheme",
    "hierarchical_scheme",
    "scheme",
    "scheme_from_description",
    "StructuredGrams",
    "GramTooLargeError",
    "escape_block",
    "escape_rate",
]
