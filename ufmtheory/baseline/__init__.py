"""Transformer baseline and bring-your-own-model tools (torch only).

* :mod:`.data`: :func:`build_sequences` → :class:`SequenceData` (empirical next-token statistics = ``Y``).
* :mod:`.model`: :class:`GPTConfig`, :class:`GPT` (pre-LayerNorm, causal, learned positions).
* :mod:`.config`: :class:`TrainConfig` (validated training configuration).
* :mod:`.train`: :func:`train` (AdamW/SGD, log-spaced snapshots, atomic checkpoints, bit-identical resume on
  CPU, optional stop at the semantic peak).
* :mod:`.checkpoint`: :func:`latest_checkpoint`, :func:`latest_intact_checkpoint`, :func:`load_checkpoint`,
  :func:`model_from_checkpoint`.
* :mod:`.recorder`: :class:`GramRecorder` (Gram trajectories of any torch model), :func:`snapshot_steps`.
* :mod:`.probes`: :func:`module_features`, :func:`parameter_rows` (features / unembedding read by name).
* :mod:`.monitor`: :class:`PeakMonitor` (keep the model at the semantic peak, stop after the collapse).
* :mod:`.hf`: Hugging Face ``Trainer`` callback and design datasets (optional extra ``[hf]``; imported only
  when used: ``from ufmtheory.baseline.hf import GramCallback``).

This is the only package that imports torch; ``import ufmtheory`` does not load it.

Note: the function :func:`train` shadows the submodule of the same name as an attribute of this package;
reach the module with ``importlib.import_module("ufmtheory.baseline.train")`` if needed.
"""

from ufmtheory.baseline.checkpoint import (
    latest_checkpoint,
    latest_intact_checkpoint,
    load_checkpoint,
    model_from_checkpoint,
)
from ufmtheory.baseline.config import TrainConfig
from ufmtheory.baseline.data import IGNORE_INDEX, SequenceData, build_sequences, exact_counts
from ufmtheory.baseline.many import train_many
from ufmtheory.baseline.model import GPT, GPTConfig, resolve_device
from ufmtheory.baseline.monitor import PeakMonitor
from ufmtheory.baseline.probes import module_features, parameter_rows
from ufmtheory.baseline.recorder import GramRecorder, snapshot_steps
from ufmtheory.baseline.train import compute_grams, gpt_recorder, train

__all__ = [
    "GPT",
    "GPTConfig",
    "GramRecorder",
    "IGNORE_INDEX",
    "PeakMonitor",
    "SequenceData",
    "TrainConfig",
    "build_sequences",
    "compute_grams",
    "exact_counts",
    "gpt_recorder",
    "latest_checkpoint",
    "latest_intact_checkpoint",
    "load_checkpoint",
    "model_from_checkpoint",
    "module_features",
    "parameter_rows",
    "resolve_device",
    "snapshot_steps",
    "train",
    "train_many",
]
