"""Analysis of trajectories: phase prediction and detection, theory-versus-model comparison."""

from ufmtheory.analysis.compare import CURVE_METRICS, Comparison, compare, variant_grid
from ufmtheory.analysis.phases import PHASE_NAMES, Phases, detect_phases, phase_estimates, predict_phases

__all__ = [
    "CURVE_METRICS",
    "Comparison",
    "compare",
    "variant_grid",
    "PHASE_NAMES",
    "Phases",
    "detect_phases",
    "phase_estimates",
    "predict_phases",
]
