"""The one front end of the flow solvers: argument checks, save grids, initial states, the integration loop.

Shared by :func:`ufmtheory.gradient_flow`, :func:`ufmtheory.gradient_descent`,
:func:`ufmtheory.reduced_solve` and :func:`ufmtheory.optimize`, so that ``t1``, ``saveat``, ``method``,
``rtol``/``atol``, ``max_evals``, ``init`` and ``scale`` mean the same thing in each:

* :func:`check_t1`, :func:`check_tolerances`, :func:`check_method`, :func:`check_max_evals`: the argument
  rules (``ValueError``/``TypeError`` naming the argument, before any work).
* :func:`resolve_saveat` (times in ``[0, t1]``) and :func:`step_grid` (integer step indices, for discrete runs
  such as gradient descent, optimizer runs and the baseline's snapshot steps).
* :func:`resolve_init` (flat parameter vector from ``None``, ``"small"``, ``"aligned"``, a dict of blocks or a
  flat array) and :func:`aligned_coefficients` (the reduced flow's aligned start): **the same** ``scale``
  gives the same starting Grams in the full and in the reduced solver (``scale`` is the size of the starting
  label Gram ``W Wᵀ``: its eigenvalues on the label modes; see :func:`ufmtheory.init.aligned`).
* :func:`integrate`: the log-time integration loop (scipy steppers driven by hand, dense output at the save
  times, an evaluation cap, non-finite detection) returning one of the statuses ``ok``, ``max_evals``,
  ``nonfinite``, ``failed``.

Example:
    >>> resolve_saveat(3, 100.0).tolist()
    [0.0, 0.01, 1.0, 100.0]
    >>> step_grid(100, 3).tolist()
    [0, 1, 10, 100]
"""

from __future__ import annotations

import math
from collections.abc import Callable, MutableSequence
from typing import Any

import numpy as np
from scipy.integrate import BDF, DOP853, LSODA, RK23, RK45, Radau

from ufmtheory import _validate
from ufmtheory.solvers import init as init_mod
from ufmtheory.trajectory import log_grid

__all__ = [
    "METHODS",
    "FLOW_METHODS",
    "SOLVERS",
    "DEFAULT_MAX_EVALS",
    "DEFAULT_SCALE",
    "MAX_SCALE",
    "AUTO_STIFF_MAX_PARAMS",
    "check_t1",
    "check_tolerances",
    "check_method",
    "check_max_evals",
    "choose_method",
    "resolve_saveat",
    "step_grid",
    "resolve_init",
    "aligned_coefficients",
    "integrate",
    "dense_snapshots",
]

SOLVERS = {"RK45": RK45, "DOP853": DOP853, "RK23": RK23, "LSODA": LSODA, "BDF": BDF, "Radau": Radau}
METHODS = ("auto", *SOLVERS)
"""``"auto"`` and scipy's steppers, accepted by every flow solver."""

FLOW_METHODS = (*METHODS, "gram")
"""What :func:`ufmtheory.gradient_flow` accepts: :data:`METHODS` and ``"gram"`` (the exact Gram flow,
:mod:`ufmtheory.solvers.gram_flow`)."""

DEFAULT_MAX_EVALS = 200_000
"""Default cap on right-hand-side (gradient) evaluations per solve: the longest flows of the test suite and
the benchmarks use < 30 000, while a runaway stiff solve (ridges of 1e300, init scales of 1e300) would
otherwise never end; reaching the cap gives status ``"max_evals"``."""

MAX_SCALE = init_mod.MAX_SCALE

DEFAULT_SCALE = 1e-6
"""Default ``scale`` of an aligned start: the starting label Gram ``W Wᵀ`` has eigenvalue 1e-6 on the label
modes (the same Gram size as ``init.small``'s default standard deviation 1e-3 gives with d = 1)."""

# Below this many parameters "auto" uses LSODA: it switches to BDF once the late flow turns stiff
# (ridge, soft labels), where explicit methods need steps ∝ t. Its finite-difference Jacobian costs
# n_params gradient evaluations, so large problems stay on the explicit DOP853.
AUTO_STIFF_MAX_PARAMS = 1000


def check_t1(t1: Any) -> float:
    """``t1`` as a float: a finite time > 0."""
    return _validate.positive("t1", t1)


def check_tolerances(rtol: Any, atol: Any) -> tuple[float, float]:
    """``(rtol, atol)``, each finite and in ``(0, 1)``."""
    return _validate.tolerance("rtol", rtol), _validate.tolerance("atol", atol)


