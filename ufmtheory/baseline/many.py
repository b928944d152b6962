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
* **Loss and gradient**: each seed's batch loss is :func:`train`'s own ``_batch_loss`` on its rows (via
  ``torch.func.vmap``); the K losses are summed, so seed k's gradient is the gradient of its own loss.
* **Optimiser**: :func:`train`'s own optimiser (same class, hyperparameters and weight-decay groups: decay on
  weight matrices and embeddings only) over the stacked tensors. AdamW and SGD are elementwise (moments,
  bias correction from the shared step count, decoupled or L2 weight decay), so one optimiser over stacked
  tensors is K independent optimisers (torch's fused kernel where it has one: the same update in one pass
  per tensor). :func:`train` does not clip gradients, so neither does this.
* **Data order**: full-batch runs (``n_rows <= batch_size``: every factorial design with exact counts) use
  the whole dataset each step for every seed; mini-batch runs take seed ``s``'s batch at each step from
  :meth:`~ufmtheory.baseline.data.SequenceData.batch` with that seed, as :func:`train` does.
* **Snapshots**: at each snapshot step, seed k's stacked parameters are copied back into its own GPT and
  recorded by the same recorder :func:`train` uses (:func:`~ufmtheory.baseline.train.gpt_recorder`).

Agreement with separate runs (``tests/test_train_many.py``, ``benchmarks/bench_train_many.py``): batched
matrix products and the split LayerNorm affine round differently from the single-model kernels in the last
float32 bits, and training amplifies that slowly. Measured on CPU over 300 steps (AdamW lr 1e-3, Gram
difference relative to the Gram scale max |G| of each snapshot): demo model (width 64, 2 layers) on 4×4
and 3×3, seeds 0-7 / 0-2: H ≤ 3e-6, W ≤ 1e-7, loss ≤ 6e-7 relative; width 32 on 3×3: H ≤ 9e-5. The tests
assert 1e-3 of the Gram scale and 1e-4 relative on the loss.

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
import copy
import dataclasses
import inspect
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ufmtheory.baseline.config import TrainConfig
from ufmtheory.baseline.data import SequenceData, build_sequences
from ufmtheory.baseline.model import GPT, GPTConfig, resolve_device
from ufmtheory.baseline.monitor import PeakMonitor
from ufmtheory.baseline.recorder import GramRecorder, snapshot_steps
from ufmtheory.baseline.train import _batch_loss, _deterministic, _optimizer, _threads, gpt_recorder
from ufmtheory.designs import Design
from ufmtheory.trajectory import Trajectory

__all__ = ["train_many"]

_MAX_SEED = 2**63 - 1
_MAX_SEEDS = 4096  # a typo (range(10**6)) would build a million models before failing


# -- grouped layers -------------------------------------------------------------------------------------
class _Rows:
    """Rows per seed of the current forward pass (read by embeddings indexed by a shared 1-D index)."""

    def __init__(self) -> None:
        self.value = 1


@dataclasses.dataclass
class _Link:
    """A stacked (K, ...) parameter, the K models' own parameters, and whether each slice is stored
    transposed (``stacked[k] == own[k].T``)."""

    stacked: nn.Parameter
    own: list[torch.Tensor]
    transposed: bool


class _GroupedLinear(nn.Module):
    """K linear layers: input rows (K·B, ..., in), seed-major, → (K·B, ..., out).

    ``weight`` is stored (K, in, out) (each seed's weight transposed: batched products with a row-major
    right factor are ~30 % faster on CPU than with the (K, out, in) layout's transposed view), or
    (K, out, in) when ``transposed=False`` (a weight tied to an embedding table keeps that table's layout).
    """

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter | None, transposed: bool) -> None:
        super().__init__()
        self.weight = weight
        self.bias = bias
        self.transposed = transposed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        K = self.weight.shape[0]
        xg = x.reshape(K, -1, x.shape[-1])
        wt = self.weight if self.transposed else self.weight.transpose(1, 2)
        y = torch.bmm(xg, wt) if self.bias is None else torch.baddbmm(self.bias.unsqueeze(1), xg, wt)
        return y.reshape(*x.shape[:-1], y.shape[-1])


