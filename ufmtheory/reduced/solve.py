"""Exact symmetric reductions of the (modified) UFM flow: association-scheme coefficients (THEORY.md s. 4).

For one-hot factorial and hierarchical designs with aligned initialisation, the logits, ``HᵀH`` and ``WWᵀ``
stay in the Bose-Mesner algebra of the design's association scheme, spanned by orthogonal projectors
``P_S``. Writing ``W = Σ w_S P_S``, ``H = Σ h_S P_S`` the flow becomes an ODE on ``2 n_S`` coefficients
whose right-hand side (derived with sympy in :mod:`ufmtheory.symbolic`) costs ``O(n_S n_r)`` per call,
independent of K: the 1000×1000 factorial design (K = 10⁶) has 4 projectors and 4 relation classes.

* Factorial sizes ``A_1..A_F``: ``P_S = ⊗_{f∈S}(I - J/A_f) ⊗_{f∉S} J/A_f`` for ``S ⊆ [F]``; relation of
  two contexts = the set of factors where they differ.
* Hierarchical depth D, branching b: ``P_0 = J/K``, ``P_l = Q_l - Q_{l-1}`` with ``Q_l`` the projector
  onto vectors constant on the leaves below each level-l node; relation = height of the lowest common
  ancestor above the leaves (0: same leaf).

Example:
    >>> import ufmtheory as ut
    >>> from ufmtheory.reduced import reduced_solve, scheme
    >>> prob = ut.ModifiedUFM(ut.designs.factorial((2, 3)), dim=6, alpha=1.0, beta=1.0, lam_W=1e-3,
    ...                       lam_H=1e-3)
    >>> scheme(prob.design).labels
    ((), (0,), (1,), (0, 1))
    >>> sol = reduced_solve(prob, 1e4, saveat=10)
    >>> sol.status, sol.w.shape, sol.trajectory.gram_H.shape
    ('ok', (11, 4), (11, 6, 6))

Large designs give a structured :class:`~ufmtheory.Trajectory` (Grams as coefficients on the projectors,
see :class:`~ufmtheory.trajectory.StructuredGrams`) whose metrics come from the coefficients:

    >>> rp = ReducedProblem.from_parts(factorial_scheme((1000, 1000)), alpha=1.0, beta=1.0)
    >>> traj = reduced_flow(rp, 1e6, saveat=20)
    >>> traj.structured, traj.gram_H.shape, traj.gram_H.coefficients.shape
    (True, (21, 1000000, 1000000), (21, 4))
    >>> m = traj.metrics(traj.scheme)
    >>> bool(m["semantic_strength"][-1] > 0.5)
    True
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.integrate import solve_ivp

from .designs import Design
from .models import UFM, ModifiedUFM, check_nonnegative
from .trajectory import GramTooLargeError, StructuredGrams, Trajectory, log_grid

if TYPE_CHECKING:  # sympy is imported only when a reduced flow is first compiled (fast package import)
    from .symbolic import CompiledReduced

__all__ = [
    "AssociationScheme",
    "ReducedProblem",
    "ReducedSolution",
    "scheme",
    "factorial_scheme",
    "hierarchical_scheme",
    "scheme_from_description",
    "reduced_solve",
    "reduced_flow",
    "aligned_full_init",
    "feature_coefficients",
    "MATERIALISE_MAX_K",
]

MATERIALISE_MAX_K = 4096
"""Largest K for which :func:`reduced_solve` materialises dense K×K Grams by default (above it, or when the
Gram stacks would exceed 2 GiB, the Trajectory holds :class:`~ufmtheory.trajectory.StructuredGrams`)."""

_MATERIALISE_MAX_BYTES = 2 * 1024**3  # both Gram stacks together
_METHODS = ("RK45", "DOP853", "RK23", "LSODA", "BDF", "Radau")
# Above this decay rate × time the ridge makes the late flow stiff: explicit DOP853 then needs ~rate·t/6
# steps, and LSODA (Adams, switching to BDF) is 3-4x faster at equal or better accuracy on the grids of
# benchmarks/bench_reduced.py (rate·t = 70..5000: 1.5-4.5k vs 3.4-20k evaluations, errors ~3e-8 vs up to 6e-7
# against a Radau rtol=1e-13 reference). Unregularised flows stay non-stiff in log-time: DOP853.
_STIFF = 10.0


@dataclass(frozen=True, eq=False)
class AssociationScheme:
    """A symmetric association scheme on K contexts in normal form (relation 0 is the identity).

    Attributes:
        kind: ``"factorial"`` or ``"hierarchical"``.
        params: ``{"sizes": (A_1, ..)}`` or ``{"depth": D, "branching": b}``.
        K: number of contexts (= labels).
        labels: (n_S,) projector labels: tuples of factors ``S`` (factorial) or levels ``l`` (hierarchy).
        ranks: (n_S,) ranks ``m_S``.
        relations: (n_r,) relation labels: tuples of differing factors, or LCA heights.
        counts: (n_r,) valencies ``n_r`` (number of i in relation r to a fixed j).
        exact_table: (n_S, n_r) entries ``P_S[r]`` as ``Fraction``.

    Example:
        >>> s = factorial_scheme((2, 3))
        >>> s.labels, s.ranks, s.counts
        (((), (0,), (1,), (0, 1)), (1, 1, 2, 2), (1, 1, 2, 2))
    """

    kind: str
    params: dict[str, Any]
    K: int
    labels: tuple[Any, ...]
    ranks: tuple[int, ...]
    relations: tuple[Any, ...]
    counts: tuple[int, ...]
    exact_table: tuple[tuple[Fraction, ...], ...]
    _table: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        table = np.array([[float(x) for x in row] for row in self.exact_table])
        table.setflags(write=False)
        object.__setattr__(self, "_table", table)
        if sum(self.ranks) != self.K or sum(self.counts) != self.K:
            raise ValueError(f"ranks and counts must each sum to K = {self.K}")

    @property
    def table(self) -> np.ndarray:
        """(n_S, n_r) float entries ``P_S[r]``."""
        return self._table

    @property
    def n_S(self) -> int:
        return len(self.labels)

    @property
    def n_r(self) -> int:
        return len(self.counts)

    def index(self, label: Any) -> int:
        """Position of a projector label (factorial labels may be given as any iterable of factors)."""
        if self.kind == "factorial" and not isinstance(label, int):
            label = tuple(sorted(label))
        try:
            return self.labels.index(label)
        except ValueError:
            raise KeyError(f"{label!r} is not a projector label of this scheme {self.labels}") from None

    def relation_matrix(self) -> np.ndarray:
        """(K, K) integer relation index of every pair of contexts (materialises K² entries)."""
        if self.kind == "factorial":
            sizes = self.params["sizes"]
            digits = np.unravel_index(np.arange(self.K), sizes)
            rel = np.zeros((self.K, self.K), dtype=np.int64)
            for f, a in enumerate(digits):
                rel |= (a[:, None] != a[None, :]).astype(np.int64) << f
            return rel
        b = self.params["branching"]
        idx = np.arange(self.K)
        rel = np.zeros((self.K, self.K), dtype=np.int64)
        for c in range(1, self.params["depth"] + 1):
            block_prev = idx // b ** (c - 1)
            rel += (block_prev[:, None] != block_prev[None, :]).astype(np.int64)
        return rel

    def materialise(self, coeffs: np.ndarray, rel: np.ndarray | None = None) -> np.ndarray:
        """``Σ_S c_S P_S: (K, K)`` from coefficients ``(n_S,)`` (or a stack ``(T, K, K)`` from ``(T, n_S)``).

        ``rel`` is an optional precomputed :meth:`relation_matrix`."""
        rel = self.relation_matrix() if rel is None else rel
        entries = np.asarray(coeffs, dtype=np.float64) @ self.table  # (..., n_r) entries per relation
        return entries[..., rel]

    def projector(self, label: Any) -> np.ndarray:
        """The (K, K) projector ``P_S`` (materialised on request)."""
        return self.table[self.index(label)][self.relation_matrix()]

    def coefficients(self, G: np.ndarray) -> np.ndarray:
        """``c_S = tr(G P_S)/m_S: (n_S,)`` of a (K, K) matrix (exact when G lies in the algebra)."""
        rel = self.relation_matrix()
        sums = np.bincount(rel.ravel(), weights=np.asarray(G, dtype=np.float64).ravel(), minlength=self.n_r)
        return (self.table @ sums) / np.array(self.ranks, dtype=np.float64)

    def kernel_eigenvalues(self, alpha: float, beta: float) -> np.ndarray:
        """Eigenvalues ``κ_S`` of ``K_x = α² XᵀX + β² I`` on each ``P_S`` (X: the design's attribute code).

        Factorial: ``κ_∅ = α² Σ_f K/A_f + β²``, main effect ``{f}``: ``α² K/A_f + β²``, interactions ``β²``.
        Hierarchy: ``κ_k = α² Σ_{l=max(k,1)}^{D-1} b^{D-l} + β²``.
        """
        a2, b2 = float(alpha) ** 2, float(beta) ** 2
        if self.kind == "factorial":
            sizes = self.params["sizes"]
            out = []
            for S in self.labels:
                if len(S) == 0:
                    out.append(a2 * sum(self.K / A for A in sizes) + b2)
                elif len(S) == 1:
                    out.append(a2 * self.K / sizes[S[0]] + b2)
                else:
                    out.append(b2)
            return np.array(out)
        D, b = self.params["depth"], self.params["branching"]
        return np.array([a2 * sum(b ** (D - l) for l in range(max(k, 1), D)) + b2 for k in self.labels])

    def key(self) -> tuple[Any, ...]:
        """Hashable key of the scheme's shape and entries."""
        return (self.counts, self.exact_table, self.ranks)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly description, rebuilt by :func:`scheme_from_description`."""
        if self.kind == "factorial":
            return {"kind": "factorial", "sizes": list(self.params["sizes"])}
        return {"kind": "hierarchical", "depth": self.params["depth"], "branching": self.params["branching"]}

    def attribute_labels(self) -> tuple[int, ...]:
        """Indices of the projectors spanning the design's centred attribute subspace.

        Factorial: the main effects ``{f}`` (the attribute code has one indicator per factor value).
        Hierarchy: levels ``1..D-1`` (attributes are the internal nodes below the root); none when D = 1.
        Their sum is :func:`ufmtheory.metrics.attribute_projector` of the design's ``X``.
        """
        if self.kind == "factorial":
            return tuple(i for i, S in enumerate(self.labels) if len(S) == 1)
        D = self.params["depth"]
        return tuple(i for i, lvl in enumerate(self.labels) if 1 <= lvl <= D - 1)

    def shared_attributes(self) -> np.ndarray:
        """(n_r,) number of attributes shared by two contexts in relation ``r``: the design's ``XᵀX``.

        Factorial: ``F - |D|`` (D: the factors where they differ). Hierarchy: ancestors at levels
        ``1..D-1`` in common, ``max(0, min(D - 1, D - c))`` for LCA height c.
        """
        if self.kind == "factorial":
            F = len(self.params["sizes"])
            return np.array([F - len(Dset) for Dset in self.relations], dtype=np.float64)
        D = self.params["depth"]
        return np.array([max(0, min(D - 1, D - c)) for c in self.relations], dtype=np.float64)

    def algebra_coefficients(self, entries: np.ndarray) -> np.ndarray:
        """``c_S: (..., n_S)`` of the algebra element whose value at relation ``r`` is ``entries[..., r]``.

        ``c_S = tr(G P_S)/m_S = (K/m_S) Σ_r n_r G[r] P_S[r]`` (the inverse of ``coeffs @ table``)."""
        weights = np.array(self.counts, dtype=np.float64)[:, None] * self.table.T  # (n_r, n_S)
        return (np.asarray(entries, dtype=np.float64) @ weights) * (
            self.K / np.array(self.ranks, dtype=np.float64)
        )


def factorial_scheme(sizes: Sequence[int]) -> AssociationScheme:
    """Hamming (product) scheme of a factorial design with factor sizes ``A_1..A_F`` (Kronecker order,
    last factor fastest, as :func:`ufmtheory.designs.factorial`). Projectors and relations are indexed by
    bitmask: bit f set when factor f is in S (resp. the contexts differ in factor f)."""
    sizes = tuple(int(a) for a in sizes)
    if not sizes or any(a < 2 for a in sizes):
        raise ValueError(f"sizes must be a non-empty sequence of integers >= 2, got {sizes}")
    F = len(sizes)
    subsets = [tuple(f for f in range(F) if mask >> f & 1) for mask in range(2**F)]
    ranks = tuple(math.prod(sizes[f] - 1 for f in S) for S in subsets)
    table = []
    for S in subsets:
        row = []
        for D in subsets:
            val = Fraction(1)
            for f, A in enumerate(sizes):
                if f in S:
                    val *= Fraction(-1, A) if f in D else Fraction(A - 1, A)
                else:
                    val *= Fraction(1, A)
            row.append(val)
        table.append(tuple(row))
    return AssociationScheme(
        kind="factorial",
        params={"sizes": sizes},
        K=math.prod(sizes),
        labels=tuple(subsets),
        ranks=ranks,
        relations=tuple(subsets),
        counts=ranks,  # n_D = Π_{f∈D}(A_f - 1) = m_D
        exact_table=tuple(table),
    )


def hierarchical_scheme(depth: int, branching: int) -> AssociationScheme:
    """Scheme of the leaves of a complete tree (depth D, branching b, K = b^D).

    Projector labels are levels ``l = 0..D`` (``P_0 = J/K``, ``P_l = Q_l - Q_{l-1}``, rank
    ``b^l - b^{l-1}``); relation ``c = 0..D`` is the height of the lowest common ancestor above the leaves
    (``n_0 = 1``, ``n_c = b^c - b^{c-1}``)."""
    D, b = int(depth), int(branching)
    if D < 1 or b < 2:
        raise ValueError(f"need depth >= 1 and branching >= 2, got depth={depth}, branching={branching}")

    def q_entry(level: int, c: int) -> Fraction:
        # Q_l averages over blocks of b^{D-l} leaves; a pair at LCA height c shares a block iff c <= D - l.
        return Fraction(1, b ** (D - level)) if c <= D - level else Fraction(0)

    table = []
    for k in range(D + 1):
        row = tuple(q_entry(k, c) - (q_entry(k - 1, c) if k > 0 else 0) for c in range(D + 1))
        table.append(row)
    ranks = tuple(1 if k == 0 else b**k - b ** (k - 1) for k in range(D + 1))
    return AssociationScheme(
        kind="hierarchical",
        params={"depth": D, "branching": b},
        K=b**D,
        labels=tuple(range(D + 1)),
        ranks=ranks,
        relations=tuple(range(D + 1)),
        counts=ranks,  # n_c = b^c - b^{c-1}: same numbers as the ranks
        exact_table=tuple(table),
    )


def scheme(design: Design) -> AssociationScheme:
    """The association scheme of a one-hot factorial or hierarchical design.

    Raises:
        ValueError: for other design kinds, or when labels are not ``Y = I`` with uniform weights.
    """
    if not isinstance(design, Design):
        raise TypeError(f"design must be a ufmtheory Design, got {type(design).__name__}")
    if design.kind not in ("factorial", "hierarchical"):
        raise ValueError(
            f"exact reduction needs a factorial or hierarchical design, got kind={design.kind!r}"
        )
    m = design.m
    if design.V != m or not np.array_equal(design.Y, np.eye(m)) or not np.allclose(design.pi, 1.0 / m):
        raise ValueError(
            "exact reduction needs one-hot labels Y = I (each context its own token) and uniform pi"
        )
    if design.kind == "factorial":
        if design.factor_sizes is None:
            raise ValueError("factorial design has no factor_sizes")
        return factorial_scheme(design.factor_sizes)
    return hierarchical_scheme(design.params["depth"], design.params["branching"])


def scheme_from_description(desc: Mapping[str, Any]) -> AssociationScheme:
    """Rebuild a scheme from :meth:`AssociationScheme.describe` (e.g. when loading a saved Trajectory)."""
    kind = desc.get("kind")
    if kind == "factorial":
        return factorial_scheme(desc["sizes"])
    if kind == "hierarchical":
        return hierarchical_scheme(desc["depth"], desc["branching"])
    raise ValueError(
        f"unknown scheme description {dict(desc)!r} (kind must be 'factorial' or 'hierarchical')"
    )


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
        object.__setattr__(self, "lam_W", check_nonnegative("lam_W", self.lam_W))
        object.__setattr__(self, "lam_X", check_nonnegative("lam_X", self.lam_X))
        if self.normalize is not None:
            r = check_nonnegative("normalize", self.normalize)
            if r == 0:
                raise ValueError("normalize must be None or a radius > 0")
            object.__setattr__(self, "normalize", r)

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
        """From a :class:`~ufmtheory.UFM` or :class:`~ufmtheory.ModifiedUFM` (any ``normalize``)."""
        if isinstance(problem, ModifiedUFM):
            sch = scheme(problem.design)
            kappa = sch.kernel_eigenvalues(problem.alpha, problem.beta)
            lam_X = problem.lam_H if problem.ridge == "H" else problem.lam_E
            return cls(sch, kappa, problem.ridge, problem.lam_W, lam_X, problem.describe(), problem.normalize)
        if isinstance(problem, UFM):
            sch = scheme(problem.design)
            return cls(sch, np.ones(sch.n_S), "H", problem.lam_W, problem.lam_H, problem.describe())
        raise TypeError(f"problem must be a UFM, ModifiedUFM or ReducedProblem, got {type(problem).__name__}")


@dataclass(frozen=True, eq=False)
class ReducedSolution:
    """Coefficient trajectories of the reduced flow.

    Attributes:
        ts: (T,) saved gradient-flow times.
        w, h: (T, n_S) coefficients ``w_S(t)``, ``h_S(t)`` of ``W`` and of the features ``H`` (after the
            normalisation, if any); columns in ``scheme.labels`` order.
        loss: (T,) objective values.
        scheme: the association scheme.
        problem: the :class:`ReducedProblem` solved.
        status: ``"ok"`` or why the integration stopped (then ``ts`` ends there).
        stats: evaluations, wall time, tolerances.
        method: the scipy integrator.
        trajectory: the :class:`~ufmtheory.Trajectory` of the Grams ``Σ h_S² P_S``, ``Σ w_S² P_S``: dense
            arrays for small K, :class:`~ufmtheory.trajectory.StructuredGrams` (coefficients + scheme) for
            large K or when asked (``structured=True``).
        h_raw: (T, n_S) coefficients ``a_S`` of the pre-normalisation features ``E X̃`` (the integrated
            state; equal to ``h`` without normalisation).
    """

    ts: np.ndarray
    w: np.ndarray
    h: np.ndarray
    loss: np.ndarray
    scheme: AssociationScheme
    problem: ReducedProblem
    status: str
    stats: dict[str, Any]
    method: str
    trajectory: Trajectory | None = None
    h_raw: np.ndarray | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

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
            out[sch.index(label)] = float(value)
    else:
        out = np.array(c, dtype=np.float64)
        if out.shape != (sch.n_S,):
            raise ValueError(f"{name} must be a dict label -> value or an array of n_S = {sch.n_S} entries")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} contains NaN or inf")
    return out


def _initial_coefficients(
    rp: ReducedProblem, init: Any, init_scale: float, init_ratio: str
) -> tuple[np.ndarray, np.ndarray]:
    sch = rp.scheme
    if init is not None:
        w0, h0 = (_coeff_vector(sch, n, c) for n, c in zip(("w0", "h0"), init, strict=True))
    else:
        if init_ratio not in ("balanced", "equal"):
            raise ValueError(f"init_ratio must be 'balanced' or 'equal', got {init_ratio!r}")
        scale = check_nonnegative("init_scale", init_scale)
        w0 = np.full(sch.n_S, scale)
        w0[0] = 0.0  # the all-ones direction carries no gradient (g_∅ = 0)
        h0 = np.sqrt(rp.kappa) * w0 if init_ratio == "balanced" else w0.copy()
    bad = (rp.kappa == 0) & (h0 != 0)
    if np.any(bad):
        raise ValueError(f"h0 must be 0 on modes with κ_S = 0 (E X̃ cannot reach them): {np.flatnonzero(bad)}")
    if rp.normalize is not None and not np.any(h0 != 0):
        raise ValueError(
            "with normalize, h0 (the raw features E X̃) must not be 0: columns cannot be normalised"
        )
    return w0, h0


def feature_coefficients(sch: AssociationScheme, a: np.ndarray, radius: float | None) -> np.ndarray:
    """Coefficients ``h_S = r a_S / n`` of the normalised features from raw ones ``a: (..., n_S)``, with the
    common column norm ``n = sqrt(Σ_S m_S a_S² / K)`` (``a`` itself when ``radius`` is ``None``)."""
    a = np.asarray(a, dtype=np.float64)
    if radius is None:
        return a
    ranks = np.array(sch.ranks, dtype=np.float64)
    norm = np.sqrt((a**2) @ ranks / sch.K)
    return radius * a / norm[..., None]


def _stiffness(rp: ReducedProblem) -> float:
    """Largest linear decay rate of the coefficients (the ridge terms), per unit time."""
    rate_h = rp.lam_X * float(rp.kappa.max()) if rp.ridge == "H" else rp.lam_X
    return max(rp.lam_W, rate_h)


def _resolve_saveat(saveat: Any, t1: float) -> np.ndarray:
    if saveat is None:
        return log_grid(t1)
    if isinstance(saveat, (int, np.integer)) and not isinstance(saveat, bool):
        return log_grid(t1, n=int(saveat))
    ts = np.asarray(saveat, dtype=np.float64)
    if ts.ndim != 1 or ts.size == 0 or np.any(np.diff(ts) <= 0) or ts[0] < 0 or ts[-1] > t1 * (1 + 1e-12):
        raise ValueError(f"saveat must be None, an int, or increasing times in [0, t1 = {t1}]")
    return ts


def reduced_solve(
    problem: UFM | ModifiedUFM | ReducedProblem,
    t1: float,
    *,
    init: tuple[Any, Any] | None = None,
    init_scale: float = 1e-3,
    init_ratio: str = "balanced",
    saveat: Any = None,
    method: str = "auto",
    rtol: float = 1e-10,
    atol: float = 1e-12,
    structured: bool | None = None,
    materialise: bool | None = None,
) -> ReducedSolution:
    """Integrate the exact reduced flow on the scheme coefficients ``w_S, h_S`` from 0 to ``t1``.

    The integration runs in log-time ``s = ln(1 + t)`` (as :func:`ufmtheory.gradient_flow`), so steps grow
    with ``ln t1``.

    Args:
        problem: a :class:`~ufmtheory.UFM`, :class:`~ufmtheory.ModifiedUFM` (with or without ``normalize``)
            on a factorial/hierarchical one-hot design, or a :class:`ReducedProblem` (no K×K design needed).
        t1: final gradient-flow time (> 0).
        init: optional explicit ``(w0, h0)``, each a dict ``label -> value`` or an ``(n_S,)`` array. With
            ``normalize``, ``h0`` are the raw coefficients of ``E X̃`` (as in :func:`aligned_full_init`).
        init_scale: without ``init``, ``w_S(0) = init_scale`` for every ``S ≠ ∅`` (``w_∅ = 0``).
        init_ratio: without ``init``, ``"balanced"`` (``h_S = sqrt(κ_S) w_S``; ridge on E keeps it) or
            ``"equal"`` (``h_S = w_S``).
        saveat: as in :func:`ufmtheory.gradient_flow` (None: ``log_grid(t1)``; int n; or times).
        method: a scipy ``solve_ivp`` method, or ``"auto"`` (default): DOP853, unless the ridge makes the
            system stiff (``max(λ_W, λ_H max κ_S or λ_E) (1 + t1) > 10``; ridge on H with large K has
            ``κ_S ~ K/A_f``) or the features are normalised (the raw norm shrinks, tangential rates grow
            like its inverse square), then LSODA, which switches to an implicit method and stays fast.
        rtol, atol: ``solve_ivp`` tolerances.
        structured: store the trajectory's Grams as
            :class:`~ufmtheory.trajectory.StructuredGrams` (coefficients + scheme, nothing K×K) rather than
            dense arrays. ``None`` (default): structured when ``K > 4096`` or the two dense Gram stacks
            would exceed 2 GiB.
        materialise: deprecated spelling of ``structured=not materialise``.

    Returns:
        :class:`ReducedSolution` (its ``trajectory`` is always set).
    """
    rp = _as_reduced(problem)
    if isinstance(problem, UFM):
        K = problem.design.m
        if problem.dim < K - 1:
            raise ValueError(f"the reduction needs dim >= K - 1 = {K - 1} (aligned init), got {problem.dim}")
    if not isinstance(t1, (int, float, np.integer, np.floating)) or not math.isfinite(t1) or t1 <= 0:
        raise ValueError(f"t1 must be a finite number > 0, got {t1!r}")
    if method != "auto" and method not in _METHODS:
        raise ValueError(f"method must be 'auto' or one of {_METHODS}, got {method!r}")
    if materialise is not None:
        if structured is not None and structured == bool(materialise):
            raise ValueError("structured and materialise disagree; pass structured only")
        structured = not materialise
    t1 = float(t1)
    sch = rp.scheme
    if method == "auto":
        # Normalised features: the ridge (or the preconditioned tangential flow) shrinks the raw norm n while
        # the tangential rates grow like 1/n², so the system turns stiff; LSODA detects and handles that.
        stiff = rp.normalize is not None or _stiffness(rp) * (1.0 + t1) > _STIFF
        method = "LSODA" if stiff else "DOP853"
    w0, h0 = _initial_coefficients(rp, init, init_scale, init_ratio)
    ts = _resolve_saveat(saveat, t1)
    from .symbolic import compile_reduced

    radius = rp.normalize
    fn: CompiledReduced = compile_reduced(
        sch.counts, sch.exact_table, sch.ranks, rp.ridge, normalize=radius is not None
    )
    kappa, lam_W, lam_X, n_S = rp.kappa, rp.lam_W, rp.lam_X, sch.n_S
    extra = () if radius is None else (radius,)
    logits, rhs_q, counts = fn.logits, fn.rhs_q, fn.counts
    exp = math.exp
    evals = 0

    def rhs(s: float, y: np.ndarray) -> np.ndarray:
        # Inlined fn.rhs (this is the hot loop: ~10⁴ calls for K = 10⁶ with a stiff ridge).
        nonlocal evals
        evals += 1
        w, h = y[:n_S], y[n_S:]
        L = np.array(logits(w, h, *extra))
        e = np.exp(L - L.max())
        q = e[1:] / (counts @ e)
        return exp(s) * np.array(rhs_q(w, h, q, kappa, lam_W, lam_X, *extra))

    start = time.perf_counter()
    s_eval = np.clip(np.log1p(ts), 0.0, math.log1p(t1))
    sol = solve_ivp(
        rhs,
        (0.0, math.log1p(t1)),
        np.concatenate([w0, h0]),
        method=method,
        t_eval=s_eval,
        rtol=rtol,
        atol=atol,
    )
    wall = time.perf_counter() - start
    status = "ok" if sol.status == 0 else f"failed: {sol.message}"
    Y = sol.y.T if sol.y.shape[1] else np.concatenate([w0, h0])[None, :]
    T = Y.shape[0]
    w, h_raw = Y[:, :n_S], Y[:, n_S:]
    h = feature_coefficients(sch, h_raw, radius)
    loss = np.array(
        [
            fn.softmax(w[i], h_raw[i], radius)[1] + fn.penalty(w[i], h_raw[i], kappa, lam_W, lam_X)
            for i in range(T)
        ]
    )
    stats = {
        "evaluations": evals,
        "saved": T,
        "wall_time": wall,
        "log_time": True,
        "rtol": rtol,
        "atol": atol,
        "n_S": n_S,
        "n_r": sch.n_r,
        "K": sch.K,
    }
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
        gram_H, gram_W = sch.materialise(h**2, rel), sch.materialise(w**2, rel)
    traj = Trajectory(
        ts=ts[:T],
        gram_H=gram_H,
        gram_W=gram_W,
        loss=loss,
        status=status,
        stats=dict(stats),
        time_unit="gf",
        method=f"reduced-{method}",
        meta={
            **rp.meta,
            "reduced": True,
            "scheme": sch.describe(),
            "scheme_labels": [list(S) if isinstance(S, tuple) else S for S in sch.labels],
        },
    )
    return ReducedSolution(
        ts=ts[:T],
        w=w,
        h=h,
        loss=loss,
        scheme=sch,
        problem=rp,
        status=status,
        stats=stats,
        method=method,
        trajectory=traj,
        h_raw=h_raw,
    )


def reduced_flow(
    problem: UFM | ModifiedUFM | ReducedProblem,
    t1: float,
    *,
    structured: bool | None = None,
    **kwargs: Any,
) -> Trajectory:
    """:func:`reduced_solve` returning its :class:`~ufmtheory.Trajectory`.

    Args:
        problem, t1, kwargs: as in :func:`reduced_solve`.
        structured: ``True``: Grams as :class:`~ufmtheory.trajectory.StructuredGrams` (coefficients on the
            scheme's projectors; K×K matrices only on request); ``False``: dense arrays (raises
            :class:`~ufmtheory.trajectory.GramTooLargeError` beyond 2 GiB); ``None`` (default): structured
            when ``K > 4096`` or the dense stacks would exceed 2 GiB.
    """
    return reduced_solve(problem, t1, structured=structured, **kwargs).trajectory  # type: ignore[return-value]


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
