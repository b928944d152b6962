"""Metric curves: phase times of a semantic-strength curve, the standard metrics of one Gram, and
their curves along a trajectory (dense Gram stacks in chunks, structured Grams from coefficients)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ufmtheory.algebra.schemes import scheme as scheme_of
from ufmtheory.designs import factorial, hierarchical
from ufmtheory.metrics._core import (
    _REL_TOL,
    _SYM_TOL,
    _as_array,
    _attribute_energy,
    _center,
    _centred_cos,
    _check_gram,
    _check_gram_stack,
    _check_X,
    _cka,
    _effective_rank,
    _etf_distance,
    _kernel_norm,
    _masked_mean,
    _nan_where,
    _projector,
    _shared_masks,
)

__all__ = ["PEAK_RTOL", "phase_times", "gram_metrics", "trajectory_metrics"]

# Elements per chunk when a trajectory's Grams are processed as a stack (bounds temporary memory).
_CHUNK_ELEMENTS = 1 << 22


def _crossing(t0: float, t1: float, v0: float, v1: float, level: float) -> float:
    """Time where the segment (t0, v0)-(t1, v1) crosses ``level``, linear in log t (in t when t0 <= 0)."""
    w = float(np.clip((level - v0) / (v1 - v0), 0.0, 1.0)) if v1 != v0 else 0.0
    if t0 > 0:
        return float(np.exp(np.log(t0) + w * (np.log(t1) - np.log(t0))))
    return float(t0 + w * (t1 - t0))


PEAK_RTOL = 1e-9
"""Strengths within this relative distance of the maximum count as the peak (:func:`phase_times`): far
above the rounding of a computed strength (~1e-15), far below any real change between saved times."""


def phase_times(
    ts: Any, strength: Any, etf_dist: Any = None, etf_tol: float = 0.05
) -> dict[str, float | None]:
    """Phase times of a semantic-strength curve (docs: Theory §11).

    * ``onset``: first time the strength reaches half its peak;
    * ``peak``, ``peak_strength``: time (a saved time, not interpolated) and value of the maximum; the
      first saved time within :data:`PEAK_RTOL` of it, so that a flat plateau (a flow without a ridge
      saturating) gives the time it is reached, not the argmax of rounding noise on it;
    * ``collapse``: first time after the peak that the strength falls below half the peak;
    * ``etf_time``: first time after which ``etf_dist < etf_tol`` holds up to the end.

    Crossing times are interpolated linearly in ``log t`` between the two saved times that bracket them
    (linearly in ``t`` on a segment starting at ``t <= 0``, e.g. ``ts[0] = 0``). Non-finite strengths (a
    vanishing Gram, e.g. a zero initialisation) are skipped; a non-finite ETF distance counts as "not
    below".

    Args:
        ts: (T,) strictly increasing times.
        strength: (T,) semantic strength (or any curve with a transient bump).
        etf_dist: optional (T,) ETF distance.
        etf_tol: tolerance for ``etf_time`` (> 0).

    Returns:
        Dict with ``onset``, ``peak``, ``peak_strength``, ``collapse``, ``etf_time``. ``onset`` and
        ``collapse`` are ``None`` when the peak is ``<= 0`` (no semantic phase); ``collapse`` is ``None``
        when the curve stays above half the peak; ``etf_time`` is ``None`` without ``etf_dist`` or when
        the distance does not end below ``etf_tol``. Everything is ``None`` (``peak_strength`` ``nan``)
        when no strength is finite.

    Example:
        >>> ts = np.array([0.0, 1.0, 10.0, 100.0, 1000.0])
        >>> out = phase_times(ts, [0.0, 0.0, 1.0, 0.0, 0.0], etf_dist=[1.0, 1.0, 0.5, 0.1, 0.0])
        >>> round(out["onset"], 6), out["peak"], round(out["collapse"], 6)  # sqrt(1 * 10), sqrt(10 * 100)
        (3.162278, 10.0, 31.622777)
        >>> round(out["etf_time"], 6)  # 0.05 is halfway from 0.1 to 0.0: sqrt(100 * 1000)
        316.227766
    """
    ts = _as_array("ts", ts, ndim=1)
    T = ts.shape[0]
    if T < 1 or np.any(np.diff(ts) <= 0):
        raise ValueError("ts must be a non-empty, strictly increasing 1-D array")
    try:
        s_all = np.asarray(strength, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError("strength must be a numeric array") from exc
    if s_all.shape != (T,):
        raise ValueError(f"strength must have shape ({T},) like ts, got {s_all.shape}")
    if not np.isfinite(etf_tol) or etf_tol <= 0:
        raise ValueError(f"etf_tol must be finite and > 0, got {etf_tol}")
    out: dict[str, float | None] = {
        "onset": None,
        "peak": None,
        "peak_strength": float("nan"),
        "collapse": None,
        "etf_time": None,
    }
    if etf_dist is not None:
        try:
            e = np.asarray(etf_dist, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError("etf_dist must be a numeric array") from exc
        if e.shape != (T,):
            raise ValueError(f"etf_dist must have shape ({T},) like ts, got {e.shape}")
        below = np.isfinite(e) & (e < etf_tol)
        if below[-1]:
            above = np.flatnonzero(~below)
            if above.size == 0:
                out["etf_time"] = float(ts[0])
            else:
                k = int(above[-1])
                if np.isfinite(e[k]):
                    out["etf_time"] = _crossing(ts[k], ts[k + 1], e[k], e[k + 1], etf_tol)
                else:
                    out["etf_time"] = float(ts[k + 1])

    keep = np.isfinite(s_all)
    t, s = ts[keep], s_all[keep]
    if t.size == 0:
        return out
    peak = float(s.max())
    ip = int(np.argmax(s >= peak - PEAK_RTOL * abs(peak)))
    out["peak"], out["peak_strength"] = float(t[ip]), peak
    if peak <= 0:
        return out
    half = 0.5 * peak
    i = int(np.argmax(s >= half))  # exists: s[ip] >= half
    out["onset"] = float(t[0]) if i == 0 else _crossing(t[i - 1], t[i], s[i - 1], s[i], half)
    after = np.flatnonzero(s[ip:] < half)
    if after.size:
        j = ip + int(after[0])
        out["collapse"] = _crossing(t[j - 1], t[j], s[j - 1], s[j], half)
    return out


def _stack_metrics(G: np.ndarray, X: np.ndarray | None) -> dict[str, np.ndarray]:
    """Metric curves for a stack of Grams ``G: (T, K, K)``; the attribute structure is computed once."""
    T, K, _ = G.shape
    with_X = X is not None and X.shape[0] > 0
    names = ["etf_distance", "effective_rank"]
    if with_X:
        names += ["semantic_strength", "attribute_energy", "cka", "shared_gap"]
        assert X is not None
        P = _projector(X)
        etf_energy = float(np.trace(P)) / (K - 1)
        Kc = _center(X.T @ X)
        Kc_norm = _kernel_norm(X, Kc)
        share, none = _shared_masks(X)
    out = {name: np.empty(T) for name in names}
    chunk = max(1, _CHUNK_ELEMENTS // (K * K))
    for a in range(0, T, chunk):
        g = G[a : a + chunk]
        Gc, Gh, deg = _centred_cos(g)
        out["etf_distance"][a : a + chunk] = _etf_distance(Gh, deg)
        out["effective_rank"][a : a + chunk] = _effective_rank(g, Gc)
        if with_X:
            energy = _attribute_energy(g, Gc, P)
            out["attribute_energy"][a : a + chunk] = energy
            out["semantic_strength"][a : a + chunk] = energy - etf_energy
            out["cka"][a : a + chunk] = _cka(g, Gc, Kc, Kc_norm)
            gap = _masked_mean(Gh, share) - _masked_mean(Gh, none)
            out["shared_gap"][a : a + chunk] = _nan_where(gap, deg)
    return out


def gram_metrics(G: Any, X: Any = None) -> dict[str, float]:
    """The standard metrics of one Gram matrix (docs: Theory §10).

    Args:
        G: (K, K) Gram matrix.
        X: optional (p, K) non-negative attribute code.

    Returns:
        ``etf_distance`` and ``effective_rank``; when ``X`` has ``p > 0`` rows also ``semantic_strength``,
        ``attribute_energy``, ``cka`` and ``shared_gap`` (see the functions of those names;
        ``shared_gap`` is :func:`shared_attribute_gap`). Values are ``nan`` where undefined.

    Example:
        >>> from ufmtheory.designs import factorial
        >>> from ufmtheory.metrics import attribute_projector
        >>> X = factorial((3, 3)).X
        >>> m = gram_metrics(attribute_projector(X), X)
        >>> round(m["effective_rank"], 6), round(m["semantic_strength"], 6), round(m["shared_gap"], 6)
        (4.0, 0.5, 0.75)
    """
    G = _check_gram(G)
    Xa = None if X is None else _check_X(X, G.shape[0], nonneg=True)
    return {k: float(v[0]) for k, v in _stack_metrics(G[None], Xa).items()}


def _structured_stack_metrics(G: Any, attributes: bool) -> dict[str, np.ndarray]:
    """:func:`_stack_metrics` of Grams ``G_t = Σ_S c[t, S] P_S`` in a scheme's algebra, from the (T, n_S)
    coefficients alone (nothing K×K) [derived; equal to the dense metrics up to rounding]:

    * ``P_∅ = J/K`` (index 0), so ``C G C = Σ_{S≠∅} c_S P_S``; ``‖·‖_F² = Σ m_S c_S²``, trace ``Σ m_S c_S``.
    * every diagonal entry is ``Σ_S c_S m_S/K`` (centred: ``d_c = Σ_{S≠∅} c_S m_S/K``), so the cosine
      normalisation is the scalar ``1/d_c`` and ``Ĝ = Σ_{S≠∅} (c_S/d_c) P_S``.
    * ETF distance: ``C_K/‖C_K‖ = Σ_{S≠∅} P_S/sqrt(K-1)``, so the squared distance is
      ``Σ_{S≠∅} m_S (c_S/sqrt(Σ m c²) - 1/sqrt(K-1))²``.
    * effective rank: the centred Gram has eigenvalue ``c_S`` with multiplicity ``m_S`` (and 0 on ``1``).
    * attribute energy ``Σ_{attr S} m_S c_S / Σ_{S≠∅} m_S c_S`` (attribute projector ``Σ_{attr} P_S``).
    * CKA with ``XᵀX = Σ_S k_S P_S`` (coefficients of the shared-attribute counts per relation).
    * shared gap from the cosine entries per relation ``Ĝ[r] = Σ_{S≠∅} c_S P_S[r]/d_c``, weighted by the
      valencies ``n_r`` of the relations whose pairs share (``s_r > 0``) or share no attribute.
    """
    sch = G.scheme
    c = np.asarray(G.coefficients, dtype=np.float64)
    K = int(sch.K)
    m = np.array(sch.ranks, dtype=np.float64)
    n = np.array(sch.counts, dtype=np.float64)
    table = np.asarray(sch.table, dtype=np.float64)
    cc, mm = c[:, 1:], m[1:]
    diag_abs = np.abs(c @ m) / K  # |diag(G)|, the same for every row
    dc = cc @ mm / K  # diagonal of the centred Gram
    deg = ~((dc > 0) & (dc > _REL_TOL * diag_abs))
    sq = (cc * cc) @ mm  # ‖C G C‖_F²
    nrm = np.sqrt(sq)
    out: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        bad = deg | (nrm == 0)
        u = cc / np.where(bad, 1.0, nrm)[:, None]
        dist = np.sqrt(((u - 1.0 / np.sqrt(K - 1.0)) ** 2) @ mm)
        out["etf_distance"] = _nan_where(dist, bad)
        lam = np.clip(cc, 0.0, None)
        total = lam @ mm
        bad_r = total <= _REL_TOL * K * diag_abs
        pr = lam / np.where(bad_r, 1.0, total)[:, None]
        ent = -(np.where(pr > 0, pr * np.log(np.where(pr > 0, pr, 1.0)), 0.0) @ mm)
        out["effective_rank"] = _nan_where(np.exp(ent), bad_r)
        if not attributes:
            return out
        attr = np.array(sch.attribute_labels(), dtype=np.int64)
        den = cc @ mm
        bad_e = den <= _REL_TOL * K * diag_abs
        energy = _nan_where((c[:, attr] @ m[attr]) / np.where(bad_e, 1.0, den), bad_e)
        out["semantic_strength"] = energy - float(m[attr].sum()) / (K - 1)
        out["attribute_energy"] = energy
        shared = np.asarray(sch.shared_attributes(), dtype=np.float64)  # (n_r,) entries of XᵀX
        k = sch.algebra_coefficients(shared)  # XᵀX = Σ_S k_S P_S
        kc_norm = float(np.sqrt((k[1:] ** 2) @ mm))
        if kc_norm <= _REL_TOL * float(np.sqrt((k**2) @ m)):
            kc_norm = 0.0
        bad_c = (nrm <= _REL_TOL * np.sqrt((c * c) @ m)) | (kc_norm == 0)
        cka_val = (cc @ (mm * k[1:])) / np.where(bad_c, 1.0, nrm * (kc_norm if kc_norm > 0 else 1.0))
        out["cka"] = _nan_where(cka_val, bad_c)
        cos_r = (cc @ table[1:]) / np.where(deg, 1.0, dc)[:, None]  # (T, n_r) centred cosine per relation
        off = np.arange(len(n)) != 0
        means = []
        for sel in (off & (shared > 0), off & (shared <= 0)):
            cnt = float(n[sel].sum())
            means.append(cos_r[:, sel] @ n[sel] / cnt if cnt > 0 else np.full(c.shape[0], np.nan))
        out["shared_gap"] = _nan_where(means[0] - means[1], deg)
    return out


def _check_structured_diagonal(G: Any, name: str) -> None:
    """The dense rule of :func:`_check_gram_stack` on coefficients: every diagonal entry ``Σ_S c_S m_S/K``
    (squared norms) must be non-negative."""
    c = G.coefficients
    diag = c @ np.asarray(G.scheme.ranks, dtype=np.float64) / G.scheme.K
    if np.any(diag < -_SYM_TOL * np.max(np.abs(c), axis=1)):
        raise ValueError(f"{name} must be a Gram matrix: its diagonal (squared norms) has negative entries")


def _canonical_code(design: Any, sch: Any) -> bool:
    """Whether ``design`` carries its scheme's attribute code: compared as index arrays (O(K), any size)
    when the design holds them, else through ``XᵀX`` against the scheme's shared-attribute counts."""
    if design.attributes is not None:
        params = sch.params
        ref = factorial(params["sizes"]) if sch.kind == "factorial" else hierarchical(**params)
        ref_attributes = ref.attributes  # always held by factorial / hierarchical designs
        return (
            ref_attributes is not None
            and design.p == ref.p
            and np.array_equal(np.sort(design.attributes, axis=1), np.sort(ref_attributes, axis=1))
        )
    X = np.asarray(design.X, dtype=np.float64)
    return bool(np.array_equal(X.T @ X, sch.shared_attributes()[sch.relation_matrix()]))


