"""compare(): the fitted time map between gradient-flow time and steps, curve errors, phases, variants."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ufmtheory as ut
from ufmtheory.analysis.comparison import compare
from ufmtheory.analysis.comparison_result import Comparison
from ufmtheory.analysis.timemap import CURVE_METRICS
from ufmtheory.analysis.variants import variant_grid


@pytest.fixture(scope="module")
def design() -> ut.Design:
    return ut.designs.factorial((3, 3))


@pytest.fixture(scope="module")
def theory(design: ut.Design) -> ut.Trajectory:
    prob = ut.ModifiedUFM(design, dim=9, alpha=1.0, beta=1.0, ridge="H", lam_W=1e-3, lam_H=1e-3)
    # A small random init: both H and W have a rise and a fall of their semantic strength.
    init = ut.init.small(prob, scale=1e-2, seed=0)
    return ut.gradient_flow(prob, 1e5, init=init, saveat=ut.log_grid(1e5, 160, t_min=1e-2))


def _rescaled(traj: ut.Trajectory, a: float, b: float) -> ut.Trajectory:
    """The same Grams on steps s with log t = a + b log s."""
    pos = traj.ts > 0
    steps = np.exp((np.log(traj.ts[pos]) - a) / b)
    return ut.Trajectory(
        ts=steps,
        gram_H=np.asarray(traj.gram_H)[pos],
        gram_W=np.asarray(traj.gram_W)[pos],
        loss=traj.loss[pos],
        time_unit="step",
    )


@pytest.mark.parametrize(("a", "b"), [(1.5, 0.7), (-2.0, 1.3)])
def test_recovers_a_known_time_map(design: ut.Design, theory: ut.Trajectory, a: float, b: float) -> None:
    model = _rescaled(theory, a, b)
    cmp = compare(theory, model, design)
    assert isinstance(cmp, Comparison) and cmp.ok
    assert cmp.a == pytest.approx(a, abs=1e-3) and cmp.b == pytest.approx(b, abs=1e-3)
    assert cmp.fit_rms < 1e-5 and cmp.total_error < 1e-4
    for w in ("H", "W"):
        assert set(cmp.errors[w]) == set(CURVE_METRICS)
        # Phase times on the theory, mapped to steps, land on those measured on the rescaled copy.
        for name, pred in cmp.predicted[w].items():
            meas = cmp.measured[w][name]
            assert (pred is None) == (meas is None)
            if pred:
                assert math.log(pred) == pytest.approx(math.log(meas), abs=1e-6)
    assert cmp.to_step(cmp.to_time(123.0)) == pytest.approx(123.0)
    assert "time map" in cmp.table() and cmp.as_dict()["time_map"]["b"] == pytest.approx(b, abs=1e-3)


def test_a_different_curve_has_a_larger_error(design: ut.Design, theory: ut.Trajectory) -> None:
    same = compare(theory, _rescaled(theory, 1.0, 1.0), design)
    # The standard UFM from a small random init: no semantic plateau at all.
    std = ut.UFM(design, dim=9, lam_W=1e-3, lam_H=1e-3)
    other = ut.gradient_flow(std, 1e5, init=ut.init.small(std, 1e-2, seed=1), saveat=ut.log_grid(1e5, 80))
    other = _rescaled(other, 1.0, 1.0)
    diff = compare(theory, other, design)
    assert diff.total_error > 0.1 > 100 * same.total_error
    assert diff.fit_rms > 0.01 > 1000 * same.fit_rms


def test_variants_pick_the_generating_one(design: ut.Design, theory: ut.Trajectory) -> None:
    grid = variant_grid(design, alphas=(1.0, 2.0), ridges=("H", "E"), normalize=(None,))
    assert len(grid) == 4
    model = _rescaled(theory, 0.5, 1.0)
    truth = "α=1 β=1, ridge H λ=0.001"
    variants = {truth: theory, **{k: v for k, v in grid.items() if k != truth}}
    cmp = compare(theory, model, design, variants=variants)
    assert cmp.best_variant == truth and cmp.best is not None and cmp.best.total_error < 1e-4
    assert [v.name for v in cmp.variants] == list(variants)
    assert all(v.total_error > cmp.best.total_error for v in cmp.variants if v.name != truth)
    assert cmp.as_dict()["best_variant"] == truth


def test_bad_inputs_raise(design: ut.Design, theory: ut.Trajectory) -> None:
    model = _rescaled(theory, 0.0, 1.0)
    with pytest.raises(ValueError, match="which"):
        compare(theory, model, design, which=("X",))
    with pytest.raises(ValueError, match="which"):
        compare(theory, model, design, which=())
    with pytest.raises(ValueError, match="model must be a Trajectory"):
        compare(theory, "model", design)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="theory must be"):
        compare(42, model, design)
    with pytest.raises(ValueError, match="latent attributes"):
        compare(theory, model, None)
    with pytest.raises(ValueError, match="does not|must|V ="):
        compare(theory, model, ut.designs.factorial((2, 2)))
    short = ut.Trajectory(ts=[0.0, 1.0], gram_H=model.gram_H[:2], gram_W=model.gram_W[:2], loss=[0.0, 0.0])
    with pytest.raises(ValueError, match="at least 3"):
        compare(theory, short, design)
    with pytest.raises(ValueError, match="variants"):
        compare(theory, model, design, variants=[])
    with pytest.raises(ValueError, match="variants"):
        compare(theory, model, design, variants=3)
    with pytest.raises(ValueError, match="b_range"):
        compare(theory, model, design, b_range=(2.0, 5.0))
