"""Benchmark: adaptive gradient flow against a plain torch float64 GD loop on the standard UFM.

Problem: ``UFM(factorial((K,)), dim=K)``: one-hot labels, K = V = m classes/tokens/contexts, d = K, uniform
weights, ridge ``lam_W = lam_H = lam`` (default 1e-3, small enough that the Zhu et al. minimiser is not the
zero solution, large enough that the late flow is bounded). Init: ``ut.init.small(prob, scale, seed=0)``,
the same for both solvers; the default ``scale = 1e-2`` is the small-init regime of the theory, and by
``t1 = 1e3`` the Grams have grown by two orders of magnitude (escape from the origin and the nonlinear phase
are both inside the run), so a 1e-4 relative Gram error is a real accuracy requirement.

What is measured, side by side in one run (DESIGN.md, "Performance expectations"):

1. Wall time of ``ut.gradient_flow`` to ``t1`` (package-default tolerances rtol=1e-8, atol=1e-10) against a
   plain torch float64 autograd GD loop (``F.cross_entropy`` + ridge, ``loss.backward()``,
   ``p -= lr * p.grad``) whose final Grams ``HᵀH`` and ``W Wᵀ`` agree with the flow's to < 1e-4 relative
   (Frobenius). The GD learning rate is chosen honestly: two coarse runs give the first-order error constant
   ``err ≈ c·lr`` (their error ratio is checked to be ~2), the largest lr meeting the tolerance times a
   safety factor is used, and the full run is verified (halving lr until it passes). Only the final,
   successful GD run is timed for the ratio; the search time is reported separately. The flow's own error is
   checked against a tighter-tolerance flow (rtol=1e-11).
2. Achieved GFLOP/s of ``prob.flat_loss_and_grad`` (``prob.grad_flops()`` = 6·V·d·m) against numpy float64
   matmul GFLOP/s (256³ and 1024³) measured interleaved in the same run.
3. Peak memory: tracemalloc peak of the flow call and ``getrusage`` max RSS at each stage.

4. The soft-label case (issue 10): ``UFM(design, dim=128)`` on 16 contexts over 30 tokens, each context's
   next-token support a random 3-8 tokens with Dirichlet probabilities (seed 0; 5,888 parameters), from the
   default start to ``t1 = 1e8``: the exact Gram flow (``method="auto"`` picks ``"gram"``) — wall and CPU
   time, evaluations, Jacobians, its Gram error against a rtol=1e-10 Gram flow — and, for contrast, the
   parameter flow (DOP853) under an evaluation cap: how far it gets and how it agrees with the Gram flow at
   the last time both saved. ``--soft-only`` runs just this part (JSON ``bench_flow_soft``).

Run: ``.venv/bin/python benchmarks/bench_flow.py [--K 256] [--t1 1e3] [--out PATH] [--quick] [--soft-only]``.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import time
import tracemalloc
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from _common import (
    ForeignLoad,
    emit,
    load_average,
    log,
    machine_info,
    maxrss_mib,
    minor_faults,
    output_path,
    parser,
    print_rows,
    rel_err,
    run_worker,
    timestamp,
    write_json,
)

import ufmtheory as ut


def gram_errors(gH: np.ndarray, gW: np.ndarray, refH: np.ndarray, refW: np.ndarray) -> dict[str, float]:
    if not (np.all(np.isfinite(gH)) and np.all(np.isfinite(gW))):
        return {"H": math.inf, "W": math.inf, "max": math.inf}
    eH, eW = rel_err(gH, refH), rel_err(gW, refW)
    return {"H": eH, "W": eW, "max": max(eH, eW)}


# -- gradient flow ---------------------------------------------------------------------------------------
def run_flow(prob: ut.UFM, t1: float, init: dict, saveat: Any, rtol: float, atol: float):
    gc.collect()
    cpu0 = time.process_time()
    start = time.perf_counter()
    traj = ut.gradient_flow(prob, t1, init=init, saveat=saveat, rtol=rtol, atol=atol)
    wall = time.perf_counter() - start
    run_flow.last_cpu_s = time.process_time() - cpu0  # type: ignore[attr-defined]
    if traj.status != "ok" or traj.ts[-1] != t1:
        raise RuntimeError(f"gradient_flow did not reach t1={t1}: {traj.status} {traj.message}")
    return traj, wall


def flow_tracemalloc_peak(prob: ut.UFM, t1: float, init: dict, saveat: Any, rtol: float, atol: float):
    """tracemalloc peak (bytes) of one flow call, relative to the memory traced when it starts."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        ut.gradient_flow(prob, t1, init=init, saveat=saveat, rtol=rtol, atol=atol)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - base


class TimedProblem:
    """Delegates to a problem and times its ``flat_loss_and_grad`` calls (and the page faults inside them)
    as the flow makes them, so the in-flow gradient rate can be set against the isolated one."""

    def __init__(self, problem: ut.UFM) -> None:
        self._problem = problem
        self.seconds, self.calls, self.faults = 0.0, 0, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._problem, name)

    def flat_loss_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        f0 = minor_faults()
        start = time.perf_counter()
        out = self._problem.flat_loss_and_grad(theta)
        self.seconds += time.perf_counter() - start
        self.faults += minor_faults() - f0
        self.calls += 1
        return out


def cold_gradient_rate(args: argparse.Namespace) -> dict:
    """``flat_loss_and_grad`` GFLOP/s in a fresh interpreter that has run nothing else. glibc's malloc
    thresholds adapt to the sizes a process has freed, so a loop that only calls the gradient (as
    ``ut.gradient_descent`` or a user's own loop does) can see page faults that the flow, whose solver
    frees larger arrays, does not; comparing the two shows whether this matters."""
    argv = ["--_cold-grad", "--K", str(args.K), "--lam", repr(args.lam), "--scale", repr(args.scale)]
    argv += [
        "--seed",
        str(args.seed),
        "--rate-rounds",
        str(args.rate_rounds),
        "--rate-time",
        repr(args.rate_time),
    ]
    return run_worker(__file__, argv)


