"""Solvers: gradient flow and descent on the full parameters, and the exact reduced (association-scheme) flow.

:func:`gradient_flow`, :func:`gradient_descent` (:mod:`.flow`) integrate the full UFM / modified UFM;
:func:`reduced_solve` (:mod:`.reduced`) integrates the exact symmetric reduction (docs: Theory §6);
:mod:`.init` holds the initialisers, :mod:`.linear` the early-phase closed forms, :mod:`.symbolic` the
sympy-derived reduced right-hand sides.

Exact symmetric reductions of the (modified) UFM flow: association-scheme coefficients.

For one-hot factorial and hierarchical designs with aligned initialisation, the logits, ``HᵀH`` and ``WWᵀ``
stay in the Bose-Mesner algebra of the design's association scheme, spanned by orthogonal projectors
``P_S``. Writing ``W = Σ w_S P_S``, ``H = Σ h_S P_S`` the flow becomes an ODE on ``2 n_S`` coefficients
whose right-hand side (numpy in :mod:`.reduced_rhs`, checked against the sympy derivation in :mod:`.symbolic`)
costs ``O(n_S n_r)`` per call,
independent of K: the 1000×1000 factorial design (K = 10⁶) has 4 projectors and 4 relation classes.

* Factorial sizes ``A_1..A_F``: ``P_S = ⊗_{f∈S}(I - J/A_f) ⊗_{f∉S} J/A_f`` for ``S ⊆ [F]``; relation of
  two contexts = the set of factors where they differ.
* Hierarchical depth D, branching b: ``P_0 = J/K``, ``P_l = Q_l - Q_{l-1}`` with ``Q_l`` the projector
  onto vectors constant on the leaves below each level-l node; relation = height of the lowest common
  ancestor above the leaves (0: same leaf).

Example:
    >>> import ufmtheory as ut
    >>> from ufmtheory.solvers import reduced_solve
    >>> from ufmtheory.algebra import scheme
    >>> prob = ut.ModifiedUFM(ut.designs.factorial((2, 3)), dim=6, alpha=1.0, beta=1.0, lam_W=1e-3,
    ...                       lam_H=1e-3)
    >>> scheme(prob.design).labels
    ((), (0,), (1,), (0, 1))
    >>> sol = reduced_solve(prob, 1e4, saveat=10)
    >>> sol.status, sol.w.shape, sol.trajectory.gram_H.shape
    ('ok', (11, 4), (11, 6, 6))

Large designs give a structured :class:`~ufmtheory.Trajectory` (Grams as coefficients on the projectors,
see :class:`~ufmtheory.trajectory.StructuredGrams`) whose metrics come from the coefficients:

    >>> rp = ReducedProblem.from_parts(ut.algebra.factorial_scheme((1000, 1000)), alpha=1.0, beta=1.0)
    >>> traj = reduced_solve(rp, 1e6, saveat=20).trajectory
    >>> traj.structured, traj.gram_H.shape, traj.gram_H.coefficients.shape
    (True, (21, 1000000, 1000000), (21, 4))
    >>> m = traj.metrics(traj.scheme)
    >>> bool(m["semantic_strength"][-1] > 0.5)
    True
"""

from ufmtheory.solvers import init, linear
from ufmtheory.solvers._frontend import choose_method
from ufmtheory.solvers.flow import gradient_descent, gradient_flow
from ufmtheory.solvers.optimizer import optimize
from ufmtheory.solvers.reduced import (
    MATERIALISE_MAX_K,
    ReducedProblem,
    ReducedSolution,
    aligned_full_init,
    feature_coefficients,
    initial_coefficients,
    reduced_solve,
)

__all__ = [
    "init",
    "linear",
    "choose_method",
    "gradient_flow",
    "gradient_descent",
    "optimize",
    "ReducedProblem",
    "ReducedSolution",
    "reduced_solve",
    "initial_coefficients",
    "aligned_full_init",
    "feature_coefficients",
    "MATERIALISE_MAX_K",
]
