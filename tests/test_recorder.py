"""Bring your own model: GramRecorder (any torch model), PeakMonitor, the baseline's use of both, the
Hugging Face callback and dataset, and the baseline's reliability fixes (config ranges, resume past a
truncated checkpoint).

Expected Grams are computed here by hand from the model's own tensors (a plain forward pass, ``H Hᵀ`` in
numpy), never taken from the recorder under test.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn

import ufmtheory as ut
from ufmtheory.baseline import (
    GPT,
    GPTConfig,
    GramRecorder,
    PeakMonitor,
    TrainConfig,
    build_sequences,
    latest_checkpoint,
    load_checkpoint,
    model_from_checkpoint,
    module_features,
    parameter_rows,
    train,
)

TINY = {"width": 16, "n_heads": 2, "n_layers": 2}


class _MLP(nn.Module):
    """A hand-written model: one-hot attribute code → hidden layer → unembedding over the labels."""

    def __init__(self, p: int, d: int, V: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(p, d), nn.Tanh(), nn.Linear(d, d))
        self.out = nn.Linear(d, V, bias=False)
        self.drop = nn.Dropout(0.5)  # must be off during snapshots (eval mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(self.body(x)))


def _mlp_setup(seed: int = 0):
    design = ut.designs.factorial((3, 3))
    torch.manual_seed(seed)
    model = _MLP(design.p, 12, design.V)
    x = torch.tensor(design.X.T, dtype=torch.float32)  # (m, p): context j's attributes
    return design, model, x


# -- GramRecorder on a plain torch model --------------------------------------------------------------------
def test_recorder_grams_equal_manual_computation():
    design, model, x = _mlp_setup()
    rec = GramRecorder(
        design,
        features=module_features("body", x),
        unembedding=parameter_rows("out.weight"),
        steps=[0, 3, 10],
    )
    rec.check(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    y = torch.tensor(design.Y.argmax(axis=0))
    expected = {}
    model.train()
    for step in range(12):
        if rec.maybe_record(step, model):
            assert model.training  # mode restored
            with torch.no_grad():
                model.eval()
                H = model.body(x).double().numpy()
                W = model.out.weight.double().numpy()
                model.train()
            logits = H @ W.T
            logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
            expected[step] = (H @ H.T, W @ W.T, -float((design.pi * (design.Y.T * logp).sum(axis=1)).sum()))
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not rec.maybe_record(10, model)  # already recorded
    traj = rec.trajectory()
    assert traj.ts.tolist() == [0.0, 3.0, 10.0] and traj.time_unit == "step" and traj.ok
    for i, step in enumerate((0, 3, 10)):
        gH, gW, loss = expected[step]
        np.testing.assert_allclose(traj.gram_H[i], gH, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(traj.gram_W[i], gW, rtol=1e-12, atol=1e-12)
        assert traj.loss[i] == pytest.approx(loss, rel=1e-10)
    assert traj.loss[-1] < traj.loss[0]
    # The theory side takes it like any trajectory.
    assert np.all(np.isfinite(traj.metrics(design, "W")["semantic_strength"]))


def test_recorder_default_schedule_is_log_spaced_and_open_ended():
    design, model, x = _mlp_setup()
    rec = GramRecorder(design, features=module_features("body", x), unembedding=parameter_rows("out.weight"))
    for step in range(0, 2001):
        rec.maybe_record(step, model)
    steps = rec.steps_recorded
    assert steps[:4] == [0, 1, 2, 3] and steps[-1] <= 2000 and 55 <= len(steps) <= 70
    ratios = np.diff(np.log10(steps[12:]))  # ~20 per decade once rounding stops merging steps
    assert np.all(ratios > 0.03) and np.all(ratios < 0.07)


def test_recorder_state_dict_resumes(tmp_path):
    design, model, x = _mlp_setup()
    kw = {"features": module_features("body", x), "unembedding": parameter_rows("out.weight")}
    rec = GramRecorder(design, steps=[0, 2, 5], monitor=PeakMonitor("W"), **kw)
    rec.maybe_record(0, model)
    rec.maybe_record(2, model)
    path = tmp_path / "rec.pt"
    torch.save(rec.state_dict(), path)
    back = GramRecorder(design, steps=[0, 2, 5], monitor=PeakMonitor("W"), **kw)
    back.load_state_dict(torch.load(path, weights_only=True))
    assert back.steps_recorded == [0, 2] and not back.is_due(2) and back.is_due(5)
    back.maybe_record(5, model)
    rec.maybe_record(5, model)
    np.testing.assert_array_equal(back.trajectory().gram_H, rec.trajectory().gram_H)
    assert back.monitor.best_step == rec.monitor.best_step
    with pytest.raises(ValueError, match="not after"):
        back.record(4, model)


def test_recorder_bad_input_is_refused_before_training():
    design, model, x = _mlp_setup()
    good_W = parameter_rows("out.weight")
    with pytest.raises(ValueError, match=r"features\(model\) must return shape \(9, d\)"):
        GramRecorder(design, features=lambda m: torch.zeros(8, 12), unembedding=good_W).check(model)
    with pytest.raises(ValueError, match="NaN"):
        GramRecorder(design, features=lambda m: torch.full((9, 12), math.nan), unembedding=good_W).check(
            model
        )
    with pytest.raises(ValueError, match="module 'bodyy' does not exist"):
        GramRecorder(design, features=module_features("bodyy", x), unembedding=good_W).check(model)
    with pytest.raises(ValueError, match="parameter 'out.wieght' does not exist"):
        GramRecorder(
            design, features=module_features("body", x), unembedding=parameter_rows("out.wieght")
        ).check(model)
    with pytest.raises(ValueError, match="disagree on d"):
        GramRecorder(design, features=lambda m: torch.zeros(9, 5), unembedding=good_W).check(model)
    # A design vocabulary larger than the model's: label rows past the unembedding, token ids past the
    # embedding.
    data = build_sequences(ut.designs.factorial((3, 3)))
    small = GPT(GPTConfig(vocab_size=10, n_positions=data.seq_len, width=8, n_heads=2))
    with pytest.raises(ValueError, match="vocabulary"):
        GramRecorder.from_names(data, module="ln_f", parameter="head.weight").check(small)
    with pytest.raises(ValueError, match="steps"):
        GramRecorder(design, features=good_W, unembedding=good_W, steps=[3, 1])
    with pytest.raises(ValueError, match="monitor"):
        GramRecorder(
            ut.designs.from_counts([[1, 0], [0, 1]]),
            features=good_W,
            unembedding=good_W,
            monitor=PeakMonitor(),
        )


def test_recorder_later_nan_is_a_status_not_an_error():
    design, model, x = _mlp_setup()
    rec = GramRecorder(design, features=module_features("body", x), unembedding=parameter_rows("out.weight"))
    rec.record(0, model)
    with torch.no_grad():
        model.out.weight[0, 0] = math.nan
    rec.record(1, model)
    traj = rec.trajectory()
    assert (
        not rec.finite and traj.status == "nonfinite" and traj.message == "non-finite loss or Grams at step 1"
    )


# -- PeakMonitor --------------------------------------------------------------------------------------------
def test_peak_monitor_keeps_the_state_at_the_peak(tmp_path):
    model = nn.Linear(2, 2)
    mon = PeakMonitor("H", patience=2, drop=0.5, stop_after_collapse=True, path=tmp_path / "peak.pt")
    curve = [0.1, 0.3, 0.6, 0.55, 0.5, 0.45, 0.3]
    stops = []
    for step, s in enumerate(curve):
        with torch.no_grad():
            model.weight.fill_(float(step))
        mon.update(step, s, model)
        stops.append(mon.should_stop)
    assert mon.best_step == 2 and mon.best_value == 0.6
    # peaked after 2 non-improving values; collapse once s <= 0.6 - 0.5 * (0.6 - 0.1) = 0.35
    assert stops == [False, False, False, False, False, False, True]
    assert torch.all(mon.best_state_dict["weight"] == 2.0)
    saved = torch.load(tmp_path / "peak.pt", weights_only=True)
    assert saved["step"] == 2 and torch.all(saved["model"]["weight"] == 2.0)
    mon.update(7, math.nan)  # ignored
    assert mon.last_value == 0.3
    for bad in ({"which": "X"}, {"patience": 0}, {"drop": 0.0}, {"drop": math.inf}, {"min_delta": -1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            PeakMonitor(**bad)


# -- baseline: config ranges, truncated checkpoints, peak monitor in TrainConfig -----------------------------
@pytest.mark.parametrize(
    "field, value",
    [
        ("num_threads", 100_000),
        ("num_threads", (os.cpu_count() or 1) + 1),
        ("num_threads", 0),
        ("num_threads", 1.0),
        ("steps", 10**13),
        ("n_snapshots", 10**9),
        ("max_rows", 10**12),
        ("width", 10**7),
        ("seed", 2**64),
        ("lr", math.inf),
        ("momentum", math.nan),
        ("peak_metric", "Z"),
        ("peak_patience", 0),
        ("peak_drop", 1.5),
        ("stop_after_collapse", 1),
    ],
)
def test_train_config_refuses_out_of_range_numbers(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


@pytest.mark.parametrize(
    "field, value",
    [("width", 10**7), ("vocab_size", 10**9), ("n_positions", 10**7), ("n_layers", 5000), ("dropout", True)],
)
def test_gpt_config_refuses_out_of_range_numbers(field, value):
    with pytest.raises(ValueError, match=field):
        GPTConfig(**{"vocab_size": 10, "n_positions": 4, field: value})


def test_stop_after_collapse_needs_a_metric():
    with pytest.raises(ValueError, match="peak_metric"):
        TrainConfig(stop_after_collapse=True)


def test_resume_skips_a_truncated_newest_checkpoint(tmp_path):
    design = ut.designs.factorial((2, 2))
    cfg = TrainConfig(
        steps=12, n_snapshots=6, checkpoint_every=4, checkpoint_dir=str(tmp_path), keep_checkpoints=0, **TINY
    )
    ref = train(design, dataclasses.replace(cfg, checkpoint_every=0, checkpoint_dir=None))
    train(design, cfg, stop_at=8)
    newest = latest_checkpoint(tmp_path)
    assert newest.name == "ckpt_000000008.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # a crash mid-write
    with pytest.raises(ValueError, match="ckpt_000000008.pt"):
        load_checkpoint(newest)
    with pytest.warns(RuntimeWarning, match="ckpt_000000008.pt"):
        resumed = train(design, cfg, resume=True)
    assert resumed.ok and resumed.stats["resumed_from"].endswith("ckpt_000000004.pt")
    for name in ("ts", "gram_H", "gram_W", "loss"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(ref, name), err_msg=name)


def test_train_with_peak_monitor_keeps_peak_and_stops(tmp_path):
    design = ut.designs.factorial((3, 3))
    cfg = TrainConfig(
        steps=200,
        lr=1e-2,
        n_layers=1,
        width=16,
        n_heads=2,
        n_snapshots=30,
        peak_metric="W",
        peak_patience=3,
        peak_drop=0.2,
        stop_after_collapse=True,
        checkpoint_dir=str(tmp_path),
    )
    traj = train(design, cfg)
    sem = traj.metrics(design, "W")["semantic_strength"]
    peak = traj.stats["peak"]
    i = int(np.nanargmax(sem))
    # The W transient on a 3x3 design: semantic strength rises, peaks, then falls and the run stops.
    assert 0 < i < len(traj) - 3 and sem[i] > sem[0] + 0.2
    assert sem[-1] <= sem[i] - 0.2 * (sem[i] - sem[0])
    assert traj.status == "ok"  # a requested stop: the message says why
    assert (
        traj.message
        == f"stopped at step {int(traj.ts[-1])} (collapse after the semantic peak at step "
        + (f"{int(traj.ts[i])})")
    )
    assert peak["peak_step"] == traj.ts[i] and peak["peak_value"] == pytest.approx(sem[i], rel=1e-12)
    assert peak["peaked"] and peak["collapsed"] and traj.ts[-1] < 200
    # The kept model is the one at the peak: its Grams equal the snapshot at the peak step.
    peak_model = model_from_checkpoint(peak["path"])
    gH, gW, _ = ut.baseline.compute_grams(peak_model, build_sequences(design))
    np.testing.assert_array_equal(gW, traj.gram_W[i])
    np.testing.assert_array_equal(gH, traj.gram_H[i])


# -- Hugging Face ------------------------------------------------------------------------------------------
@pytest.fixture
def hf(monkeypatch):
    """transformers (skipped when the [hf] extra is missing), offline, one torch thread (tiny models)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "error")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield transformers
    torch.set_num_threads(threads)


