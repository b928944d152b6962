"""Training configuration of the baseline GPT (:class:`TrainConfig`), validated field by field.

Every number is checked for type, finiteness and a sane range before any work: a bad field raises
``ValueError`` naming it and the rule (for example ``num_threads`` above this machine's CPU count, which
torch would otherwise accept and crash on).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ufmtheory.baseline.data import SequenceData
from ufmtheory.baseline.model import GPTConfig

__all__ = ["TrainConfig"]

_MODEL_FIELDS = ("n_layers", "width", "n_heads", "tied", "dropout")
# Upper bounds that keep a typo from allocating the machine away (a 10^6-wide model, 10^9 snapshot slots).
_MAX_STEPS = 10**12
_MAX_ROWS = 10**7
_MAX_SNAPSHOTS = 10**5
_MAX_WIDTH = 2**16
_MAX_LAYERS = 1024
_MAX_SEED = 2**63 - 1


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
        max_rows: largest hard-mode dataset (1 to 10⁷).
        seed: integer seed in [0, 2⁶³) (model init, batches, dropout).
        device: ``"cpu"`` (default; deterministic), ``"cuda"`` or ``"auto"`` (CUDA when present). On CUDA
            the training forward runs under bf16 autocast; snapshots stay float32.
        deterministic: switch on ``torch.use_deterministic_algorithms`` during CPU training.
        num_threads: torch intra-op threads during training (restored afterwards), from 1 to this
            machine's CPU count; ``None`` keeps the current setting. Default 1: these models are tiny, and
            on a small shared machine a second thread costs far more in synchronisation than it gains (4×4
            demo: 5 ms/step with 1 thread, 130 ms/step with 2 when another process holds a core). Results
            may differ in the last bits between thread counts; a resumed run must use the same count to be
            bit-identical.
        n_snapshots: number of log-spaced snapshot steps after step 0 (1 to 10⁵; duplicates after rounding
            to integers are dropped).
        checkpoint_every: write a checkpoint every this many steps (0: never).
        checkpoint_dir: folder for checkpoints (required when ``checkpoint_every > 0`` or ``resume``).
        keep_checkpoints: keep only the newest this many checkpoints (0: keep all).
        resume: continue from the newest intact checkpoint in ``checkpoint_dir`` (fresh start if there is
            none; a corrupted newer one is skipped with a warning).
        stop_at: stop after this step (as an interruption would; a checkpoint is written when enabled).
        progress: show a tqdm bar with the loss and semantic strength of H and W.
        peak_metric: ``None`` (no monitor), ``"W"`` or ``"H"``: watch the semantic strength of that Gram
            at each snapshot with a :class:`~ufmtheory.baseline.monitor.PeakMonitor`, keep the model at its
            peak (``peak.pt`` in ``checkpoint_dir`` when set) and report it in ``stats``.
        peak_patience: snapshots without a new maximum after which the peak counts as passed (>= 1).
        peak_drop: the collapse is detected once the strength has fallen by this fraction of its rise
            (peak minus first value), in (0, 1].
        stop_after_collapse: end training once the monitor detects the collapse (needs ``peak_metric``).
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
    peak_metric: str | None = None
    peak_patience: int = 5
    peak_drop: float = 0.5
    stop_after_collapse: bool = False

    def __post_init__(self) -> None:
        _int_field("steps", self.steps, 1, _MAX_STEPS)
        _int_field("batch_size", self.batch_size, 1, _MAX_STEPS)
        _int_field("max_rows", self.max_rows, 1, _MAX_ROWS)
        _int_field("seed", self.seed, 0, _MAX_SEED)
        _int_field("n_snapshots", self.n_snapshots, 1, _MAX_SNAPSHOTS)
        if self.num_threads is not None:
            # torch.set_num_threads(100000) segfaults; more threads than cores only slows these models.
            _int_field("num_threads", self.num_threads, 1, os.cpu_count() or 1, "this machine's CPU count")
        for name in ("checkpoint_every", "keep_checkpoints"):
            _int_field(name, getattr(self, name), 0, _MAX_STEPS)
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
            "peak_metric": (None, "W", "H"),
        }
        for name, allowed in choices.items():
            value = getattr(self, name)
            # `1 in (True,)` is True: refuse numbers and bools where strings or None are expected.
            if not any(value is a or (isinstance(value, str) and value == a) for a in allowed):
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        for name in ("deterministic", "resume", "progress", "tied", "stop_after_collapse"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        _int_field("n_layers", self.n_layers, 1, _MAX_LAYERS)
        _int_field("width", self.width, 1, _MAX_WIDTH)
        _int_field("n_heads", self.n_heads, 1, _MAX_WIDTH)
        _int_field("peak_patience", self.peak_patience, 1, _MAX_SNAPSHOTS)
        _num_field("peak_drop", self.peak_drop, lo=0.0, hi=1.0, lo_open=True, hi_closed=True)
        if self.stop_after_collapse and self.peak_metric is None:
            raise ValueError("stop_after_collapse=True needs peak_metric ('W' or 'H')")
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
            _int_field("stop_at", self.stop_at, 1, _MAX_STEPS)
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


def _int_field(name: str, value: Any, lo: int, hi: int, hi_name: str | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        upper = f"{hi_name} = {hi}" if hi_name else f"{hi}"
        raise ValueError(f"{name} must be an integer in [{lo}, {upper}], got {value!r}")


def _num_field(
    name: str,
    value: Any,
    lo: float,
    hi: float | None = None,
    lo_open: bool = False,
    hi_closed: bool = False,
) -> None:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (value > lo if lo_open else value >= lo)
    ok = ok and (hi is None or (value <= hi if hi_closed else value < hi))
    if not ok:
        upper = "inf)" if hi is None else f"{hi}{']' if hi_closed else ')'}"
        raise ValueError(
            f"{name} must be a finite number in {'(' if lo_open else '['}{lo}, {upper}, got {value!r}"
        )
