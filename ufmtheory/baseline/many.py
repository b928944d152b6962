"""Several seeds of the baseline GPT in one process: :func:`train_many` trains them as one batched model.

``train_many(design, config, seeds) -> list[Trajectory]`` gives, for each seed ``s``, what
``train(design, dataclasses.replace(config, seed=s))`` gives, up to float32 rounding, in one training loop:

* **Initialisation**: each seed's :class:`~ufmtheory.baseline.model.GPT` is built exactly as :func:`train`
  builds it (``torch.manual_seed(s)`` then ``GPT(cfg)``), then its parameters are stacked along a new
  leading axis of length K = ``len(seeds)``.
* **Grouped weights**: a copy of the GPT whose ``Linear``, ``LayerNorm`` and ``Embedding`` layers are
  replaced by grouped versions holding the stacked (K, ...) parameters. The K seeds' batches are
  concatenated along the batch axis (seed-major rows); each grouped layer applies seed k's weights to seed
  k's rows (one ``baddbmm`` per linear layer), and attention, residuals, GELU and the pad mask are the GPT's
  own code, which never mixes rows. So no seed sees another's data or weights.
* **Loss and gradient**: each seed's batch loss is :func:`train`'s own weighted cross-entropy terms
  (``_ce_terms``, computed on all K·B rows at once) summed over that seed's rows; the K losses are
  summed, so seed k's gradient is the gradient of its own loss.
* **Optimiser**: :func:`train`'s own optimiser (same class, hyperparameters and weight-decay groups: decay on
  weight matrices and embeddings only) over the stacked tensors. AdamW and SGD are elementwise (moments,
  bias correction from the shared step count, decoupled or L2 weight decay), so one optimiser over stacked
  tensors is K independent optimisers (torch's fused kernel where it has one: the same update in one pass
  per tensor). :func:`train` does not clip gradients, so neither does this.
* **Data order**: full-batch runs (``n_rows <= batch_size``: every factorial design with exact counts) use
  the whole dataset each step for every seed; mini-batch runs take seed ``s``'s batch at each step from
  :meth:`~ufmtheory.baseline.data.SequenceData.batch` with that seed, as :func:`train` does.
* **Snapshots**: at each snapshot step, one eval-mode forward of the grouped model on the design's
  contexts gives every seed's features, label unembedding rows and full-vocabulary logits; each seed's
  :class:`~ufmtheory.baseline.recorder.GramRecorder` forms its Grams and the same label loss as
  :func:`train`'s recorder (:func:`~ufmtheory.baseline.train.gpt_recorder`) from its slice.

Agreement with separate runs (``tests/test_train_many.py``, ``benchmarks/bench_train_many.py``): batched
matrix products and the split LayerNorm affine round differently from the single-model kernels in the last
float32 bits, and training amplifies that slowly. Measured on CPU over 300 steps (AdamW lr 1e-3, Gram
difference relative to the Gram scale max |G| of each snapshot): demo model (width 64, 2 layers) on 4×4
and 3×3, seeds 0-7 / 0-2: H ≤ 6e-6, W ≤ 1.1e-6, loss ≤ 8e-7 relative (with the last-position forward
below; 3e-6 / 1e-7 / 6e-7 before it); width 32 on 3×3: H ≤ 9e-5. The tests assert 1e-3 of the Gram
scale and 1e-4 relative on the loss. Under full-batch GD at lr 1.0 (at the edge of stability) such
differences can decide whether a seed blows up: 3×3 seed 1 goes non-finite near step 20-30 batched, not
separately; 2×2×3 seed 1 and hier(3, 2) seeds 1, 2 blow up at the same steps either way.

Work skipped (``loss_positions="label"``): the last block's attention projection, second LayerNorm and
MLP run on the last position only (:func:`~ufmtheory.baseline._grouped._last_position_logits`): the
only position the loss reads.

Not supported (``ValueError`` naming the field): ``dropout > 0`` (separate runs draw their dropout masks
from each seed's torch generator; one batched forward cannot reproduce them), checkpoints and ``resume``
(a checkpoint holds one run), ``stop_after_collapse`` (seeds collapse at different steps). ``peak_metric``
works (each seed's monitor summary is in its ``stats["peak"]``; no ``peak.pt`` is written). When a
mini-batch contains a pad token for any seed, every seed's rows use the GPT's explicit attention mask, which
equals plain causal attention on rows without pads up to rounding.

Example:
    >>> import ufmtheory as ut
    >>> cfg = TrainConfig(steps=20, width=16, n_heads=2, n_snapshots=5)
    >>> trajs = train_many(ut.designs.factorial((2, 2)), cfg, [0, 1, 2])
    >>> len(trajs), trajs[1].gram_W.shape, trajs[1].meta["config"]["seed"], trajs[1].time_unit
    (3, (6, 4, 4), 1, 'step')
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ufmtheory.baseline._grouped import _grouped_model, _last_position_logits, _Rows, _stacked_optimizer
from ufmtheory.baseline.config import TrainConfig
from ufmtheory.baseline.data import SequenceData
from ufmtheory.baseline.model import GPT, GPTConfig, resolve_device
from ufmtheory.baseline.monitor import PeakMonitor
from ufmtheory.baseline.recorder import GramRecorder, snapshot_steps
from ufmtheory.baseline.train import _ce_terms, _design_sequences, _label_loss, _training_context
from ufmtheory.designs import Design
from ufmtheory.trajectory import Trajectory

__all__ = ["train_many"]

_MAX_SEED = 2**63 - 1
_MAX_SEEDS = 4096  # a typo (range(10**6)) would build a million models before failing


# -- input checks ---------------------------------------------------------------------------------------
def _check_seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (Sequence, np.ndarray, range)):
        raise TypeError(
            f"seeds must be a sequence of integers (list, tuple, range), got {type(seeds).__name__}"
        )
    out: list[int] = []
    for i, s in enumerate(list(seeds)):
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"seeds must hold integers, got {s!r} ({type(s).__name__}) at position {i}")
        if not 0 <= int(s) <= _MAX_SEED:
            raise ValueError(f"seeds must be integers in [0, 2^63 - 1], got {s!r} at position {i}")
        out.append(int(s))
    if not out:
        raise ValueError("seeds must hold at least one seed, got an empty sequence")
    if len(out) > _MAX_SEEDS:
        raise ValueError(f"seeds must hold at most {_MAX_SEEDS} seeds, got {len(out)}")
    dup = sorted({s for s in out if out.count(s) > 1})
    if dup:
        raise ValueError(f"seeds must be distinct (a repeated seed is the same run), repeated: {dup}")
    return out


def _check_supported(config: TrainConfig, gpt_cfg: GPTConfig) -> None:
    if gpt_cfg.dropout > 0:
        raise ValueError(
            f"dropout must be 0 for train_many, got {gpt_cfg.dropout}: separate runs draw dropout masks "
            "from each seed's generator, which one batched forward cannot reproduce (use train() per seed)"
        )
    if config.checkpoint_every > 0 or config.resume or config.checkpoint_dir is not None:
        raise ValueError(
            "checkpoint_every, checkpoint_dir and resume are not supported by train_many (a checkpoint "
            "holds one run; use train() per seed)"
        )
    if config.stop_after_collapse:
        raise ValueError(
            "stop_after_collapse is not supported by train_many (seeds collapse at different steps; "
            "use train() per seed, or peak_metric alone to have each seed's peak reported)"
        )


# -- training -------------------------------------------------------------------------------------------
def train_many(
    design: Design, config: TrainConfig | None, seeds: Sequence[int], **overrides: Any
) -> list[Trajectory]:
    """Train the GPT on ``design`` once per seed, all seeds in one batched model (module docstring).

    Args:
        design: any :class:`~ufmtheory.designs.Design`.
        config: a :class:`TrainConfig` (``None``: ``TrainConfig()``); its ``seed`` is ignored (each run
            gets its seed from ``seeds``).
        seeds: K distinct integer seeds in [0, 2⁶³).
        **overrides: fields replacing those of ``config`` (``train_many(d, None, [0, 1], steps=100)``);
            not ``seed``.

    Returns:
        K :class:`~ufmtheory.trajectory.Trajectory` objects, in the order of ``seeds``: the trajectory
        :func:`~ufmtheory.baseline.train.train` gives for that seed (``time_unit="step"``, ``ts`` the
        snapshot steps, ``gram_H`` (T, m, m), ``gram_W`` (T, V, V), ``loss`` (T,)), up to float32 rounding.
        ``status`` is per seed: ``"ok"``, or ``"nonfinite"`` (that seed's trajectory ends at the step where
        its loss or Grams stopped being finite; the other seeds train on). ``stats`` as :func:`train`'s,
        with ``wall_time_s`` and ``train_time_s`` those of the whole batched run, ``tokens_per_s`` this
        seed's tokens per second of it, plus ``n_seeds`` and ``seeds``.

    Raises:
        TypeError: ``seeds`` not a sequence of integers; ``design`` or ``config`` of the wrong type.
        ValueError: ``seeds`` empty, repeated or out of range; a bad configuration, or one that
            train_many does not support (dropout, checkpoints, resume, stop_after_collapse).
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig or None, got {type(config).__name__}")
    if "seed" in overrides:
        raise ValueError(f"seed={overrides['seed']!r}: train_many takes its seeds from `seeds` only")
    if overrides:
        config = dataclasses.replace(config, **overrides)
    seed_list = _check_seeds(seeds)
    data = _design_sequences(design, config)
    configs = [dataclasses.replace(config, seed=s) for s in seed_list]
    gpt_cfg = config.gpt_config(data)
    _check_supported(config, gpt_cfg)
    device = resolve_device(config.device)
    with _training_context(config, device):
        return _run_many(design, data, configs, gpt_cfg, device)


