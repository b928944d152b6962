"""Solvers: adaptive gradient flow and exact discrete gradient descent, both returning a Trajectory.

:func:`gradient_flow` integrates ``dθ/dt = -∇f(θ)`` with scipy's adaptive integrators. Unregularised flows
must run for many decades (logits grow like ``ln t``) so, by default, the integrator works in the
log-time variable ``s = ln(1 + t)``: ``dθ/ds = -(1 + t) ∇f(θ)``. Late in an unregularised one-hot flow
``∇f ~ 1/t`` so the right-hand side stays O(1) and the step count grows with ``ln t1`` rather than ``t1``.
With ridge or soft labels the curvature stays O(1) late and the flow turns stiff; ``method="auto"`` then
relies on LSODA's switch to an implicit method (small problems).

:func:`gradient_descent` runs ``θ ← θ - lr ∇f(θ)`` exactly; its time axis is ``t = lr × steps`` (the same
gradient-flow time), so the two can be compared directly: GD approaches the flow with first-order error.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.integrate import BDF, DOP853, LSODA, RK23, RK45, Radau

from ufmtheory.trajectory import Trajectory, log_grid

__all__ = ["gradient_flow", "gradient_descent", "resolve_init", "choose_method"]

_METHODS = ("auto", "RK45", "DOP853", "RK23", "LSODA", "BDF", "Radau")
# Below this many parameters "auto" uses LSODA: it switches to BDF once the late flow turns stiff
# (ridge, soft labels), where explicit methods need steps ∝ t. Its finite-difference Jacobian costs
# n_params gradient evaluations, so large problems stay on the explicit DOP853.
AUTO_STIFF_MAX_PARAMS = 1000


def choose_method(method: str, n_params: int) -> str:
    """Resolve ``method="auto"``: LSODA for problems with at most ``AUTO_STIFF_MAX_PARAMS`` parameters,
    DOP853 otherwise; any other name is returned unchanged."""
    if method != "auto":
        return method
    return "LSODA" if n_params <= AUTO_STIFF_MAX_PARAMS else "DOP853"


def resolve_init(problem: Any, init: Any) -> np.ndarray:
    """Flat float64 parameter vector from ``init``: a dict of blocks, a flat array, or ``None``
    (small random init, scale 1e-3, seed 0)."""
    from ufmtheory.solvers import init as init_mod

    if init is None:
        init = init_mod.small(problem, scale=1e-3, seed=0)
    if isinstance(init, dict):
        try:
            return problem.pack(init)
        except ValueError as exc:
            raise ValueError(f"init: {exc}") from exc
    theta = np.array(init, dtype=np.float64).ravel()
    if theta.size != problem.n_params:
        raise ValueError(f"init must have {problem.n_params} entries (flat) or be a dict of blocks")
    if not np.all(np.isfinite(theta)):
        raise ValueError("init contains NaN or inf")
    return theta


def _resolve_saveat(saveat: Any, t1: float) -> np.ndarray:
    if saveat is None:
        return log_grid(t1)
    if isinstance(saveat, (int, np.integer)) and not isinstance(saveat, bool):
        if saveat < 2:
            raise ValueError(f"saveat as an int (number of log-spaced times) must be >= 2, got {saveat}")
        return log_grid(t1, n=int(saveat))
    ts = np.asarray(saveat, dtype=np.float64)
    if ts.ndim != 1 or ts.size == 0:
        raise ValueError("saveat must be None, an int (number of log-spaced points) or a 1-D array of times")
    if not np.all(np.isfinite(ts)) or np.any(np.diff(ts) <= 0):
        raise ValueError("saveat times must be finite and strictly increasing")
    if ts[0] < 0 or ts[-1] > t1 * (1 + 1e-12):
        raise ValueError(f"saveat times must lie in [0, t1 = {t1}]")
    return ts


def _snapshot(problem: Any, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    params = problem.unpack(theta)
    gH, gW = problem.grams(params)
    return gH, gW, problem.loss(params)


_SOLVERS = {"RK45": RK45, "DOP853": DOP853, "RK23": RK23, "LSODA": LSODA, "BDF": BDF, "Radau": Radau}


class _Recorder:
    """Snapshots (Grams, loss, optional parameters) written into preallocated arrays as a run goes.

    A run then keeps one parameter vector alive instead of one per saved time (bench_flow: K = 256 with
    201 saved times peaked at 623 MiB for a 1 MiB state when whole states were kept).
    """

    def __init__(self, problem: Any, n: int, save_params: bool) -> None:
        V, m = problem.design.V, problem.design.m
        self.problem = problem
        self.gram_H = np.empty((n, m, m))
        self.gram_W = np.empty((n, V, V))
        self.loss = np.empty(n)
        self.params = (
            {k: np.empty((n, *shape)) for k, shape in problem.param_shapes.items()} if save_params else None
        )
        self.count = 0

    def record(self, theta: np.ndarray) -> None:
        i = self.count
        self.gram_H[i], self.gram_W[i], self.loss[i] = _snapshot(self.problem, theta)
        if self.params is not None:
            for name, block in self.problem.unpack(theta).items():
                self.params[name][i] = block
        self.count += 1

    def collect(self, ts: np.ndarray) -> dict[str, Any]:
        n = self.count
        params = None if self.params is None else {k: v[:n] for k, v in self.params.items()}
        return {
            "ts": ts[:n],
            "gram_H": self.gram_H[:n],
            "gram_W": self.gram_W[:n],
            "loss": self.loss[:n],
            "params": params,
        }


def _progress_bar(progress: bool, total: float, desc: str) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    if isinstance(total, (int, np.integer)):
        return tqdm(total=int(total), desc=desc, unit="step")
    # tqdm prints a float count with all its digits (11.519999999999973/11.513): format it here; _advance
    # keeps the count <= total (no clamp warning, no negative time left).
    return tqdm(
        total=total, desc=desc, bar_format="{l_bar}{bar}| {n:.4g}/{total:.4g} [{elapsed}<{remaining}]"
    )


def _advance(bar: Any, position: float) -> None:
    """Move a float progress bar to ``position`` (capped at its total; never backwards)."""
    target = min(float(position), bar.total)
    if target > bar.n:
        bar.update(target - bar.n)
        bar.n = min(bar.n, bar.total)  # n + (target - n) can round one ulp past the total


def gradient_flow(
    problem: Any,
    t1: float,
    *,
    init: Any = None,
    saveat: Any = None,
    method: str = "auto",
    rtol: float = 1e-8,
    atol: float = 1e-10,
    log_time: bool = True,
    save_params: bool = False,
    progress: bool = False,
    max_evals: int | None = None,
) -> Trajectory:
    """Integrate the gradient flow ``dθ/dt = -∇f(θ)`` of ``problem`` from ``t = 0`` to ``t1``.

    Args:
        problem: a problem (e.g. :class:`ufmtheory.UFM`) with ``flat_loss_and_grad``, ``pack``/``unpack``
            and ``grams``.
        t1: final gradient-flow time (> 0).
        init: initial parameters (dict of blocks, flat vector, or ``None`` for ``init.small(..., 1e-3)``).
        saveat: times at which Grams are saved: an array in ``[0, t1]``, an int ``n`` (``log_grid(t1, n)``),
            or ``None`` (``log_grid(t1)``: 0 and 200 log-spaced times).
        method: ``"auto"`` (default: LSODA for problems with at most 1000 parameters, which handles the
            stiff late phase of regularised and soft-label flows; DOP853 above that) or one of scipy's
            ``solve_ivp`` methods: RK45, DOP853 (efficient at tight tolerances), RK23, LSODA, BDF, Radau.
        rtol: relative tolerance of the integrator.
        atol: absolute tolerance of the integrator.
        log_time: integrate in ``s = ln(1 + t)`` (default), which keeps step counts logarithmic in ``t1``.
        save_params: also store the parameters at every saved time (``Trajectory.params``).
        progress: show a tqdm progress bar (in units of the integration variable).
        max_evals: stop with a failed status after this many gradient evaluations (``None``: no limit).

    Returns:
        :class:`~ufmtheory.trajectory.Trajectory` with ``time_unit="gf"``. ``status`` is ``"ok"`` or a
        message; on failure the saved times end where the integrator stopped.

    Example:
        >>> import ufmtheory as ut
        >>> prob = ut.UFM(ut.designs.factorial((3,)), dim=3, lam_W=1e-2, lam_H=1e-2)
        >>> traj = ut.gradient_flow(prob, 1e3, init=ut.init.small(prob, 0.1, seed=0), saveat=5)
        >>> traj.status, traj.gram_H.shape
        ('ok', (6, 3, 3))
    """
    if not isinstance(t1, (int, float, np.integer, np.floating)) or not math.isfinite(t1) or t1 <= 0:
        raise ValueError(f"t1 must be a finite number > 0, got {t1!r}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    for name, tol in (("rtol", rtol), ("atol", atol)):
        if not (isinstance(tol, (int, float)) and 0 < tol < 1):
            raise ValueError(f"{name} must be in (0, 1), got {tol!r}")
    t1 = float(t1)
    theta0 = resolve_init(problem, init)
    method = choose_method(method, theta0.size)
    ts = _resolve_saveat(saveat, t1)

    evals = 0
    bar = _progress_bar(
        progress,
        math.log1p(t1) if log_time else t1,
        "gradient flow, ln(1+t)" if log_time else "gradient flow, t",
    )

    def rhs(s: float, theta: np.ndarray) -> np.ndarray:
        nonlocal evals
        evals += 1
        if max_evals is not None and evals > max_evals:
            raise _Stop(f"max_evals={max_evals} gradient evaluations reached")
        _, g = problem.flat_loss_and_grad(theta)
        if not np.all(np.isfinite(g)):
            raise _Stop(f"non-finite gradient at {'s' if log_time else 't'} = {s:.6g}")
        if bar is not None:
            _advance(bar, s)
        g *= -math.exp(s) if log_time else -1.0  # g is freshly allocated by the problem: scale in place
        return g

    to_internal: Callable[[np.ndarray], np.ndarray] = np.log1p if log_time else (lambda x: x)
    s_eval = to_internal(ts)
    s_span = (0.0, float(to_internal(np.array([t1]))[0]))
    s_eval = np.clip(s_eval, s_span[0], s_span[1])
    start = time.perf_counter()
    status = "ok"
    recorder = _Recorder(problem, s_eval.size, save_params)
    # Step the integrator by hand (as solve_ivp does) and record each save time from the step's dense
    # output as soon as the step passes it, so no stack of whole states is ever held.
    idx = int(np.searchsorted(s_eval, s_span[0], side="right"))
    for _ in range(idx):
        recorder.record(theta0)
    try:
        solver = _SOLVERS[method](rhs, s_span[0], theta0, s_span[1], rtol=rtol, atol=atol)
        while solver.status == "running":
            message = solver.step()
            if solver.status == "failed":
                status = f"failed: {message}"
                break
            stop = int(np.searchsorted(s_eval, solver.t, side="right"))
            if stop > idx:
                interpolant = solver.dense_output()
                for s in s_eval[idx:stop]:
                    recorder.record(interpolant(s))
                idx = stop
    except _Stop as stopped:
        status = f"failed: {stopped}"
    finally:
        if bar is not None:
            if status == "ok":
                _advance(bar, bar.total)
            bar.close()
    wall = time.perf_counter() - start
    if recorder.count == 0:
        # Keep at least the initial state so the Trajectory is well formed and says where it stopped.
        recorder = _Recorder(problem, 1, save_params)
        recorder.record(theta0)
    n_saved = recorder.count
    data = recorder.collect(ts)
    return Trajectory(
        ts=data["ts"],
        gram_H=data["gram_H"],
        gram_W=data["gram_W"],
        loss=data["loss"],
        status=status,
        stats={
            "evaluations": evals,
            "saved": n_saved,
            "wall_time": wall,
            "log_time": log_time,
            "rtol": rtol,
            "atol": atol,
        },
        time_unit="gf",
        method=method,
        meta=problem.describe(),
        params=data["params"],
    )


class _Stop(Exception):
    """Raised inside the right-hand side to end an integration cleanly."""


def _step_grid(steps: int, saveat: Any) -> np.ndarray:
    if saveat is None:
        saveat = 200
    if isinstance(saveat, (int, np.integer)) and not isinstance(saveat, bool):
        if saveat < 1:
            raise ValueError(f"saveat as an int (number of log-spaced steps) must be >= 1, got {saveat}")
        grid = np.unique(np.round(np.logspace(0, np.log10(max(steps, 1)), int(saveat))).astype(np.int64))
        return np.concatenate([[0], grid[grid <= steps]])
    grid = np.asarray(saveat)
    if grid.ndim != 1 or grid.size == 0 or not np.issubdtype(grid.dtype, np.integer):
        raise ValueError("saveat must be None, an int, or a 1-D array of integer step indices")
    if np.any(np.diff(grid) <= 0) or grid[0] < 0 or grid[-1] > steps:
        raise ValueError(f"saveat steps must be strictly increasing and lie in [0, steps = {steps}]")
    return grid.astype(np.int64)


def gradient_descent(
    problem: Any,
    lr: float,
    steps: int,
    *,
    init: Any = None,
    saveat: Any = None,
    save_params: bool = False,
    progress: bool = False,
) -> Trajectory:
    """Exact discrete gradient descent ``θ_{k+1} = θ_k - lr ∇f(θ_k)``.

    Args:
        problem: a problem (e.g. :class:`ufmtheory.UFM`).
        lr: learning rate (> 0).
        steps: number of steps (>= 1).
        init: as in :func:`gradient_flow`.
        saveat: integer step indices to save, an int ``n`` (about n log-spaced steps) or ``None`` (200).
        save_params: also store the parameters at the saved steps.
        progress: show a tqdm progress bar.

    Returns:
        Trajectory whose ``ts = lr × step`` are gradient-flow times (``time_unit="gf"``; the step indices
        are in ``stats["steps_saved"]``). A non-finite loss stops the run with a failed status.

    Example:
        >>> import ufmtheory as ut
        >>> prob = ut.UFM(ut.designs.factorial((3,)), dim=3)
        >>> traj = ut.gradient_descent(prob, lr=0.5, steps=100, init=ut.init.small(prob, 0.1), saveat=4)
        >>> traj.ts.tolist()
        [0.0, 0.5, 2.5, 11.0, 50.0]
    """
    if (
        isinstance(lr, bool)
        or not isinstance(lr, (int, float, np.floating))
        or not (math.isfinite(lr) and lr > 0)
    ):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    theta = resolve_init(problem, init).copy()
    grid = _step_grid(int(steps), saveat)
    save_set = set(grid.tolist())
    recorder = _Recorder(problem, grid.size, save_params)
    saved_steps: list[int] = []
    status = "ok"
    bar = _progress_bar(progress, steps, "gradient descent")
    start = time.perf_counter()
    try:
        for k in range(int(steps) + 1):
            if k in save_set:
                recorder.record(theta)
                saved_steps.append(k)
            if k == steps:
                break
            loss, g = problem.flat_loss_and_grad(theta)
            if not (math.isfinite(loss) and np.all(np.isfinite(g))):
                status = f"failed: non-finite loss or gradient at step {k} (lr too large?)"
                break
            theta -= lr * g
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - start
    steps_arr = np.array(saved_steps, dtype=np.int64)
    data = recorder.collect(lr * steps_arr.astype(np.float64))
    return Trajectory(
        ts=data["ts"],
        gram_H=data["gram_H"],
        gram_W=data["gram_W"],
        loss=data["loss"],
        status=status,
        stats={
            "evaluations": int(min(steps, saved_steps[-1] + 1)),
            "wall_time": wall,
            "lr": float(lr),
            "steps_saved": steps_arr.tolist(),
        },
        time_unit="gf",
        method="gd",
        meta=problem.describe(),
        params=data["params"],
    )
