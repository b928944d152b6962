"""Transformer baseline (torch only): a small GPT trained on a design's exact-statistics token sequences,
with Gram snapshots returned as a :class:`~ufmtheory.trajectory.Trajectory` (``time_unit="step"``).

* :mod:`.data`: :func:`build_sequences` → :class:`SequenceData` (empirical next-token statistics = ``Y``).
* :mod:`.model`: :class:`GPTConfig`, :class:`GPT` (pre-LayerNorm, causal, learned positions).
* :mod:`.train`: :class:`TrainConfig`, :func:`train` (AdamW/SGD, log-spaced snapshots, atomic
  checkpoints, bit-identical resume on CPU).
* :mod:`.checkpoint`: :func:`latest_checkpoint`, :func:`load_checkpoint`, :func:`model_from_checkpoint`.

This is the only package that imports torch; ``import ufmtheory`` does not load it.

Note: the function :func:`train` shadows the submodule of the same name as an attribute of this package;
reach the module with ``importlib.import_module("ufmtheory.baseline.train")`` if needed.
"""

from ufmtheory.baseline.checkpoint import latest_checkpoint, load_checkpoint, model_from_checkpoint
from ufmtheory.baseline.data import IGNORE_INDEX, SequenceData, build_sequences, exact_counts
from ufmtheory.baseline.model import GPT, GPTConfig, resolve_device
from ufmtheory.baseline.train import TrainConfig, compute_grams, snapshot_steps, train

__all__ = [
    "GPT",
    "GPTConfig",
    "IGNORE_INDEX",
    "SequenceData",
    "TrainConfig",
    "build_sequences",
    "compute_grams",
    "exact_counts",
    "latest_checkpoint",
    "load_checkpoint",
    "model_from_checkpoint",
    "resolve_device",
    "snapshot_steps",
    "train",
]
