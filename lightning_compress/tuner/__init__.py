"""Constrained Bayesian-optimisation tuner (METHODS §6): find the most compressed setting that keeps a metric."""

from lightning_compress.tuner.acquisition import DomainRestrictedUCB, ProbabilityAboveLevel
from lightning_compress.tuner.executors import LocalExecutor, RayExecutor, TrialOutcome, TrialSpec
from lightning_compress.tuner.journal import Journal, Trial
from lightning_compress.tuner.search import (
    SearchResult,
    constrained_search,
    dr_ucb_search,
    objective_search,
    propose_constrained,
    propose_level_set,
    propose_objective,
)
from lightning_compress.tuner.trial_report import TrialReport
from lightning_compress.tuner.tuner import Knob, SparsityTuner, TunerResult, make_tuner

__all__ = [
    "DomainRestrictedUCB",
    "Journal",
    "Knob",
    "LocalExecutor",
    "RayExecutor",
    "SparsityTuner",
    "Trial",
    "TrialOutcome",
    "TrialReport",
    "TrialSpec",
    "TunerResult",
    "make_tuner",
    "ProbabilityAboveLevel",
    "SearchResult",
    "constrained_search",
    "dr_ucb_search",
    "objective_search",
    "propose_constrained",
    "propose_level_set",
    "propose_objective",
]
