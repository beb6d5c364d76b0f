"""Compression methods as Lightning callbacks."""

from lightning_compress.callbacks.pruning import GradualMagnitudePruning

__all__ = ["GradualMagnitudePruning"]
