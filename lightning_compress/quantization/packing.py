"""Bit-packed storage of binary and ternary weights (docs/methods.md#exported-binarybert-size): 1 bit per binary
weight, 2 per ternary.

A quantized module's weight is stored as its quantized values only (the latent weights are not needed to run it):

* binary (BWN, and each branch of a split module): ``<key>::sign`` (one bit per weight, ``w ≥ 0``) and
  ``<key>::scale`` (fp32 α, one per matrix or per embedding row; for a split branch, ``mean|w_k|`` plus the branch's
  scale offset, so the offsets themselves are not stored and load as 0);
* ternary (TWN): ``<key>::nonzero`` and ``<key>::sign`` (two bits per weight) and ``<key>::scale``.

Decoding gives ``±α`` (``0`` off the ternary support). Loaded into a quantized module as its latent weight, these
values quantize to themselves (TWN of ``{0, ±α}`` and BWN of ``±α`` return the same tensor), so a loaded model has
the outputs of the exported one.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from lightning_compress.bits import pack_bits, unpack_bits
from lightning_compress.quantization.modules import (
    QuantEmbedding,
    QuantLinear,
    SplitBinaryEmbedding,
    SplitBinaryLinear,
    quantized_modules,
)
from lightning_compress.quantization.quantizers import ACT_QUANTIZERS, bwn_scales, twn_scales

_SEP = "::"
#: Scale-offset buffers of a split module (see :class:`~lightning_compress.quantization.SplitBinaryLinear`).
_OFFSETS = ("scale_offset1", "scale_offset2")


def encode_binary(weight: Tensor, dim: int | None, scale: Tensor | None = None) -> dict[str, Tensor]:
    """``{"sign": packed bits, "scale": fp32 α}`` of ``BWN(weight)`` (``scale``: float64 α instead of mean|w|)."""
    alpha = bwn_scales(weight, dim) if scale is None else scale.detach()
    return {"sign": pack_bits(weight.detach() >= 0), "scale": alpha.float()}


def encode_ternary(weight: Tensor, dim: int | None, threshold_factor: float) -> dict[str, Tensor]:
    """``{"nonzero", "sign": packed bits, "scale": fp32 α}`` of ``TWN(weight)``."""
    nonzero, alpha = twn_scales(weight, dim, threshold_factor)
    return {"nonzero": pack_bits(nonzero), "sign": pack_bits(weight.detach() >= 0), "scale": alpha.float()}


def decode(parts: dict[str, Tensor], shape: list[int], dim: int | None) -> Tensor:
    """Inverse of :func:`encode_binary` / :func:`encode_ternary`: the quantized fp32 tensor of ``shape``."""
    numel = 1
    for size in shape:
        numel *= size
    sign = unpack_bits(parts["sign"], numel).view(shape)
    scale = parts["scale"].float()
    scale = scale.view(-1, *([1] * (len(shape) - 1))) if dim == 0 else scale.reshape(())
    values = torch.where(sign, scale, -scale)
    if "nonzero" in parts:
        values = values * unpack_bits(parts["nonzero"], numel).view(shape)
    return values


def _act_spec(quantizer: nn.Module | None) -> list[Any] | None:
    if quantizer is None:
        return None
    name = next(key for key, cls in ACT_QUANTIZERS.items() if isinstance(quantizer, cls))
    return [name, quantizer.bits]


def encode_quantized(model: nn.Module) -> tuple[dict[str, Tensor], dict[str, dict[str, Any]], set[str]]:
    """Packed tensors, module specs and the covered state-dict keys of every quantized module of ``model``.

    Returns:
        ``(tensors, specs, keys)``: ``tensors`` maps ``<weight key>::<part>`` to packed tensors; ``specs`` maps
        module names to what :func:`rebuild_quantized_` needs; ``keys`` are the latent weight keys replaced.
    """
    tensors: dict[str, Tensor] = {}
    specs: dict[str, dict[str, Any]] = {}
    keys: set[str] = set()
    for name, module in quantized_modules(model).items():
        embedding = isinstance(module, (QuantEmbedding, SplitBinaryEmbedding))
        dim = 0 if embedding else None
        spec: dict[str, Any] = {"module": "embedding" if embedding else "linear", "weights": module.weights}
        scales: dict[str, Tensor | None] = {}
        if isinstance(module, (QuantLinear, QuantEmbedding)):
            weights = {"weight": module.weight}
            spec["threshold_factor"] = module.threshold_factor
        else:
            scales = dict(zip(("weight1", "weight2"), module.branch_scales()))  # a frozen split module raises here
            weights = {"weight1": module.weight1, "weight2": module.weight2}
            keys.update(f"{name}.{offset}" for offset in _OFFSETS)  # folded into the stored scales
        for attribute, weight in weights.items():
            key = f"{name}.{attribute}"
            if module.weights == "ternary":
                parts = encode_ternary(weight, dim, module.threshold_factor)
            else:
                parts = encode_binary(weight, dim, scales.get(attribute))
            for part, value in parts.items():
                tensors[key + _SEP + part] = value.contiguous()
            keys.add(key)
            spec["shape"] = list(weight.shape)
        if not embedding:
            spec["act"] = _act_spec(module.act_quantizer)
            spec["out"] = _act_spec(module.output_quantizer)
            spec["bias"] = module.bias is not None
        else:
            spec["padding_idx"] = module.padding_idx
        specs[name] = spec
    return tensors, specs, keys


def decode_quantized(specs: dict[str, dict[str, Any]], get_tensor) -> dict[str, Tensor]:
    """Latent weight key -> decoded quantized tensor, reading packed parts with ``get_tensor(name)``."""
    state = {}
    for name, spec in specs.items():
        attributes = ("weight1", "weight2") if spec["weights"] == "split" else ("weight",)
        dim = 0 if spec["module"] == "embedding" else None
        for attribute in attributes:
            key = f"{name}.{attribute}"
            part_names = ("nonzero", "sign", "scale") if spec["weights"] == "ternary" else ("sign", "scale")
            parts = {part: get_tensor(key + _SEP + part) for part in part_names}
            state[key] = decode(parts, spec["shape"], dim)
        if spec["weights"] == "split":
            groups = spec["shape"][0] if dim == 0 else 1
            state.update({f"{name}.{offset}": torch.zeros(groups, dtype=torch.float64) for offset in _OFFSETS})
    return state


def _act(spec: list[Any] | None) -> nn.Module | None:
    return None if spec is None else ACT_QUANTIZERS[spec[0]](spec[1])


def rebuild_quantized_(model: nn.Module, specs: dict[str, dict[str, Any]]) -> None:
    """Swap the modules named in ``specs`` for empty quantized modules of the recorded kind, in place."""
    from lightning_compress.quantization.modules import _set_submodule

    for name, spec in specs.items():
        original = model.get_submodule(name)
        shape = spec["shape"]
        if spec["module"] == "linear":
            if spec["weights"] == "split":
                zeros = torch.zeros(shape)
                module = SplitBinaryLinear(zeros, zeros, original.bias, _act(spec["act"]), _act(spec["out"]))
            else:
                module = QuantLinear.from_linear(
                    original, spec["weights"], _act(spec["act"]), _act(spec["out"]), spec["threshold_factor"]
                )
        elif spec["weights"] == "split":
            zeros = torch.zeros(shape)
            module = SplitBinaryEmbedding(zeros, zeros, spec["padding_idx"])
        else:
            module = QuantEmbedding.from_embedding(original, spec["weights"], spec["threshold_factor"])
        _set_submodule(model, name, module)


def quantized_size_bytes(tensors: dict[str, Tensor]) -> int:
    """Bytes of the packed tensors (bits and scales)."""
    return sum(t.numel() * t.element_size() for t in tensors.values())
