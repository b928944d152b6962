"""Benchmark: exact reduced flow (association-scheme coefficients) against the full modified-UFM flow.

Problem: ``ModifiedUFM(factorial((A, A)), dim=K, alpha=1, beta=1, ridge="H", lam_W=lam_H=lam)`` on A×A
grids (K = A², one-hot labels). Both flows start from the same aligned point: coefficients
``w_S = h_S = init_scale`` (1e-3) on every non-trivial projector (``w_∅ = h_∅ = 0``), i.e. isotropic centred
Grams, so the semantic strength starts at 0, *rises* (attribute modes grow first) and *falls* (the collapse
to the ETF) within ``t1`` (checked from the reduced metrics: a collapse time must be found). The full flow
gets its parameters from :func:`ufmtheory.aligned_full_init` and runs ``ut.gradient_flow`` with
package defaults (method "auto": LSODA up to 1000 parameters, DOP853 above; log-time; rtol=1e-8,
atol=1e-10); the reduced flow runs ``ut.reduced_solve(structured=True)`` with package defaults (rtol=1e-10,
atol=1e-12, method "auto": LSODA under ridge) plus its metric curves from the coefficients
(``traj.metrics(traj.scheme)``, H and W). Both save on the default 201-point log grid.

Stages (DESIGN.md, "Performance expectations": side by side in one run, as ratios):

1. **1000×1000 (K = 10⁶), reduced only**, in a fresh subprocess (so ``ru_maxrss`` is its own): the first
   call (building the scheme's numpy equations — before 0.2 the sympy import, derivation + lambdify — solve,
   metrics; untraced), warm calls
   (median), and traced re-runs for the tracemalloc peak (cold, compilation included, and warm). With ridge
   on H the origin is stable when ``λ ≥ 1/K`` (the mode matrix ``[[-λ, g], [κg, -κλ]]`` at ``g = 1/K`` has
   determinant ``κ(λ² - g²)``; ridge on E: ``λ ≥ sqrt(κ)/K``), so ``λ = 1e-3`` at K = 10⁶ has no semantic
   phase at all (all modes decay; kept as a control run). The benchmarked run uses ``λ = 1e-3 · 9/K``
   (``λK`` as for the 3×3 grid at ``λ = 1e-3``) and ``t1 = 1e12`` (collapse near 1e9, ETF by ~1e12).
2. **Grid series** A = 3, 4, 6, 8, 11, 14, 16, 20, 23 (K = 9 … 529), ``λ = 1e-3``, ``t1 = 1e5``: the reduced
   flow at every size (in process; first call, warm median, traced runs); the full flow, each size in a
   fresh subprocess (untraced timed run and ``ru_maxrss``; a second, traced run when the first took under
   ``--trace-below`` s), from the smallest size up while its predicted wall time (log-log extrapolation of
   the previous sizes, at least gradient cost × evaluations) stays within ``--budget`` (60 s); a run over
   the budget ends the series. Per size: wall time, evaluations, memory, the max relative Gram-coefficient
   disagreement ``max_t max_S |c_full - c_red| / max_S |c_red|`` for ``HᵀH`` and ``WWᵀ``, phase times.
3. **Fits**: log-log slopes of wall time (and memory) against K for each flow, and the full/reduced
   wall-time ratio at every common size, in particular the largest one within the budget.

Targets: 1000×1000 through its collapse in < 2 s and < 200 MB (tracemalloc); full/reduced ≥ 100× at the
largest common size. BLAS runs single-threaded by default (``--blas-threads``; see below). Numbers are
noisy when other processes share the 2 cores: the load average at start and end is recorded.

Run: ``.venv/bin/python benchmarks/bench_reduced.py [--quick] [--budget 60] [--out PATH]``
(full run ~4-6 min on 2 cores; ``--quick``: grids 3, 4, 6 and a 10 s budget, JSON to the temp folder).
"""

from __future__ import annotations

import os
import sys

# BLAS threads must be fixed before numpy is imported. Default 1: the full flow's matmuls (K <= 529) gain
# little from 2 threads, and on a shared 2-core machine an oversubscribed OpenBLAS pool stalls (measured
# 0.5 ms -> 145 ms per K = 121 gradient under load). Override with --blas-threads N (subprocesses inherit).
_argv_threads = "1"
for _i, _a in enumerate(sys.argv):
    if _a.startswith("--blas-threads="):
        _argv_threads = _a.split("=", 1)[1]
    elif _a == "--blas-threads" and _i + 1 < len(sys.argv):
        _argv_threads = sys.argv[_i + 1]
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, _argv_threads)

