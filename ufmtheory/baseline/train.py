"""Train the small GPT on a design's exact-statistics sequences and record Gram snapshots as a Trajectory.

:func:`train` is the entry point: ``train(design, TrainConfig(...)) -> Trajectory`` with
``time_unit="step"``, so the transformer's curves go through the same metrics, phase detection and plots
as the theory's.

Snapshots, on ``0`` and ~``n_snapshots`` log-spaced integer steps up to ``steps`` (:func:`snapshot_steps`),
are taken in eval mode and float32 (no autocast) by :func:`compute_grams`:

* ``H``: (width, m), the final-norm output at the last position of each distinct context's sequence, so
  ``gram_H = HᵀH`` is (m, m);
* ``W``: (V, width), the unembedding rows of the label tokens, ``gram_W = W Wᵀ`` (V, V);
* ``loss``: the full-data loss on the label position, ``Σ_j π_j CE(Y[:, j], softmax(logits_j))`` over
  the whole vocabulary: the exact-statistics dataset's label loss (also with ``loss_positions="all"``).

Training data per step: :meth:`SequenceData.batch`: the whole dataset when it has at most ``batch_size``
rows (full-batch: exact gradients of the exact-statistics loss, e.g. the 16 rows of a 4×4 factorial
design), otherwise seeded epoch permutations. The batch loss is the weighted mean CE over the positions
that carry a target.

Checkpoints (``checkpoint_every`` > 0, ``checkpoint_dir``): ``ckpt_{step:09d}.pt`` holding the model,
optimiser, torch/numpy/python RNG states, the step and the snapshots so far, written atomically (temporary
file + rename), also at the last step. ``resume=True`` continues from the newest one; on CPU the result is
bit-identical to an uninterrupted run (batches are a pure function of the step; deterministic algorithms are
switched on during training). ``stop_at`` ends a run early, as an interruption would (the message says so).

Example:
    >>> import ufmtheory as ut
    >>> cfg = TrainConfig(steps=20, width=16, n_heads=2, n_snapshots=5)
    >>> traj = train(ut.designs.factorial((2, 2)), cfg)
    >>> traj.ts.tolist(), traj.gram_H.shape, traj.gram_W.shape, traj.time_unit
    ([0.0, 1.0, 2.0, 4.0, 9.0, 20.0], (6, 4, 4), (6, 4, 4), 'step')
    >>> bool(traj.loss[-1] < traj.loss[0])
    True
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ufmtheory._io import atomic_write_bytes
from ufmtheory.baseline.checkpoint import (
    CHECKPOINT_FORMAT,
    _design_fingerprint,
    _identity,
    _identity_diff,
    _rng_state,
    _set_rng_state,
    _write_checkpoint,
    latest_intact_checkpoint,
)
from ufmtheory.baseline.config import TrainConfig
from ufmtheory.baseline.data import SequenceData, build_sequences
from ufmtheory.baseline.model import GPT, GPTConfig, resolve_device
from ufmtheory.baseline.monitor import PeakMonitor
from ufmtheory.baseline.recorder import GramRecorder, snapshot_steps
from ufmtheory.designs import Design
from ufmtheory.trajectory import Trajectory

__all__ = ["train", "compute_grams", "gpt_recorder"]


# -- snapshots ------------------------------------------------------------------------------------------
def gpt_recorder(
    model: GPT, data: SequenceData, *, steps: Any = None, monitor: PeakMonitor | None = None
) -> GramRecorder:
    """The :class:`~ufmtheory.baseline.recorder.GramRecorder` of the package's GPT on ``data``: features
    at the last position after the final LayerNorm, the label rows of the unembedding, and the full-data
    label loss over the whole vocabulary (module docstring)."""
    device = next(model.parameters()).device
    tokens = torch.tensor(data.context_tokens).to(device)
    label_ids = torch.tensor(data.label_ids)
    label_ids_dev = label_ids.to(device)
    Y = torch.tensor(data.design.Y).T  # (m, V)
    pi = torch.tensor(data.design.pi)

    def features(m: nn.Module) -> torch.Tensor:
        assert isinstance(m, GPT)
        return m.features(tokens)[:, -1].float()  # (m, width)

    def unembedding(m: nn.Module) -> torch.Tensor:
        assert isinstance(m, GPT)
        return m.unembedding[label_ids_dev]

    def loss(m: nn.Module, H: torch.Tensor, W: torch.Tensor) -> float:
        assert isinstance(m, GPT)
        return _label_loss(m.head(H), label_ids, Y, pi)  # (m, vocab) logits over the whole vocabulary

    return GramRecorder(
        data.design, features=features, unembedding=unembedding, loss=loss, steps=steps, monitor=monitor
    )


def _label_loss(logits: torch.Tensor, label_ids: torch.Tensor, Y: torch.Tensor, pi: torch.Tensor) -> float:
    """The full-data label loss ``Σ_j π_j CE(Y[:, j], softmax(logits_j))`` from (m, vocab) logits (float64;
    the softmax runs over the whole vocabulary, the cross-entropy over the label tokens ``label_ids``)."""
    logp = torch.log_softmax(logits.double().cpu(), dim=-1)[:, label_ids]
    # 0 · log p = 0 even where p underflows: drop zero-probability labels explicitly.
    ce = -torch.where(Y > 0, Y * logp, torch.zeros_like(logp)).sum(dim=1)
    return float((pi * ce).sum())


def compute_grams(model: GPT, data: SequenceData) -> tuple[np.ndarray, np.ndarray, float]:
    """``(gram_H (m, m), gram_W (V, V), loss)`` of ``model`` on ``data`` (module docstring).

    Runs every distinct context once, in eval mode and float32 (autocast off); Grams are formed in float64.
    The model's train/eval mode is restored afterwards. The same computation as :func:`train`'s snapshots
    (one :class:`~ufmtheory.baseline.recorder.GramRecorder`).
    """
    return gpt_recorder(model, data, steps=[0])._snapshot(model, first=False)


# -- training -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _deterministic(enabled: bool) -> Iterator[None]:
    prev, prev_warn = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    if enabled:
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev, warn_only=prev_warn)


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    prev = torch.get_num_threads()
    if n is not None and n != prev:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != prev:
            torch.set_num_threads(prev)


@contextlib.contextmanager
def _training_context(config: TrainConfig, device: torch.device) -> Iterator[None]:
    """What :func:`train` and :func:`~ufmtheory.baseline.many.train_many` run inside: the caller's torch RNG
    state restored afterwards (also CUDA's on ``device``), deterministic algorithms on CPU when
    ``config.deterministic``, ``config.num_threads`` intra-op threads (the previous count restored)."""
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with (
        torch.random.fork_rng(devices=fork_devices),
        _deterministic(config.deterministic and device.type == "cpu"),
        _threads(config.num_threads),
    ):
        yield


def _optimizer(model: GPT, config: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)


def _batch_loss(
    model: GPT,
    tokens: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    soft: bool,
    last_only: bool,
    autocast: bool,
) -> torch.Tensor:
    """Weighted mean cross-entropy over the positions that carry a target."""
    with torch.autocast("cuda", dtype=torch.bfloat16) if autocast else contextlib.nullcontext():
        logits = model(tokens, last_only=last_only)
    terms, w = _ce_terms(logits.float(), targets, weights, soft, last_only)
    return terms.sum() / w.sum()


def _ce_terms(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, soft: bool, last_only: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted cross-entropy terms and their weights, per row (B,) or per row and position (B, T): the batch
    loss is ``terms.sum() / w.sum()`` (``train_many`` takes these sums per seed)."""
    if last_only:
        targets = targets[:, -1]
    if soft:
        ce = -(targets * torch.log_softmax(logits, dim=-1)).sum(dim=-1)
        mask = (targets.sum(dim=-1) > 0).to(ce.dtype)
    elif last_only:
        ce = F.cross_entropy(logits, targets, reduction="none")
        mask = torch.ones_like(ce)
    else:
        ce = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-100, reduction="none")
        mask = (targets != -100).to(ce.dtype)
    w = weights[:, None] * mask if ce.ndim == 2 else weights * mask
    return ce * w, w


