"""Pruning core: schedules, criteria, masks, N:M patterns, L0 gates and sparsity statistics (tensor functions)."""

from lightning_compress.pruning.criteria import (
    CRITERIA,
    GradStats,
    PruningCriterion,
    compute_scores,
    gradient_score,
    lamp_score,
    lookahead_score,
    magnitude_score,
    random_score,
    taylor_score,
)
from lightning_compress.pruning.l0 import hard_concrete_eval, hard_concrete_sample, keep_probability
from lightning_compress.pruning.masks import (
    apply_masks_,
    global_masks,
    layerwise_masks,
    mask_sparsity,
    sparsity_report,
)
from lightning_compress.pruning.nm import (
    SemiStructuredUnsupportedError,
    is_nm_sparse,
    nm_eligible_scores,
    to_semi_structured_,
)
from lightning_compress.pruning.schedules import PruningEvent, cubic_sparsity, iterative_sparsity, pruning_events
from lightning_compress.pruning.structured import kept_layers_from_masks, kept_neurons_from_masks, slim_model_

__all__ = [
    "CRITERIA",
    "GradStats",
    "PruningCriterion",
    "PruningEvent",
    "SemiStructuredUnsupportedError",
    "apply_masks_",
    "compute_scores",
    "cubic_sparsity",
    "global_masks",
    "gradient_score",
    "hard_concrete_eval",
    "hard_concrete_sample",
    "is_nm_sparse",
    "iterative_sparsity",
    "keep_probability",
    "kept_layers_from_masks",
    "kept_neurons_from_masks",
    "lamp_score",
    "layerwise_masks",
    "lookahead_score",
    "magnitude_score",
    "mask_sparsity",
    "nm_eligible_scores",
    "pruning_events",
    "random_score",
    "slim_model_",
    "sparsity_report",
    "taylor_score",
    "to_semi_structured_",
]
