"""The shared flow front end (ufmtheory.solvers._frontend), the result convention (ufmtheory._results) and the
argument checks (ufmtheory._validate): same init and scale in the full and the reduced solver, statuses
instead of hangs or silent NaN, errors that name the argument."""

from __future__ import annotations

import numpy as np
import pytest

import ufmtheory as ut
from ufmtheory import _validate
from ufmtheory._results import STATUSES, SolverError, split_legacy_status
from ufmtheory.solvers import _frontend

D33 = ut.designs.factorial((3, 3))


# -- one init, one scale --------------------------------------------------------------------------------
@pytest.mark.parametrize("ridge", ["H", "E"])
def test_same_scale_gives_the_same_starting_grams_in_full_and_reduced_solver(ridge: str) -> None:
    """2×4 modified UFM (the case of issue 8): both solvers start from W Wᵀ = scale C_K and
    HᵀH = scale C_K K_x (written out from the design here), and then follow the same flow."""
    design = ut.designs.factorial((2, 4))
    K, scale = design.m, 1e-3
    lam = {"lam_H": 1e-3} if ridge == "H" else {"lam_E": 1e-3}
    prob = ut.ModifiedUFM(design, dim=K, alpha=1.0, beta=1.0, ridge=ridge, lam_W=1e-3, **lam)
    ts = np.array([0.0, 1.0, 10.0])
    full = ut.gradient_flow(prob, 10.0, init="aligned", scale=scale, saveat=ts, rtol=1e-11, atol=1e-14)
    red = ut.reduced_solve(prob, 10.0, scale=scale, saveat=ts, rtol=1e-11, atol=1e-14).trajectory
    assert full.ok and red.ok
    C = np.eye(K) - 1.0 / K
    X_tilde = np.vstack([design.X, np.eye(K)])
    np.testing.assert_allclose(full.gram_W[0], scale * C, rtol=0, atol=1e-15)
    np.testing.assert_allclose(full.gram_H[0], scale * C @ X_tilde.T @ X_tilde, rtol=0, atol=1e-15)
    np.testing.assert_allclose(red.gram_W[0], full.gram_W[0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(red.gram_H[0], full.gram_H[0], rtol=0, atol=1e-15)
    # the exact reduction: the same flow afterwards (to the integrators' tolerance)
    for G_red, G_full in ((red.gram_H, full.gram_H), (red.gram_W, full.gram_W)):
        np.testing.assert_allclose(G_red[1:], G_full[1:], rtol=1e-7, atol=1e-12)


def test_init_strings_and_scale_rules() -> None:
    prob = ut.UFM(D33, dim=9)
    small = _frontend.resolve_init(prob, None)
    np.testing.assert_array_equal(small, prob.pack(ut.init.small(prob, 1e-3, seed=0)))
    np.testing.assert_array_equal(
        _frontend.resolve_init(prob, "small", 0.1), prob.pack(ut.init.small(prob, 0.1))
    )
    aligned = _frontend.resolve_init(prob, "aligned", 0.5)
    np.testing.assert_array_equal(aligned, prob.pack(ut.init.aligned(prob, 0.5)))
    with pytest.raises(ValueError, match="init"):
        _frontend.resolve_init(prob, "orthogonal")
    with pytest.raises(ValueError, match="scale"):
        _frontend.resolve_init(prob, ut.init.small(prob), 0.1)  # a scale with explicit parameters
    with pytest.raises(ValueError, match="init_ratio"):
        ut.reduced_solve(ut.ModifiedUFM(D33, dim=9), 1.0, init_ratio="other")
    with pytest.raises(TypeError, match="init"):
        ut.reduced_solve(ut.ModifiedUFM(D33, dim=9), 1.0, init=np.zeros(4))


# -- statuses instead of hangs and silent NaN -----------------------------------------------------------
def test_runaway_ridge_ends_with_a_status() -> None:
    """λ = 1e300: the stiff solve stalls at the first step; it ends (not ok) instead of running forever."""
    tr = ut.gradient_flow(ut.UFM(D33, 9, 1e300, 1e300), 3.0)
    assert not tr.ok and tr.status in ("failed", "max_evals", "nonfinite") and tr.message


def test_non_finite_reduced_state_is_never_ok() -> None:
    sol = ut.reduced_solve(ut.ModifiedUFM(D33, 9, normalize=1e300), 1.0)
    assert sol.status == "nonfinite" and not sol.ok and sol.trajectory.status == "nonfinite"
    with pytest.raises(SolverError, match="nonfinite"):
        ut.reduced_solve(ut.ModifiedUFM(D33, 9, normalize=1e300), 1.0, throw=True)


def test_huge_initial_scales_end_or_are_refused() -> None:
    """scale = 1e100 (coefficients 1e50): the logits saturate at once and the run ends with finite Grams;
    larger scales and coefficients whose squares overflow are refused before any work."""
    sol = ut.reduced_solve(ut.ModifiedUFM(D33, 9), 1.0, scale=1e100)
    assert sol.status in STATUSES and (not sol.ok or np.all(np.isfinite(sol.trajectory.gram_H)))
    prob = ut.ModifiedUFM(D33, 9)
    with pytest.raises(ValueError, match="scale"):
        ut.reduced_solve(prob, 1.0, scale=1e300)
    with pytest.raises(ValueError, match="scale"):
        ut.gradient_flow(prob, 1.0, init="aligned", scale=1e300)
    with pytest.raises(ValueError, match="scale"):
        ut.predict_phases(prob, scale=1e300)
    with pytest.raises(ValueError, match="points_per_decade"):
        ut.predict_phases(prob, points_per_decade=10**8)
    eq = ut.zhu(ut.UFM(D33, 9, 1e-300, 1e-300))  # the ridge product underflows; ε = 3e-300 < 1/K
    assert eq.kind == "etf" and eq.ok and np.isfinite(eq.loss)
    with pytest.raises(ValueError, match="scale"):
        ut.reduced_solve(ut.ModifiedUFM(D33, 9), 1.0, init=(np.full(4, 1e200), np.full(4, 1e200)))


def test_evaluation_cap_gives_max_evals_in_every_solver() -> None:
    prob = ut.ModifiedUFM(D33, dim=9, lam_W=1e-3, lam_H=1e-3)
    sol = ut.reduced_solve(prob, 1e4, max_evals=5)
    assert sol.status == "max_evals" and sol.stats["n_evals"] == 5 and "max_evals" in sol.message
    tr = ut.gradient_flow(prob, 1e4, max_evals=5)
    assert tr.status == "max_evals" and tr.stats["n_evals"] == 5
    with pytest.raises(SolverError) as info:
        ut.gradient_flow(prob, 1e4, max_evals=5, throw=True)
    assert info.value.result.status == "max_evals"
    assert _frontend.DEFAULT_MAX_EVALS == ut.gradient_flow.__kwdefaults__["max_evals"]
    assert _frontend.DEFAULT_MAX_EVALS == ut.reduced_solve.__kwdefaults__["max_evals"]


# -- bad numbers name the argument ----------------------------------------------------------------------
BAD = [
    (dict(t1=float("nan")), ValueError, "t1"),
    (dict(t1="3"), TypeError, "t1"),
    (dict(rtol=0.0), ValueError, "rtol"),
    (dict(rtol=-1.0), ValueError, "rtol"),
    (dict(atol=2.0), ValueError, "atol"),
    (dict(saveat=[0.0, float("nan"), 1.0]), ValueError, "saveat"),
    (dict(saveat=2**63), ValueError, "saveat"),
    (dict(saveat=2.5), TypeError, "saveat"),
    (dict(max_evals="x"), TypeError, "max_evals"),
    (dict(max_evals=2.5), TypeError, "max_evals"),
    (dict(max_evals=0), ValueError, "max_evals"),
    (dict(method="euler"), ValueError, "method"),
]


@pytest.mark.parametrize(("override", "exc", "name"), BAD)
@pytest.mark.parametrize("solver", ["gradient_flow", "reduced_solve"])
def test_bad_numbers_raise_naming_the_argument(solver: str, override: dict, exc: type, name: str) -> None:
    kwargs = {"t1": 1.0, **override}
    t1 = kwargs.pop("t1")
    with pytest.raises(exc, match=name):
        getattr(ut, solver)(ut.ModifiedUFM(D33, dim=9), t1, **kwargs)


def test_problem_must_be_a_problem() -> None:
    with pytest.raises(TypeError, match="problem"):
        ut.gradient_flow("x", 1.0)
    with pytest.raises(TypeError, match="problem"):
        ut.gradient_descent(None, 0.1, 10)


def test_validators_type_versus_value() -> None:
    for bad in ("1", None, True, [1.0]):
        with pytest.raises(TypeError, match="lam"):
            _validate.nonnegative("lam", bad)
    for bad in (-1.0, float("nan"), float("inf"), 10**400):
        with pytest.raises(ValueError, match="lam"):
            _validate.nonnegative("lam", bad)
    assert _validate.positive("t", np.float32(2.0)) == 2.0 and _validate.integer("n", np.int64(3)) == 3
    with pytest.raises(TypeError, match="n"):
        _validate.integer("n", 3.0)
    with pytest.raises(ValueError, match="n must be >= 2"):
        _validate.integer("n", 1, low=2)
    with pytest.raises(ValueError, match="model"):
        _validate.choice("model", "x", ("a", "b"))
    with pytest.raises(ValueError, match="alpha"):
        ut.ModifiedUFM(D33, dim=9, alpha=1e300)


# -- the result convention ------------------------------------------------------------------------------
def test_results_share_one_vocabulary_and_fixed_stats_keys() -> None:
    prob = ut.ModifiedUFM(D33, dim=9, lam_W=1e-3, lam_H=1e-3)
    results = [
        ut.gradient_flow(prob, 10.0, saveat=3),
        ut.gradient_descent(prob, 0.1, 10, saveat=3),
        ut.reduced_solve(prob, 10.0, saveat=3),
        ut.equilibria.semantic_saddle(prob),
        ut.equilibria.end_state(ut.ModifiedUFM(D33, dim=9, ridge="E")),
        ut.equilibria.zhu(ut.UFM(D33, dim=9, lam_W=1e-3, lam_H=1e-3)),
        ut.programs.end_state_lp(ut.algebra.scheme(D33), None, objective="H"),
    ]
    for res in results:
        assert res.status in STATUSES and res.ok and isinstance(res.message, str) and res.message
        assert {"n_evals", "wall_time_s"} <= set(res.stats)
        with pytest.raises(TypeError):  # keyword-only construction
            type(res)(*[getattr(res, f) for f in res.__dataclass_fields__])
    with pytest.raises(ValueError, match="status"):
        ut.Trajectory(ts=[0.0], gram_H=np.eye(2)[None], gram_W=np.eye(2)[None], loss=[0.0], status="optimal")
    assert split_legacy_status("failed: non-finite gradient at s = 1") == (
        "nonfinite",
        "non-finite gradient at s = 1",
    )
