"""A small pre-LayerNorm GPT in plain torch: the transformer whose Gram trajectories the theory predicts.

Architecture (GPT-2 style): token + learned position embeddings; ``n_layers`` blocks
``x + Attn(LN(x))``, ``x + MLP(LN(x))`` with causal multi-head self-attention and a ``mlp_ratio``× GELU MLP;
a final LayerNorm; an unembedding without bias, tied to the token embedding or separate.

In UFM terms (docs: Theory §3): the context embedding ``h_j`` is the final-norm output at the last
position of context ``j``'s sequence (:meth:`GPT.features`), and ``W`` is the unembedding restricted to the
label tokens; logits are exactly ``W h`` (no bias), as in the UFM.

Padding: when ``GPTConfig.pad_id`` is set, keys holding that token are masked out of attention (each
position still attends to itself, so a pad query never sees an empty row), so left padding carries no
information. Initialisation: normal(0, ``init_std``) for weights and embeddings, zero biases, residual
output projections scaled by ``1/sqrt(2 n_layers)`` [Radford et al. 2019, GPT-2].

Example:
    >>> import torch
    >>> cfg = GPTConfig(vocab_size=10, n_positions=4, width=16, n_heads=2)
    >>> model = GPT(cfg)
    >>> model(torch.zeros(3, 4, dtype=torch.long)).shape
    torch.Size([3, 4, 10])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GPTConfig", "GPT", "resolve_device"]


@dataclass(frozen=True)
class GPTConfig:
    """Shape of the model.

    Attributes:
        vocab_size: number of token ids (>= 2).
        n_positions: longest sequence (learned position embeddings), >= 1.
        n_layers: transformer blocks (>= 1).
        width: residual width d (>= 1, divisible by ``n_heads``).
        n_heads: attention heads (>= 1).
        tied: unembedding tied to the token embedding (``W = E``) or a separate matrix.
        dropout: dropout probability on attention weights, residual branches and embeddings, in [0, 1).
        mlp_ratio: MLP hidden width / ``width`` (>= 1).
        pad_id: token id masked out of attention as a key, or ``None``.
        init_std: standard deviation of the initial weights (> 0).
    """

    vocab_size: int
    n_positions: int
    n_layers: int = 2
    width: int = 64
    n_heads: int = 4
    tied: bool = False
    dropout: float = 0.0
    mlp_ratio: int = 4
    pad_id: int | None = None
    init_std: float = 0.02

    def __post_init__(self) -> None:
        # Upper bounds keep a typo from allocating the machine away (a 10^7-wide embedding is 10^14 floats).
        for name, lo, hi in (
            ("vocab_size", 2, 10**7),
            ("n_positions", 1, 10**6),
            ("n_layers", 1, 1024),
            ("width", 1, 2**16),
            ("n_heads", 1, 2**16),
            ("mlp_ratio", 1, 64),
        ):
            _check_int(name, getattr(self, name), lo, hi)
        if self.width % self.n_heads:
            raise ValueError(
                f"width must be divisible by n_heads, got width={self.width}, n_heads={self.n_heads}"
            )
        if not isinstance(self.tied, bool):
            raise ValueError(f"tied must be a bool, got {self.tied!r}")
        if isinstance(self.dropout, bool) or not (
            isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0
        ):
            raise ValueError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        if self.pad_id is not None:
            _check_int("pad_id", self.pad_id, 0)
            if self.pad_id >= self.vocab_size:
                raise ValueError(f"pad_id must be < vocab_size = {self.vocab_size}, got {self.pad_id}")
        if not (
            isinstance(self.init_std, (int, float)) and math.isfinite(self.init_std) and self.init_std > 0
        ):
            raise ValueError(f"init_std must be a finite number > 0, got {self.init_std!r}")


def _check_int(name: str, value: object, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        rule = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be an integer {rule}, got {value!r}")


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; ``"cuda"`` without a GPU raises ``ValueError``."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch.cuda.is_available() is False (use 'auto' or 'cpu')")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', got {device!r}")
    return torch.device(device)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t sees positions <= t (and no pad keys)."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.dropout = float(cfg.dropout)
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width)
        self.proj = nn.Linear(cfg.width, cfg.width)
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T, d); attn_mask: None (plain causal) or (B, 1, T, T) bool, True = may attend."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (z.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for z in (q, k, v))
        p = self.dropout if self.training else 0.0
        if attn_mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p)
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(B, T, C)))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: ``x + Attn(LN(x))``, then ``x + MLP(LN(x))``."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.width)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.width)
        hidden = cfg.mlp_ratio * cfg.width
        self.mlp = nn.Sequential(
            nn.Linear(cfg.width, hidden), nn.GELU(), nn.Linear(hidden, cfg.width), nn.Dropout(cfg.dropout)
        )

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), attn_mask)
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Pre-LN GPT (see the module docstring).

    Args:
        cfg: the :class:`GPTConfig`.
    """

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.width)
        self.pos_emb = nn.Embedding(cfg.n_positions, cfg.width)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.width)
        self.head = nn.Linear(cfg.width, cfg.vocab_size, bias=False)
        if cfg.tied:
            self.head.weight = self.tok_emb.weight
        self._init_weights()

    def _init_weights(self) -> None:
        std = self.cfg.init_std
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, 0.0, std)
        # Residual branches add up over 2 n_layers sublayers: scale their output projections (GPT-2).
        for block in self.blocks:
            assert isinstance(block, Block)
            for lin in (block.attn.proj, block.mlp[2]):
                assert isinstance(lin, nn.Linear)
                nn.init.normal_(lin.weight, 0.0, std / math.sqrt(2 * self.cfg.n_layers))

    @property
    def unembedding(self) -> torch.Tensor:
        """(vocab_size, width) unembedding matrix (row ``v`` is the output vector of token ``v``)."""
        return self.head.weight

    def num_params(self) -> int:
        """Number of distinct trainable parameters (a tied matrix counts once)."""
        return sum(p.numel() for p in self.parameters())

    def _mask(self, tokens: torch.Tensor) -> torch.Tensor | None:
        pad = self.cfg.pad_id
        if pad is None:
            return None
        is_pad = tokens == pad
        if not bool(is_pad.any()):
            return None
        T = tokens.shape[1]
        causal = torch.ones(T, T, dtype=torch.bool, device=tokens.device).tril()
        eye = torch.eye(T, dtype=torch.bool, device=tokens.device)
        return (causal & (~is_pad)[:, None, None, :]) | eye  # (B, 1, T, T)

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids → (B, T, width) representations after the final LayerNorm."""
        B, T = tokens.shape
        if T > self.cfg.n_positions:
            raise ValueError(f"sequence length {T} exceeds n_positions = {self.cfg.n_positions}")
        pos = torch.arange(T, device=tokens.device)
        x = self.drop(self.tok_emb(tokens) + self.pos_emb(pos))
        mask = self._mask(tokens)
        for block in self.blocks:
            x = block(x, mask)
        return self.ln_f(x)

    def forward(self, tokens: torch.Tensor, *, last_only: bool = False) -> torch.Tensor:
        """Logits: (B, T, vocab_size), or (B, vocab_size) at the last position when ``last_only``."""
        h = self.features(tokens)
        if last_only:
            h = h[:, -1]
        return self.head(h)
