"""Metrics on Gram matrices and features (docs: Theory §10): collapse, semantic structure, phase times.

Every function here is pure numpy. Grams are ``(K, K)`` (``K`` contexts or labels); features are ``(d, N)``
(columns are samples); attribute codes ``X`` are ``(p, K)`` (``X[a, j] = 1`` when context ``j`` carries
attribute ``a``), as in :class:`ufmtheory.designs.Design`.

* Geometry: :func:`centered`, :func:`cosine`, :func:`etf_distance`, :func:`effective_rank`.
* Neural Collapse [Papyan, Han, Donoho 2020]: :func:`nc1` (NC1), :func:`equinorm`, :func:`equiangularity`,
  :func:`max_angle_deviation` (NC2), :func:`self_duality` (NC3), :func:`ncc_agreement` (NC4).
* Semantic structure: :func:`attribute_projector`, :func:`attribute_energy`, :func:`semantic_strength`,
  :func:`cka`, :func:`shared_attribute_gap`, :func:`pair_cosines`.
* Curves: :func:`gram_metrics`, :func:`trajectory_metrics`, :func:`phase_times`.

Degenerate inputs: a Gram whose centred version vanishes (all vectors equal, e.g. a zero initialisation at
``t = 0``) has no direction, so direction-based metrics return ``nan`` there instead of rounding noise.
"Vanishes" means below ``1e-10`` relative to the uncentred Gram (trace or largest squared norm).

References:
    V. Papyan, X. Y. Han, D. L. Donoho (2020). Prevalence of neural collapse during the terminal phase of
    deep learning training. PNAS 117(40).
    S. Kornblith, M. Norouzi, H. Lee, G. Hinton (2019). Similarity of neural network representations
    revisited. ICML.
    O. Roy, M. Vetterli (2007). The effective rank: a measure of effective dimensionality. EUSIPCO.

Example:
    >>> import numpy as np
    >>> from ufmtheory.equilibria import etf_gram
    >>> m = gram_metrics(etf_gram(4))
    >>> round(m["etf_distance"], 12), round(m["effective_rank"], 6)
    (0.0, 3.0)
"""

from ufmtheory.metrics.collapse import (
    equiangularity,
    equinorm,
    max_angle_deviation,
    nc1,
    ncc_agreement,
    self_duality,
)
from ufmtheory.metrics.curves import gram_metrics, phase_times, trajectory_metrics
from ufmtheory.metrics.geometry import centered, cosine, effective_rank, etf_distance
from ufmtheory.metrics.semantic import (
    attribute_energy,
    attribute_projector,
    cka,
    etf_attribute_energy,
    pair_cosines,
    semantic_strength,
    shared_attribute_gap,
)

__all__ = [
    "centered",
    "cosine",
    "etf_distance",
    "effective_rank",
    "attribute_projector",
    "attribute_energy",
    "etf_attribute_energy",
    "semantic_strength",
    "cka",
    "shared_attribute_gap",
    "pair_cosines",
    "nc1",
    "equinorm",
    "equiangularity",
    "max_angle_deviation",
    "self_duality",
    "ncc_agreement",
    "phase_times",
    "gram_metrics",
    "trajectory_metrics",
]
