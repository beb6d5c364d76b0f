"""Gradual magnitude pruning during fine-tuning (METHODS §1)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.utilities import rank_zero_info
from torch import Tensor

from lightning_compress.callbacks._common import named_parameters, warn_if_training_in_eval_mode
from lightning_compress.pruning.criteria import CRITERIA, score
from lightning_compress.pruning.masks import apply_masks_, global_masks, layerwise_masks, mask_sparsity
from lightning_compress.pruning.schedules import PruningEvent, pruning_events
from lightning_compress.targeting import resolve_targets, validate_patterns

_SCHEDULES = ("cubic", "iterative", "one_shot")
_SCOPES = {"layer": layerwise_masks, "global": global_masks}


class GradualMagnitudePruning(Callback):
    r"""Prune the target weights gradually while the model is fine-tuned.

    At each pruning event of the schedule the target weights are scored (``criterion``) and the lowest
    scores are masked until the scheduled sparsity is reached, per matrix (``scope="layer"``) or pooled
    over all targets (``scope="global"``). Masks are monotone and kept as ``torch.bool`` per parameter
    FQN. After every optimizer step the pruned weights are set back to exactly zero, and before it their
    gradients are zeroed, so AdamW's weight decay and moments can never revive them (METHODS §1.1).
    Between pruning events the cost is one in-place masked multiply per target per step.

    Args:
        final_sparsity: Fraction of target weights pruned at the end of the schedule, in ``[0, 1)``.
        initial_sparsity: Sparsity of the first cubic event (``schedule="cubic"``), or the starting point of the
            geometric schedule.
        schedule: ``"cubic"`` (Zhu & Gupta), ``"iterative"`` (prune ``step_fraction`` of the remaining weights at
            each event, O'Neill) or ``"one_shot"`` (one event at ``start``).
        start, end: When events may happen: a float in ``[0, 1]`` is a fraction of the run's optimizer steps
            (``trainer.estimated_stepping_batches``, so gradient accumulation, ``max_steps`` and ``max_epochs`` all
            give the exact schedule); an int is an absolute optimizer step. ``end`` is inclusive; an event at the
            run's last step would prune after training and is moved to the step before it.
        frequency: Optimizer steps between events, or ``"epoch"`` for one event per epoch (at epoch boundaries,
            after that epoch's validation, as in the O'Neill protocols).
        step_fraction: Fraction of the remaining weights pruned per event by ``schedule="iterative"``.
        scope: ``"layer"`` (every matrix to the same sparsity) or ``"global"`` (one threshold over all targets).
        criterion: Score name from :data:`lightning_compress.pruning.criteria.CRITERIA` (``"magnitude"``,
            ``"global_magnitude"``).
        targets: Regexes over parameter names; default every ``nn.Linear`` weight inside the transformer encoder.
        exclude: Regexes removing parameters from the targets.

    Example::

        trainer = Trainer(max_epochs=3, callbacks=[GradualMagnitudePruning(final_sparsity=0.5, start=0.3)])
        trainer.fit(module, datamodule)
    """

    def __init__(
        self,
        final_sparsity: float = 0.9,
        initial_sparsity: float = 0.0,
        schedule: Literal["cubic", "iterative", "one_shot"] = "cubic",
        start: int | float = 0.0,
        end: int | float = 0.75,
        frequency: int | Literal["epoch"] = 10,
        step_fraction: float = 0.1,
        scope: Literal["layer", "global"] = "layer",
        criterion: str = "magnitude",
        targets: str | list[str] | None = None,
        exclude: str | list[str] | None = None,
    ) -> None:
        super().__init__()
        self._validate_init_arguments(
            final_sparsity, initial_sparsity, schedule, start, end, frequency, step_fraction, scope, criterion
        )
        self.final_sparsity = float(final_sparsity)
        self.initial_sparsity = float(initial_sparsity)
        self.schedule = schedule
        self.start = start
        self.end = end
        self.frequency = frequency
        self.step_fraction = float(step_fraction)
        self.criterion = criterion
        self.scope = CRITERIA[criterion][1] or scope
        self.targets = validate_patterns("targets", targets)
        self.exclude = validate_patterns("exclude", exclude)

        self.target_names: list[str] = []
        self.masks: dict[str, Tensor] = {}
        self.events: list[PruningEvent] = []
        self.last_event_step = -1
        self.metrics_before_pruning: dict[str, float] = {}
        self._masked_at_step = -1
        self._eval_mode_checked = False

    @staticmethod
    def _validate_init_arguments(
        final_sparsity: Any,
        initial_sparsity: Any,
        schedule: Any,
        start: Any,
        end: Any,
        frequency: Any,
        step_fraction: Any,
        scope: Any,
        criterion: Any,
    ) -> None:
        name = "GradualMagnitudePruning"
        for arg, value in (("final_sparsity", final_sparsity), ("initial_sparsity", initial_sparsity)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"`{name}({arg}={value!r})` is invalid: expected a float in [0, 1).")
            if not 0.0 <= value < 1.0 or math.isnan(value):
                raise ValueError(
                    f"`{name}({arg}={value!r})` is invalid: expected a float in [0, 1) "
                    "(the fraction of target weights set to zero; 1.0 would remove every weight)."
                )
        if initial_sparsity > final_sparsity:
            raise ValueError(
                f"`{name}(initial_sparsity={initial_sparsity}, final_sparsity={final_sparsity})` is invalid: "
                "initial_sparsity must not exceed final_sparsity."
            )
        if schedule not in _SCHEDULES:
            raise ValueError(f"`{name}(schedule={schedule!r})` is invalid: expected one of {list(_SCHEDULES)}.")
        for arg, value in (("start", start), ("end", end)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(
                    f"`{name}({arg}={value!r})` is invalid: expected a float fraction in [0, 1] or an int step >= 0."
                )
            if isinstance(value, float) and not 0.0 <= value <= 1.0:
                raise ValueError(
                    f"`{name}({arg}={value!r})` is invalid: a float is a fraction of the run and must lie in [0, 1]; "
                    "use an int for an absolute optimizer step."
                )
            if isinstance(value, int) and value < 0:
                raise ValueError(f"`{name}({arg}={value!r})` is invalid: an int step must be >= 0.")
        if type(start) is type(end) and end < start:
            raise ValueError(f"`{name}(start={start!r}, end={end!r})` is invalid: end must not come before start.")
        if frequency != "epoch" and (isinstance(frequency, bool) or not isinstance(frequency, int) or frequency <= 0):
            raise ValueError(f"`{name}(frequency={frequency!r})` is invalid: expected an int > 0 or 'epoch'.")
        if isinstance(step_fraction, bool) or not isinstance(step_fraction, (int, float)) or not 0 < step_fraction < 1:
            raise ValueError(f"`{name}(step_fraction={step_fraction!r})` is invalid: expected a float in (0, 1).")
        if scope not in _SCOPES:
            raise ValueError(f"`{name}(scope={scope!r})` is invalid: expected one of {list(_SCOPES)}.")
        if criterion not in CRITERIA:
            raise ValueError(f"`{name}(criterion={criterion!r})` is invalid: expected one of {sorted(CRITERIA)}.")

    @property
    def state_key(self) -> str:
        return self._generate_state_key(
            criterion=self.criterion, final_sparsity=self.final_sparsity, targets=self.targets, exclude=self.exclude
        )

    # ------------------------------------------------------------------ hooks
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.target_names = resolve_targets(pl_module, self.targets or None, self.exclude or None)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.events = self._compute_events(trainer)
        if self.events and self.events[-1].sparsity < self.final_sparsity:
            rank_zero_info(
                f"GradualMagnitudePruning: the schedule reaches only {self.events[-1].sparsity:.3f} sparsity "
                f"(final_sparsity={self.final_sparsity}) within this run; more steps or a larger step_fraction are needed."
            )
        params = named_parameters(pl_module)
        missing = [name for name in self.masks if name not in params]
        if missing:
            raise RuntimeError(f"GradualMagnitudePruning: the checkpoint has masks for parameters the model lacks: {missing[:5]}.")
        self.masks = {name: mask.to(params[name].device) for name, mask in self.masks.items()}
        apply_masks_(params, self.masks)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if not self._eval_mode_checked:
            warn_if_training_in_eval_mode(pl_module, type(self).__name__)
            self._eval_mode_checked = True
        step = trainer.global_step
        if step <= self.last_event_step:
            return
        for event in self.events:
            if event.step == step:
                self._prune(trainer, pl_module, event)

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        if self.masks:
            apply_masks_(named_parameters(pl_module), self.masks, grads=True)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.masks and trainer.global_step != self._masked_at_step:
            apply_masks_(named_parameters(pl_module), self.masks)
            self._masked_at_step = trainer.global_step

    # ------------------------------------------------------------------ logic
    def _compute_events(self, trainer: Trainer) -> list[PruningEvent]:
        total = trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise ValueError(
                "GradualMagnitudePruning needs a bounded run to place its schedule: set `max_epochs` or `max_steps`."
            )
        total = int(total)
        if self.frequency == "epoch":
            frequency = max(1, math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches))
        else:
            frequency = int(self.frequency)
        start, end = (round(x * total) if isinstance(x, float) else x for x in (self.start, self.end))
        end = min(end, total - 1)
        start = min(start, end)
        return pruning_events(
            self.schedule,
            start_step=start,
            end_step=end,
            frequency=frequency,
            final_sparsity=self.final_sparsity,
            initial_sparsity=self.initial_sparsity,
            step_fraction=self.step_fraction,
        )

    @torch.no_grad()
    def _prune(self, trainer: Trainer, pl_module: LightningModule, event: PruningEvent) -> None:
        if self.last_event_step < 0:
            self.metrics_before_pruning = {
                key: float(value) for key, value in trainer.callback_metrics.items() if key.startswith("val")
            }
        params = named_parameters(pl_module)
        scores = {name: score(self.criterion, params[name]) for name in self.target_names}
        self.masks = _SCOPES[self.scope](scores, event.sparsity, previous=self.masks or None)
        apply_masks_(params, self.masks)
        self.last_event_step = event.step
        sparsity = mask_sparsity(self.masks.values())
        pl_module.log("compress/pruning/sparsity", sparsity, on_step=True, on_epoch=False, rank_zero_only=True)
        rank_zero_info(f"GradualMagnitudePruning: step {event.step}, target sparsity {event.sparsity:.4f}, measured {sparsity:.4f}")

    # ------------------------------------------------------------------ state
    @property
    def sparsity(self) -> float:
        """Measured sparsity of the target set, counted from the masks (0.0 before the first event)."""
        return mask_sparsity(self.masks.values()) if self.masks else 0.0

    def state_dict(self) -> dict[str, Any]:
        return {
            "masks": {name: mask.cpu() for name, mask in self.masks.items()},
            "last_event_step": self.last_event_step,
            "metrics_before_pruning": dict(self.metrics_before_pruning),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.masks = {name: mask.bool() for name, mask in state_dict.get("masks", {}).items()}
        self.last_event_step = int(state_dict.get("last_event_step", -1))
        self.metrics_before_pruning = dict(state_dict.get("metrics_before_pruning", {}))