def check_method(method: Any, allowed: tuple[str, ...] = METHODS) -> str:
    """``method``: one of ``allowed`` (default :data:`METHODS`: ``"auto"`` or one of scipy's steppers)."""
    return _validate.choice("method", method, allowed)


def check_max_evals(max_evals: Any) -> int | None:
    """``max_evals``: an integer >= 1, or ``None`` for no cap."""
    return None if max_evals is None else _validate.integer("max_evals", max_evals, low=1)


def choose_method(method: str, n_params: int) -> str:
    """Resolve ``method="auto"`` for the full flow: LSODA for problems with at most
    :data:`AUTO_STIFF_MAX_PARAMS` parameters, DOP853 otherwise; any other name is returned unchanged."""
    if method != "auto":
        return method
    return "LSODA" if n_params <= AUTO_STIFF_MAX_PARAMS else "DOP853"


def resolve_saveat(saveat: Any, t1: float) -> np.ndarray:
    """Save times ``(T,)`` in ``[0, t1]`` from ``saveat``.

    Args:
        saveat: ``None`` (``log_grid(t1)``: 0 and 200 log-spaced times), an int ``n >= 2``
            (``log_grid(t1, n)``), or a 1-D array of finite, strictly increasing times in ``[0, t1]``.
        t1: final time (checked by :func:`check_t1`).
    """
    if saveat is None:
        return log_grid(t1)
    if isinstance(saveat, int | np.integer) and not isinstance(saveat, bool):
        n = _validate.integer("saveat", saveat, low=2, high=10_000_000)
        return log_grid(t1, n=n)
    if isinstance(saveat, bool | str | bytes | float):
        raise TypeError(
            "saveat must be None, an int (number of log-spaced times) or a 1-D array of times,"
            f" got {saveat!r}"
        )
    ts = _validate.float_array("saveat", saveat, ndim=1, finite=False)
    if ts.size == 0:
        raise ValueError("saveat must not be empty")
    if not np.all(np.isfinite(ts)):
        raise ValueError("saveat times must be finite (found NaN or inf)")
    if np.any(np.diff(ts) <= 0):
        raise ValueError("saveat times must be strictly increasing")
    if ts[0] < 0 or ts[-1] > t1 * (1 + 1e-12):
        raise ValueError(f"saveat times must lie in [0, t1 = {t1}]")
    return ts


def step_grid(steps: int, saveat: Any) -> np.ndarray:
    """Integer step indices ``(T,)`` to save in ``[0, steps]``, always starting at 0.

    Args:
        steps: number of steps (>= 1).
        saveat: ``None`` (about 200 log-spaced steps), an int ``n >= 1`` (about ``n`` log-spaced steps; 0 and
            ``steps`` included), or a 1-D array of strictly increasing integer steps in ``[0, steps]``.

    Example:
        >>> step_grid(1000, 4).tolist()
        [0, 1, 10, 100, 1000]
    """
    steps = _validate.integer("steps", steps, low=1)
    if saveat is None:
        saveat = 200
    if isinstance(saveat, int | np.integer) and not isinstance(saveat, bool):
        n = _validate.integer("saveat", saveat, low=1, high=10_000_000)
        grid = np.unique(np.round(np.logspace(0, np.log10(max(steps, 1)), n)).astype(np.int64))
        return np.concatenate([[0], grid[grid <= steps]])
    if isinstance(saveat, bool | str | bytes | float):
        raise TypeError(
            f"saveat must be None, an int, or a 1-D array of integer step indices, got {saveat!r}"
        )
    grid = np.asarray(saveat)
    if grid.ndim != 1 or grid.size == 0 or not np.issubdtype(grid.dtype, np.integer):
        raise ValueError("saveat must be None, an int, or a 1-D array of integer step indices")
    if np.any(np.diff(grid) <= 0) or grid[0] < 0 or grid[-1] > steps:
        raise ValueError(f"saveat steps must be strictly increasing and lie in [0, steps = {steps}]")
    return grid.astype(np.int64)


