"""Ternary/binary weight quantization, ternary weight splitting and bit-packed export
(docs/methods.md#ternary-weight-splitting); int8/int4
quantization-aware training, the fast int8 CPU path and the portable int8/int4 Hugging Face export."""

from lightning_compress.quantization.dynamic_int8 import to_fast_int8_
from lightning_compress.quantization.hf_export import save_quantized_hf
from lightning_compress.quantization.modules import (
    QuantEmbedding,
    QuantLinear,
    SplitBinaryEmbedding,
    SplitBinaryLinear,
    freeze_quantized_,
    quantize_model,
    quantize_model_,
    split_model,
    split_model_,
)
from lightning_compress.quantization.qat import qat_base_config, qat_convert_, qat_prepare_
from lightning_compress.quantization.quantizers import (
    LsqActQuantizer,
    UniformActQuantizer,
    bwn_quantize,
    ste,
    twn_quantize,
    uniform_quantize,
)
from lightning_compress.quantization.splitting import (
    adaptive_split_plan,
    knapsack_select,
    split_sensitivity,
    ternary_weight_split,
)
from lightning_compress.quantization.width import half_width, half_width_, head_neuron_importance

__all__ = [
    "LsqActQuantizer",
    "QuantEmbedding",
    "QuantLinear",
    "SplitBinaryEmbedding",
    "SplitBinaryLinear",
    "UniformActQuantizer",
    "adaptive_split_plan",
    "bwn_quantize",
    "freeze_quantized_",
    "half_width",
    "half_width_",
    "head_neuron_importance",
    "knapsack_select",
    "qat_base_config",
    "qat_convert_",
    "qat_prepare_",
    "quantize_model",
    "quantize_model_",
    "save_quantized_hf",
    "split_model",
    "split_model_",
    "split_sensitivity",
    "ste",
    "ternary_weight_split",
    "to_fast_int8_",
    "twn_quantize",
    "uniform_quantize",
]
