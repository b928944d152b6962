"""Gram trajectories from any torch model: :class:`GramRecorder` snapshots the context features at the label
position and the label rows of the unembedding during training, and returns a
:class:`~ufmtheory.trajectory.Trajectory` (``time_unit="step"``) that the theory side (metrics,
``detect_phases``, ``compare``) takes like any other.

A snapshot at step ``s`` (after ``s`` optimiser updates) runs in eval mode under ``torch.no_grad`` (autocast
off on CUDA), restores the model's train/eval mode, and stores

* ``gram_H = H Hᵀ``: (K, K) with ``H = features(model)``: (K, d), one row per context of the design (the
  representation at the position that predicts the label),
* ``gram_W = W Wᵀ``: (V, V) with ``W = unembedding(model)``: (V, d), the output vectors of the V labels,
* ``loss``: ``loss(model, H, W)`` when given, else the UFM loss of ``(W, H)`` on the design:
  ``Σ_j π_j CE(Y[:, j], softmax(W h_j))`` (softmax over the design's V labels only),

all formed in float64. ``maybe_record(step, model)`` is a set lookup on other steps. Helpers build
``features`` from a forward hook on a named module (:func:`module_features`) and ``unembedding`` from a named
parameter (:func:`parameter_rows`); :meth:`GramRecorder.from_names` does both for a
:class:`~ufmtheory.baseline.data.SequenceData`.

Example:
    >>> import torch, ufmtheory as ut
    >>> from ufmtheory.baseline import GPT, GPTConfig, build_sequences
    >>> data = build_sequences(ut.designs.factorial((2, 2)))
    >>> model = GPT(GPTConfig(vocab_size=data.vocab_size, n_positions=data.seq_len, width=8, n_heads=2))
    >>> rec = GramRecorder.from_names(data, module="ln_f", parameter="head.weight", steps=[0, 1, 2])
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> rec.check(model)  # shapes, finiteness, vocabulary: errors before training starts
    >>> for step in range(3):
    ...     _ = rec.maybe_record(step, model)
    ...     logits = model(torch.tensor(data.tokens))[:, -1]
    ...     loss = torch.nn.functional.cross_entropy(logits, torch.tensor(data.targets[:, -1]))
    ...     opt.zero_grad(); loss.backward(); opt.step()
    >>> _ = rec.maybe_record(3, model)  # 3 is not a snapshot step: nothing happens
    >>> traj = rec.trajectory()
    >>> traj.ts.tolist(), traj.gram_H.shape, traj.gram_W.shape, traj.time_unit
    ([0.0, 1.0, 2.0], (3, 4, 4), (3, 4, 4), 'step')
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ufmtheory import metrics
from ufmtheory.baseline.data import SequenceData
from ufmtheory.baseline.monitor import PeakMonitor
from ufmtheory.baseline.probes import FeaturesFn, module_features, parameter_rows
from ufmtheory.designs import Design
from ufmtheory.solvers._frontend import step_grid
from ufmtheory.trajectory import Trajectory

__all__ = ["GramRecorder", "snapshot_steps"]

RECORDER_FORMAT = "ufmtheory.baseline.recorder/1"
_SNAP_KEYS = ("ts", "gram_H", "gram_W", "loss")
# Unbounded default schedule: 0 and every rounded 10^(k/20) up to 10^15 (a few hundred entries).
_PER_DECADE = 20
_OPEN_GRID = frozenset(
    [0] + np.unique(np.rint(np.logspace(0.0, 15.0, 15 * _PER_DECADE + 1))).astype(np.int64).tolist()
)

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], Any]


def snapshot_steps(steps: int, n: int = 60) -> np.ndarray:
    """``0`` and ``n`` log-spaced integer steps from 1 to ``steps`` (duplicates removed): the solvers' step
    grid (:func:`ufmtheory.solvers._frontend.step_grid`), so a model's snapshots and a theory run by
    :func:`~ufmtheory.gradient_descent` or ``ut.optimize`` share their steps.

    Example:
        >>> snapshot_steps(1000, 4).tolist()
        [0, 1, 10, 100, 1000]
    """
    return step_grid(int(steps), int(n))


# -- the recorder ---------------------------------------------------------------------------------------
class GramRecorder:
    """Record Gram snapshots of any torch model during training (module docstring).

    Args:
        design: the :class:`~ufmtheory.designs.Design` whose contexts and labels are probed.
        features: ``features(model) -> (K, d)`` context features at the label position, K = ``design.m``
            (tensor or array; see :func:`module_features`).
        unembedding: ``unembedding(model) -> (V, d)`` label rows of the unembedding, V = ``design.V``
            (see :func:`parameter_rows`).
        steps: snapshot steps: ``None`` (default) an open-ended log-spaced schedule (0, 1, 2, 3, ... with
            20 steps per decade), an int ``N`` (0 and 60 log-spaced steps up to ``N``:
            :func:`snapshot_steps`), or an increasing sequence of integer steps.
        loss: optional ``loss(model, H, W) -> float`` (``H``, ``W`` as returned above); default the UFM
            loss of ``(W, H)`` on the design.
        monitor: optional :class:`~ufmtheory.baseline.monitor.PeakMonitor`, fed the semantic strength of
            its Gram at every snapshot (``should_stop`` tells the loop to end).

    Raises:
        ValueError: on a bad schedule, or a monitor on a design without attributes.
    """

    def __init__(
        self,
        design: Design,
        *,
        features: FeaturesFn,
        unembedding: FeaturesFn,
        steps: Any = None,
        loss: LossFn | None = None,
        monitor: PeakMonitor | None = None,
    ) -> None:
        if not isinstance(design, Design):
            raise TypeError(f"design must be a ufmtheory Design, got {type(design).__name__}")
        for name, fn in (("features", features), ("unembedding", unembedding)):
            if not callable(fn):
                raise TypeError(f"{name} must be a callable taking the model, got {type(fn).__name__}")
        if loss is not None and not callable(loss):
            raise TypeError(f"loss must be None or a callable loss(model, H, W), got {type(loss).__name__}")
        if monitor is not None:
            if not isinstance(monitor, PeakMonitor):
                raise TypeError(f"monitor must be a PeakMonitor or None, got {type(monitor).__name__}")
            if design.p == 0:
                raise ValueError(
                    "monitor needs a design with attributes (design.p = 0: no semantic strength)"
                )
        self.design = design
        self.features = features
        self.unembedding = unembedding
        self.loss_fn = loss
        self.monitor = monitor
        self._grid, self._grid_max = _schedule(steps)
        self._snaps: dict[str, list[Any]] = {k: [] for k in _SNAP_KEYS}
        self._nonfinite_step: int | None = None
        self._time = {"snapshot": 0.0, "first": math.nan, "last": math.nan}
        self.last_metrics: dict[str, float] = {}
        Y = np.asarray(design.Y, dtype=np.float64)
        self._Y = torch.from_numpy(Y.T.copy())  # (m, V)
        self._pi = torch.from_numpy(np.asarray(design.pi, dtype=np.float64).copy())

    @classmethod
    def from_names(
        cls,
        data: SequenceData,
        *,
        module: str,
        parameter: str,
        steps: Any = None,
        loss: LossFn | None = None,
        monitor: PeakMonitor | None = None,
        inputs: Any = None,
        call: Callable[[nn.Module, Any], Any] | None = None,
    ) -> GramRecorder:
        """Recorder for a language model trained on ``data`` (:func:`~ufmtheory.baseline.build_sequences`):
        features from the output of ``module`` at the last position of each context's sequence
        (``data.context_tokens``, or ``inputs``), unembedding rows ``data.label_ids`` of ``parameter``."""
        if not isinstance(data, SequenceData):
            raise TypeError(f"data must be a SequenceData (build_sequences), got {type(data).__name__}")
        feats = module_features(module, data.context_tokens if inputs is None else inputs, call=call)
        return cls(
            data.design,
            features=feats,
            unembedding=parameter_rows(parameter, data.label_ids),
            steps=steps,
            loss=loss,
            monitor=monitor,
        )

    # -- schedule ---------------------------------------------------------------------------------------
    def is_due(self, step: int) -> bool:
        """True when ``step`` is a snapshot step not yet recorded."""
        if step in self._grid:
            ts = self._snaps["ts"]
            return not ts or float(step) > float(ts[-1])
        return False

    @property
    def steps_recorded(self) -> list[int]:
        return [int(float(t)) for t in self._snaps["ts"]]

    @property
    def should_stop(self) -> bool:
        """The monitor asks to stop (collapse detected with ``stop_after_collapse``)."""
        return self.monitor is not None and self.monitor.should_stop

    @property
    def snapshot_time_s(self) -> float:
        """Seconds spent taking snapshots so far."""
        return self._time["snapshot"]

    @property
    def finite(self) -> bool:
        """No snapshot so far had a non-finite Gram or loss."""
        return self._nonfinite_step is None

    # -- snapshots --------------------------------------------------------------------------------------
    def maybe_record(self, step: int, model: nn.Module) -> bool:
        """Record a snapshot when ``step`` is on the schedule and not yet recorded; returns whether it did."""
        if not self.is_due(step):
            return False
        self.record(step, model)
        return True

    def check(self, model: nn.Module) -> None:
        """Run ``features``, ``unembedding`` and ``loss`` once and validate them (shapes, finiteness, the
        design's vocabulary against the model's) without recording: call it before training."""
        self._snapshot(model, first=True)

    def record(self, step: int, model: nn.Module) -> None:
        """Record a snapshot at ``step`` (must exceed the last recorded step)."""
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"step must be a non-negative integer, got {step!r}")
        ts = self._snaps["ts"]
        if ts and float(step) <= float(ts[-1]):
            raise ValueError(f"step {step} is not after the last recorded step {int(float(ts[-1]))}")
        t0 = time.perf_counter()
        gH, gW, loss = self._snapshot(model, first=not ts)
        self._snaps["ts"].append(float(step))
        self._snaps["gram_H"].append(gH)
        self._snaps["gram_W"].append(gW)
        self._snaps["loss"].append(loss)
        finite = math.isfinite(loss) and bool(np.all(np.isfinite(gH))) and bool(np.all(np.isfinite(gW)))
        if not finite and self._nonfinite_step is None:
            self._nonfinite_step = int(step)
        self.last_metrics = {"loss": loss}
        if self.monitor is not None or finite:
            self.last_metrics.update(self.semantic(gH, gW))
        if self.monitor is not None:
            self.monitor.update(
                int(step), self.last_metrics.get(f"sem_{self.monitor.which}", math.nan), model
            )
        t1 = time.perf_counter()
        self._time["snapshot"] += t1 - t0
        if math.isnan(self._time["first"]):
            self._time["first"] = t0
        self._time["last"] = t1

    def semantic(self, gram_H: np.ndarray, gram_W: np.ndarray) -> dict[str, float]:
        """``{"sem_H", "sem_W"}``: semantic strength of the context Gram and of the used labels' Gram
        (empty for a design without attributes; ``nan`` where it is undefined)."""
        design = self.design
        if design.p == 0:
            return {}
        out = {}
        used = design.used_labels
        for key, G, X in (
            ("sem_H", gram_H, design.X),
            ("sem_W", gram_W[np.ix_(used, used)], design.label_X[:, used]),
        ):
            try:
                out[key] = metrics.semantic_strength(G, X)
            except ValueError:  # non-finite or degenerate Grams: undefined, not an error of the run
                out[key] = math.nan
        return out

    def _snapshot(self, model: nn.Module, first: bool) -> tuple[np.ndarray, np.ndarray, float]:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        was_training = model.training
        model.eval()
        try:
            params = next(model.parameters(), None)
            cuda = params is not None and params.device.type == "cuda"
            with contextlib.ExitStack() as stack:
                stack.enter_context(torch.no_grad())
                if cuda:  # snapshots stay float32 whatever the training loop's autocast does
                    stack.enter_context(torch.autocast("cuda", enabled=False))
                try:
                    H = _as_matrix("features", self.features(model), self.design.m, "design.m contexts")
                except (IndexError, RuntimeError) as exc:
                    raise ValueError(
                        f"features(model) failed: {exc} (does the model's vocabulary / context length hold "
                        "the design's token sequences?)"
                    ) from exc
                W = _as_matrix("unembedding", self.unembedding(model), self.design.V, "design.V labels")
                if H.shape[1] != W.shape[1]:
                    raise ValueError(
                        f"features (K, d) and unembedding (V, d) disagree on d: {H.shape[1]} vs {W.shape[1]}"
                    )
                loss = self._loss(model, H, W)
            H64, W64 = H.detach().double().cpu(), W.detach().double().cpu()
            gH, gW = (H64 @ H64.T).numpy(), (W64 @ W64.T).numpy()
        finally:
            model.train(was_training)
        if first:
            for name, arr in (("features", H64), ("unembedding", W64)):
                if not bool(torch.isfinite(arr).all()):
                    raise ValueError(f"{name}(model) returned NaN or inf before training")
            if not math.isfinite(loss):
                raise ValueError(f"loss is {loss} before training")
        return gH, gW, loss

    def _loss(self, model: nn.Module, H: torch.Tensor, W: torch.Tensor) -> float:
        if self.loss_fn is not None:
            value = self.loss_fn(model, H, W)
            return float(value.item() if torch.is_tensor(value) else value)
        logits = H.detach().double().cpu() @ W.detach().double().cpu().T  # (m, V)
        logp = torch.log_softmax(logits, dim=-1)
        # 0 · log p = 0 even where p underflows: drop zero-probability labels explicitly.
        ce = -torch.where(self._Y > 0, self._Y * logp, torch.zeros_like(logp)).sum(dim=1)
        return float((self._pi * ce).sum())

    # -- results ----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._snaps["ts"])

    @property
    def status(self) -> str:
        """``"ok"``, or ``"nonfinite"`` once a snapshot had a non-finite Gram or loss."""
        return "ok" if self._nonfinite_step is None else "nonfinite"

    @property
    def message(self) -> str:
        """The step of the first non-finite snapshot (empty when all are finite)."""
        if self._nonfinite_step is None:
            return ""
        return f"non-finite loss or Grams at step {self._nonfinite_step}"

    def trajectory(
        self,
        *,
        status: str | None = None,
        message: str | None = None,
        stats: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        method: str = "recorder",
    ) -> Trajectory:
        """The snapshots so far as a :class:`~ufmtheory.trajectory.Trajectory` (``time_unit="step"``).

        ``status`` (a word of the shared status vocabulary) and ``message`` default to the recorder's
        (:attr:`status`, :attr:`message`); ``stats`` gets ``n_evals`` (snapshots), ``wall_time_s`` (first
        to last snapshot), ``snapshot_time_s`` and the monitor's summary; ``meta`` the design.
        """
        if not self._snaps["ts"]:
            raise ValueError("no snapshot recorded yet (call maybe_record(0, model) before training)")
        s = self._snaps
        base_stats: dict[str, Any] = {
            "n_evals": len(s["ts"]),
            "wall_time_s": self._time["last"] - self._time["first"] if len(s["ts"]) > 1 else 0.0,
            "snapshot_time_s": self._time["snapshot"],
        }
        if self.monitor is not None:
            base_stats["peak"] = self.monitor.summary()
        return Trajectory(
            ts=np.asarray([float(t) for t in s["ts"]], dtype=np.float64),
            gram_H=np.stack([np.asarray(g) for g in s["gram_H"]]),
            gram_W=np.stack([np.asarray(g) for g in s["gram_W"]]),
            loss=np.asarray([float(v) for v in s["loss"]], dtype=np.float64),
            status=self.status if status is None else status,
            message=(self.message if status is None else "") if message is None else message,
            stats={**base_stats, **(stats or {})},
            time_unit="step",
            method=method,
            meta={
                "source": "ufmtheory.baseline.GramRecorder",
                "design": self.design.summary(),
                **(meta or {}),
            },
        )

    # -- resume -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Snapshots and monitor state, for the training loop's own checkpoints (``torch.save``-able and
        loadable with ``weights_only=True``)."""
        return {
            "format": RECORDER_FORMAT,
            "snapshots": {k: [torch.from_numpy(np.asarray(v)) for v in vs] for k, vs in self._snaps.items()},
            "nonfinite_step": -1 if self._nonfinite_step is None else self._nonfinite_step,
            "snapshot_time_s": self._time["snapshot"],
            "monitor": None if self.monitor is None else self.monitor.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict` (snapshots after the checkpoint's step are not in it)."""
        if not isinstance(state, Mapping) or state.get("format") != RECORDER_FORMAT:
            raise ValueError("state is not a GramRecorder state_dict")
        self._load_snapshots(state["snapshots"])
        step = int(state["nonfinite_step"])
        self._nonfinite_step = None if step < 0 else step
        self._time["snapshot"] = float(state.get("snapshot_time_s", 0.0))
        if self.monitor is not None and state.get("monitor") is not None:
            self.monitor.load_state_dict(state["monitor"])

    def _load_snapshots(self, snaps: Mapping[str, Any]) -> None:
        missing = [k for k in _SNAP_KEYS if k not in snaps]
        if missing or len({len(snaps[k]) for k in _SNAP_KEYS}) != 1:
            raise ValueError(f"snapshots must hold equally long lists {_SNAP_KEYS}")
        self._snaps = {k: [v.numpy() if torch.is_tensor(v) else v for v in snaps[k]] for k in _SNAP_KEYS}


def _schedule(steps: Any) -> tuple[frozenset[int], int | None]:
    if steps is None:
        return _OPEN_GRID, None
    if isinstance(steps, (int, np.integer)) and not isinstance(steps, bool):
        if steps < 1:
            raise ValueError(f"steps as an int (the run's length) must be >= 1, got {steps}")
        grid = snapshot_steps(int(steps))
    else:
        grid = np.asarray(steps)
        if grid.ndim != 1 or grid.size == 0 or grid.dtype.kind not in "iu":
            raise ValueError(f"steps must be None, an int or a 1-D sequence of integer steps, got {steps!r}")
        if grid[0] < 0 or np.any(np.diff(grid) <= 0):
            raise ValueError("steps must be non-negative and strictly increasing")
    return frozenset(int(s) for s in grid), int(grid[-1])


def _as_matrix(name: str, value: Any, rows: int, what: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not torch.is_tensor(value):
        raise ValueError(f"{name}(model) must return a tensor or array, got {type(value).__name__}")
    if value.ndim != 2 or value.shape[0] != rows or value.shape[1] < 1:
        raise ValueError(f"{name}(model) must return shape ({rows}, d) ({what}), got {tuple(value.shape)}")
    if not value.is_floating_point():
        raise ValueError(f"{name}(model) must return floating-point values, got {value.dtype}")
    return value