def resolve_init(problem: Any, init: Any, scale: float | None = None) -> np.ndarray:
    """Flat float64 parameter vector ``(n_params,)`` of the starting point.

    Args:
        problem: the problem (``pack``, ``n_params``, ``param_shapes``).
        init: ``None`` or ``"small"`` (:func:`ufmtheory.init.small` with standard deviation ``scale``,
            default 1e-3, seed 0), ``"aligned"`` (:func:`ufmtheory.init.aligned` at ``scale``, default
            :data:`DEFAULT_SCALE`: the starting Grams of :func:`ufmtheory.reduced_solve` at the same scale),
            a dict of blocks, or a flat array of ``n_params`` finite values.
        scale: the initialiser's scale (only with ``None``/``"small"``/``"aligned"``).
    """
    if init is None or isinstance(init, str):
        kind = "small" if init is None else _validate.choice("init", init, ("small", "aligned"))
        if kind == "small":
            return problem.pack(init_mod.small(problem, 1e-3 if scale is None else scale, seed=0))
        return problem.pack(init_mod.aligned(problem, DEFAULT_SCALE if scale is None else scale))
    if scale is not None:
        raise ValueError("scale applies to init=None, 'small' or 'aligned', not to explicit parameters")
    if isinstance(init, dict):
        try:
            return problem.pack(init)
        except ValueError as exc:
            raise ValueError(f"init: {exc}") from exc
    theta = _validate.float_array("init", init, finite=False).ravel().copy()
    if theta.size != problem.n_params:
        raise ValueError(f"init must have {problem.n_params} entries (flat) or be a dict of blocks")
    if not np.all(np.isfinite(theta)):
        raise ValueError("init contains NaN or inf")
    return theta


def aligned_coefficients(
    kappa: np.ndarray, scale: float, ratio: str = "balanced"
) -> tuple[np.ndarray, np.ndarray]:
    """Scheme coefficients ``(w0, h0)``, each ``(n_S,)``, of the aligned start at ``scale``.

    ``w_S = sqrt(scale)`` on every mode ``S ≠ ∅`` (``w_∅ = 0``: the all-ones direction carries no gradient),
    so ``W Wᵀ = scale · C_K`` exactly as :func:`ufmtheory.init.aligned` on a one-hot design; ``h_S =
    sqrt(κ_S) w_S`` (``ratio="balanced"``: the balanced point of the modified flow, ``WᵀW = EEᵀ``; again what
    :func:`ufmtheory.init.aligned` builds) or ``h_S = w_S`` (``"equal"``).

    Example:
        >>> w0, h0 = aligned_coefficients(np.array([1.0, 4.0, 1.0]), 1e-6)
        >>> w0.tolist(), h0.tolist()
        ([0.0, 0.001, 0.001], [0.0, 0.002, 0.001])
    """
    scale = _validate.real("scale", scale, low=0.0, low_open=True, high=MAX_SCALE)
    ratio = _validate.choice("init_ratio", ratio, ("balanced", "equal"))
    kappa = np.asarray(kappa, dtype=np.float64)
    w0 = np.full(kappa.shape[0], math.sqrt(scale))
    w0[0] = 0.0
    h0 = np.sqrt(kappa) * w0 if ratio == "balanced" else w0.copy()
    return w0, h0


_IMPLICIT = ("LSODA", "BDF", "Radau")
_STALL_REL = 1e-13
_STALL_STEPS = 100