def _gpt2(hf, ds, width=16, seed=0):
    torch.manual_seed(seed)
    cfg = hf.GPT2Config(
        vocab_size=ds.vocab_size,
        n_positions=ds.seq_len,
        n_embd=width,
        n_layer=1,
        n_head=2,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
        tie_word_embeddings=False,  # the UFM's W is its own matrix
    )
    return hf.GPT2LMHeadModel(cfg)


def _trainer(hf, model, ds, out, steps, callbacks, lr=3e-3, **kw):
    args = hf.TrainingArguments(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=len(ds),  # full batch: 9 rows of a 3x3 design
        learning_rate=lr,
        lr_scheduler_type="constant",
        report_to=[],
        use_cpu=True,
        logging_strategy="no",
        disable_tqdm=True,
        seed=0,
        **{"save_strategy": "no", **kw},
    )
    return hf.Trainer(model=model, args=args, train_dataset=ds, callbacks=callbacks)


def _manual_callback(hf, ds, steps, out):
    """An independent recorder: last_hidden_state of the GPT-2 body and the lm_head rows, by hand."""
    ctx = ds.context_inputs()
    label_ids = torch.from_numpy(np.array(ds.data.label_ids))

    class Manual(hf.TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kw):
            if state.global_step in steps:
                was = model.training
                model.eval()
                with torch.no_grad():
                    H = model.transformer(**ctx).last_hidden_state[:, -1].double().numpy()
                    W = model.lm_head.weight[label_ids].double().numpy()
                model.train(was)
                out[state.global_step] = (H @ H.T, W @ W.T)

    return Manual()


