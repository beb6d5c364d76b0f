"""Pruning core: schedules, criteria, masks and sparsity statistics (pure tensor functions)."""

from lightning_compress.pruning.criteria import CRITERIA, magnitude_score
from lightning_compress.pruning.masks import (
    apply_masks_,
    global_masks,
    layerwise_masks,
    mask_sparsity,
    sparsity_report,
)
from lightning_compress.pruning.schedules import PruningEvent, cubic_sparsity, iterative_sparsity, pruning_events

__all__ = [
    "CRITERIA",
    "PruningEvent",
    "apply_masks_",
    "cubic_sparsity",
    "global_masks",
    "iterative_sparsity",
    "layerwise_masks",
    "magnitude_score",
    "mask_sparsity",
    "pruning_events",
    "sparsity_report",
]
