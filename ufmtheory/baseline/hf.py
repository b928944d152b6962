"""Hugging Face integration (optional extra ``pip install 'ufmtheory[hf]'``): a design as a torch dataset for
``transformers.Trainer``, and a ``TrainerCallback`` that records Gram trajectories during
``Trainer.train()`` (optionally stopping after the semantic collapse).

* :func:`design_dataset`: the design's exact-statistics sequences
  (:func:`~ufmtheory.baseline.data.build_sequences`) as a ``torch.utils.data.Dataset`` of
  ``{"input_ids", "attention_mask", "labels"}``: each row is its context's tokens followed by the label
  token, and ``labels`` is ``-100`` everywhere except at the label (causal LMs shift labels by one, so the
  last context position predicts it). No ``datasets`` library, no tokenizer: token ids are the design's own.
* :func:`hf_recorder`: a :class:`~ufmtheory.baseline.recorder.GramRecorder` for any causal LM of
  ``transformers``: by default the last hidden state (``output_hidden_states``) at each context's last
  position and the label rows of ``model.get_output_embeddings()``; or a named module / parameter.
* :class:`GramCallback` (needs ``transformers``; the other two need only torch): records at the
  recorder's steps (``state.global_step``: optimiser updates), validates the model against the design
  before the first step, writes ``gram_recorder.pt`` into each ``checkpoint-N`` folder and reads it back
  when training resumes from one, and sets ``control.should_training_stop`` when the recorder's
  :class:`~ufmtheory.baseline.monitor.PeakMonitor` detects the collapse.

Example (nothing is downloaded: the model is built from its config)::

    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments
    ds = design_dataset(ut.designs.factorial((3, 3)))
    model = GPT2LMHeadModel(GPT2Config(vocab_size=ds.vocab_size, n_positions=ds.seq_len, n_embd=32,
                                       n_layer=1, n_head=2))
    cb = GramCallback(hf_recorder(ds, steps=300, monitor=ut.PeakMonitor("W")))
    Trainer(model=model, args=TrainingArguments("out", max_steps=300, per_device_train_batch_size=9,
            report_to=[]), train_dataset=ds, callbacks=[cb]).train()
    traj = cb.trajectory()        # a Trajectory(time_unit="step"): detect_phases, compare, ...
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ufmtheory._io import atomic_write_bytes
from ufmtheory.baseline.data import IGNORE_INDEX, SequenceData, build_sequences
from ufmtheory.baseline.monitor import PeakMonitor
from ufmtheory.baseline.probes import module_features, parameter_rows
from ufmtheory.baseline.recorder import GramRecorder
from ufmtheory.designs import Design
from ufmtheory.trajectory import Trajectory

try:
    from transformers import TrainerCallback
except ImportError:  # pragma: no cover - depends on the environment
    # The dataset and the recorder need only torch; the callback refuses to be built (see GramCallback).
    TrainerCallback = object  # type: ignore[assignment,misc]
    _HAS_TRANSFORMERS = False
else:
    _HAS_TRANSFORMERS = True

__all__ = ["DesignDataset", "GramCallback", "design_dataset", "hf_recorder", "RECORDER_FILE"]

RECORDER_FILE = "gram_recorder.pt"


class DesignDataset(torch.utils.data.Dataset):
    """A design's sequences for causal-LM training (built by :func:`design_dataset`).

    Attributes:
        data: the :class:`~ufmtheory.baseline.data.SequenceData` behind it.
        input_ids: (N, T + 1) int64: context tokens then the label token.
        attention_mask: (N, T + 1) int64: 0 on left padding.
        labels: (N, T + 1) int64: ``-100`` except at the label (and, with ``loss_positions="all"``, at every
            non-pad input token after the first).
    """

    def __init__(self, data: SequenceData) -> None:
        if data.soft:
            raise ValueError(
                "design needs soft targets (pi_j * Y_vj are not multiples of 1/M for a small M): a Trainer "
                "takes one hard label per row; use a design from counts or decimal probabilities"
            )
        self.data = data
        last = data.targets[:, -1][:, None]  # (N, 1): the label token of each row
        ids = np.concatenate([data.tokens, last], axis=1)
        labels = np.full(ids.shape, IGNORE_INDEX, dtype=np.int64)
        labels[:, -1] = last[:, 0]
        if data.loss_positions == "all":  # targets[:, t] is the token after position t
            labels[:, 1:-1] = data.targets[:, :-1]
        mask = np.ones_like(ids) if data.pad_id is None else (ids != data.pad_id).astype(np.int64)
        self.input_ids = torch.from_numpy(ids.astype(np.int64))
        self.attention_mask = torch.from_numpy(mask)
        self.labels = torch.from_numpy(labels)

    @property
    def vocab_size(self) -> int:
        """Number of token ids the model's vocabulary must hold."""
        return self.data.vocab_size

    @property
    def seq_len(self) -> int:
        """Row length T + 1 (context tokens and the label): the model needs ``n_positions >= seq_len``."""
        return int(self.input_ids.shape[1])

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.input_ids[i],
            "attention_mask": self.attention_mask[i],
            "labels": self.labels[i],
        }

    def context_inputs(self) -> dict[str, torch.Tensor]:
        """``{"input_ids", "attention_mask"}``: (m, T), each context's tokens once (no label); row j is
        context j."""
        ctx = self.data.context_tokens
        mask = np.ones_like(ctx) if self.data.pad_id is None else (ctx != self.data.pad_id).astype(np.int64)
        return {"input_ids": torch.from_numpy(ctx.astype(np.int64)), "attention_mask": torch.from_numpy(mask)}

    def check_model(self, model: Any) -> None:
        """Refuse a model (or its config) whose vocabulary or context length cannot hold the design."""
        config = getattr(model, "config", model)
        vocab = getattr(config, "vocab_size", None)
        n_pos = getattr(config, "n_positions", getattr(config, "max_position_embeddings", None))
        if isinstance(vocab, int) and vocab < self.vocab_size:
            raise ValueError(
                f"model vocab_size = {vocab} does not fit the design's {self.vocab_size} tokens "
                f"(set vocab_size >= {self.vocab_size})"
            )
        if isinstance(n_pos, int) and n_pos < self.seq_len:
            raise ValueError(
                f"model n_positions = {n_pos} is shorter than the design's rows ({self.seq_len} tokens)"
            )


