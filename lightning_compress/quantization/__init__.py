"""Ternary/binary weight quantization, ternary weight splitting and bit-packed export (METHODS §4)."""

from lightning_compress.quantization.modules import (
    QuantEmbedding,
    QuantLinear,
    SplitBinaryEmbedding,
    SplitBinaryLinear,
    quantize_model,
    split_model,
)
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
from lightning_compress.quantization.width import half_width, head_neuron_importance

__all__ = [
    "LsqActQuantizer",
    "QuantEmbedding",
    "QuantLinear",
    "SplitBinaryEmbedding",
    "SplitBinaryLinear",
    "UniformActQuantizer",
    "adaptive_split_plan",
    "bwn_quantize",
    "half_width",
    "head_neuron_importance",
    "knapsack_select",
    "quantize_model",
    "split_model",
    "split_sensitivity",
    "ste",
    "ternary_weight_split",
    "twn_quantize",
    "uniform_quantize",
]
