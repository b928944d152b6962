"""Discrete optimisers on the analytic gradient: the theory on the trained model's own clock.

A transformer is trained by AdamW (or SGD) for a number of *steps*; the theory's gradient flow runs in
gradient-flow time. :func:`optimize` runs the (modified) UFM with the very update rule that trained the
model, so that theory and model can be set side by side step for step, with no fitted time map
(``compare(..., clock="same")``).

The update rules are those of ``torch.optim`` (torch 2.x, single-tensor path), applied to the analytic
gradient ``g = ∇f(θ)`` of the problem in float64:

* ``"gd"`` / ``"sgd"`` / ``"momentum"`` (``torch.optim.SGD``)::

      g ← g + wd θ                                   (coupled L2)
      b ← g (first step), else b ← μ b + (1 - τ) g    (momentum μ > 0, dampening τ)
      g ← g + μ b (nesterov), else g ← b
      θ ← θ - lr g

  ``"gd"`` is SGD with ``momentum = 0`` (the problems are full-batch, so ``"sgd"`` is the same update);
  ``"momentum"`` is SGD with ``momentum`` defaulting to 0.9.
* ``"adam"`` (``torch.optim.Adam``; ``weight_decay`` is a coupled L2 term ``g ← g + wd θ``) and
  ``"adamw"`` (``torch.optim.AdamW``; decoupled decay ``θ ← θ (1 - lr wd)`` before the step)::

      m ← m + (1 - β₁)(g - m),   v ← β₂ v + (1 - β₂) g²,   k ← k + 1
      θ ← θ - (lr / (1 - β₁ᵏ)) m / (sqrt(v) / sqrt(1 - β₂ᵏ) + ε)

Both are elementwise, so keeping the state on the flat parameter vector is the same as torch's per-tensor
state for the blocks (``W`` and ``H``/``E``). ``weight_decay`` defaults to 0 for every optimiser (torch's
AdamW default is 0.01; the baseline GPT trains with 0).

Example:
    >>> import ufmtheory as ut
    >>> prob = ut.ModifiedUFM(ut.designs.factorial((3, 3)), dim=16, alpha=3.0, beta=1.0, normalize=4.0)
    >>> traj = ut.optimize(prob, 300, optimizer="adamw", lr=1e-3, init=ut.init.normal(prob, 0.02, seed=0),
    ...                    saveat=[0, 10, 100, 300])
    >>> traj.status, traj.time_unit, traj.ts.tolist()
    ('ok', 'step', [0.0, 10.0, 100.0, 300.0])
    >>> bool(traj.loss[-1] < traj.loss[0])
    True
"""

from __future__ import annotations

import math
import time
from dataclasses import fields
from typing import Any

import numpy as np

from ufmtheory.solvers import init as init_mod
from ufmtheory.trajectory import Trajectory

__all__ = ["optimize", "OPTIMIZERS", "step_grid"]

OPTIMIZERS = ("gd", "sgd", "momentum", "adam", "adamw")
"""Names accepted by :func:`optimize`."""

# A run whose loss rises this many times above its starting value has left the basin it started in
# (a learning rate past the stability edge): reported as "diverged", never "ok".
DIVERGE_FACTOR = 1e4


def step_grid(steps: int, saveat: Any = None) -> np.ndarray:
    """Integer steps to save: step 0 and about ``saveat`` log-spaced steps up to ``steps`` (an int; ``None``:
    100), or the given strictly increasing integer steps in ``[0, steps]``.

    Example:
        >>> step_grid(1000, 4).tolist()
        [0, 1, 10, 100, 1000]
    """
    if saveat is None:
        saveat = 100
    if isinstance(saveat, (int, np.integer)) and not isinstance(saveat, bool):
        if saveat < 1:
            raise ValueError(f"saveat as an int (number of log-spaced steps) must be >= 1, got {saveat}")
        grid = np.unique(np.rint(np.logspace(0.0, math.log10(steps), int(saveat))).astype(np.int64))
        grid[-1] = steps
        return np.concatenate([[0], grid[grid <= steps]])
    grid = np.asarray(saveat)
    if grid.ndim != 1 or grid.size == 0:
        raise ValueError("saveat must be None, an int, or a 1-D array of integer steps")
    if not np.issubdtype(grid.dtype, np.integer):
        if not np.all(np.isfinite(grid)) or np.any(grid != np.round(grid)):
            raise ValueError("saveat steps must be integers")
        grid = grid.astype(np.int64)
    if np.any(np.diff(grid) <= 0) or grid[0] < 0 or grid[-1] > steps:
        raise ValueError(f"saveat steps must be strictly increasing and lie in [0, steps = {steps}]")
    return grid.astype(np.int64)


