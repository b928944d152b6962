"""``ufm validate``: calibrate the theory on one design, predict held-out designs, publish the misses.

Protocol (issue 9, docs/validation.md):

1. Train the baseline GPT (2 layers, width 64, init std 0.02, full batch) on every design with two
   optimisers, AdamW (lr 1e-3) and full-batch gradient descent (SGD lr 1.0, no momentum), for several
   seeds; the runs are cached under ``OUT/runs`` and reused by a later call with the same settings.
2. Calibrate (:func:`ufmtheory.analysis.calibration.calibrate`) the normalised modified UFM (features on the
   sphere of radius ``sqrt(64)``, as the GPT's final LayerNorm) on the FIRST design's AdamW runs only,
   on the same clock (AdamW, lr 1e-3, same steps, init std 0.02).
3. Predict (:func:`~ufmtheory.analysis.validation.validate`) every (design, optimiser) with no refit:
   ``α`` follows each design's input geometry, measured on the model's step-0 H Gram; the theory runs the
   model's own optimiser from the model's seed. The calibration design's AdamW rows are in-sample and
   marked so.
4. Beside it, the gradient-flow theory as published (reference modified UFM, ridge on H, ``α = β = 1``,
   ``λ = 1e-3``, exact reduced ODE): compared with a fitted time map for AdamW (``clock="fit"``, reported
   with its ``map_status``) and on ``t = lr·step`` for GD (``clock="lr"``).

Writes ``validation.json``, ``validation.md`` (the ratio tables), ``report.html`` (tables and figures, one
self-contained page) and ``strength_<design>_<optimiser>.png`` (semantic strength of W and H: model and
same-clock theory, median and min-max band over seeds).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import multiprocessing
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ufmtheory import designs as designs_mod
from ufmtheory._format import finite_or_none as _num
from ufmtheory._io import atomic_write_bytes
from ufmtheory.analysis.calibration import Calibration, calibrate
from ufmtheory.analysis.comparison import compare, run_status
from ufmtheory.analysis.geometry import model_input_geometry
from ufmtheory.analysis.phases import predict_phases
from ufmtheory.analysis.validation import Validation, validate
from ufmtheory.experiments._validation_report import markdown, report_html, strength_figure
from ufmtheory.models import ModifiedUFM
from ufmtheory.report import write_json
from ufmtheory.trajectory import Trajectory

__all__ = [
    "train_kwargs",
    "ValidationConfig",
    "run_validation",
    "validation_designs",
    "random_distinct",
    "FULL",
    "QUICK",
    "SMOKE",
]


def random_distinct(m: int = 12, p: int = 8, k: int = 2, max_seeds: int = 1000) -> tuple[Any, int]:
    """A random-attributes design whose contexts carry pairwise distinct attribute codes.

    ``random_attributes`` may draw the same code twice (then two contexts share their whole input, an id
    token is added, and the phenomenon changes); this draws seeds 0, 1, ... until every code is distinct.

    Returns:
        ``(design, seed)``.
    """
    for seed in range(max_seeds):
        # distinct=False: the first naturally distinct draw, the protocol's design as published
        d = designs_mod.random_attributes(m, p, k, seed=seed, distinct=False)
        codes = {tuple(col) for col in np.asarray(d.X).T.tolist()}
        if len(codes) == m:
            return d, seed
    raise ValueError(f"no seed below {max_seeds} gives {m} distinct codes of {k} of {p} features")


def validation_designs(names: Sequence[str]) -> dict[str, Any]:
    """The designs of the protocol by name: ``"3x3"``, ``"4x4"``, ``"3x5"``, ``"2x2x3"``, ``"2x2"``,
    ``"2x3"``, ``"hier(3,2)"`` (depth 3, branching 2) and ``"random(12)"`` (12 contexts, distinct codes)."""
    out = {}
    for name in names:
        if name == "hier(3,2)":
            out[name] = designs_mod.hierarchical(3, 2)
        elif name == "random(12)":
            out[name] = random_distinct(12, 8, 2)[0]
        else:
            try:
                sizes = tuple(int(s) for s in name.split("x"))
            except ValueError:
                raise ValueError(f"unknown design name {name!r}") from None
            out[name] = designs_mod.factorial(sizes)
    return out


@dataclass(frozen=True, kw_only=True)
class ValidationConfig:
    """Settings of one validation run (see :data:`FULL`, :data:`QUICK`, :data:`SMOKE`).

    Attributes:
        designs: design names (:func:`validation_designs`); the first is the calibration design.
        optimizers: ``("adamw", "gd")`` or a subset.
        seeds: model seeds (the theory uses the same init seed).
        steps: optimiser steps (model and same-clock theory).
        width, n_layers, n_heads: the GPT's shape (the theory's dim is the width).
        lr_adamw, lr_gd: learning rates.
        grid: calibration grid ``{"alpha": [...], "beta": [...]}``.
        reference_gf: also compare the published gradient-flow theory (reference modified UFM).
        n_snapshots: model snapshots (log-spaced).
        alpha_rules: how α moves to held-out designs: the first rule gives the main tables and figures,
            the others (e.g. ``"fixed"``: one α for every design) an extra table each.
        workers: processes for the independent parts (training groups, validation and reference runs);
            1 runs everything in this process. Results do not depend on it.
        figures: draw the strength figures (``strength_*.png`` and in ``report.html``).
    """

    designs: tuple[str, ...] = ("3x3", "4x4", "3x5", "2x2x3", "hier(3,2)", "random(12)")
    optimizers: tuple[str, ...] = ("adamw", "gd")
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 3000
    width: int = 64
    n_layers: int = 2
    n_heads: int = 4
    lr_adamw: float = 1e-3
    lr_gd: float = 1.0
    grid: dict[str, tuple[float, ...]] = dataclasses.field(
        default_factory=lambda: {"alpha": (1.0, 1.5, 2.0, 3.0, 4.5, 6.0, 9.0)}
    )
    reference_gf: bool = True
    n_snapshots: int = 60
    alpha_rules: tuple[str, ...] = ("geometry",)
    workers: int = 2
    figures: bool = True


FULL = ValidationConfig(alpha_rules=("geometry", "fixed"))
QUICK = ValidationConfig(
    designs=("3x3", "4x4", "2x2x3", "hier(3,2)"),
    seeds=(0, 1, 2),
    steps=1000,
    grid={"alpha": (1.0, 2.0, 3.0, 4.5, 9.0)},
    n_snapshots=40,
)
SMOKE = ValidationConfig(
    designs=("2x2", "2x3"),
    optimizers=("adamw",),
    seeds=(0,),
    steps=150,
    width=16,
    n_layers=1,
    n_heads=2,
    lr_adamw=3e-3,
    grid={"alpha": (1.0, 3.0, 9.0)},
    reference_gf=False,
    n_snapshots=15,
    workers=1,  # seconds of work: starting worker processes would cost more than it saves
)


def train_kwargs(cfg: ValidationConfig, optimizer: str, seed: int) -> dict[str, Any]:
    """The :class:`ufmtheory.baseline.TrainConfig` fields of one run of the protocol."""
    kw: dict[str, Any] = dict(
        steps=cfg.steps,
        width=cfg.width,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        seed=seed,
        n_snapshots=cfg.n_snapshots,
        num_threads=1,
    )
    if optimizer == "adamw":
        return {**kw, "optimizer": "adamw", "lr": cfg.lr_adamw}
    return {**kw, "optimizer": "sgd", "lr": cfg.lr_gd, "momentum": 0.0}


def _gpt_group(design: Any, kwargs: dict[str, Any], seeds: Sequence[int]) -> list[Trajectory]:
    """The seeds of one (design, optimiser) as one batched GPT (:func:`ufmtheory.baseline.train_many`)."""
    from ufmtheory.baseline import TrainConfig, train_many

    return train_many(design, TrainConfig(**{k: v for k, v in kwargs.items() if k != "seed"}), list(seeds))


Trainer = Callable[[Any, dict[str, Any]], Trajectory]
"""``trainer(design, train_kwargs) -> Trajectory`` (time_unit ``"step"``, ``meta["config"]`` holding the
kwargs): one run per call, in this process (tests pass a cheap stand-in). The default trains the seeds of
each (design, optimiser) together with ``train_many``, in worker processes when ``cfg.workers > 1``."""


class _Cache:
    """Trained runs under ``OUT/runs``, one file pair per (design, optimiser, seed), reused when the design,
    the training settings and the trainer are the same."""

    def __init__(self, folder: Path | None, trainer_name: str) -> None:
        self.folder, self.trainer_name = folder, trainer_name

    def _key(self, name: str, design: Any, kwargs: dict[str, Any], opt: str) -> tuple[str, str]:
        key = f"{_slug(name)}_{opt}_s{kwargs['seed']}"
        ident = json.dumps(
            {"design": design.summary(), "config": kwargs, "trainer": self.trainer_name},
            sort_keys=True,
            default=str,
        )
        return key, ident

    def load(self, name: str, design: Any, kwargs: dict[str, Any], opt: str) -> Trajectory | None:
        if self.folder is None:
            return None
        key, ident = self._key(name, design, kwargs, opt)
        tag = self.folder / f"{key}.config.json"
        if tag.exists() and tag.read_text() == ident and (self.folder / f"{key}.npz").exists():
            return Trajectory.load(self.folder / key)
        return None

    def store(self, name: str, design: Any, kwargs: dict[str, Any], opt: str, traj: Trajectory) -> None:
        if self.folder is None:
            return
        key, ident = self._key(name, design, kwargs, opt)
        self.folder.mkdir(parents=True, exist_ok=True)
        traj.save(self.folder / key)
        atomic_write_bytes(self.folder / f"{key}.config.json", ident.encode())


class _Training:
    """Every (design, optimiser, seed) run of the protocol: cached ones loaded, the missing seeds of each
    (design, optimiser) trained as one group, in ``pool`` when given (in this process otherwise)."""

    def __init__(
        self,
        designs: dict[str, Any],
        cfg: ValidationConfig,
        cache: _Cache,
        log: Callable[[str], None],
        trainer: Trainer | None,
        pool: Executor | None,
        first: tuple[str, str],
    ) -> None:
        self.designs, self.cfg, self.cache, self.log, self.trainer = designs, cfg, cache, log, trainer
        self.runs: dict[str, dict[str, list[Trajectory | None]]] = {}
        self.pending: dict[tuple[str, str], tuple[list[int], Future[list[Trajectory]], float]] = {}
        groups = [(n, o) for n in designs for o in cfg.optimizers]
        groups.sort(key=lambda g: g != first)  # the calibration group first: calibration can start early
        for name, opt in groups:
            row = self.runs.setdefault(name, {})
            row[opt] = [cache.load(name, designs[name], train_kwargs(cfg, opt, s), opt) for s in cfg.seeds]
            missing = [s for s, r in zip(cfg.seeds, row[opt], strict=True) if r is None]
            if not missing:
                continue
            if pool is not None and trainer is None:
                fut = pool.submit(_gpt_group, designs[name], train_kwargs(cfg, opt, missing[0]), missing)
                self.pending[name, opt] = (missing, fut, time.perf_counter())
            else:
                self._collect(name, opt, missing, self._train_here(name, opt, missing), time.perf_counter())

    def _train_here(self, name: str, opt: str, seeds: list[int]) -> list[Trajectory]:
        design, t0 = self.designs[name], time.perf_counter()
        if self.trainer is None:
            return _gpt_group(design, train_kwargs(self.cfg, opt, seeds[0]), seeds)
        out = [self.trainer(design, train_kwargs(self.cfg, opt, s)) for s in seeds]
        self.log(f"  trained {name} {opt} seeds {seeds}: {time.perf_counter() - t0:.1f} s")
        return out

    def _collect(self, name: str, opt: str, seeds: list[int], trajs: list[Trajectory], t0: float) -> None:
        for s, traj in zip(seeds, trajs, strict=True):
            self.runs[name][opt][self.cfg.seeds.index(s)] = traj
            self.cache.store(name, self.designs[name], train_kwargs(self.cfg, opt, s), opt, traj)
        if self.trainer is None:
            wall = trajs[0].stats.get("wall_time_s", math.nan)
            statuses = ", ".join(sorted({t.status for t in trajs}))
            self.log(f"  trained {name} {opt} seeds {seeds} as one batched model: {wall:.1f} s ({statuses})")

    def group(self, name: str, opt: str) -> list[Trajectory]:
        """The runs of one (design, optimiser), waiting for its training when it is still running."""
        if (name, opt) in self.pending:
            seeds, fut, t0 = self.pending.pop((name, opt))
            self._collect(name, opt, seeds, fut.result(), t0)
        runs = self.runs[name][opt]
        assert all(r is not None for r in runs)
        return runs  # type: ignore[return-value]

    def all(self) -> dict[str, dict[str, list[Trajectory]]]:
        return {n: {o: self.group(n, o) for o in self.cfg.optimizers} for n in self.designs}


def _slug(name: str) -> str:
    return name.replace("(", "_").replace(")", "").replace(",", "_")


def _reference_problem(design: Any) -> ModifiedUFM:
    return ModifiedUFM(design, dim=design.m, alpha=1.0, beta=1.0, ridge="H", lam_W=1e-3, lam_H=1e-3)


def _reference_comparisons(
    design: Any, name: str, runs: dict[str, list[Trajectory]], cfg: ValidationConfig
) -> dict[str, Any]:
    """The published gradient-flow theory against each run: fitted map (AdamW) or t = lr·step (GD)."""
    try:
        theory = predict_phases(_reference_problem(design), which="W")
    except (ValueError, TypeError) as exc:
        return {"status": "not_applicable", "message": str(exc)}
    if theory.method != "reduced":
        # The full-flow fallback costs minutes per design (issue 9: 50-160 s): not run here.
        return {"status": "not_applicable", "message": "no exact reduced ODE for this design: skipped"}
    out: dict[str, Any] = {"method": theory.method, "runs": []}
    for opt, trajs in runs.items():
        clock = "lr" if opt == "gd" else "fit"
        for t in trajs:
            st, msg = run_status(t)
            if st != "ok":
                out["runs"].append(
                    {"optimizer": opt, "seed": t.meta["config"]["seed"], "status": st, "message": msg}
                )
                continue
            c = compare(theory.trajectory, t, design, clock=clock, which="W")
            out["runs"].append(
                {
                    "optimizer": opt,
                    "seed": t.meta["config"]["seed"],
                    "clock": c.clock,
                    "a": _num(c.a),
                    "b": _num(c.b),
                    "map_status": c.map_status,
                    "status": c.status,
                    "message": c.message,
                    "predicted_W": {k: _num(v) for k, v in c.predicted["W"].items()},
                    "measured_W": {k: _num(v) for k, v in c.measured["W"].items()},
                    "curve_rms_W": _num(c.errors["W"]["semantic_strength"]),
                }
            )
    return out


def _alternative(calib: Calibration, rule: str, cases: dict[str, Any]) -> Validation:
    return validate(dataclasses.replace(calib, alpha_rule=rule), cases)


@contextlib.contextmanager
def _pool(workers: int) -> Iterator[Executor | None]:
    """``workers`` fresh processes (spawned: no copy of this process's torch thread pools or locks), or
    ``None`` for one worker (everything runs here)."""
    if workers <= 1:
        yield None
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def _call(pool: Executor | None, fn: Callable[..., Any], *args: Any) -> Future[Any]:
    """``fn(*args)`` in ``pool``, or here and now (a finished future) without one."""
    if pool is not None:
        return pool.submit(fn, *args)
    fut: Future[Any] = Future()
    fut.set_result(fn(*args))
    return fut


def run_validation(
    cfg: ValidationConfig = FULL,
    out: str | Path | None = None,
    *,
    log: Callable[[str], None] = print,
    trainer: Trainer | None = None,
) -> dict[str, Any]:
    """Run the protocol of the module docstring and write its files to ``out`` (if given).

    The independent parts run in ``cfg.workers`` processes: the training groups (the seeds of one
    (design, optimiser) as one batched model), then the validations and reference comparisons; the
    calibration runs here as soon as its design's runs are trained, while the other groups train.

    Args:
        cfg: the settings (:data:`FULL`, :data:`QUICK`, :data:`SMOKE` or your own).
        out: output folder (``None``: nothing is written, no cache).
        log: progress lines go here.
        trainer: ``trainer(design, train_kwargs) -> Trajectory``, one run per call, in this process
            (default: the baseline GPT, seeds batched with ``train_many``).

    Returns:
        The results dictionary (also ``validation.json``); ``stats`` holds the wall time of each part and
        the CPU seconds of this process and its workers.
    """
    if isinstance(cfg.workers, bool) or not isinstance(cfg.workers, int) or cfg.workers < 1:
        raise ValueError(f"cfg.workers must be an integer >= 1, got {cfg.workers!r}")
    start, cpu0 = time.perf_counter(), _cpu_s()
    out_dir = Path(out) if out is not None else None
    trainer_name = "train_many" if trainer is None else getattr(trainer, "__name__", "")
    cache = _Cache(out_dir / "runs" if out_dir is not None else None, trainer_name)
    designs = validation_designs(cfg.designs)
    cal_name = cfg.designs[0]
    cal_opt = "adamw" if "adamw" in cfg.optimizers else cfg.optimizers[0]
    with _pool(cfg.workers) as pool:
        training = _Training(designs, cfg, cache, log, trainer, pool, first=(cal_name, cal_opt))
        cal_runs = training.group(cal_name, cal_opt)
        log(f"calibrating on {cal_name} ({cal_opt}, {len(cfg.seeds)} seeds)")
        t_cal = time.perf_counter()
        calib: Calibration = calibrate(
            cal_runs,
            designs[cal_name],
            "normalized",
            design_name=cal_name,
            grid=cfg.grid,
            dim=cfg.width,
            alpha_rule=cfg.alpha_rules[0],
        )
        cal_s = time.perf_counter() - t_cal
        log(
            f"  {calib.params} objective {calib.objective:.3g} ({calib.status}"
            f"{': ' + calib.message if calib.message else ''})"
        )
        runs = training.all()
        train_s = time.perf_counter() - start
        t_val = time.perf_counter()
        cases = {o: {n: (designs[n], runs[n][o]) for n in cfg.designs} for o in cfg.optimizers}
        main = {o: _call(pool, validate, calib, cases[o]) for o in cfg.optimizers}
        alts = {
            (r, o): _call(pool, _alternative, calib, r, cases[o]) for r in cfg.alpha_rules[1:] for o in main
        }
        refs = {}
        if cfg.reference_gf:
            refs = {n: _call(pool, _reference_comparisons, designs[n], n, runs[n], cfg) for n in cfg.designs}
        results: dict[str, Any] = {
            "config": dataclasses.asdict(cfg),
            "calibration": calib.as_dict(),
            "validation": {},
            "reference_gf": {},
            "geometry": {},
        }
        figures: list[tuple[str, bytes]] = []
        for opt, fut in main.items():
            val: Validation = fut.result()
            for row in val.rows:
                row["in_sample"] = row["design"] == cal_name and opt == cal_opt
            results["validation"][opt] = {
                "status": val.status,
                "message": val.message,
                "alpha_rule": calib.alpha_rule,
                "alpha": {r["design"]: r["alpha"] for r in val.rows},
                "summary": val.summary,
                "rows": val.rows,
                "table": val.table(),
            }
            log(f"\n{opt}: predicted/measured, median [min-max] over seeds\n{val.table()}")
            if out_dir is not None and cfg.figures:  # drawn here while the workers run the other parts
                for name in cfg.designs:
                    fname = f"strength_{_slug(name)}_{opt}.png"
                    png = strength_figure(
                        out_dir / fname, f"{name}, {opt}", designs[name], runs[name][opt], val.theories[name]
                    )
                    if png is not None:
                        figures.append((f"{name}, {opt}", png))
        results["alternatives"] = {}
        for (rule, opt), fut in alts.items():
            alt = fut.result()
            results["alternatives"].setdefault(rule, {})[opt] = {
                "status": alt.status,
                "message": alt.message,
                "summary": alt.summary,
                "alpha": {r["design"]: r["alpha"] for r in alt.rows},
                "table": alt.table(),
            }
            log(f"\n{opt}, alpha rule {rule!r}:\n{alt.table()}")
        val_s = time.perf_counter() - t_val
        for name in cfg.designs:
            results["geometry"][name] = model_input_geometry(
                [r for o in cfg.optimizers for r in runs[name][o]], designs[name]
            ).as_dict()
        t_ref = time.perf_counter()
        results["reference_gf"] = {n: fut.result() for n, fut in refs.items()}
        ref_s = time.perf_counter() - t_ref
    results["stats"] = {
        "wall_time_s": time.perf_counter() - start,
        "train_s": train_s,
        "calibrate_s": cal_s,
        "validate_s": val_s,
        "reference_s": ref_s,
        "workers": cfg.workers,
        "cpu_s": _cpu_s() - cpu0,
    }
    results["markdown"] = markdown(results)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "validation.json", results)
        atomic_write_bytes(out_dir / "validation.md", results["markdown"].encode())
        atomic_write_bytes(out_dir / "report.html", report_html(results, figures).encode())
    return results


def _cpu_s() -> float:
    """CPU seconds of this process and of its finished worker processes."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows: this process only
        return time.process_time()
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
