"""When the pruning callbacks act: ``every_n_steps`` optimizer steps or ``every_n_epochs`` epochs (as Lightning's
``ModelCheckpoint``), and the deprecated ``frequency`` argument they replace."""

from __future__ import annotations

import math
from typing import Any

from pytorch_lightning import Trainer

from lightning_compress.deprecation import warn_deprecated
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
    total = trainer.estimated_stepping_batches
    if not math.isfinite(total):
        raise ValueError(f"{owner} needs a bounded run to place its schedule: set `max_epochs` or `max_steps`.")
    total = int(total)
    start_step, end_step = (round(x * total) if isinstance(x, float) else x for x in (start, end))
    end_step = min(end_step, total - 1)
    return min(start_step, end_step), end_step, event_interval(trainer, every_n_steps, every_n_epochs), total
