"""Slim export of a model whose feed-forward Linear layers already hold torchao int8 weights.

After :class:`~lightning_compress.callbacks.QuantizationAwareTraining` converts a model that
:class:`~lightning_compress.callbacks.StructuredPruning` thinned, the removed neurons are rows of int8 zeros in the
up-projection and columns of int8 zeros in the down-projection. Slicing them away keeps every other stored value
exactly: the up-projection keeps whole rows with their own scales, and the down-projection, with one scale per
output row, loses only zero columns, which never set a row's scale. Per-group (int4) weights would regroup their
columns, so they are refused.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from lightning_compress.pruning.structured import encoder_blocks, slim_model_


def slim_quantized_copy(model: nn.Module, kept_neurons: Mapping[int, Tensor]) -> nn.Module:
    """A copy of ``model`` with the feed-forward neurons not in ``kept_neurons`` sliced away, torchao int8 weights
    included (their codes, scales and zero points are sliced, never re-quantized).

    Raises:
        ValueError: A feed-forward weight is quantized per group or with a torchao tensor type other than int8
            ``IntxUnpackedToInt8Tensor``.
    """
    from torchao.utils import TorchAOBaseTensor

    slim = copy.deepcopy(model)
    quantized: dict[tuple[int, int], Tensor] = {}
    for index, block in enumerate(encoder_blocks(slim)):
        for dim, linear in enumerate((block.intermediate.dense, block.output.dense)):
            if isinstance(linear.weight, TorchAOBaseTensor):
                quantized[index, dim] = linear.weight
                linear.weight = nn.Parameter(linear.weight.dequantize(), requires_grad=False)
    slim_model_(slim, kept_neurons=kept_neurons)
    blocks = encoder_blocks(slim)
    for (index, dim), weight in quantized.items():
        kept = torch.as_tensor(kept_neurons[index], dtype=torch.long).flatten().sort().values
        linear = blocks[index].intermediate.dense if dim == 0 else blocks[index].output.dense
        linear.weight = nn.Parameter(slice_int8_weight(weight, kept, dim), requires_grad=False)
    return slim


def slice_int8_weight(weight: Tensor, kept: Tensor, dim: int) -> Tensor:
    """Rows (``dim=0``) or columns (``dim=1``) ``kept`` of a torchao int8 weight with one scale per output row."""
    from torchao.quantization import IntxUnpackedToInt8Tensor

    rows, columns = weight.shape
    per_row = isinstance(weight, IntxUnpackedToInt8Tensor) and tuple(weight.block_size) == (1, columns)
    if not per_row or weight.target_dtype != torch.int8:
        raise ValueError(
            f"slim export of a quantized model is invalid for a {type(weight).__name__} weight with block size "
            f"{tuple(getattr(weight, 'block_size', ()))}: only int8 weights with one scale per output row can be "
            "sliced exactly (per-group int4 scales would regroup the columns). HINT: train with "
            "QuantizationAwareTraining(convert_at_end=False) and export with save_compressed(slim=True, "
            "quantize='int4'), which slices first and quantizes after."
        )
    qdata, scale, zero_point = weight.qdata, weight.scale, weight.zero_point
    if dim == 0:
        qdata, scale, zero_point = qdata[kept], scale[kept], zero_point[kept]
        block_size = weight.block_size
    else:
        qdata, block_size = qdata[:, kept], (1, int(kept.numel()))
    return IntxUnpackedToInt8Tensor(
        qdata.contiguous(),
        scale.contiguous(),
        zero_point.contiguous(),
        weight.target_dtype,
        block_size,
        weight.dtype,
        weight.activation_quantization,
    )
