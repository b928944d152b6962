"""Stopping at the semantic peak: :class:`PeakMonitor` watches a semantic-strength curve online, keeps the
model's state dict at its maximum, and says when the peak has passed and when the collapse has set in.

Rule (all on the values seen at snapshot steps; non-finite values are ignored):

* a value above the best so far by more than ``min_delta`` is a new peak: its step, value and a CPU copy of
  the model's state dict are kept (and written to ``path`` when given);
* ``peaked``: ``patience`` consecutive values without a new peak (the peak is behind us);
* ``collapsed``: peaked, and the latest value has fallen by at least ``drop`` times the rise
  ``best - first`` below the best (``drop=0.5``: halfway back to where it started);
* ``should_stop``: ``stop_after_collapse`` and ``collapsed``.

Transient semantic structure rises and then decays towards the simplex ETF (semantic strength 0), so the
kept state dict is the most semantic model of the run.

Example:
    >>> mon = PeakMonitor(patience=2)
    >>> for step, s in enumerate([0.0, 0.2, 0.5, 0.4, 0.3, 0.1]):
    ...     _ = mon.update(step, s)
    >>> mon.best_step, mon.best_value, mon.peaked, mon.collapsed
    (2, 0.5, True, True)
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import torch

from ufmtheory._io import atomic_write_bytes

__all__ = ["PeakMonitor"]


class PeakMonitor:
    """Online peak tracker for a semantic-strength curve (module docstring).

    Args:
        which: ``"W"`` or ``"H"``: the Gram whose semantic strength a :class:`GramRecorder` feeds it.
        patience: values without a new peak after which the peak counts as passed (>= 1).
        drop: fraction of the rise the value must lose after the peak for the collapse, in (0, 1].
        min_delta: a new peak must exceed the best by more than this (>= 0).
        stop_after_collapse: ``should_stop`` becomes True once the collapse is detected.
        keep_state: keep a CPU copy of the model's state dict at the peak (``best_state_dict``).
        path: optional file; the state dict at each new peak is written there atomically
            (``torch.save`` of ``{"step", "value", "model"}``).
    """

    def __init__(
        self,
        which: str = "W",
        *,
        patience: int = 5,
        drop: float = 0.5,
        min_delta: float = 0.0,
        stop_after_collapse: bool = False,
        keep_state: bool = True,
        path: str | Path | None = None,
    ) -> None:
        if which not in ("W", "H"):
            raise ValueError(f"which must be 'W' or 'H', got {which!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be an integer >= 1, got {patience!r}")
        for name, value, ok in (
            ("drop", drop, lambda v: 0.0 < v <= 1.0),
            ("min_delta", min_delta, lambda v: v >= 0.0),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            if not ok(value):
                raise ValueError(f"{name} out of range, got {value!r} (drop in (0, 1], min_delta >= 0)")
        for name, value in (("stop_after_collapse", stop_after_collapse), ("keep_state", keep_state)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be a bool, got {value!r}")
        self.which = which
        self.patience = patience
        self.drop = float(drop)
        self.min_delta = float(min_delta)
        self.stop_after_collapse = stop_after_collapse
        self.keep_state = keep_state
        self.path = Path(path) if path is not None else None
        self.first_value = math.nan
        self.best_value = -math.inf
        self.best_step: int | None = None
        self.last_value = math.nan
        self.since_best = 0
        self.best_state_dict: dict[str, torch.Tensor] | None = None

    # -- online update --------------------------------------------------------------------------------
    def update(self, step: int, value: float, model: torch.nn.Module | None = None) -> bool:
        """Feed the value at ``step``; returns True when it is a new peak (``model``'s state is kept)."""
        value = float(value)
        if not math.isfinite(value):
            return False
        if math.isnan(self.first_value):
            self.first_value = value
        self.last_value = value
        if value > self.best_value + self.min_delta or self.best_step is None:
            self.best_value, self.best_step, self.since_best = value, int(step), 0
            if model is not None and (self.keep_state or self.path is not None):
                state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                if self.keep_state:
                    self.best_state_dict = state
                if self.path is not None:
                    buf = io.BytesIO()
                    torch.save({"step": int(step), "value": value, "model": state}, buf)
                    atomic_write_bytes(self.path, buf.getvalue())
            return True
        self.since_best += 1
        return False

    @property
    def peaked(self) -> bool:
        """``patience`` values in a row without a new peak."""
        return self.best_step is not None and self.since_best >= self.patience

    @property
    def collapsed(self) -> bool:
        """Peaked, and the latest value lies ``drop`` of the rise below the peak."""
        if not self.peaked:
            return False
        rise = self.best_value - self.first_value
        return rise > 0 and self.last_value <= self.best_value - self.drop * rise

    @property
    def should_stop(self) -> bool:
        return self.stop_after_collapse and self.collapsed

    def summary(self) -> dict[str, Any]:
        """JSON-friendly state: peak step and value, ``peaked``, ``collapsed``, the file written."""
        return {
            "metric": f"semantic_strength_{self.which}",
            "peak_step": self.best_step,
            "peak_value": self.best_value if self.best_step is not None else None,
            "peaked": self.peaked,
            "collapsed": self.collapsed,
            "path": str(self.path) if self.path is not None else None,
        }

    # -- resume ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue after a restart (``torch.save``-able, ``weights_only`` loadable)."""
        return {
            "first_value": self.first_value,
            "best_value": self.best_value,
            "best_step": -1 if self.best_step is None else self.best_step,
            "last_value": self.last_value,
            "since_best": self.since_best,
            "best_state_dict": self.best_state_dict,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.first_value = float(state["first_value"])
        self.best_value = float(state["best_value"])
        self.best_step = None if int(state["best_step"]) < 0 else int(state["best_step"])
        self.last_value = float(state["last_value"])
        self.since_best = int(state["since_best"])
        self.best_state_dict = state.get("best_state_dict")

    def __repr__(self) -> str:
        return (
            f"PeakMonitor(which={self.which!r}, patience={self.patience}, drop={self.drop}, "
            f"best_step={self.best_step}, peaked={self.peaked}, collapsed={self.collapsed})"
        )
