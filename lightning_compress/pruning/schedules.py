"""Sparsity schedules (docs/methods.md#sparsity-schedules): when to prune and to which sparsity.

A schedule is computed once, before training, as a list of :class:`PruningEvent` ``(step, sparsity)``
pairs. ``step`` counts completed optimizer steps: an event at step ``t`` prunes right before the
optimizer step ``t + 1`` (after the validation that closes the previous interval, so the metric of a
sparsity level is measured after its recovery interval, docs/methods.md#the-fine-pruning-loop).
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from lightning_compress.validation import check_choice, check_float, check_step_or_fraction

ScheduleName = Literal["cubic", "iterative", "one_shot"]
#: The schedule names of :func:`pruning_events`.
SCHEDULES = ("cubic", "iterative", "one_shot")


class PruningEvent(NamedTuple):
    step: int
    sparsity: float


def cubic_sparsity(event: int, n_events: int, initial_sparsity: float, final_sparsity: float) -> float:
    """Zhu & Gupta (2017) cubic schedule at pruning event ``event`` of ``n_events`` (Survey Eq. 7).

    .. math:: s_j = s_f + (s_i - s_f) (1 - j / n)^3, \\quad j = 0, \\dots, n

    Example:
        >>> cubic_sparsity(0, 4, 0.0, 0.8), cubic_sparsity(4, 4, 0.0, 0.8)
        (0.0, 0.8)
    """
    if n_events == 0 or event >= n_events:
        return final_sparsity
    if event <= 0:
        return initial_sparsity
    fraction = event / n_events
    return final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - fraction) ** 3


def iterative_sparsity(event: int, step_fraction: float, initial_sparsity: float = 0.0) -> float:
    """O'Neill geometric schedule: each event prunes ``step_fraction`` of the *remaining* weights.

    .. math:: s_k = 1 - (1 - s_i)(1 - f)^k

    With ``step_fraction=0.1`` the remaining fraction after ``k`` events is ``0.9**k``
    (docs/methods.md#measuring-sparsity).

    Example:
        >>> round(1 - iterative_sparsity(11, 0.1), 4)
        0.3138
    """
    return 1.0 - (1.0 - initial_sparsity) * (1.0 - step_fraction) ** event


def pruning_events(
    schedule: ScheduleName,
    *,
    start_step: int,
    end_step: int,
    frequency: int,
    final_sparsity: float,
    initial_sparsity: float = 0.0,
    step_fraction: float = 0.1,
) -> list[PruningEvent]:
    """All pruning events of a run, in step order.

    Args:
        schedule: ``"cubic"`` — events at ``start_step + j * frequency`` for ``j = 0..n`` with
            ``n = (end_step - start_step) // frequency``, sparsity :func:`cubic_sparsity`, so
            ``initial_sparsity`` at ``start_step`` and ``final_sparsity`` at the last event;
            ``"iterative"`` — events at ``start_step + k * frequency`` (``k >= 1``, up to ``end_step``),
            sparsity :func:`iterative_sparsity` capped at ``final_sparsity``, stopping once it is reached;
            ``"one_shot"`` — a single event at ``start_step`` with ``final_sparsity``.
        start_step, end_step: First and last optimizer step (inclusive) at which events may happen.
        frequency: Optimizer steps between events (> 0).

    Returns:
        Events with strictly increasing steps and non-decreasing sparsity; events with sparsity 0 are dropped.
    """
    if frequency <= 0:
        raise ValueError(f"`frequency={frequency}` is invalid: expected an int > 0.")
    if end_step < start_step:
        raise ValueError(f"The schedule ends (step {end_step}) before it starts (step {start_step}).")
    events: list[PruningEvent] = []
    if schedule == "one_shot":
        events = [PruningEvent(start_step, final_sparsity)]
    elif schedule == "cubic":
        n_events = (end_step - start_step) // frequency
        events = [
            PruningEvent(start_step + j * frequency, cubic_sparsity(j, n_events, initial_sparsity, final_sparsity))
            for j in range(n_events + 1)
        ]
    elif schedule == "iterative":
        k, step = 1, start_step + frequency
        while step <= end_step:
            sparsity = min(final_sparsity, iterative_sparsity(k, step_fraction, initial_sparsity))
            events.append(PruningEvent(step, sparsity))
            if sparsity >= final_sparsity:
                break
            k, step = k + 1, step + frequency
    else:
        raise ValueError(f"Unknown schedule {schedule!r}: expected one of ['cubic', 'iterative', 'one_shot'].")
    return [event for event in events if event.sparsity > 0.0]


def check_schedule_arguments(owner: str, schedule: Any, start: Any, end: Any, step_fraction: Any) -> None:
    """Check the schedule arguments of the pruning callback ``owner``, with the messages of
    :mod:`lightning_compress.validation`.

    ``schedule`` is one of :data:`SCHEDULES`; ``start`` and ``end`` are optimizer steps (int) or fractions of the run
    (float), ``end`` not before ``start`` when both are of one kind; ``step_fraction`` lies in ``(0, 1)``.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: a value outside the allowed range.

    Example:
        >>> check_schedule_arguments("StructuredPruning", "cubic", 0.5, 0.25, 0.1)
        Traceback (most recent call last):
        ValueError: `StructuredPruning(start=0.5, end=0.25)` is invalid: end must not come before start.
    """
    check_choice(owner, "schedule", schedule, SCHEDULES)
    check_step_or_fraction(owner, "start", start)
    check_step_or_fraction(owner, "end", end)
    if type(start) is type(end) and end < start:
        raise ValueError(f"`{owner}(start={start!r}, end={end!r})` is invalid: end must not come before start.")
    check_float(owner, "step_fraction", step_fraction, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