def _real(name: str, value: Any, lo: float, hi: float | None = None, lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    ok = math.isfinite(value) and (value > lo if lo_open else value >= lo) and (hi is None or value < hi)
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo}, {hi if hi is not None else 'inf'})"
        raise ValueError(f"{name} must be a finite number in {rng}, got {value!r}")
    return value


def _resolve_init(problem: Any, init: Any) -> np.ndarray:
    if init is None:
        init = init_mod.normal(problem, 0.02, seed=0)
    if isinstance(init, dict):
        try:
            return problem.pack(init).copy()
        except ValueError as exc:
            raise ValueError(f"init: {exc}") from exc
    theta = np.array(init, dtype=np.float64).ravel()
    if theta.size != problem.n_params:
        raise ValueError(f"init must have {problem.n_params} entries (flat) or be a dict of blocks")
    if not np.all(np.isfinite(theta)):
        raise ValueError("init contains NaN or inf")
    return theta


def _make_trajectory(**kw: Any) -> Trajectory:
    # The status vocabulary is being split into a word and a message; pass the message where the Trajectory
    # has a field for it, and keep it in stats either way.
    message = kw.pop("message")
    kw["stats"]["message"] = message
    if "message" in {f.name for f in fields(Trajectory)}:
        kw["message"] = message
    return Trajectory(**kw)


