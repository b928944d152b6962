"""Transformer baseline: exact-statistics sequences, the GPT (shapes, causal and pad masking), training
(loss decreases, Gram snapshots equal a recomputation from checkpoints, bit-identical resume on CPU) and
configuration validation.

Expected statistics are counted here directly from the token rows (not with ``label_statistics``), so the
data tests do not trust the code under test.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import torch

import ufmtheory as ut
from ufmtheory.baseline import (
    GPT,
    IGNORE_INDEX,
    GPTConfig,
    TrainConfig,
    build_sequences,
    compute_grams,
    latest_checkpoint,
    load_checkpoint,
    model_from_checkpoint,
    snapshot_steps,
    train,
)

from helpers import soft_design

TINY = {"width": 16, "n_heads": 2, "n_layers": 2}


def _soft_design() -> ut.Design:
    return soft_design(4, 5, seed=3)  # random floats: no small common denominator, so no count form


DESIGNS = {
    "factorial_2x3": lambda: ut.designs.factorial((2, 3)),
    "factorial_2x2x3": lambda: ut.designs.factorial((2, 2, 3)),
    "hierarchical_2_3": lambda: ut.designs.hierarchical(2, 3),
    "hierarchical_3_2": lambda: ut.designs.hierarchical(3, 2),
    "hierarchical_1_3": lambda: ut.designs.hierarchical(1, 3),
    "random_attributes": lambda: ut.designs.random_attributes(
        10, 4, 2, seed=0, distinct=False
    ),  # 10 > C(4,2)
    "from_counts": lambda: ut.designs.from_counts(
        [[3, 1, 0, 0], [0, 2, 2, 1], [1, 1, 1, 1]], X=[[1, 0, 1], [0, 1, 1]]
    ),
    "decimal_distributions": lambda: ut.designs.from_distributions([[0.7, 0.3, 0.0], [0.1, 0.2, 0.7]]),
    "soft": _soft_design,
}


# -- data ------------------------------------------------------------------------------------------------
def _count_statistics(data) -> tuple[np.ndarray, np.ndarray]:
    """(V, m) label frequencies per context and (m,) context frequencies, counted row by row."""
    label_index = {int(t): v for v, t in enumerate(data.label_ids)}
    joint: Counter = Counter()
    for row in range(data.n_rows):
        joint[(label_index[int(data.targets[row, -1])], int(data.context[row]))] += 1
    C = np.zeros((data.V, data.m))
    for (v, j), c in joint.items():
        C[v, j] = c
    n = C.sum(axis=0)
    return C / n, n / n.sum()


@pytest.mark.parametrize("name", list(DESIGNS))
@pytest.mark.parametrize("loss_positions", ["label", "all"])
def test_sequences_reproduce_Y_exactly(name, loss_positions):
    design = DESIGNS[name]()
    data = build_sequences(design, loss_positions=loss_positions)
    assert data.soft == (name == "soft")
    # Every context has its own distinct input sequence, and each row is its context's sequence.
    assert np.unique(data.context_tokens, axis=0).shape[0] == design.m
    np.testing.assert_array_equal(data.tokens, data.context_tokens[data.context])
    assert np.all(data.tokens[:, data.final_pos] != data.pad_id)
    # Labels are never inputs; inputs carry the context's attributes, in order.
    assert not np.isin(data.tokens, data.label_ids).any()
    for j in range(design.m):
        names = [data.vocab[t] for t in data.context_tokens[j] if t != data.pad_id]
        assert names[0] == "<bos>"
        attrs = [n for n in names[1:] if not n.startswith("ctx[")]
        assert attrs == [design.attribute_names[a] for a in np.flatnonzero(design.X[:, j])]
    if data.soft:
        # One row per context: its full distribution is the target (exact by construction).
        np.testing.assert_array_equal(data.targets[:, -1][:, data.label_ids], design.Y.T)
        np.testing.assert_allclose(data.weights / data.weights.sum(), design.pi, rtol=1e-15)
        Yh, pih = data.label_statistics()
        np.testing.assert_allclose(Yh, design.Y, rtol=1e-14, atol=1e-16)
    else:
        Yh, pih = _count_statistics(data)
        np.testing.assert_array_equal(Yh, design.Y)  # bit-exact: counts are the rationals behind Y
        np.testing.assert_array_equal(pih, design.pi)
        assert data.multiplier == data.n_rows
        np.testing.assert_array_equal(np.array(data.label_statistics()[0]), design.Y)
    # Targets: label position only, or every non-pad position (next input token, then the label).
    if not data.soft:
        if loss_positions == "label":
            assert np.all(data.targets[:, :-1] == IGNORE_INDEX)
        else:
            nonpad = data.tokens[:, :-1] != data.pad_id
            np.testing.assert_array_equal(data.targets[:, :-1][nonpad], data.tokens[:, 1:][nonpad])
            assert np.all(data.targets[:, :-1][~nonpad] == IGNORE_INDEX)


def test_sequence_layouts():
    f = build_sequences(ut.designs.factorial((2, 3)))
    assert f.pad_id is None and f.seq_len == 3 and f.n_rows == 6
    assert f.decode(4) == ["<bos>", "a1", "b1"] and f.vocab[f.targets[4, -1]] == "next[a1b1]"
    # Factor value tokens are disjoint across factors and separate from labels.
    assert set(f.vocab) >= {"a0", "a1", "b0", "b1", "b2"} and len(set(f.vocab)) == f.vocab_size
    h = build_sequences(ut.designs.hierarchical(3, 2))
    assert h.decode(5) == ["<bos>", "L1n1", "L2n2", "ctx[leaf101]"]  # ancestors, then the leaf's id
    r = build_sequences(ut.designs.random_attributes(10, 4, 2, seed=0, distinct=False))
    has_id = np.array([any(r.vocab[t].startswith("ctx[") for t in row) for row in r.context_tokens])
    assert r.pad_id == 1 and 0 < has_id.sum() < 10  # ids only where attribute sets repeat
    assert np.all(r.context_tokens[~has_id, 0] == r.pad_id)
    assert build_sequences(ut.designs.factorial((2, 2)), context_ids="all").seq_len == 4
    with pytest.raises(ValueError, match="context_ids='none'"):
        build_sequences(ut.designs.hierarchical(2, 2), context_ids="none")


def test_count_and_soft_modes():
    counts = build_sequences(ut.designs.from_counts([[6, 2], [0, 8]]))
    assert counts.n_rows == 8 and counts.multiplier == 8  # smallest common denominator, not 16
    soft = build_sequences(ut.designs.factorial((2, 2)), soft_targets=True)
    assert soft.soft and soft.n_rows == 4
    with pytest.raises(ValueError, match="soft_targets=False"):
        build_sequences(_soft_design(), soft_targets=False)
    with pytest.raises(ValueError, match="soft_targets=False"):  # too many rows needed
        build_sequences(ut.designs.from_counts([[1, 2], [3, 7]]), soft_targets=False, max_rows=5)
    with pytest.raises(ValueError, match="loss_positions"):
        build_sequences(ut.designs.factorial((2, 2)), loss_positions="first")


def test_batches_are_seeded_and_cover_epochs():
    data = build_sequences(ut.designs.factorial((3, 3)))
    full, w = data.batch(5, 16, seed=0)
    np.testing.assert_array_equal(full, np.arange(9))
    batches = [data.batch(s, 3, seed=7)[0] for s in range(6)]
    np.testing.assert_array_equal(batches[2], data.batch(2, 3, seed=7)[0])
    assert sorted(np.concatenate(batches[:3]).tolist()) == list(range(9))  # one epoch: every row once
    assert sorted(np.concatenate(batches[3:]).tolist()) == list(range(9))
    assert not np.array_equal(np.concatenate(batches[:3]), np.concatenate(batches[3:]))
    assert not np.array_equal(data.batch(0, 3, seed=8)[0], batches[0])
    # Batches may straddle an epoch boundary.
    assert sorted(np.concatenate([data.batch(s, 4, seed=1)[0] for s in range(9)]).tolist()) == sorted(
        list(range(9)) * 4
    )


# -- model -----------------------------------------------------------------------------------------------
def test_model_shapes_and_tying():
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=11, n_positions=5, n_layers=3, width=24, n_heads=4)
    model = GPT(cfg)
    x = torch.randint(0, 11, (7, 5))
    assert model(x).shape == (7, 5, 11)
    assert model(x, last_only=True).shape == (7, 11)
    assert model.features(x).shape == (7, 5, 24)
    assert model.unembedding.shape == (11, 24)
    torch.testing.assert_close(model(x)[:, -1], model(x, last_only=True), rtol=0, atol=0)
    tied = GPT(GPTConfig(vocab_size=11, n_positions=5, n_layers=3, width=24, n_heads=4, tied=True))
    assert tied.unembedding.data_ptr() == tied.tok_emb.weight.data_ptr()
    assert model.num_params() - tied.num_params() == 11 * 24
    with pytest.raises(ValueError, match="n_positions"):
        model(torch.zeros(1, 6, dtype=torch.long))


def test_causal_masking():
    torch.manual_seed(1)
    model = GPT(GPTConfig(vocab_size=13, n_positions=8, n_layers=2, width=32, n_heads=4)).eval()
    x = torch.randint(0, 13, (4, 8))
    with torch.no_grad():
        base = model(x)
        for k in range(8):
            y = x.clone()
            y[:, k] = (y[:, k] + 1) % 13
            out = model(y)
            assert torch.equal(out[:, :k], base[:, :k]), f"changing position {k} changed earlier outputs"
            assert not torch.equal(out[:, k], base[:, k])


def test_pad_keys_are_masked():
    torch.manual_seed(2)
    model = GPT(GPTConfig(vocab_size=9, n_positions=6, width=16, n_heads=2, pad_id=1)).eval()
    x = torch.tensor([[1, 1, 0, 4, 5, 6], [1, 0, 3, 4, 5, 6]])
    with torch.no_grad():
        before = model(x)
        model.tok_emb.weight[1].normal_()  # a different pad embedding must not matter to non-pad queries
        after = model(x)
    nonpad = x != 1
    assert torch.equal(before[nonpad], after[nonpad])


# -- training --------------------------------------------------------------------------------------------
def test_short_run_lowers_loss():
    design = ut.designs.factorial((3, 3))
    traj = train(design, TrainConfig(steps=60, lr=1e-2, n_snapshots=8, **TINY))
    assert traj.ok and traj.time_unit == "step" and traj.method == "gpt-adamw"
    assert traj.ts[0] == 0 and traj.ts[-1] == 60
    assert traj.gram_H.shape[1:] == (9, 9) and traj.gram_W.shape[1:] == (9, 9)
    assert traj.loss[0] == pytest.approx(np.log(1 + 6 + 9), abs=0.1)  # uniform over the vocabulary
    assert traj.loss[-1] < 0.3 * traj.loss[0]
    m = traj.metrics(design, "H")
    assert np.all(np.isfinite(m["semantic_strength"]))
    assert traj.stats["full_batch"] and traj.stats["tokens_per_step"] == 27


@pytest.mark.parametrize(
    "design, kw",
    [
        (_soft_design(), {"optimizer": "sgd", "lr": 0.5, "momentum": 0.9}),
        (ut.designs.hierarchical(2, 2), {"loss_positions": "all", "batch_size": 3}),
        (ut.designs.factorial((2, 2)), {"tied": True, "weight_decay": 0.1, "soft_targets": True}),
    ],
)
def test_variants_train(design, kw):
    traj = train(design, TrainConfig(steps=30, n_snapshots=4, **TINY, **kw))
    assert traj.ok and np.all(np.isfinite(traj.loss)) and traj.loss[-1] < traj.loss[0]


def test_checkpoint_resume_is_bit_identical(tmp_path):
    design = ut.designs.factorial((3, 3))
    # Mini-batches straddling epochs, loss on every position and dropout: batches, the optimiser state
    # and the torch RNG all have to be restored for the numbers to agree.
    cfg = TrainConfig(
        steps=40, batch_size=4, loss_positions="all", dropout=0.1, n_snapshots=12, seed=3, **TINY
    )
    ref = train(design, cfg)
    ck = dataclasses.replace(cfg, checkpoint_every=7, checkpoint_dir=str(tmp_path))
    part = train(design, ck, stop_at=17)
    assert part.ok and part.message == "stopped at step 17 (stop_at)" and part.ts[-1] <= 17
    assert latest_checkpoint(tmp_path).name == "ckpt_000000017.pt"
    assert len(list(tmp_path.glob("ckpt_*.pt"))) == 2  # keep_checkpoints=2
    resumed = train(design, ck, resume=True)
    assert resumed.ok and resumed.stats["resumed_from"].endswith("ckpt_000000017.pt")
    for name in ("ts", "gram_H", "gram_W", "loss"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(ref, name), err_msg=name)
    # A second resume from the final checkpoint returns the finished trajectory without training.
    again = train(design, ck, resume=True)
    assert again.stats["steps_run"] == 0
    np.testing.assert_array_equal(again.gram_H, ref.gram_H)
    with pytest.raises(ValueError, match="lr"):
        train(design, ck, resume=True, lr=2e-3)
    with pytest.raises(ValueError, match="different design"):
        train(ut.designs.hierarchical(2, 3), ck, resume=True)


def test_snapshots_match_recomputation_from_checkpoints(tmp_path):
    design = ut.designs.random_attributes(6, 4, 2, seed=1)
    cfg = TrainConfig(
        steps=24, n_snapshots=10, checkpoint_every=8, checkpoint_dir=tmp_path, keep_checkpoints=0, **TINY
    )
    traj = train(design, cfg)
    data = build_sequences(design)
    paths = sorted(tmp_path.glob("ckpt_*.pt"))
    assert [p.name for p in paths] == ["ckpt_000000008.pt", "ckpt_000000016.pt", "ckpt_000000024.pt"]
    for path in paths:
        ckpt = load_checkpoint(path)
        i = int(np.flatnonzero(traj.ts == ckpt["step"])[0]) if ckpt["step"] in traj.ts else None
        snap_ts = np.array([float(t) for t in ckpt["snapshots"]["ts"]])
        np.testing.assert_array_equal(snap_ts, traj.ts[: snap_ts.size])  # snapshots so far
        if i is None:
            continue
        gH, gW, loss = compute_grams(model_from_checkpoint(ckpt), data)
        np.testing.assert_array_equal(gH, traj.gram_H[i])
        np.testing.assert_array_equal(gW, traj.gram_W[i])
        assert loss == traj.loss[i]
    assert ckpt["step"] == 24  # the last checkpoint is at a snapshot step


def test_trajectory_roundtrip_and_progress(tmp_path, capsys):
    traj = train(ut.designs.factorial((2, 2)), steps=5, n_snapshots=3, progress=True, **TINY)
    assert "sem_H" in capsys.readouterr().err
    traj.save(tmp_path / "gpt")
    back = ut.Trajectory.load(tmp_path / "gpt")
    np.testing.assert_array_equal(back.gram_W, traj.gram_W)
    assert back.meta["model"]["width"] == 16 and back.time_unit == "step"


def test_snapshot_steps():
    g = snapshot_steps(3000, 60)
    assert g[0] == 0 and g[1] == 1 and g[-1] == 3000 and np.all(np.diff(g) > 0) and 50 < g.size <= 61
    assert snapshot_steps(1, 60).tolist() == [0, 1]


@pytest.mark.parametrize(
    "field, value",
    [
        ("steps", 0),
        ("steps", 2.5),
        ("batch_size", 0),
        ("lr", 0.0),
        ("lr", float("nan")),
        ("weight_decay", -1e-3),
        ("optimizer", "adam"),
        ("betas", (0.9,)),
        ("momentum", 1.0),
        ("loss_positions", "every"),
        ("seed", -1),
        ("device", "tpu"),
        ("n_snapshots", 0),
        ("checkpoint_every", -1),
        ("stop_at", 0),
        ("width", 0),
        ("dropout", 1.0),
        ("soft_targets", "yes"),
        ("context_ids", "some"),
        ("progress", 1),
    ],
)
def test_config_validation(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_config_cross_field_validation():
    with pytest.raises(ValueError, match="width must be divisible by n_heads"):
        TrainConfig(width=10, n_heads=4)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        TrainConfig(checkpoint_every=10)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        TrainConfig(resume=True)
    model = GPTConfig(vocab_size=20, n_positions=3, width=32, n_heads=4)
    with pytest.raises(ValueError, match="width"):
        TrainConfig(model=model, width=48)
    assert TrainConfig(model=model, width=32).model is model
    with pytest.raises(ValueError, match="vocab_size"):
        train(ut.designs.factorial((3, 3)), TrainConfig(model=GPTConfig(vocab_size=5, n_positions=3)))
    with pytest.raises(ValueError, match="n_heads"):
        GPTConfig(vocab_size=5, n_positions=3, width=10, n_heads=3)
    with pytest.raises(ValueError, match="pad_id"):
        GPTConfig(vocab_size=5, n_positions=3, pad_id=5)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda"):
            train(ut.designs.factorial((2, 2)), steps=1, device="cuda")


def test_nested_model_config_trains():
    design = ut.designs.factorial((2, 2))
    model = GPTConfig(vocab_size=12, n_positions=4, n_layers=1, width=8, n_heads=2)
    traj = train(design, TrainConfig(model=model, steps=3, n_snapshots=2))
    assert traj.meta["model"]["n_layers"] == 1 and traj.meta["model"]["vocab_size"] == 12


def test_import_ufmtheory_does_not_load_torch():
    code = "import sys, ufmtheory; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