class _Stop(Exception):
    """Raised inside the right-hand side to end an integration with a status."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def integrate(
    rhs: Callable[[float, np.ndarray], np.ndarray],
    y0: np.ndarray,
    s1: float,
    s_eval: np.ndarray,
    record: Callable[[np.ndarray], None],
    *,
    method: str | Callable[..., Any],
    rtol: float,
    atol: float,
    max_evals: int | None,
    variable: str = "s",
    progress: Callable[[float], None] | None = None,
    jac: Callable[[float, np.ndarray], Any] | None = None,
    segments: MutableSequence[tuple[float, float, Any]] | None = None,
) -> tuple[str, str, int]:
    """Integrate ``dy/ds = rhs(s, y)`` from ``s = 0`` to ``s1``, calling ``record(y)`` at each ``s_eval``.

    The scipy stepper is driven by hand (as ``solve_ivp`` does, so the numbers are the same) and each save
    time is recorded from the step's dense output as soon as a step passes it, so no stack of states is held.

    Args:
        rhs: right-hand side; must return a fresh array.
        y0: (n,) finite initial state.
        s1: end of the integration variable (> 0).
        s_eval: (T,) increasing save points in ``[0, s1]``.
        record: called with the state at each save point, in order.
        method: a scipy stepper name (:data:`SOLVERS`), or a stepper class with scipy's ``OdeSolver``
            interface (called as ``method(rhs, 0, y0, s1, rtol=, atol=, jac=)``; its ``name`` attribute, if
            any, names it in messages).
        rtol, atol: stepper tolerances.
        max_evals: cap on ``rhs`` evaluations (``None``: none).
        variable: the name of ``s`` in messages (``"s"`` for log-time, ``"t"``).
        progress: called with the current ``s`` after each step.
        jac: optional Jacobian ``d rhs/dy: (n, n)`` of the right-hand side, handed to the implicit steppers
            (LSODA, BDF, Radau) instead of their finite differences (which cost ``n`` evaluations each);
            ``ValueError`` with an explicit stepper, which would ignore it. A stepper class gets it as it
            is (whatever Jacobian object that class takes).
        segments: when a list (or a bounded ``deque``: the last steps only), each accepted step appends
            ``(s_old, s_new, interpolant)`` (the stepper's dense output, ``interpolant(s) -> y``), so that the
            caller can evaluate the solution anywhere at the stepper's accuracy; costs the dense output on
            every step (DOP853: 3 evaluations per step) and memory of order ``8 n`` floats per step.

    Returns:
        ``(status, message, n_evals)`` with status ``"ok"``, ``"max_evals"``, ``"nonfinite"`` (a non-finite
        derivative or state) or ``"failed"`` (the stepper gave up; its message).
    """
    if isinstance(method, str):
        if jac is not None and method not in _IMPLICIT:
            raise ValueError(f"jac applies to the implicit steppers {_IMPLICIT}, not to method={method!r}")
        stepper, name = SOLVERS[method], method
    else:
        stepper, name = method, str(getattr(method, "name", getattr(method, "__name__", "stepper")))
    n_evals = 0

    def counted(s: float, y: np.ndarray) -> np.ndarray:
        nonlocal n_evals
        if max_evals is not None and n_evals >= max_evals:
            raise _Stop("max_evals", f"max_evals = {max_evals} evaluations reached at {variable} = {s:.6g}")
        n_evals += 1
        dy = rhs(s, y)
        if not np.isfinite(dy).all():  # the method, not np.all: this runs on every evaluation
            raise _Stop("nonfinite", f"non-finite derivative at {variable} = {s:.6g}")
        return dy

    idx = int(np.searchsorted(s_eval, 0.0, side="right"))
    for _ in range(idx):
        record(y0)
    status, message = "ok", ""
    # A step size below this, step after step, is a stall (e.g. ridges of 1e300: the implicit steppers
    # retry forever near one point); it ends the run instead of exhausting max_evals slowly.
    tiny, stalled = _STALL_REL * max(1.0, abs(s1)), 0
    try:
        extra = {} if jac is None else {"jac": jac}
        solver = stepper(counted, 0.0, y0, s1, rtol=rtol, atol=atol, **extra)
        while solver.status == "running":
            step_message = solver.step()
            if solver.status == "failed":
                status, message = "failed", f"{name}: {step_message} at {variable} = {solver.t:.6g}"
                break
            if not np.isfinite(solver.y).all():
                status, message = "nonfinite", f"non-finite state at {variable} = {solver.t:.6g}"
                break
            stalled = stalled + 1 if (solver.step_size or 0.0) < tiny else 0
            if stalled >= _STALL_STEPS:
                status = "failed"
                message = (
                    f"{name}: {_STALL_STEPS} steps in a row below {tiny:.3g} at {variable} = {solver.t:.6g}"
                    " (too stiff for the integrator; check the scales of the problem)"
                )
                break
            stop = int(np.searchsorted(s_eval, solver.t, side="right"))
            if stop > idx or segments is not None:
                interpolant = solver.dense_output()  # one per step: RK steppers evaluate extra stages for it
                if segments is not None:
                    segments.append((solver.t_old, solver.t, interpolant))
                for s in s_eval[idx:stop]:
                    record(interpolant(s))
                idx = stop
            if progress is not None:
                progress(solver.t)
    except _Stop as stopped:
        status, message = stopped.status, stopped.message
    except (OverflowError, FloatingPointError, ZeroDivisionError) as exc:
        status, message = "nonfinite", f"{type(exc).__name__} in the right-hand side: {exc}"
    return status, message, n_evals


def dense_snapshots(
    segments: list[tuple[float, float, Any]],
    log_time: bool,
    snapshot: Callable[[np.ndarray], tuple[Any, Any, float]],
) -> Callable[[float], tuple[Any, Any, float]]:
    """``dense(t) -> snapshot(y(t))`` from the per-step interpolants of ``integrate(..., segments=[])``.

    Args:
        segments: ``(s_old, s_new, interpolant)`` per accepted step, in order.
        log_time: the integration variable is ``s = ln(1 + t)`` (else ``s = t``).
        snapshot: state ``y`` → ``(gram_H, gram_W, loss)``.
    """
    starts = np.array([seg[0] for seg in segments])

    def dense(t: float) -> tuple[Any, Any, float]:
        s = math.log1p(t) if log_time else float(t)
        i = min(max(int(np.searchsorted(starts, s, side="right")) - 1, 0), len(segments) - 1)
        return snapshot(segments[i][2](s))

    return dense
