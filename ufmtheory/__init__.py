"""ufmtheory: theory and solvers for the unconstrained features model (UFM).

Entry point: ``import ufmtheory as ut``. The package is layered (docs: Architecture); each subpackage
imports only from the ones below it:
``designs`` → ``algebra`` → ``metrics`` → ``models`` → ``trajectory`` → ``solvers`` → ``programs`` →
``equilibria`` → ``analysis`` → ``baseline`` (torch, imported on first use) → ``plotting``, ``report`` →
``experiments`` → ``cli``.

Example:
    >>> import ufmtheory as ut
    >>> prob = ut.UFM(ut.designs.factorial((3, 3)), dim=9, lam_W=5e-3, lam_H=5e-3)
    >>> traj = ut.gradient_flow(prob, 1e4, init=ut.init.small(prob, 1e-2, seed=0), saveat=20)
    >>> bool(abs(traj.gram_H[-1] - ut.equilibria.zhu(prob).gram_H).max() < 1e-5)
    True
"""

from ufmtheory import algebra, analysis, designs, equilibria, metrics, plotting, programs, solvers
from ufmtheory.algebra import StructuredGrams
from ufmtheory.analysis import (
    Comparison,
    Phases,
    calibrate,
    compare,
    detect_phases,
    predict_phases,
    validate,
    variant_grid,
)
from ufmtheory.designs import Design
from ufmtheory.equilibria import (
    Equilibrium,
    end_state,
    etf_gram,
    etf_mode_time,
    etf_mode_u,
    semantic_saddle,
    zhu,
)
from ufmtheory.models import UFM, ModifiedUFM
from ufmtheory.solvers import (
    ReducedProblem,
    ReducedSolution,
    aligned_full_init,
    gradient_descent,
    gradient_flow,
    init,
    linear,
    optimize,
    reduced_solve,
)
from ufmtheory.trajectory import Trajectory, log_grid

__version__ = "0.2.0"

__all__ = [
    "algebra",
    "analysis",
    "designs",
    "equilibria",
    "init",
    "linear",
    "metrics",
    "plotting",
    "programs",
    "solvers",
    "Design",
    "UFM",
    "ModifiedUFM",
    "Trajectory",
    "StructuredGrams",
    "log_grid",
    "gradient_flow",
    "gradient_descent",
    "optimize",
    "reduced_solve",
    "ReducedProblem",
    "ReducedSolution",
    "aligned_full_init",
    "Equilibrium",
    "etf_gram",
    "zhu",
    "etf_mode_time",
    "etf_mode_u",
    "end_state",
    "semantic_saddle",
    "Phases",
    "detect_phases",
    "predict_phases",
    "compare",
    "calibrate",
    "validate",
    "Comparison",
    "variant_grid",
]

_SWEEPS = {
    "sweep": "ufmtheory.experiments.sweep",
    "load_sweep": "ufmtheory.experiments.sweep",
    "phase_diagram": "ufmtheory.experiments.phase_diagram",
    "scaling": "ufmtheory.experiments.phase_diagram",
    "training_sweep": "ufmtheory.experiments.training_sweep",
}


def __getattr__(name: str) -> object:
    # The torch baseline is imported on first use so that `import ufmtheory` stays torch-free and fast.
    if name in ("baseline", "GramRecorder", "PeakMonitor"):
        import importlib

        baseline = importlib.import_module("ufmtheory.baseline")
        return baseline if name == "baseline" else getattr(baseline, name)
    if name in _SWEEPS:  # sweeps bring xarray/zarr/dask: imported on first use too
        import importlib

        return getattr(importlib.import_module(_SWEEPS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
