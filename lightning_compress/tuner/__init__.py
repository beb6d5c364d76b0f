"""Constrained Bayesian-optimisation tuner: find the most compressed setting that keeps a metric.

After Condensa (Joseph et al., 2020); see docs/tuner.md.
"""

from lightning_compress.tuner.acquisition import DomainRestrictedUCB, ProbabilityAboveLevel
from lightning_compress.tuner.executors import LocalExecutor, RayExecutor, TrialOutcome, TrialSpec
from lightning_compress.tuner.journal import Journal, JournalError, Trial
from lightning_compress.tuner.lock import SweepLock, SweepLockedError
from lightning_compress.tuner.search import (
    SearchResult,
    constrained_search,
    dr_ucb_search,
    level_set_search,
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
    "JournalError",
    "Knob",
    "LocalExecutor",
    "RayExecutor",
    "SparsityTuner",
    "SweepLock",
    "SweepLockedError",
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
    "level_set_search",
    "objective_search",
    "propose_constrained",
    "propose_level_set",
    "propose_objective",
]
