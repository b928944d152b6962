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
switched on during training). ``stop_at`` ends a run early, as an interruption would (status says so).

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
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ufmtheory.baseline.checkpoint import (
    CHECKPOINT_FORMAT,
    _design_fingerprint,
    _identity,
    _rng_state,
    _set_rng_state,
    _write_checkpoint,
    latest_checkpoint,
    load_checkpoint,
    model_from_checkpoint,
)
from ufmtheory.baseline.data import SequenceData, build_sequences
from ufmtheory.baseline.model import GPT, GPTConfig, resolve_device
from ufmtheory.designs import Design
from ufmtheory.trajectory import Trajectory

__all__ = [
    "TrainConfig",
    "train",
    "snapshot_steps",
    "compute_grams",
    "latest_checkpoint",
    "load_checkpoint",
    "model_from_checkpoint",
]

_MODEL_FIELDS = ("n_layers", "width", "n_heads", "tied", "dropout")


@dataclass(frozen=True)
class TrainConfig:
    """Training configuration (validated: a bad field raises ``ValueError`` naming it).

    Attributes:
        steps: optimiser steps (>= 1).
        batch_size: rows per step (>= 1); datasets with at most this many rows train full-batch.
        lr: learning rate (> 0).
        weight_decay: decoupled (AdamW) or L2 (SGD) weight decay (>= 0), applied to weight matrices and
            embeddings only, not to biases and LayerNorm parameters.
        optimizer: ``"adamw"`` or ``"sgd"``.
        betas: AdamW betas, each in [0, 1).
        momentum: SGD momentum in [0, 1).
        n_layers, width, n_heads, tied, dropout: model shape (see :class:`GPTConfig`).
        model: optional :class:`GPTConfig` (its vocab_size / n_positions must cover the data; its pad_id is
            set from the data); the flat model fields must then stay at their defaults or agree with it.
        loss_positions: ``"label"`` (loss on the label position: the one-hot regime) or ``"all"``.
        soft_targets: data mode (``None``: exact counts when possible, else soft targets); see
            :func:`~ufmtheory.baseline.data.build_sequences`.
        context_ids: ``"auto"``, ``"all"`` or ``"none"`` (id tokens; see the data module).
        max_rows: largest hard-mode dataset.
        seed: non-negative integer seed (model init, batches, dropout).
        device: ``"cpu"`` (default; deterministic), ``"cuda"`` or ``"auto"`` (CUDA when present). On CUDA
            the training forward runs under bf16 autocast; snapshots stay float32.
        deterministic: switch on ``torch.use_deterministic_algorithms`` during CPU training.
        num_threads: torch intra-op threads during training (restored afterwards); ``None`` keeps the
            current setting. Default 1: these models are tiny, and on a small shared machine a second
            thread costs far more in synchronisation than it gains (4×4 demo: 5 ms/step with 1 thread,
            130 ms/step with 2 when another process holds a core). Results may differ in the last bits
            between thread counts; a resumed run must use the same count to be bit-identical.
        n_snapshots: number of log-spaced snapshot steps after step 0 (>= 1; duplicates after rounding to
            integers are dropped).
        checkpoint_every: write a checkpoint every this many steps (0: never).
        checkpoint_dir: folder for checkpoints (required when ``checkpoint_every > 0`` or ``resume``).
        keep_checkpoints: keep only the newest this many checkpoints (0: keep all).
        resume: continue from the newest checkpoint in ``checkpoint_dir`` (fresh start if there is none).
        stop_at: stop after this step (as an interruption would; a checkpoint is written when enabled).
        progress: show a tqdm bar with the loss and semantic strength of H and W.
    """

    steps: int = 3000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adamw"
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.0
    n_layers: int = 2
    width: int = 64
    n_heads: int = 4
    tied: bool = False
    dropout: float = 0.0
    model: GPTConfig | None = None
    loss_positions: str = "label"
    soft_targets: bool | None = None
    context_ids: str = "auto"
    max_rows: int = 100_000
    seed: int = 0
    device: str = "cpu"
    deterministic: bool = True
    num_threads: int | None = 1
    n_snapshots: int = 60
    checkpoint_every: int = 0
    checkpoint_dir: str | None = None
    keep_checkpoints: int = 2
    resume: bool = False
    stop_at: int | None = None
    progress: bool = False

    def __post_init__(self) -> None:
        for name, lo in (("steps", 1), ("batch_size", 1), ("max_rows", 1), ("seed", 0), ("n_snapshots", 1)):
            _int_field(name, getattr(self, name), lo)
        if self.num_threads is not None:
            _int_field("num_threads", self.num_threads, 1)
        for name in ("checkpoint_every", "keep_checkpoints"):
            _int_field(name, getattr(self, name), 0)
        _num_field("lr", self.lr, lo=0.0, lo_open=True)
        _num_field("weight_decay", self.weight_decay, lo=0.0)
        _num_field("momentum", self.momentum, lo=0.0, hi=1.0)
        _num_field("dropout", self.dropout, lo=0.0, hi=1.0)
        betas = tuple(self.betas) if isinstance(self.betas, (tuple, list)) else ()
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair of numbers in [0, 1), got {self.betas!r}")
        for b in betas:
            _num_field("betas", b, lo=0.0, hi=1.0)
        object.__setattr__(self, "betas", (float(betas[0]), float(betas[1])))
        choices = {
            "optimizer": ("adamw", "sgd"),
            "loss_positions": ("label", "all"),
            "context_ids": ("auto", "all", "none"),
            "device": ("cpu", "cuda", "auto"),
            "soft_targets": (None, True, False),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("deterministic", "resume", "progress", "tied"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        for name, lo in (("n_layers", 1), ("width", 1), ("n_heads", 1)):
            _int_field(name, getattr(self, name), lo)
        if self.model is None:
            if self.width % self.n_heads:
                raise ValueError(
                    f"width must be divisible by n_heads, got width={self.width}, n_heads={self.n_heads}"
                )
        else:
            if not isinstance(self.model, GPTConfig):
                raise ValueError(f"model must be a GPTConfig or None, got {type(self.model).__name__}")
            defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
            for name in _MODEL_FIELDS:
                mine, theirs = getattr(self, name), getattr(self.model, name)
                if mine != defaults[name] and mine != theirs:
                    raise ValueError(f"{name}={mine!r} conflicts with model.{name}={theirs!r}")
        if self.stop_at is not None:
            _int_field("stop_at", self.stop_at, 1)
        if self.checkpoint_dir is not None and not isinstance(self.checkpoint_dir, (str, Path)):
            raise ValueError(f"checkpoint_dir must be a path or None, got {self.checkpoint_dir!r}")
        if self.checkpoint_dir is not None:
            object.__setattr__(self, "checkpoint_dir", str(self.checkpoint_dir))
        if (self.checkpoint_every > 0 or self.resume) and self.checkpoint_dir is None:
            raise ValueError("checkpoint_dir must be set when checkpoint_every > 0 or resume=True")

    def gpt_config(self, data: SequenceData) -> GPTConfig:
        """The model configuration for ``data`` (vocabulary, length and pad id come from the data)."""
        if self.model is None:
            return GPTConfig(
                vocab_size=data.vocab_size,
                n_positions=data.seq_len,
                n_layers=self.n_layers,
                width=self.width,
                n_heads=self.n_heads,
                tied=self.tied,
                dropout=self.dropout,
                pad_id=data.pad_id,
            )
        if self.model.vocab_size < data.vocab_size:
            raise ValueError(f"model.vocab_size must be >= the data's {data.vocab_size}")
        if self.model.n_positions < data.seq_len:
            raise ValueError(f"model.n_positions must be >= the data's sequence length {data.seq_len}")
        return dataclasses.replace(self.model, pad_id=data.pad_id)


def _int_field(name: str, value: Any, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")


def _num_field(name: str, value: Any, lo: float, hi: float | None = None, lo_open: bool = False) -> None:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > lo if lo_open else value >= lo) and (hi is None or value < hi)
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo}, {hi if hi is not None else 'inf'})"
        raise ValueError(f"{name} must be a finite number in {rng}, got {value!r}")