class _BatchedSnapshot:
    """Every seed's snapshot from one eval-mode forward of the grouped model on the design's contexts.

    :meth:`compute` runs the K seeds' features (last position after the final LayerNorm, float32, no
    autocast), their full-vocabulary logits and label unembedding rows at once; :meth:`recorder` gives seed
    i a :class:`GramRecorder` that reads its slice: the quantities of
    :func:`~ufmtheory.baseline.train.gpt_recorder` (the same loss function), from the grouped layers'
    batched products instead of the seed's own GPT (equal up to float32 rounding), without copying the
    stacked parameters back into K models at every snapshot. The recorders get a parameterless stand-in
    module (``view``): the Grams do not depend on it, and no monitor keeps a state dict here.
    """

    def __init__(self, grouped: GPT, rows: _Rows, data: SequenceData, K: int) -> None:
        self.grouped, self.rows, self.data, self.K = grouped, rows, data, K
        device = next(grouped.parameters()).device
        ctx = torch.tensor(data.context_tokens).to(device)  # (m, T)
        self.tokens = ctx.repeat(K, 1)  # (K·m, T), seed-major
        self.label_ids = torch.tensor(data.label_ids)
        self.Y = torch.tensor(data.design.Y).T  # (m, V)
        self.pi = torch.tensor(data.design.pi)
        self.view = nn.Module()
        self.H: torch.Tensor | None = None
        self.W: torch.Tensor | None = None
        self.logits: torch.Tensor | None = None

    def compute(self) -> None:
        grouped, K, m = self.grouped, self.K, self.data.design.m
        head = grouped.head
        was_training, rows_before = grouped.training, self.rows.value
        grouped.eval()
        self.rows.value = m
        cuda = self.tokens.device.type == "cuda"
        try:
            with torch.no_grad(), torch.autocast("cuda", enabled=False) if cuda else contextlib.nullcontext():
                H = grouped.features(self.tokens)[:, -1].float()  # (K·m, width)
                self.logits = head(H).reshape(K, m, -1)  # (K, m, vocab)
                self.H = H.reshape(K, m, -1)
                weight = head.weight  # (K, width, vocab) stored transposed, or (K, vocab, width) when tied
                lab = self.label_ids.to(weight.device)
                self.W = weight[:, :, lab].transpose(1, 2) if head.transposed else weight[:, lab]  # (K, V, w)
        finally:
            self.rows.value = rows_before
            grouped.train(was_training)

    def recorder(self, i: int, grid: Any, config: TrainConfig) -> GramRecorder:
        monitor = None
        if config.peak_metric is not None:
            monitor = PeakMonitor(
                config.peak_metric, patience=config.peak_patience, drop=config.peak_drop, keep_state=False
            )

        def features(_model: nn.Module) -> torch.Tensor:
            assert self.H is not None
            return self.H[i]

        def unembedding(_model: nn.Module) -> torch.Tensor:
            assert self.W is not None
            return self.W[i]

        def loss(_model: nn.Module, _H: torch.Tensor, _W: torch.Tensor) -> float:
            assert self.logits is not None
            return _label_loss(self.logits[i], self.label_ids, self.Y, self.pi)

        return GramRecorder(
            self.data.design,
            features=features,
            unembedding=unembedding,
            loss=loss,
            steps=grid,
            monitor=monitor,
        )


