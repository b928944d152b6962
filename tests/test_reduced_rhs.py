"""The solver's numpy reduced equations (solvers/reduced_rhs.py) against the independent sympy derivation
(solvers/symbolic.py), its analytic Jacobian against central differences, and predict_phases' continued
horizons against one solve to the final horizon."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

import ufmtheory as ut
from ufmtheory.algebra.schemes import factorial_scheme, hierarchical_scheme
from ufmtheory.analysis.phases import _reduced, _save_grid
from ufmtheory.solvers import symbolic
from ufmtheory.solvers.reduced import ReducedProblem, initial_coefficients
from ufmtheory.solvers.reduced_rhs import ReducedRHS

SCHEMES = {
    "3x3": factorial_scheme((3, 3)),
    "2x3x4": factorial_scheme((2, 3, 4)),
    "hier-3-2": hierarchical_scheme(3, 2),
    "1000x1000": factorial_scheme((1000, 1000)),
}


CASES = [
    # sympy's normalised derivation on 8 projectors takes several seconds: slow.
    pytest.param(name, ridge, norm, marks=[pytest.mark.slow] if norm and name == "2x3x4" else [])
    for name in SCHEMES
    for ridge in ("H", "E")
    for norm in (False, True)
]


@pytest.mark.parametrize(("name", "ridge", "normalize"), CASES)
def test_numpy_equations_equal_the_sympy_derivation(name: str, ridge: str, normalize: bool) -> None:
    sch = SCHEMES[name]
    # crc32, not hash(): str hashes are salted per process (PYTHONHASHSEED), so hash() is not a seed.
    rng = np.random.default_rng(zlib.crc32(f"{name}-{ridge}-{normalize}".encode()))
    f = ReducedRHS.from_scheme(sch, ridge, normalize)
    c = symbolic.compile_reduced(sch.counts, sch.exact_table, sch.ranks, ridge, normalize=normalize)
    radius = 1.7 if normalize else None
    for _ in range(3):
        w, h = rng.normal(size=sch.n_S), rng.normal(size=sch.n_S)
        kappa = rng.uniform(0.5, 2.0, sch.n_S)
        a, b = f.rhs(w, h, kappa, 0.3, 0.2, radius), c.rhs(w, h, kappa, 0.3, 0.2, radius)
        # Both evaluate O(n_r) sums of O(1) terms in floats: agreement to a few ulps of the largest entry.
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-13 * np.abs(b).max())
        qa, cea = f.softmax(w, h, radius)
        qb, ceb = c.softmax(w, h, radius)
        np.testing.assert_allclose(qa, qb, rtol=1e-13)
        assert cea == pytest.approx(ceb, rel=1e-13, abs=1e-15)
        pen = c.penalty(w, h, kappa, 0.3, 0.2)
        assert f.penalty(w, h, kappa, 0.3, 0.2) == pytest.approx(pen, rel=1e-13)


def test_trivial_mode_has_no_gradient_exactly() -> None:
    """``C[∅, ·] = 0`` from the exact entries: the all-ones direction never moves (K = 10⁶ included)."""
    for sch in SCHEMES.values():
        assert np.all(ReducedRHS.from_scheme(sch).C[0] == 0.0)


@pytest.mark.parametrize("name", ["3x3", "2x3x4", "hier-3-2"])
@pytest.mark.parametrize("ridge", ["H", "E"])
def test_analytic_jacobian_equals_central_differences(name: str, ridge: str) -> None:
    sch = SCHEMES[name]
    rng = np.random.default_rng(7)
    f = ReducedRHS.from_scheme(sch, ridge)
    w, h = rng.normal(size=sch.n_S), rng.normal(size=sch.n_S)
    kappa = rng.uniform(0.5, 2.0, sch.n_S)
    J = f.jac(w, h, kappa, 0.3, 0.2)
    y, eps = np.concatenate([w, h]), 1e-6
    cols = []
    for e in np.eye(y.size):
        plus, minus = np.split(y + eps * e, 2), np.split(y - eps * e, 2)
        cols.append((f.rhs(*plus, kappa, 0.3, 0.2) - f.rhs(*minus, kappa, 0.3, 0.2)) / (2 * eps))
    # Central differences: truncation ~eps² |f'''| (O(1) here) plus rounding ~1e-16/eps.
    np.testing.assert_allclose(J, np.array(cols).T, rtol=0, atol=1e-8)


def test_normalised_state_has_no_analytic_jacobian() -> None:
    f = ReducedRHS.from_scheme(SCHEMES["3x3"], "H", normalize=True)
    fun, jac = f.log_time(np.ones(4), 0.0, 0.0, 1.0)
    assert jac is None and fun(0.0, np.ones(8)).shape == (8,)
    with pytest.raises(ValueError, match="radius"):
        f.log_time(np.ones(4), 0.0, 0.0, None)


def test_continued_horizons_equal_one_solve() -> None:
    """predict_phases extends its horizon by continuing the last run (autonomous flow, shifted clock):
    the joined trajectory equals one solve to the final horizon on the same grid, to the tolerance."""
    rp = ReducedProblem.from_parts(factorial_scheme((3, 3)), alpha=1.0, beta=1.0, lam_W=1e-3, lam_H=1e-3)
    init = initial_coefficients(rp, None, 1e-6)
    prev = None
    for horizon in (1e2, 1e3, 1e4):
        joined, state = _reduced(rp, horizon, init, _save_grid(horizon, 20), prev)
        prev = (joined, state)
    one = ut.reduced_solve(rp, 1e4, init=init, saveat=_save_grid(1e4, 20), structured=True).trajectory
    assert joined.ok and joined.stats["segments"] == 3 and len(joined) == len(one)
    np.testing.assert_array_equal(joined.ts, one.ts)
    # Coefficients are O(1..10): rtol 1e-10 per solve, a few solves deep.
    for a, b in ((joined.gram_H, one.gram_H), (joined.gram_W, one.gram_W)):
        np.testing.assert_allclose(a.coefficients, b.coefficients, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(joined.loss, one.loss, rtol=1e-7)
    assert joined.stats["n_evals"] > 0 and math.isfinite(joined.stats["wall_time_s"])


def test_dense_output_makes_at_solver_accurate() -> None:
    """ETF-mode flow (K = 7, u₀ = 1e-2) against its closed form u(t): with ``dense_output`` the Gram between
    saved times carries the solver's accuracy (rtol 1e-10), not the grid's cubic interpolation (9.4e-6 at
    t = 5 on the default grid, issue 10)."""
    prob = ut.UFM(ut.designs.factorial((7,)), dim=7)
    tr = ut.reduced_solve(prob, 1e3, scale=1e-2, dense_output=True).trajectory
    assert tr.dense is not None
    for t in (0.37, 5.0, 33.3, 777.0):
        u = ut.equilibria.etf_mode_u(t, 7, 1e-2)
        gH, gW = tr.at(t)
        # G = u P_1 with P_1 = I - J/7: diagonal u·6/7 (H and W alike on the balanced start).
        assert gH[0, 0] * 7 / 6 == pytest.approx(u, rel=1e-8)
        assert gW[0, 0] * 7 / 6 == pytest.approx(u, rel=1e-8)
    assert ut.reduced_solve(prob, 1e3, scale=1e-2).trajectory.dense is None  # off by default
