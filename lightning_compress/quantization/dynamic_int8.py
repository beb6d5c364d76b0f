"""The fast CPU path: swap Linear layers for PyTorch's dynamically quantized int8 Linear (fbgemm / x86 kernels).

``to_fast_int8_`` is for running a model on this machine, not for shipping it: the modules it makes are
``torch.ao.nn.quantized.dynamic.Linear`` (int8 weights packed for the CPU's int8 GEMM, activations quantized per call),
which PyTorch does not save to safetensors. The portable format is
:func:`~lightning_compress.quantization.hf_export.save_quantized_hf` (torchao tensors in a Hugging Face folder), whose
eager CPU forward dequantizes and is slower than fp32; on a BERT-base-sized encoder on CPU the dynamic int8 path was
measured about 2x faster than fp32 (Jacob et al. 2018 describe the integer-arithmetic scheme).

Weights are quantized per output row, symmetric, with the scale ``max|w| / 127.5`` of int8 QAT
(:mod:`~lightning_compress.quantization.qat`), so a model trained with ``weights="int8"`` keeps its exact int8 weight
codes. Activations differ: PyTorch quantizes each input tensor with one asymmetric scale (7-bit range on x86), where
QAT simulates one scale per token, so logits move slightly (measured in ``docs/quantization.md``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lightning_compress.quantization.modules import _set_submodule, quantized_modules
from lightning_compress.quantization.qat import fake_quantized_formats, qat_base_config, torchao_quantized_linears
from lightning_compress.targeting import resolve_targets


def to_fast_int8_(
    model: nn.Module, targets: str | Sequence[str] | None = None, *, embeddings: bool = False
) -> list[str]:
    """Swap Linear modules of ``model`` for PyTorch dynamic int8 Linear modules (inference only), in place.

    Which modules: ``targets`` (regexes over parameter names, as in the pruning callbacks) when given; otherwise the
    int8 fake-quantized modules of :class:`~lightning_compress.callbacks.QuantizationAwareTraining` and the modules it
    converted, or, in a model never quantized, every ``nn.Linear`` inside the transformer encoder.

    With ``embeddings=True`` the input word embeddings become int8 too (:func:`int8_embedding`): in a small encoder
    they are most of the weight memory (52 % of MiniLM-L6), which int8 Linear layers alone leave in fp32. This step
    was not simulated during training (measure the accuracy of the result; the per-row rounding error is below 0.4 %
    of each row's range).

    Args:
        model: A model in fp32 (puts itself in eval mode: the new modules have no backward).
        targets: Regexes over parameter names selecting Linear weights, or ``None`` (see above).
        embeddings: Also store the input word embeddings (``model.get_input_embeddings()``) in int8.

    Returns:
        The swapped module names (the embedding's last).

    Raises:
        ValueError: The model has ternary/binary modules, int4 modules (no int8 kernel would keep their values), or
            nothing to swap.

    Example:
        >>> model = nn.Sequential(nn.Linear(8, 4)); to_fast_int8_(model, targets=r"0\\.weight")
        ['0']
    """
    owner = "to_fast_int8_"
    ternary = quantized_modules(model)
    if ternary:
        raise ValueError(
            f"`{owner}` is invalid for this model: its modules {list(ternary)[:3]} hold ternary/binary weights; int8 "
            "kernels would change their values. HINT: run them as they are (`freeze_quantized_(model)` caches the "
            "quantized weights)."
        )
    formats = fake_quantized_formats(model)
    converted = torchao_quantized_linears(model)
    int4 = [name for name, (weights, _, _) in formats.items() if weights == "int4"]
    int4 += [name for name, module in converted.items() if _torchao_bits(module.weight) != 8]
    if int4:
        raise ValueError(
            f"`{owner}` is invalid for this model: {int4[:3]} are int4 modules and PyTorch's fast CPU kernels are "
            "int8 only. HINT: run them through torchao (`save_quantized_hf(model, ..., quantize='int4')` and "
            "`from_pretrained`), or train with `QuantizationAwareTraining(weights='int8')`."
        )
    if targets is not None:
        names = [name.removesuffix(".weight") for name in resolve_targets(model, targets)]
    elif formats or converted:
        names = [name for name, _ in model.named_modules() if name in formats or name in converted]
    else:
        try:
            names = [name.removesuffix(".weight") for name in resolve_targets(model)]
        except ValueError as error:
            raise ValueError(f"`{owner}` found nothing to quantize in {type(model).__name__} ({error})") from None
    modules = dict(model.named_modules())
    for name in names:
        module = modules[name]
        if not isinstance(module, nn.Linear):
            raise ValueError(f"`{owner}` swaps nn.Linear modules, but `{name}` is a {type(module).__name__}.")
        _set_submodule(model, name, dynamic_int8_linear(module))
    if embeddings:
        names.append(_swap_input_embeddings(model, owner))
    return names


def _swap_input_embeddings(model: nn.Module, owner: str) -> str:
    get_embeddings = getattr(model, "get_input_embeddings", None)
    embedding = get_embeddings() if callable(get_embeddings) else None
    if not isinstance(embedding, nn.Embedding):
        raise ValueError(
            f"`{owner}(embeddings=True)` is invalid for {type(model).__name__}: it has no `get_input_embeddings()` "
            "returning an nn.Embedding (a Hugging Face model does). HINT: pass `embeddings=False`."
        )
    name = next(name for name, module in model.named_modules() if module is embedding)
    _set_submodule(model, name, int8_embedding(embedding))
    return name


@torch.no_grad()
def int8_embedding(embedding: nn.Embedding) -> nn.Module:
    """A ``torch.ao.nn.quantized.Embedding`` holding ``embedding``'s table in 8 bits (inference only).

    Each row is quantized on its own range (asymmetric, one float scale and zero point per row: PyTorch's
    ``float_qparams_weight_only_qconfig``), so a lookup returns the row to within half a step of its range / 255;
    the table takes a quarter of its fp32 bytes plus 8 bytes a row.

    Example:
        >>> table = nn.Embedding(10, 16); rows = torch.tensor([[1, 2]])
        >>> bool((int8_embedding(table)(rows) - table(rows)).abs().max() < 0.01)
        True
    """
    from torch.ao.nn.quantized import Embedding as QuantizedEmbedding
    from torch.ao.quantization import float_qparams_weight_only_qconfig

    source = nn.Embedding(embedding.num_embeddings, embedding.embedding_dim, padding_idx=embedding.padding_idx)
    source.weight = nn.Parameter(embedding.weight.detach().float(), requires_grad=False)
    source.qconfig = float_qparams_weight_only_qconfig
    return QuantizedEmbedding.from_float(source)


@torch.no_grad()
def dynamic_int8_linear(linear: nn.Linear) -> nn.Module:
    """A ``torch.ao.nn.quantized.dynamic.Linear`` with the per-row symmetric int8 weights of ``linear``.

    ``linear`` is a plain (or fake-quantized) fp32 Linear, quantized with scale ``max|w_row| / 127.5``, or a Linear
    whose weight is a torchao int8 per-row tensor, whose codes and scales are taken as they are.

    Returns:
        The dynamic int8 module (inference only; its weight is a packed ``torch.qint8`` tensor).
    """
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    weight = linear.weight
    if _torchao_bits(weight) != 8:  # quantize a copy with torchao, so the codes are those of int8 QAT's convert
        from torchao.quantization import quantize_

        copy = nn.Linear(linear.in_features, linear.out_features, bias=False)
        copy.weight = nn.Parameter(weight.detach().float().clone(), requires_grad=False)
        quantize_(copy, qat_base_config("int8", None))
        weight = copy.weight
    codes, scale = weight.qdata, weight.scale.reshape(-1).double()
    zero_point = torch.zeros(codes.shape[0], dtype=torch.long)
    qweight = torch._make_per_channel_quantized_tensor(codes, scale, zero_point, 0)
    module = DynamicLinear(linear.in_features, linear.out_features, bias_=linear.bias is not None, dtype=torch.qint8)
    bias = None if linear.bias is None else linear.bias.detach().float().clone()
    module.set_weight_bias(qweight, bias)
    return module


def _torchao_bits(weight: torch.Tensor) -> int | None:
    """8 or 4 for a torchao int8/int4 weight tensor, ``None`` for a plain tensor."""
    dtype = getattr(weight, "target_dtype", None)
    if dtype is None:
        return None
    return {torch.int8: 8, torch.int4: 4}.get(dtype, 0)