def _run_many(
    design: Design, data: SequenceData, configs: list[TrainConfig], gpt_cfg: GPTConfig, device: torch.device
) -> list[Trajectory]:
    t_start = time.perf_counter()
    config = configs[0]
    K = len(configs)
    models = []
    for cfg in configs:  # exactly train()'s initialisation, one seed after the other
        torch.manual_seed(cfg.seed)
        models.append(GPT(gpt_cfg).to(device))
    rows = _Rows()
    grouped, stacked_of, _ = _grouped_model(models, rows)
    grouped.train()
    opt = _stacked_optimizer(models[0], config, stacked_of)
    grid = snapshot_steps(config.steps, config.n_snapshots)
    grid_set = {int(g) for g in grid}
    batched = _BatchedSnapshot(grouped, rows, data, K)
    recorders = [batched.recorder(i, grid, config) for i in range(K)]

    tokens = torch.tensor(data.tokens).to(device)
    targets = torch.tensor(np.asarray(data.targets), dtype=torch.float32 if data.soft else torch.int64).to(
        device
    )
    autocast = device.type == "cuda"
    last_only = config.loss_positions == "label"
    full_batch = data.n_rows <= config.batch_size
    if full_batch:  # the same batch for every seed and step: index once
        idx0, w0 = data.batch(0, config.batch_size, config.seed)
        tb0 = tokens[idx0].repeat(K, *([1] * (tokens.ndim - 1)))  # (K·B, T), seed-major
        fb = (tb0, targets[idx0], torch.from_numpy(w0).float().to(device))
        rows.value = len(idx0)
    else:
        rows.value = config.batch_size

    def seed_losses(logits: torch.Tensor, yb: torch.Tensor, wb: torch.Tensor) -> torch.Tensor:
        # train()'s own loss terms on all K·B rows at once (targets and weights repeated for a full batch
        # shared by every seed), then each seed's weighted mean over its own rows: (K,).
        if full_batch:
            yb = yb.repeat(K, *([1] * (yb.ndim - 1)))
            wb = wb.repeat(K)
        else:
            yb, wb = yb.reshape(K * yb.shape[1], *yb.shape[2:]), wb.reshape(-1)
        terms, w = _ce_terms(logits, yb, wb, data.soft, last_only)
        return terms.reshape(K, -1).sum(dim=1) / w.reshape(K, -1).sum(dim=1)

    status = ["ok"] * K
    message = [""] * K
    final_step = [0] * K
    alive = [True] * K
    last_batch_loss = [float("nan")] * K
    timers = {"train": 0.0}
    bar = None
    if config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, desc=f"GPT ×{K} {design.summary()['kind']}", unit="step")

    def snapshot(step: int) -> None:
        batched.compute()  # one forward of the grouped model for every seed's snapshot
        for i in range(K):
            if not alive[i]:
                continue
            recorders[i].record(step, batched.view)
            final_step[i] = step
            if not recorders[i].finite:
                alive[i] = False
                status[i] = "nonfinite"
                message[i] = f"non-finite loss or Grams at step {step}"
        if bar is not None:
            live = [
                r.last_metrics.get("loss", float("nan")) for r, a in zip(recorders, alive, strict=True) if a
            ]
            bar.set_postfix(
                {"mean loss": f"{float(np.mean(live)):.4g}" if live else "-", "alive": sum(alive)}
            )

    snapshot(0)  # also validates shapes before training (errors, not statuses, as in train())
    step = 0
    while any(alive) and step < config.steps:
        t0 = time.perf_counter()
        if full_batch:
            tb, yb, wb = fb
        else:
            per_seed = [data.batch(step, config.batch_size, c.seed) for c in configs]
            idx, w = np.stack([b[0] for b in per_seed]), np.stack([b[1] for b in per_seed])
            it = torch.from_numpy(idx).to(device)
            tb = tokens[it].reshape(K * config.batch_size, *tokens.shape[1:])
            yb, wb = targets[it], torch.from_numpy(w).float().to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16) if autocast else contextlib.nullcontext():
            logits = _last_position_logits(grouped, tb) if last_only else grouped(tb)
        losses = seed_losses(logits.float(), yb, wb)  # (K,)
        opt.zero_grad(set_to_none=True)
        # Seed k's gradient is d(sum)/dθ_k = dL_k/dθ_k: the seeds share no parameter.
        losses.sum().backward()
        opt.step()
        step += 1
        timers["train"] += time.perf_counter() - t0
        due = step in grid_set
        if due or step == config.stop_at:
            batch_losses = losses.detach().cpu().tolist()
            for i in range(K):
                if alive[i]:
                    last_batch_loss[i] = batch_losses[i]
            if due:
                snapshot(step)
        if bar is not None:
            bar.update(1)
        if config.stop_at is not None and step >= config.stop_at and step < config.steps:
            for i in range(K):
                if alive[i]:
                    message[i] = f"stopped at step {step} (stop_at)"
            break
    for i in range(K):
        if alive[i]:
            final_step[i] = step
    if bar is not None:
        bar.close()

    wall = time.perf_counter() - t_start
    tokens_per_step = (data.n_rows if full_batch else config.batch_size) * data.seq_len
    out = []
    for i, cfg in enumerate(configs):
        steps_run = final_step[i]
        stats: dict[str, Any] = {
            "wall_time_s": wall,
            "total_wall_time_s": wall,
            "train_time_s": timers["train"],
            "snapshot_time_s": recorders[i].snapshot_time_s,
            "checkpoint_time_s": 0.0,
            "steps_run": steps_run,
            "start_step": 0,
            "final_step": final_step[i],
            "tokens_per_step": tokens_per_step,
            "tokens_per_s": tokens_per_step * step / timers["train"] if timers["train"] > 0 else float("nan"),
            "final_batch_loss": last_batch_loss[i],
            "n_params": models[i].num_params(),
            "n_rows": data.n_rows,
            "full_batch": full_batch,
            "device": str(device),
            "autocast": "bf16" if autocast else None,
            "resumed_from": None,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "n_seeds": K,
            "seeds": [c.seed for c in configs],
        }
        monitor = recorders[i].monitor
        if monitor is not None:
            stats["peak"] = monitor.summary()
        meta = {
            "source": "ufmtheory.baseline.train_many",
            "config": dataclasses.asdict(cfg),
            "model": dataclasses.asdict(gpt_cfg),
            "data": data.summary(),
        }
        out.append(
            recorders[i].trajectory(
                status=status[i], message=message[i], stats=stats, meta=meta, method=f"gpt-{cfg.optimizer}"
            )
        )
    return out
