"""Benchmark: the nuclear-norm SVM (``ufmtheory.programs.max_margin.nn_svm``) by size and solver.

Problem: the balanced one-hot design ``factorial((n,))`` (m = V = n), where the optimum is known in closed
form (the centred-support proxy is exact there): ``L* = I - 11ᵀ/n`` with ``‖L*‖_* = n - 1``. Each installed
solver (CLARABEL, SCS) runs at n = 25, 50, 100, 200 with the package's explicit tolerances (CLARABEL
``tol_* = 1e-8``; SCS ``eps_abs = eps_rel = 1e-8``, ``max_iters = 200000``) and ```` so that a
non-optimal status is recorded rather than raised.

Measured: wall time (cvxpy build + solve), status, ``|objective - (n-1)|`` and ``max |L - L*|``. A combination
whose time, extrapolated from the solver's two previous sizes by a power law (exponent at least 3), exceeds
``--max-predicted`` seconds (default 120) is skipped and the table says so; the whole run stays under
``--budget`` seconds (default 420).

Run: ``.venv/bin/python benchmarks/bench_convex.py [--sizes 25 50 100 200] [--out PATH]``.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
from _common import log, machine_info, output_path, parser, timestamp, write_json

import ufmtheory as ut
from ufmtheory import programs as svm


def predict(history: list[tuple[int, float]], n: int) -> float:
    """Power-law extrapolation of the solve time to size n from the last two (size, time) points."""
    if not history:
        return 0.0
    if len(history) == 1:
        n0, t0 = history[0]
        return t0 * (n / n0) ** 3.5
    (n0, t0), (n1, t1) = history[-2], history[-1]
    p = max(3.0, math.log(max(t1, 1e-3) / max(t0, 1e-3)) / math.log(n1 / n0))
    return t1 * (n / n1) ** p


def run_one(n: int, solver: str) -> dict:
    d = ut.designs.factorial((n,))
    expected = np.eye(n) - 1.0 / n
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        res = svm.nn_svm(d, solver=solver)
        wall = time.perf_counter() - start
    finite = bool(np.all(np.isfinite(res.solution)))
    return {
        "n": n,
        "solver": solver,
        "status": res.status,
        "time_s": wall,
        "objective": res.objective if finite else None,
        "objective_error": abs(res.objective - (n - 1)) if finite else None,
        "logit_error": float(np.abs(res.solution - expected).max()) if finite else None,
        "min_margin": res.stats.get("min_margin") if finite else None,
        "skipped": None,
    }


def main() -> None:
    ap = parser(__doc__, "n = 10 and 25 only")
    ap.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100, 200])
    ap.add_argument("--solvers", nargs="+", default=["CLARABEL", "SCS"])
    ap.add_argument("--max-predicted", type=float, default=120.0)
    ap.add_argument("--budget", type=float, default=420.0)
    args = ap.parse_args()
    if args.quick:
        args.sizes = [10, 25]
    import cvxpy as cp

    installed = set(cp.installed_solvers())
    rows: list[dict] = []
    t_start = time.perf_counter()
    for solver in args.solvers:
        if solver not in installed:
            rows.append({"n": None, "solver": solver, "skipped": "solver not installed"})
            continue
        history: list[tuple[int, float]] = []
        for n in args.sizes:
            guess = predict(history, n)
            left = args.budget - (time.perf_counter() - t_start)
            if guess > args.max_predicted or guess > left:
                why = f"predicted {guess:.0f} s > limit {min(args.max_predicted, left):.0f} s"
                rows.append({"n": n, "solver": solver, "skipped": why, "predicted_s": guess})
                continue
            row = run_one(n, solver)
            row["predicted_s"] = guess if history else None
            history.append((n, row["time_s"]))
            rows.append(row)
            log(f"  {solver} n={n}: {row['time_s']:.2f} s, {row['status']}")

    print()
    print(f"{'n':>5} {'solver':>9} {'status':>20} {'time (s)':>9} {'|obj-(n-1)|':>12} {'max|L-L*|':>10}")
    for r in rows:
        if r.get("skipped"):
            print(f"{r['n']!s:>5} {r['solver']:>9}   skipped: {r['skipped']}")
            continue
        oe = "nan" if r["objective_error"] is None else f"{r['objective_error']:.1e}"
        le = "nan" if r["logit_error"] is None else f"{r['logit_error']:.1e}"
        print(f"{r['n']:>5} {r['solver']:>9} {r['status']:>20} {r['time_s']:>9.2f} {oe:>12} {le:>10}")
    total = time.perf_counter() - t_start
    print(f"\ntotal {total:.1f} s")
    write_json(
        output_path(args, "bench_convex"),
        {
            "benchmark": "bench_convex",
            "problem": "nn_svm on factorial((n,)) (balanced one-hot, m = V = n); closed form I - 11^T/n",
            "date": timestamp(),
            "machine": machine_info(),
            "versions": {"cvxpy": cp.__version__, "numpy": np.__version__},
            "clarabel_max_size": svm.CLARABEL_MAX_SIZE,
            "max_predicted_s": args.max_predicted,
            "rows": rows,
            "total_s": total,
        },
    )


if __name__ == "__main__":
    main()
