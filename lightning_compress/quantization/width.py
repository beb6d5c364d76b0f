"""Width-reduced backbones: keep the most important attention heads and FFN neurons (DynaBERT,
docs/methods.md#binarybert-training-pipeline).

BinaryBERT trains a half-width ternary model (DynaBERT 0.5× sub-network) and splits it into a full-width binary
one. :func:`half_width_` keeps, in every Transformer block, the ``width`` fraction of heads and FFN neurons with the
highest importance and removes the others (the hidden size and the word embedding are unchanged, as in DynaBERT).

Importance (DynaBERT "network rewiring", Hou et al. 2020 §2.1, after Michel et al. 2019): with a mask ``m_h = 1`` on
the output of every head and ``m_n = 1`` on every intermediate neuron,

.. math:: I_h = \\Big|\\sum_{\\text{batches}} \\frac{∂ℓ}{∂m_h}\\Big|, \\qquad I_n = \\Big|\\sum \\frac{∂ℓ}{∂m_n}\\Big|,

the first-order estimate of the loss change when the head or neuron is removed (:func:`head_neuron_importance`).
A data-free ``"magnitude"`` importance is offered too: ``‖W_O[:, head]‖_F`` for a head (its columns of the
attention output projection) and ``‖W_in[n, :]‖ · ‖W_out[:, n]‖`` for a neuron.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from lightning_compress.deprecation import deprecated_alias

_LAYER_PATTERN = r"(^|\.)encoder\.layers?\.\d+$"

#: layer name -> {"heads": `num_heads` tensor, "neurons": `intermediate` tensor}
Importance = Mapping[str, Mapping[str, Tensor]]


def encoder_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The BERT-style Transformer blocks of ``model`` (``...encoder.layer.N``) by name."""
    layers = {name: module for name, module in model.named_modules() if re.search(_LAYER_PATTERN, name)}
    for name, layer in layers.items():
        for path in ("attention.self.query", "attention.output.dense", "intermediate.dense", "output.dense"):
            try:
                layer.get_submodule(path)
            except AttributeError:
                raise ValueError(
                    f"Layer {name!r} has no `{path}`: width reduction supports BERT-style encoders "
                    "(BERT, RoBERTa/XLM-R, MiniLM)."
                ) from None
    if not layers:
        raise ValueError(f"No `encoder.layer.N` block found in {type(model).__name__}; width reduction needs one.")
    return layers


def _head_size(layer: nn.Module) -> int:
    return int(layer.attention.self.attention_head_size)


def magnitude_importance(model: nn.Module) -> dict[str, dict[str, Tensor]]:
    """Data-free importance of every head and FFN neuron (see the module docstring)."""
    scores = {}
    for name, layer in encoder_layers(model).items():
        size = _head_size(layer)
        w_o = layer.attention.output.dense.weight.detach().float()
        heads = w_o.reshape(w_o.shape[0], -1, size).pow(2).sum(dim=(0, 2)).sqrt()
        w_in = layer.intermediate.dense.weight.detach().float()
        w_out = layer.output.dense.weight.detach().float()
        neurons = w_in.norm(dim=1) * w_out.norm(dim=0)
        scores[name] = {"heads": heads, "neurons": neurons}
    return scores


def head_neuron_importance(model: nn.Module, batches: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Tensor]]:
    """DynaBERT importance ``|Σ ∂ℓ/∂m|`` of every head and FFN neuron over ``batches`` (see the module docstring).

    Args:
        model: A Hugging Face model whose forward takes the batch dict (with ``labels``) and returns ``.loss``.
        batches: Dicts of input tensors on the model's device.

    Returns:
        Layer name -> ``{"heads": Tensor[num_heads], "neurons": Tensor[intermediate_size]}`` (float32).
    """
    layers = encoder_layers(model)
    masks: dict[str, dict[str, Tensor]] = {}
    handles = []
    device = next(model.parameters()).device
    for name, layer in layers.items():
        heads = layer.attention.self.query.out_features // _head_size(layer)
        neurons = layer.intermediate.dense.out_features
        masks[name] = {
            "heads": torch.ones(heads, device=device, requires_grad=True),
            "neurons": torch.ones(neurons, device=device, requires_grad=True),
        }
        handles.append(layer.attention.self.register_forward_hook(_head_mask_hook(masks[name]["heads"])))
        handles.append(layer.intermediate.register_forward_hook(_neuron_mask_hook(masks[name]["neurons"])))
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            loss = model(**batch).loss
            grads = torch.autograd.grad(loss, [m for pair in masks.values() for m in pair.values()])
            for mask, grad in zip([m for pair in masks.values() for m in pair.values()], grads):
                mask.grad = grad if mask.grad is None else mask.grad + grad
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {
        name: {
            kind: mask.grad.abs().float() if mask.grad is not None else torch.zeros_like(mask)
            for kind, mask in pair.items()
        }
        for name, pair in masks.items()
    }


def _head_mask_hook(mask: Tensor):
    def hook(module: nn.Module, args: Any, output: Any) -> Any:
        context = output[0] if isinstance(output, tuple) else output
        shape = context.shape
        masked = (context.reshape(*shape[:-1], mask.numel(), -1) * mask.unsqueeze(-1)).reshape(shape)
        return (masked, *output[1:]) if isinstance(output, tuple) else masked

    return hook


