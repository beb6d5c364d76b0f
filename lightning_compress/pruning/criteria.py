"""Pruning criteria: score functions over weights (docs/methods.md#pruning-criteria). Lowest scores are pruned first.

Every built-in criterion is a pure function of tensors. :data:`CRITERIA` maps each name to the function that
scores all targets at once from a :class:`ScoreInputs`, the scope the criterion implies and whether it needs
gradient statistics; :func:`compute_scores` dispatches a name or a user's :class:`PruningCriterion` object.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor

from lightning_compress.pruning.l0 import keep_probability
from lightning_compress.validation import check_choice, format_value

Scope = Literal["layer", "global"]
#: How far a threshold reaches: per matrix, or one over all targets.
SCOPES = ("layer", "global")


class GradStats(NamedTuple):
    """Gradient statistics of one target, accumulated since the last pruning event.

    Attributes:
        grad_sum: ``G = Σ_t ∇_W ℓ_t`` over the optimizer steps since the last event (same shape as the weight,
            float32): the gradient after gradient accumulation, before clipping, pruned entries zero.
        steps: Number of optimizer steps summed in ``grad_sum``.
    """

    grad_sum: Tensor
    steps: int


@runtime_checkable
class PruningCriterion(Protocol):
    """A user-defined criterion: one method returning a score tensor shaped like ``weight``.

    Lowest scores are pruned first; already-pruned entries are excluded by the caller. ``grad_stats`` is the
    :class:`GradStats` of the target (``None`` if the object sets ``needs_gradients = False``, which spares the
    gradient buffers).

    Example::

        class MovementCriterion:
            def score(self, name, weight, grad_stats):
                return -(weight * grad_stats.grad_sum)   # keep weights moving away from zero
    """

    # ``Any`` on purpose: a config's ``class_path`` is checked against this signature, and implementations with
    # other (or no) annotations must pass. The arguments are ``name: str``, ``weight: Tensor`` (the current,
    # masked ``out x in`` weight), ``grad_stats: GradStats | None``; the return is a ``Tensor`` shaped like ``weight``.
    def score(self, name: Any, weight: Any, grad_stats: Any) -> Any: ...


class ScoreInputs(NamedTuple):
    """What a criterion may read at a pruning event, for every target (FQN-keyed)."""

    weights: Mapping[str, Tensor]
    grad_stats: Mapping[str, GradStats] | None = None
    generator: torch.Generator | None = None
    log_alphas: Mapping[str, Tensor] | None = None


def magnitude_score(weight: Tensor) -> Tensor:
    """Magnitude-based pruning (MBP) score ``S = |W|`` (O'Neill §9.3).

    Args:
        weight: An ``out x in`` weight tensor (any shape works).

    Returns:
        A tensor of the same shape, float32, ``|W|``.

    Example:
        >>> magnitude_score(torch.tensor([[-2.0, 0.5]]))
        tensor([[2.0000, 0.5000]])
    """
    return weight.detach().abs().float()


def random_score(weight: Tensor, generator: torch.Generator) -> Tensor:
    """Random pruning score ``S ~ U(0, 1)`` i.i.d. per entry (O'Neill §9.4, §11.4).

    The numbers are drawn on the CPU from ``generator`` and moved to ``weight.device``, so the same generator
    state gives the same scores on every device and every DDP rank (docs/methods.md#deterministic-masks-across-ranks).

    Args:
        weight: Any weight tensor; only its shape and device are used.
        generator: A CPU ``torch.Generator`` (see :func:`event_generator`).

    Returns:
        A float32 tensor shaped like ``weight``.
    """
    return torch.rand(weight.shape, generator=generator).to(weight.device)


def gradient_score(grad_sum: Tensor) -> Tensor:
    """Gradient-MBP score ``S = |G|``, ``G`` the gradient summed since the last event (O'Neill §9.4, §11.4).

    Example:
        >>> gradient_score(torch.tensor([[-3.0, 0.5]]))
        tensor([[3.0000, 0.5000]])
    """
    return grad_sum.detach().abs().float()


def taylor_score(weight: Tensor, grad_sum: Tensor) -> Tensor:
    """First-order Taylor score ``S = |G ⊙ W|`` (O'Neill §11.4: "LAV of |gradient × weight|").

    Args:
        weight: An ``out x in`` weight tensor.
        grad_sum: The gradient summed since the last event, same shape.

    Example:
        >>> taylor_score(torch.tensor([[2.0, -1.0]]), torch.tensor([[0.5, 3.0]]))
        tensor([[1., 3.]])
    """
    return (grad_sum.detach().float() * weight.detach().float()).abs()


def lamp_score(weight: Tensor) -> Tensor:
    """LAMP score (Lee et al. 2021, docs/methods.md#pruning-criteria [external]).

    With the entries sorted ascending by magnitude, ``|w_1| <= ... <= |w_n|`` (ties by flat index):

    .. math:: S(u) = w_u^2 / \\sum_{v \\ge u} w_v^2

    Pruned entries are zero, so they add nothing to the denominators. Within a matrix the score order is the
    magnitude order and the largest entry scores exactly 1 (docs/methods.md#lamp-ordering), so one global threshold
    over LAMP scores
    gives every matrix its own sparsity.

    Args:
        weight: Any weight tensor.

    Returns:
        A float32 tensor shaped like ``weight`` with values in ``[0, 1]`` (0 where the denominator is 0).

    Example:
        >>> lamp_score(torch.tensor([1.0, -2.0]))
        tensor([0.2000, 1.0000])
    """
    squared = weight.detach().double().reshape(-1) ** 2
    order = torch.sort(squared, stable=True).indices
    ascending = squared[order]
    tail_sums = ascending.flip(0).cumsum(0).flip(0)
    scores = torch.empty_like(squared)
    scores[order] = torch.where(tail_sums > 0, ascending / tail_sums.clamp_min(torch.finfo(torch.float64).tiny), 0.0)
    return scores.view_as(weight).float()


def lookahead_score(weight: Tensor, previous: Tensor | None = None, following: Sequence[Tensor] = ()) -> Tensor:
    """Lookahead pruning (LAP) score (Park et al. 2020, docs/methods.md#pruning-criteria [external]).

    .. math:: S[i, j] = |W[i, j]| \\cdot \\|W_{prev}[j, :]\\|_2 \\cdot \\sqrt{\\sum_s \\|W_s[:, i]\\|_2^2}

    Row ``i`` of ``W`` is output unit ``i``; ``W_prev[j, :]`` are the incoming weights of input unit ``j`` and
    ``W_s[:, i]`` the outgoing weights of unit ``i`` in each successor ``s``. A missing neighbour contributes 1.

    Args:
        weight: An ``out x in`` tensor.
        previous: The predecessor, an ``in x k`` tensor, or ``None``.
        following: Successors, each an ``r_s x out`` tensor (their squared column norms are summed).

    Returns:
        A float32 ``out x in`` tensor.

    Example:
        >>> lookahead_score(torch.tensor([[1.0, -2.0]]), previous=torch.tensor([[3.0, 4.0], [0.0, 1.0]]))
        tensor([[5., 2.]])
    """
    score = weight.detach().abs().float()
    if previous is not None:
        score = score * previous.detach().float().norm(dim=1)[None, :]
    if following:
        outgoing = sum(successor.detach().float().pow(2).sum(dim=0) for successor in following)
        score = score * outgoing.sqrt()[:, None]
    return score


class Neighbours(NamedTuple):
    previous: str | None
    following: tuple[str, ...]


_BERT_LAYER = re.compile(
    r"^(?P<stack>.*\.layers?\.)(?P<index>\d+)\."
    r"(?P<part>attention\.self\.(?:query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)\.weight$"
)


def lookahead_neighbours(names: Sequence[str]) -> dict[str, Neighbours]:
    """Lookahead neighbours of BERT-style encoder weights among ``names`` (docs/methods.md#pruning-criteria, [default]).

    Chains: ``value -> attention.output.dense`` and ``intermediate.dense -> output.dense``; ``query`` and ``key``
    have no neighbours; the block's ``output.dense`` has the next layer's query, key and value as successors.
    Neighbours outside ``names`` (not targeted) and names that do not follow the BERT layout (``...layer.N.
    attention.self.query.weight`` etc.) get none, i.e. the factor 1.

    Example:
        >>> names = ["encoder.layer.0.intermediate.dense.weight", "encoder.layer.0.output.dense.weight"]
        >>> lookahead_neighbours(names)["encoder.layer.0.output.dense.weight"]
        Neighbours(previous='encoder.layer.0.intermediate.dense.weight', following=())
    """
    parsed = {name: _BERT_LAYER.match(name) for name in names}
    index = {(m["stack"], int(m["index"]), m["part"]): name for name, m in parsed.items() if m}

    def find(stack: str, layer: int, part: str) -> str | None:
        return index.get((stack, layer, part))

    neighbours = {}
    for name, match in parsed.items():
        previous, following = None, ()
        if match:
            stack, layer, part = match["stack"], int(match["index"]), match["part"]
            if part == "attention.self.value":
                following = (find(stack, layer, "attention.output.dense"),)
            elif part == "attention.output.dense":
                previous = find(stack, layer, "attention.self.value")
            elif part == "intermediate.dense":
                following = (find(stack, layer, "output.dense"),)
            elif part == "output.dense":
                previous = find(stack, layer, "intermediate.dense")
                following = tuple(find(stack, layer + 1, f"attention.self.{qkv}") for qkv in ("query", "key", "value"))
        neighbours[name] = Neighbours(previous, tuple(n for n in following if n is not None))
    return neighbours


def lookahead_scores(weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """:func:`lookahead_score` of every weight with its :func:`lookahead_neighbours` among ``weights``."""
    neighbours = lookahead_neighbours(list(weights))
    return {
        name: lookahead_score(
            weight,
            None if neighbours[name].previous is None else weights[neighbours[name].previous],
            [weights[n].to(weight.device) for n in neighbours[name].following],
        )
        for name, weight in weights.items()
    }


def event_generator(seed: int, event: int) -> torch.Generator:
    """A CPU generator seeded from ``(seed, event)`` (docs/methods.md#the-fine-pruning-loop): same masks on every rank,
    no state.

    Example:
        >>> torch.rand(1, generator=event_generator(0, 3)).equal(torch.rand(1, generator=event_generator(0, 3)))
        True
    """
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + int(event)) % (2**63))


def _per_weight(function: Callable[[Tensor], Tensor]) -> Callable[[ScoreInputs], dict[str, Tensor]]:
    return lambda inputs: {name: function(weight) for name, weight in inputs.weights.items()}


def _random(inputs: ScoreInputs) -> dict[str, Tensor]:
    return {name: random_score(weight, inputs.generator) for name, weight in inputs.weights.items()}


def _gradient(inputs: ScoreInputs) -> dict[str, Tensor]:
    return {name: gradient_score(inputs.grad_stats[name].grad_sum) for name in inputs.weights}


def _taylor(inputs: ScoreInputs) -> dict[str, Tensor]:
    return {name: taylor_score(w, inputs.grad_stats[name].grad_sum) for name, w in inputs.weights.items()}


def _lookahead(inputs: ScoreInputs) -> dict[str, Tensor]:
    return lookahead_scores(inputs.weights)


def _l0(inputs: ScoreInputs) -> dict[str, Tensor]:
    return {name: keep_probability(inputs.log_alphas[name]).detach().float() for name in inputs.weights}


class Criterion(NamedTuple):
    """A built-in criterion: how it scores all targets, the scope it implies, what it reads."""

    scores: Callable[[ScoreInputs], dict[str, Tensor]]
    scope: Scope | None = None  # ``None``: the callback's ``scope`` decides (default "layer")
    needs_gradients: bool = False


#: criterion name -> :class:`Criterion` (docs/methods.md#pruning-criteria). ``l0`` scores the keep probability of the
#: hard-concrete
#: gates and ``l1`` the magnitude; their loss terms are added by the callback.
CRITERIA: dict[str, Criterion] = {
    "magnitude": Criterion(_per_weight(magnitude_score)),
    "global_magnitude": Criterion(_per_weight(magnitude_score), scope="global"),
    "random": Criterion(_random),
    "global_random": Criterion(_random, scope="global"),
    "gradient": Criterion(_gradient, needs_gradients=True),
    "taylor": Criterion(_taylor, needs_gradients=True),
    "lamp": Criterion(_per_weight(lamp_score), scope="global"),
    "lookahead": Criterion(_lookahead),
    "l0": Criterion(_l0),
    "l1": Criterion(_per_weight(magnitude_score)),
}


#: Default strengths of the loss terms (docs/methods.md#pruning-criteria): λ1 on ``Σ|W|`` for ``l1``
#: (docs/methods.md#l2-and-l1-penalties), and ``λ0 = 5e-4 / N_targeted`` on ``Σ P(z ≠ 0)`` for ``l0``
#: (docs/methods.md#hard-concrete-l0-gates).
DEFAULT_L1_PENALTY = 5e-4
DEFAULT_L0_PENALTY_ON_MEAN = 5e-4


def sparsity_penalty(
    criterion: str, weights: Sequence[Tensor], strength: float | None = None, expected_l0: Tensor | None = None
) -> Tensor:
    """The loss term of ``criterion="l1"``, ``λ1 Σ_l ‖W_l‖₁`` (pruned weights are zero), or of ``"l0"``,
    ``λ0 Σ_l Σ M_l ⊙ P(z ≠ 0)`` given as ``expected_l0`` (:meth:`~lightning_compress.pruning.l0.L0Gates.expected_l0`).

    Args:
        criterion: ``"l1"`` or ``"l0"``.
        weights: The targeted weights.
        strength: λ; ``None``: :data:`DEFAULT_L1_PENALTY`, or :data:`DEFAULT_L0_PENALTY_ON_MEAN` divided by the
            number of targeted weights.
        expected_l0: The expected number of kept weights (``"l0"`` only).

    Example:
        >>> sparsity_penalty("l1", [torch.tensor([1.0, -3.0])], strength=0.5)
        tensor(2.)
    """
    if criterion == "l1":
        strength = DEFAULT_L1_PENALTY if strength is None else strength
        return strength * sum(weight.abs().sum() for weight in weights)
    numel = sum(weight.numel() for weight in weights)
    strength = DEFAULT_L0_PENALTY_ON_MEAN / numel if strength is None else strength
    return strength * expected_l0


def needs_gradients(criterion: str | PruningCriterion) -> bool:
    """Whether ``criterion`` reads :class:`GradStats` (custom objects do, unless ``needs_gradients = False``)."""
    if isinstance(criterion, str):
        return CRITERIA[criterion].needs_gradients
    return bool(getattr(criterion, "needs_gradients", True))


def check_criterion(owner: str, criterion: Any, scope: Any) -> Scope:
    """Check a ``criterion`` argument (a name of :data:`CRITERIA` or a :class:`PruningCriterion` object) and the
    ``scope`` beside it, and return the scope to prune with: ``scope``, else the criterion's, else ``"layer"``.

    Raises:
        TypeError: ``criterion`` neither a name nor an object with a ``score`` method, or a ``scope`` of wrong type.
        ValueError: an unknown name or scope, or a scope that contradicts the one the criterion implies.

    Example:
        >>> check_criterion("GradualMagnitudePruning", "lamp", None)
        'global'
    """
    if isinstance(criterion, str):
        check_choice(owner, "criterion", criterion, sorted(CRITERIA))
    elif not callable(getattr(criterion, "score", None)):
        raise TypeError(
            f"`{owner}(criterion={format_value(criterion)})` is invalid: expected a criterion name or an object "
            f"with a `score(name, weight, grad_stats)` method, got {type(criterion).__name__}."
        )
    check_choice(owner, "scope", scope, SCOPES, allow_none=True)
    implied = CRITERIA[criterion].scope if isinstance(criterion, str) else None
    if scope is not None and implied is not None and scope != implied:
        raise ValueError(
            f"`{owner}(criterion={criterion!r}, scope={scope!r})` is invalid: {criterion!r} is a {implied} "
            f"criterion; leave `scope` unset or use scope={implied!r}."
        )
    return scope or implied or "layer"


@torch.no_grad()
def accumulate_gradients_(sums: dict[str, Tensor], parameters: Mapping[str, Tensor], names: Sequence[str]) -> None:
    """Add the current gradient of each parameter ``names`` to its float32 running sum in ``sums`` (created at the
    first gradient; parameters without a gradient are skipped): the ``G`` of :class:`GradStats`.

    Example:
        >>> w = torch.ones(2, requires_grad=True); w.grad = torch.tensor([1.0, -2.0]); sums = {}
        >>> accumulate_gradients_(sums, {"w": w}, ["w"]); accumulate_gradients_(sums, {"w": w}, ["w"]); sums["w"]
        tensor([ 2., -4.])
    """
    for name in names:
        grad = parameters[name].grad
        if grad is None:
            continue
        if name not in sums:
            sums[name] = torch.zeros_like(grad, dtype=torch.float32)
        sums[name].add_(grad)


def gradient_stats(
    sums: Mapping[str, Tensor], steps: int, parameters: Mapping[str, Tensor], names: Sequence[str]
) -> dict[str, GradStats]:
    """The :class:`GradStats` of each parameter ``names`` from the sums of :func:`accumulate_gradients_` over
    ``steps`` optimizer steps (a zero sum for a parameter that never had a gradient)."""
    return {
        name: GradStats(sums.get(name, torch.zeros_like(parameters[name], dtype=torch.float32)), steps)
        for name in names
    }


def compute_scores(criterion: str | PruningCriterion, inputs: ScoreInputs) -> dict[str, Tensor]:
    """Score every target in ``inputs.weights`` with a criterion name from :data:`CRITERIA` or a custom object.

    Returns:
        FQN -> float score tensor shaped like the weight (lowest pruned first).
    """
    if isinstance(criterion, str):
        return CRITERIA[criterion].scores(inputs)
    stats = inputs.grad_stats or {}
    scores = {}
    for name, weight in inputs.weights.items():
        score = criterion.score(name, weight, stats.get(name))
        if not isinstance(score, Tensor) or score.shape != weight.shape:
            raise ValueError(
                f"{type(criterion).__name__}.score({name!r}, ...) returned "
                f"{tuple(score.shape) if isinstance(score, Tensor) else type(score).__name__}: "
                f"expected a tensor shaped like the weight, {tuple(weight.shape)}."
            )
        scores[name] = score.detach().float()
    return scores


__all__ = [
    "CRITERIA",
    "DEFAULT_L0_PENALTY_ON_MEAN",
    "DEFAULT_L1_PENALTY",
    "SCOPES",
    "Criterion",
    "GradStats",
    "Neighbours",
    "PruningCriterion",
    "Scope",
    "ScoreInputs",
    "accumulate_gradients_",
    "check_criterion",
    "compute_scores",
    "event_generator",
    "gradient_score",
    "gradient_stats",
    "lamp_score",
    "lookahead_neighbours",
    "lookahead_score",
    "lookahead_scores",
    "magnitude_score",
    "needs_gradients",
    "random_score",
    "sparsity_penalty",
    "taylor_score",
]
