"""Token sequences whose empirical next-token statistics are exactly a design's ``Y`` (docs: Theory §2).

Every context ``j`` of a :class:`~ufmtheory.designs.Design` becomes one input sequence; the token that
follows its last position is the label. Vocabulary (ids in this order):

* special tokens: ``<bos>`` and, only when sequences differ in length, ``<pad>``;
* one *input* token per attribute row of ``X`` (factorial: one token per value of each factor, disjoint
  across factors; hierarchical: one per internal tree node);
* context-id tokens ``ctx[name]``, only for contexts whose attribute set does not identify them (see
  ``context_ids`` below);
* the ``V`` *label* tokens (``design.label_names``), separate from the input tokens: a label never appears
  as an input.

Sequence of context ``j``: ``[<pad> ...] <bos> x_{a_1} ... x_{a_k} [ctx[j]]`` with ``a_1 < ... < a_k`` the
attributes it carries (rows of ``X`` in order, so factorial contexts read ``<bos> a_1 ... a_F`` and
hierarchical leaves ``<bos> anc_1 ... anc_{D-1} ctx[leaf]``). Padding goes on the left, so the
label-predicting position is the last one (``final_pos = T - 1``) for every row; the model masks ``<pad>``
keys out of attention, so padding carries no information.

``context_ids``:

* ``"auto"`` (default): a context gets an id token only when another context carries the same attribute
  set (hierarchical leaves under one parent, duplicate random-attribute codes, designs without ``X``), so
  that every context is distinguishable and nothing else is added;
* ``"all"``: every context gets its own id token (a per-context free channel, like β in the modified UFM);
* ``"none"``: no id tokens; a design whose contexts are not distinguishable by attributes alone is refused.

Exact statistics. *Hard* mode (``soft_targets=False``, or ``None`` when possible): the joint probabilities
``q_vj = π_j Y_vj`` are written as ``c_vj / M`` with integers ``c_vj`` and the smallest common denominator
``M ≤ max_rows``; the dataset holds ``c_vj`` rows of context ``j`` with label ``v`` (``M`` rows in all), so
counts per context reproduce ``Y`` and context frequencies reproduce ``π``. Designs built from rationals
(one-hot designs, :func:`~ufmtheory.designs.from_counts`, decimal distributions) reproduce ``Y`` bit for bit;
in general the rows must match ``q`` to 1e-9 relative or hard mode is not used. *Soft* mode
(``soft_targets=True``, or ``None`` when no such ``M`` exists): one row per context with weight ``m π_j``
and the full distribution ``Y[:, j]`` as its target, so the statistics hold by construction (up to the
float32 rounding of training).

Loss positions: ``"label"`` (default; the one-hot regime of the theory) puts a target only on the last
position; ``"all"`` is plain next-token training, with a target at every non-pad position (the next input
token, then the label).

Example:
    >>> import ufmtheory as ut
    >>> data = build_sequences(ut.designs.factorial((2, 3)))
    >>> data.n_rows, data.seq_len, data.vocab[:4], data.final_pos
    (6, 3, ('<bos>', 'a0', 'a1', 'b0'), 2)
    >>> [data.vocab[t] for t in data.tokens[5]], data.vocab[data.targets[5, -1]]
    (['<bos>', 'a1', 'b2'], 'next[a1b2]')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ufmtheory.designs import Design

__all__ = ["IGNORE_INDEX", "BOS", "PAD", "SequenceData", "build_sequences", "exact_counts"]

IGNORE_INDEX = -100
BOS, PAD = "<bos>", "<pad>"
_LOSS_POSITIONS = ("label", "all")
_CONTEXT_IDS = ("auto", "all", "none")
# Rows must reproduce the joint probabilities to this relative accuracy for hard (count) mode.
_EXACT_RTOL = 1e-9


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class SequenceData:
    """A token dataset with exact next-token statistics (built by :func:`build_sequences`).

    Attributes:
        tokens: (N, T) int64 input tokens, one row per training sequence.
        targets: hard mode (N, T) int64 next-token ids, ``IGNORE_INDEX`` (-100) where no loss is taken;
            soft mode (N, T, n_vocab) float64 target distributions, all-zero rows where no loss is taken.
        context: (N,) int64 context index of each row.
        weights: (N,) float64 row weights (1 in hard mode, ``m π_j`` in soft mode).
        context_tokens: (m, T) int64 the distinct input sequence of each context (row ``j``: context ``j``).
        vocab: token names (index = token id).
        label_ids: (V,) int64 token id of each label (row of ``Y``).
        design: the design the data reproduces.
        bos_id, pad_id: special token ids (``pad_id`` is ``None`` when every sequence has the same length).
        loss_positions: ``"label"`` or ``"all"``.
        multiplier: hard mode: ``M``, the number of rows (row counts are ``M π_j Y_vj``); soft mode ``None``.
    """

    tokens: np.ndarray
    targets: np.ndarray
    context: np.ndarray
    weights: np.ndarray
    context_tokens: np.ndarray
    vocab: tuple[str, ...]
    label_ids: np.ndarray
    design: Design
    bos_id: int
    pad_id: int | None
    loss_positions: str
    multiplier: int | None

    def __post_init__(self) -> None:
        tokens = np.asarray(self.tokens, dtype=np.int64)
        if tokens.ndim != 2 or tokens.shape[0] < 1 or tokens.shape[1] < 1:
            raise ValueError(f"tokens must be a non-empty (N, T) array, got shape {tokens.shape}")
        N, T = tokens.shape
        n_vocab = len(self.vocab)
        if tokens.min() < 0 or tokens.max() >= n_vocab:
            raise ValueError(
                f"tokens must be ids in [0, {n_vocab}), got range [{tokens.min()}, {tokens.max()}]"
            )
        soft = np.asarray(self.targets).dtype.kind == "f"
        targets = np.asarray(self.targets, dtype=np.float64 if soft else np.int64)
        want = (N, T, n_vocab) if soft else (N, T)
        if targets.shape != want:
            raise ValueError(f"targets must have shape {want}, got {targets.shape}")
        context = np.asarray(self.context, dtype=np.int64)
        weights = np.asarray(self.weights, dtype=np.float64)
        m, V = self.design.m, self.design.V
        if context.shape != (N,) or context.min() < 0 or context.max() >= m:
            raise ValueError(f"context must be (N,) = ({N},) indices into m = {m} contexts")
        if weights.shape != (N,) or np.any(weights <= 0) or not np.all(np.isfinite(weights)):
            raise ValueError(f"weights must be (N,) = ({N},) positive finite numbers")
        ctx_tokens = np.asarray(self.context_tokens, dtype=np.int64)
        if ctx_tokens.shape != (m, T):
            raise ValueError(f"context_tokens must have shape (m, T) = ({m}, {T}), got {ctx_tokens.shape}")
        if not np.array_equal(tokens, ctx_tokens[context]):
            raise ValueError("tokens must equal context_tokens[context] row by row")
        label_ids = np.asarray(self.label_ids, dtype=np.int64)
        if label_ids.shape != (V,) or np.unique(label_ids).size != V:
            raise ValueError(f"label_ids must be (V,) = ({V},) distinct token ids")
        if self.loss_positions not in _LOSS_POSITIONS:
            raise ValueError(f"loss_positions must be one of {_LOSS_POSITIONS}, got {self.loss_positions!r}")
        for name, arr in (
            ("tokens", tokens),
            ("targets", targets),
            ("context", context),
            ("weights", weights),
            ("context_tokens", ctx_tokens),
            ("label_ids", label_ids),
        ):
            object.__setattr__(self, name, _readonly(arr))
        object.__setattr__(self, "vocab", tuple(self.vocab))

    # -- shapes -------------------------------------------------------------------------------------
    @property
    def n_rows(self) -> int:
        """N, the number of training sequences."""
        return int(self.tokens.shape[0])

    @property
    def seq_len(self) -> int:
        """T, the input length (``<bos>`` and input tokens, padding included)."""
        return int(self.tokens.shape[1])

    @property
    def final_pos(self) -> int:
        """Position whose next token is the label (the last one: padding is on the left)."""
        return self.seq_len - 1

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def soft(self) -> bool:
        """True when targets are distributions (soft mode)."""
        return self.targets.ndim == 3

    @property
    def m(self) -> int:
        return self.design.m

    @property
    def V(self) -> int:
        return self.design.V

    # -- statistics ---------------------------------------------------------------------------------
    def label_statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """Empirical ``(Y, π)`` of the label position: ``(V, m)`` next-token frequencies per context
        (weighted by ``weights``) and ``(m,)`` context frequencies. Equal to the design's by construction."""
        m, V = self.m, self.V
        lookup = np.full(self.vocab_size, -1, dtype=np.int64)
        lookup[self.label_ids] = np.arange(V)
        joint = np.zeros((V, m))
        if self.soft:
            last = self.targets[:, -1, :][:, self.label_ids]  # (N, V)
            np.add.at(joint.T, self.context, self.weights[:, None] * last)
        else:
            lab = lookup[self.targets[:, -1]]
            if np.any(lab < 0):
                raise ValueError("a row's last target is not a label token")
            np.add.at(joint, (lab, self.context), self.weights)
        n_ctx = joint.sum(axis=0)
        return joint / n_ctx, n_ctx / n_ctx.sum()

    # -- batching -----------------------------------------------------------------------------------
    def batch(self, step: int, batch_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Row indices and loss weights of the batch used at optimiser step ``step``.

        A pure function of ``(step, batch_size, seed)``, so a resumed run sees the same batches.

        * ``N <= batch_size``: the full dataset with its weights (full-batch training: the gradient is the
          exact gradient of the exact-statistics loss).
        * Uniform weights (hard mode): epochs of ``N`` rows, each a seeded permutation (seed
          ``[seed, epoch]``); consecutive batches take consecutive slices, so each epoch sees every row
          (the exact statistics) exactly once.
        * Non-uniform weights (soft mode, ``N > batch_size``): ``batch_size`` rows drawn with replacement
          with probability ∝ weight (seed ``[seed, 1, step]``), equally weighted: an unbiased estimate.

        Returns:
            ``(idx, w)``: (B,) int64 row indices and (B,) float64 weights.
        """
        N = self.n_rows
        if N <= batch_size:
            return np.arange(N, dtype=np.int64), np.array(self.weights)
        if np.all(self.weights == self.weights[0]):
            start = int(step) * int(batch_size)
            first, last = start // N, (start + batch_size - 1) // N
            perms = np.concatenate(
                [np.random.default_rng([seed, e]).permutation(N) for e in range(first, last + 1)]
            )
            off = start - first * N
            return perms[off : off + batch_size].astype(np.int64), np.ones(batch_size)
        rng = np.random.default_rng([seed, 1, int(step)])
        idx = rng.choice(N, size=batch_size, replace=True, p=self.weights / self.weights.sum())
        return idx.astype(np.int64), np.ones(batch_size)

    def decode(self, row: int) -> list[str]:
        """Token names of row ``row`` (padding included)."""
        return [self.vocab[t] for t in self.tokens[row]]

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description (for trajectories' metadata and reports)."""
        return {
            "n_rows": self.n_rows,
            "seq_len": self.seq_len,
            "vocab_size": self.vocab_size,
            "soft": self.soft,
            "multiplier": self.multiplier,
            "loss_positions": self.loss_positions,
            "pad": self.pad_id is not None,
            "n_context_ids": int(sum(v.startswith("ctx[") for v in self.vocab)),
            "example": self.decode(0),
        }

    def __repr__(self) -> str:
        mode = "soft" if self.soft else f"hard, M={self.multiplier}"
        return (
            f"SequenceData(N={self.n_rows}, T={self.seq_len}, vocab={self.vocab_size}, m={self.m}, "
            f"V={self.V}, {mode}, loss_positions={self.loss_positions!r})"
        )


def exact_counts(design: Design, max_rows: int = 100_000) -> np.ndarray | None:
    """Integer joint counts ``C: (V, m)`` with ``C / C.sum() = π_j Y_vj`` (to 1e-9 relative), or ``None``.

    ``C.sum()`` is the smallest common denominator ``M`` of the joint probabilities (found with
    :meth:`fractions.Fraction.limit_denominator`); ``None`` when it exceeds ``max_rows`` or when the
    probabilities are not (close enough to) rationals with such a denominator.

    Example:
        >>> import ufmtheory as ut
        >>> exact_counts(ut.designs.from_counts([[6, 2], [0, 8]])).tolist()
        [[3, 0], [1, 4]]
    """
    q = np.asarray(design.Y) * np.asarray(design.pi)[None, :]
    nz = q > 0
    M = 1
    for val in np.unique(q[nz]):
        M = math.lcm(M, Fraction(float(val)).limit_denominator(max_rows).denominator)
        if M > max_rows:
            return None
    scaled = q * M
    C = np.rint(scaled)
    if np.any(np.abs(C - scaled) > _EXACT_RTOL * np.maximum(1.0, scaled)) or np.any(C[nz] < 1):
        return None
    return C.astype(np.int64)


def _names(names: tuple[str, ...] | None) -> list[str]:
    # Design fills every name tuple in __post_init__; the Optional type is only its constructor argument.
    assert names is not None
    return [str(n) for n in names]


def _context_inputs(design: Design, context_ids: str) -> tuple[list[list[int]], np.ndarray]:
    """Attribute rows carried by each context, and which contexts get an id token."""
    X = np.asarray(design.X)
    attrs = [np.flatnonzero(X[:, j]).tolist() for j in range(design.m)]
    keys = [tuple(a) for a in attrs]
    counts: dict[tuple[int, ...], int] = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    shared = np.array([counts[k] > 1 for k in keys])
    if context_ids == "all":
        return attrs, np.ones(design.m, dtype=bool)
    if context_ids == "none":
        if shared.any():
            j = int(np.flatnonzero(shared)[0])
            raise ValueError(
                "context_ids='none' but contexts are not distinguishable by their attributes "
                f"(context {j}, {_names(design.context_names)[j]!r}, shares its attribute set with another)"
            )
        return attrs, np.zeros(design.m, dtype=bool)
    return attrs, shared


def build_sequences(
    design: Design,
    *,
    loss_positions: str = "label",
    soft_targets: bool | None = None,
    context_ids: str = "auto",
    max_rows: int = 100_000,
) -> SequenceData:
    """Token sequences for ``design`` with exact next-token statistics (see the module docstring).

    Args:
        design: any :class:`~ufmtheory.designs.Design`.
        loss_positions: ``"label"`` (loss on the label position only) or ``"all"`` (every position).
        soft_targets: ``True``: one row per context with the distribution ``Y[:, j]`` as target;
            ``False``: replicated rows with integer label counts (``ValueError`` if impossible within
            ``max_rows``); ``None``: hard when possible, else soft.
        context_ids: ``"auto"``, ``"all"`` or ``"none"`` (module docstring).
        max_rows: largest number of rows hard mode may use.

    Returns:
        A :class:`SequenceData`.

    Raises:
        ValueError: on a bad option, or when the requested mode cannot reproduce the statistics.

    Example:
        >>> import ufmtheory as ut
        >>> d = build_sequences(ut.designs.from_counts([[3, 1], [0, 4]]))
        >>> d.n_rows, d.multiplier, d.label_statistics()[0][:, 0].tolist()
        (8, 8, [0.75, 0.25])
    """
    if not isinstance(design, Design):
        raise TypeError(f"design must be a ufmtheory Design, got {type(design).__name__}")
    if loss_positions not in _LOSS_POSITIONS:
        raise ValueError(f"loss_positions must be one of {_LOSS_POSITIONS}, got {loss_positions!r}")
    if context_ids not in _CONTEXT_IDS:
        raise ValueError(f"context_ids must be one of {_CONTEXT_IDS}, got {context_ids!r}")
    if soft_targets not in (None, True, False):
        raise ValueError(f"soft_targets must be True, False or None, got {soft_targets!r}")
    if int(max_rows) < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    m, V = design.m, design.V
    counts = None if soft_targets is True else exact_counts(design, int(max_rows))
    if soft_targets is False and counts is None:
        raise ValueError(
            "soft_targets=False but pi_j * Y_vj are not multiples of 1/M for any "
            f"M <= max_rows = {max_rows}; use soft_targets=True (or None)"
        )
    attrs, has_id = _context_inputs(design, context_ids)

    # Vocabulary: specials, attribute tokens, context ids, labels.
    lengths = [1 + len(a) + int(i) for a, i in zip(attrs, has_id, strict=True)]
    T = max(lengths)
    needs_pad = min(lengths) < T
    specials = [BOS, PAD] if needs_pad else [BOS]
    attr_names = _names(design.attribute_names)
    ctx_names = _names(design.context_names)
    id_names = [f"ctx[{ctx_names[j]}]" for j in np.flatnonzero(has_id)]
    label_names = _names(design.label_names)
    all_names = specials + attr_names + id_names + label_names
    if len(set(all_names)) != len(all_names):
        attr_names = [f"in:{n}" for n in attr_names]
        label_names = [f"out:{n}" for n in label_names]
    vocab = tuple(specials + attr_names + id_names + label_names)
    bos_id, pad_id = 0, (1 if needs_pad else None)
    attr0 = len(specials)
    id0 = attr0 + len(attr_names)
    label_ids = np.arange(id0 + len(id_names), len(vocab), dtype=np.int64)

    ctx_tokens = np.full((m, T), pad_id if pad_id is not None else 0, dtype=np.int64)
    id_of = np.cumsum(has_id) - 1
    for j in range(m):
        seq = [bos_id] + [attr0 + a for a in attrs[j]] + ([id0 + int(id_of[j])] if has_id[j] else [])
        ctx_tokens[j, T - len(seq) :] = seq

    # Rows.
    if counts is not None:
        reps = counts.T.ravel()  # (m*V,) rows per (context, label), context-major
        context = np.repeat(np.repeat(np.arange(m), V), reps)
        label = np.repeat(np.tile(np.arange(V), m), reps)
        weights = np.ones(context.size)
        multiplier: int | None = int(counts.sum())
    else:
        context = np.arange(m)
        label = None
        weights = np.asarray(design.pi) * m
        multiplier = None
    tokens = ctx_tokens[context]
    N = tokens.shape[0]
    # Next input token at each position (targets for loss_positions="all"); pads and <bos>'s
    # predecessors excluded.
    nxt = np.full((N, T), IGNORE_INDEX, dtype=np.int64)
    if loss_positions == "all":
        nxt[:, :-1] = tokens[:, 1:]
        is_pad = tokens == pad_id if pad_id is not None else np.zeros_like(tokens, dtype=bool)
        nxt[is_pad] = IGNORE_INDEX
    if label is not None:
        targets: np.ndarray = nxt
        targets[:, -1] = label_ids[label]
    else:
        targets = np.zeros((N, T, len(vocab)))
        rows, pos = np.nonzero(nxt != IGNORE_INDEX)
        targets[rows, pos, nxt[rows, pos]] = 1.0
        targets[:, -1, label_ids] = np.asarray(design.Y).T
    data = SequenceData(
        tokens=tokens,
        targets=targets,
        context=context,
        weights=weights,
        context_tokens=ctx_tokens,
        vocab=vocab,
        label_ids=label_ids,
        design=design,
        bos_id=bos_id,
        pad_id=pad_id,
        loss_positions=loss_positions,
        multiplier=multiplier,
    )
    if counts is not None:  # rows must reproduce the design (to 1e-9): otherwise exact_counts is wrong
        Yh, pih = data.label_statistics()
        if not (
            np.allclose(Yh, np.asarray(design.Y), rtol=_EXACT_RTOL, atol=1e-12)
            and np.allclose(pih, np.asarray(design.pi), rtol=_EXACT_RTOL, atol=1e-12)
        ):
            raise AssertionError("internal error: hard-mode rows do not reproduce the design's statistics")
    return data
