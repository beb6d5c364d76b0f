"""Pruning criteria: score functions over weights (METHODS §1.2). Lowest scores are pruned first."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

Scope = Literal["layer", "global"]


def magnitude_score(weight: Tensor) -> Tensor:
    """Magnitude-based pruning (MBP) score ``S = |W|`` (O'Neill §9.3).

    Args:
        weight: An ``out x in`` weight tensor (any shape works).

    Returns:
        A tensor of the same shape, float32, ``|W|``.

    Example:
        >>> magnitude_score(torch.tensor([[-2.0, 0.5]]))
        tensor([[2.0000, 0.5000]])
    """
    return weight.detach().abs().float()


#: criterion name -> (score function, scope it implies or ``None`` if the callback's ``scope`` decides)
CRITERIA: dict[str, tuple] = {
    "magnitude": (magnitude_score, None),
    "global_magnitude": (magnitude_score, "global"),
}


def score(criterion: str, weight: Tensor) -> Tensor:
    """Score ``weight`` with the named criterion (see :data:`CRITERIA`)."""
    return CRITERIA[criterion][0](weight)


__all__ = ["CRITERIA", "Scope", "magnitude_score", "score"]
