"""The :class:`Claim` object and its results: a statement with validity conditions, checked on default cases
(:meth:`Claim.check`) or explored with hypothesis (:meth:`Claim.explore`, shrinking any counterexample)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Claim", "ClaimResult", "ExploreResult", "NotApplicable", "RunFailed"]


class NotApplicable(Exception):
    """Raised by a measurement when the computed case falls outside the claim (e.g. no saddle exists)."""


class RunFailed(Exception):
    """Raised by a measurement when a solver it relies on did not finish (its status and message)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _plain(value: Any) -> Any:
    """Python scalars/tuples instead of numpy types, so that ``repr`` is a reproducible literal."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(_plain(v) for v in value)
    return value


@dataclass(frozen=True, kw_only=True)
class ClaimResult:
    """The outcome of checking a claim on one case (or on its default cases).

    Attributes:
        claim: the claim's name.
        status: ``"ok"``, ``"failed"`` (a counterexample: the error exceeds the tolerance),
            ``"not_applicable"`` (outside the claim's validity conditions), ``"nonfinite"`` (the measured
            error is NaN/inf), or the status of a solver that did not finish.
        error: the measured error (NaN when not applicable); for several cases the worst one.
        tol: the claim's tolerance on ``error``.
        params: the full parameters of the case (empty for a set of default cases).
        message: what was measured, or why the case failed / does not apply.
        cases: per-case results when the default cases were run.
        stats: ``n_evals`` (cases run) and ``wall_time_s``.
        catalogued: whether the claim is in :data:`ufmtheory.testing.claims.CLAIMS` (how :meth:`call`
            names it).
    """

    claim: str
    status: str
    error: float
    tol: float
    params: dict[str, Any]
    message: str
    cases: tuple[ClaimResult, ...] = ()
    stats: dict[str, Any] = field(default_factory=dict)
    catalogued: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def call(self) -> str:
        """A Python expression that reruns this case: ``ufmtheory.testing.check(name, **params)`` for a
        claim of the catalogue, ``claim.check(**params)`` (``claim`` being your :class:`Claim`) otherwise."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        if self.catalogued:
            return f"ufmtheory.testing.check({self.claim!r}{', ' if args else ''}{args})"
        return f"claim.check({args})"

    def __str__(self) -> str:
        return f"{self.claim}: {self.status} (error {self.error:.3g}, tol {self.tol:.3g}) {self.message}"


