"""Closed-form equilibria and exact mode dynamics (docs: Theory §4).

* :func:`etf_gram`: the simplex equiangular tight frame Gram.
* :func:`zhu`: the global minimiser of the regularised UFM on balanced one-hot designs
  [Zhu et al. 2021, arXiv 2105.02375], with its norms, or the zero solution when ``ε ≥ 1/K``.
* :func:`etf_mode_time` / :func:`etf_mode_u`: the exact ETF-mode flow ``du/dt = 2u/(e^u + K - 1)`` from an
  aligned balanced initialisation, solved in closed form with the exponential integral, and its inverse.
* :func:`end_state` (:mod:`.structured`), :func:`semantic_saddle` (:mod:`.saddle`): end states and the
  semantic saddle of the modified UFM on the exact symmetric reduction (docs: Theory §8, §9).
"""

from ufmtheory.equilibria.closed_form import (
    Equilibrium,
    centering,
    etf_gram,
    etf_mode_time,
    etf_mode_u,
    zhu,
)
from ufmtheory.equilibria.saddle import semantic_saddle
from ufmtheory.equilibria.structured import end_state, reduced_jacobian, reduced_rhs

__all__ = [
    "Equilibrium",
    "etf_gram",
    "centering",
    "zhu",
    "etf_mode_time",
    "etf_mode_u",
    "end_state",
    "semantic_saddle",
    "reduced_rhs",
    "reduced_jacobian",
]
