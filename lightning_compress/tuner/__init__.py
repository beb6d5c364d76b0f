"""Constrained Bayesian-optimisation tuner (METHODS §6): find the most compressed setting that keeps a metric."""

from lightning_compress.tuner.acquisition import DomainRestrictedUCB, ProbabilityAboveLevel
from lightning_compress.tuner.search import (
    SearchResult,
    constrained_search,
    dr_ucb_search,
    objective_search,
    propose_constrained,
    propose_level_set,
    propose_objective,
)

__all__ = [
    "DomainRestrictedUCB",
    "ProbabilityAboveLevel",
    "SearchResult",
    "constrained_search",
    "dr_ucb_search",
    "objective_search",
    "propose_constrained",
    "propose_level_set",
    "propose_objective",
]
