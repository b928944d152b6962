"""ufmtheory: theory and solvers for the unconstrained features model (UFM).

Entry point: ``import ufmtheory as ut``.

Example:
    >>> import ufmtheory as ut
    >>> prob = ut.UFM(ut.designs.factorial((3, 3)), dim=9, lam_W=5e-3, lam_H=5e-3)
    >>> traj = ut.gradient_flow(prob, 1e4, init=ut.init.small(prob, 1e-2, seed=0), saveat=20)
    >>> bool(abs(traj.gram_H[-1] - ut.equilibria.zhu(prob).gram_H).max() < 1e-5)
    True
"""

from . import convex, designs, equilibria, init, linear, metrics, phases, plotting, reduced, svm
from .compare import Comparison, compare, variant_grid  # the function shadows the module name on purpose
from .designs import Design
from .equilibria import Equilibrium, end_state, etf_gram, etf_mode_time, etf_mode_u, semantic_saddle, zhu
from .flow import gradient_descent, gradient_flow
from .models import UFM, ModifiedUFM
from .phases import Phases, detect_phases, predict_phases
from .reduced import ReducedProblem, ReducedSolution, aligned_full_init, reduced_flow, reduced_solve
from .trajectory import Trajectory, log_grid

__version__ = "0.1.0"

__all__ = [
    "Design",
    "Equilibrium",
    "Trajectory",
    "UFM",
    "ModifiedUFM",
    "convex",
    "compare",
    "Comparison",
    "variant_grid",
    "designs",
    "end_state",
    "semantic_saddle",
    "equilibria",
    "etf_gram",
    "etf_mode_time",
    "etf_mode_u",
    "gradient_descent",
    "gradient_flow",
    "init",
    "log_grid",
    "linear",
    "metrics",
    "phases",
    "Phases",
    "detect_phases",
    "predict_phases",
    "reduced",
    "svm",
    "reduced_flow",
    "reduced_solve",
    "ReducedProblem",
    "ReducedSolution",
    "aligned_full_init",
    "plotting",
    "zhu",
]


def __getattr__(name: str) -> object:
    # The torch baseline is imported on first use so that `import ufmtheory` stays torch-free and fast.
    if name == "baseline":
        import importlib

        return importlib.import_module(".baseline", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