def _structured_design_check(G: Any, design: Any, which: str) -> bool:
    """Whether ``design`` (None, an AssociationScheme, or a Design) asks for attribute metrics on the
    structured Grams ``G``; raises when it does not describe ``G``'s scheme."""
    sch = G.scheme
    if design is None:
        return False
    if hasattr(design, "key") and hasattr(design, "attribute_labels"):  # an AssociationScheme
        if design.key() != sch.key():
            raise ValueError(
                f"the scheme {design.describe()} is not the trajectory's scheme {sch.describe()}"
            )
    else:
        try:
            other = scheme_of(design)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"design does not match the structured trajectory's scheme: {exc}") from exc
        if other.key() != sch.key():
            raise ValueError(
                f"design's scheme {other.describe()} is not the trajectory's scheme {sch.describe()}"
            )
        # Guard: the scheme's attributes must be the design's own (X is built canonically by the
        # constructors; a hand-made Design with another code would get other metrics densely). The scheme
        # needs Y = I, so the label code equals the context code and one check serves H and W.
        if not _canonical_code(design, sch):
            raise ValueError("design.X is not the attribute code of its factorial/hierarchical scheme")
        if design.p == 0:
            return False
    return len(sch.attribute_labels()) > 0


def trajectory_metrics(traj: Any, design: Any = None, which: str = "H") -> dict[str, np.ndarray]:
    """:func:`gram_metrics` along a :class:`~ufmtheory.trajectory.Trajectory`.

    Args:
        traj: a Trajectory (anything with ``ts``, ``gram_H: (T, m, m)`` and ``gram_W: (T, V, V)``).
        design: optional :class:`~ufmtheory.designs.Design` supplying the attribute code; without it (or
            with ``p = 0``) only ``etf_distance`` and ``effective_rank`` are computed. For structured Grams
            (:class:`~ufmtheory.trajectory.StructuredGrams`) the scheme itself (``traj.scheme``) may be
            given instead: its attributes are those of the factorial/hierarchical design it comes from.
        which: ``"H"``: context Grams with ``design.X``; ``"W"``: label Grams restricted to
            ``design.used_labels`` (rows and columns) with ``design.label_X[:, used]`` (without a design,
            the whole label Gram).

    Returns:
        ``{"ts": (T,), name: (T,) ...}`` with the names of :func:`gram_metrics`. Structured Grams are never
        materialised: the metrics come from their coefficients in O(T n_S n_r)
        (:func:`_structured_stack_metrics`).

    Raises:
        ValueError: if ``which`` is not ``"H"`` or ``"W"``, or the design does not match the Grams.
    """
    if which not in ("H", "W"):
        raise ValueError(f"which must be 'H' or 'W', got {which!r}")
    ts = _as_array("traj.ts", traj.ts, ndim=1)
    raw = traj.gram_H if which == "H" else traj.gram_W
    if hasattr(raw, "coefficients") and hasattr(raw, "scheme"):  # StructuredGrams: the fast path
        if len(raw) != ts.shape[0]:
            raise ValueError(
                f"traj.gram_{which} must have T = {ts.shape[0]} Grams like traj.ts, got {len(raw)}"
            )
        if raw.K < 2:
            raise ValueError(f"traj.gram_{which} must have K >= 2, got K = {raw.K}")
        with_X = _structured_design_check(raw, design, which)
        _check_structured_diagonal(raw, f"traj.gram_{which}")
        out_s: dict[str, np.ndarray] = {"ts": ts.copy()}
        out_s.update(_structured_stack_metrics(raw, with_X))
        return out_s
    G = _check_gram_stack(raw, f"traj.gram_{which}")
    if G.shape[0] != ts.shape[0]:
        raise ValueError(
            f"traj.gram_{which} must have T = {ts.shape[0]} Grams like traj.ts, got {G.shape[0]}"
        )
    X = None
    if design is not None:
        if which == "H":
            X = np.asarray(design.X, dtype=np.float64)
        else:
            used = np.asarray(design.used_labels)
            if int(design.V) != G.shape[1]:
                raise ValueError(f"design has V = {design.V} labels but traj.gram_W is {G.shape[1:]}")
            G = _check_gram_stack(G[:, used][:, :, used], "traj.gram_W[used labels]")
            X = np.asarray(design.label_X, dtype=np.float64)[:, used]
        X = _check_X(X, G.shape[1], name="design.X" if which == "H" else "design.label_X", nonneg=True)
    out: dict[str, np.ndarray] = {"ts": ts.copy()}
    out.update(_stack_metrics(G, X))
    return out
