"""Analysis of trajectories: phase prediction and detection, theory-versus-model comparison."""

from ufmtheory.analysis.calibrate import Calibration, Validation, calibrate, input_geometry, validate
from ufmtheory.analysis.compare import CURVE_METRICS, Comparison, compare, variant_grid
from ufmtheory.analysis.estimates import phase_estimates
from ufmtheory.analysis.phases import PHASE_NAMES, Phases, detect_phases, predict_phases

__all__ = [
    "CURVE_METRICS",
    "Comparison",
    "compare",
    "variant_grid",
    "Calibration",
    "Validation",
    "calibrate",
    "validate",
    "input_geometry",
    "PHASE_NAMES",
    "Phases",
    "detect_phases",
    "phase_estimates",
    "predict_phases",
]
