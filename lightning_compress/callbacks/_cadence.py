"""When the pruning callbacks act: ``every_n_steps`` optimizer steps or ``every_n_epochs`` epochs (as Lightning's
``ModelCheckpoint``), the deprecated ``frequency`` argument they replace, and :class:`PruningSchedule`, the schedule
settings and event hooks that :class:`~lightning_compress.callbacks.GradualMagnitudePruning` and
:class:`~lightning_compress.callbacks.StructuredPruning` share."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from pytorch_lightning import LightningModule, Trainer
from torch import Tensor

from lightning_compress.callbacks._common import warn_if_training_in_eval_mode
from lightning_compress.deprecation import warn_deprecated
from lightning_compress.pruning.schedules import PruningEvent, pruning_events
from lightning_compress.validation import check_int, invalid

#: Optimizer steps between events when neither ``every_n_steps`` nor ``every_n_epochs`` is given.
DEFAULT_EVERY_N_STEPS = 10


def resolve_cadence(
    owner: str, every_n_steps: Any, every_n_epochs: Any, frequency: Any = None
) -> tuple[int | None, int | None]:
    """Check the cadence arguments of ``owner`` and return ``(every_n_steps, every_n_epochs)``, exactly one not None.

    ``frequency`` (deprecated) maps ``n`` to ``every_n_steps=n`` and ``"epoch"`` to ``every_n_epochs=1``, with a
    deprecation warning. Neither given: ``every_n_steps=10``.

    Raises:
        TypeError: a cadence that is not an int.
        ValueError: an int below 1, both cadences given, or ``frequency`` together with one of them.
    """
    if frequency is not None:
        new = "every_n_epochs=1" if frequency == "epoch" else f"every_n_steps={frequency!r}"
        warn_deprecated(f"`{owner}(frequency={frequency!r})`", f"`{owner}({new})`", stacklevel=3)
        if frequency != "epoch" and (not isinstance(frequency, int) or isinstance(frequency, bool) or frequency < 1):
            raise ValueError(invalid(owner, "frequency", frequency, "an int > 0 or 'epoch'"))
        if every_n_steps is not None or every_n_epochs is not None:
            raise ValueError(
                f"`{owner}(frequency={frequency!r}, every_n_steps={every_n_steps!r}, every_n_epochs="
                f"{every_n_epochs!r})` is invalid: expected only `every_n_steps` or `every_n_epochs` (`frequency` is "
                "their deprecated name)."
            )
        every_n_steps, every_n_epochs = (None, 1) if frequency == "epoch" else (frequency, None)
    check_int(owner, "every_n_steps", every_n_steps, 1, allow_none=True)
    check_int(owner, "every_n_epochs", every_n_epochs, 1, allow_none=True)
    if every_n_steps is not None and every_n_epochs is not None:
        raise ValueError(
            f"`{owner}(every_n_steps={every_n_steps!r}, every_n_epochs={every_n_epochs!r})` is invalid: expected one "
            "of them (events every n optimizer steps, or every n epochs at epoch boundaries)."
        )
    if every_n_steps is None and every_n_epochs is None:
        every_n_steps = DEFAULT_EVERY_N_STEPS
    return every_n_steps, every_n_epochs


def event_interval(trainer: Trainer, every_n_steps: int | None, every_n_epochs: int | None) -> int:
    """Optimizer steps between two events: ``every_n_steps``, or ``every_n_epochs`` epochs of optimizer steps."""
    if every_n_epochs is not None:
        steps_per_epoch = max(1, math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches))
        return every_n_epochs * steps_per_epoch
    return int(every_n_steps)


def legacy_frequency(every_n_steps: int | None, every_n_epochs: int | None) -> int | str | None:
    """The deprecated ``frequency`` value that gives the same events: ``every_n_steps``, ``"epoch"`` for
    ``every_n_epochs=1``, ``None`` for longer epoch cadences (which ``frequency`` could not express)."""
    if every_n_epochs is not None:
        return "epoch" if every_n_epochs == 1 else None
    return every_n_steps


def upgrade_cadence_settings(saved: dict[str, Any]) -> dict[str, Any]:
    """Settings of a checkpoint written with ``frequency``, under ``every_n_steps``/``every_n_epochs``."""
    if "frequency" not in saved:
        return saved
    upgraded = {key: value for key, value in saved.items() if key != "frequency"}
    frequency = saved["frequency"]
    upgraded["every_n_steps"], upgraded["every_n_epochs"] = (None, 1) if frequency == "epoch" else (frequency, None)
    return upgraded


def bounded_steps(trainer: Trainer, owner: str, purpose: str = "") -> int:
    """The run's number of optimizer steps (``trainer.estimated_stepping_batches``).

    Raises:
        ValueError: the run is unbounded (``"{owner} needs a bounded run[ to {purpose}]: set ..."``).
    """
    total = trainer.estimated_stepping_batches
    if not math.isfinite(total):
        reason = f" to {purpose}" if purpose else ""
        raise ValueError(f"{owner} needs a bounded run{reason}: set `max_epochs` or `max_steps`.")
    return int(total)


def schedule_steps(
    trainer: Trainer,
    owner: str,
    start: int | float,
    end: int | float,
    every_n_steps: int | None,
    every_n_epochs: int | None,
) -> tuple[int, int, int, int]:
    """Where a pruning schedule sits in this run: ``(start_step, end_step, interval, total_steps)``.

    ``start``/``end`` are optimizer steps (int) or fractions of the run (float); ``end`` is clamped to the last step
    and ``start`` to ``end``; ``interval`` is :func:`event_interval`.

    Raises:
        ValueError: the run has no bounded number of optimizer steps.
    """
    total = bounded_steps(trainer, owner, "place its schedule")
    start_step, end_step = (round(x * total) if isinstance(x, float) else x for x in (start, end))
    end_step = min(end_step, total - 1)
    return min(start_step, end_step), end_step, event_interval(trainer, every_n_steps, every_n_epochs), total


#: The schedule settings of the pruning callbacks, in their saved order; a resume may change them.
SCHEDULE_SETTINGS = ("final_sparsity", "schedule", "start", "end", "every_n_steps", "every_n_epochs", "step_fraction")


class PruningSchedule:
    """The sparsity schedule of a pruning callback: its settings, its events in this run and the hooks firing them.

    Mixed in before :class:`~lightning_compress.callbacks._resume.StatefulCallback`. A subclass checks its arguments
    (:func:`resolve_cadence`, :func:`~lightning_compress.pruning.schedules.check_schedule_arguments`), calls
    :meth:`_init_schedule` from ``__init__``, sets ``self.events = self._compute_events(trainer)`` in
    ``on_train_start`` and implements ``_prune(trainer, pl_module, index, event)`` (one event: new masks, applied to
    the model) and ``_apply_masks(pl_module)`` (the current masks set again on the weights).
    """

    #: The settings that place the schedule (:meth:`schedule_settings`), in their saved order.
    schedule_setting_names: ClassVar[tuple[str, ...]] = SCHEDULE_SETTINGS
    #: Sparsity of the first cubic event (only ``GradualMagnitudePruning`` takes it as an argument).
    initial_sparsity: float = 0.0

    def _init_schedule(
        self,
        final_sparsity: float,
        schedule: str,
        start: int | float,
        end: int | float,
        every_n_steps: int | None,
        every_n_epochs: int | None,
        step_fraction: float,
    ) -> None:
        """Keep the (checked) schedule settings; no event has happened and no mask exists yet."""
        self.final_sparsity = float(final_sparsity)
        self.schedule = schedule
        self.start, self.end = start, end
        self.every_n_steps, self.every_n_epochs = every_n_steps, every_n_epochs
        self.step_fraction = float(step_fraction)
        self.masks: dict[str, Tensor] = {}
        self.events: list[PruningEvent] = []
        self.last_event_step = -1
        self._masked_at_step = -1
        self._eval_mode_checked = False

    @property
    def frequency(self) -> int | str | None:
        """Deprecated (removed in 0.2.0): :attr:`every_n_steps`, or ``"epoch"`` for ``every_n_epochs=1``."""
        warn_deprecated(f"`{type(self).__name__}.frequency`", "`every_n_steps` / `every_n_epochs`")
        return legacy_frequency(self.every_n_steps, self.every_n_epochs)

    def upgrade_settings(self, saved: dict[str, Any]) -> dict[str, Any]:
        """Settings of checkpoints written with ``frequency`` compare as ``every_n_steps``/``every_n_epochs``."""
        return upgrade_cadence_settings(super().upgrade_settings(saved))

    def schedule_settings(self) -> dict[str, Any]:
        """The settings of :attr:`schedule_setting_names`, for ``checkpoint_settings``."""
        return {name: getattr(self, name) for name in self.schedule_setting_names}

    def _compute_events(self, trainer: Trainer) -> list[PruningEvent]:
        """The events of this run: the settings placed on its optimizer steps (:func:`schedule_steps`)."""
        start, end, frequency, _ = schedule_steps(
            trainer, type(self).__name__, self.start, self.end, self.every_n_steps, self.every_n_epochs
        )
        return pruning_events(
            self.schedule,
            start_step=start,
            end_step=end,
            frequency=frequency,
            final_sparsity=self.final_sparsity,
            initial_sparsity=self.initial_sparsity,
            step_fraction=self.step_fraction,
        )

    def _prune(self, trainer: Trainer, pl_module: LightningModule, index: int, event: PruningEvent) -> None:
        """Carry out event ``index`` of :attr:`events`: new masks from the scores, applied to the model."""
        raise NotImplementedError

    def _apply_masks(self, pl_module: LightningModule) -> None:
        """Set the weights of the pruned units back to exactly zero (the current :attr:`masks`)."""
        raise NotImplementedError

    def _check_gradient_schedule(self, reads_gradients: bool, criterion: str) -> None:
        """A criterion that reads the gradients summed since the last event cannot score an event at step 0."""
        if reads_gradients and self.events and self.events[0].step == 0:
            raise ValueError(
                f"{type(self).__name__}(criterion={criterion!r}) scores gradients summed over the optimizer steps "
                "before each event, but the first event is at step 0: start the schedule at step >= 1 (e.g. "
                "`start=1` or a fraction > 0)."
            )

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        """Warn once when the model trains with dropout off, then fire the events of this optimizer step."""
        if not self._eval_mode_checked:
            warn_if_training_in_eval_mode(pl_module, type(self).__name__)
            self._eval_mode_checked = True
        step = trainer.global_step
        if step <= self.last_event_step:
            return
        for index, event in enumerate(self.events):
            if event.step == step:
                self._prune(trainer, pl_module, index, event)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Set the pruned weights back to exactly zero after the optimizer step (once per step), then go on."""
        if self.masks and trainer.global_step != self._masked_at_step:
            self._apply_masks(pl_module)
            self._masked_at_step = trainer.global_step
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def _event_state(self) -> dict[str, Any]:
        """The masks (on CPU) and the step of the last event, for ``state_dict``."""
        return {
            "masks": {name: mask.cpu() for name, mask in self.masks.items()},
            "last_event_step": self.last_event_step,
        }

    def _load_event_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`_event_state` saved (absent entries: no event yet)."""
        self.masks = {name: mask.bool() for name, mask in state.get("masks", {}).items()}
        self.last_event_step = int(state.get("last_event_step", -1))