def test_hf_dataset_layout():
    pytest.importorskip("transformers")
    from ufmtheory.baseline.hf import design_dataset

    design = ut.designs.factorial((3, 3))
    ds = design_dataset(design)
    data = build_sequences(design)
    assert len(ds) == 9 and ds.seq_len == data.seq_len + 1
    item = ds[4]
    np.testing.assert_array_equal(item["input_ids"][:-1].numpy(), data.tokens[4])
    assert int(item["input_ids"][-1]) == int(data.targets[4, -1]) == int(item["labels"][-1])
    assert np.all(item["labels"][:-1].numpy() == -100) and np.all(item["attention_mask"].numpy() == 1)
    # Label frequencies per context reproduce Y (counted from the rows).
    counts = Counter((int(r[0]), int(r[-1])) for r in ds.input_ids.numpy()[:, [1, -1]])
    assert sum(counts.values()) == 9 and len(counts) == 9
    allpos = design_dataset(design, loss_positions="all")[0]
    np.testing.assert_array_equal(allpos["labels"][1:].numpy(), allpos["input_ids"][1:].numpy())
    padded = design_dataset(ut.designs.random_attributes(10, 4, 2, seed=0, distinct=False))  # left padding
    pad = padded.data.pad_id
    assert pad is not None and np.any(padded.input_ids.numpy() == pad)
    np.testing.assert_array_equal(
        padded.attention_mask.numpy(), (padded.input_ids.numpy() != pad).astype(int)
    )
    assert np.all(padded.labels.numpy()[:, :-1] == -100)
    with pytest.raises(ValueError, match="soft targets"):
        design_dataset(ut.designs.from_distributions(np.random.default_rng(3).dirichlet(np.ones(3), size=2)))


