"""The cvxpy nuclear-norm solve behind :func:`~ufmtheory.programs.max_margin.nn_svm` and
:func:`~ufmtheory.programs.max_margin.uf_svm`: solver choice and options, the margin/equality constraints of
next-token supports, and the solve with its fallback to the other solver.

Public names (:func:`choose_solver`, :data:`CLARABEL_MAX_SIZE`) are re-exported by
:mod:`ufmtheory.programs.max_margin`, their one public home. cvxpy and scipy.sparse are imported inside
:func:`_solve_nuclear` only, so ``import ufmtheory`` stays cvxpy-free.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any, TypeAlias

import numpy as np

__all__ = ["CLARABEL_MAX_SIZE", "choose_solver"]

Pairs: TypeAlias = tuple[np.ndarray, np.ndarray, np.ndarray]
"""``(r, a, b)``: int64 arrays of equal length k, one constraint on ``L[r, a] - L[r, b]`` each."""

# m·V at or below which CLARABEL (interior point, ~1e-9) is used; above it SCS (first order, faster per
# size but ~1e-6..1e-8). The nuclear-norm SDP has an (m+V)-sized PSD cone, which is what makes CLARABEL slow.
CLARABEL_MAX_SIZE = 1000  # bench_convex: CLARABEL 2 s at 25x25 but 49 s at 50x50; SCS 0.4 s there

# cvxpy status -> result status
_CVXPY_STATUS = {
    "optimal": "ok",
    "optimal_inaccurate": "inaccurate",
    "infeasible": "infeasible",
    "infeasible_inaccurate": "infeasible",
    "unbounded": "failed",
    "unbounded_inaccurate": "failed",
    "user_limit": "max_evals",
}


def _default_options(solver: str) -> dict[str, Any]:
    if solver == "CLARABEL":
        return {"tol_gap_abs": 1e-8, "tol_gap_rel": 1e-8, "tol_feas": 1e-8, "max_iter": 500}
    if solver == "SCS":
        return {"eps_abs": 1e-8, "eps_rel": 1e-8, "max_iters": 200_000}
    return {}


def choose_solver(m: int, V: int, solver: str | None = None) -> str:
    """``solver`` if given, else CLARABEL when ``m·V <= CLARABEL_MAX_SIZE`` and SCS above."""
    if solver is not None:
        if not isinstance(solver, str):
            raise TypeError(f"solver must be a string such as 'CLARABEL' or 'SCS', got {solver!r}")
        return solver.upper()
    return "CLARABEL" if m * V <= CLARABEL_MAX_SIZE else "SCS"


def _solve_nuclear(
    n_rows: int,
    V: int,
    ineq: Pairs,
    eq: Pairs,
    row_scale: np.ndarray | None,
    *,
    solver: str | None,
    solver_options: dict[str, Any] | None,
    what: str,
) -> tuple[np.ndarray, str, str, str, dict[str, Any], float, float, int]:
    """``min ‖diag(row_scale) L‖_*`` over ``L: (n_rows, V)`` s.t. ``L[r, a] - L[r, b] >= 1`` for the rows of
    ``ineq = (r, a, b)`` and ``L[r, a] == L[r, b]`` for ``eq = (r, a, b)``.

    Returns ``(L, solver name, status, message, options, wall time, solver objective, iterations)``."""
    import cvxpy as cp  # lazy: keeps `import ufmtheory` cvxpy-free

    name = choose_solver(n_rows, V, solver)
    opts = _default_options(name)
    opts.update(solver_options or {})
    # With the solver chosen automatically, a run that ends short of "optimal" (CLARABEL's
    # optimal_inaccurate on overlapping supports, an iteration limit) is retried once with the other solver
    # at its defaults with a larger budget; the first optimal run is kept.
    attempts = [(name, opts)]
    if solver is None:
        other = "SCS" if name == "CLARABEL" else "CLARABEL"
        retry = _default_options(other)
        retry.update({"max_iters": 1_000_000} if other == "SCS" else {"max_iter": 2000})
        attempts.append((other, retry))
    start = time.perf_counter()
    L = cp.Variable((n_rows, V))
    x = cp.vec(L, order="C")  # index r * V + z
    cons = []
    if ineq[0].size:
        cons.append(_differences(ineq, n_rows, V) @ x >= 1)
    if eq[0].size:
        cons.append(_differences(eq, n_rows, V) @ x == 0)
    expr = L if row_scale is None else cp.multiply(row_scale[:, None], L)
    prob = cp.Problem(cp.Minimize(cp.normNuc(expr)), cons)
    tried: list[str] = []
    iters = 0
    first: tuple[Any, ...] | None = None  # the first attempt, kept when the retry does no better
    for name, opts in attempts:
        try:
            with warnings.catch_warnings():
                # cvxpy's own "may be inaccurate" warning: the status check below reports it with context
                warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                prob.solve(solver=name, **opts)
            cvx_status = str(prob.status)
        except cp.error.SolverError as exc:
            cvx_status = f"solver_error: {exc}"
        solver_stats = getattr(prob, "solver_stats", None)
        iters += int(getattr(solver_stats, "num_iters", 0) or 0) if solver_stats is not None else 0
        status = _CVXPY_STATUS.get(cvx_status, "failed")
        tried.append(f"{name}: {cvx_status}")
        if status == "ok":
            break
        if first is None:
            first = (
                name,
                opts,
                cvx_status,
                status,
                None if L.value is None else np.array(L.value),
                prob.value,
            )
    if status != "ok" and first is not None and first[3] == "inaccurate" and first[4] is not None:
        # the retry did not reach optimal either: an inaccurate solution beats a failed one
        name, opts, cvx_status, status, kept, kept_obj = first
        L.value, obj_override = kept, kept_obj
    else:
        obj_override = None
    wall = time.perf_counter() - start
    message = ""
    if status != "ok":
        message = f"{what}: solver {name} returned status {cvx_status!r} (tolerances {opts})"
    if len(tried) > 1:
        message = (message + "; " if message else "") + "solvers tried: " + ", ".join(tried)
    value = L.value if L.value is not None else np.full((n_rows, V), np.nan)
    obj_value = obj_override if obj_override is not None else prob.value
    obj = float(obj_value) if obj_value is not None else math.nan
    return np.asarray(value, dtype=np.float64), name, status, message, opts, wall, obj, iters


def _differences(pairs: Pairs, n_rows: int, V: int) -> Any:
    """(k, n_rows·V) sparse matrix: row i picks ``L[r_i, a_i] - L[r_i, b_i]`` from ``vec(L)`` (C order)."""
    import scipy.sparse as sp

    r, a, b = pairs
    k = r.size
    rows = np.r_[np.arange(k), np.arange(k)]
    return sp.csr_matrix(
        (np.r_[np.ones(k), -np.ones(k)], (rows, np.r_[r * V + a, r * V + b])), shape=(k, n_rows * V)
    )


def _support_constraints(S: np.ndarray) -> tuple[Pairs, Pairs, int]:
    rows_i, a_i, b_i, rows_e, a_e, b_e = [], [], [], [], [], []
    full = 0
    for j, srow in enumerate(S > 0):
        sup, out = np.flatnonzero(srow), np.flatnonzero(~srow)
        z0 = sup[0]
        rows_e.append(np.full(sup.size - 1, j))
        a_e.append(sup[1:])
        b_e.append(np.full(sup.size - 1, z0))
        if out.size == 0:
            full += 1  # every token in the support: no margin constraint, only equalities
            continue
        rows_i.append(np.full(out.size, j))
        a_i.append(np.full(out.size, z0))
        b_i.append(out)

    def cat(xs: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(xs).astype(np.int64) if xs else np.zeros(0, dtype=np.int64)

    return (cat(rows_i), cat(a_i), cat(b_i)), (cat(rows_e), cat(a_e), cat(b_e)), full
