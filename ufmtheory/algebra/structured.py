"""Structured Grams: stacks of Grams held as coefficients on an association scheme's projectors.

A :class:`StructuredGrams` behaves like a read-only ``(T, K, K)`` array: indexing one time materialises that
K×K matrix, a slice stays structured, and ``np.asarray`` materialises the whole stack, each refused with
:class:`GramTooLargeError` above :attr:`StructuredGrams.max_bytes`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["StructuredGrams", "GramTooLargeError", "is_structured"]

_DEFAULT_MAX_BYTES = 2 * 1024**3


class GramTooLargeError(MemoryError, ValueError):
    """Materialising structured Grams would exceed the size limit (a MemoryError and a ValueError)."""


def is_structured(value: Any) -> bool:
    return isinstance(value, StructuredGrams)


class StructuredGrams:
    """A stack of T Grams in the Bose-Mesner algebra of an association scheme: ``G_t = Σ_S c[t, S] P_S``.

    Behaves like a read-only ``(T, K, K)`` float64 array that is materialised only on request:

    * ``G[i]`` (an integer) is the ``(K, K)`` matrix at saved time ``i``; ``G[a:b]``, ``G[[0, 2]]`` or a
      boolean mask give another :class:`StructuredGrams`; ``G[i, j, k]``-style keys index the materialised
      matrices.
    * ``np.asarray(G)`` materialises the whole stack.
    * Both refuse with :class:`GramTooLargeError` when the result (plus the cached relation index) would
      exceed ``max_bytes`` (default 2 GiB, the class attribute :attr:`max_bytes`).

    Everything a metric needs is in :attr:`coefficients` (the eigenvalue ``c_S`` of ``G`` on the rank-``m_S``
    projector ``P_S``) and the scheme (ranks, projector entries per relation); see
    :func:`ufmtheory.metrics.trajectory_metrics`.

    Args:
        coefficients: (T, n_S) coefficients in ``scheme.labels`` order (copied, read-only).
        scheme: an :class:`ufmtheory.algebra.AssociationScheme` (anything with ``K``, ``n_S``, ``n_r``,
            ``ranks``, ``counts``, ``table``, ``relation_matrix()`` and ``describe()``).
        max_bytes: size limit for materialisation (default: the class attribute).

    Example:
        >>> from ufmtheory.algebra import factorial_scheme
        >>> G = StructuredGrams([[0.0, 1.0, 1.0, 0.0]], factorial_scheme((1000, 1000)))
        >>> G.shape, len(G), G.coefficients.shape
        ((1, 1000000, 1000000), 1, (1, 4))
        >>> try:
        ...     G[0]
        ... except GramTooLargeError as exc:
        ...     print(str(exc)[:66])
        materialising 1 Gram of 1000000×1000000 float64 needs 9.1 TiB (wit
    """

    max_bytes: int = _DEFAULT_MAX_BYTES
    """Largest materialisation (bytes) allowed by default."""

    __slots__ = ("_c", "_scheme", "_max_bytes", "_rel")

    def __init__(self, coefficients: Any, scheme: Any, *, max_bytes: int | None = None) -> None:
        c = np.array(coefficients, dtype=np.float64)
        n_S = int(scheme.n_S)
        if c.ndim != 2 or c.shape[1] != n_S:
            raise ValueError(f"coefficients must have shape (T, n_S) with n_S = {n_S}, got {c.shape}")
        if not np.all(np.isfinite(c)):
            raise ValueError("coefficients contain NaN or inf")
        c.setflags(write=False)
        self._c = c
        self._scheme = scheme
        self._max_bytes = None if max_bytes is None else int(max_bytes)
        self._rel: np.ndarray | None = None

    # -- array-like metadata -------------------------------------------------------------------------
    @property
    def coefficients(self) -> np.ndarray:
        """(T, n_S) read-only coefficients ``c_S`` (columns in ``scheme.labels`` order)."""
        return self._c

    @property
    def scheme(self) -> Any:
        """The association scheme whose projectors ``P_S`` the coefficients multiply."""
        return self._scheme

    @property
    def K(self) -> int:
        return int(self._scheme.K)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (int(self._c.shape[0]), self.K, self.K)

    @property
    def ndim(self) -> int:
        return 3

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float64)

    @property
    def dense_nbytes(self) -> int:
        """Bytes the materialised ``(T, K, K)`` float64 stack would take."""
        return int(self._c.shape[0]) * self.K**2 * 8

    @property
    def limit(self) -> int:
        return self.max_bytes if self._max_bytes is None else self._max_bytes

    def __len__(self) -> int:
        return int(self._c.shape[0])

    def entries(self) -> np.ndarray:
        """(T, n_r) value of ``G_t`` at a pair of contexts in relation ``r`` (``entries[:, 0]``: diagonal)."""
        return self._c @ np.asarray(self._scheme.table)

    def diagonal(self) -> np.ndarray:
        """(T,) the common diagonal entry ``Σ_S c_S m_S / K`` (every context has the same squared norm)."""
        return self._c @ np.asarray(self._scheme.ranks, dtype=np.float64) / self.K

    # -- materialisation -----------------------------------------------------------------------------
    def _check_size(self, n_mats: int) -> None:
        need = n_mats * self.K**2 * 8 + (0 if self._rel is not None else self.K**2 * 2)
        if need > self.limit:
            raise GramTooLargeError(
                f"materialising {n_mats} Gram{'s' if n_mats != 1 else ''} of {self.K}×{self.K} float64"
                f" needs {_fmt_bytes(need)} (with the relation index), above the limit of"
                f" {_fmt_bytes(self.limit)}; use .coefficients"
                " (and metrics, which work on them) or set max_bytes"
            )

    def _relations(self) -> np.ndarray:
        if self._rel is None:
            rel = self._scheme.relation_matrix()
            # The smallest integer type that holds the relation index: a quarter of int64's memory.
            self._rel = rel.astype(np.uint8 if self._scheme.n_r < 256 else np.uint16)
        return self._rel

    def materialise(self, index: Any = None) -> np.ndarray:
        """The dense ``(K, K)`` Gram at ``index`` (an int), or the ``(T, K, K)`` stack (``None``)."""
        return self.materialise_coefficients(self._c if index is None else self._c[index])

    def materialise_coefficients(self, c: Any) -> np.ndarray:
        """``Σ_S c_S P_S`` for other coefficients ``c: (n_S,)`` or ``(n, n_S)`` on this scheme (e.g.
        interpolated ones), with the same size limit and the cached relation index."""
        c = np.asarray(c, dtype=np.float64)
        self._check_size(1 if c.ndim == 1 else c.shape[0])
        entries = c @ np.asarray(self._scheme.table)
        return entries[..., self._relations()]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, tuple):
            if not key:
                return self.materialise()
            head, rest = key[0], key[1:]
            if head is Ellipsis:
                return self.materialise()[key]
            sub = self[head]
            if isinstance(sub, StructuredGrams):
                return sub.materialise()[(slice(None), *rest)]
            return sub[rest]
        if key is Ellipsis:
            return self.materialise()
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            T = len(self)
            if not -T <= int(key) < T:
                raise IndexError(f"index {key} is out of bounds for {T} saved Grams")
            return self.materialise(int(key))
        if isinstance(key, (slice, list, np.ndarray)):
            return StructuredGrams(self._c[key], self._scheme, max_bytes=self._max_bytes)
        raise TypeError(f"StructuredGrams indices must be integers, slices, arrays or tuples, got {key!r}")

    def __iter__(self) -> Any:
        for i in range(len(self)):
            yield self.materialise(i)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if copy is False:
            raise ValueError("StructuredGrams cannot be viewed as an array without materialising a copy")
        out = self.materialise()
        return out if dtype is None else out.astype(dtype, copy=False)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly scheme description (rebuilt by :func:`ufmtheory.algebra.scheme_from_description`)."""
        return dict(self._scheme.describe())

    def __repr__(self) -> str:
        return f"StructuredGrams(T={len(self)}, K={self.K}, n_S={self._scheme.n_S}, scheme={self.describe()})"


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" or float(n).is_integer() else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover
