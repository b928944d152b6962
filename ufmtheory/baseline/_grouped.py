"""Grouped layers for :func:`~ufmtheory.baseline.many.train_many`: K copies of the GPT as one model.

A copy of the GPT whose ``Linear``, ``LayerNorm`` and ``Embedding`` layers hold the K seeds' parameters
stacked along a leading axis; the K seeds' batches are concatenated along the batch axis (seed-major rows)
and each grouped layer applies seed k's weights to seed k's rows (module docstring of
:mod:`ufmtheory.baseline.many`).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect

import torch
import torch.nn.functional as F
from torch import nn

from ufmtheory.baseline.config import TrainConfig
from ufmtheory.baseline.model import GPT, Block
from ufmtheory.baseline.train import _optimizer

__all__: list[str] = []


# -- grouped layers -------------------------------------------------------------------------------------
class _Rows:
    """Rows per seed of the current forward pass (read by embeddings indexed by a shared 1-D index)."""

    def __init__(self) -> None:
        self.value = 1


@dataclasses.dataclass
class _Link:
    """A stacked (K, ...) parameter, the K models' own parameters, and whether each slice is stored
    transposed (``stacked[k] == own[k].T``)."""

    stacked: nn.Parameter
    own: list[torch.Tensor]
    transposed: bool


class _GroupedLinear(nn.Module):
    """K linear layers: input rows (K·B, ..., in), seed-major, → (K·B, ..., out).

    ``weight`` is stored (K, in, out) (each seed's weight transposed: batched products with a row-major
    right factor are ~30 % faster on CPU than with the (K, out, in) layout's transposed view), or
    (K, out, in) when ``transposed=False`` (a weight tied to an embedding table keeps that table's layout).
    """

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter | None, transposed: bool) -> None:
        super().__init__()
        self.weight = weight
        self.bias = bias
        self.transposed = transposed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        K = self.weight.shape[0]
        xg = x.reshape(K, -1, x.shape[-1])
        wt = self.weight if self.transposed else self.weight.transpose(1, 2)
        y = torch.bmm(xg, wt) if self.bias is None else torch.baddbmm(self.bias.unsqueeze(1), xg, wt)
        return y.reshape(*x.shape[:-1], y.shape[-1])


class _GroupedLayerNorm(nn.Module):
    """K LayerNorms over the last axis: the normalisation is per row, the affine map per seed."""

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter | None, eps: float) -> None:
        super().__init__()
        self.weight = weight
        self.bias = bias
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        K, C = self.weight.shape
        y = F.layer_norm(x, (C,), None, None, self.eps).reshape(K, -1, C)
        w = self.weight.unsqueeze(1)
        y = y * w if self.bias is None else torch.addcmul(self.bias.unsqueeze(1), y, w)
        return y.reshape(x.shape)


class _GroupedEmbedding(nn.Module):
    """K embedding tables (K, N, C). A (K·B, ...) index (seed-major rows) looks up its seed's table; a 1-D
    index (the GPT's positions, shared by every row) gives each seed's rows their own table's vectors."""

    def __init__(self, weight: nn.Parameter, rows: _Rows) -> None:
        super().__init__()
        self.weight = weight
        self.rows = rows

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        K, N, C = self.weight.shape
        if idx.ndim == 1:
            out = self.weight[:, idx]  # (K, T, C)
            B = self.rows.value
            return out.unsqueeze(1).expand(K, B, *out.shape[1:]).reshape(K * B, *out.shape[1:])
        offset = torch.arange(K, device=idx.device).repeat_interleave(idx.shape[0] // K) * N
        return F.embedding(idx + offset.view(-1, *([1] * (idx.ndim - 1))), self.weight.reshape(K * N, C))


def _grouped_model(models: list[GPT], rows: _Rows) -> tuple[GPT, dict[int, nn.Parameter], list[_Link]]:
    """A GPT whose parametrised layers hold the K models' stacked parameters.

    Returns ``(grouped, stacked_of, links)``: ``stacked_of`` maps ``id`` of a parameter of ``models[0]`` to
    its stacked parameter (tied weights share one); ``links`` pairs each stacked parameter with the K
    models' own parameters (for copying back at snapshots) and says whether it is stored transposed.
    """
    grouped = copy.deepcopy(models[0])
    stacked_of: dict[int, nn.Parameter] = {}
    links: list[_Link] = []
    uses: dict[int, int] = {}
    for module in models[0].modules():
        for p in module._parameters.values():
            if p is not None:
                uses[id(p)] = uses.get(id(p), 0) + 1

    def stack(module_name: str, pname: str, transpose: bool = False) -> tuple[nn.Parameter | None, bool]:
        own = [m.get_submodule(module_name)._parameters.get(pname) for m in models]
        if own[0] is None:
            return None, False
        key = id(own[0])
        if key not in stacked_of:
            transpose = transpose and uses[key] == 1  # a tied weight keeps its first user's layout
            values = [p.detach().T if transpose else p.detach() for p in own]
            stacked_of[key] = nn.Parameter(torch.stack(values).contiguous())
            links.append(_Link(stacked_of[key], own, transpose))
        link = next(lk for lk in links if lk.stacked is stacked_of[key])
        return stacked_of[key], link.transposed

    for name, module in list(models[0].named_modules()):
        if not module._parameters:
            continue
        new: nn.Module
        if type(module) is nn.Linear:
            weight, transposed = stack(name, "weight", transpose=True)
            assert weight is not None
            new = _GroupedLinear(weight, stack(name, "bias")[0], transposed)
        elif type(module) is nn.LayerNorm and module.elementwise_affine and len(module.normalized_shape) == 1:
            weight = stack(name, "weight")[0]
            assert weight is not None
            new = _GroupedLayerNorm(weight, stack(name, "bias")[0], module.eps)
        elif (
            type(module) is nn.Embedding
            and module.padding_idx is None
            and module.max_norm is None
            and not module.sparse
            and not stack(name, "weight")[1]
        ):
            weight = stack(name, "weight")[0]
            assert weight is not None
            new = _GroupedEmbedding(weight, rows)
        else:  # a layer this module does not know how to group: refuse rather than share weights
            raise NotImplementedError(
                f"train_many cannot group the parameters of layer {name!r} ({type(module).__name__}); "
                "train the seeds separately with train()"
            )
        parent, _, attr = name.rpartition(".")
        setattr(grouped.get_submodule(parent) if parent else grouped, attr, new)
    known = {id(p) for p in stacked_of.values()}
    leftover = [n for n, p in grouped.named_parameters() if id(p) not in known]
    if leftover:
        raise NotImplementedError(f"train_many cannot group the parameters {leftover}")
    return grouped, stacked_of, links


def _stacked_optimizer(
    model: GPT, config: TrainConfig, stacked_of: dict[int, nn.Parameter]
) -> torch.optim.Optimizer:
    """:func:`train`'s optimiser for ``model``, rebuilt over the stacked parameters (same class, groups and
    hyperparameters), so that any change to train()'s optimiser carries over."""
    reference = _optimizer(model, config)
    defaults = reference.defaults
    # Each group keeps only what differs from the defaults (its weight decay), so that the constructor's
    # implementation choice below is not overridden by the groups' copies of the reference's defaults.
    groups = [
        {
            **{k: v for k, v in g.items() if k != "params" and (k not in defaults or v != defaults[k])},
            "params": [stacked_of[id(p)] for p in g["params"]],
        }
        for g in reference.param_groups
    ]
    cls = type(reference)
    accepted = inspect.signature(cls.__init__).parameters
    # defaults may hold internal keys the constructor does not take (AdamW: decoupled_weight_decay).
    kwargs = {k: v for k, v in defaults.items() if k in accepted}
    if "fused" in accepted and not kwargs.get("foreach") and not kwargs.get("differentiable"):
        # The fused kernel applies the same update in one pass over each tensor (rounding may differ in
        # the last bit): with K seeds the optimiser touches K times the memory, and the per-op loop of
        # the default CPU implementation was a third of the batched step (4×4 demo, 8 seeds).
        try:
            return cls(groups, **{**kwargs, "fused": True})
        except (RuntimeError, ValueError):  # no fused kernel for this device/dtype: the default one
            pass
    return cls(groups, **kwargs)


def _last_position_logits(grouped: GPT, tokens: torch.Tensor) -> torch.Tensor:
    """``grouped(tokens, last_only=True)`` without the work nothing reads: in the last block, the attention
    output projection, the second LayerNorm and the MLP run on the last position only (its query attends
    every non-pad position, so no causal mask is needed); the keys and values of every position are still
    computed. Row for row the same operations as the GPT's forward, up to float32 rounding of the smaller
    products. (K·B, T) token ids → (K·B, vocab) logits."""
    B, T = tokens.shape
    pos = torch.arange(T, device=tokens.device)
    x = grouped.drop(grouped.tok_emb(tokens) + grouped.pos_emb(pos))
    mask = grouped._mask(tokens)
    *first, last = grouped.blocks
    for block in first:
        x = block(x, mask)
    assert isinstance(last, Block)
    attn = last.attn
    C = x.shape[-1]
    H = attn.n_heads
    q, k, v = attn.qkv(last.ln1(x)).split(C, dim=2)
    q = q[:, -1:].reshape(B, 1, H, C // H).transpose(1, 2)  # (B, H, 1, hd)
    k, v = (z.reshape(B, T, H, C // H).transpose(1, 2) for z in (k, v))  # (B, H, T, hd)
    m = None if mask is None else mask[:, :, -1:, :]  # (B, 1, 1, T)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=m)  # (B, H, 1, hd)
    h = x[:, -1] + attn.resid_drop(attn.proj(y.transpose(1, 2).reshape(B, C)))
    h = h + last.mlp(last.ln2(h))
    return grouped.head(grouped.ln_f(h))
