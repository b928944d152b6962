"""One result convention for every solver and programme (the bottom floor: no package imports).

Every result type (``Trajectory``, ``ReducedSolution``, ``Equilibrium``, ``Phases``, ``LPResult``,
``RegularizedEndState``, ``ConvexResult``, ``ProxyGap``, ``RegularizationPath``) is a frozen, keyword-only
dataclass that mixes in :class:`ResultMixin` and carries

* ``status``: one word of :data:`STATUSES`;
* ``message``: a sentence for people (empty at construction means the fixed text of :data:`MESSAGES`);
* ``stats``: a dict whose keys ``n_evals`` (gradient / right-hand-side evaluations, iterations) and
  ``wall_time_s`` are always present, plus method-specific extras;
* ``.ok``: ``status == "ok"``.

Failure policy: a run that does not succeed *returns* its result with a status other than ``"ok"``; callers
who prefer exceptions pass ``throw=True`` and get a :class:`SolverError` (carrying the result) instead.
Bad input is never a status: it raises ``ValueError``/``TypeError`` before any work
(:mod:`ufmtheory._validate`).

Example:
    >>> from dataclasses import dataclass, field
    >>> @dataclass(frozen=True, kw_only=True)
    ... class Fit(ResultMixin):
    ...     x: float
    ...     status: str = "ok"
    ...     message: str = ""
    ...     stats: dict = field(default_factory=dict)
    ...     def __post_init__(self) -> None:
    ...         self._check_result()
    >>> r = Fit(x=1.0, status="max_evals", stats=make_stats(100, 0.5))
    >>> r.ok, r.message, r.stats["n_evals"]
    (False, 'stopped at the evaluation budget (max_evals) before finishing', 100)
    >>> finish(r, throw=True)
    Traceback (most recent call last):
    ...
    ufmtheory._results.SolverError: max_evals: stopped at the evaluation budget (max_evals) before finishing
"""

from __future__ import annotations

from typing import Any, TypeVar

__all__ = [
    "STATUSES",
    "MESSAGES",
    "SolverError",
    "ResultMixin",
    "check_status",
    "make_stats",
    "finish",
    "split_legacy_status",
]

STATUSES = (
    "ok",
    "max_evals",
    "nonfinite",
    "diverged",
    "inaccurate",
    "infeasible",
    "failed",
    "not_applicable",
)
"""The status vocabulary shared by every result."""

MESSAGES = {
    "ok": "finished as asked",
    "max_evals": "stopped at the evaluation budget (max_evals) before finishing",
    "nonfinite": "a NaN or an infinity appeared",
    "diverged": "the iterates grew without bound",
    "inaccurate": "finished, but the solver reports reduced accuracy",
    "infeasible": "the programme has no feasible point",
    "failed": "the solver gave up",
    "not_applicable": "the method does not apply to this input",
}
"""Fixed message of each status (used when a result is built with an empty ``message``)."""

STATS_KEYS = ("n_evals", "wall_time_s")
"""Keys present in every result's ``stats``."""


class SolverError(RuntimeError):
    """A run that did not succeed, raised with ``throw=True``; ``.result`` is the full result."""

    def __init__(self, result: Any) -> None:
        self.result = result
        super().__init__(f"{result.status}: {result.message}")


def check_status(status: Any) -> str:
    """``status`` itself if it is one of :data:`STATUSES`, else ``ValueError``."""
    if not isinstance(status, str) or status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    return status


def make_stats(n_evals: int | None, wall_time_s: float | None, **extra: Any) -> dict[str, Any]:
    """``{"n_evals": ..., "wall_time_s": ..., **extra}`` (the fixed keys first)."""
    return {
        "n_evals": None if n_evals is None else int(n_evals),
        "wall_time_s": None if wall_time_s is None else float(wall_time_s),
        **extra,
    }


def split_legacy_status(text: str) -> tuple[str, str]:
    """``(status, message)`` from a pre-0.2 free-text status (``"ok"``, ``"failed: ..."``, ``"optimal"``).

    Used to read files written before 0.2 and by callers that still build a status sentence: a text that
    names an evaluation cap becomes ``"max_evals"``, one that names a non-finite value ``"nonfinite"``, a
    requested early stop (``"stopped at step ..."``) ``"ok"``; any other text is ``"failed"`` with the text
    as its message.

    Example:
        >>> split_legacy_status("failed: max_evals=10 gradient evaluations reached")
        ('max_evals', 'max_evals=10 gradient evaluations reached')
        >>> split_legacy_status("optimal_inaccurate")
        ('inaccurate', '')
        >>> split_legacy_status("non-finite loss or Grams at step 3")
        ('nonfinite', 'non-finite loss or Grams at step 3')
    """
    if text in STATUSES:
        return text, ""
    if text == "optimal":
        return "ok", ""
    if text == "optimal_inaccurate":
        return "inaccurate", ""
    head, sep, rest = text.partition(":")
    if sep and head.strip() in STATUSES and head.strip() != "failed":
        return head.strip(), rest.strip()
    message = rest.strip() if sep and head.strip() == "failed" else text
    low = message.lower()
    if "max_evals" in low:
        return "max_evals", message
    if "non-finite" in low or "nonfinite" in low:
        return "nonfinite", message
    if low.startswith("stopped at step"):
        return "ok", message
    return "failed", message


class ResultMixin:
    """``.ok`` and the status / message / stats checks shared by the result dataclasses.

    A subclass declares ``status: str``, ``message: str = ""`` and ``stats: dict`` fields and calls
    :meth:`_check_result` from its ``__post_init__``.
    """

    status: str
    message: str
    stats: dict[str, Any]

    @property
    def ok(self) -> bool:
        """``status == "ok"``."""
        return self.status == "ok"

    def _check_result(self) -> None:
        check_status(self.status)
        if not isinstance(self.message, str):
            raise TypeError(f"message must be a string, got {type(self.message).__name__}")
        if not self.message:
            object.__setattr__(self, "message", MESSAGES[self.status])
        stats = dict(self.stats)
        for key in STATS_KEYS:
            stats.setdefault(key, None)
        object.__setattr__(self, "stats", stats)

    def raise_for_status(self) -> Any:
        """Return ``self`` when ``ok``, else raise :class:`SolverError` carrying it."""
        if not self.ok:
            raise SolverError(self)
        return self


R = TypeVar("R", bound=ResultMixin)


def finish(result: R, throw: bool) -> R:
    """The failure policy: return ``result``, or with ``throw=True`` raise :class:`SolverError` unless ok."""
    if throw and not result.ok:
        raise SolverError(result)
    return result