def test_hf_callback_records_grams_equal_to_manual(hf, tmp_path):
    from ufmtheory.baseline.hf import GramCallback, design_dataset, hf_recorder

    design = ut.designs.factorial((3, 3))
    ds = design_dataset(design)
    steps = [0, 1, 3, 6]
    manual: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    cb = GramCallback(hf_recorder(ds, steps=steps))
    model = _gpt2(hf, ds)
    with torch.no_grad():  # step 0: before any update, by hand too
        H0 = model.transformer(**ds.context_inputs()).last_hidden_state[:, -1].double().numpy()
    _trainer(hf, model, ds, tmp_path, 6, [cb, _manual_callback(hf, ds, steps, manual)]).train()
    traj = cb.trajectory()
    assert traj.ts.tolist() == [0.0, 1.0, 3.0, 6.0] and traj.ok and traj.method == "hf-trainer"
    assert traj.meta["config"]["optimizer"] == "adamw" and traj.meta["config"]["lr"] == 3e-3
    np.testing.assert_allclose(traj.gram_H[0], H0 @ H0.T, rtol=1e-12, atol=1e-12)
    for i, step in enumerate(steps[1:], start=1):
        np.testing.assert_allclose(traj.gram_H[i], manual[step][0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(traj.gram_W[i], manual[step][1], rtol=1e-12, atol=1e-12)
    assert traj.loss[-1] < traj.loss[0]
    with pytest.raises(ValueError, match="new recorder"):  # a fresh run must not append to an old one
        _trainer(hf, _gpt2(hf, ds), ds, tmp_path / "again", 2, [cb]).train()


@pytest.mark.slow
def test_hf_callback_resumes_from_a_trainer_checkpoint(hf, tmp_path):
    from ufmtheory.baseline.hf import RECORDER_FILE, GramCallback, design_dataset, hf_recorder

    ds = design_dataset(ut.designs.factorial((3, 3)))
    steps = [0, 1, 3, 6, 10]
    cb = GramCallback(hf_recorder(ds, steps=steps))
    _trainer(hf, _gpt2(hf, ds), ds, tmp_path, 10, [cb], save_strategy="steps", save_steps=6).train()
    traj = cb.trajectory()
    # Resume from checkpoint-6: the snapshots up to step 6 come back from the checkpoint folder.
    assert (tmp_path / "checkpoint-6" / RECORDER_FILE).is_file()
    cb2 = GramCallback(hf_recorder(ds, steps=steps))
    _trainer(hf, _gpt2(hf, ds, seed=1), ds, tmp_path, 10, [cb2]).train(
        resume_from_checkpoint=str(tmp_path / "checkpoint-6")
    )
    again = cb2.trajectory()
    assert again.ts.tolist() == traj.ts.tolist()
    np.testing.assert_array_equal(again.gram_W[:4], traj.gram_W[:4])
    np.testing.assert_allclose(again.gram_W[4], traj.gram_W[4], rtol=1e-5, atol=1e-6)
    (tmp_path / "checkpoint-6" / RECORDER_FILE).write_bytes(b"truncated")
    with pytest.raises(ValueError, match=RECORDER_FILE):
        _trainer(hf, _gpt2(hf, ds), ds, tmp_path, 10, [GramCallback(hf_recorder(ds, steps=steps))]).train(
            resume_from_checkpoint=str(tmp_path / "checkpoint-6")
        )


def test_hf_bad_input_before_training(hf, tmp_path):
    from ufmtheory.baseline.hf import GramCallback, design_dataset, hf_recorder

    design = ut.designs.factorial((3, 3))
    ds = design_dataset(design)
    small = hf.GPT2Config(vocab_size=ds.vocab_size - 3, n_positions=ds.seq_len, n_embd=8, n_layer=1, n_head=2)
    with pytest.raises(ValueError, match="vocab_size"):
        design_dataset(design, model=small)
    short = hf.GPT2Config(vocab_size=ds.vocab_size, n_positions=ds.seq_len - 1, n_embd=8, n_layer=1, n_head=2)
    with pytest.raises(ValueError, match="n_positions"):
        design_dataset(design, model=short)
    model = hf.GPT2LMHeadModel(small)
    cb = GramCallback(hf_recorder(ds, steps=[0, 1]))
    with pytest.raises(ValueError, match="vocabulary"):
        _trainer(hf, model, ds, tmp_path, 2, [cb]).train()
    with pytest.raises(ValueError, match="module 'transformer.lnf' does not exist"):
        cb = GramCallback(hf_recorder(ds, module="transformer.lnf", steps=[0, 1]))
        _trainer(hf, _gpt2(hf, ds), ds, tmp_path, 2, [cb]).train()


@pytest.mark.slow
def test_hf_w_transient_and_stop_at_the_peak(hf, tmp_path):
    from ufmtheory.baseline.hf import GramCallback, design_dataset, hf_recorder

    design = ut.designs.factorial((3, 3))
    ds = design_dataset(design)
    monitor = PeakMonitor("W", patience=3, drop=0.5, stop_after_collapse=True)
    cb = GramCallback(hf_recorder(ds, steps=300, monitor=monitor))
    model = _gpt2(hf, ds)
    _trainer(hf, model, ds, tmp_path, 300, [cb]).train()
    traj = cb.trajectory()
    sem = traj.metrics(design, "W")["semantic_strength"]
    i = int(np.nanargmax(sem))
    # The W transient: semantic strength rises from ~0, peaks, and has lost half its rise when training stops.
    assert sem[i] > sem[0] + 0.2 and 0 < i < len(sem) - 3
    assert sem[-1] <= sem[i] - 0.5 * (sem[i] - sem[0]) and traj.ts[-1] < 300
    assert monitor.best_step == traj.ts[i]
    # The kept state dict is the model at the peak: its W Gram equals the snapshot there.
    model.load_state_dict(monitor.best_state_dict)
    W = model.lm_head.weight[torch.from_numpy(np.array(ds.data.label_ids))].detach().double().numpy()
    np.testing.assert_allclose(W @ W.T, traj.gram_W[i], rtol=1e-12, atol=1e-12)


def test_probes_name_the_missing_module_or_parameter():
    _, model, x = _mlp_setup()
    with pytest.raises(ValueError, match=r"module 'bod' does not exist in _MLP; modules: 'body', 'body\.0'"):
        module_features("bod", x)(model)
    with pytest.raises(
        ValueError, match=r"parameter 'out\.bias' does not exist in _MLP; parameters: .*'out\.weight'"
    ):
        parameter_rows("out.bias")(model)
