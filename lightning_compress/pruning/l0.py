"""Hard-concrete L0 gates (Louizos et al. 2018; docs/methods.md#hard-concrete-l0-gates [external]).

Each gated weight ``w`` gets a learnable ``log α`` and a gate ``z ∈ [0, 1]``:

.. math::

    s = \\sigma((\\log u - \\log(1 - u) + \\log\\alpha) / \\beta), \\quad u \\sim U(0, 1), \\qquad
    z = \\min(1, \\max(0, s (\\zeta - \\gamma) + \\gamma))

during training, ``ẑ = min(1, max(0, σ(log α)(ζ − γ) + γ))`` at evaluation, and the expected L0 norm
``Σ P(z ≠ 0) = Σ σ(log α − β log(−γ/ζ))``. The functions are pure; :func:`gate_weight_` puts ``weight ⊙ gate``
in a module's forward without renaming the module's parameter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

BETA, GAMMA, ZETA = 2.0 / 3.0, -0.1, 1.1
#: Standard deviation of the noise added to the initial ``log α`` (docs/methods.md#hard-concrete-l0-gates [default]).
INIT_NOISE_STD = 0.01


def init_log_alpha(
    shape: torch.Size | tuple[int, ...], generator: torch.Generator, drop_rate: float = 0.1, std: float = INIT_NOISE_STD
) -> Tensor:
    """Initial ``log α = log((1 − drop_rate) / drop_rate) + N(0, std²)`` (docs/methods.md#hard-concrete-l0-gates [default]: ``log 9 ≈ 2.197``).

    Args:
        shape: Shape of the gated weight.
        generator: CPU generator for the noise.
        drop_rate: Initial drop rate.
        std: Standard deviation of the noise.

    Returns:
        A float32 CPU tensor of ``shape``.
    """
    return math.log((1.0 - drop_rate) / drop_rate) + std * torch.randn(shape, generator=generator)


def hard_concrete_sample(
    log_alpha: Tensor, u: Tensor, beta: float = BETA, gamma: float = GAMMA, zeta: float = ZETA
) -> Tensor:
    """Training-time gate ``z = min(1, max(0, σ((log u − log(1−u) + log α)/β)(ζ − γ) + γ))``.

    Args:
        log_alpha: Gate parameters, any shape.
        u: Uniform noise in ``(0, 1)``, same shape (clamped away from 0 and 1).

    Returns:
        Gates in ``[0, 1]``, differentiable in ``log_alpha``.

    Example:
        >>> hard_concrete_sample(torch.tensor([0.0]), torch.tensor([0.5]))  # s = 0.5 -> 0.5 * 1.2 - 0.1
        tensor([0.5000])
    """
    logistic_noise = torch.logit(u, eps=torch.finfo(u.dtype).eps)  # log u - log(1 - u)
    s = torch.sigmoid((logistic_noise + log_alpha) / beta)
    return (s * (zeta - gamma) + gamma).clamp(0.0, 1.0)


def hard_concrete_eval(log_alpha: Tensor, gamma: float = GAMMA, zeta: float = ZETA) -> Tensor:
    """Evaluation-time gate ``ẑ = min(1, max(0, σ(log α)(ζ − γ) + γ))``.

    Example:
        >>> hard_concrete_eval(torch.tensor([-5.0, 0.0, 5.0]))
        tensor([0.0000, 0.5000, 1.0000])
    """
    return (torch.sigmoid(log_alpha) * (zeta - gamma) + gamma).clamp(0.0, 1.0)


def keep_probability(log_alpha: Tensor, beta: float = BETA, gamma: float = GAMMA, zeta: float = ZETA) -> Tensor:
    """``P(z ≠ 0) = σ(log α − β log(−γ/ζ))``, the L0-MBP score (docs/methods.md#hard-concrete-l0-gates).

    Example:
        >>> keep_probability(torch.tensor([0.0]))  # σ(-(2/3) log(1/11)) = σ(1.5986)
        tensor([0.8318])
    """
    return torch.sigmoid(log_alpha - beta * math.log(-gamma / zeta))


def expected_l0(log_alphas: Mapping[str, Tensor], masks: Mapping[str, Tensor] | None = None) -> Tensor:
    """Expected number of non-zero gates ``Σ_l Σ M_l ⊙ P(z_l ≠ 0)`` over the unpruned entries.

    Args:
        log_alphas: FQN -> gate parameters.
        masks: FQN -> ``bool`` mask (``True`` = kept); pruned entries do not count.

    Returns:
        A scalar tensor, differentiable in the ``log_alphas``.
    """
    total = None
    for name, log_alpha in log_alphas.items():
        probability = keep_probability(log_alpha)
        if masks is not None and name in masks:
            probability = probability * masks[name]
        total = probability.sum() if total is None else total + probability.sum().to(total.device)
    return torch.zeros(()) if total is None else total


def gate_weight_(module: nn.Module, gate: Callable[[nn.Module], Tensor]) -> list[RemovableHandle]:
    """Make ``module``'s forward use ``module.weight * gate(module)``; ``weight`` stays the registered parameter.

    A forward pre-hook places the gated tensor in the instance ``__dict__`` (it shadows the parameter for
    attribute access during the forward only) and a forward hook, which also runs when the forward raises,
    removes it. ``named_parameters``, ``state_dict``, optimizers and DDP keep seeing the user's ``weight``.

    Args:
        module: A module whose forward reads ``self.weight`` (``nn.Linear``).
        gate: Called on every forward with the module; returns a tensor broadcastable to ``weight``.

    Returns:
        The two hook handles; ``handle.remove()`` on both restores the plain forward.
    """

    def pre_hook(mod: nn.Module, args: tuple) -> None:
        weight = mod._parameters["weight"]
        mod.__dict__["weight"] = weight * gate(mod).to(weight.dtype)

    def post_hook(mod: nn.Module, args: tuple, output: object) -> None:
        mod.__dict__.pop("weight", None)

    return [module.register_forward_pre_hook(pre_hook), module.register_forward_hook(post_hook, always_call=True)]


__all__ = [
    "BETA",
    "GAMMA",
    "INIT_NOISE_STD",
    "ZETA",
    "expected_l0",
    "gate_weight_",
    "hard_concrete_eval",
    "hard_concrete_sample",
    "init_log_alpha",
    "keep_probability",
]