class _GroupedLayerNorm(nn.Module):
    """K LayerNorms over the last axis: the normalisation is per row, the affine map per seed."""

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter | None, eps: float) -> None:
        super().__init__()
        self.weight = weight
        self.bias = bias
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        K, C = self.weight.shape
        y = F.layer_norm(x, (C,), None, None, self.eps).reshape(K, -1, C)
        w = self.weight.unsqueeze(1)
        y = y * w if self.bias is None else torch.addcmul(self.bias.unsqueeze(1), y, w)
        return y.reshape(x.shape)


class _GroupedEmbedding(nn.Module):
    """K embedding tables (K, N, C). A (K·B, ...) index (seed-major rows) looks up its seed's table; a 1-D
    index (the GPT's positions, shared by every row) gives each seed's rows their own table's vectors."""

    def __init__(self, weight: nn.Parameter, rows: _Rows) -> None:
        super().__init__()
        self.weight = weight
        self.rows = rows

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        K, N, C = self.weight.shape
        if idx.ndim == 1:
            out = self.weight[:, idx]  # (K, T, C)
            B = self.rows.value
            return out.unsqueeze(1).expand(K, B, *out.shape[1:]).reshape(K * B, *out.shape[1:])
        offset = torch.arange(K, device=idx.device).repeat_interleave(idx.shape[0] // K) * N
        return F.embedding(idx + offset.view(-1, *([1] * (idx.ndim - 1))), self.weight.reshape(K * N, C))


def _grouped_model(models: list[GPT], rows: _Rows) -> tuple[GPT, dict[int, nn.Parameter], list[_Link]]:
    """A GPT whose parametrised layers hold the K models' stacked parameters.

    Returns ``(grouped, stacked_of, links)``: ``stacked_of`` maps ``id`` of a parameter of ``models[0]`` to
    its stacked parameter (tied weights share one); ``links`` pairs each stacked parameter with the K
    models' own parameters (for copying back at snapshots) and says whether it is stored transposed.
    """
    grouped = copy.deepcopy(models[0])
    stacked_of: dict[int, nn.Parameter] = {}
    links: list[_Link] = []
    uses: dict[int, int] = {}
    for module in models[0].modules():
        for p in module._parameters.values():
            if p is not None:
                uses[id(p)] = uses.get(id(p), 0) + 1

    def stack(module_name: str, pname: str, transpose: bool = False) -> tuple[nn.Parameter | None, bool]:
        own = [m.get_submodule(module_name)._parameters.get(pname) for m in models]
        if own[0] is None:
            return None, False
        key = id(own[0])
        if key not in stacked_of:
            transpose = transpose and uses[key] == 1  # a tied weight keeps its first user's layout
            values = [p.detach().T if transpose else p.detach() for p in own]
            stacked_of[key] = nn.Parameter(torch.stack(values).contiguous())
            links.append(_Link(stacked_of[key], own, transpose))
        link = next(lk for lk in links if lk.stacked is stacked_of[key])
        return stacked_of[key], link.transposed

    for name, module in list(models[0].named_modules()):
        if not module._parameters:
            continue
        new: nn.Module
        if type(module) is nn.Linear:
            weight, transposed = stack(name, "weight", transpose=True)
            assert weight is not None
            new = _GroupedLinear(weight, stack(name, "bias")[0], transposed)
        elif type(module) is nn.LayerNorm and module.elementwise_affine and len(module.normalized_shape) == 1:
            weight = stack(name, "weight")[0]
            assert weight is not None
            new = _GroupedLayerNorm(weight, stack(name, "bias")[0], module.eps)
        elif (
            type(module) is nn.Embedding
            and module.padding_idx is None
            and module.max_norm is None
            and not module.sparse
            and not stack(name, "weight")[1]
        ):
            weight = stack(name, "weight")[0]
            assert weight is not None
            new = _GroupedEmbedding(weight, rows)
        else:  # a layer this module does not know how to group: refuse rather than share weights
            raise NotImplementedError(
                f"train_many cannot group the parameters of layer {name!r} ({type(module).__name__}); "
                "train the seeds separately with train()"
            )
        parent, _, attr = name.rpartition(".")
        setattr(grouped.get_submodule(parent) if parent else grouped, attr, new)
    known = {id(p) for p in stacked_of.values()}
    leftover = [n for n, p in grouped.named_parameters() if id(p) not in known]
    if leftover:
        raise NotImplementedError(f"train_many cannot group the parameters {leftover}")
    return grouped, stacked_of, links


def _stacked_optimizer(
    model: GPT, config: TrainConfig, stacked_of: dict[int, nn.Parameter]
) -> torch.optim.Optimizer:
    """:func:`train`'s optimiser for ``model``, rebuilt over the stacked parameters (same class, groups and
    hyperparameters), so that any change to train()'s optimiser carries over."""
    reference = _optimizer(model, config)
    defaults = reference.defaults
    # Each group keeps only what differs from the defaults (its weight decay), so that the constructor's
    # implementation choice below is not overridden by the groups' copies of the reference's defaults.
    groups = [
        {
            **{k: v for k, v in g.items() if k != "params" and (k not in defaults or v != defaults[k])},
            "params": [stacked_of[id(p)] for p in g["params"]],
        }
        for g in reference.param_groups
    ]
    cls = type(reference)
    accepted = inspect.signature(cls.__init__).parameters
    # defaults may hold internal keys the constructor does not take (AdamW: decoupled_weight_decay).
    kwargs = {k: v for k, v in defaults.items() if k in accepted}
    if "fused" in accepted and not kwargs.get("foreach") and not kwargs.get("differentiable"):
        # The fused kernel applies the same update in one pass over each tensor (rounding may differ in
        # the last bit): with K seeds the optimiser touches K times the memory, and the per-op loop of
        # the default CPU implementation was a third of the batched step (4×4 demo, 8 seeds).
        try:
            return cls(groups, **{**kwargs, "fused": True})
        except (RuntimeError, ValueError):  # no fused kernel for this device/dtype: the default one
            pass
    return cls(groups, **kwargs)


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
    if not isinstance(design, Design):
        raise TypeError(f"design must be a ufmtheory Design, got {type(design).__name__}")
    seed_list = _check_seeds(seeds)
    configs = [dataclasses.replace(config, seed=s) for s in seed_list]
    data = build_sequences(
        design,
        loss_positions=config.loss_positions,
        soft_targets=config.soft_targets,
        context_ids=config.context_ids,
        max_rows=config.max_rows,
    )
    gpt_cfg = config.gpt_config(data)
    _check_supported(config, gpt_cfg)
    device = resolve_device(config.device)
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with (
        torch.random.fork_rng(devices=fork_devices),
        _deterministic(config.deterministic and device.type == "cpu"),
        _threads(config.num_threads),
    ):
        return _run_many(design, data, configs, gpt_cfg, device)


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
    grouped, stacked_of, links = _grouped_model(models, rows)
    grouped.train()
    opt = _stacked_optimizer(models[0], config, stacked_of)
    recorders: list[GramRecorder] = []
    grid = snapshot_steps(config.steps, config.n_snapshots)
    grid_set = {int(g) for g in grid}
    for model in models:
        monitor = None
        if config.peak_metric is not None:
            monitor = PeakMonitor(config.peak_metric, patience=config.peak_patience, drop=config.peak_drop)
        recorders.append(gpt_recorder(model, data, steps=grid, monitor=monitor))

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
        batch_dims = (0, None, None)
        rows.value = len(idx0)
    else:
        batch_dims = (0, 0, 0)
        rows.value = config.batch_size

    def seed_loss(logits: torch.Tensor, yb: torch.Tensor, wb: torch.Tensor) -> torch.Tensor:
        # train()'s own batch loss on one seed's logits (the model call already ran, batched).
        return _batch_loss(lambda _t, last_only: logits, yb, yb, wb, data.soft, last_only, False)  # type: ignore[arg-type]

    losses_fn = torch.func.vmap(seed_loss, in_dims=batch_dims)

    def sync(i: int) -> None:
        with torch.no_grad():
            for link in links:
                link.own[i].copy_(link.stacked[i].T if link.transposed else link.stacked[i])

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
        for i in range(K):
            if not alive[i]:
                continue
            sync(i)
            recorders[i].record(step, models[i])
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
            logits = grouped(tb, last_only=last_only)
        logits = logits.float().reshape(K, -1, *logits.shape[1:])
        losses = losses_fn(logits, yb, wb)  # (K,)
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
