"""``ufmtheory.baseline.train_many``: K seeds in one batched model against K separate ``train`` runs.

The reference is an independent computation: ``train(design, config, seed=s)`` runs the plain GPT with
its own optimiser, one seed at a time. Batched products round differently in the last float32 bits, so
the comparison is up to float32 rounding amplified by training: Gram differences relative to the Gram
scale (the largest |entry| of that snapshot's Gram) and relative loss differences. Measured (module
docstring of ``ufmtheory.baseline.many``): ≲ 1e-4 and ≲ 1e-6 over 300 steps; asserted with margin.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ufmtheory as ut  # noqa: E402
from ufmtheory.baseline import TrainConfig, build_sequences, train, train_many  # noqa: E402

GRAM_TOL = 1e-3  # max |ΔG| / max |G|, per snapshot
LOSS_TOL = 1e-4  # |Δloss| / loss

TINY = TrainConfig(steps=50, width=16, n_heads=2, n_layers=1, n_snapshots=10)


def _assert_matches(many, singles, gram_tol=GRAM_TOL, loss_tol=LOSS_TOL):
    assert len(many) == len(singles)
    for a, b in zip(many, singles, strict=True):
        assert a.time_unit == b.time_unit == "step"
        assert a.status == b.status and a.method == b.method
        np.testing.assert_array_equal(a.ts, b.ts)
        for name in ("gram_H", "gram_W"):
            A, B = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
            assert A.shape == B.shape
            scale = np.abs(B).max(axis=(1, 2), keepdims=True)
            assert np.max(np.abs(A - B) / scale) < gram_tol, name
        np.testing.assert_allclose(a.loss, b.loss, rtol=loss_tol)
        assert a.meta["config"]["seed"] == b.meta["config"]["seed"]
        assert a.stats["final_step"] == b.stats["final_step"]


def test_adamw_full_batch_matches_separate_runs_with_weight_decay_and_peak_monitor():
    design = ut.designs.factorial((3, 3))  # 9 rows <= batch_size: full batch
    cfg = dataclasses.replace(TINY, weight_decay=0.1, peak_metric="W")
    seeds = [3, 0]
    many = train_many(design, cfg, seeds)
    singles = [train(design, cfg, seed=s) for s in seeds]
    _assert_matches(many, singles)
    for a, b in zip(many, singles, strict=True):
        assert a.stats["full_batch"] and a.stats["n_seeds"] == 2 and a.stats["seeds"] == seeds
        assert a.stats["peak"]["peak_step"] == b.stats["peak"]["peak_step"] is not None
    # Different seeds, different runs (the test above is not comparing one run with itself).
    assert np.abs(np.asarray(many[0].gram_H) - np.asarray(many[1].gram_H)).max() > 1e-3


def test_sgd_minibatch_with_padding_and_tied_weights_keeps_each_seeds_data_order():
    # 8 rows, batch 3: seeded epoch permutations, a different batch per seed at each step; random
    # attributes with repeated codes (distinct=False) get id tokens, so sequences of different lengths (left
    # padding, the attention pad mask).
    design = ut.designs.random_attributes(8, 5, 2, seed=0, distinct=False)
    assert build_sequences(design).pad_id is not None
    cfg = dataclasses.replace(
        TINY,
        steps=30,
        batch_size=3,
        optimizer="sgd",
        lr=0.3,
        momentum=0.9,
        weight_decay=1e-3,
        tied=True,
        loss_positions="all",
    )
    seeds = [1, 2]
    many = train_many(design, cfg, seeds)
    singles = [train(design, cfg, seed=s) for s in seeds]
    _assert_matches(many, singles)
    assert not many[0].stats["full_batch"]


def test_stop_at_and_overrides():
    design = ut.designs.factorial((2, 2))
    (traj,) = train_many(design, None, (5,), steps=30, width=8, n_heads=2, n_layers=1, stop_at=10)
    ref = train(design, TrainConfig(steps=30, width=8, n_heads=2, n_layers=1, stop_at=10, seed=5))
    _assert_matches([traj], [ref])
    assert traj.message == ref.message == "stopped at step 10 (stop_at)"


def test_nonfinite_run_is_reported_per_seed():
    # SGD with an absurd learning rate overflows: the status says so, as train() does.
    design = ut.designs.factorial((2, 2))
    cfg = TrainConfig(steps=20, width=8, n_heads=2, n_layers=1, optimizer="sgd", lr=1e30, n_snapshots=20)
    many = train_many(design, cfg, [0, 1])
    singles = [train(design, cfg, seed=s) for s in (0, 1)]
    for a, b in zip(many, singles, strict=True):
        assert a.status == b.status == "nonfinite"
        assert a.message == b.message and a.ts[-1] == b.ts[-1]


@pytest.mark.parametrize(
    ("seeds", "exc", "match"),
    [
        ([], ValueError, "seeds must hold at least one"),
        ([0, 1, 0], ValueError, r"seeds must be distinct.*\[0\]"),
        ([0, 1.0], TypeError, "seeds must hold integers"),
        ([True], TypeError, "seeds must hold integers"),
        (["1"], TypeError, "seeds must hold integers"),
        ("01", TypeError, "seeds must be a sequence"),
        (3, TypeError, "seeds must be a sequence"),
        ([-1], ValueError, "seeds must be integers in"),
        ([2**63], ValueError, "seeds must be integers in"),
    ],
)
def test_bad_seeds_are_refused_naming_seeds(seeds, exc, match):
    with pytest.raises(exc, match=match):
        train_many(ut.designs.factorial((2, 2)), TINY, seeds)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"dropout": 0.1}, "dropout must be 0 for train_many"),
        ({"checkpoint_every": 5, "checkpoint_dir": "ckpt"}, "checkpoint_every, checkpoint_dir and resume"),
        ({"peak_metric": "W", "stop_after_collapse": True}, "stop_after_collapse is not supported"),
    ],
)
def test_unsupported_options_are_refused(overrides, match):
    with pytest.raises(ValueError, match=match):
        train_many(ut.designs.factorial((2, 2)), TINY, [0, 1], **overrides)


def test_seed_override_is_refused():
    with pytest.raises(ValueError, match="takes its seeds from `seeds`"):
        train_many(ut.designs.factorial((2, 2)), TINY, [0, 1], seed=3)


def test_bad_design_and_config_types():
    with pytest.raises(TypeError, match="design"):
        train_many("3x3", TINY, [0])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="config"):
        train_many(ut.designs.factorial((2, 2)), {"steps": 3}, [0])  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.timeout(300)  # ~14 s of CPU, 68 s wall beside the other slow tests at load 7 (default: 120 s)
def test_demo_model_three_seeds_three_hundred_steps_match_separate_runs():
    # The measurement quoted in the docs: 3×3 factorial, demo width and depth, 300 steps, seeds 0-2.
    design = ut.designs.factorial((3, 3))
    cfg = TrainConfig(steps=300, n_snapshots=30)
    seeds = [0, 1, 2]
    _assert_matches(train_many(design, cfg, seeds), [train(design, cfg, seed=s) for s in seeds])
