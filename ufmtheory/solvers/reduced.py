"""The reduced flow on the association-scheme coefficients: :class:`ReducedProblem`, :func:`reduced_solve`
(-> :class:`ReducedSolution`, whose ``trajectory`` is the Gram :class:`~ufmtheory.Trajectory`),
:func:`initial_coefficients` and :func:`aligned_full_init`."""

from __future__ import annotations

import collections
import functools
import math
import time
from collections.abc import Mapping, MutableSequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ufmtheory import _validate
from ufmtheory._results import ResultMixin, finish, make_stats
from ufmtheory.algebra.schemes import AssociationScheme, scheme
from ufmtheory.algebra.structured import GramTooLargeError, StructuredGrams
from ufmtheory.models import UFM, ModifiedUFM
from ufmtheory.solvers._frontend import (
    DEFAULT_MAX_EVALS,
    DEFAULT_SCALE,
    aligned_coefficients,
    check_max_evals,
    check_method,
    check_t1,
    check_tolerances,
    dense_snapshots,
    integrate,
    resolve_saveat,
)
from ufmtheory.solvers.normalised_limit import exact_scale, late_limit
from ufmtheory.solvers.reduced_rhs import for_scheme, offdiag_softmax
from ufmtheory.trajectory import Trajectory

__all__ = [
    "ReducedProblem",
    "ReducedSolution",
    "reduced_solve",
    "initial_coefficients",
    "aligned_full_init",
    "feature_coefficients",
    "MATERIALISE_MAX_K",
]

MATERIALISE_MAX_K = 4096
"""Largest K for which :func:`reduced_solve` materialises dense K×K Grams by default (above it, or when the
Gram stacks would exceed 2 GiB, the Trajectory holds :class:`~ufmtheory.trajectory.StructuredGrams`)."""

_MATERIALISE_MAX_BYTES = 2 * 1024**3  # both Gram stacks together
_LATE_STEPS = 2000  # integrator steps kept to find a normalised ridge flow's late limit (late_limit)
# Above this decay rate × time the ridge makes the late flow stiff: explicit DOP853 then needs ~rate·t/6
# steps, and LSODA (Adams, switching to BDF) is 3-4x faster at equal or better accuracy on the grids of
# benchmarks/bench_reduced.py (rate·t = 70..5000: 1.5-4.5k vs 3.4-20k evaluations, errors ~3e-8 vs up to 6e-7
# against a Radau rtol=1e-13 reference). Unregularised flows stay non-stiff in log-time: DOP853.
_STIFF = 10.0


