"""Gradient-dropout core: seeded masks and schedules (pure tensor functions, docs/methods.md#gradient-dropout)."""

from lightning_compress.gradient_dropout.masks import (
    PROBABILITY_RESOLUTION,
    element_keep_mask,
    epoch_chunk_bounds,
    epoch_keep_mask,
    group_keeps,
    mask_generator,
    mask_seed,
)
from lightning_compress.gradient_dropout.schedules import annealed_drop_probability, unfrozen_count

__all__ = [
    "PROBABILITY_RESOLUTION",
    "annealed_drop_probability",
    "element_keep_mask",
    "epoch_chunk_bounds",
    "epoch_keep_mask",
    "group_keeps",
    "mask_generator",
    "mask_seed",
    "unfrozen_count",
]