import argparse  # noqa: E402
import gc  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    emit,
    fmt,
    load_average,
    log,
    loglog_slope,
    machine_info,
    maxrss_mib,
    output_path,
    parser,
    run_worker,
    timestamp,
    write_json,
)

import ufmtheory as ut  # noqa: E402
from ufmtheory.algebra.schemes import factorial_scheme  # noqa: E402
from ufmtheory.metrics import phase_times  # noqa: E402
from ufmtheory.solvers.reduced import ReducedProblem, aligned_full_init, reduced_solve  # noqa: E402

GRID = (3, 4, 6, 8, 11, 14, 16, 20, 23)
QUICK_GRID = (3, 4, 6)


# -- helpers ---------------------------------------------------------------------------------------------
def clear_compile_cache() -> None:
    """Forget the reduced equations built for each scheme (numpy since 0.2: nothing to derive; sympy is no
    longer on the solver's path)."""
    from ufmtheory.solvers import reduced_rhs

    reduced_rhs._CACHE.clear()


# -- stage 0: predict_phases through the natural API, in a fresh process ------------------------------------
PREDICT_CALL = (
    "ut.predict_phases(ut.ModifiedUFM(ut.designs.factorial((1000, 1000)), dim=10**6, alpha=1.0, beta=1.0,"
    " lam_W=9e-9, lam_H=9e-9))"
)


def predict_main(args: argparse.Namespace) -> None:
    """Runs in a fresh subprocess (possibly against an older checkout on PYTHONPATH): one JSON line."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    design = ut.designs.factorial((1000, 1000))
    prob = ut.ModifiedUFM(design, dim=10**6, alpha=1.0, beta=1.0, lam_W=9e-9, lam_H=9e-9)
    ph = ut.predict_phases(prob)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    emit(
        {
            "package": os.path.dirname(ut.__file__),
            "wall_s": wall,
            "cpu_s": cpu,
            "maxrss_mib": maxrss_mib(),
            "sympy_loaded": "sympy" in sys.modules,
            "status": ph.status,
            "evaluations": ph.stats["n_evals"],
            "attempts": ph.stats["attempts"],
            "times": ph.times,
            "peak_strength": ph.peak_strength,
            "load_average": load_average(),
        }
    )


def run_predict(args: argparse.Namespace) -> dict[str, Any]:
    """The predict_phases call in fresh processes: this checkout (``--predict-repeats`` times) and, with
    ``--before PATH`` (an older checkout's root, e.g. ``git worktree``), that one alternately."""
    import json
    import subprocess

    def once(path: str | None) -> dict[str, Any]:
        env = dict(os.environ)
        if path:
            env["PYTHONPATH"] = path
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, __file__, "--_predict"], capture_output=True, text=True, env=env, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"predict worker ({path or 'this checkout'}) failed:\n{proc.stderr[-4000:]}")
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        out["process_wall_s"] = time.perf_counter() - t0  # interpreter start + imports + the call
        return out

    runs: dict[str, list[dict[str, Any]]] = {"after": []}
    if args.before:
        runs["before"] = []
    for _ in range(args.predict_repeats):
        for name in runs:
            runs[name].append(once(args.before if name == "before" else None))
    summary = {}
    for name, rs in runs.items():
        summary[name] = {
            "wall_s_median": statistics.median(r["wall_s"] for r in rs),
            "cpu_s_median": statistics.median(r["cpu_s"] for r in rs),
            "process_wall_s_median": statistics.median(r["process_wall_s"] for r in rs),
            "maxrss_mib_max": max(r["maxrss_mib"] for r in rs),
            "runs": rs,
        }
    return {"call": PREDICT_CALL, **summary}