@dataclass(frozen=True, eq=False)
class ReducedProblem:
    """The data the reduced flow needs, without the K×K design (so K = 10⁶ is fine).

    Attributes:
        scheme: the association scheme.
        kappa: (n_S,) kernel eigenvalues ``κ_S`` (all 1 for the standard UFM).
        ridge: ``"H"`` or ``"E"``.
        lam_W: classifier ridge. lam_X: ``λ_H`` (ridge H, on the pre-normalisation features) or ``λ_E``
            (ridge E).
        meta: description for the Trajectory.
        normalize: ``None`` or the radius ``r > 0`` of the column normalisation ``H = r H_raw/‖·‖``.
    """

    scheme: AssociationScheme
    kappa: np.ndarray
    ridge: str = "H"
    lam_W: float = 0.0
    lam_X: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)
    normalize: float | None = None

    def __post_init__(self) -> None:
        kappa = np.asarray(self.kappa, dtype=np.float64)
        if kappa.shape != (self.scheme.n_S,) or np.any(kappa < 0) or not np.all(np.isfinite(kappa)):
            raise ValueError(f"kappa must be (n_S,) = ({self.scheme.n_S},) finite values >= 0")
        if self.ridge not in ("H", "E"):
            raise ValueError(f"ridge must be 'H' or 'E', got {self.ridge!r}")
        kappa.setflags(write=False)
        object.__setattr__(self, "kappa", kappa)
        object.__setattr__(self, "lam_W", _validate.nonnegative("lam_W", self.lam_W))
        object.__setattr__(self, "lam_X", _validate.nonnegative("lam_X", self.lam_X))
        if self.normalize is not None:
            object.__setattr__(self, "normalize", _validate.positive("normalize", self.normalize))

    @classmethod
    def from_parts(
        cls,
        scheme: AssociationScheme,
        *,
        alpha: float = 0.0,
        beta: float = 1.0,
        ridge: str = "H",
        lam_W: float = 0.0,
        lam_H: float = 0.0,
        lam_E: float = 0.0,
        normalize: float | None = None,
    ) -> ReducedProblem:
        """Modified-UFM parameters on a scheme (``alpha=0, beta=1, ridge="H"``: the standard UFM)."""
        alpha = _validate.real("alpha", alpha, low=0.0, high=1e100)
        beta = _validate.real("beta", beta, low=0.0, high=1e100)
        ridge = _validate.choice("ridge", ridge, ("H", "E"))
        lam_H = _validate.nonnegative("lam_H", lam_H)
        lam_E = _validate.nonnegative("lam_E", lam_E)
        if (ridge == "H" and lam_E) or (ridge == "E" and lam_H):
            raise ValueError("use lam_H with ridge='H' and lam_E with ridge='E'")
        meta = {
            "model": "ReducedModifiedUFM",
            "alpha": alpha,
            "beta": beta,
            "ridge": ridge,
            "lam_W": lam_W,
            "lam_H": lam_H,
            "lam_E": lam_E,
            "normalize": normalize,
            "scheme": {"kind": scheme.kind, **scheme.params, "K": scheme.K},
        }
        kappa = scheme.kernel_eigenvalues(alpha, beta)
        return cls(scheme, kappa, ridge, lam_W, lam_H or lam_E, meta, normalize)

    @classmethod
    def from_problem(cls, problem: UFM | ModifiedUFM) -> ReducedProblem:
        """From a :class:`~ufmtheory.UFM` or :class:`~ufmtheory.ModifiedUFM` (any ``normalize``); a subclass
        (e.g. :class:`~ufmtheory.analysis.deep_context.DeepContextUFM`) may change the loss, so it is refused
        (``ValueError``) rather than reduced as its base class."""
        kind = type(problem).__name__
        if type(problem) not in (UFM, ModifiedUFM) and isinstance(problem, UFM):
            raise ValueError(
                f"exact reduction needs a UFM or ModifiedUFM itself, got the subclass {kind}"
                " (its loss may differ from the base class's); integrate the flow (ut.gradient_flow)"
            )
        if isinstance(problem, ModifiedUFM):
            sch = scheme(problem.design)
            kappa = sch.kernel_eigenvalues(problem.alpha, problem.beta)
            lam_X = problem.lam_H if problem.ridge == "H" else problem.lam_E
            return cls(sch, kappa, problem.ridge, problem.lam_W, lam_X, problem.describe(), problem.normalize)
        if isinstance(problem, UFM):
            sch = scheme(problem.design)
            return cls(sch, np.ones(sch.n_S), "H", problem.lam_W, problem.lam_H, problem.describe())
        raise TypeError(f"problem must be a UFM, ModifiedUFM or ReducedProblem, got {type(problem).__name__}")


@dataclass(frozen=True, eq=False, kw_only=True)
class ReducedSolution(ResultMixin):
    """Coefficient trajectories of the reduced flow.

    Attributes:
        ts: (T,) saved gradient-flow times.
        w, h: (T, n_S) coefficients ``w_S(t)``, ``h_S(t)`` of ``W`` and of the features ``H`` (after the
            normalisation, if any); columns in ``scheme.labels`` order.
        loss: (T,) objective values.
        scheme: the association scheme.
        problem: the :class:`ReducedProblem` solved.
        trajectory: the :class:`~ufmtheory.Trajectory` of the Grams ``Σ h_S² P_S``, ``Σ w_S² P_S``: dense
            arrays for small K, :class:`~ufmtheory.trajectory.StructuredGrams` (coefficients + scheme) for
            large K or when asked (``structured=True``); same status, message and stats.
        h_raw: (T, n_S) coefficients ``a_S`` of the pre-normalisation features ``E X̃`` (the integrated
            state; equal to ``h`` without normalisation).
        status: ``"ok"``, ``"max_evals"``, ``"nonfinite"`` or ``"failed"`` (then ``ts`` ends where it
            stopped).
        message: why it stopped.
        stats: ``n_evals``, ``wall_time_s``, ``saved``, tolerances, ``n_S``, ``n_r``, ``K``.
        method: the scipy integrator.
    """

    ts: np.ndarray
    w: np.ndarray
    h: np.ndarray
    loss: np.ndarray
    scheme: AssociationScheme
    problem: ReducedProblem
    trajectory: Trajectory
    h_raw: np.ndarray
    status: str = "ok"
    message: str = ""
    stats: dict[str, Any] = field(default_factory=dict)
    method: str = ""

    def __post_init__(self) -> None:
        self._check_result()

    @property
    def gram_H_coeffs(self) -> np.ndarray:
        """(T, n_S) coefficients ``h_S²`` of ``HᵀH``."""
        return self.h**2

    @property
    def gram_W_coeffs(self) -> np.ndarray:
        """(T, n_S) coefficients ``w_S²`` of ``WWᵀ``."""
        return self.w**2

    @property
    def logit_coeffs(self) -> np.ndarray:
        """(T, n_S) coefficients ``ℓ_S = w_S h_S`` of the logits."""
        return self.w * self.h