def _neuron_mask_hook(mask: Tensor):
    def hook(module: nn.Module, args: Any, output: Tensor) -> Tensor:
        return output * mask

    return hook


def _slice_linear(linear: nn.Linear, index: Tensor, dim: int) -> None:
    """Keep rows (``dim=0``) or columns (``dim=1``) ``index`` of ``linear`` in place (parameters replaced)."""
    index = index.to(linear.weight.device)
    linear.weight = nn.Parameter(linear.weight.detach().index_select(dim, index).clone())
    if dim == 0:
        linear.out_features = len(index)
        if linear.bias is not None:
            linear.bias = nn.Parameter(linear.bias.detach().index_select(0, index).clone())
    else:
        linear.in_features = len(index)


@torch.no_grad()
def keep_heads_and_neurons_(layer: nn.Module, heads: Tensor, neurons: Tensor) -> None:
    """Keep only attention heads ``heads`` and FFN neurons ``neurons`` (sorted index tensors) of one block."""
    attention = layer.attention.self
    size = _head_size(layer)
    rows = (heads.reshape(-1, 1) * size + torch.arange(size)).reshape(-1)
    for projection in (attention.query, attention.key, attention.value):
        _slice_linear(projection, rows, 0)
    _slice_linear(layer.attention.output.dense, rows, 1)
    attention.num_attention_heads = len(heads)
    attention.all_head_size = len(heads) * size
    _slice_linear(layer.intermediate.dense, neurons, 0)
    _slice_linear(layer.output.dense, neurons, 1)


def half_width_(
    model: nn.Module, importance: str | Importance = "magnitude", width: float = 0.5
) -> dict[str, dict[str, list[int]]]:
    """Keep the most important ``width`` fraction of heads and FFN neurons in every block, in place.

    Args:
        model: A BERT-style Hugging Face model (or a module holding one).
        importance: ``"magnitude"`` (data-free) or the scores of :func:`head_neuron_importance`
            (DynaBERT's, from a few training batches).
        width: Fraction kept (``0.5``: DynaBERT 0.5×; ``1.0`` leaves the model unchanged).

    Returns:
        Layer name -> ``{"heads": kept head indices, "neurons": kept neuron indices}`` (sorted, original order).

    Example:
        >>> kept = half_width_(bert_classifier)  # doctest: +SKIP
        >>> len(kept["bert.encoder.layer.0"]["heads"])  # doctest: +SKIP
        6
    """
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 1:
        raise ValueError(f"`half_width_(width={width!r})` is invalid: expected a float in (0, 1].")
    layers = encoder_layers(model)
    if isinstance(importance, str):
        if importance != "magnitude":
            raise ValueError(
                f"`half_width_(importance={importance!r})` is invalid: expected 'magnitude' or the scores of "
                "`head_neuron_importance(model, batches)`."
            )
        importance = magnitude_importance(model)
    kept: dict[str, dict[str, list[int]]] = {}
    for name, layer in layers.items():
        if name not in importance:
            raise ValueError(
                f"half_width_: no importance for layer {name!r}; scored layers are {list(importance)[:4]}."
            )
        scores = importance[name]
        heads = _top(scores["heads"], width)
        neurons = _top(scores["neurons"], width)
        keep_heads_and_neurons_(layer, heads, neurons)
        kept[name] = {"heads": heads.tolist(), "neurons": neurons.tolist()}
    return kept


def _top(scores: Tensor, width: float) -> Tensor:
    count = max(1, math.ceil(round(width * scores.numel(), 6)))
    order = torch.argsort(scores.detach().float().cpu(), descending=True, stable=True)
    return order[:count].sort().values


def resize_to_state_dict_(model: nn.Module, state_dict: Mapping[str, Tensor], prefix: str = "") -> bool:
    """Shrink the blocks of ``model`` to the head/neuron counts of ``state_dict`` (values are loaded afterwards).

    Returns ``True`` when a block was resized. Used to load a width-reduced checkpoint or export into a model built
    from its (full-width) config.
    """
    resized = False
    for name, layer in encoder_layers(model).items():
        query = _first_key(state_dict, f"{prefix}{name}.attention.self.query")
        intermediate = _first_key(state_dict, f"{prefix}{name}.intermediate.dense")
        if query is None or intermediate is None:
            continue
        size = _head_size(layer)
        heads = state_dict[query].shape[0] // size
        neurons = state_dict[intermediate].shape[0]
        if heads != layer.attention.self.query.out_features // size or neurons != layer.intermediate.dense.out_features:
            keep_heads_and_neurons_(layer, torch.arange(heads), torch.arange(neurons))
            resized = True
    return resized


def _first_key(state_dict: Mapping[str, Tensor], module: str) -> str | None:
    """The first of ``weight``, ``weight1`` (a split module) of ``module`` present in ``state_dict``."""
    for attribute in ("weight", "weight1"):
        if f"{module}.{attribute}" in state_dict:
            return f"{module}.{attribute}"
    return None


# Deprecated names (removed in 0.2.0): the trailing `_` marks functions that change their argument in place.
half_width = deprecated_alias(half_width_, "half_width")