def _cold_gradient_main(args: argparse.Namespace) -> None:
    prob = ut.UFM(ut.designs.factorial((args.K,)), dim=args.K, lam_W=args.lam, lam_H=args.lam)
    theta = prob.pack(ut.init.small(prob, args.scale, seed=args.seed))
    fn = lambda: prob.flat_loss_and_grad(theta)  # noqa: E731
    for _ in range(3):
        fn()
    f0, rates = minor_faults(), []
    for _ in range(args.rate_rounds):
        rates.append(_block_rate(fn, prob.grad_flops(), args.rate_time))
    calls = _block_rate.calls  # type: ignore[attr-defined]  # calls made by _block_rate in this process
    faults = (minor_faults() - f0) / calls
    emit({"gflops_best": max(rates), "gflops_median": statistics.median(rates), "faults_per_call": faults})


# -- throughput ------------------------------------------------------------------------------------------
def _block_rate(fn, flops: float, min_time: float) -> float:
    """GFLOP/s of ``fn`` over a block of calls lasting at least ``min_time`` seconds."""
    n, elapsed = 1, 0.0
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - start
        _block_rate.calls = getattr(_block_rate, "calls", 0) + n  # type: ignore[attr-defined]
        if elapsed >= min_time:
            return flops * n / elapsed / 1e9
        n = max(2 * n, int(n * 1.2 * min_time / max(elapsed, 1e-9)))


def measure_rates(prob: ut.UFM, theta: np.ndarray, rounds: int, min_time: float) -> dict[str, Any]:
    """Gradient vs numpy matmul GFLOP/s, interleaved round by round so that drift in the machine's speed
    (other load, frequency) hits all three alike. Reports best and median over rounds."""
    rng = np.random.default_rng(1)
    A256, B256, C256 = (rng.standard_normal((256, 256)) for _ in range(3))
    A1k, B1k, C1k = (rng.standard_normal((1024, 1024)) for _ in range(3))
    kernels = {
        "matmul_256": (lambda: np.matmul(A256, B256, out=C256), 2.0 * 256**3),
        "matmul_1024": (lambda: np.matmul(A1k, B1k, out=C1k), 2.0 * 1024**3),
        "gradient": (lambda: prob.flat_loss_and_grad(theta), prob.grad_flops()),
    }
    for fn, _ in kernels.values():  # warm-up (thread pools, allocator)
        for _ in range(3):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in kernels}
    grad_faults, grad_calls = 0, 0
    for _ in range(rounds):
        for name, (fn, flops) in kernels.items():
            f0, c0 = minor_faults(), getattr(_block_rate, "calls", 0)
            samples[name].append(_block_rate(fn, flops, min_time))
            if name == "gradient":
                grad_faults += minor_faults() - f0
                grad_calls += _block_rate.calls - c0  # type: ignore[attr-defined]
    out: dict[str, Any] = {}
    for name, vals in samples.items():
        out[name] = {"gflops_best": max(vals), "gflops_median": statistics.median(vals), "samples": vals}
    g = out["gradient"]
    out["gradient"]["seconds_per_call_best"] = prob.grad_flops() / (g["gflops_best"] * 1e9)
    out["gradient"]["faults_per_call"] = grad_faults / max(grad_calls, 1)
    out["gradient"]["state"] = "flow state at t1"
    for ref in ("matmul_256", "matmul_1024"):
        out[f"ratio_vs_{ref}_best"] = g["gflops_best"] / out[ref]["gflops_best"]
        out[f"ratio_vs_{ref}_median"] = g["gflops_median"] / out[ref]["gflops_median"]
    return out


