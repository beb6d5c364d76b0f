"""Compression methods as Lightning callbacks."""

from lightning_compress.callbacks.gradient_dropout import GradientDropout
from lightning_compress.callbacks.gradual_unfreezing import GradualUnfreezing
from lightning_compress.callbacks.pruning import GradualMagnitudePruning

__all__ = ["GradientDropout", "GradualMagnitudePruning", "GradualUnfreezing"]
