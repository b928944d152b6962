"""Probes that read a torch model's context features and unembedding rows by name, for
:class:`~ufmtheory.baseline.recorder.GramRecorder`: :func:`module_features` (a forward hook on a named
module) and :func:`parameter_rows` (rows of a named parameter). A name that does not exist, or label rows
outside the parameter (a design vocabulary larger than the model's), raise ``ValueError`` naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["FeaturesFn", "module_features", "parameter_rows"]

FeaturesFn = Callable[[nn.Module], Any]


def _names_hint(names: Iterable[str]) -> str:
    names = [n for n in names if n]
    shown = ", ".join(repr(n) for n in names[:12])
    return shown + (f", ... ({len(names)} in all)" if len(names) > 12 else "")


def _named(
    model: nn.Module, name: str, what: str, get: Callable[[str], Any], named: Callable[[], Any]
) -> Any:
    """``get(name)``; a missing ``what`` (module / parameter) is a ValueError listing the ``named()`` ones."""
    try:
        return get(name)
    except AttributeError:
        hint = _names_hint(n for n, _ in named())
        raise ValueError(
            f"{what} {name!r} does not exist in {type(model).__name__}; {what}s: {hint}"
        ) from None


def _submodule(model: nn.Module, name: str) -> nn.Module:
    return _named(model, name, "module", model.get_submodule, model.named_modules)


def _parameter(model: nn.Module, name: str) -> torch.Tensor:
    return _named(model, name, "parameter", model.get_parameter, model.named_parameters)


def _move(inputs: Any, device: torch.device) -> Any:
    if torch.is_tensor(inputs):
        return inputs.to(device)
    if isinstance(inputs, Mapping):
        return {k: _move(v, device) for k, v in inputs.items()}
    return inputs


def module_features(
    module: str,
    inputs: Any,
    *,
    position: int = -1,
    call: Callable[[nn.Module, Any], Any] | None = None,
) -> FeaturesFn:
    """A ``features`` function: run the model on ``inputs`` and read the output of ``module`` at ``position``.

    Args:
        module: dotted name of the submodule whose output is the representation (``"ln_f"`` for the
            package's GPT, ``"transformer.ln_f"`` for a Hugging Face GPT-2).
        inputs: (K, T) token ids (tensor or array; row ``j`` is context ``j``'s sequence), or a dict of
            such tensors passed as keyword arguments (``input_ids``, ``attention_mask``).
        position: sequence position of the label-predicting token (default the last).
        call: ``call(model, inputs)`` runs the forward pass (default ``model(inputs)`` or
            ``model(**inputs)``).

    Returns:
        ``features(model) -> (K, d)`` tensor. A missing module raises ``ValueError`` listing the names.
    """
    if not isinstance(module, str):
        raise TypeError(f"module must be a dotted module name (str), got {type(module).__name__}")
    if isinstance(inputs, np.ndarray):
        inputs = torch.from_numpy(np.array(inputs, dtype=np.int64))  # a writable copy
    if not (torch.is_tensor(inputs) or isinstance(inputs, Mapping)):
        raise TypeError(
            f"inputs must be a (K, T) tensor/array or a dict of tensors, got {type(inputs).__name__}"
        )

    def features(model: nn.Module) -> torch.Tensor:
        target = _submodule(model, module)
        captured: list[Any] = []

        def hook(_mod: nn.Module, _args: Any, output: Any) -> None:
            captured.append(output[0] if isinstance(output, (tuple, list)) else output)

        device = next(model.parameters()).device
        handle = target.register_forward_hook(hook)
        try:
            x = _move(inputs, device)
            if call is not None:
                call(model, x)
            elif isinstance(x, Mapping):
                model(**x)
            else:
                model(x)
        finally:
            handle.remove()
        if not captured:
            raise ValueError(f"module {module!r} was not called by the forward pass")
        out = captured[-1]
        if not torch.is_tensor(out):
            raise ValueError(f"module {module!r} returned {type(out).__name__}, not a tensor")
        return out[:, position] if out.ndim == 3 else out

    return features


def parameter_rows(name: str, rows: Any = None) -> FeaturesFn:
    """An ``unembedding`` function: rows ``rows`` (the label token ids; all rows when ``None``) of the
    parameter ``name`` (``"head.weight"`` for the package's GPT, ``"lm_head.weight"`` for Hugging Face).

    Rows outside the parameter (a design vocabulary larger than the model's) raise ``ValueError``.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a dotted parameter name (str), got {type(name).__name__}")
    idx = None if rows is None else np.asarray(rows)
    if idx is not None and (idx.ndim != 1 or idx.dtype.kind not in "iu" or idx.size == 0):
        raise ValueError(f"rows must be a non-empty 1-D array of integer token ids, got {rows!r}")

    def unembedding(model: nn.Module) -> torch.Tensor:
        P = _parameter(model, name)
        if idx is None:
            return P
        if P.ndim != 2 or idx.min() < 0 or idx.max() >= P.shape[0]:
            raise ValueError(
                f"label token ids up to {int(idx.max())} do not fit parameter {name!r} of shape "
                f"{tuple(P.shape)}: the design's vocabulary does not fit the model's"
            )
        return P[torch.from_numpy(np.array(idx, dtype=np.int64)).to(P.device)]

    return unembedding
