"""``ufm predict CONFIG [--out FILE]``: predicted phase times of a (modified) UFM described by a config file.

The config names a design and the keyword arguments of :class:`~ufmtheory.models.ModifiedUFM` and of
:func:`~ufmtheory.analysis.phases.predict_phases` (schema: :data:`SCHEMA`); they are checked by those
constructors themselves. Prints one :meth:`~ufmtheory.analysis.phases.Phases.table` per Gram and, with
``--out``, writes the phases as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import math
from typing import Any

from ufmtheory._validate import integer
from ufmtheory.algebra.schemes import factorial_scheme, hierarchical_scheme
from ufmtheory.analysis.phases import predict_phases
from ufmtheory.cli._common import (
    CLIError,
    add_config_command,
    add_out_argument,
    check_out,
    config_from_args,
    design_from_spec,
    design_kind_and_arguments,
    require_design,
)
from ufmtheory.models import ModifiedUFM
from ufmtheory.report import design_label, write_json
from ufmtheory.solvers.reduced import MATERIALISE_MAX_K, ReducedProblem

__all__ = ["SCHEMA", "add_parser", "run", "build_problem"]

SCHEMA = """\
{
  "design": {"kind": "factorial", "sizes": [3, 3]}
            | {"kind": "hierarchical", "depth": 2, "branching": 3},
  "model": {                 # keyword arguments of ufmtheory.ModifiedUFM (all optional)
    "alpha": 1.0,            # weight of the shared attribute path (>= 0; 0 with beta = 1: standard UFM)
    "beta": 1.0,             # weight of the per-context path (>= 0)
    "ridge": "H",            # "H" (penalty on the features E X~) or "E" (on the embeddings E)
    "lam_W": 0.001,          # ridge on W (>= 0)
    "lam_H": 0.001,          # ridge on the features (ridge "H" only)   | "lam_E" (ridge "E" only)
    "normalize": null,       # optional: column-normalisation radius r > 0
    "dim": 9                 # optional feature dimension (default K)
  },
  "which": "both",           # optional: "H", "W" or "both"
  # optional keyword arguments of ufmtheory.analysis.predict_phases (shown with their defaults):
  OPTIONS
}
The same keys work in a TOML file (CONFIG ending in .toml; leave out the null entries).
Designs with K > 4096 contexts are handled by the reduced ODE alone (no K x K design is built)."""
"""The config schema of ``ufm predict`` (``#`` comments are documentation, not JSON)."""

# The options are predict_phases's own keyword arguments: listed from its signature, so they cannot drift.
_OPTIONS = {
    name: p.default
    for name, p in inspect.signature(predict_phases).parameters.items()
    if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in ("which", "min_strength")
}
_ITEMS = [f'"{k}": {f"{v:g}" if isinstance(v, float) else json.dumps(v)}' for k, v in _OPTIONS.items()]
SCHEMA = SCHEMA.replace(
    "OPTIONS", ",\n  ".join(", ".join(_ITEMS[i : i + 3]) for i in range(0, len(_ITEMS), 3))
)

_WHICH = {"H": ("H",), "W": ("W",), "both": ("H", "W")}
_REDUCED_KEYS = ("alpha", "beta", "ridge", "lam_W", "lam_H", "lam_E", "normalize")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = add_config_command(
        subparsers,
        "predict",
        help="predicted phase times of the problem in a config file",
        description="Predict the phase times (onset, peak, collapse, ETF time) of a (modified) UFM.",
        schema=SCHEMA,
    )
    add_out_argument(parser, "also write the phases as JSON to this file")
    return parser


def _is_large(kind: str, kwargs: dict[str, Any]) -> bool:
    """True when the spec is well formed and has more than MATERIALISE_MAX_K contexts (no K needed)."""

    def ints(*values: Any) -> bool:
        return all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values)

    limit = math.log(MATERIALISE_MAX_K)
    if kind == "factorial":
        sizes = kwargs.get("sizes")
        return isinstance(sizes, tuple) and ints(*sizes) and sum(math.log(a) for a in sizes) > limit
    depth, branching = kwargs.get("depth"), kwargs.get("branching")
    if not (isinstance(depth, int) and isinstance(branching, int) and ints(depth, branching)):
        return False
    return depth * math.log(branching) > limit


