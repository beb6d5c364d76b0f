"""Compression methods as Lightning callbacks."""

from lightning_compress.callbacks.align_reg import AlignReg
from lightning_compress.callbacks.gradient_dropout import GradientDropout
from lightning_compress.callbacks.gradual_unfreezing import GradualUnfreezing
from lightning_compress.callbacks.loss_terms import LossTermCallback
from lightning_compress.callbacks.pruning import GradualMagnitudePruning
from lightning_compress.callbacks.quantization_aware import QuantizationAwareTraining
from lightning_compress.callbacks.self_distillation import SelfDistilledPruning
from lightning_compress.callbacks.structured_pruning import StructuredPruning
from lightning_compress.callbacks.weight_splitting import TernaryWeightSplitting

__all__ = [
    "AlignReg",
    "GradientDropout",
    "GradualMagnitudePruning",
    "GradualUnfreezing",
    "LossTermCallback",
    "QuantizationAwareTraining",
    "SelfDistilledPruning",
    "StructuredPruning",
    "TernaryWeightSplitting",
]
