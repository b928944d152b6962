"""Convex programmes, named by what they solve.

* :mod:`.scheme_lp`: linear programmes over association-scheme coefficients (vanishing-ridge end states of the
  modified UFM) and the regularised end state on the reduced coefficients (scipy only).
* :mod:`.max_margin`: nuclear-norm and UF max-margin SVMs of imbalanced / soft-label designs (cvxpy, imported
  when solving), the in-support log-odds and the closed-form proxies.
"""

from ufmtheory.programs.max_margin import (
    CLARABEL_MAX_SIZE,
    ConvexResult,
    ProxyGap,
    RegularizationPath,
    centred_support_proxy,
    choose_solver,
    gram_cosine,
    in_support_logits,
    nn_svm,
    proxy_gap,
    regularization_path,
    sel_matrix,
    support_matrix,
    uf_svm,
)
from ufmtheory.programs.scheme_lp import (
    LPResult,
    RegularisedEndState,
    end_state_lp,
    interaction_mask,
    lp_cost,
    lp_weights,
    reduced_ce,
    regularised_end_state,
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
    "uf_svm",
    "LPResult",
    "RegularisedEndState",
    "end_state_lp",
    "interaction_mask",
    "lp_cost",
    "lp_weights",
    "reduced_ce",
    "regularised_end_state",
]
