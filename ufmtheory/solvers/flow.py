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
from typing import Any

import numpy as np

from ufmtheory import _validate
from ufmtheory._results import finish, make_stats
from ufmtheory.models import Problem
from ufmtheory.solvers._frontend import (
    DEFAULT_MAX_EVALS,
    FLOW_METHODS,
    check_max_evals,
    check_method,
    check_t1,
    check_tolerances,
    dense_snapshots,
    integrate,
    resolve_init,
    resolve_saveat,
    step_grid,
)
from ufmtheory.solvers.gram_flow import check_gram_problem, choose_flow_method, solve_gram_flow
from ufmtheory.trajectory import Trajectory

__all__ = ["gradient_flow", "gradient_descent"]


def _snapshot(problem: Any, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    params = problem.unpack(theta)
    gH, gW = problem.grams(params)
    return gH, gW, problem.loss(params)


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


def _normalised_ridge_note(problem: Any, theta0: np.ndarray, t: float) -> str:
    """Why a normalised flow with a ridge on the raw features stops early ('' for other problems).

    The loss cannot see the raw features' scale, which the ridge shrinks (``‖E‖ ∝ e^{-λ_E t}`` exactly for a
    ridge on E), so the feature direction moves at a rate ∝ ``(r/n)²`` (n: the raw columns' norm) that grows
    like ``e^{2λt}``: the flow stays well defined but no integrator follows it once that factor is huge
    (docs: modified_ufm.md, the stiff late limit). A small initial scale makes it large from the start.
    """
    if getattr(problem, "normalize", None) is None:
        return ""
    lam = problem.lam_E if problem.ridge == "E" else problem.lam_H
    if not lam:
        return ""
    E = problem.unpack(theta0).get("E")
    start = ""
    if E is not None and getattr(problem, "X_tilde", None) is not None:
        n0 = float(np.sqrt(np.mean(np.sum((E @ problem.X_tilde) ** 2, axis=0))))
        start = f" from (r/n)² = {(problem.normalize / n0) ** 2:.3g} at t = 0 (n: the raw columns' rms norm)"
    growth = math.exp(min(2.0 * lam * float(t), 700.0))
    return (
        f" (normalised features with a ridge on {problem.ridge}, λ = {lam:.3g}: the loss cannot see the raw"
        " features' scale, which the ridge shrinks, so the feature direction's rate grows like e^(2λt) ="
        f" {growth:.3g} by t = {float(t):.4g}{start}; once that rate is huge the flow is too stiff to follow."
        " ufmtheory.reduced_solve continues it in its adiabatic limit where W and the direction have"
        " converged: docs, modified_ufm.md)"
    )


def check_problem(problem: Any) -> Problem:
    """``problem`` itself when it implements :class:`~ufmtheory.models.Problem`, else ``TypeError``."""
    if not isinstance(problem, Problem):
        raise TypeError(
            f"problem must be a ufmtheory problem (UFM, ModifiedUFM, ...), got {type(problem).__name__}"
        )
    return problem


def gradient_flow(
    problem: Problem,
    t1: float,
    *,
    init: Any = None,
    scale: float | None = None,
    saveat: Any = None,
    method: str = "auto",
    rtol: float = 1e-8,
    atol: float = 1e-10,
    log_time: bool = True,
    save_params: bool = False,
    dense_output: bool = False,
    progress: bool = False,
    max_evals: int | None = DEFAULT_MAX_EVALS,
    throw: bool = False,
) -> Trajectory:
    """Integrate the gradient flow ``dθ/dt = -∇f(θ)`` of ``problem`` from ``t = 0`` to ``t1``.

    Args:
        problem: a :class:`~ufmtheory.models.Problem` (e.g. :class:`ufmtheory.UFM`).
        t1: final gradient-flow time (> 0).
        init: the start: ``None``/``"small"`` (``init.small(problem, scale or 1e-3, seed=0)``), ``"aligned"``
            (``init.aligned(problem, scale or 1e-6)``: the same starting Grams as
            :func:`ufmtheory.reduced_solve` at the same ``scale``), a dict of blocks or a flat vector.
        scale: the initialiser's scale (with ``init`` ``None``, ``"small"`` or ``"aligned"`` only).
        saveat: times at which Grams are saved: an array in ``[0, t1]``, an int ``n`` (``log_grid(t1, n)``),
            or ``None`` (``log_grid(t1)``: 0 and 200 log-spaced times).
        method: ``"auto"`` (default: LSODA for problems with at most 1000 parameters, which handles the
            stiff late phase of regularised and soft-label flows; above that ``"gram"`` when the flow is
            stiff and the Gram state is small, see :func:`~ufmtheory.solvers.gram_flow.choose_flow_method`,
            else DOP853), ``"gram"`` (the exact flow of the Grams ``W Wᵀ``, ``EᵀE``, ``W E`` with an
            analytic Jacobian, BDF with Newton solves on ``W E`` alone; UFM and unnormalised ModifiedUFM
            with ``dim >= V + n``; its cost does not depend on d; no parameters, so not with
            ``save_params``) or one of scipy's ``solve_ivp``
            methods: RK45, DOP853 (efficient at tight tolerances), RK23, LSODA, BDF, Radau.
        rtol: relative tolerance of the integrator, in (0, 1).
        atol: absolute tolerance of the integrator, in (0, 1).
        log_time: integrate in ``s = ln(1 + t)`` (default), which keeps step counts logarithmic in ``t1``.
        save_params: also store the parameters at every saved time (``Trajectory.params``; not with
            ``method="gram"``: ``ValueError``; ``"auto"`` then stays on the parameter flow).
        dense_output: keep the integrator's continuous output (``Trajectory.dense``), so that
            ``Trajectory.at(t)`` is accurate to the solver's tolerance at any ``t``, not only at saved times
            (the saved-grid interpolation is O(h⁴): ~1e-4 relative between the default 201 points of a fast
            flow). Costs the dense output on every step (DOP853: 3 more evaluations per step) and about
            8 × n_params floats per step of memory; in memory only (not written by ``Trajectory.save``).
        progress: show a tqdm progress bar (in units of the integration variable).
        max_evals: stop with status ``"max_evals"`` after this many gradient evaluations (default 200 000;
            ``None``: no cap).
        throw: raise :class:`~ufmtheory._results.SolverError` instead of returning a result that is not ok.

    Returns:
        :class:`~ufmtheory.trajectory.Trajectory` with ``time_unit="gf"``; ``status`` ``"ok"``,
        ``"max_evals"``, ``"nonfinite"`` or ``"failed"`` (then the saved times end where the run stopped and
        ``message`` says why); ``stats``: ``n_evals``, ``wall_time_s``, ``saved``, ``log_time``, ``rtol``,
        ``atol``.

    Example:
        >>> import ufmtheory as ut
        >>> prob = ut.UFM(ut.designs.factorial((3,)), dim=3, lam_W=1e-2, lam_H=1e-2)
        >>> traj = ut.gradient_flow(prob, 1e3, init=ut.init.small(prob, 0.1, seed=0), saveat=5)
        >>> traj.status, traj.gram_H.shape
        ('ok', (6, 3, 3))
    """
    problem = check_problem(problem)
    t1 = check_t1(t1)
    method = check_method(method, FLOW_METHODS)
    rtol, atol = check_tolerances(rtol, atol)
    max_evals = check_max_evals(max_evals)
    log_time = _validate.flag("log_time", log_time)
    save_params = _validate.flag("save_params", save_params)
    dense_output = _validate.flag("dense_output", dense_output)
    if method == "gram":
        if save_params:
            raise ValueError(
                "save_params=True needs the parameter flow: method='gram' evolves only the Grams W Wᵀ, EᵀE"
                " and W E, which fix the parameters up to a rotation (use another method)"
            )
        check_gram_problem(problem)  # ValueError for problems without a (stable) Gram flow, before any work
    ts = resolve_saveat(saveat, t1)
    theta0 = resolve_init(problem, init, scale)
    method = choose_flow_method(method, problem, theta0.size, save_params)

    bar = _progress_bar(
        progress,
        math.log1p(t1) if log_time else t1,
        "gradient flow, ln(1+t)" if log_time else "gradient flow, t",
    )
    if method == "gram":
        done = False
        try:
            traj = solve_gram_flow(
                problem,
                theta0,
                t1,
                ts,
                rtol=rtol,
                atol=atol,
                max_evals=max_evals,
                log_time=log_time,
                dense_output=dense_output,
                progress=None if bar is None else (lambda s: _advance(bar, s)),
            )
            done = traj.status == "ok"
        finally:
            if bar is not None:
                if done:
                    _advance(bar, bar.total)
                bar.close()
        return finish(traj, throw)

    def rhs(s: float, theta: np.ndarray) -> np.ndarray:
        _, g = problem.flat_loss_and_grad(theta)
        g *= -math.exp(s) if log_time else -1.0  # g is freshly allocated by the problem: scale in place
        return g

    s1 = math.log1p(t1) if log_time else t1
    s_eval = np.clip(np.log1p(ts) if log_time else ts, 0.0, s1)
    start = time.perf_counter()
    recorder = _Recorder(problem, s_eval.size, save_params)
    segments: list[tuple[float, float, Any]] | None = [] if dense_output else None
    status, message, n_evals = "failed", "interrupted", 0
    try:
        status, message, n_evals = integrate(
            rhs,
            theta0,
            s1,
            s_eval,
            recorder.record,
            method=method,
            rtol=rtol,
            atol=atol,
            max_evals=max_evals,
            variable="s" if log_time else "t",
            progress=None if bar is None else (lambda s: _advance(bar, s)),
            segments=segments,
        )
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
    data = recorder.collect(ts)
    if status == "ok" and not (np.all(np.isfinite(data["loss"])) and np.all(np.isfinite(data["gram_H"]))):
        status, message = "nonfinite", "non-finite loss or Grams at a saved time"
    if status != "ok":
        message += _normalised_ridge_note(problem, theta0, data["ts"][-1])
    traj = Trajectory(
        ts=data["ts"],
        gram_H=data["gram_H"],
        gram_W=data["gram_W"],
        loss=data["loss"],
        status=status,
        message=message,
        stats=make_stats(n_evals, wall, saved=recorder.count, log_time=log_time, rtol=rtol, atol=atol),
        time_unit="gf",
        method=method,
        meta=problem.describe(),
        params=data["params"],
        dense=None if not segments else dense_snapshots(segments, log_time, lambda y: _snapshot(problem, y)),
    )
    return finish(traj, throw)


def gradient_descent(
    problem: Problem,
    lr: float,
    steps: int,
    *,
    init: Any = None,
    scale: float | None = None,
    saveat: Any = None,
    save_params: bool = False,
    progress: bool = False,
    throw: bool = False,
) -> Trajectory:
    """Exact discrete gradient descent ``θ_{k+1} = θ_k - lr ∇f(θ_k)``.

    Args:
        problem: a :class:`~ufmtheory.models.Problem` (e.g. :class:`ufmtheory.UFM`).
        lr: learning rate (> 0).
        steps: number of steps (>= 1).
        init, scale: as in :func:`gradient_flow`.
        saveat: integer step indices to save, an int ``n`` (about n log-spaced steps) or ``None`` (200)
            (:func:`ufmtheory.solvers._frontend.step_grid`).
        save_params: also store the parameters at the saved steps.
        progress: show a tqdm progress bar.
        throw: raise :class:`~ufmtheory._results.SolverError` instead of returning a result that is not ok.

    Returns:
        Trajectory whose ``ts = lr × step`` are gradient-flow times (``time_unit="gf"``; the step indices
        are in ``stats["steps_saved"]``). A non-finite loss or gradient stops the run with status
        ``"nonfinite"``.

    Example:
        >>> import ufmtheory as ut
        >>> prob = ut.UFM(ut.designs.factorial((3,)), dim=3)
        >>> traj = ut.gradient_descent(prob, lr=0.5, steps=100, init=ut.init.small(prob, 0.1), saveat=4)
        >>> traj.ts.tolist()
        [0.0, 0.5, 2.5, 11.0, 50.0]
    """
    problem = check_problem(problem)
    lr = _validate.positive("lr", lr)
    steps = _validate.integer("steps", steps, low=1)
    grid = step_grid(steps, saveat)
    theta = resolve_init(problem, init, scale).copy()
    save_set = set(grid.tolist())
    recorder = _Recorder(problem, grid.size, save_params)
    saved_steps: list[int] = []
    status, message, n_evals = "ok", "", 0
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
            n_evals += 1
            if not (math.isfinite(loss) and np.all(np.isfinite(g))):
                status, message = "nonfinite", f"non-finite loss or gradient at step {k} (lr too large?)"
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
    traj = Trajectory(
        ts=data["ts"],
        gram_H=data["gram_H"],
        gram_W=data["gram_W"],
        loss=data["loss"],
        status=status,
        message=message,
        stats=make_stats(n_evals, wall, lr=lr, steps_saved=steps_arr.tolist()),
        time_unit="gf",
        method="gd",
        meta=problem.describe(),
        params=data["params"],
    )
    return finish(traj, throw)