def build_problem(cfg: dict[str, Any]) -> tuple[ModifiedUFM | ReducedProblem, str]:
    """The problem of a ``ufm predict`` config and its name in words.

    Small designs: ``ModifiedUFM(design, dim=K, **model)``. Designs with more than ``MATERIALISE_MAX_K``
    contexts: the reduced problem on the design's association scheme (no K×K array).
    """
    kind, kwargs = design_kind_and_arguments(cfg.get("design"))
    model = cfg.get("model", {})
    if not isinstance(model, dict):
        raise CLIError(
            "'model' must be an object of ModifiedUFM keyword arguments (see `ufm predict --schema`)"
        )
    model = dict(model)
    dim = model.pop("dim", None)
    if _is_large(kind, kwargs):
        try:
            sch = factorial_scheme(kwargs["sizes"]) if kind == "factorial" else hierarchical_scheme(**kwargs)
        except (TypeError, ValueError) as exc:
            raise CLIError(f"design: {exc}") from None
        if cfg.get("method") == "full":
            raise CLIError(
                f"method 'full' needs a K x K design; K = {sch.K} > {MATERIALISE_MAX_K}: use 'reduced'"
            )
        if dim is not None and integer("model.dim", dim, low=1) < sch.K - 1:
            raise CLIError(f"model.dim = {dim} < K - 1 = {sch.K - 1}: the reduced ODE needs dim >= K - 1")
        # The model keys are ModifiedUFM's keyword arguments, with its defaults (alpha = beta = 1).
        defaults = {f.name: f.default for f in dataclasses.fields(ModifiedUFM) if f.name in _REDUCED_KEYS}
        try:
            problem: ModifiedUFM | ReducedProblem = ReducedProblem.from_parts(sch, **{**defaults, **model})
        except (TypeError, ValueError) as exc:
            raise CLIError(f"model: {exc}") from None
        label = design_label({"kind": sch.kind, "K": sch.K, **sch.params})
    else:
        design = design_from_spec(cfg.get("design"))
        try:
            problem = ModifiedUFM(design, dim=design.m if dim is None else dim, **model)
        except (TypeError, ValueError) as exc:
            raise CLIError(f"model: {exc}") from None
        label = design_label(design.summary())
    meta = problem.describe() if isinstance(problem, ModifiedUFM) else dict(problem.meta)
    lam = "lam_H" if meta.get("ridge", "H") == "H" else "lam_E"
    words = ", ".join(
        f"{k}={meta[k]:g}" for k in ("alpha", "beta", "lam_W", lam, "normalize") if meta.get(k) is not None
    )
    return problem, f"{label}, modified UFM ridge {meta.get('ridge', 'H')}, {words}"


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args, "predict", SCHEMA)
    if cfg is None:
        return 0
    out = args.out
    check_out(out, "file")
    require_design(cfg, "predict")
    which = cfg.get("which", "both")
    if which not in _WHICH:
        raise CLIError(f"which must be 'H', 'W' or 'both', got {which!r}")
    problem, name = build_problem(cfg)
    options = {k: v for k, v in cfg.items() if k not in ("design", "model", "which")}
    phases = {}
    for w in _WHICH[which]:
        try:
            phases[w] = predict_phases(problem, which=w, **options)
        except TypeError as exc:
            raise CLIError(f"{exc} (see `ufm predict --schema`)") from None
    print(f"ufm predict: {name}")
    for w, ph in phases.items():
        detail = "" if ph.ok else f" ({ph.message})"
        print(f"\n{w} ({'contexts' if w == 'H' else 'labels'}): {ph.method}, status {ph.status}{detail}")
        print(ph.table())
    if out is not None:
        write_json(
            out, {"config": cfg, "problem": name, "phases": {w: p.as_dict() for w, p in phases.items()}}
        )
        print(f"\nwrote {out}")
    return 0 if all(p.ok for p in phases.values()) else 1