def _as_reduced(problem: Any) -> ReducedProblem:
    return problem if isinstance(problem, ReducedProblem) else ReducedProblem.from_problem(problem)


def _coeff_vector(sch: AssociationScheme, name: str, c: Any) -> np.ndarray:
    if isinstance(c, Mapping):
        out = np.zeros(sch.n_S)
        for label, value in c.items():
            out[sch.index(label)] = _validate.real(f"{name}[{label!r}]", value)
    else:
        out = _validate.float_array(name, c, finite=False).copy()
        if out.shape != (sch.n_S,):
            raise ValueError(f"{name} must be a dict label -> value or an array of n_S = {sch.n_S} entries")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} contains NaN or inf")
    return out


def initial_coefficients(
    problem: ReducedProblem,
    init: Any = None,
    scale: float = DEFAULT_SCALE,
    init_ratio: str = "balanced",
    *,
    on_sphere: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Starting coefficients ``(w0, h0)``, each ``(n_S,)``, of the reduced flow.

    Args:
        problem: the :class:`ReducedProblem`.
        init: ``None`` or ``"aligned"``: :func:`~ufmtheory.solvers._frontend.aligned_coefficients` at
            ``scale`` (``w_S = sqrt(scale)``, ``h_S = sqrt(κ_S) w_S``: the Grams of
            ``init.aligned(problem, scale)``); or explicit ``(w0, h0)``, each a dict ``label -> value`` or an
            ``(n_S,)`` array (with ``normalize`` ``h0`` are the raw coefficients of ``E X̃``).
        scale: size of the starting label Gram (> 0), for the aligned start.
        init_ratio: ``"balanced"`` (``h_S = sqrt(κ_S) w_S``) or ``"equal"`` (``h_S = w_S``); aligned
            start only.
        on_sphere: with ``problem.normalize = r``, rescale the raw features of the aligned start onto the
            sphere of radius ``r`` (the normalised flow conserves ``‖E‖`` and moves H at a rate
            ``∝ (r/‖E x̃_j‖)²``, so tiny raw features are a stiff, arbitrarily fast start).
    """
    sch = problem.scheme
    if isinstance(init, str):
        _validate.choice("init", init, ("aligned",))
        init = None
    if init is not None:
        if not isinstance(init, tuple | list) or len(init) != 2:
            raise TypeError("init must be None, 'aligned' or a pair (w0, h0) of coefficient vectors")
        w0, h0 = (_coeff_vector(sch, n, c) for n, c in zip(("w0", "h0"), init, strict=True))
    else:
        w0, h0 = aligned_coefficients(problem.kappa, scale, init_ratio)
        if on_sphere and problem.normalize is not None:
            ranks = np.array(sch.ranks, dtype=np.float64)
            col = math.sqrt(float((h0**2) @ ranks) / sch.K)
            if col > 0:
                h0 = h0 * (problem.normalize / col)
    if not (np.all(np.isfinite(w0 * w0)) and np.all(np.isfinite(h0 * h0))):
        raise ValueError(
            "the initial coefficients are too large (their squares overflow): use a smaller scale"
        )
    bad = (problem.kappa == 0) & (h0 != 0)
    if np.any(bad):
        raise ValueError(f"h0 must be 0 on modes with κ_S = 0 (E X̃ cannot reach them): {np.flatnonzero(bad)}")
    if problem.normalize is not None and not np.any(h0 != 0):
        raise ValueError(
            "with normalize, h0 (the raw features E X̃) must not be 0: columns cannot be normalised"
        )
    return w0, h0


def feature_coefficients(scheme: AssociationScheme, a: np.ndarray, radius: float | None) -> np.ndarray:
    """Coefficients ``h_S = r a_S / n`` of the normalised features from raw ones ``a: (..., n_S)``, with the
    common column norm ``n = sqrt(Σ_S m_S a_S² / K)`` (``a`` itself when ``radius`` is ``None``)."""
    a = np.asarray(a, dtype=np.float64)
    if radius is None:
        return a
    ranks = np.array(scheme.ranks, dtype=np.float64)
    norm = np.sqrt((a**2) @ ranks / scheme.K)
    return radius * a / norm[..., None]


def _stiffness(rp: ReducedProblem) -> float:
    """Largest linear decay rate of the coefficients (the ridge terms), per unit time."""
    rate_h = rp.lam_X * float(rp.kappa.max()) if rp.ridge == "H" else rp.lam_X
    return max(rp.lam_W, rate_h)


def reduced_solve(
    problem: UFM | ModifiedUFM | ReducedProblem,
    t1: float,
    *,
    init: Any = None,
    scale: float = DEFAULT_SCALE,
    init_ratio: str = "balanced",
    saveat: Any = None,
    method: str = "auto",
    rtol: float = 1e-10,
    atol: float = 1e-12,
    structured: bool | None = None,
    max_evals: int | None = DEFAULT_MAX_EVALS,
    dense_output: bool = False,
    throw: bool = False,
) -> ReducedSolution:
    """Integrate the exact reduced flow on the scheme coefficients ``w_S, h_S`` from 0 to ``t1``.

    The one reduced solver: the result holds the coefficients and, in ``.trajectory``, the Gram
    :class:`~ufmtheory.Trajectory` (what :func:`ufmtheory.gradient_flow` returns for the full flow). The
    integration runs in log-time ``s = ln(1 + t)`` (as :func:`ufmtheory.gradient_flow`), so steps grow
    with ``ln t1``.

    Args:
        problem: a :class:`~ufmtheory.UFM`, :class:`~ufmtheory.ModifiedUFM` (with or without ``normalize``)
            on a factorial/hierarchical one-hot design, or a :class:`ReducedProblem` (no K×K design needed).
        t1: final gradient-flow time (> 0).
        init: ``None``/``"aligned"`` (the aligned start at ``scale``: the same Grams as
            ``gradient_flow(problem, t1, init="aligned", scale=scale)``), or explicit ``(w0, h0)``, each a
            dict ``label -> value`` or an ``(n_S,)`` array (with ``normalize``, ``h0`` are the raw
            coefficients of ``E X̃``, as in :func:`aligned_full_init`).
        scale: size of the starting label Gram, ``w_S(0)² = scale`` for every ``S ≠ ∅`` (default 1e-6).
        init_ratio: aligned start only: ``"balanced"`` (``h_S = sqrt(κ_S) w_S``; ridge on E keeps it) or
            ``"equal"`` (``h_S = w_S``).
        saveat: as in :func:`ufmtheory.gradient_flow` (None: ``log_grid(t1)``; int n; or times).
        method: a scipy ``solve_ivp`` method, or ``"auto"`` (default): DOP853, unless the ridge makes the
            system stiff (``max(λ_W, λ_H max κ_S or λ_E) (1 + t1) > 10``; ridge on H with large K has
            ``κ_S ~ K/A_f``) or the features are normalised (the raw norm shrinks, tangential rates grow
            like its inverse square), then LSODA, which switches to an implicit method and stays fast.
        rtol, atol: integrator tolerances, in (0, 1).
        structured: store the trajectory's Grams as
            :class:`~ufmtheory.trajectory.StructuredGrams` (coefficients + scheme, nothing K×K) rather than
            dense arrays. ``None`` (default): structured when ``K > 4096`` or the two dense Gram stacks
            would exceed 2 GiB.
        max_evals: stop with status ``"max_evals"`` after this many right-hand-side evaluations (default
            200 000; ``None``: no cap).
        dense_output: keep the integrator's continuous output as ``trajectory.dense``, so that
            ``trajectory.at(t)`` is accurate to the solver's tolerance between saved times (instead of the
            grid's cubic interpolation); in memory only, about ``16 n_S`` floats per step. Not kept for
            normalised flows with a ridge on E (their raw scale is corrected after the solve)
            nor for runs that did not finish ("ok").
        throw: raise :class:`~ufmtheory._results.SolverError` instead of returning a result that is not ok.

    Returns:
        :class:`ReducedSolution`; a non-finite state ends the solve with status ``"nonfinite"``.
    """
    rp = _as_reduced(problem)
    if isinstance(problem, UFM):
        K = problem.design.m
        if problem.dim < K - 1:
            raise ValueError(f"the reduction needs dim >= K - 1 = {K - 1} (aligned init), got {problem.dim}")
    t1 = check_t1(t1)
    method = check_method(method)
    rtol, atol = check_tolerances(rtol, atol)
    max_evals = check_max_evals(max_evals)
    dense_output = _validate.flag("dense_output", dense_output)
    if structured is not None:
        structured = _validate.flag("structured", structured)
    ts = resolve_saveat(saveat, t1)
    sch = rp.scheme
    if method == "auto":
        # Normalised features: the ridge (or the preconditioned tangential flow) shrinks the raw norm n while
        # the tangential rates grow like 1/n², so the system turns stiff; LSODA detects and handles that.
        stiff = rp.normalize is not None or _stiffness(rp) * (1.0 + t1) > _STIFF
        method = "LSODA" if stiff else "DOP853"
    w0, h0 = initial_coefficients(rp, init, scale, init_ratio)

    radius = rp.normalize
    # The hand-written numpy right-hand side (solvers/reduced_rhs.py; the sympy derivation in
    # solvers/symbolic.py is its independent check): no sympy import, ~4x cheaper per evaluation.
    fn = for_scheme(sch, rp.ridge, radius is not None)
    kappa, lam_W, lam_X, n_S = rp.kappa, rp.lam_W, rp.lam_X, sch.n_S
    rhs, _ = fn.log_time(kappa, lam_W, lam_X, radius)

    start = time.perf_counter()
    s1 = math.log1p(t1)
    s_eval = np.clip(np.log1p(ts), 0.0, s1)
    saved: list[np.ndarray] = []
    # A normalised flow with a ridge may stop stiff between save times: the step ends after the last save
    # are where its late limit is looked for (normalised_limit.late_limit), whatever the save grid.
    # Only the last _LATE_STEPS steps are kept for that (bounded memory on a long run).
    segments: MutableSequence[tuple[float, float, Any]] | None = None
    if dense_output:
        segments = []
    elif radius is not None and lam_X > 0:
        segments = collections.deque(maxlen=_LATE_STEPS)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # reported as status "nonfinite"
        status, message, n_evals = integrate(
            rhs,
            np.concatenate([w0, h0]),
            s1,
            s_eval,
            lambda y: saved.append(np.array(y, dtype=np.float64)),
            method=method,
            rtol=rtol,
            atol=atol,
            max_evals=max_evals,
            segments=segments,
        )
        wall = time.perf_counter() - start
        Y = np.array(saved) if saved else np.concatenate([w0, h0])[None, :]
        limit: dict[str, Any] = {}
        anchor: np.ndarray | None = None  # where an adiabatic tail starts
        if radius is not None and rp.ridge == "E" and lam_X > 0 and saved:  # ‖E‖ = e^{-λt}‖E(0)‖ exactly
            limit["scale_correction"] = exact_scale(
                Y, ts, h0, kappa, np.array(sch.ranks, dtype=np.float64), lam_X
            )
        if status != "ok" and radius is not None and lam_X > 0 and saved:
            # Normalised features with a ridge turn infinitely stiff late (docs: modified_ufm.md).
            steps = ((math.expm1(s), f(s)) for _, s, f in reversed(segments or []))  # latest first
            status, message, Y, more, anchor = late_limit(
                fn, kappa, lam_W, lam_X, radius, ts, Y, status, message, steps
            )
            limit.update(more)
        T = Y.shape[0]
        w, h_raw = Y[:, :n_S], Y[:, n_S:]
        h = feature_coefficients(sch, h_raw, radius)
        if anchor is not None:  # the raw scale may underflow in the tail; the direction is fixed
            h[limit["saved_integrated"] :] = feature_coefficients(sch, anchor[None, n_S:], radius)[0]
        loss = np.array(
            [
                offdiag_softmax((w[i] * h[i]) @ fn.table, fn.counts)[1]
                + fn.penalty(w[i], h_raw[i], kappa, lam_W, lam_X)
                for i in range(T)
            ]
        )
        finite = all(np.all(np.isfinite(x)) for x in (w * w, h * h, loss))  # the Grams are the squares
    if status == "ok" and not finite:
        status, message = "nonfinite", "non-finite coefficients or loss at a saved time"
    stats = make_stats(
        n_evals, wall, saved=T, log_time=True, rtol=rtol, atol=atol, n_S=n_S, n_r=sch.n_r, K=sch.K
    )
    if limit:
        stats["late_limit"] = limit
    if structured is None:
        structured = sch.K > MATERIALISE_MAX_K or 2 * T * sch.K**2 * 8 > _MATERIALISE_MAX_BYTES
    if structured:
        gram_H: Any = StructuredGrams(h**2, sch)
        gram_W: Any = StructuredGrams(w**2, sch)
    else:
        if 2 * T * sch.K**2 * 8 > _MATERIALISE_MAX_BYTES:
            raise GramTooLargeError(
                f"dense Grams for K = {sch.K} at {T} saved times need {2 * T * sch.K**2 * 8 / 2**30:.1f} GiB"
                " (limit 2 GiB): use structured=True (or None) or fewer saved times"
            )
        rel = sch.relation_matrix()
        with np.errstate(over="ignore", invalid="ignore"):  # non-finite Grams carry status "nonfinite"
            gram_H, gram_W = sch.materialise(h**2, rel), sch.materialise(w**2, rel)
    dense = None
    if isinstance(segments, list) and segments and status == "ok" and not limit:
        as_array = None if structured else functools.partial(sch.materialise, rel=sch.relation_matrix())
        dense = dense_snapshots(segments, True, fn.snapshot(kappa, lam_W, lam_X, radius, as_array))
    traj = Trajectory(
        ts=ts[:T],
        gram_H=gram_H,
        gram_W=gram_W,
        loss=loss,
        status=status,
        message=message,
        stats=dict(stats),
        time_unit="gf",
        method=f"reduced-{method}",
        dense=dense,
        meta={
            **rp.meta,
            "reduced": True,
            "scheme": sch.describe(),
            "scheme_labels": [list(S) if isinstance(S, tuple) else S for S in sch.labels],
        },
    )
    solution = ReducedSolution(
        ts=ts[:T],
        w=w,
        h=h,
        loss=loss,
        scheme=sch,
        problem=rp,
        status=status,
        message=message,
        stats=stats,
        method=method,
        trajectory=traj,
        h_raw=h_raw,
    )
    return finish(solution, throw)


def aligned_full_init(problem: UFM | ModifiedUFM, w0: Any, h0: Any) -> dict[str, np.ndarray]:
    """Full parameters whose flow is exactly the reduced flow from coefficients ``w0, h0``.

    ``W = (Σ w_S P_S) R`` and ``H = Rᵀ Σ h_S P_S`` with ``R = [I_K 0]: (K, d)``; for the modified UFM
    ``E = Rᵀ (Σ h_S/κ_S P_S) X̃ᵀ`` (minimum norm, in the row space of X̃, so ``E X̃ = Rᵀ Σ h_S P_S``; with
    ``normalize`` these are the raw features, which :func:`reduced_solve` also takes as ``h0``).

    Args:
        problem: UFM or ModifiedUFM (any ``normalize``) with ``dim >= K``.
        w0, h0: dicts ``label -> value`` or ``(n_S,)`` arrays in ``scheme(problem.design).labels`` order.

    Returns:
        ``{"W": (K, d), "H": (d, K)}`` or ``{"W": (K, d), "E": (d, p + K)}``.
    """
    rp = _as_reduced(problem)
    sch = rp.scheme
    K, d = sch.K, problem.dim
    if d < K:
        raise ValueError(f"aligned_full_init needs dim >= K = {K}, got {d}")
    w0 = _coeff_vector(sch, "w0", w0)
    h0 = _coeff_vector(sch, "h0", h0)
    rel = sch.relation_matrix()
    W = np.zeros((K, d))
    W[:, :K] = sch.materialise(w0, rel)
    if not isinstance(problem, ModifiedUFM):
        H = np.zeros((d, K))
        H[:K] = sch.materialise(h0, rel)
        return {"W": W, "H": H}
    if np.any((rp.kappa == 0) & (h0 != 0)):
        raise ValueError("h0 must be 0 on modes with κ_S = 0")
    safe = np.where(rp.kappa > 0, rp.kappa, 1.0)
    E = np.zeros((d, problem.design.p + K))
    E[:K] = sch.materialise(h0 / safe, rel) @ problem.X_tilde.T
    return {"W": W, "E": E}
