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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

BETA, GAMMA, ZETA = 2.0 / 3.0, -0.1, 1.1
#: Standard deviation of the noise added to the initial ``log α`` (docs/methods.md#hard-concrete-l0-gates [default]).
INIT_NOISE_STD = 0.01


def init_log_alpha(
    shape: torch.Size | tuple[int, ...], generator: torch.Generator, drop_rate: float = 0.1, std: float = INIT_NOISE_STD
) -> Tensor:
    """Initial ``log α = log((1 − drop_rate) / drop_rate) + N(0, std²)`` (docs/methods.md#hard-concrete-l0-gates
    [default]: ``log 9 ≈ 2.197``).

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


def gated_linears(model: nn.Module, names: Sequence[str], owner: str) -> dict[str, nn.Linear]:
    """FQN -> owning ``nn.Linear`` of each weight ``names`` of ``model``, the modules :class:`L0Gates` gates.

    Raises:
        ValueError: a name that is not the ``weight`` of an ``nn.Linear`` (naming ``owner``, the call as written).
    """
    modules = dict(model.named_modules())
    linears = {}
    for name in names:
        owner_name, _, attribute = name.rpartition(".")
        module = modules.get(owner_name)
        if attribute != "weight" or not isinstance(module, nn.Linear):
            raise ValueError(
                f"`{owner}` gates the weights of nn.Linear modules, but the target `{name}` is not one. HINT: restrict "
                "`targets` to nn.Linear weights."
            )
        linears[name] = module
    return linears


def untrained_gates_warning(gate_lr: float, first_event_step: int, owner: str) -> str | None:
    """Why gates with learning rate ``gate_lr`` cannot learn a ranking before an event at ``first_event_step``, or
    ``None`` when they can.

    Adam moves a gate's ``log α`` by at most about ``gate_lr`` per step, so before the first event the learned part of
    ``log α`` is at most ``gate_lr · first_event_step``. When that is below 3 standard deviations of the initial noise
    (:data:`INIT_NOISE_STD`), the keep probabilities rank the weights by that noise: the events prune at random
    (measured on SST-2 / MiniLM-L6 with a first event at step 25: Spearman correlation 0.000 between keep probability
    and |w|, and a 90 % run that ends at the majority class like ``criterion="random"``).

    Example:
        >>> untrained_gates_warning(1e-2, 100, "GradualMagnitudePruning(criterion='l0')") is None
        True
    """
    reach = gate_lr * first_event_step
    if reach >= 3 * INIT_NOISE_STD:
        return None
    return (
        f"{owner}: the gates can move their log α by at most gate_lr × steps = {gate_lr:g} × {first_event_step} = "
        f"{reach:.4f} before the first pruning event, less than 3σ of their initial noise ({3 * INIT_NOISE_STD:g}): "
        "the keep probabilities will rank the weights at random. Start pruning later (`start`), train longer, or "
        "raise `gate_lr` (with care: large gate learning rates destabilise fine-tuning)."
    )


class L0Gates:
    r"""Hard-concrete L0 gates on the weights of ``nn.Linear`` modules, keyed by parameter FQN (Louizos et al. 2018).

    Holds one ``log α`` per gated weight (:func:`init_log_alpha`), puts ``weight ⊙ z`` in the modules' forwards
    (:func:`gate_weight_`; ``z`` sampled with :func:`hard_concrete_sample` in train mode, :func:`hard_concrete_eval`
    in eval mode), trains the ``log α`` with its own Adam, gives the expected L0 norm :func:`expected_l0` for the
    penalty and folds ``ẑ`` into the weights and masks at the end. The noise comes from a seeded
    ``torch.Generator`` on the gates' device; :meth:`state_dict` saves ``log α``, the Adam state and the generator.

    Args:
        shapes: FQN -> shape of each gated weight (the initial ``log α`` are drawn in this order).
        seed: Seed of the initial noise and of the sampling generator.
        lr: Adam learning rate of the ``log α``.

    Example:
        >>> gates = L0Gates({"fc.weight": (2, 3)}, seed=0, lr=1e-3)
        >>> gates.start_({"fc.weight": nn.Linear(3, 2)})
        >>> float(gates.expected_l0()) > 0, gates.attached
        (True, True)
    """

    def __init__(self, shapes: Mapping[str, torch.Size | tuple[int, ...]], seed: int, lr: float) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.log_alphas: dict[str, Tensor] = {name: init_log_alpha(shape, generator) for name, shape in shapes.items()}
        self.seed, self.lr = seed, lr
        self.optimizer: torch.optim.Optimizer | None = None
        self.generator: torch.Generator | None = None
        self._handles: list[RemovableHandle] = []

    @property
    def attached(self) -> bool:
        """Whether the gates sit in the modules' forwards (between :meth:`start_` and :meth:`remove`)."""
        return bool(self._handles)

    def start_(self, modules: Mapping[str, nn.Module], state: Mapping[str, Any] | None = None) -> None:
        """Move the gates to their weights' devices, build the optimizer and generator and attach the gates.

        Args:
            modules: FQN of each gated weight -> its ``nn.Linear`` module.
            state: A :meth:`state_dict` to resume from (each entry optional).
        """
        state = state or {}
        log_alphas = state.get("log_alphas", self.log_alphas)
        self.log_alphas = {
            name: log_alphas[name].detach().float().to(module.weight.device).requires_grad_()
            for name, module in modules.items()
        }
        self.optimizer = torch.optim.Adam(list(self.log_alphas.values()), lr=self.lr)
        device = next(iter(self.log_alphas.values())).device
        self.generator = torch.Generator(device=device).manual_seed(self.seed)
        if "gate_optimizer" in state:
            self.optimizer.load_state_dict(state["gate_optimizer"])
        if "gate_generator" in state:
            self.generator.set_state(state["gate_generator"])
        self.remove()
        for name, module in modules.items():
            self._handles += gate_weight_(module, self._gate(name))

    def _gate(self, name: str) -> Callable[[nn.Module], Tensor]:
        def gate(module: nn.Module) -> Tensor:
            log_alpha = self.log_alphas[name]
            if not module.training:
                return hard_concrete_eval(log_alpha)
            u = torch.rand(log_alpha.shape, generator=self.generator, device=log_alpha.device)
            return hard_concrete_sample(log_alpha, u)

        return gate

    def expected_l0(self, masks: Mapping[str, Tensor] | None = None) -> Tensor:
        """``Σ_l Σ M_l ⊙ P(z_l ≠ 0)`` (:func:`expected_l0`), differentiable in the ``log α``."""
        return expected_l0(self.log_alphas, masks)

    def step_(self, reduce: Callable[[Tensor], Tensor] | None = None, loss_scale: float | None = None) -> None:
        """One Adam step of the ``log α`` on their accumulated gradients, then clear them.

        Args:
            reduce: Averages a flat gradient tensor over DDP ranks (the gates are no DDP parameters); ``None``: one
                process.
            loss_scale: The AMP loss scale to divide the gradients by (the step is skipped when one is not finite).
        """
        gates = list(self.log_alphas.values())
        for gate in gates:
            if gate.grad is None:
                gate.grad = torch.zeros_like(gate)
        if reduce is not None:  # one call for all gates
            flat = reduce(torch.cat([gate.grad.reshape(-1) for gate in gates]))
            for gate, grad in zip(gates, flat.split([gate.numel() for gate in gates])):
                gate.grad = grad.view_as(gate)
        finite = True
        if loss_scale is not None:
            for gate in gates:
                gate.grad.div_(loss_scale)
            finite = all(bool(torch.isfinite(gate.grad).all()) for gate in gates)
        if finite:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    @torch.no_grad()
    def fold_(self, weights: Mapping[str, Tensor], masks: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Make the gates hard: ``W ← W ⊙ ẑ`` in place, and detach the gates.

        Args:
            weights: FQN -> gated weight (every gated FQN).
            masks: FQN -> current ``bool`` mask (``True`` = kept), where there is one.

        Returns:
            FQN -> new ``bool`` mask: the old mask and ``ẑ > 0``.
        """
        folded = {}
        for name, log_alpha in self.log_alphas.items():
            gate = hard_concrete_eval(log_alpha).to(weights[name].device)
            mask = gate > 0
            if name in masks:
                mask &= masks[name]
            weights[name].mul_(gate.to(weights[name].dtype))
            folded[name] = mask
        self.remove()
        self.optimizer = None
        return folded

    def remove(self) -> None:
        """Take the gates out of the modules' forwards."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def state_dict(self) -> dict[str, Any]:
        """``log_alphas`` (CPU), and ``gate_optimizer`` and ``gate_generator`` once started."""
        state: dict[str, Any] = {"log_alphas": {name: value.detach().cpu() for name, value in self.log_alphas.items()}}
        if self.optimizer is not None:
            state["gate_optimizer"] = self.optimizer.state_dict()
        if self.generator is not None:
            state["gate_generator"] = self.generator.get_state()
        return state


__all__ = [
    "BETA",
    "GAMMA",
    "INIT_NOISE_STD",
    "ZETA",
    "L0Gates",
    "expected_l0",
    "gate_weight_",
    "gated_linears",
    "hard_concrete_eval",
    "hard_concrete_sample",
    "init_log_alpha",
    "keep_probability",
    "untrained_gates_warning",
]