# -- plain torch GD --------------------------------------------------------------------------------------
class TorchGD:
    """The usual hand-written experiment: float64 leaf tensors, CE + ridge, backward, in-place SGD step."""

    def __init__(self, prob: ut.UFM, init: dict[str, np.ndarray]) -> None:
        design = prob.design
        self.W0 = torch.tensor(init["W"], dtype=torch.float64)
        self.H0 = torch.tensor(init["H"], dtype=torch.float64)
        self.lam_W, self.lam_H = prob.lam_W, prob.lam_H
        uniform = np.allclose(design.pi, 1.0 / design.m)
        # One-hot labels with uniform weights (the benchmark's case): mean F.cross_entropy over contexts is
        # exactly Σ_j π_j CE_j. Otherwise the general soft-label, π-weighted form with log_softmax.
        self.hard = bool(design.is_one_hot and uniform)
        self.labels = torch.as_tensor(design.Y.argmax(axis=0))
        self.Yt = torch.tensor(design.Y.T.copy(), dtype=torch.float64)
        self.pi = torch.tensor(design.pi, dtype=torch.float64)

    def loss(self, W: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
        logits = (W @ H).T  # (m, V): one row per context
        if self.hard:
            ce = F.cross_entropy(logits, self.labels)
        else:
            ce = -(self.pi * (self.Yt * F.log_softmax(logits, dim=1)).sum(dim=1)).sum()
        return ce + 0.5 * self.lam_W * W.square().sum() + 0.5 * self.lam_H * H.square().sum()

    def run(self, lr: float, steps: int) -> tuple[np.ndarray, np.ndarray, float]:
        """``steps`` GD steps of size ``lr``; returns the final ``(HᵀH, W Wᵀ)`` and the loop's wall time."""
        W = self.W0.clone().requires_grad_(True)
        H = self.H0.clone().requires_grad_(True)
        gc.collect()
        foreign = ForeignLoad()
        cpu0 = time.process_time()
        start = time.perf_counter()
        for _ in range(steps):
            loss = self.loss(W, H)
            loss.backward()
            with torch.no_grad():
                W -= lr * W.grad
                H -= lr * H.grad
            W.grad = None
            H.grad = None
        wall = time.perf_counter() - start
        self.last_cpu_s = time.process_time() - cpu0
        self.last_foreign = foreign.fraction()
        with torch.no_grad():
            return (H.T @ H).numpy(), (W @ W.T).numpy(), wall

    def check_against(self, prob: ut.UFM, init: dict[str, np.ndarray]) -> dict[str, float]:
        """Loss and gradient at init against the package's analytic ones (same objective?)."""
        W = self.W0.clone().requires_grad_(True)
        H = self.H0.clone().requires_grad_(True)
        loss = self.loss(W, H)
        loss.backward()
        ref_loss, ref_g = prob.loss_and_grad(init)
        return {
            "loss_abs_diff": abs(loss.item() - ref_loss),
            "grad_W_rel_diff": rel_err(W.grad.numpy(), ref_g["W"]),
            "grad_H_rel_diff": rel_err(H.grad.numpy(), ref_g["H"]),
        }


def choose_lr_and_run_gd(
    gd: TorchGD,
    t1: float,
    refs: list[tuple[np.ndarray, np.ndarray]],
    tol: float,
    safety: float,
    n0: int,
    max_steps: int,
) -> dict[str, Any]:
    """Learning-rate search from the first-order error model, then the timed, verified GD run."""

    def err(gH: np.ndarray, gW: np.ndarray) -> dict[str, float]:
        # Worst case over the references (the timed flow and the tight-tolerance flow) and both Grams.
        errs = [gram_errors(gH, gW, rH, rW) for rH, rW in refs]
        return {
            "H": max(e["H"] for e in errs),
            "W": max(e["W"] for e in errs),
            "max": max(e["max"] for e in errs),
        }

    search: list[dict[str, Any]] = []
    search_wall = 0.0

    def coarse(steps: int) -> float:
        nonlocal search_wall
        lr = t1 / steps
        t0 = time.perf_counter()
        gH, gW, wall = gd.run(lr, steps)
        search_wall += time.perf_counter() - t0
        e = err(gH, gW)
        search.append({"lr": lr, "steps": steps, "wall_s": wall, "err": e["max"]})
        log(f"  GD search   lr={lr:<10.4g} steps={steps:<8d} err={e['max']:.3e}  ({wall:.2f} s)")
        return e["max"]

    n = n0
    while True:
        e1, e2 = coarse(n), coarse(2 * n)
        ratio = e1 / e2 if math.isfinite(e1) and math.isfinite(e2) and e2 > 0 else math.nan
        if 1.6 < ratio < 2.5:  # first-order regime: halving lr halves the error
            break
        if 4 * n > max_steps:
            raise RuntimeError(f"GD never reached its first-order error regime (last ratio {ratio})")
        n *= 2
    lr2 = t1 / (2 * n)
    c = e2 / lr2
    order = math.log2(ratio)
    lr_pred = tol / c
    steps = math.ceil(t1 / (safety * lr_pred))
    log(
        f"  first-order fit: err ≈ {c:.4g}·lr (observed order {order:.3f}); lr for tol={tol:g}: {lr_pred:.4g}"
    )

    attempts: list[dict[str, Any]] = []
    while True:
        if steps > max_steps:
            raise RuntimeError(f"GD would need more than max_steps={max_steps} steps")
        lr = t1 / steps
        log(f"  GD final    lr={lr:<10.4g} steps={steps:<8d} (timed) ...")
        gH, gW, wall = gd.run(lr, steps)
        e = err(gH, gW)
        attempts.append(
            {
                "lr": lr,
                "steps": steps,
                "wall_s": wall,
                "cpu_s": gd.last_cpu_s,
                "foreign_cpu_fraction": gd.last_foreign,
                "err": e,
            }
        )
        log(f"{'':14s}err H={e['H']:.3e} W={e['W']:.3e}  ({wall:.2f} s, {1e3 * wall / steps:.3f} ms/step)")
        if e["max"] < tol:
            break
        search_wall += wall  # a failed "final" run counts as search
        steps *= 2
    final = attempts[-1]
    return {
        "search_runs": search,
        "search_wall_s": search_wall,
        "first_order_c": c,
        "observed_order": order,
        "lr_predicted_for_tol": lr_pred,
        "safety": safety,
        "attempts": attempts,
        "lr": final["lr"],
        "steps": final["steps"],
        "wall_s": final["wall_s"],
        "cpu_s": final["cpu_s"],
        "foreign_cpu_fraction": final["foreign_cpu_fraction"],
        "ms_per_step": 1e3 * final["wall_s"] / final["steps"],
        "err": final["err"],
        "gram_H": gH,
        "gram_W": gW,
    }


# -- stages --------------------------------------------------------------------------------------------
def stage_save_cost(args: argparse.Namespace) -> dict[str, Any]:
    """What saving costs: the flow with the default 201 save times against the final time only, alternated
    ``--repeats`` + 1 times (CPU seconds, best of the alternations), and the pieces of one save (the two
    Grams, the loss, the state from the dense output) against one gradient, timed interleaved."""
    K = args.K
    prob = ut.UFM(ut.designs.factorial((K,)), dim=K, lam_W=args.lam, lam_H=args.lam)
    init = ut.init.small(prob, args.scale, seed=args.seed)
    kw = {"init": init, "rtol": args.rtol, "atol": args.atol}
    runs: dict[str, list[tuple[float, float, int]]] = {"default": [], "final_only": []}
    for _ in range(args.repeats + 1):
        for name, saveat in (("default", None), ("final_only", [0.0, args.t1])):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            traj = ut.gradient_flow(prob, args.t1, saveat=saveat, **kw)
            runs[name].append(
                (time.process_time() - cpu0, time.perf_counter() - wall0, traj.stats["n_evals"])
            )
    best = {name: min(r[0] for r in rs) for name, rs in runs.items()}
    theta = prob.pack(init)
    params = prob.unpack(theta)
    pieces = {
        "gradient": lambda: prob.flat_loss_and_grad(theta),
        "grams": lambda: prob.grams(params),
        "loss": lambda: prob.loss(params),
    }
    per_call = {name: math.inf for name in pieces}
    for _ in range(max(args.rate_rounds, 3)):
        for name, fn in pieces.items():
            cpu0 = time.process_time()
            for _ in range(20):
                fn()
            per_call[name] = min(per_call[name], (time.process_time() - cpu0) / 20)
    n_saves = 201
    return {
        "K": K,
        "cpu_s_best": best,
        "runs": runs,
        "overhead_cpu": best["default"] / best["final_only"] - 1.0,
        "evaluations": {name: rs[0][2] for name, rs in runs.items()},
        "per_call_cpu_ms": {name: 1e3 * v for name, v in per_call.items()},
        "save_over_gradient": (per_call["grams"] + per_call["loss"]) / per_call["gradient"],
        "arithmetic_floor_overhead": n_saves
        * (per_call["grams"] + per_call["loss"])
        / (runs["final_only"][0][2] * per_call["gradient"]),
    }


def stage_flow(prob: ut.UFM, init: dict, args: argparse.Namespace, rss: dict) -> dict[str, Any]:
    """Peak memory of one flow call first (so max RSS after this stage is the flow's own), then the timed
    runs with the default saveat and with the final time only (median of ``--repeats``)."""
    t1 = args.t1
    mem_default = flow_tracemalloc_peak(prob, t1, init, None, args.rtol, args.atol)
    rss["after_flow_default_saveat_mib"] = maxrss_mib()
    mem_final = flow_tracemalloc_peak(prob, t1, init, [0.0, t1], args.rtol, args.atol)
    foreign = ForeignLoad()
    runs, cpu = [], []
    for _ in range(args.repeats):
        runs.append(run_flow(prob, t1, init, None, args.rtol, args.atol))
        cpu.append(run_flow.last_cpu_s)  # type: ignore[attr-defined]
    walls_final = [run_flow(prob, t1, init, [0.0, t1], args.rtol, args.atol)[1] for _ in range(args.repeats)]
    flow = runs[-1][0]
    out = {
        "traj": flow,
        "wall_s_median": statistics.median(w for _, w in runs),
        "wall_s": [w for _, w in runs],
        "cpu_s": cpu,
        "integration_wall_s": flow.stats["wall_time_s"],
        "saveat": "default (0 + 200 log-spaced times)",
        "n_saved": int(flow.ts.size),
        "wall_s_final_only_median": statistics.median(walls_final),
        "wall_s_final_only": walls_final,
        "evaluations": flow.stats["n_evals"],
        "tracemalloc_peak_mib_default_saveat": mem_default / 2**20,
        "tracemalloc_peak_mib_final_only": mem_final / 2**20,
        "foreign_cpu_fraction": foreign.fraction(),
    }
    log(
        f"  flow        {out['evaluations']} gradient evaluations, {out['wall_s_median']:.3f} s "
        f"(default saveat), {out['wall_s_final_only_median']:.3f} s (final time only)"
    )
    return out


def stage_reference(prob: ut.UFM, init: dict, args: argparse.Namespace, flow: ut.Trajectory) -> dict:
    """A tight-tolerance flow, the timed flow's error against it, and a small tolerance sweep."""
    t1, final_only = args.t1, [0.0, args.t1]
    ref, ref_wall = run_flow(prob, t1, init, final_only, args.ref_rtol, args.ref_atol)
    sweep = []
    for rtol in (1e-6, 1e-7):
        tr, w = run_flow(prob, t1, init, final_only, rtol, rtol * 1e-2)
        e = gram_errors(tr.gram_H[-1], tr.gram_W[-1], ref.gram_H[-1], ref.gram_W[-1])
        sweep.append(
            {"rtol": rtol, "atol": rtol * 1e-2, "evaluations": tr.stats["n_evals"], "wall_s": w, "err": e}
        )
    err = gram_errors(flow.gram_H[-1], flow.gram_W[-1], ref.gram_H[-1], ref.gram_W[-1])
    log(f"  flow error vs rtol={args.ref_rtol:g} reference: {err['max']:.2e} (reference: {ref_wall:.2f} s)")
    context: dict[str, Any] = {
        "loss_t0": float(flow.loss[0]),
        "loss_t1": float(flow.loss[-1]),
        "trace_HtH_t0": float(np.trace(flow.gram_H[0])),
        "trace_HtH_t1": float(np.trace(flow.gram_H[-1])),
    }
    try:
        zhu = ut.zhu(prob)
        context["rel_dist_to_zhu_minimiser_t1"] = rel_err(flow.gram_H[-1], zhu.gram_H)
        context["trace_HtH_zhu"] = float(np.trace(zhu.gram_H))
    except Exception as exc:  # noqa: BLE001 - context only
        context["zhu_error"] = str(exc)
    return {"traj": ref, "wall_s": ref_wall, "err": err, "sweep": sweep, "context": context}


def stage_rates(prob: ut.UFM, init: dict, args: argparse.Namespace) -> dict[str, Any]:
    """Gradient GFLOP/s against matmul at the flow's final state; inside the flow; in a fresh process."""
    t1 = args.t1
    kw = {"init": init, "saveat": [0.0, t1], "rtol": args.rtol, "atol": args.atol, "save_params": True}
    state = ut.gradient_flow(prob, t1, **kw).params
    theta_t1 = prob.pack({k: v[-1] for k, v in state.items()})
    foreign = ForeignLoad()
    rates = measure_rates(prob, theta_t1, args.rate_rounds, args.rate_time)
    rates["foreign_cpu_fraction"] = foreign.fraction()
    timed = TimedProblem(prob)
    run_flow(timed, t1, init, None, args.rtol, args.atol)
    in_flow = {
        "seconds_per_call": timed.seconds / timed.calls,
        "gflops": prob.grad_flops() * timed.calls / timed.seconds / 1e9,
        "faults_per_call": timed.faults / timed.calls,
        "calls": timed.calls,
    }
    rates["gradient_in_flow"] = in_flow
    rates["ratio_in_flow_vs_matmul_256_best"] = in_flow["gflops"] / rates["matmul_256"]["gflops_best"]
    rates["gradient_cold_process"] = cold_gradient_rate(args)
    log(
        f"  GFLOP/s     gradient {rates['gradient']['gflops_best']:.1f}, matmul 256³ "
        f"{rates['matmul_256']['gflops_best']:.1f}, matmul 1024³ {rates['matmul_1024']['gflops_best']:.1f}"
    )
    return rates


def stage_gd(prob: ut.UFM, init: dict, args: argparse.Namespace, flow: ut.Trajectory, ref: ut.Trajectory):
    """The torch GD loop: objective check, learning-rate search and the timed run, then alternations of
    (flow, flow final-only, a GD block) for a contention-robust ratio. GD's per-step cost is the same at
    every step, so steps × (best per-step time of short blocks) is its wall time on a quiet machine."""
    gd = TorchGD(prob, init)
    check = gd.check_against(prob, init)
    if check["grad_W_rel_diff"] > 1e-10 or check["grad_H_rel_diff"] > 1e-10:
        raise RuntimeError(f"torch objective differs from the package's: {check}")
    gd.run(1.0, 20)  # warm-up
    refs = [(flow.gram_H[-1], flow.gram_W[-1]), (ref.gram_H[-1], ref.gram_W[-1])]
    res = choose_lr_and_run_gd(gd, args.t1, refs, args.tol, args.safety, n0=50, max_steps=args.max_gd_steps)
    gH, gW = res.pop("gram_H"), res.pop("gram_W")
    res["err_vs_flow"] = gram_errors(gH, gW, flow.gram_H[-1], flow.gram_W[-1])
    res["err_vs_reference"] = gram_errors(gH, gW, ref.gram_H[-1], ref.gram_W[-1])
    res["objective_check_at_init"] = check
    res["implementation"] = "torch float64 autograd: F.cross_entropy + ridge, backward, p -= lr*p.grad"
    res["effective_gflops"] = prob.grad_flops() * res["steps"] / res["wall_s"] / 1e9

    block = min(res["steps"], 1000)
    flows, finals, steps = [], [], []
    foreign = ForeignLoad()
    for _ in range(args.interleave_rounds):
        flows.append(run_flow(prob, args.t1, init, None, args.rtol, args.atol)[1])
        finals.append(run_flow(prob, args.t1, init, [0.0, args.t1], args.rtol, args.atol)[1])
        steps.append(gd.run(res["lr"], block)[2] / block)
    projected = res["steps"] * min(steps)
    res["interleaved"] = {
        "rounds": len(flows),
        "gd_block_steps": block,
        "flow_wall_s": flows,
        "flow_final_only_wall_s": finals,
        "gd_seconds_per_step": steps,
        "gd_projected_wall_s": projected,
        "ratio_best": projected / min(flows),
        "ratio_best_final_only": projected / min(finals),
        "foreign_cpu_fraction": foreign.fraction(),
    }
    log(
        f"  interleaved flow {min(flows):.3f} s ({min(finals):.3f} s final only), GD "
        f"{1e3 * min(steps):.3f} ms/step (best of {len(flows)}): ratio {projected / min(flows):.1f}x"
    )
    return res


# -- soft labels: the exact Gram flow ---------------------------------------------------------------------
def soft_label_design(seed: int = 0, m: int = 16, V: int = 30) -> ut.Design:
    """``m`` contexts over ``V`` tokens; each context's support is a random 3-8 tokens with Dirichlet(1)
    probabilities (overlapping supports, as in the public NTP-UFM code's small dataset)."""
    rng = np.random.default_rng(seed)
    P = np.zeros((m, V))
    for j in range(m):
        k = int(rng.integers(3, 9))
        P[j, rng.choice(V, size=k, replace=False)] = rng.dirichlet(np.ones(k))
    return ut.designs.from_distributions(P)


def _timed_flow(prob: ut.UFM, t1: float, **kw: Any) -> tuple[ut.Trajectory, float, float]:
    gc.collect()
    cpu0, start = time.process_time(), time.perf_counter()
    traj = ut.gradient_flow(prob, t1, **kw)
    return traj, time.perf_counter() - start, time.process_time() - cpu0


def stage_soft_label(args: argparse.Namespace) -> dict[str, Any]:
    """Gram flow to ``--soft-t1``, its accuracy, and the capped parameter flow for contrast."""
    prob = ut.UFM(soft_label_design(args.seed), dim=args.soft_dim)
    t1, loads = args.soft_t1, {"start": load_average()}
    foreign = ForeignLoad()
    gram, wall, cpu = _timed_flow(prob, t1)  # method="auto"
    if gram.method != "gram-BDF" or not gram.ok:
        raise RuntimeError(
            f"auto did not run the Gram flow to t1: {gram.method} {gram.status} {gram.message}"
        )
    out: dict[str, Any] = {
        "problem": f"UFM(soft_label_design(seed={args.seed}), dim={args.soft_dim}): 16 contexts, 30 tokens",
        "n_params": prob.n_params,
        "t1": t1,
        "gram_flow": {
            "method": gram.method,
            "status": gram.status,
            "wall_s": wall,
            "cpu_s": cpu,
            "evaluations": gram.stats["n_evals"],
            "jacobians": gram.stats["n_jac"],
            "factorisations": gram.stats["n_lu"],
            "atol_state_max": gram.stats["atol_state"],
            "state_size": gram.stats["state_size"],
            "saved": int(gram.ts.size),
            "loss_t1": float(gram.loss[-1]),
            "foreign_cpu_fraction": foreign.fraction(),
        },
    }
    log(
        f"  soft gram   {gram.stats['n_evals']} evals, {gram.stats['n_jac']} Jacobians,"
        f" {gram.stats['n_lu']} factorisations, {wall:.1f} s"
        f" ({cpu:.1f} s CPU)"
    )
    if not args.quick:
        ref, ref_wall, _ = _timed_flow(prob, t1, method="gram", saveat=[0.0, t1], rtol=1e-10, atol=1e-12)
        out["gram_flow"]["err_vs_rtol_1e-10"] = gram_errors(
            gram.gram_H[-1], gram.gram_W[-1], ref.gram_H[-1], ref.gram_W[-1]
        )
        out["gram_flow"]["reference_wall_s"] = ref_wall
    param, pwall, pcpu = _timed_flow(prob, t1, method="DOP853", max_evals=args.soft_cap)
    k = int(param.ts.size) - 1  # the last time both runs saved (same default grid)
    out["parameter_flow"] = {
        "method": param.method,
        "max_evals": args.soft_cap,
        "status": param.status,
        "t_reached": float(param.ts[-1]),
        "wall_s": pwall,
        "cpu_s": pcpu,
        "evaluations": param.stats["n_evals"],
        "gram_flow_err_at_t_reached": gram_errors(
            gram.gram_H[k], gram.gram_W[k], param.gram_H[k], param.gram_W[k]
        ),
    }
    loads["end"] = load_average()
    out["load_average"] = loads
    out["blas_thread_env"] = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    log(
        f"  soft param  DOP853 {param.status} at t = {param.ts[-1]:.3g} after {param.stats['n_evals']} evals,"
        f" {pwall:.1f} s"
    )
    return out


def soft_label_rows(sl: dict[str, Any]) -> list[tuple[str, str]]:
    g, p = sl["gram_flow"], sl["parameter_flow"]
    rows = [
        ("soft labels", f"{sl['problem']}, {sl['n_params']} parameters, t1={sl['t1']:g}"),
        (
            f"  Gram flow ({g['method']})",
            f"{g['wall_s']:.2f} s wall, {g['cpu_s']:.2f} s CPU, {g['evaluations']} evals, {g['jacobians']} "
            f"Jacobians, {g.get('factorisations', '?')} factorisations, state {g['state_size']},"
            f" {g['status']}",
        ),
    ]
    if "err_vs_rtol_1e-10" in g:
        rows.append(("  Gram err vs rtol=1e-10", f"{g['err_vs_rtol_1e-10']['max']:.2e}"))
    rows += [
        (
            f"  parameter flow ({p['method']})",
            f"{p['status']} at t = {p['t_reached']:.3g} after {p['evaluations']} evals (cap "
            f"{p['max_evals']}), {p['wall_s']:.2f} s wall",
        ),
        ("  Gram vs parameter flow there", f"{p['gram_flow_err_at_t_reached']['max']:.2e}"),
        ("  load average start / end", f"{sl['load_average']['start']} / {sl['load_average']['end']}"),
    ]
    return rows


def summarize(flow: dict, ref: dict, rates: dict, gd: dict, tol: float) -> dict[str, Any]:
    ratio = gd["wall_s"] / flow["wall_s_median"]
    inter = gd["interleaved"]["ratio_best"]
    return {
        "wall_ratio_gd_over_flow": ratio,
        "wall_ratio_gd_over_flow_final_only": gd["wall_s"] / flow["wall_s_final_only_median"],
        "cpu_ratio_gd_over_flow": gd["cpu_s"] / statistics.median(flow["cpu_s"]),
        "target_wall_ratio": 10.0,
        "wall_ratio_interleaved_best": inter,
        "wall_ratio_target_met": ratio >= 10.0,
        "wall_ratio_interleaved_target_met": inter >= 10.0,
        "grad_gflops_ratio_vs_matmul_256": rates["ratio_vs_matmul_256_best"],
        "grad_gflops_ratio_vs_matmul_1024": rates["ratio_vs_matmul_1024_best"],
        "target_gflops_ratio": 0.5,
        "gflops_target_met_vs_256": rates["ratio_vs_matmul_256_best"] >= 0.5,
        "gflops_target_met_vs_1024": rates["ratio_vs_matmul_1024_best"] >= 0.5,
        "gd_error_below_tol": gd["err"]["max"] < tol,
        "flow_error_well_below_tol": ref["err"]["max"] < 0.01 * tol,
    }


# -- main ------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser(__doc__, "K=32, t1=100, tol=1e-2, one repeat, fewer rounds (~1 min)")
    p.add_argument("--K", type=int, default=256, help="classes = tokens = contexts = feature dim (256)")
    p.add_argument("--t1", type=float, default=1e3, help="final gradient-flow time (1e3)")
    p.add_argument("--lam", type=float, default=1e-3, help="ridge lam_W = lam_H (1e-3)")
    p.add_argument("--scale", type=float, default=1e-2, help="init std per entry (1e-2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tol", type=float, default=1e-4, help="relative Gram error required of GD (1e-4)")
    p.add_argument("--safety", type=float, default=0.8, help="lr = safety × predicted lr for tol (0.8)")
    p.add_argument("--rtol", type=float, default=1e-8, help="timed flow rtol (package default 1e-8)")
    p.add_argument("--atol", type=float, default=1e-10, help="timed flow atol (package default 1e-10)")
    p.add_argument("--ref-rtol", type=float, default=1e-11, help="reference flow rtol (1e-11)")
    p.add_argument("--ref-atol", type=float, default=1e-13, help="reference flow atol (1e-13)")
    p.add_argument("--repeats", type=int, default=3, help="timed flow repeats (median reported)")
    p.add_argument("--interleave-rounds", type=int, default=5, help="flow/GD-block alternations (5)")
    p.add_argument("--rate-rounds", type=int, default=5, help="interleaved GFLOP/s rounds")
    p.add_argument("--rate-time", type=float, default=0.25, help="seconds per GFLOP/s block")
    p.add_argument("--max-gd-steps", type=int, default=2_000_000)
    p.add_argument("--soft-only", action="store_true", help="run only the soft-label Gram-flow case")
    p.add_argument("--save-cost-only", action="store_true", help="run only the cost-of-saving stage")
    p.add_argument("--soft-dim", type=int, default=128, help="soft-label case: feature dim (128)")
    p.add_argument("--soft-t1", type=float, default=1e8, help="soft-label case: final time (1e8)")
    p.add_argument("--soft-cap", type=int, default=200_000, help="soft-label case: parameter-flow max_evals")
    p.add_argument("--_cold-grad", dest="cold_grad", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.K, args.t1, args.tol, args.repeats = 32, 1e2, 1e-2, 1
        args.interleave_rounds, args.rate_rounds, args.rate_time = 2, 2, 0.1
        args.soft_t1, args.soft_cap = 1e4, 5000
    args.t1 = float(args.t1)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.cold_grad:
        _cold_gradient_main(args)
        return {}
    torch.set_default_dtype(torch.float64)
    if args.quick:
        torch.set_num_threads(1)  # a smoke test on a shared machine: no thread pool waiting for a core
    if args.soft_only:
        log(f"bench_flow --soft-only: soft-label UFM, d={args.soft_dim}, t1={args.soft_t1:g}")
        soft = {"benchmark": "bench_flow_soft", "timestamp": timestamp(), "machine": machine_info()}
        soft["soft_label"] = stage_soft_label(args)
        print_rows(soft_label_rows(soft["soft_label"]))
        write_json(output_path(args, "bench_flow_soft"), soft)
        return soft
    if args.save_cost_only:
        log(f"bench_flow --save-cost-only: K={args.K}, t1={args.t1:g}, default saveat vs final time only")
        out = {"benchmark": "bench_flow_save", "timestamp": timestamp(), "machine": machine_info()}
        out["save_cost"] = save = stage_save_cost(args)
        ms = save["per_call_cpu_ms"]
        print_rows(
            [
                (
                    "CPU s, 201 saves / final only",
                    f"{save['cpu_s_best']['default']:.3f} / "
                    f"{save['cpu_s_best']['final_only']:.3f} (+{100 * save['overhead_cpu']:.0f} %)",
                ),
                ("evaluations", f"{save['evaluations']['default']} / {save['evaluations']['final_only']}"),
                (
                    "ms per gradient / Grams / loss",
                    f"{ms['gradient']:.2f} / {ms['grams']:.2f} / {ms['loss']:.2f}",
                ),
                ("arithmetic floor of 201 saves", f"+{100 * save['arithmetic_floor_overhead']:.0f} %"),
            ]
        )
        write_json(output_path(args, "bench_flow_save"), out)
        return out
    started, K = time.perf_counter(), args.K
    prob = ut.UFM(ut.designs.factorial((K,)), dim=K, lam_W=args.lam, lam_H=args.lam)
    init = ut.init.small(prob, args.scale, seed=args.seed)
    machine = machine_info()
    log(f"bench_flow: standard UFM K=V=m=d={K}, t1={args.t1:g}, lam={args.lam:g}, init scale={args.scale:g}")
    if machine["load_average"] and machine["load_average"][0] > 0.5:
        log(f"  WARNING: 1-min load average {machine['load_average'][0]:.2f}: other processes were busy")
    rss = {"after_setup_mib": maxrss_mib()}
    loads = {"start": load_average()}
    flow = stage_flow(prob, init, args, rss)
    ref = stage_reference(prob, init, args, flow["traj"])
    rates = stage_rates(prob, init, args)
    rss["after_reference_and_rates_mib"] = maxrss_mib()
    gd = stage_gd(prob, init, args, flow["traj"], ref["traj"])
    rss["after_gd_mib"] = maxrss_mib()
    loads["end"] = load_average()
    traj = flow.pop("traj")
    flow.update(
        gradient_share_of_wall=rates["gradient_in_flow"]["seconds_per_call"]
        * flow["evaluations"]
        / flow["wall_s_median"],
        effective_gflops=flow["evaluations"] * prob.grad_flops() / flow["wall_s_median"] / 1e9,
        err_vs_reference=ref["err"],
        reference_evaluations=ref["traj"].stats["n_evals"],
        reference_wall_s=ref["wall_s"],
        tolerance_sweep=ref["sweep"],
    )
    config = {
        "problem": "UFM(designs.factorial((K,)), dim=K): one-hot, uniform pi",
        **{k: getattr(args, k) for k in ("K", "t1", "tol", "safety", "ref_rtol", "ref_atol")},
        "lam_W": prob.lam_W,
        "lam_H": prob.lam_H,
        "init": f"init.small(scale={args.scale:g}, seed={args.seed})",
        "flow_method": traj.method,
        "flow_rtol": args.rtol,
        "flow_atol": args.atol,
        "n_params": prob.n_params,
        "grad_flops": prob.grad_flops(),
    }
    result = {
        "benchmark": "bench_flow",
        "timestamp": timestamp(),
        "argv": sys.argv[1:] if argv is None else argv,
        "config": config,
        "machine": machine,
        "trajectory": ref["context"],
        "flow": flow,
        "gd": gd,
        "gflops": rates,
        "memory": {
            "flow_tracemalloc_peak_mib_default_saveat": flow["tracemalloc_peak_mib_default_saveat"],
            "flow_tracemalloc_peak_mib_final_only": flow["tracemalloc_peak_mib_final_only"],
            "state_vector_mib": prob.n_params * 8 / 2**20,
            "maxrss_mib": rss,
            "note": "maxrss is the process-wide high-water mark (includes the torch import); the flow "
            "stage runs first, so after_flow - after_setup bounds the flow's own RSS growth",
        },
        "summary": summarize(flow, ref, rates, gd, args.tol),
        "load_average": loads,
        "total_wall_s": time.perf_counter() - started,
    }
    result["soft_label"] = stage_soft_label(args)
    result["total_wall_s"] = time.perf_counter() - started
    print_table(result)
    write_json(output_path(args, "bench_flow"), result)
    return result


def print_table(r: dict[str, Any]) -> None:
    c, f, g, gr, m, s = r["config"], r["flow"], r["gd"], r["gflops"], r["memory"], r["summary"]
    gi, gc_, il = gr["gradient_in_flow"], gr["gradient_cold_process"], g["interleaved"]
    rows = [
        ("problem", f"K=V=m=d={c['K']}, t1={c['t1']:g}, lam={c['lam_W']:g}, {c['init']}"),
        (
            "flow (DOP853, log-time)",
            f"rtol={c['flow_rtol']:g} atol={c['flow_atol']:g}, {f['evaluations']} evals",
        ),
        (
            "  wall, default saveat",
            f"{f['wall_s_median']:.3f} s  (integration {f['integration_wall_s']:.3f} s)",
        ),
        ("  wall, final time only", f"{f['wall_s_final_only_median']:.3f} s"),
        ("  gradient share of wall", f"{100 * f['gradient_share_of_wall']:.0f} % (timed inside the flow)"),
        ("  Gram err vs rtol=1e-11", f"{f['err_vs_reference']['max']:.2e}"),
        ("torch GD (autograd, f64)", f"lr={g['lr']:.4g}, {g['steps']} steps, {g['ms_per_step']:.3f} ms/step"),
        ("  first-order fit", f"err ≈ {g['first_order_c']:.4g}·lr (order {g['observed_order']:.3f})"),
        ("  wall (timed run)", f"{g['wall_s']:.2f} s  (lr search {g['search_wall_s']:.2f} s)"),
        ("  Gram err vs flow H / W", f"{g['err_vs_flow']['H']:.2e} / {g['err_vs_flow']['W']:.2e}"),
        (
            "WALL RATIO GD / flow",
            f"{s['wall_ratio_gd_over_flow']:.1f}x  (final-only saveat "
            f"{s['wall_ratio_gd_over_flow_final_only']:.1f}x; target >= 10x: "
            f"{'MET' if s['wall_ratio_target_met'] else 'NOT MET'})",
        ),
        (
            "  interleaved, best of each",
            f"{s['wall_ratio_interleaved_best']:.1f}x  (final-only {il['ratio_best_final_only']:.1f}x; flow "
            f"{min(il['flow_wall_s']):.3f} s / {min(il['flow_final_only_wall_s']):.3f} s, "
            f"GD {1e3 * min(il['gd_seconds_per_step']):.3f} ms/step × {g['steps']})",
        ),
        (
            "gradient GFLOP/s",
            f"{gr['gradient']['gflops_best']:.1f} (median {gr['gradient']['gflops_median']:.1f})"
            f", {1e3 * gr['gradient']['seconds_per_call_best']:.3f} ms/call",
        ),
        (
            "  inside the flow",
            f"{gi['gflops']:.1f}, {1e3 * gi['seconds_per_call']:.3f} ms/call, "
            f"{gi['faults_per_call']:.0f} page faults/call",
        ),
        (
            "  fresh process, init state",
            f"{gc_['gflops_best']:.1f}, {gc_['faults_per_call']:.0f} page faults/call "
            f"(isolated above: {gr['gradient']['faults_per_call']:.0f}/call)",
        ),
        (
            "numpy matmul 256³ GFLOP/s",
            f"{gr['matmul_256']['gflops_best']:.1f} (median {gr['matmul_256']['gflops_median']:.1f})",
        ),
        (
            "numpy matmul 1024³ GFLOP/s",
            f"{gr['matmul_1024']['gflops_best']:.1f} (median {gr['matmul_1024']['gflops_median']:.1f})",
        ),
        (
            "GRAD / MATMUL",
            f"{100 * s['grad_gflops_ratio_vs_matmul_256']:.0f} % of 256³, "
            f"{100 * s['grad_gflops_ratio_vs_matmul_1024']:.0f} % of 1024³ (target >= 50 %)",
        ),
        ("torch GD step GFLOP/s", f"{g['effective_gflops']:.1f}"),
        (
            "flow tracemalloc peak",
            f"{m['flow_tracemalloc_peak_mib_default_saveat']:.1f} MiB default saveat, "
            f"{m['flow_tracemalloc_peak_mib_final_only']:.1f} MiB final only "
            f"(state {m['state_vector_mib']:.2f} MiB)",
        ),
        ("max RSS", ", ".join(f"{k.removesuffix('_mib')} {v:.0f} MiB" for k, v in m["maxrss_mib"].items())),
    ]
    foreign = {
        "flow timing": f["foreign_cpu_fraction"],
        "GFLOP/s rates": gr["foreign_cpu_fraction"],
        "GD timed run": g["foreign_cpu_fraction"],
        "interleaved": il["foreign_cpu_fraction"],
    }
    if "soft_label" in r:
        rows += soft_label_rows(r["soft_label"])
    foreign = {k: v for k, v in foreign.items() if v is not None}
    footer = f"total benchmark time {r['total_wall_s']:.1f} s\nCPU share taken by other processes: "
    footer += ", ".join(f"{k} {100 * v:.0f} %" for k, v in foreign.items())
    if any(v > 0.1 for v in foreign.values()):
        footer += (
            "\nWARNING: other processes used > 10 % of the CPUs in some stage; prefer the interleaved ratio"
        )
    print_rows(rows, footer)


if __name__ == "__main__":
    main()
