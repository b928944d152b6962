"""Analysis of trajectories: phase prediction and detection, theory-versus-model comparison."""

from ufmtheory.analysis.calibration import Calibration, calibrate
from ufmtheory.analysis.comparison import compare
from ufmtheory.analysis.comparison_result import Comparison
from ufmtheory.analysis.estimates import phase_estimates
from ufmtheory.analysis.geometry import input_geometry
from ufmtheory.analysis.phases import PHASE_NAMES, Phases, detect_phases, predict_phases
from ufmtheory.analysis.timemap import CURVE_METRICS
from ufmtheory.analysis.validation import Validation, validate
from ufmtheory.analysis.variants import variant_grid

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
