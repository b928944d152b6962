"""Co-occurrence designs: contexts with latent factors, next-token distributions, weights.

A :class:`Design` is the data a UFM sees (docs: Theory §2): ``m`` contexts with weights ``pi``,
next-token distributions ``Y`` (one column per context, each summing to 1) and a binary latent factor code
``X`` saying which attribute values each context carries. Labels are usually one-hot (every context its own
next token) so the factors live in the *inputs* only: that is the regime where Neural Collapse predicts a
structure-blind simplex ETF.

Example:
    >>> import ufmtheory as ut
    >>> d = ut.designs.factorial((2, 3))
    >>> d.m, d.V, d.p
    (6, 6, 5)
    >>> d.context_names[:2]
    ('a0b0', 'a0b1')
"""

# MAX_CONTEXTS and MAX_FEATURES stay module constants outside __all__, as before the split.
from ufmtheory.designs._constructors import MAX_CONTEXTS as MAX_CONTEXTS
from ufmtheory.designs._constructors import MAX_FEATURES as MAX_FEATURES
from ufmtheory.designs._constructors import (
    factorial,
    from_counts,
    from_distributions,
    hierarchical,
    random_attributes,
)
from ufmtheory.designs._design import DENSE_MAX_BYTES, Design

__all__ = [
    "DENSE_MAX_BYTES",
    "Design",
    "factorial",
    "hierarchical",
    "random_attributes",
    "from_distributions",
    "from_counts",
]