def _design_sequences(design: Design, config: TrainConfig) -> SequenceData:
    """The token data ``config`` trains on (``design`` checked first): shared by :func:`train` and
    :func:`~ufmtheory.baseline.many.train_many`."""
    if not isinstance(design, Design):
        raise TypeError(f"design must be a ufmtheory Design, got {type(design).__name__}")
    return build_sequences(
        design,
        loss_positions=config.loss_positions,
        soft_targets=config.soft_targets,
        context_ids=config.context_ids,
        max_rows=config.max_rows,
    )


def train(design: Design, config: TrainConfig | None = None, /, **overrides: Any) -> Trajectory:
    """Train the GPT on ``design`` and return its Gram trajectory (``time_unit="step"``).

    Args:
        design: any :class:`~ufmtheory.designs.Design` (sequences from
            :func:`~ufmtheory.baseline.data.build_sequences`).
        config: a :class:`TrainConfig` (default ``TrainConfig()``).
        **overrides: fields replacing those of ``config`` (``train(d, steps=100)``).

    Returns:
        A :class:`~ufmtheory.trajectory.Trajectory`: ``ts`` the snapshot steps, ``gram_H`` (T, m, m),
        ``gram_W`` (T, V, V), ``loss`` the full-data label loss; ``method`` the optimiser; ``stats`` wall
        times, tokens/s, parameter count; ``meta`` the design, configs and data summary. ``status`` is
        ``"ok"`` (``message`` says so when the run ended early on request: ``stop_at``, the collapse with
        ``stop_after_collapse``) or ``"nonfinite"`` (a non-finite loss or Gram; ``message`` names the step).

    Raises:
        ValueError: on a bad configuration, or when resuming from a checkpoint of a different run.
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if overrides:
        config = dataclasses.replace(config, **overrides)
    data = _design_sequences(design, config)
    device = resolve_device(config.device)
    gpt_cfg = config.gpt_config(data)
    with _training_context(config, device):
        return _run(design, data, config, gpt_cfg, device)


def _run(
    design: Design, data: SequenceData, config: TrainConfig, gpt_cfg: GPTConfig, device: torch.device
) -> Trajectory:
    t_start = time.perf_counter()
    torch.manual_seed(config.seed)
    model = GPT(gpt_cfg).to(device)
    opt = _optimizer(model, config)
    monitor = None
    if config.peak_metric is not None:
        monitor = PeakMonitor(
            config.peak_metric,
            patience=config.peak_patience,
            drop=config.peak_drop,
            stop_after_collapse=config.stop_after_collapse,
        )
    recorder = gpt_recorder(
        model, data, steps=snapshot_steps(config.steps, config.n_snapshots), monitor=monitor
    )
    fingerprint = _design_fingerprint(design)
    ckpt_dir = Path(config.checkpoint_dir) if config.checkpoint_dir is not None else None
    start, prior_wall = 0, 0.0
    resumed_from = None
    found = latest_intact_checkpoint(ckpt_dir) if config.resume and ckpt_dir is not None else None
    if found is not None:
        path, ckpt = found
        if ckpt["design"] != fingerprint:
            raise ValueError(f"resume: checkpoint {path} was written for a different design")
        diff = _identity_diff(config, ckpt["identity"])
        if diff:
            raise ValueError(f"resume: config differs from checkpoint {path.name} in {', '.join(diff)}")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        _set_rng_state(ckpt["rng"], device)
        start, prior_wall = int(ckpt["step"]), float(ckpt["wall_time_s"])
        recorder._load_snapshots(ckpt["snapshots"])
        if monitor is not None and ckpt.get("monitor") is not None:
            monitor.load_state_dict(ckpt["monitor"])
        resumed_from = str(path)

    tokens = torch.tensor(data.tokens).to(device)
    tgt_np = np.asarray(data.targets)
    targets = torch.tensor(tgt_np, dtype=torch.float32 if data.soft else torch.int64).to(device)
    autocast = device.type == "cuda"
    last_only = config.loss_positions == "label"
    full_batch = data.n_rows <= config.batch_size
    if full_batch:  # the same batch every step: index once
        idx0, w0 = data.batch(0, config.batch_size, config.seed)
        fb = (tokens[idx0], targets[idx0], torch.from_numpy(w0).float().to(device))

    timers = {"train": 0.0, "checkpoint": 0.0}
    bar = None
    if config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, initial=start, desc=f"GPT {design.summary()['kind']}", unit="step")

    def snapshot(step: int) -> bool:
        recorder.record(step, model)
        if bar is not None:
            bar.set_postfix(
                {k: f"{v:.4g}" if k == "loss" else f"{v:.3f}" for k, v in recorder.last_metrics.items()}
            )
        return recorder.finite

    def checkpoint(step: int) -> None:
        assert ckpt_dir is not None
        t0 = time.perf_counter()
        payload = {
            "format": CHECKPOINT_FORMAT,
            "step": step,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "rng": _rng_state(device),
            "snapshots": recorder.state_dict()["snapshots"],
            "monitor": None if monitor is None else monitor.state_dict(),
            "gpt_config": dataclasses.asdict(gpt_cfg),
            "identity": _identity(config),
            "design": fingerprint,
            "wall_time_s": prior_wall + time.perf_counter() - t_start,
        }
        _write_checkpoint(ckpt_dir, payload, config.keep_checkpoints)
        timers["checkpoint"] += time.perf_counter() - t0

    # A requested early end (stop_at, collapse) keeps status "ok" and says so in the message.
    status, message, done = "ok", "", False
    last_batch_loss = float("nan")
    if start == 0 and not snapshot(0):  # the first snapshot also validates shapes (errors before training)
        status, message, done = "nonfinite", "non-finite loss or Grams at step 0", True
    if start > 0 and start < config.steps and recorder.should_stop:
        message, done = f"stopped at step {start} (collapse detected before this resumption)", True
    step = start
    model.train()
    while not done and step < config.steps:
        t0 = time.perf_counter()
        if full_batch:
            tb, yb, wb = fb
        else:
            idx, w = data.batch(step, config.batch_size, config.seed)
            it = torch.from_numpy(idx).to(device)
            tb, yb, wb = tokens[it], targets[it], torch.from_numpy(w).float().to(device)
        loss = _batch_loss(model, tb, yb, wb, data.soft, last_only, autocast)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        timers["train"] += time.perf_counter() - t0
        due = recorder.is_due(step)
        if due or step == config.stop_at:
            last_batch_loss = float(loss.detach())
            if due and not snapshot(step):
                status, message, done = "nonfinite", f"non-finite loss or Grams at step {step}", True
        collapse_stop = not done and step < config.steps and recorder.should_stop
        if (
            ckpt_dir is not None
            and config.checkpoint_every > 0
            and (
                step % config.checkpoint_every == 0
                or step == config.steps
                or step == config.stop_at
                or collapse_stop
            )
        ):
            checkpoint(step)
        if bar is not None:
            bar.update(1)
        if collapse_stop:
            assert monitor is not None
            message = f"stopped at step {step} (collapse after the semantic peak at step {monitor.best_step})"
            done = True
        elif not done and config.stop_at is not None and step >= config.stop_at and step < config.steps:
            message, done = f"stopped at step {step} (stop_at)", True
    if bar is not None:
        bar.close()

    peak_path = None
    if monitor is not None and ckpt_dir is not None and monitor.best_state_dict is not None:
        peak_path = _write_peak(ckpt_dir / "peak.pt", monitor, gpt_cfg)
    wall = time.perf_counter() - t_start
    steps_run = step - start
    tokens_per_step = (data.n_rows if full_batch else config.batch_size) * data.seq_len
    stats = {
        "wall_time_s": wall,
        "total_wall_time_s": prior_wall + wall,
        "train_time_s": timers["train"],
        "snapshot_time_s": recorder.snapshot_time_s,
        "checkpoint_time_s": timers["checkpoint"],
        "steps_run": steps_run,
        "start_step": start,
        "final_step": step,
        "tokens_per_step": tokens_per_step,
        "tokens_per_s": tokens_per_step * steps_run / timers["train"]
        if timers["train"] > 0
        else float("nan"),
        "final_batch_loss": last_batch_loss,
        "n_params": model.num_params(),
        "n_rows": data.n_rows,
        "full_batch": full_batch,
        "device": str(device),
        "autocast": "bf16" if autocast else None,
        "resumed_from": resumed_from,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if monitor is not None:
        stats["peak"] = {**monitor.summary(), "path": peak_path}
    meta = {
        "source": "ufmtheory.baseline.train",
        "config": dataclasses.asdict(config),
        "model": dataclasses.asdict(gpt_cfg),
        "data": data.summary(),
    }
    return recorder.trajectory(
        status=status, message=message, stats=stats, meta=meta, method=f"gpt-{config.optimizer}"
    )


def _write_peak(path: Path, monitor: PeakMonitor, gpt_cfg: GPTConfig) -> str:
    """The model at the semantic peak, in checkpoint format (readable by ``model_from_checkpoint``)."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "step": monitor.best_step,
        "model": monitor.best_state_dict,
        "gpt_config": dataclasses.asdict(gpt_cfg),
        "peak": {k: v for k, v in monitor.summary().items() if k != "path"},
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())
    return str(path)