@dataclass(frozen=True, kw_only=True)
class ExploreResult:
    """The outcome of exploring a claim with hypothesis.

    Attributes:
        claim: the claim's name.
        status: ``"ok"``, ``"failed"`` (see ``counterexample``), or ``"not_applicable"`` (hypothesis drew no
            case inside the validity conditions).
        examples: how many applicable cases were evaluated (shrinking included).
        worst_error: the largest error seen.
        tol: the claim's tolerance.
        counterexample: the shrunk failing case (its ``call()`` reproduces it), or None.
        message: a summary.
        stats: ``n_evals`` (cases evaluated, applicable or not) and ``wall_time_s``.
    """

    claim: str
    status: str
    examples: int
    worst_error: float
    tol: float
    counterexample: ClaimResult | None
    message: str
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _coerce(claim: str, name: str, value: Any, default: Any) -> Any:
    """Check a parameter against the type of its default (bad input raises before any work)."""
    if value is None:
        return None
    where = f"{claim}: parameter {name}"
    if isinstance(default, bool):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{where} must be a bool, got {value!r}")
        return bool(value)
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{where} must be an integer, got {value!r}")
        return int(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{where} must be a real number, got {value!r}")
        if not math.isfinite(float(value)):
            raise ValueError(f"{where} must be finite, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise TypeError(f"{where} must be a string, got {value!r}")
        return value
    if isinstance(default, tuple) or default is None:
        if isinstance(value, (list, tuple, np.ndarray)):
            return _plain(value)
        if default is None:
            return _plain(value)
        raise TypeError(f"{where} must be a tuple, got {value!r}")
    return value


@dataclass(frozen=True, kw_only=True)
class Claim:
    """A claim of the theory, with its statement, where the docs derive it, when it holds, and a check.

    Attributes:
        name: short identifier (``ufm check NAME``).
        statement: the claim in words and formulas.
        section: the docs page and section it comes from.
        conditions: the validity conditions (designs, ridges, regimes); outside them ``check`` returns
            status ``"not_applicable"`` and says which condition fails.
        tol: the largest error the claim tolerates (set from the conditioning of the measurement).
        base: every parameter with its default value.
        defaults: the default cases (overrides of ``base``) that ``check()`` runs without arguments.
        measure: ``measure(**params) -> (error, detail)``: runs the package and compares with the closed form
            written out independently.
        applicable: ``applicable(**params) -> reason or None``.
        space: ``space(hypothesis.strategies) -> strategy of override dicts`` for :meth:`explore`.
        catalogued: True for the claims of :data:`ufmtheory.testing.claims.CLAIMS` (rerun by name).
    """

    name: str
    statement: str
    section: str
    conditions: tuple[str, ...]
    tol: float
    base: Mapping[str, Any]
    defaults: tuple[Mapping[str, Any], ...]
    measure: Callable[..., tuple[float, str]] = field(repr=False)
    applicable: Callable[..., str | None] = field(repr=False)
    space: Callable[[Any], Any] = field(repr=False)
    catalogued: bool = False

    def _params(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(overrides) - set(self.base))
        if unknown:
            raise TypeError(
                f"{self.name}.check() got unknown parameter(s) {unknown}; it takes {list(self.base)}"
            )
        out = dict(self.base)
        for k, v in overrides.items():
            out[k] = _coerce(self.name, k, v, self.base[k])
        return out

    def _one(self, overrides: Mapping[str, Any]) -> ClaimResult:
        p = self._params(overrides)
        start = time.perf_counter()

        def result(status: str, error: float, message: str) -> ClaimResult:
            stats = {"n_evals": 1, "wall_time_s": time.perf_counter() - start}
            return ClaimResult(
                claim=self.name,
                status=status,
                error=error,
                tol=self.tol,
                params=p,
                message=message,
                stats=stats,
                catalogued=self.catalogued,
            )

        reason = self.applicable(**p)
        if reason is not None:
            return result("not_applicable", math.nan, f"outside the claim's validity conditions: {reason}")
        try:
            error, detail = self.measure(**p)
        except NotApplicable as exc:
            return result("not_applicable", math.nan, f"outside the claim's validity conditions: {exc}")
        except RunFailed as exc:
            return result(exc.status, math.nan, f"a solver did not finish: {exc.message}")
        except Exception as exc:  # a crash on a valid case is a counterexample too, reported, not raised
            return result("failed", math.nan, f"raised {type(exc).__name__}: {exc}")
        error = float(error)
        if not math.isfinite(error):
            return result("nonfinite", error, f"the measured error is not finite: {detail}")
        if error > self.tol:
            return result("failed", error, f"error {error:.3g} > tol {self.tol:.3g}: {detail}")
        return result("ok", error, detail)

    def check(self, **params: Any) -> ClaimResult:
        """Check the claim on one case (``params`` override :attr:`base`), or on :attr:`defaults` when no
        parameters are given.

        Returns:
            :class:`ClaimResult`; for the default cases the worst error, status ``"ok"`` only if every
            case passed, and the per-case results in ``cases``.

        Raises:
            TypeError, ValueError: an unknown parameter or a value of the wrong type.
        """
        if params:
            return self._one(params)
        start = time.perf_counter()
        cases = tuple(self._one(d) for d in self.defaults)
        bad = [c for c in cases if not c.ok]
        errors = [c.error for c in cases if math.isfinite(c.error)]
        worst = max(errors) if errors else math.nan
        status = bad[0].status if bad else "ok"
        message = (
            f"{len(bad)} of {len(cases)} default cases failed; first: {bad[0].message} [{bad[0].call()}]"
            if bad
            else f"{len(cases)} default cases, worst error {worst:.3g}"
        )
        stats = {"n_evals": len(cases), "wall_time_s": time.perf_counter() - start}
        return ClaimResult(
            claim=self.name,
            status=status,
            error=worst,
            tol=self.tol,
            params={},
            message=message,
            cases=cases,
            stats=stats,
            catalogued=self.catalogued,
        )

    def explore(self, examples: int = 10, *, shrink: bool = True) -> ExploreResult:
        """Search the claim's parameter space with hypothesis for a counterexample, shrinking it.

        Deterministic (``derandomize=True``, no example database): the same call gives the same result.

        Args:
            examples: hypothesis ``max_examples`` (>= 1).
            shrink: shrink a counterexample to a small one (costs extra evaluations).

        Raises:
            ImportError: hypothesis is not installed (``pip install 'ufmtheory[testing]'``).
        """
        if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
            raise ValueError(f"examples must be an integer >= 1, got {examples!r}")
        try:
            import hypothesis
            from hypothesis import strategies as st
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("Claim.explore needs hypothesis: pip install 'ufmtheory[testing]'") from exc
        start = time.perf_counter()
        seen: dict[str, Any] = {"applicable": 0, "evals": 0, "worst": 0.0, "fail": None}

        phases = [hypothesis.Phase.explicit, hypothesis.Phase.reuse, hypothesis.Phase.generate]
        if shrink:
            phases.append(hypothesis.Phase.shrink)

        @hypothesis.settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            phases=phases,
            verbosity=hypothesis.Verbosity.quiet,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        @hypothesis.given(self.space(st))
        def run(overrides: dict[str, Any]) -> None:
            seen["evals"] += 1
            res = self._one(overrides)
            if res.status == "not_applicable":
                hypothesis.reject()
            seen["applicable"] += 1
            if math.isfinite(res.error):
                seen["worst"] = max(seen["worst"], res.error)
            if not res.ok:
                seen["fail"] = res  # hypothesis replays the shrunk example last: this ends as the minimal one
                raise AssertionError(res.message)

        status, message = "ok", ""
        try:
            run()
        except AssertionError:
            status = "failed"
        except hypothesis.errors.Unsatisfiable:
            status, message = "not_applicable", "hypothesis drew no case inside the validity conditions"
        fail: ClaimResult | None = seen["fail"] if status == "failed" else None
        if fail is not None:
            message = f"counterexample ({fail.status}): {fail.message}; rerun: {fail.call()}"
        elif status == "ok":
            message = f"{seen['applicable']} cases, worst error {seen['worst']:.3g} (tol {self.tol:.3g})"
        return ExploreResult(
            claim=self.name,
            status=status,
            examples=seen["applicable"],
            worst_error=seen["worst"] if seen["applicable"] else math.nan,
            tol=self.tol,
            counterexample=fail,
            message=message,
            stats={"n_evals": seen["evals"], "wall_time_s": time.perf_counter() - start},
        )