# -- snapshots ------------------------------------------------------------------------------------------
def snapshot_steps(steps: int, n: int = 60) -> np.ndarray:
    """``0`` and ``n`` log-spaced integer steps from 1 to ``steps`` (duplicates removed).

    Example:
        >>> snapshot_steps(1000, 4).tolist()
        [0, 1, 10, 100, 1000]
    """
    grid = np.unique(np.rint(np.logspace(0.0, np.log10(steps), int(n))).astype(np.int64))
    grid[-1] = steps
    return np.concatenate([[0], grid])


@torch.no_grad()
def compute_grams(model: GPT, data: SequenceData) -> tuple[np.ndarray, np.ndarray, float]:
    """``(gram_H (m, m), gram_W (V, V), loss)`` of ``model`` on ``data`` (module docstring).

    Runs every distinct context once, in eval mode and float32 (autocast off); Grams are formed in float64.
    The model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        tokens = torch.tensor(data.context_tokens).to(device)
        with contextlib.ExitStack() as stack:
            if device.type == "cuda":
                stack.enter_context(torch.autocast("cuda", enabled=False))
            feats = model.features(tokens)[:, -1].float()  # (m, width)
            logits = model.head(feats)  # (m, vocab)
        H = feats.double().cpu()
        W = model.unembedding[torch.tensor(data.label_ids).to(device)].double().cpu()
        logp = torch.log_softmax(logits.double().cpu(), dim=-1)[:, torch.tensor(data.label_ids)]
        Y = torch.tensor(data.design.Y).T  # (m, V)
        pi = torch.tensor(data.design.pi)
        # 0 · log p = 0 even where p underflows: drop zero-probability labels explicitly.
        ce = -torch.where(Y > 0, Y * logp, torch.zeros_like(logp)).sum(dim=1)
        loss = float((pi * ce).sum())
        return (H @ H.T).numpy(), (W @ W.T).numpy(), loss
    finally:
        model.train(was_training)


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
    logits = logits.float()
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
    return (ce * w).sum() / w.sum()


def _semantic(gram_H: np.ndarray, gram_W: np.ndarray, design: Design) -> dict[str, float]:
    from ufmtheory import metrics

    out: dict[str, float] = {}
    if design.p == 0:
        return out
    try:
        out["sem_H"] = metrics.semantic_strength(gram_H, design.X)
        used = design.used_labels
        out["sem_W"] = metrics.semantic_strength(gram_W[np.ix_(used, used)], design.label_X[:, used])
    except ValueError:
        pass
    return out


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
        ``"ok"``, or says why the run ended early (``stop_at``, non-finite loss).

    Raises:
        ValueError: on a bad configuration, or when resuming from a checkpoint of a different run.
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if overrides:
        config = dataclasses.replace(config, **overrides)
    if not isinstance(design, Design):
        raise TypeError(f"design must be a ufmtheory Design, got {type(design).__name__}")
    data = build_sequences(
        design,
        loss_positions=config.loss_positions,
        soft_targets=config.soft_targets,
        context_ids=config.context_ids,
        max_rows=config.max_rows,
    )
    device = resolve_device(config.device)
    gpt_cfg = config.gpt_config(data)
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with (
        torch.random.fork_rng(devices=fork_devices),
        _deterministic(config.deterministic and device.type == "cpu"),
        _threads(config.num_threads),
    ):
        return _run(design, data, config, gpt_cfg, device)


def _run(
    design: Design, data: SequenceData, config: TrainConfig, gpt_cfg: GPTConfig, device: torch.device
) -> Trajectory:
    t_start = time.perf_counter()
    torch.manual_seed(config.seed)
    model = GPT(gpt_cfg).to(device)
    opt = _optimizer(model, config)
    grid = snapshot_steps(config.steps, config.n_snapshots)
    grid_set = set(grid.tolist())
    snaps: dict[str, list[Any]] = {"ts": [], "gram_H": [], "gram_W": [], "loss": []}
    fingerprint = _design_fingerprint(design)
    ckpt_dir = Path(config.checkpoint_dir) if config.checkpoint_dir is not None else None
    start, prior_wall = 0, 0.0
    resumed_from = None
    if config.resume and ckpt_dir is not None and (path := latest_checkpoint(ckpt_dir)) is not None:
        ckpt = load_checkpoint(path)
        if ckpt["design"] != fingerprint:
            raise ValueError(f"resume: checkpoint {path} was written for a different design")
        mine, theirs = _identity(config), ckpt["identity"]
        diff = sorted(k for k in mine if mine[k] != theirs.get(k))
        if diff:
            raise ValueError(f"resume: config differs from checkpoint {path.name} in {', '.join(diff)}")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        _set_rng_state(ckpt["rng"], device)
        start, prior_wall = int(ckpt["step"]), float(ckpt["wall_time_s"])
        snaps = {k: [v.numpy() if torch.is_tensor(v) else v for v in ckpt["snapshots"][k]] for k in snaps}
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

    timers = {"train": 0.0, "snapshot": 0.0, "checkpoint": 0.0}
    bar = None
    if config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, initial=start, desc=f"GPT {design.kind}", unit="step")

    def snapshot(step: int) -> bool:
        t0 = time.perf_counter()
        gH, gW, loss = compute_grams(model, data)
        snaps["ts"].append(float(step))
        snaps["gram_H"].append(gH)
        snaps["gram_W"].append(gW)
        snaps["loss"].append(loss)
        if bar is not None:
            bar.set_postfix(
                {"loss": f"{loss:.4g}", **{k: f"{v:.3f}" for k, v in _semantic(gH, gW, design).items()}}
            )
        timers["snapshot"] += time.perf_counter() - t0
        return math.isfinite(loss) and bool(np.all(np.isfinite(gH))) and bool(np.all(np.isfinite(gW)))

    def checkpoint(step: int) -> None:
        assert ckpt_dir is not None
        t0 = time.perf_counter()
        payload = {
            "format": CHECKPOINT_FORMAT,
            "step": step,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "rng": _rng_state(device),
            "snapshots": {k: [torch.from_numpy(np.asarray(v)) for v in vs] for k, vs in snaps.items()},
            "gpt_config": dataclasses.asdict(gpt_cfg),
            "identity": _identity(config),
            "design": fingerprint,
            "wall_time_s": prior_wall + time.perf_counter() - t_start,
        }
        _write_checkpoint(ckpt_dir, payload, config.keep_checkpoints)
        timers["checkpoint"] += time.perf_counter() - t0

    status = "ok"
    last_batch_loss = float("nan")
    if start == 0 and not snapshot(0):
        status = "non-finite Grams or loss at step 0"
    step = start
    model.train()
    while status == "ok" and step < config.steps:
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
        if step in grid_set or step == config.stop_at:
            last_batch_loss = float(loss.detach())
            if step in grid_set and not snapshot(step):
                status = f"non-finite loss or Grams at step {step}"
        if (
            ckpt_dir is not None
            and config.checkpoint_every > 0
            and (step % config.checkpoint_every == 0 or step == config.steps or step == config.stop_at)
        ):
            checkpoint(step)
        if bar is not None:
            bar.update(1)
        if status == "ok" and config.stop_at is not None and step >= config.stop_at and step < config.steps:
            status = f"stopped at step {step} (stop_at)"
    if bar is not None:
        bar.close()

    wall = time.perf_counter() - t_start
    steps_run = step - start
    tokens_per_step = (data.n_rows if full_batch else config.batch_size) * data.seq_len
    stats = {
        "wall_time_s": wall,
        "total_wall_time_s": prior_wall + wall,
        "train_time_s": timers["train"],
        "snapshot_time_s": timers["snapshot"],
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
    meta = {
        "source": "ufmtheory.baseline.train",
        "design": design.summary(),
        "config": dataclasses.asdict(config),
        "model": dataclasses.asdict(gpt_cfg),
        "data": data.summary(),
    }
    return Trajectory(
        ts=np.asarray(snaps["ts"], dtype=np.float64),
        gram_H=np.stack(snaps["gram_H"]),
        gram_W=np.stack(snaps["gram_W"]),
        loss=np.asarray(snaps["loss"], dtype=np.float64),
        status=status,
        stats=stats,
        time_unit="step",
        method=f"gpt-{config.optimizer}",
        meta=meta,
    )
