"""Convex programmes, named by what they solve.

* :mod:`.scheme_lp`: linear programmes over association-scheme coefficients (vanishing-ridge end states of the
  modified UFM) and the regularised end state on the reduced coefficients (scipy only).
* :mod:`.max_margin`: nuclear-norm and UF max-margin SVMs of imbalanced / soft-label designs (cvxpy, imported
  when solving) and the in-support log-odds.
* :mod:`.proxies`: closed-form proxies (centred support, SEL) and their gap to the optimum.
* :mod:`.paths`: the UFM's ridge path towards the max-margin geometry (gradient flow).
"""

from ufmtheory.programs.max_margin import (
    CLARABEL_MAX_SIZE,
    ConvexResult,
    choose_solver,
    in_support_logits,
    nn_svm,
    support_margins,
    support_matrix,
    uf_svm,
)
from ufmtheory.programs.paths import RegularizationPath, regularization_path
from ufmtheory.programs.proxies import ProxyGap, centred_support_proxy, gram_cosine, proxy_gap, sel_matrix
from ufmtheory.programs.scheme_lp import (
    LPResult,
    RegularizedEndState,
    end_state_lp,
    lp_cost,
    lp_weights,
    reduced_ce,
    regularized_end_state,
    scheme_margins,
)

__all__ = [
    "CLARABEL_MAX_SIZE",
    "ConvexResult",
    "ProxyGap",
    "RegularizationPath",
    "centred_support_proxy",
    "choose_solver",
    "gram_cosine",
    "in_support_logits",
    "nn_svm",
    "proxy_gap",
    "regularization_path",
    "sel_matrix",
    "support_matrix",
    "support_margins",
    "uf_svm",
    "LPResult",
    "RegularizedEndState",
    "end_state_lp",
    "lp_cost",
    "lp_weights",
    "reduced_ce",
    "regularized_end_state",
    "scheme_margins",
]
