"""Ternary weight splitting (Bai §5.3, Eqs. 5.5-5.9, docs/methods.md#the-splitting-operator) and adaptive splitting
(Bai §5.3.2, docs/methods.md#adaptive-splitting)."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from lightning_compress.distillation.losses import output_logits, prediction_distillation_loss
from lightning_compress.quantization.quantizers import TWN_THRESHOLD_FACTOR, _groups, _ungroup, twn_scales
from lightning_compress.validation import check_type, invalid

#: Transformer parts of adaptive splitting (Bai §5.3.2): module-name suffix inside a block -> part (Q and K grouped).
SPLIT_PARTS = {
    "attention.self.query": "mha_qk",
    "attention.self.key": "mha_qk",
    "attention.self.value": "mha_v",
    "attention.output.dense": "mha_o",
    "intermediate.dense": "ffn_mid",
    "output.dense": "ffn_out",
}
_OWNER = "Adaptive splitting"
_BLOCK = re.compile(r"^(.*encoder\.layers?\.(\d+))\.(.+)$")


def ternary_weight_split(
    weight: Tensor, dim: int | None = None, threshold_factor: float = TWN_THRESHOLD_FACTOR
) -> tuple[Tensor, Tensor]:
    r"""Split a ternary matrix's latent weights into two binary-branch latent matrices (Bai Eqs. 5.6-5.9).

    With ``ŵ = TWN(w)`` per group of ``n`` elements, ``I = {i: ŵ_i ≠ 0}``, ``J = {j: ŵ_j = 0, w_j > 0}``,
    ``K = {k: ŵ_k = 0, w_k ≤ 0}`` (ties ``w = 0`` go to K, docs/methods.md#zero-weights-in-the-split-sets) and ``S_X =
    Σ_{X}|w|``:

    .. math::
        w_1 = \begin{cases} a w_i & i∈I \\ b + w_j & j∈J \\ b & k∈K \end{cases}, \quad
        w_2 = \begin{cases} (1-a) w_i & i∈I \\ -b & j∈J \\ -b + w_k & k∈K \end{cases}

    .. math::
        a = \frac{S_I + S_K - S_J}{2 S_I}\ \text{(corrected Eq. 5.8,
        docs/methods.md#swapped-sets-in-the-split-coefficient)}, \quad
        b = \frac{\frac{n}{|I|} S_I - \sum_i |w_i|}{2(|J| + |K|)}\ \text{(Eq. 5.9)},

    so that ``w₁ + w₂ = w`` and ``BWN(w₁) + BWN(w₂) = TWN(w)`` (docs/methods.md#split-identities). ``b = 0`` when ``J ∪
    K`` is
    empty. The derivation needs ``0 < a < 1`` and ``b > 0``; otherwise a warning is raised and the quantized
    equivalence is no longer guaranteed. Computed in float64, returned in ``weight.dtype``.

    Args:
        weight: The latent weights of a trained ternary matrix, e.g. an `out x in` Linear weight.
        dim: ``None`` for the layer-wise split (one ``(a, b)`` per matrix); ``0`` for the row-wise split of the
            word embedding (one ``(a, b)`` per row).
        threshold_factor: The TWN ``0.7`` (must match the one of the ternary model).

    Returns:
        ``(w1, w2)``, two tensors shaped like ``weight``.

    Example:
        >>> from lightning_compress.quantization.quantizers import bwn_quantize, twn_quantize
        >>> w = torch.tensor([[0.9, -0.05, 0.1, -1.2]])
        >>> w1, w2 = ternary_weight_split(w)
        >>> torch.allclose(bwn_quantize(w1) + bwn_quantize(w2), twn_quantize(w))
        True
    """
    if not weight.is_floating_point():
        raise TypeError(f"ternary_weight_split expects a floating-point tensor, got {weight.dtype}.")
    nonzero, _ = twn_scales(weight, dim, threshold_factor)
    latent = _groups(weight.detach(), dim).double()
    in_i = _groups(nonzero, dim)
    in_j = ~in_i & (latent > 0)
    in_k = ~in_i & ~in_j
    absolute = latent.abs()
    s_i, s_j, s_k = ((absolute * mask).sum(dim=1, keepdim=True) for mask in (in_i, in_j, in_k))
    n = latent.shape[1]
    count_i = in_i.sum(dim=1, keepdim=True)
    count_rest = n - count_i
    zero = s_i == 0  # an all-zero group (e.g. a padding row): TWN gives 0, and so does the split w1 = w2 = 0
    a = torch.where(zero, 0.5, (s_i + s_k - s_j) / (2 * s_i.clamp_min(torch.finfo(torch.float64).tiny)))
    b_numerator = n / count_i.clamp_min(1) * s_i - absolute.sum(dim=1, keepdim=True)
    b = torch.where(count_rest > 0, b_numerator / (2 * count_rest.clamp_min(1)), torch.zeros_like(b_numerator))
    valid = zero | ((a > 0) & (a < 1) & ((b > 0) | (count_rest == 0)))
    if not bool(valid.all()):
        bad = int((~valid).sum())
        warnings.warn(
            f"ternary_weight_split: {bad} of {latent.shape[0]} group(s) have a ∉ (0, 1) or b <= 0 (min a = "
            f"{float(a.min()):.4g}, max a = {float(a.max()):.4g}, min b = {float(b.min()):.4g}); the split "
            "keeps w1 + w2 = w but BWN(w1) + BWN(w2) = TWN(w) is not guaranteed for them.",
            stacklevel=2,
        )
    w1 = torch.where(in_i, a * latent, torch.where(in_j, b + latent, b.expand_as(latent)))
    w2 = torch.where(in_i, (1 - a) * latent, torch.where(in_j, (-b).expand_as(latent), latent - b))
    if weight.dtype != torch.float64:
        # Rounding b to the storage dtype shifts both BWN scales by the same systematic amount; rescale the I entries
        # (by 1 ± ~1e-7) so that each stored branch has α₁ = α₂ = α/2 again, and its BWN sum rounds like TWN(w).
        alpha = s_i / count_i.clamp_min(1)
        w1, w2 = (_rebalance(w.to(weight.dtype).double(), in_i, alpha / 2, zero) for w in (w1, w2))
    return (_ungroup(w1, weight, dim).to(weight.dtype), _ungroup(w2, weight, dim).to(weight.dtype))


def _rebalance(branch: Tensor, in_i: Tensor, half_alpha: Tensor, zero: Tensor) -> Tensor:
    """Scale the I entries of a stored branch so that its mean |w| is ``α/2`` (groups x n tensors, float64)."""
    n = branch.shape[1]
    rest = (branch.abs() * ~in_i).sum(dim=1, keepdim=True)
    on_i = (branch.abs() * in_i).sum(dim=1, keepdim=True)
    factor = torch.where(
        zero | (on_i == 0), 1.0, (n * half_alpha - rest) / on_i.clamp_min(torch.finfo(torch.float64).tiny)
    )
    return torch.where(in_i, branch * factor, branch)


# ---------------------------------------------------------------------------------------------- adaptive splitting


def split_sensitivity(
    part_gains: Mapping[str, float],
    part_sizes: Mapping[str, int],
    layer_gains: Sequence[float],
    layer_sizes: Sequence[int],
) -> dict[tuple[int, str], float]:
    r"""Sensitivity of every (layer, part) matrix group of the Transformer layers (Bai §5.3.2,
    docs/methods.md#adaptive-splitting).

    ``g_i`` is the performance gain (e.g. accuracy, or minus the loss) of leaving part ``i`` (MHA-QK, MHA-V, MHA-O,
    FFN-Mid, FFN-Out) un-quantized in every layer while everything else is quantized; ``g_j`` the gain of leaving
    layer ``j`` un-quantized. Both are divided by their numbers of parameters, and

    .. math:: u_{ij} = \frac{g_i}{|θ_i|} + \frac{g_j}{|θ_j|}.

    The word embedding and pooler get ``u = g / |θ|`` (:func:`parameterwise_gain`).

    Args:
        part_gains: Part name -> gain ``g_i``.
        part_sizes: Part name -> number of parameters of that part summed over the layers.
        layer_gains: Gain ``g_j`` per layer.
        layer_sizes: Number of quantized parameters per layer.

    Returns:
        ``(layer, part) -> u``.

    Example:
        >>> split_sensitivity({"ffn": 2.0}, {"ffn": 4}, [1.0, 0.0], [2, 2])
        {(0, 'ffn'): 1.0, (1, 'ffn'): 0.5}
    """
    if set(part_gains) != set(part_sizes):
        raise ValueError(
            f"part_gains and part_sizes name different parts: {sorted(part_gains)} vs {sorted(part_sizes)}."
        )
    if len(layer_gains) != len(layer_sizes):
        raise ValueError(f"{len(layer_gains)} layer gains for {len(layer_sizes)} layer sizes.")
    return {
        (layer, part): parameterwise_gain(part_gains[part], part_sizes[part])
        + parameterwise_gain(layer_gains[layer], layer_sizes[layer])
        for layer in range(len(layer_gains))
        for part in part_gains
    }


def parameterwise_gain(gain: float, size: int) -> float:
    """``gain / size``: the gain of keeping a group full-precision per parameter (Bai §5.3.2)."""
    if size <= 0:
        raise ValueError(f"A group must have a positive number of parameters, got {size}.")
    return float(gain) / size


def knapsack_select(values: Sequence[float], costs: Sequence[int], budget: int) -> list[bool]:
    r"""Solve the 0/1 knapsack ``max_s uᵀs  s.t.  cᵀs ≤ budget`` exactly by dynamic programming (Bai Eq. 5.12).

    Costs and budget are integers (parameters, or bytes); they are divided by their greatest common divisor first,
    so matrix sizes that are multiples of ``hidden²`` give a small table. Items with a value ``≤ 0`` are never
    picked. The result is deterministic.

    Args:
        values: The sensitivity ``u_z`` of each item.
        costs: The cost ``c_z ≥ 0`` of splitting each item.
        budget: The budget ``𝒞 - 𝒞₀ ≥ 0``.

    Returns:
        ``s``, one bool per item.

    Example:
        >>> knapsack_select([3.0, 2.0, 2.5], [4, 2, 2], 4)
        [False, True, True]
    """
    if len(values) != len(costs):
        raise ValueError(f"knapsack_select: {len(values)} values for {len(costs)} costs.")
    if any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in costs):
        raise ValueError(f"knapsack_select: costs must be ints >= 0, got {list(costs)[:8]}.")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise ValueError(f"knapsack_select(budget={budget!r}) is invalid: expected an int >= 0.")
    divisor = math.gcd(budget, *costs) or 1
    capacity = budget // divisor
    weights = [c // divisor for c in costs]
    if capacity * max(len(values), 1) > 50_000_000:
        raise ValueError(
            f"knapsack_select: the table would have {capacity} x {len(values)} entries; round the costs to a coarser "
            "unit (e.g. thousands of parameters) first."
        )
    best = [0.0] * (capacity + 1)
    keep = [[False] * (capacity + 1) for _ in values]
    for item in range(len(values) - 1, -1, -1):  # backwards, so the reconstruction prefers earlier items
        value, weight = float(values[item]), weights[item]
        if value <= 0:
            continue
        for room in range(capacity, weight - 1, -1):
            candidate = best[room - weight] + value
            if candidate > best[room]:
                best[room] = candidate
                keep[item][room] = True
    # `best[room]` is the optimum over the items processed so far (a suffix); replay the decisions forwards
    chosen, room = [], capacity
    for item in range(len(values)):
        take = keep[item][room]  # the optimum of items item.. at this room takes item
        chosen.append(take)
        if take:
            room -= weights[item]
    return chosen


def adaptive_split_plan(sensitivity: Mapping[str, float], costs: Mapping[str, int], budget: int) -> list[str]:
    """Names of the matrices to keep ternary (and split later) under ``budget`` (docs/methods.md#adaptive-splitting).

    Args:
        sensitivity: Matrix (or group) name -> ``u_z``.
        costs: Name -> extra cost of splitting it (e.g. its number of parameters).
        budget: Extra cost allowed on top of the half-sized binary model.

    Example:
        >>> adaptive_split_plan({"a": 1.0, "b": 0.5}, {"a": 2, "b": 1}, 2)
        ['a']
    """
    names = list(sensitivity)
    missing = [name for name in names if name not in costs]
    if missing:
        raise ValueError(f"adaptive_split_plan: no cost for {missing[:5]}.")
    chosen = knapsack_select([sensitivity[n] for n in names], [int(costs[n]) for n in names], int(budget))
    return [name for name, take in zip(names, chosen) if take]


class SplitGroups(NamedTuple):
    """The knapsack items of adaptive splitting and the module sets its gains are measured on (:func:`split_groups`)."""

    #: Item (``"layer<j>/<part>"``, or a module name for the word embedding, the pooler and anything else) -> modules.
    groups: dict[str, list[str]]
    #: Part (``mha_qk``, ``mha_v``, ``mha_o``, ``ffn_mid``, ``ffn_out``) -> its modules over all layers.
    parts: dict[str, list[str]]
    #: Layer index (a str) -> its modules.
    layers: dict[str, list[str]]


def split_groups(names: Sequence[str]) -> SplitGroups:
    """The knapsack items of adaptive splitting over quantized module names (Bai §5.3.2).

    Args:
        names: Names of the ternary modules, in model order.

    Returns:
        ``(groups, parts, layers)`` (a :class:`SplitGroups`): ``groups`` maps an item (``"layer<j>/<part>"`` for the
        Transformer parts of :data:`SPLIT_PARTS`, with Q and K in one ``mha_qk`` item; the module name for the word
        embedding, the pooler and anything else) to its module names; ``parts`` maps each part to its modules over
        all layers; ``layers`` maps each layer index (a str) to its modules.

    Example:
        >>> split_groups(["bert.encoder.layer.0.attention.self.query", "bert.encoder.layer.0.attention.self.key",
        ...               "bert.pooler.dense"])[0]
        {'layer0/mha_qk': ['bert.encoder.layer.0.attention.self.query', 'bert.encoder.layer.0.attention.self.key'], \
'bert.pooler.dense': ['bert.pooler.dense']}
    """
    groups: dict[str, list[str]] = {}
    parts: dict[str, list[str]] = {}
    layers: dict[str, list[str]] = {}
    for name in names:
        match = _BLOCK.match(name)
        part = SPLIT_PARTS.get(match.group(3)) if match else None
        if match and part:
            layer = match.group(2)
            groups.setdefault(f"layer{layer}/{part}", []).append(name)
            parts.setdefault(part, []).append(name)
            layers.setdefault(layer, []).append(name)
        else:
            groups[name] = [name]
    return SplitGroups(groups, parts, layers)


def split_probes(split: SplitGroups) -> dict[str, list[str]]:
    """The module sets whose full-precision gain :func:`group_sensitivity` needs (Bai §5.3.2).

    Every part over all layers (``"part:<p>"``), every layer (``"layer:<j>"``) and each item outside the Transformer
    layers (``"item:<name>"``).

    Example:
        >>> list(split_probes(split_groups(["m.encoder.layer.0.output.dense", "m.pooler.dense"])))
        ['part:ffn_out', 'layer:0', 'item:m.pooler.dense']
    """
    probes: dict[str, list[str]] = {f"part:{p}": names for p, names in split.parts.items()}
    probes.update({f"layer:{j}": names for j, names in split.layers.items()})
    probes.update({f"item:{item}": names for item, names in split.groups.items() if "/" not in item})
    return probes


def group_sensitivity(split: SplitGroups, sizes: Mapping[str, int], gains: Mapping[str, float]) -> dict[str, float]:
    r"""The per-parameter sensitivity ``u`` of every knapsack item (Bai §5.3.2, docs/methods.md#adaptive-splitting).

    ``u_{ij} = g_i / |θ_i| + g_j / |θ_j|`` for the (layer ``j``, part ``i``) items (:func:`split_sensitivity`) and
    ``u = g / |θ|`` for the word embedding, the pooler and the other single modules (:func:`parameterwise_gain`).

    Args:
        split: The items (:func:`split_groups`).
        sizes: Module name -> number of weights.
        gains: Probe name (:func:`split_probes`) -> gain of running its modules in full precision.

    Returns:
        Item -> ``u``: the Transformer items first (layer-major), then the single modules, in model order.

    Example:
        >>> split = split_groups(["m.encoder.layer.0.output.dense", "m.pooler.dense"])
        >>> group_sensitivity(split, {"m.encoder.layer.0.output.dense": 4, "m.pooler.dense": 2},
        ...                   {"part:ffn_out": 2.0, "layer:0": 2.0, "item:m.pooler.dense": 1.0})
        {'layer0/ffn_out': 1.0, 'm.pooler.dense': 0.5}
    """
    groups, parts, layers = split
    sensitivity: dict[str, float] = {}
    if parts:
        layer_ids = sorted(layers, key=int)
        per_group = split_sensitivity(
            {p: gains[f"part:{p}"] for p in parts},
            {p: sum(sizes[n] for n in names) for p, names in parts.items()},
            [gains[f"layer:{j}"] for j in layer_ids],
            [sum(sizes[n] for n in layers[j]) for j in layer_ids],
        )
        for (index, part), value in per_group.items():
            item = f"layer{layer_ids[index]}/{part}"
            if item in groups:
                sensitivity[item] = value
    for item, names in groups.items():
        if f"item:{item}" in gains:
            sensitivity[item] = parameterwise_gain(gains[f"item:{item}"], sum(sizes[n] for n in names))
    return sensitivity


@torch.no_grad()
def measure_split_gains(
    student: nn.Module,
    modules: Mapping[str, nn.Module],
    inputs: Sequence[tuple[tuple, dict[str, Any]]],
    probes: Mapping[str, Sequence[str]],
    teacher: nn.Module | None = None,
    temperature: float = 1.0,
) -> list[float]:
    """The gain of running each probe's modules in full precision (Bai §5.3.2, docs/methods.md#adaptive-splitting).

    The performance is minus the prediction-distillation loss (:func:`prediction_distillation_loss`) towards the
    teacher's logits (without a teacher: the student's own logits with every module in full precision), averaged
    over ``inputs``; the gain of a probe is the performance with its modules' ``quantize_weights`` off minus the fully
    quantized performance. The student runs in eval mode; its modes and the modules' flags are restored.

    Args:
        student: The quantized model.
        modules: Name -> the quantized modules (``QuantLinear``/``QuantEmbedding``) the probes name.
        inputs: ``(args, kwargs)`` of recorded forwards of ``student``.
        probes: Probe name -> module names (:func:`split_probes`).
        teacher: The full-precision reference model, or ``None``.
        temperature: Softmax temperature of the loss.

    Returns:
        One float gain per probe, in the order of ``probes``.
    """
    training = {module: module.training for module in student.modules()}
    student.eval()
    try:
        if teacher is not None:
            references = [output_logits(teacher(*args, **kwargs), _OWNER) for args, kwargs in inputs]
        else:  # no teacher: agreement with the student's own full-precision latent weights
            for module in modules.values():
                module.quantize_weights = False
            references = [output_logits(student(*args, **kwargs), _OWNER) for args, kwargs in inputs]
            for module in modules.values():
                module.quantize_weights = True

        def performance() -> float:
            losses = [
                prediction_distillation_loss(output_logits(student(*args, **kwargs), _OWNER), reference, temperature)
                for (args, kwargs), reference in zip(inputs, references)
            ]
            return -float(torch.stack([loss.double() for loss in losses]).mean())

        base = performance()
        values = []
        for names in probes.values():
            for name in names:
                modules[name].quantize_weights = False
            values.append(performance() - base)
            for name in names:
                modules[name].quantize_weights = True
    finally:
        for module, mode in training.items():
            module.training = mode
    return values


def plan_adaptive_split(
    student: nn.Module,
    modules: Mapping[str, nn.Module],
    inputs: Sequence[tuple[tuple, dict[str, Any]]],
    budget: float | int,
    teacher: nn.Module | None = None,
    temperature: float = 1.0,
    reduce: Callable[[Tensor], Tensor] | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """Which ternary modules adaptive splitting splits (Bai §5.3.2, docs/methods.md#adaptive-splitting).

    The items of :func:`split_groups` get their per-parameter sensitivity from the gains :func:`measure_split_gains`
    measures on ``inputs`` (:func:`group_sensitivity`); the 0/1 knapsack over the items, with their numbers of weights
    as costs, is solved exactly under ``budget`` (:func:`adaptive_split_plan`, ties towards earlier items).

    Args:
        student: The quantized model.
        modules: Name -> its ternary modules, in model order.
        inputs: ``(args, kwargs)`` of recorded forwards of ``student``.
        budget: A float in [0, 1] is a fraction of the extra cost of splitting everything; an int the extra cost in
            parameters.
        teacher, temperature: As for :func:`measure_split_gains`.
        reduce: Averages the gains over DDP ranks (each rank measures on its own inputs); ``None``: one process.

    Returns:
        ``(plan, record)``: the module names to split, in model order, and ``{"groups", "sensitivity", "costs",
        "budget", "selected"}`` (the items, their ``u`` and costs, the budget in parameters, the chosen items).
    """
    split = split_groups(list(modules))
    sizes = {name: module.weight.numel() for name, module in modules.items()}
    probes = split_probes(split)
    values = torch.tensor(
        measure_split_gains(student, modules, inputs, probes, teacher, temperature), dtype=torch.float64
    )
    reduced = reduce(values) if reduce is not None else values
    gains = dict(zip(probes, (float(v) for v in torch.as_tensor(reduced).cpu())))
    sensitivity = group_sensitivity(split, sizes, gains)
    costs = {item: sum(sizes[n] for n in names) for item, names in split.groups.items()}
    if isinstance(budget, float):
        budget = round(budget * sum(costs.values()))
    # in item (model) order: the knapsack breaks ties towards earlier items
    selected = adaptive_split_plan({item: sensitivity[item] for item in split.groups}, costs, int(budget))
    plan = [name for name in modules if any(name in split.groups[item] for item in selected)]
    record = {
        "groups": split.groups,
        "sensitivity": sensitivity,
        "costs": costs,
        "budget": int(budget),
        "selected": selected,
    }
    return plan, record


def check_split_at(owner: str, split_at: Any) -> None:
    """Require ``split_at`` to be an int step >= 1, a float fraction of the run in (0, 1), or ``None`` (no split).

    Example:
        >>> check_split_at("TernaryWeightSplitting", 0)
        Traceback (most recent call last):
        ValueError: `TernaryWeightSplitting(split_at=0)` is invalid: splitting at step 0 comes before any ternary \
training; use an int step >= 1 (or None for no split).
    """
    check_type(owner, "split_at", split_at, (int, float), "an int step >= 1, a float in (0, 1) or None", True)
    if isinstance(split_at, float) and not 0.0 < split_at < 1.0:
        raise ValueError(
            f"`{owner}(split_at={split_at!r})` is invalid: a float is a fraction of the run and must lie in "
            "(0, 1); the split needs a trained ternary model before it and binary steps after it."
        )
    if isinstance(split_at, int) and not isinstance(split_at, bool) and split_at < 1:
        raise ValueError(
            f"`{owner}(split_at={split_at!r})` is invalid: splitting at step {split_at} comes before any "
            "ternary training; use an int step >= 1 (or None for no split)."
        )


def check_adaptive_budget(owner: str, budget: Any, split_at: Any, weights: str) -> None:
    """Require an adaptive-splitting ``budget`` of a float in [0, 1], an int >= 0 or ``None``; one that is not
    ``None`` needs a split (``split_at``) of ternary ``weights``."""
    kinds = (
        "a float in [0, 1] (fraction of the extra cost of splitting everything), an int >= 0 (extra parameters) or None"
    )
    check_type(owner, "adaptive_budget", budget, (int, float), kinds, allow_none=True)
    if budget is None:
        return
    if (isinstance(budget, float) and not 0.0 <= budget <= 1.0) or (isinstance(budget, int) and budget < 0):
        raise ValueError(invalid(owner, "adaptive_budget", budget, kinds))
    if split_at is None or weights != "ternary":
        raise ValueError(
            f"`{owner}(adaptive_budget={budget!r})` needs a split: use `weights='ternary'` and a `split_at`."
        )


def split_step(split_at: int | float, total: int, owner: str = "TernaryWeightSplitting") -> int:
    """The optimizer step of a split at ``split_at`` (int step, or float fraction) in a run of ``total`` steps.

    Raises:
        ValueError: a step before 1 (no ternary training) or at or after ``total`` (no binary training).

    Example:
        >>> split_step(2 / 3, 300)
        200
    """
    step = round(split_at * total) if isinstance(split_at, float) else int(split_at)
    if step < 1:
        raise ValueError(
            f"{owner}(split_at={split_at!r}) splits at step {step} of {total}, before any ternary training: use a "
            "later split."
        )
    if step >= total:
        raise ValueError(
            f"{owner}(split_at={split_at!r}) splits at step {step}, but the run has only {total} optimizer steps: "
            "nothing would train the binary model."
        )
    return step
