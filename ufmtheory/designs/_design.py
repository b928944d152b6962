"""The :class:`Design` class and the validation helpers its constructors share.

Public names are re-exported by :mod:`ufmtheory.designs`, their one public home.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ufmtheory._validate import float_array, integer

__all__ = ["DENSE_MAX_BYTES", "Design"]

_COLUMN_SUM_TOL = 1e-8
# Largest dense label / attribute matrix a Design materialises on request (Y: (V, m), X: (p, m), float64).
# Larger designs keep their labels and attributes as index arrays; see :class:`Design`.
DENSE_MAX_BYTES = 512 * 1024**2


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"  # pragma: no cover


def _as_float_matrix(name: str, value: Any, ndim: int = 2) -> np.ndarray:
    # A private copy: the design freezes its arrays (setflags) and must not freeze the caller's.
    return np.array(float_array(name, value, ndim=ndim))


def _as_index_array(name: str, value: Any, ndim: int, upper: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= upper):
        raise ValueError(f"{name} entries must lie in [0, {upper}), got range [{arr.min()}, {arr.max()}]")
    out = arr.astype(np.int64, copy=True)
    out.setflags(write=False)
    return out


class Design:
    """A co-occurrence design (docs: Theory §2).

    Attributes:
        Y: (V, m) next-token distributions; column j is the label distribution of context j and sums to 1.
        X: (p, m) binary latent factor code; ``X[a, j] = 1`` when context j carries attribute a.
        pi: (m,) context weights, positive, summing to 1 (uniform by default).
        groups: (p,) factor index of each attribute row of ``X`` (attributes of one factor are mutually
            exclusive in factorial designs; in hierarchical designs the group is the tree level).
        factor_sizes: number of values of each factor (factorial), or ``None``.
        kind: which constructor made the design (``"factorial"``, ``"hierarchical"``, ...).
        context_names, label_names, attribute_names: readable names for contexts, tokens, attributes
            (built on first access).
        params: constructor arguments (for reports and for reduced solvers that exploit the structure).
        labels: (m,) the token of each context when labels are one-hot and held implicitly, else ``None``.
        attributes: (m, k) the attribute rows each context carries (k per context) when the code is held
            implicitly, else ``None``.

    A design is built either from dense ``Y`` and ``X`` or, for one-hot designs of any size, from index
    arrays: ``labels`` (with ``V``) instead of ``Y`` and ``attributes`` (with ``p``) instead of ``X``.
    The constructors :func:`factorial`, :func:`hierarchical` and :func:`random_attributes` use index arrays,
    so ``factorial((1000, 1000))`` (K = 10⁶) costs a few MB; ``Y`` and ``X`` are then materialised on first
    access and refused with a ``ValueError`` saying how large they would be when they exceed
    :data:`DENSE_MAX_BYTES` (the reduced solvers, end states and structured metrics never need them).

    Designs are immutable: assigning an attribute raises ``dataclasses.FrozenInstanceError``.
    """

    __slots__ = (
        "_Y", "_X", "_labels", "_attributes", "_V", "_p", "_m", "_pi", "groups", "factor_sizes", "kind",
        "_names", "params",
    )  # fmt: skip
    # The slots, annotated for type checkers (bare annotations create no class attribute, so they do not
    # clash with __slots__). Set once in __init__ through object.__setattr__; the lazy ones (None until
    # first access, or a builder) are filled in by their properties.
    _Y: np.ndarray | None
    _X: np.ndarray | None
    _labels: np.ndarray | str | None  # "identity": Y = I, held by name
    _attributes: np.ndarray | Callable[[], Any] | None
    _V: int
    _p: int
    _m: int
    _pi: np.ndarray | None
    groups: tuple[int, ...]
    factor_sizes: tuple[int, ...] | None
    kind: str
    _names: dict[str, Any]
    params: dict[str, Any]

    def __init__(
        self,
        Y: Any = None,
        X: Any = None,
        pi: Any = None,
        groups: Any = None,
        factor_sizes: Any = None,
        kind: str = "custom",
        context_names: Any = None,
        label_names: Any = None,
        attribute_names: Any = None,
        params: dict[str, Any] | None = None,
        *,
        labels: Any = None,
        V: int | None = None,
        attributes: Any = None,
        p: int | None = None,
        m: int | None = None,
    ) -> None:
        set_ = object.__setattr__
        # -- labels: dense Y, or one-hot index array `labels` with vocabulary size V
        m_given = m
        if (Y is None) == (labels is None):
            raise ValueError(
                "give exactly one of Y (dense (V, m) distributions) or labels (one token per context)"
            )
        if Y is not None:
            if V is not None:
                raise ValueError("V is implied by Y's shape; give V only with labels")
            Yd = _as_float_matrix("Y", Y)
            Vn, m = Yd.shape
            if Vn < 2 or m < 1:
                raise ValueError(
                    f"Y must have at least 2 rows (tokens) and 1 column (context), got shape {Yd.shape}"
                )
            if np.any(Yd < 0):
                raise ValueError("Y must be non-negative (columns are next-token distributions)")
            col_sums = Yd.sum(axis=0)
            bad = np.flatnonzero(np.abs(col_sums - 1.0) > _COLUMN_SUM_TOL)
            if bad.size:
                raise ValueError(
                    f"Y columns must sum to 1; column {int(bad[0])} sums to {col_sums[bad[0]]:.6g}"
                    f" ({bad.size} bad column(s))"
                )
            Yd.setflags(write=False)
            set_(self, "_Y", Yd)
            set_(self, "_labels", None)
        elif isinstance(labels, str):
            if labels != "identity" or m is None:
                raise ValueError('labels as a string must be "identity" (Y = I), given with m')
            m = integer("m", m, low=1)
            Vn = m if V is None else integer("V", V, low=2)
            if Vn != m:
                raise ValueError(f'labels="identity" needs V = m, got V={Vn}, m={m}')
            set_(self, "_Y", None)
            set_(self, "_labels", "identity")
        else:
            if V is None or isinstance(V, bool) or not isinstance(V, int | np.integer):
                raise TypeError(f"V must be an integer (vocabulary size) when labels are given, got {V!r}")
            Vn = int(V)
            if Vn < 2:
                raise ValueError(f"V must be >= 2, got {Vn}")
            lab = _as_index_array("labels", labels, 1, Vn)
            m = lab.size
            if m < 1:
                raise ValueError("labels must name at least one context")
            set_(self, "_Y", None)
            set_(self, "_labels", lab)
        if m_given is not None and m_given != m:
            raise ValueError(f"m = {m_given} disagrees with the {m} contexts of the labels")
        set_(self, "_V", int(Vn))
        # -- attributes: dense X, or (m, k) index array `attributes` with p attribute rows
        if X is not None and attributes is not None:
            raise ValueError("give at most one of X (dense (p, m) code) or attributes ((m, k) indices)")
        if callable(attributes):
            # built on first use by a constructor of ufmtheory.designs (trusted: not re-validated)
            set_(self, "_X", None)
            set_(self, "_attributes", attributes)
            pn = integer("p", p, low=0)
        elif attributes is not None:
            if p is None or isinstance(p, bool) or not isinstance(p, int | np.integer):
                raise TypeError(f"p must be an integer (attribute rows) when attributes are given, got {p!r}")
            pn = int(p)
            if pn < 0:
                raise ValueError(f"p must be >= 0, got {pn}")
            att = _as_index_array("attributes", attributes, 2, max(pn, 1))
            if att.shape[0] != m:
                raise ValueError(f"attributes must have m = {m} rows (one per context), got {att.shape}")
            if att.shape[1] > 1 and np.any(np.diff(np.sort(att, axis=1), axis=1) == 0):
                raise ValueError("attributes must not repeat an attribute within a context")
            set_(self, "_X", None)
            set_(self, "_attributes", att)
        else:
            if p is not None:
                raise ValueError("p is implied by X's shape; give p only with attributes")
            Xd = _as_float_matrix("X", np.zeros((0, m)) if X is None else X)
            if Xd.shape[1] != m:
                raise ValueError(
                    f"X must have m = {m} columns (one per context, like Y), got shape {Xd.shape}"
                )
            if not np.all((Xd == 0) | (Xd == 1)):
                raise ValueError("X must be a binary (0/1) attribute code")
            Xd.setflags(write=False)
            set_(self, "_X", Xd)
            set_(self, "_attributes", None)
            pn = Xd.shape[0]
        set_(self, "_p", int(pn))
        set_(self, "_m", int(m))
        # -- weights (None: uniform, built on first access)
        if pi is None:
            w = None
        else:
            w = _as_float_matrix("pi", pi, ndim=1)
            if w.shape != (m,):
                raise ValueError(f"pi must have shape (m,) = ({m},), got {w.shape}")
            if np.any(w <= 0):
                raise ValueError("pi must be strictly positive")
            if abs(w.sum() - 1.0) > 1e-8:
                raise ValueError(f"pi must sum to 1, got {w.sum():.6g}")
            w.setflags(write=False)
        set_(self, "_pi", w)
        grp = tuple(range(pn)) if groups is None else tuple(int(g) for g in groups)
        if len(grp) != pn:
            raise ValueError(f"groups must have one entry per attribute row of X (p = {pn}), got {len(grp)}")
        set_(self, "groups", grp)
        if factor_sizes is not None:
            sizes = tuple(int(a) for a in factor_sizes)
            if math.prod(sizes) != m:
                raise ValueError(f"factor_sizes {sizes} must multiply to m = {m}")
            factor_sizes = sizes
        set_(self, "factor_sizes", factor_sizes)
        if not isinstance(kind, str):
            raise TypeError(f"kind must be a string, got {type(kind).__name__}")
        set_(self, "kind", kind)
        names: dict[str, Any] = {}
        for attr, value, n in (
            ("context_names", context_names, m),
            ("label_names", label_names, Vn),
            ("attribute_names", attribute_names, pn),
        ):
            if value is None or callable(value):
                names[attr] = value  # default names, or a builder called on first access
                continue
            value = tuple(map(str, value))
            if len(value) != n:
                raise ValueError(f"{attr} must have {n} entries, got {len(value)}")
            names[attr] = value
        set_(self, "_names", names)
        set_(self, "params", dict(params or {}))

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}: Design is immutable")

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}: Design is immutable")

    # -- names (built on first access: a 10^6-context design should not pay for 10^6 strings up front)
    def _name_tuple(self, attr: str, n: int, prefix: str) -> tuple[str, ...]:
        value = self._names[attr]
        if value is None:
            value = tuple(f"{prefix}{i}" for i in range(n))
        elif callable(value):
            value = tuple(value())
        self._names[attr] = value
        return value

    @property
    def context_names(self) -> tuple[str, ...]:
        """(m,) readable context names."""
        return self._name_tuple("context_names", self.m, "c")

    @property
    def label_names(self) -> tuple[str, ...]:
        """(V,) readable token names."""
        return self._name_tuple("label_names", self.V, "y")

    @property
    def attribute_names(self) -> tuple[str, ...]:
        """(p,) readable attribute names."""
        return self._name_tuple("attribute_names", self.p, "x")

    # -- shapes -------------------------------------------------------------------------------------
    @property
    def V(self) -> int:
        """Vocabulary size (rows of ``Y``)."""
        return self._V

    @property
    def m(self) -> int:
        """Number of contexts (columns of ``Y``)."""
        return self._m

    @property
    def pi(self) -> np.ndarray:
        """(m,) context weights (uniform unless given)."""
        w = self._pi
        if w is None:
            w = np.full(self.m, 1.0 / self.m)
            w.setflags(write=False)
            object.__setattr__(self, "_pi", w)
        return w

    @property
    def p(self) -> int:
        """Number of latent attributes (rows of ``X``)."""
        return self._p

    @property
    def labels(self) -> np.ndarray | None:
        """(m,) token of each context when the one-hot labels are held as indices, else ``None``."""
        if isinstance(self._labels, str):  # "identity"
            lab = np.arange(self.m, dtype=np.int64)
            lab.setflags(write=False)
            return lab
        return self._labels

    @property
    def attributes(self) -> np.ndarray | None:
        """(m, k) attribute rows carried by each context when the code is held as indices, else ``None``."""
        att = self._attributes
        if callable(att):
            att = np.asarray(att(), dtype=np.int64)
            att.setflags(write=False)
            object.__setattr__(self, "_attributes", att)
        return att

    @property
    def implicit(self) -> bool:
        """True when labels or attributes are held as index arrays (materialised on request)."""
        return self._labels is not None or self._attributes is not None

    def _check_dense(self, name: str, rows: int, use: str) -> None:
        nbytes = 8 * rows * self.m
        if nbytes > DENSE_MAX_BYTES:
            raise ValueError(
                f"design.{name} would be a dense ({rows}, {self.m}) float64 array of {_fmt_bytes(nbytes)} "
                f"(limit ufmtheory.designs.DENSE_MAX_BYTES = {_fmt_bytes(DENSE_MAX_BYTES)}); {use}"
            )

    @property
    def Y(self) -> np.ndarray:
        """(V, m) next-token distributions (materialised from :attr:`labels` on first access)."""
        Y = self._Y
        if Y is None:
            self._check_dense(
                "Y",
                self.V,
                "use design.labels, or the reduced solvers (ut.reduced_solve, ut.predict_phases, "
                "ut.end_state), which never need dense labels",
            )  # fmt: skip
            Y = np.zeros((self.V, self.m))
            Y[self.labels, np.arange(self.m)] = 1.0
            Y.setflags(write=False)
            object.__setattr__(self, "_Y", Y)
        return Y

    @property
    def X(self) -> np.ndarray:
        """(p, m) binary attribute code (materialised from :attr:`attributes` on first access)."""
        X = self._X
        if X is None:
            self._check_dense(
                "X", self.p, "use design.attributes, or the reduced solvers, which never need the dense code"
            )
            X = np.zeros((self.p, self.m))
            att = self.attributes
            assert att is not None  # no dense X: the code is held as indices
            X[att.ravel(), np.repeat(np.arange(self.m), att.shape[1])] = 1.0
            X.setflags(write=False)
            object.__setattr__(self, "_X", X)
        return X

    # -- structure ----------------------------------------------------------------------------------
    @property
    def is_one_hot(self) -> bool:
        """True when every context has a single next token."""
        if self._labels is not None:
            return True
        return bool(np.all((self._Y == 0) | (self._Y == 1)))

    @property
    def has_identity_labels(self) -> bool:
        """True when ``Y = I`` (V = m and context j is followed by token j only), without materialising Y."""
        if self.V != self.m:
            return False
        if isinstance(self._labels, str):
            return True
        if self._labels is not None:
            return bool(np.array_equal(self._labels, np.arange(self.m)))
        return bool(np.array_equal(self.Y, np.eye(self.m)))

    @property
    def has_uniform_weights(self) -> bool:
        """True when all context weights equal ``1/m``."""
        return self._pi is None or bool(np.allclose(self._pi, 1.0 / self.m))

    @property
    def label_mass(self) -> np.ndarray:
        """(V,) probability of each token as a next token, ``Y @ pi``."""
        if self._labels is not None:
            return np.bincount(np.asarray(self.labels), weights=self.pi, minlength=self.V)
        return self.Y @ self.pi

    @property
    def used_labels(self) -> np.ndarray:
        """Indices of tokens that follow at least one context (``label_mass > 0``)."""
        return np.flatnonzero(self.label_mass > 0)

    @property
    def label_X(self) -> np.ndarray:
        """(p, V) attribute code of each label token: the pi-weighted mean code of the contexts it follows.

        For one-hot designs where every context has its own label this is just ``X`` with columns permuted
        to label order, so metrics on the label Gram ``W Wᵀ`` can use the same attribute structure.
        Tokens that follow no context get a zero column.
        """
        weighted = self.X @ (self.pi[:, None] * self.Y.T)  # (p, V)
        mass = self.label_mass
        out = np.zeros_like(weighted)
        used = mass > 0
        out[:, used] = weighted[:, used] / mass[used]
        return out

    def balanced_one_hot_classes(self) -> tuple[int, int] | None:
        """``(K, n)`` when the design is balanced one-hot: every token follows exactly ``n`` contexts,
        weights are uniform, so Zhu et al.'s closed form applies; otherwise ``None``."""
        if not self.is_one_hot or not self.has_uniform_weights:
            return None
        if isinstance(self._labels, str):
            return self.V, 1
        if self._labels is not None:
            counts = np.bincount(self._labels, minlength=self.V)
        else:
            counts = self.Y.sum(axis=1)
        if np.any(counts == 0) or not np.all(counts == counts[0]):
            return None
        return self.V, int(counts[0])

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description (for reports)."""
        return {
            "kind": self.kind,
            "V": self.V,
            "m": self.m,
            "p": self.p,
            "factor_sizes": list(self.factor_sizes) if self.factor_sizes else None,
            "one_hot": self.is_one_hot,
            "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.params.items()},
        }

    def describe(self) -> str:
        """One readable line naming the design, e.g. ``"factorial 3×3 (K = 9)"``."""
        if self.kind == "factorial" and self.factor_sizes:
            return f"factorial {'×'.join(map(str, self.factor_sizes))} (K = {self.m})"
        if self.kind == "hierarchical":
            return (
                f"hierarchical depth {self.params.get('depth')}, branching {self.params.get('branching')} "
                f"(K = {self.m})"
            )
        if self.kind == "random_attributes":
            return f"random attributes: {self.m} contexts, {self.params.get('k')} of {self.p} features each"
        return f"{self.kind} design: {self.m} contexts, {self.V} tokens, {self.p} attributes"

    def __repr__(self) -> str:
        return f"Design(kind={self.kind!r}, V={self.V}, m={self.m}, p={self.p}, params={self.params})"
