"""Non-finite checks: find the first NaN or infinite weight or loss and say where it is.

One NaN loss is enough to ruin a fine-tuning run: its backward pass makes every gradient NaN, the optimizer writes
NaN into every weight it updates, and ``NaN · 0`` is still NaN, so even masked weights stop being zero. The helpers
here only look at tensors; when to look (the logging cadence of a fit) is decided by
:class:`lightning_compress.callbacks.finite_guard.NonFiniteGuard`.

Every check reduces each tensor on its own device and reads the results back with a single host synchronisation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

__all__ = ["check_finite_losses", "check_finite_parameters", "first_non_finite", "first_non_finite_loss"]

_HINT = (
    "HINT: lower the learning rate or clip gradients (`Trainer(gradient_clip_val=1.0)`), and with float16 prefer "
    "precision='bf16-mixed' or '16-mixed' (whose gradient scaler skips overflowing steps) to '16-true'."
)


def first_non_finite(tensors: Iterable[tuple[str, Tensor | None]]) -> str | None:
    """Name of the first floating tensor of ``tensors`` holding a NaN or an infinity, or ``None`` if all are finite.

    Args:
        tensors: ``(name, tensor)`` pairs, e.g. ``module.named_parameters()``; ``None`` and integer tensors are
            skipped. Tensors may live on different devices.

    Returns:
        The name of the first non-finite tensor in iteration order, or ``None``.

    Example:
        >>> first_non_finite([("a", torch.ones(2)), ("b", torch.tensor([1.0, float("nan")]))])
        'b'
    """
    named = [(name, tensor) for name, tensor in tensors if tensor is not None and tensor.is_floating_point()]
    if not named:
        return None
    device = named[0][1].device
    finite = torch.stack([torch.isfinite(tensor.detach()).all().to(device) for _, tensor in named])
    if bool(finite.all()):  # the only host synchronisation
        return None
    return named[int((~finite).nonzero()[0])][0]


def first_non_finite_loss(losses: Sequence[tuple[int, Tensor]]) -> tuple[int, float] | None:
    """The first ``(step, value)`` of ``losses`` whose scalar loss is NaN or infinite, or ``None``.

    Args:
        losses: ``(step, loss)`` pairs in step order; every loss is a scalar tensor, all on one device.

    Example:
        >>> first_non_finite_loss([(0, torch.tensor(0.7)), (1, torch.tensor(float("inf")))])
        (1, inf)
    """
    if not losses:
        return None
    values = torch.stack([loss.detach().reshape(()) for _, loss in losses])
    finite = torch.isfinite(values)
    if bool(finite.all()):  # the only host synchronisation
        return None
    index = int((~finite).nonzero()[0])
    return losses[index][0], float(values[index])


def check_finite_parameters(tensors: Iterable[tuple[str, Tensor | None]], where: str) -> None:
    """Raise unless every tensor of ``tensors`` is finite.

    Args:
        tensors: ``(name, tensor)`` pairs, e.g. ``pl_module.named_parameters()``.
        where: When the check runs, for the message (``"at global step 12"``).

    Raises:
        FloatingPointError: naming the first non-finite tensor, ``where``, and how many of its entries are NaN and
            infinite.

    Example:
        >>> weights = [("w", torch.tensor([1.0, float("inf")]))]
        >>> check_finite_parameters(weights, "at global step 3")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        FloatingPointError: Parameter `w` is not finite at global step 3 (0 NaN and 1 infinite of 2 entries)...
    """
    named = dict(tensors)
    name = first_non_finite(named.items())
    if name is None:
        return
    tensor = named[name].detach()
    nans, infs = int(torch.isnan(tensor).sum()), int(torch.isinf(tensor).sum())
    raise FloatingPointError(
        f"Parameter `{name}` is not finite {where} ({nans} NaN and {infs} infinite of {tensor.numel()} entries): "
        f"the training diverged (a non-finite loss or gradient reached the optimizer), so the model is unusable. "
        f"{_HINT}"
    )


def check_finite_losses(losses: Sequence[tuple[int, Tensor]], what: str = "the training loss") -> None:
    """Raise if any ``(step, loss)`` of ``losses`` is NaN or infinite.

    Args:
        losses: ``(global step, scalar loss)`` pairs in step order.
        what: Name of the loss for the message.

    Raises:
        FloatingPointError: naming ``what``, the first non-finite value and its global step.

    Example:
        >>> check_finite_losses([(4, torch.tensor(float("nan")))])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        FloatingPointError: The training loss is nan at global step 4...
    """
    found = first_non_finite_loss(losses)
    if found is None:
        return
    step, value = found
    raise FloatingPointError(
        f"{what[:1].upper()}{what[1:]} is {value} at global step {step}: its backward pass makes the gradients, and "
        f"then the weights, non-finite. Look at that step's batch and learning rate. {_HINT}"
    )
