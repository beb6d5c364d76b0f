"""Schedules of the gradient-dropout family (docs/methods.md#annealed-gradient-dropout, §5.5): annealed drop
probability, gradual unfreezing."""

from __future__ import annotations

import math


def annealed_drop_probability(epoch: int, num_epochs: int, p_start: float = 0.9, p_end: float = 0.0) -> float:
    r"""Drop probability of epoch ``epoch`` (1-based) under the linear annealing of
    docs/methods.md#annealed-gradient-dropout (docs/methods.md#annealing-recurrence).

    .. math:: p_e = p_\mathrm{start} + (p_\mathrm{end} - p_\mathrm{start}) \frac{e - 1}{T - 1}, \quad e = 1..T

    so ``p_1 = p_start`` and ``p_T = p_end`` (O'Neill §10.3.3: from 0.9 down to 0). Epochs after ``T`` keep
    ``p_end``; with ``T = 1`` the single epoch uses ``p_start``.

    Example:
        >>> [round(annealed_drop_probability(e, 4), 2) for e in (1, 2, 3, 4)]
        [0.9, 0.6, 0.3, 0.0]
    """
    if num_epochs <= 1:
        return p_start
    fraction = min(max(epoch - 1, 0), num_epochs - 1) / (num_epochs - 1)
    return p_start + (p_end - p_start) * fraction


def unfrozen_count(epoch: int, num_units: int, layers_per_step: int = 2, every_n_epochs: int = 1) -> int:
    """Number of units (layers, then the embeddings) trainable in epoch ``epoch`` (1-based)
    (docs/methods.md#gradual-unfreezing, docs/methods.md#unfrozen-block-count).

    ``min(k * ceil(e / n), U)``: the first ``k`` units train from the first epoch and ``k`` more are unfrozen
    every ``n`` epochs. O'Neill §10.4.1 implies ``k = 2`` on the 24 layers of XLM-R Large ("after 3 epochs …
    only 6 of 24 layers being unfrozen").

    Example:
        >>> [unfrozen_count(e, 5) for e in (1, 2, 3, 4)]
        [2, 4, 5, 5]
    """
    return min(layers_per_step * math.ceil(max(epoch, 1) / every_n_epochs), num_units)