def design_dataset(design: Design, *, model: Any = None, **build: Any) -> DesignDataset:
    """The design's exact-statistics sequences as a :class:`DesignDataset` for ``transformers.Trainer``.

    Args:
        design: a :class:`~ufmtheory.designs.Design` whose joint probabilities are rationals with a
            denominator up to ``max_rows`` (one-hot designs, counts, decimal distributions).
        model: optional model or config to check against (vocabulary and context length).
        **build: options of :func:`~ufmtheory.baseline.data.build_sequences` (``loss_positions``,
            ``context_ids``, ``max_rows``); ``soft_targets`` is always False.

    Raises:
        ValueError: a design that needs soft targets, or one that does not fit ``model``.
    """
    if "soft_targets" in build:
        raise ValueError("soft_targets: a Trainer takes hard labels; design_dataset always uses counts")
    if not isinstance(design, Design):
        raise TypeError(f"design must be a ufmtheory Design, got {type(design).__name__}")
    data = build_sequences(design, soft_targets=None, **build)
    ds = DesignDataset(data)
    if model is not None:
        ds.check_model(model)
    return ds


def hf_recorder(
    dataset: DesignDataset,
    *,
    module: str | None = None,
    parameter: str | None = None,
    steps: Any = None,
    monitor: PeakMonitor | None = None,
) -> GramRecorder:
    """A :class:`~ufmtheory.baseline.recorder.GramRecorder` for a ``transformers`` causal LM on ``dataset``.

    Args:
        dataset: the :class:`DesignDataset` the model trains on.
        module: dotted name of the module whose output is the representation at the label position
            (``"transformer.ln_f"`` for GPT-2); default the last entry of ``output_hidden_states``.
        parameter: dotted name of the unembedding weight (``"lm_head.weight"``); default
            ``model.get_output_embeddings().weight``.
        steps, monitor: as for :class:`~ufmtheory.baseline.recorder.GramRecorder`.
    """
    if not isinstance(dataset, DesignDataset):
        raise TypeError(f"dataset must be a DesignDataset (design_dataset), got {type(dataset).__name__}")
    inputs = dataset.context_inputs()
    label_ids = dataset.data.label_ids
    if module is not None:
        features = module_features(module, inputs)
    else:

        def features(model: nn.Module) -> torch.Tensor:
            device = next(model.parameters()).device
            out = model(**{k: v.to(device) for k, v in inputs.items()}, output_hidden_states=True)
            return out.hidden_states[-1][:, -1]

    if parameter is not None:
        unembedding = parameter_rows(parameter, label_ids)
    else:

        def unembedding(model: nn.Module) -> torch.Tensor:
            get = getattr(model, "get_output_embeddings", None)
            emb = get() if callable(get) else None
            if emb is None or not isinstance(getattr(emb, "weight", None), torch.Tensor):
                raise ValueError(f"{type(model).__name__} has no output embeddings: pass parameter=")
            weight = emb.weight
            if int(label_ids.max()) >= weight.shape[0]:
                raise ValueError(
                    f"label token ids up to {int(label_ids.max())} do not fit the model's {weight.shape[0]} "
                    "output embeddings: the design's vocabulary does not fit the model's"
                )
            return weight[torch.from_numpy(np.array(label_ids, dtype=np.int64)).to(weight.device)]

    return GramRecorder(
        dataset.data.design, features=features, unembedding=unembedding, steps=steps, monitor=monitor
    )