def equal_init(n_S: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """``w_S = h_S = scale`` for S ≠ ∅: isotropic centred Grams at t = 0 (semantic strength 0)."""
    w0 = np.full(n_S, scale)
    w0[0] = 0.0
    return w0, w0.copy()


def reduced_problem(A: int, lam: float) -> ReducedProblem:
    return ReducedProblem.from_parts(
        factorial_scheme((A, A)), alpha=1.0, beta=1.0, ridge="H", lam_W=lam, lam_H=lam
    )


def run_reduced_once(rp: ReducedProblem, t1: float, init: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    """One reduced solve + its metric curves (H and W); wall times of each part."""
    t0 = time.perf_counter()
    sol = reduced_solve(rp, t1, init=init, structured=True)
    t_solve = time.perf_counter() - t0
    traj = sol.trajectory
    assert traj is not None and traj.structured
    mH = traj.metrics(traj.scheme)
    mW = traj.metrics(traj.scheme, which="W")
    t_total = time.perf_counter() - t0
    return {"sol": sol, "mH": mH, "mW": mW, "t_solve": t_solve, "t_total": t_total}


def phase_summary(m: dict[str, np.ndarray]) -> dict[str, Any]:
    s = m["semantic_strength"]
    pt = phase_times(m["ts"], s, m["etf_distance"])
    finite = s[np.isfinite(s)]
    return {
        **pt,
        "strength_start": float(finite[0]) if finite.size else None,
        "strength_end": float(finite[-1]) if finite.size else None,
        "etf_distance_end": float(m["etf_distance"][-1]),
        "effective_rank_end": float(m["effective_rank"][-1]),
        "rises_then_falls": bool(
            pt["collapse"] is not None
            and finite.size > 0
            and pt["peak_strength"] > finite[0] + 0.05
            and finite[-1] < 0.5 * pt["peak_strength"]
        ),
    }


def bench_reduced(A: int, lam: float, t1: float, scale: float, repeats: int) -> dict[str, Any]:
    rp = reduced_problem(A, lam)
    init = equal_init(rp.scheme.n_S, scale)
    gc.collect()
    clear_compile_cache()
    first = run_reduced_once(rp, t1, init)  # includes building this scheme's equations
    warm = [run_reduced_once(rp, t1, init) for _ in range(repeats)]
    gc.collect()
    tracemalloc.start()
    try:
        run_reduced_once(rp, t1, init)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    sol = first["sol"]
    return {
        "A": A,
        "K": A * A,
        "lam": lam,
        "t1": t1,
        "status": sol.status,
        "method": sol.method,
        "evaluations": sol.stats["n_evals"],
        "wall_first_s": first["t_total"],
        "wall_s": statistics.median(r["t_total"] for r in warm),
        "wall_solve_s": statistics.median(r["t_solve"] for r in warm),
        "wall_runs_s": [r["t_total"] for r in warm],
        "tracemalloc_peak_mib": peak / 2**20,
        "maxrss_after_mib": maxrss_mib(),
        "phases_H": phase_summary(first["mH"]),
        "phases_W": phase_summary(first["mW"]),
        "_sol": sol,
    }


def gradient_seconds(prob: Any, theta: np.ndarray, rounds: int = 5) -> float:
    prob.flat_loss_and_grad(theta)
    t0 = time.perf_counter()
    for _ in range(rounds):
        prob.flat_loss_and_grad(theta)
    return (time.perf_counter() - t0) / rounds


def full_problem(A: int, lam: float) -> ut.ModifiedUFM:
    design = ut.designs.factorial((A, A))
    return ut.ModifiedUFM(design, dim=A * A, alpha=1.0, beta=1.0, ridge="H", lam_W=lam, lam_H=lam)


def full_main(args: argparse.Namespace) -> None:
    """Runs in a subprocess (its own ru_maxrss): one full flow, untraced and timed; then, when that took
    less than ``--trace-below`` seconds, a second, traced run for the tracemalloc peak. Prints one JSON line
    with the Gram coefficients on the scheme (for the comparison in the parent)."""
    A = args.full_A
    prob = full_problem(A, args.lam)
    sch = factorial_scheme((A, A))
    w0, h0 = equal_init(sch.n_S, args.scale)
    init = aligned_full_init(prob, w0, h0)
    theta = prob.pack(init)
    grad_ms = 1e3 * gradient_seconds(prob, theta)
    gc.collect()
    rss_base = maxrss_mib()
    t0 = time.perf_counter()
    traj = ut.gradient_flow(prob, args.t1, init=init)
    wall = time.perf_counter() - t0
    rss_after = maxrss_mib()
    peak = None
    if wall < args.trace_below:
        del traj
        gc.collect()
        tracemalloc.start()
        try:
            traj = ut.gradient_flow(prob, args.t1, init=init)
            _, peak_b = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        peak = peak_b / 2**20
    cH = np.array([sch.coefficients(G) for G in traj.gram_H])
    cW = np.array([sch.coefficients(G) for G in traj.gram_W])
    m = traj.metrics(prob.design)
    emit(
        {
            "A": A,
            "K": A * A,
            "status": traj.status,
            "method": traj.method,
            "evaluations": traj.stats["n_evals"],
            "wall_s": wall,
            "gradient_ms": grad_ms,
            "n_params": prob.n_params,
            "tracemalloc_peak_mib": peak,
            "maxrss_before_mib": rss_base,
            "maxrss_after_mib": rss_after,
            "maxrss_delta_mib": rss_after - rss_base,
            "saved_gram_stack_mib": 2 * len(traj) * (A * A) ** 2 * 8 / 2**20,
            "cH": cH,
            "cW": cW,
            "strength": m["semantic_strength"],  # non-finite values travel as null
            "etf_distance": m["etf_distance"],
            "effective_rank": m["effective_rank"],
            "ts": traj.ts,
        }
    )


def bench_full(A: int, args: argparse.Namespace, reduced: dict[str, Any]) -> dict[str, Any]:
    argv = ["--_full", "--full-A", str(A), "--lam", repr(args.lam), "--t1", repr(args.t1)]
    argv += ["--scale", repr(args.scale), "--trace-below", repr(args.trace_below)]
    res = run_worker(__file__, argv)
    sol = reduced["_sol"]
    cH, cW = np.array(res.pop("cH")), np.array(res.pop("cW"))
    n = min(len(cH), len(sol.ts))
    rH, rW = sol.gram_H_coeffs[:n], sol.gram_W_coeffs[:n]
    res["max_rel_coeff_err_H"] = float(np.max(np.abs(cH[:n] - rH) / np.abs(rH).max(axis=1, keepdims=True)))
    res["max_rel_coeff_err_W"] = float(np.max(np.abs(cW[:n] - rW) / np.abs(rW).max(axis=1, keepdims=True)))
    strength = np.array([np.nan if x is None else x for x in res.pop("strength")])
    etf = np.array([np.nan if x is None else x for x in res.pop("etf_distance")])
    erank = np.array([np.nan if x is None else x for x in res.pop("effective_rank")])
    ts = np.array(res.pop("ts"))
    res["max_abs_strength_diff"] = float(np.nanmax(np.abs(strength[:n] - reduced["_mH_strength"][:n])))
    res["phases_H"] = phase_summary(
        {"ts": ts, "semantic_strength": strength, "etf_distance": etf, "effective_rank": erank}
    )
    return res


def predict_full_wall(rows: list[dict[str, Any]], A: int, lam: float) -> float:
    """Predicted wall time of the full flow at A×A: extrapolated along the log-log fit of the previous
    sizes' wall times (slope at least that of the measured gradient cost), or 0 for the first sizes."""
    if len(rows) < 2:
        return 0.0
    K = [r["K"] for r in rows[-3:]]
    wall = [r["wall_s"] for r in rows[-3:]]
    slope = max(float(np.polyfit(np.log(K), np.log(wall), 1)[0]), 1.0)
    prob = full_problem(A, lam)
    w0, h0 = equal_init(4, 1e-3)
    g = gradient_seconds(prob, prob.pack(aligned_full_init(prob, w0, h0)), rounds=3)
    by_grad = g * rows[-1]["evaluations"] * 1.5  # gradients + integrator overhead on 2K² numbers
    return max(wall[-1] * (A * A / K[-1]) ** slope, by_grad)


# -- stage 1: the 1000×1000 design in its own process ----------------------------------------------------
def big_main(args: argparse.Namespace) -> None:
    """Runs in a subprocess: prints one JSON line."""
    t_start = time.perf_counter()
    rss_start = maxrss_mib()  # after the module imports above (numpy, scipy, ufmtheory; not sympy)
    A = args.big_A
    K = A * A
    out: dict[str, Any] = {
        "A": A,
        "K": K,
        "import_maxrss_mib": rss_start,
        "sympy_loaded_before_first_call": "sympy" in sys.modules,
    }
    runs = {}
    for name, lam, t1 in (  # the benchmarked run first: its first call is cold (no caches warm)
        ("benchmark", args.lam * 9.0 / K, args.big_t1),
        ("control_lam_1e-3", args.lam, 1e6),
    ):
        rp = reduced_problem(A, lam)
        init = equal_init(rp.scheme.n_S, args.scale)
        clear_compile_cache()  # every run starts by building its equations
        gc.collect()
        # Untraced (tracemalloc slows this Python-bound loop ~5x). The benchmarked run comes first in this
        # fresh process, so its first call also pays any one-off imports.
        first = run_reduced_once(rp, t1, init)
        warm = [run_reduced_once(rp, t1, init) for _ in range(args.repeats)]
        peaks = []
        for cold in (True, False):  # traced re-runs: with the compilation, then warm
            if cold:
                clear_compile_cache()
            gc.collect()
            tracemalloc.start()
            try:
                run_reduced_once(rp, t1, init)
                peaks.append(tracemalloc.get_traced_memory()[1])
            finally:
                tracemalloc.stop()
        peak_first, peak_warm = peaks
        sol = first["sol"]
        runs[name] = {
            "lam": lam,
            "lam_times_K": lam * K,
            "t1": t1,
            "status": sol.status,
            "method": sol.method,
            "evaluations": sol.stats["n_evals"],
            "wall_first_s": first["t_total"],
            "wall_s": statistics.median(r["t_total"] for r in warm),
            "wall_solve_s": statistics.median(r["t_solve"] for r in warm),
            "wall_runs_s": [r["t_total"] for r in warm],
            "tracemalloc_peak_first_mib": peak_first / 2**20,
            "tracemalloc_peak_mib": peak_warm / 2**20,
            "maxrss_mib": maxrss_mib(),
            "phases_H": phase_summary(first["mH"]),
            "phases_W": phase_summary(first["mW"]),
            "gram_H_coeffs_end": sol.gram_H_coeffs[-1].tolist(),
            "structured_shape": list(sol.trajectory.gram_H.shape),
        }
    out["runs"] = runs
    out["process_wall_s"] = time.perf_counter() - t_start
    out["maxrss_mib"] = maxrss_mib()
    emit(out)


def big_cold_trace_main(args: argparse.Namespace) -> None:
    """Runs in a fresh subprocess: tracemalloc peak of the very first 1000×1000 call, one-off imports and the
    derivation of the equations included (nothing reduced-flow related is loaded before). One JSON line."""
    A = args.big_A
    rp = reduced_problem(A, args.lam * 9.0 / (A * A))
    init = equal_init(rp.scheme.n_S, args.scale)
    gc.collect()
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        run_reduced_once(rp, args.big_t1, init)
        wall = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    emit({"tracemalloc_peak_cold_mib": peak / 2**20, "wall_traced_s": wall, "maxrss_mib": maxrss_mib()})


def run_big(args: argparse.Namespace) -> dict[str, Any]:
    argv = ["--lam", repr(args.lam), "--big-t1", repr(args.big_t1), "--big-A", str(args.big_A)]
    argv += ["--scale", repr(args.scale), "--repeats", str(args.repeats)]
    t0 = time.perf_counter()
    res = run_worker(__file__, ["--_big", *argv])
    res["subprocess_wall_s"] = time.perf_counter() - t0  # interpreter start + imports + everything
    res["cold_traced"] = run_worker(__file__, ["--_big_cold_trace", *argv])
    return res


# -- stages 2 and 3 ----------------------------------------------------------------------------------------
def stage_series(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict | None]:
    """Reduced flow at every grid size; the full flow from the smallest size up while its predicted (or
    measured) wall time stays within the budget. Returns (reduced rows, full rows, where the series ended)."""
    reduced_rows, full_rows, stopped = [], [], None
    for A in args.grid:
        red = bench_reduced(A, args.lam, args.t1, args.scale, args.repeats)
        tr = red["_sol"].trajectory
        red["_mH_strength"] = tr.metrics(tr.scheme)["semantic_strength"]
        log(
            f"  A={A:3d} K={A * A:4d} reduced: {red['wall_s'] * 1e3:8.1f} ms warm,"
            f" {red['wall_first_s']:.2f} s first ({red['evaluations']} evals, {red['method']}),"
            f" collapse t={red['phases_H']['collapse']}"
        )
        if stopped is None:
            predicted = predict_full_wall(full_rows, A, args.lam)
            if predicted > args.budget:
                log(f"  A={A:3d} full: predicted {predicted:.0f} s > budget {args.budget:g} s: series ends")
                stopped = {"A": A, "K": A * A, "predicted_s": predicted}
            else:
                row = bench_full(A, args, red)
                row["predicted_s"] = predicted
                full_rows.append(row)
                log(
                    f"  A={A:3d} K={A * A:4d} full:    {row['wall_s']:8.2f} s ({row['evaluations']} evals,"
                    f" {row['method']}, {row['gradient_ms']:.2f} ms/grad; predicted {predicted:.1f} s),"
                    f" coeff err H {row['max_rel_coeff_err_H']:.1e} W {row['max_rel_coeff_err_W']:.1e},"
                    f" ratio {row['wall_s'] / red['wall_s']:.0f}x"
                )
                if row["wall_s"] > args.budget:
                    log(f"  full flow took {row['wall_s']:.0f} s > budget: series ends")
                    stopped = {"A": A, "K": A * A, "measured_s": row["wall_s"]}
        red.pop("_sol")
        red.pop("_mH_strength")
        reduced_rows.append(red)
    return reduced_rows, full_rows, stopped


def fits(reduced_rows: list[dict[str, Any]], full_rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Log-log slopes against K of wall time and memory, per flow."""

    def slope(rows: list[dict[str, Any]], key: str) -> float | None:
        return loglog_slope([r["K"] for r in rows], [r.get(key) for r in rows])

    common = {r["A"] for r in full_rows}
    return {
        "full_wall_vs_K": slope(full_rows, "wall_s"),
        "full_gradient_vs_K": slope(full_rows, "gradient_ms"),
        # ru_maxrss grows only once the flow outgrows the import-time peak (~120 MiB): fit those sizes.
        "full_maxrss_delta_vs_K_where_over_50MiB": slope(
            [r for r in full_rows if r["maxrss_delta_mib"] >= 50], "maxrss_delta_mib"
        ),
        "full_saved_gram_stack_vs_K": slope(full_rows, "saved_gram_stack_mib"),
        "full_tracemalloc_vs_K": slope(full_rows, "tracemalloc_peak_mib"),
        "reduced_wall_vs_K_common_sizes": slope([r for r in reduced_rows if r["A"] in common], "wall_s"),
        "reduced_wall_vs_K_all_sizes": slope(reduced_rows, "wall_s"),
        "reduced_evaluations_vs_K_all_sizes": slope(reduced_rows, "evaluations"),
        "reduced_tracemalloc_vs_K_all_sizes": slope(reduced_rows, "tracemalloc_peak_mib"),
    }


def targets(result: dict[str, Any], budget: float) -> dict[str, Any]:
    """The targets: 1000×1000 through its collapse in < 2 s and < 200 MB; full/reduced ≥ 100× at the
    largest common size within the budget."""
    within = [r for r in result["full"] if r["wall_s"] <= budget]
    largest = max(within, key=lambda r: r["K"]) if within else None
    at_largest = next((x for x in result["ratios"] if largest and x["A"] == largest["A"]), {})
    big = result["big"]["runs"]["benchmark"]
    cold = result["big"]["cold_traced"]["tracemalloc_peak_cold_mib"]
    peaks = (big["tracemalloc_peak_mib"], big["tracemalloc_peak_first_mib"], cold)
    errs = [max(r["max_rel_coeff_err_H"], r["max_rel_coeff_err_W"]) for r in result["full"]]
    return {
        "big_through_collapse": bool(big["phases_H"]["rises_then_falls"]),
        "big_wall_warm_s": big["wall_s"],
        "big_wall_first_call_s": big["wall_first_s"],
        "big_under_2s_warm": big["wall_s"] < 2.0,
        "big_under_2s_first_call": big["wall_first_s"] < 2.0,
        "big_tracemalloc_warm_mib": peaks[0],
        "big_tracemalloc_first_call_mib": peaks[1],
        "big_tracemalloc_cold_process_mib": peaks[2],
        "big_under_200MB_tracemalloc": max(peaks) < 200,
        "big_process_maxrss_mib": big["maxrss_mib"],
        "largest_common_A_within_budget": largest["A"] if largest else None,
        "ratio_at_largest_common": at_largest["full_over_reduced"] if at_largest else None,
        "ratio_at_largest_common_first_call": at_largest["full_over_reduced_first_call"]
        if at_largest
        else None,
        "ratio_at_least_100x": bool(at_largest and at_largest["full_over_reduced"] >= 100),
        "max_rel_coeff_err": max(errs, default=None),
    }


NOTES = (
    "Wall times are noisy when other processes share the 2 cores (see the load averages). Full flows run "
    "untraced in a fresh subprocess per size (ru_maxrss is that process's own; maxrss_delta is its growth "
    "during the flow, mostly the 2 x 201 saved K x K Grams); their tracemalloc peak comes from a second, "
    "traced run, only for sizes under --trace-below seconds. Reduced timings: median of untraced warm runs "
    "(solve + H and W metric curves); 'first' includes building that scheme's numpy equations (no sympy "
    "since 0.2; before, the sympy derivation and lambdify); tracemalloc peaks from separate traced runs. "
    "Stage 0 runs predict_phases through the natural API in fresh processes, with --before PATH also an "
    "older checkout (side by side, alternating)."
)


# -- main ------------------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    ap = parser(__doc__, "grids 3, 4, 6, a 10 s full-flow budget, one warm repeat")
    ap.add_argument("--budget", type=float, default=60.0, help="wall-time limit of one full flow (s)")
    ap.add_argument("--lam", type=float, default=1e-3)
    ap.add_argument("--t1", type=float, default=1e5, help="horizon of the grid series")
    ap.add_argument("--big-A", type=int, default=1000)
    ap.add_argument("--big-t1", type=float, default=1e12)
    ap.add_argument("--scale", type=float, default=1e-3, help="init coefficient w_S = h_S (S ≠ ∅)")
    ap.add_argument("--repeats", type=int, default=3, help="warm reduced runs (median)")
    ap.add_argument("--trace-below", type=float, default=10.0, help="trace full flows faster than this (s)")
    ap.add_argument("--blas-threads", default="1", help="BLAS threads (set before numpy import)")
    ap.add_argument("--before", default=None, help="older checkout root: predict_phases before/after")
    ap.add_argument("--predict-repeats", type=int, default=3, help="fresh processes per predict_phases case")
    ap.add_argument("--predict-only", action="store_true", help="stage 0 only (predict_phases, ~30 s)")
    for hidden in ("--_big", "--_full", "--_big_cold_trace", "--_predict"):  # worker modes (subprocesses)
        ap.add_argument(hidden, action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--full-A", type=int, default=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.grid = QUICK_GRID if args.quick else GRID
    if args.quick:
        args.budget, args.repeats = 10.0, 1
    return args


def main() -> None:
    args = parse_args()
    workers = (
        ("_big", big_main),
        ("_full", full_main),
        ("_big_cold_trace", big_cold_trace_main),
        ("_predict", predict_main),
    )
    for flag, worker in workers:
        if getattr(args, flag):
            worker(args)
            return
    started = time.perf_counter()
    result: dict[str, Any] = {
        "benchmark": "bench_reduced",
        "date": timestamp(),
        "machine": machine_info(),
        "load_average_start": load_average(),
        "config": {
            "problem": "ModifiedUFM(factorial((A, A)), dim=K, alpha=1, beta=1, ridge='H', lam_W=lam_H=lam)",
            "init": f"aligned, w_S = h_S = {args.scale} for S != empty (isotropic centred Grams)",
            "grid": list(args.grid),
            "lam": args.lam,
            "t1": args.t1,
            "full_flow": "ut.gradient_flow defaults (auto method, log-time, rtol=1e-8, atol=1e-10)",
            "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
            "reduced_flow": "ut.reduced_solve(structured=True) defaults (rtol=1e-10, atol=1e-12), + metrics",
            "full_budget_s": args.budget,
            "big": {"A": args.big_A, "t1": args.big_t1, "lam": f"{args.lam} * 9 / K"},
            "repeats": args.repeats,
        },
    }
    log("stage 0: predict_phases on 1000x1000 through the natural API (fresh processes)")
    result["predict"] = run_predict(args)
    for name in ("before", "after"):
        if name in result["predict"]:
            p = result["predict"][name]
            wall, cpu, rss = p["wall_s_median"], p["cpu_s_median"], p["maxrss_mib_max"]
            log(f"  {name}: wall {wall:.2f} s, cpu {cpu:.2f} s, {rss:.0f} MiB")
    if args.predict_only:
        result["load_average_end"] = load_average()
        print_predict(result)
        write_json(output_path(args, "bench_reduced_predict"), result)
        return
    log(f"stage 1: reduced flow on {args.big_A}x{args.big_A} (subprocess)")
    result["big"] = run_big(args)
    b = result["big"]["runs"]["benchmark"]
    log(
        f"  K={args.big_A**2}: first {b['wall_first_s']:.3f} s, warm {b['wall_s']:.3f} s, "
        f"{b['evaluations']} evals ({b['method']}), tracemalloc {b['tracemalloc_peak_mib']:.1f} MiB "
        f"(first call {b['tracemalloc_peak_first_mib']:.1f}), maxrss {b['maxrss_mib']:.0f} MiB, "
        f"collapse t={b['phases_H']['collapse']}"
    )
    log(f"stage 2: grid series {args.grid}, lam={args.lam}, t1={args.t1:g}, full budget {args.budget:g} s")
    result["maxrss_before_series_mib"] = maxrss_mib()
    result["reduced"], result["full"], result["full_stopped"] = stage_series(args)
    result["fits_loglog_slope"] = fits(result["reduced"], result["full"])
    red_wall = {r["A"]: r for r in result["reduced"]}
    result["ratios"] = [
        {
            "A": r["A"],
            "K": r["K"],
            "full_over_reduced": r["wall_s"] / red_wall[r["A"]]["wall_s"],
            "full_over_reduced_first_call": r["wall_s"] / red_wall[r["A"]]["wall_first_s"],
        }
        for r in result["full"]
    ]
    result["targets"] = targets(result, args.budget)
    result["load_average_end"] = load_average()
    result["total_wall_s"] = time.perf_counter() - started
    result["maxrss_end_mib"] = maxrss_mib()
    result["notes"] = NOTES
    print_table(result)
    write_json(output_path(args, "bench_reduced"), result)


def print_predict(res: dict[str, Any]) -> None:
    pr = res["predict"]
    n = len(pr["after"]["runs"])
    print(f"\n{pr['call']}\nfresh processes (median of {n}); load {res['load_average_start']}")
    print(
        f"{'':>7} {'wall s':>7} {'cpu s':>6} {'proc s':>7} {'MiB':>5} {'evals':>6} {'sympy':>5}"
        f" {'collapse':>10} {'etf':>10}"
    )
    for name in ("before", "after"):
        if name in pr:
            p, r = pr[name], pr[name]["runs"][0]
            print(
                f"{name:>7} {p['wall_s_median']:7.2f} {p['cpu_s_median']:6.2f}"
                f" {p['process_wall_s_median']:7.2f}"
                f" {p['maxrss_mib_max']:5.0f} {r['evaluations']:6d} {r['sympy_loaded']!s:>5}"
                f" {fmt(r['times']['collapse'], '10.4g')} {fmt(r['times']['etf_time'], '10.4g')}"
            )


def print_table(res: dict[str, Any]) -> None:
    print_predict(res)
    cfg = res["config"]
    print(f"\nreduced vs full flow: ModifiedUFM A×A, ridge H, lam={cfg['lam']}, t1={cfg['t1']:g}")
    print(f"load average start {res['load_average_start']}, end {res['load_average_end']}")
    hdr = (
        f"{'A':>3} {'K':>4} | {'full s':>7} {'evals':>6} {'method':>6} {'rss+MiB':>7} | {'red ms':>7} "
        f"{'1st s':>5} {'evals':>5} {'MiB':>5} | {'ratio':>6} {'err H':>7} {'err W':>7} | {'t_peak':>7} "
        f"{'t_col':>7}"
    )
    print(hdr)
    print("-" * len(hdr))
    full = {r["A"]: r for r in res["full"]}
    for r in res["reduced"]:
        f = full.get(r["A"]) or {}
        ratio = f["wall_s"] / r["wall_s"] if f else None
        ph = r["phases_H"]
        print(
            f"{r['A']:>3} {r['K']:>4} | {fmt(f.get('wall_s'), '7.2f')} {fmt(f.get('evaluations'), '6d')} "
            f"{f.get('method', '-'):>6} {fmt(f.get('maxrss_delta_mib'), '7.1f')} | {r['wall_s'] * 1e3:7.1f} "
            f"{r['wall_first_s']:5.2f} {r['evaluations']:>5d} {r['tracemalloc_peak_mib']:5.2f} | "
            f"{fmt(ratio, '6.0f')} {fmt(f.get('max_rel_coeff_err_H'), '7.1e')} "
            f"{fmt(f.get('max_rel_coeff_err_W'), '7.1e')} | {fmt(ph['peak'], '7.3g')} "
            f"{fmt(ph['collapse'], '7.3g')}"
        )
    big = res["big"]
    for name, b in big["runs"].items():
        print(
            f"\n{big['A']}x{big['A']} (K={big['K']}) {name}: lam={b['lam']:.3g}"
            f" (lam*K={b['lam_times_K']:.3g}), t1={b['t1']:g}, {b['evaluations']} evals ({b['method']})"
        )
        print(
            f"  wall: warm {b['wall_s']:.3f} s (solve {b['wall_solve_s']:.3f} s), first call (equations"
            f" built) {b['wall_first_s']:.3f} s; tracemalloc warm {b['tracemalloc_peak_mib']:.2f} MiB,"
            f" rebuilt {b['tracemalloc_peak_first_mib']:.1f} MiB; process maxrss {b['maxrss_mib']:.0f} MiB"
        )
        p = b["phases_H"]
        if not p["peak_strength"] > 0.05:
            print(f"  no semantic phase (peak strength {p['peak_strength']:.3g}): the origin is stable")
            continue
        print(
            f"  semantic strength {p['strength_start']:.3f} -> peak {p['peak_strength']:.3f}"
            f" (t={fmt(p['peak'], '.3g')}) -> {p['strength_end']:.3f};"
            f" collapse t={fmt(p['collapse'], '.3g')}, ETF t={fmt(p['etf_time'], '.3g')},"
            f" final ETF distance {p['etf_distance_end']:.3g}"
        )
    ct = big["cold_traced"]
    print(
        f"\n{big['A']}x{big['A']}, first call of a fresh process under tracemalloc (equations built,"
        f" solve, metrics): peak {ct['tracemalloc_peak_cold_mib']:.1f} MiB,"
        f" process maxrss {ct['maxrss_mib']:.0f} MiB"
    )
    fits = res["fits_loglog_slope"]
    print("\nlog-log slopes vs K: " + ", ".join(f"{k} {fmt(v, '.2f')}" for k, v in fits.items()))
    print("targets: " + ", ".join(f"{k} {v}" for k, v in res["targets"].items()))
    print(f"total wall {res['total_wall_s']:.0f} s")


if __name__ == "__main__":
    main()
