"""Checkpoints of :func:`~ufmtheory.baseline.train`: ``ckpt_{step:09d}.pt`` files holding the model,
optimiser, torch/numpy/python RNG states, the step and the snapshots so far, written atomically (temporary
file + rename), and reading them back (:func:`load_checkpoint`, :func:`latest_checkpoint`,
:func:`model_from_checkpoint`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import random
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ufmtheory._io import atomic_write_bytes
from ufmtheory.baseline.config import TrainConfig
from ufmtheory.baseline.model import GPT, GPTConfig
from ufmtheory.designs import Design

__all__ = [
    "CHECKPOINT_FORMAT",
    "latest_checkpoint",
    "latest_intact_checkpoint",
    "load_checkpoint",
    "model_from_checkpoint",
]

CHECKPOINT_FORMAT = "ufmtheory.baseline.checkpoint/1"
_CKPT_RE = re.compile(r"^ckpt_(\d{9})\.pt$")
# Fields that may differ between an interrupted run and its resumption.
_RUN_CONTROL = (
    "progress",
    "resume",
    "checkpoint_every",
    "checkpoint_dir",
    "keep_checkpoints",
    "stop_at",
    "stop_after_collapse",
)


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The checkpoint with the highest step in ``directory`` (``None`` if there is none)."""
    d = Path(directory)
    if not d.is_dir():
        return None
    found = sorted(p for p in d.iterdir() if _CKPT_RE.match(p.name))
    return found[-1] if found else None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`train` (``torch.load(weights_only=True)``, on the CPU).

    Raises:
        ValueError: naming the file when it is truncated, corrupted or not a baseline checkpoint.
    """
    try:
        ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ... on bad files
        raise ValueError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a ufmtheory baseline checkpoint")
    return ckpt


def latest_intact_checkpoint(directory: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in ``directory`` that loads, with its contents (``None`` if there is none).

    Newer checkpoints that cannot be read (a truncated file after a crash or a full disk) are skipped with
    a warning naming them.
    """
    d = Path(directory)
    if not d.is_dir():
        return None
    for path in sorted((p for p in d.iterdir() if _CKPT_RE.match(p.name)), reverse=True):
        try:
            return path, load_checkpoint(path)
        except ValueError as exc:
            warnings.warn(f"skipping unreadable checkpoint: {exc}", RuntimeWarning, stacklevel=2)
    return None


def model_from_checkpoint(path_or_ckpt: str | Path | dict[str, Any]) -> GPT:
    """Rebuild the model stored in a checkpoint (on the CPU, in eval mode)."""
    ckpt = path_or_ckpt if isinstance(path_or_ckpt, dict) else load_checkpoint(path_or_ckpt)
    model = GPT(GPTConfig(**ckpt["gpt_config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval()


def _design_fingerprint(design: Design) -> str:
    h = hashlib.sha256()
    for arr in (design.Y, design.X, design.pi):
        a = np.ascontiguousarray(arr, dtype=np.float64)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _identity(config: TrainConfig) -> dict[str, Any]:
    d = dataclasses.asdict(config)
    for k in _RUN_CONTROL:
        d.pop(k)
    return d


def _identity_diff(config: TrainConfig, theirs: dict[str, Any]) -> list[str]:
    """Fields in which ``config`` differs from a checkpoint's identity; fields the checkpoint predates
    count as their default."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    mine = _identity(config)
    return sorted(k for k in mine if mine[k] != theirs.get(k, defaults.get(k)))


def _rng_state(device: torch.device) -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (the legacy global state is what we save)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": random.getstate(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    random.setstate(state["python"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_checkpoint(directory: Path, payload: dict[str, Any], keep: int) -> Path:
    buf = io.BytesIO()
    torch.save(payload, buf)
    path = directory / f"ckpt_{payload['step']:09d}.pt"
    atomic_write_bytes(path, buf.getvalue())
    if keep > 0:
        old = sorted(p for p in directory.iterdir() if _CKPT_RE.match(p.name))[:-keep]
        for p in old:
            p.unlink(missing_ok=True)
    return path