class GramCallback(TrainerCallback):
    """``transformers.TrainerCallback`` that feeds a :class:`~ufmtheory.baseline.recorder.GramRecorder`
    during ``Trainer.train()`` (module docstring).

    Args:
        recorder: the recorder (:func:`hf_recorder`); its monitor, if any, may stop training.
        save: write the recorder's state into each ``checkpoint-N`` folder (for resuming).
    """

    def __init__(self, recorder: GramRecorder, *, save: bool = True) -> None:
        if not _HAS_TRANSFORMERS:
            raise ImportError(
                "GramCallback needs the Hugging Face extra: pip install 'ufmtheory[hf]' "
                "(transformers, accelerate)"
            )
        if not isinstance(recorder, GramRecorder):
            raise TypeError(f"recorder must be a GramRecorder, got {type(recorder).__name__}")
        self.recorder = recorder
        self.save = bool(save)
        self.config: dict[str, Any] = {}

    @staticmethod
    def _config(args: Any) -> dict[str, Any]:
        """The Trainer's optimiser settings in the baseline's ``meta["config"]`` vocabulary, so that
        ``ut.compare(problem, traj, design, clock="same")`` can run the theory with the same optimiser."""
        optim = str(getattr(getattr(args, "optim", ""), "value", getattr(args, "optim", "")))
        return {
            "optimizer": "adamw" if optim.startswith("adamw") else optim,
            "lr": float(args.learning_rate),
            "betas": (float(args.adam_beta1), float(args.adam_beta2)),
            "weight_decay": float(args.weight_decay),
            "momentum": 0.0,
            "seed": int(args.seed),
            "steps": int(args.max_steps),
            "lr_scheduler_type": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
            "warmup_steps": getattr(args, "warmup_steps", 0),
        }

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        step = int(state.global_step)
        rec = self.recorder
        self.config = self._config(args)
        last = rec.steps_recorded[-1] if len(rec) else None
        if step == 0 and last is not None:
            raise ValueError(
                f"the recorder already holds snapshots up to step {last}: use a new recorder for a new run"
            )
        if step > 0:
            # Resuming from checkpoint-N: the snapshots saved there are the truth (the in-memory recorder may
            # be empty, or ahead of the checkpoint when an earlier one is resumed).
            path = Path(args.output_dir) / f"checkpoint-{step}" / RECORDER_FILE
            if path.is_file():
                try:
                    state_dict = torch.load(path, map_location="cpu", weights_only=True)
                except Exception as exc:  # truncated or corrupted file
                    raise ValueError(f"{path} cannot be read ({type(exc).__name__}: {exc})") from exc
                rec.load_state_dict(state_dict)
                if rec.steps_recorded[-1] > step:
                    raise ValueError(f"{path} holds snapshots after step {step}")
            elif last is None or last > step:
                raise ValueError(
                    f"resuming at step {step} but {path} is missing: the Gram snapshots before it are lost"
                )
        if not len(rec):
            rec.check(model)  # shapes, NaN, vocabulary: an error before the first optimiser step
        rec.maybe_record(step, model)

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> Any:
        self.recorder.maybe_record(int(state.global_step), model)
        if self.recorder.should_stop:
            control.should_training_stop = True
        return control

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self.save or not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"checkpoint-{int(state.global_step)}"
        if folder.is_dir():
            buf = io.BytesIO()
            torch.save(self.recorder.state_dict(), buf)
            atomic_write_bytes(folder / RECORDER_FILE, buf.getvalue())

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        step = int(state.global_step)
        if len(self.recorder) and self.recorder.steps_recorded[-1] < step:
            self.recorder.record(step, model)  # the final model is always in the trajectory

    def trajectory(self, **kwargs: Any) -> Trajectory:
        """The recorded :class:`~ufmtheory.trajectory.Trajectory` (``GramRecorder.trajectory`` options);
        ``meta["config"]`` holds the Trainer's optimiser settings (optimizer, lr, betas, weight_decay, seed,
        lr_scheduler_type): the model's clock for ``ut.compare(..., clock="same")``, exact only with a
        constant schedule and no warm-up."""
        kwargs.setdefault("method", "hf-trainer")
        kwargs["meta"] = {
            "source": "ufmtheory.baseline.hf.GramCallback",
            "config": self.config,
            **kwargs.get("meta", {}),
        }
        return self.recorder.trajectory(**kwargs)