def optimize(
    problem: Any,
    steps: int,
    *,
    optimizer: str = "adamw",
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: float | None = None,
    dampening: float = 0.0,
    nesterov: bool = False,
    init: Any = None,
    saveat: Any = None,
    save_params: bool = False,
    diverge_factor: float = DIVERGE_FACTOR,
) -> Trajectory:
    """Run ``steps`` steps of a ``torch.optim`` update rule on ``problem``'s analytic gradient.

    Args:
        problem: a :class:`~ufmtheory.UFM` or :class:`~ufmtheory.ModifiedUFM` (any ridge / normalisation).
        steps: number of optimiser steps (>= 1).
        optimizer: ``"gd"``, ``"sgd"``, ``"momentum"``, ``"adam"`` or ``"adamw"`` (module docstring).
        lr: learning rate (> 0).
        betas: Adam's ``(β₁, β₂)``, each in [0, 1).
        eps: Adam's ε (> 0).
        weight_decay: coupled L2 (SGD, Adam) or decoupled decay (AdamW), >= 0. It acts on every block, on
            top of the problem's own ridge.
        momentum: SGD momentum in [0, 1) (``None``: 0, or 0.9 for ``"momentum"``; must be 0 for ``"gd"``).
        dampening: SGD dampening in [0, 1].
        nesterov: Nesterov momentum (needs ``momentum > 0`` and ``dampening = 0``, as torch).
        init: initial parameters (dict of blocks or flat vector; ``None``: ``init.normal(problem, 0.02)``,
            the baseline GPT's init std).
        saveat: steps to save (:func:`step_grid`: an int n for ~n log-spaced steps, default 100, or integer
            steps).
        save_params: also keep the parameters at the saved steps.
        diverge_factor: the run stops as ``"diverged"`` once the loss exceeds ``diverge_factor`` times its
            starting value (or the parameters grow non-finite: ``"nonfinite"``).

    Returns:
        :class:`~ufmtheory.Trajectory` with ``time_unit="step"`` (``ts`` the saved step indices), method
        the optimiser name, ``status`` ``"ok"``, ``"nonfinite"`` or ``"diverged"`` (then ``ts`` ends at the
        last finite saved step before the blow-up); ``stats``: ``n_evals`` (gradient evaluations),
        ``wall_time_s``, ``message``, the hyper-parameters and ``stopped_at`` (the step of the blow-up).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    steps = int(steps)
    lr = _real("lr", lr, 0.0, lo_open=True)
    eps = _real("eps", eps, 0.0, lo_open=True)
    weight_decay = _real("weight_decay", weight_decay, 0.0)
    dampening = _real("dampening", dampening, 0.0, 1.0 + 1e-300)
    diverge_factor = _real("diverge_factor", diverge_factor, 1.0, lo_open=True)
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas must be a pair of numbers in [0, 1), got {betas!r}")
    beta1, beta2 = (_real("betas", b, 0.0, 1.0) for b in betas)
    if momentum is None:
        momentum = 0.9 if optimizer == "momentum" else 0.0
    momentum = _real("momentum", momentum, 0.0, 1.0)
    if optimizer == "gd" and momentum != 0:
        raise ValueError(f"momentum must be 0 for optimizer='gd' (use 'momentum' or 'sgd'), got {momentum}")
    if optimizer == "momentum" and momentum == 0:
        raise ValueError("momentum must be > 0 for optimizer='momentum'")
    if not isinstance(nesterov, bool):
        raise TypeError(f"nesterov must be a bool, got {type(nesterov).__name__}")
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError("nesterov needs momentum > 0 and dampening = 0 (as torch.optim.SGD)")
    if nesterov and optimizer in ("adam", "adamw"):
        raise ValueError("nesterov applies to the SGD optimisers only")
    grid = step_grid(steps, saveat)
    theta = _resolve_init(problem, init)

    V, m = problem.design.V, problem.design.m
    n = grid.size
    gram_H, gram_W, losses = np.empty((n, m, m)), np.empty((n, V, V)), np.empty(n)
    params: dict[str, np.ndarray] | None = (
        {k: np.empty((n, *s)) for k, s in problem.param_shapes.items()} if save_params else None
    )
    count = 0
    adam = optimizer in ("adam", "adamw")
    exp_avg = np.zeros_like(theta) if adam else None
    exp_avg_sq = np.zeros_like(theta) if adam else None
    buf: np.ndarray | None = None
    status, message, stopped_at = "ok", f"{steps} steps", None
    evals = 0
    loss0 = math.nan
    save_at = iter(grid.tolist())
    next_save = next(save_at)
    start = time.perf_counter()
    for k in range(steps + 1):
        loss, g = problem.flat_loss_and_grad(theta)
        evals += 1
        if k == 0:
            loss0 = loss
        if not (math.isfinite(loss) and np.all(np.isfinite(g)) and np.all(np.isfinite(theta))):
            status, stopped_at = "nonfinite", k
            message = f"non-finite loss, gradient or parameters at step {k} (lr too large?)"
            break
        if k > 0 and loss > diverge_factor * max(loss0, 1e-300):
            status, stopped_at = "diverged", k
            message = f"loss {loss:.3g} at step {k} is over {diverge_factor:g} x its start {loss0:.3g}"
            break
        if k == next_save:
            blocks = problem.unpack(theta)
            gram_H[count], gram_W[count] = problem.grams(blocks)
            losses[count] = loss
            if params is not None:
                for name, block in blocks.items():
                    params[name][count] = block
            count += 1
            next_save = next(save_at, -1)
        if k == steps:
            break
        if adam:
            assert exp_avg is not None and exp_avg_sq is not None
            if optimizer == "adamw":
                theta *= 1.0 - lr * weight_decay
            elif weight_decay:
                g = g + weight_decay * theta
            exp_avg += (1.0 - beta1) * (g - exp_avg)  # torch: exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq *= beta2
            exp_avg_sq += (1.0 - beta2) * g * g
            step = k + 1
            bias1 = 1.0 - beta1**step
            bias2_sqrt = math.sqrt(1.0 - beta2**step)
            denom = np.sqrt(exp_avg_sq) / bias2_sqrt + eps
            theta -= (lr / bias1) * (exp_avg / denom)
        else:
            if weight_decay:
                g = g + weight_decay * theta
            if momentum:
                if buf is None:
                    buf = g.copy()
                else:
                    buf *= momentum
                    buf += (1.0 - dampening) * g
                g = g + momentum * buf if nesterov else buf
            theta -= lr * g
    wall = time.perf_counter() - start
    if count == 0:  # blow-up before step 0 was saved cannot happen (init is finite), but stay well formed
        raise ValueError("the initial loss is not finite")
    return _make_trajectory(
        ts=grid[:count].astype(np.float64),
        gram_H=gram_H[:count],
        gram_W=gram_W[:count],
        loss=losses[:count],
        status=status,
        message=message,
        stats={
            "n_evals": evals,
            "wall_time_s": wall,
            "steps": steps,
            "stopped_at": stopped_at,
            "optimizer": optimizer,
            "lr": lr,
            "betas": [beta1, beta2],
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "dampening": dampening,
            "nesterov": nesterov,
        },
        time_unit="step",
        method=optimizer,
        meta=problem.describe(),
        params=None if params is None else {k: v[:count] for k, v in params.items()},
    )
