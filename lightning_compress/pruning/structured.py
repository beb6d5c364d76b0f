"""Structured pruning core: scores, selection and masking of whole units, and physical slicing (tensor functions).

Two kinds of unit are supported:

* **feed-forward neurons** -- neuron ``j`` of a transformer block is row ``j`` of the up-projection
  ``W₁`` (``intermediate.dense.weight``, ``d_ff x d``), entry ``j`` of its bias ``b₁`` and column ``j`` of the
  down-projection ``W₂`` (``output.dense.weight``, ``d x d_ff``). With those three zeroed the neuron adds exactly
  nothing to the block's output (``W₂[:, j] = 0``), whatever the activation;
* **encoder layers** -- a whole block of ``encoder.layer``; a removed block is the identity on the hidden states.

Scores are pure functions (lowest scores are removed first); :func:`select_units` turns them into monotone keep
masks (``torch.bool``, ``True`` = kept); :func:`mask_neurons_` keeps removed neurons at exactly zero during training;
:func:`skip_layer_` makes a removed block the identity. :func:`slim_model_` (with :func:`slice_ffn_neurons_` and
:func:`slice_layers_`) physically removes the units from a Hugging Face BERT-family model, so the result is an ordinary
model with a smaller ``config.intermediate_size`` / ``config.num_hidden_layers``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from lightning_compress.deprecation import deprecated_alias
from lightning_compress.targeting import encoder_layer_index

__all__ = [
    "BLOCK_LIST_PATTERN",
    "encoder_blocks",
    "ffn_parameters",
    "find_unit_blocks",
    "kept_layers_from_masks",
    "kept_neurons_from_masks",
    "layer_magnitude_scores",
    "layer_taylor_contributions",
    "mask_ffn_blocks_",
    "mask_neurons_",
    "neuron_magnitude_scores",
    "neuron_taylor_contributions",
    "random_unit_scores",
    "removed_unit_fraction",
    "select_units",
    "skip_layer",
    "skip_layer_",
    "slice_ffn_neurons_",
    "slice_layers_",
    "slim_model_",
    "units_to_remove",
]

_SUPPORTED_LAYOUT = (
    "BERT-family models (BERT, MiniLM, RoBERTa, XLM-RoBERTa, multilingual-e5) whose blocks sit at "
    "`base_model.encoder.layer[i]` with nn.Linear `intermediate.dense` and `output.dense`"
)


# ---------------------------------------------------------------------------------------------------------- scores
def neuron_magnitude_scores(up_weight: Tensor, up_bias: Tensor | None, down_weight: Tensor) -> Tensor:
    r"""L2 norm of every feed-forward neuron's weights.

    .. math:: S_j = \sqrt{\lVert W_1[j, :] \rVert_2^2 + b_{1,j}^2 + \lVert W_2[:, j] \rVert_2^2}

    Args:
        up_weight: ``W₁``, a `d_ff x d` tensor (``intermediate.dense.weight``).
        up_bias: ``b₁``, a `d_ff` tensor, or ``None``.
        down_weight: ``W₂``, a `d x d_ff` tensor (``output.dense.weight``).

    Returns:
        A `d_ff` float32 tensor.

    Example:
        >>> neuron_magnitude_scores(torch.tensor([[3.0], [0.0]]), torch.tensor([0.0, 1.0]), torch.tensor([[4.0, 0.0]]))
        tensor([5., 1.])
    """
    _check_ffn_shapes(up_weight, up_bias, down_weight)
    squares = up_weight.detach().float().square().sum(dim=1) + down_weight.detach().float().square().sum(dim=0)
    if up_bias is not None:
        squares = squares + up_bias.detach().float().square()
    return squares.sqrt()


def neuron_taylor_contributions(
    up_weight: Tensor,
    up_grad: Tensor | None,
    up_bias: Tensor | None,
    up_bias_grad: Tensor | None,
    down_weight: Tensor,
    down_grad: Tensor | None,
) -> Tensor:
    r"""First-order Taylor estimate of the loss change from removing each neuron, for one gradient (signed).

    Removing neuron ``j`` sets its parameters ``w_s`` to 0, which changes the loss by
    ``ΔL_j ≈ -Σ_{s ∈ j} w_s ∂L/∂w_s`` (Molchanov et al. 2017, Eq. 3; Molchanov et al. 2019, Eq. 4 for a group of
    parameters). This returns ``z_j = Σ_{s ∈ j} w_s g_s`` over row ``j`` of ``W₁``, ``b₁[j]`` and column ``j`` of
    ``W₂``; the structured-pruning score accumulates ``|z_j|`` over the optimizer steps between two events.

    Args:
        up_weight, up_grad: ``W₁`` and its gradient, `d_ff x d` tensors (a ``None`` gradient counts as 0).
        up_bias, up_bias_grad: ``b₁`` and its gradient, `d_ff` tensors, or ``None``.
        down_weight, down_grad: ``W₂`` and its gradient, `d x d_ff` tensors.

    Returns:
        A `d_ff` float32 tensor ``z``.

    Example:
        >>> w1, g1 = torch.tensor([[1.0, 2.0], [3.0, 0.0]]), torch.tensor([[1.0, 1.0], [-1.0, 5.0]])
        >>> neuron_taylor_contributions(w1, g1, None, None, torch.tensor([[1.0, 1.0]]), torch.tensor([[2.0, 0.0]]))
        tensor([ 5., -3.])
    """
    _check_ffn_shapes(up_weight, up_bias, down_weight)
    total = torch.zeros(up_weight.shape[0], dtype=torch.float32, device=up_weight.device)
    if up_grad is not None:
        total += (up_weight.detach().float() * up_grad.detach().float()).sum(dim=1)
    if up_bias is not None and up_bias_grad is not None:
        total += up_bias.detach().float() * up_bias_grad.detach().float()
    if down_grad is not None:
        total += (down_weight.detach().float() * down_grad.detach().float()).sum(dim=0)
    return total


def layer_magnitude_scores(layer_weights: Sequence[Sequence[Tensor]]) -> Tensor:
    r"""Root mean square of every layer's weight matrices (the layer's L2 norm normalised by its size).

    .. math:: S_l = \sqrt{\frac{\sum_{W \in \mathcal{W}_l} \lVert W \rVert_F^2}{\sum_{W \in \mathcal{W}_l} |W|}}

    with ``𝒲_l`` the ``nn.Linear`` weights of block ``l`` (query, key, value, attention output, up- and
    down-projection). Biases and LayerNorm scales are left out: a LayerNorm scale starts at 1 and would swamp the
    matrices of a small model. A baseline criterion; layer dropping studies (Fan et al. 2020, Sajjad et al. 2023)
    find that which layers are dropped matters less than fine-tuning after dropping them.

    Args:
        layer_weights: For each of the ``L`` layers, its weight tensors (any shapes).

    Returns:
        An `L` float32 tensor.

    Example:
        >>> layer_magnitude_scores([[torch.full((2, 2), 2.0)], [torch.ones(1, 3), torch.zeros(1, 1)]])
        tensor([2.0000, 0.8660])
    """
    scores = []
    for weights in layer_weights:
        if not weights:
            raise ValueError("layer_magnitude_scores needs at least one weight per layer.")
        squares = sum(float(w.detach().double().square().sum()) for w in weights)
        scores.append(math.sqrt(squares / sum(w.numel() for w in weights)))
    return torch.tensor(scores, dtype=torch.float32)


def layer_taylor_contributions(layer_parameters: Sequence[Sequence[tuple[Tensor, Tensor | None]]]) -> Tensor:
    r"""First-order Taylor estimate of the loss change from removing each layer, for one gradient (signed).

    .. math:: z_l = \sum_{s \in \theta_l} w_s \, \partial L / \partial w_s

    over every parameter ``θ_l`` of block ``l`` (Molchanov et al. 2019, Eq. 4 with the whole block as the group).
    Zeroing a block's parameters is not the same as skipping it (the residual connections and LayerNorms remain), so
    this is the usual first-order proxy; the score accumulates ``|z_l|`` between events.

    Args:
        layer_parameters: For each of the ``L`` layers, ``(parameter, gradient)`` pairs (a ``None`` gradient is 0).

    Returns:
        An `L` float32 tensor ``z``.

    Example:
        >>> pairs = [[(torch.tensor([1.0, 2.0]), torch.tensor([3.0, -1.0]))], [(torch.ones(1), None)]]
        >>> layer_taylor_contributions(pairs)
        tensor([1., 0.])
    """
    totals = []
    for pairs in layer_parameters:
        total = torch.zeros((), dtype=torch.float64)
        for weight, grad in pairs:
            if grad is not None:
                total += (weight.detach().double() * grad.detach().double()).sum().cpu()
        totals.append(total)
    return torch.stack(totals).float() if totals else torch.zeros(0)


def random_unit_scores(shape: Sequence[int], generator: torch.Generator) -> Tensor:
    """I.i.d. ``U(0, 1)`` scores (the random baseline), drawn on the CPU from ``generator``.

    Args:
        shape: The score shape, e.g. ``(L, d_ff)`` for neurons or ``(L,)`` for layers.
        generator: A CPU ``torch.Generator``; its state advances.

    Returns:
        A float32 tensor of ``shape``.

    Example:
        >>> random_unit_scores((2,), torch.Generator().manual_seed(0)).shape
        torch.Size([2])
    """
    return torch.rand(tuple(shape), generator=generator, dtype=torch.float32)


# ------------------------------------------------------------------------------------------------------- selection
def units_to_remove(sparsity: float, n_units: int) -> int:
    """Number of units removed at ``sparsity``: ``⌊sparsity · n + 1/2⌋`` (rounded half up to a whole unit).

    Example:
        >>> units_to_remove(0.5, 3), units_to_remove(0.25, 64), units_to_remove(0.1, 3)
        (2, 16, 0)
    """
    return min(n_units, int(math.floor(sparsity * n_units + 0.5 + 1e-9)))


def select_units(scores: Tensor, n_remove: int, previous: Tensor | None = None) -> Tensor:
    """Keep mask removing the ``n_remove`` lowest-scored units of every row; removed units stay removed.

    Units already removed in ``previous`` score ``-inf``, so they are chosen first and never come back; ties are
    broken by index (stable sort), so equal inputs give equal masks on every process.

    Args:
        scores: A `n` tensor (one group of units, e.g. the layers) or a `L x n` tensor (one row per layer).
        n_remove: Units to remove per row, in ``[0, n]``; never fewer than ``previous`` already removed.
        previous: A bool keep mask shaped like ``scores``, or ``None``.

    Returns:
        A bool tensor shaped like ``scores`` (``True`` = kept), with ``max(n_remove, removed before)`` ``False``
        entries per row.

    Example:
        >>> select_units(torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 4.0]]), 1)
        tensor([[ True, False,  True],
                [False,  True,  True]])
    """
    if not 0 <= n_remove <= scores.shape[-1]:
        raise ValueError(f"n_remove={n_remove} is invalid: expected an int in [0, {scores.shape[-1]}].")
    rows = scores.detach().float().reshape(-1, scores.shape[-1]).clone()
    if previous is not None:
        if previous.shape != scores.shape:
            raise ValueError(f"previous has shape {tuple(previous.shape)}, scores {tuple(scores.shape)}.")
        rows[~previous.reshape(rows.shape).to(rows.device)] = -math.inf
        n_remove = max(n_remove, int((~previous).reshape(rows.shape).sum(dim=1).max()))
    keep = torch.ones_like(rows, dtype=torch.bool)
    if n_remove > 0:
        lowest = torch.sort(rows, dim=1, stable=True).indices[:, :n_remove]
        keep.scatter_(1, lowest, False)
    return keep.view(scores.shape)


# -------------------------------------------------------------------------------------------------- masking in place
@torch.no_grad()
def mask_neurons_(up_weight: Tensor, up_bias: Tensor | None, down_weight: Tensor, keep: Tensor) -> None:
    """Set the removed neurons' parameters (row of ``W₁``, entry of ``b₁``, column of ``W₂``) to exactly 0, in place.

    Uses ``masked_fill_``, so a removed entry is 0 even if it held ``inf`` or ``nan``. Works on gradients too.

    Args:
        up_weight: ``W₁``, `d_ff x d`.
        up_bias: ``b₁``, `d_ff`, or ``None``.
        down_weight: ``W₂``, `d x d_ff`.
        keep: A `d_ff` bool tensor (``True`` = kept).

    Example:
        >>> w1, w2 = torch.ones(2, 1), torch.ones(1, 2)
        >>> mask_neurons_(w1, None, w2, torch.tensor([True, False])); w1.flatten().tolist(), w2.flatten().tolist()
        ([1.0, 0.0], [1.0, 0.0])
    """
    removed = ~keep.to(up_weight.device)
    up_weight.masked_fill_(removed.unsqueeze(1), 0)
    if up_bias is not None:
        up_bias.masked_fill_(removed, 0)
    down_weight.masked_fill_(removed.unsqueeze(0), 0)


def skip_layer_(layer: nn.Module) -> RemovableHandle:
    """Make ``layer`` the identity on its hidden states, as if it were deleted; returns the hook's handle.

    A forward hook replaces the block's output hidden states by its input hidden states (the first positional
    argument or ``hidden_states=``), keeping the output structure: a tensor (transformers >= 5) or a tuple whose
    first element is the hidden states (transformers 4.x). The hook is prepended, so hooks that record hidden states
    see the identity. When the output requires gradients it is kept in the graph through ``torch.where`` with an
    all-true condition: the forward value is exactly the input, the block's parameters get gradient exactly 0, and
    DDP finds every parameter used. The block is still computed (the saving comes from slicing it away,
    :func:`slice_layers_`).

    Example:
        >>> handle = skip_layer_(block); torch.equal(block(hidden), hidden)  # doctest: +SKIP
        True
    """

    def hook(module: nn.Module, args: tuple, kwargs: dict[str, Any], output: Any) -> Any:
        hidden = args[0] if args else kwargs["hidden_states"]
        first = output[0] if isinstance(output, tuple) else output
        if isinstance(first, Tensor) and first.requires_grad and first.shape == hidden.shape:
            hidden = torch.where(torch.ones((), dtype=torch.bool, device=hidden.device), hidden, first)
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    return layer.register_forward_hook(hook, with_kwargs=True, prepend=True)


# ---------------------------------------------------------------------------------------------- masks -> kept units
def kept_neurons_from_masks(masks: Mapping[str, Tensor]) -> dict[int, Tensor]:
    """Kept neuron indices per layer index from neuron keep masks keyed by block FQN.

    Args:
        masks: FQN of a block (``...encoder.layer.3``) -> `d_ff` bool keep mask (``StructuredPruning.masks`` with
            ``unit="ffn_neurons"``).

    Returns:
        Layer index -> sorted int64 tensor of kept neuron indices.

    Example:
        >>> kept_neurons_from_masks({"bert.encoder.layer.1": torch.tensor([True, False, True])})
        {1: tensor([0, 2])}
    """
    return {_layer_index(name): mask.flatten().nonzero().flatten().cpu() for name, mask in masks.items()}


def kept_layers_from_masks(masks: Mapping[str, Tensor]) -> list[int]:
    """Sorted indices of the kept layers from layer keep masks (0-dim bool) keyed by block FQN.

    Example:
        >>> kept_layers_from_masks({"encoder.layer.0": torch.tensor(False), "encoder.layer.1": torch.tensor(True)})
        [1]
    """
    return sorted(_layer_index(name) for name, mask in masks.items() if bool(mask))


def _layer_index(name: str) -> int:
    index = encoder_layer_index(name + ".")
    if index is None:
        raise ValueError(f"{name!r} is not the FQN of an encoder block (`...encoder.layer.<i>`).")
    return index


# ------------------------------------------------------------------------------------------- units of a model by FQN
#: The block lists searched for units (``bert.encoder.layer``, also ``encoder.layers``).
BLOCK_LIST_PATTERN = r"(^|\.)encoder\.layers?$"


def find_unit_blocks(
    model: nn.Module, unit: str, targets: Sequence[str] | None, owner: str = "StructuredPruning"
) -> tuple[list[str], list[str]]:
    """The FQNs of the encoder blocks of ``model`` and of those whose units may be removed.

    The blocks are those of the one ``nn.ModuleList`` named like :data:`BLOCK_LIST_PATTERN` that ``targets``
    (regexes over block FQNs, ``None``/empty: every block list) selects; the candidates are the blocks a pattern of
    ``targets`` matches (all without ``targets``). ``unit="ffn_neurons"`` needs every block as a candidate, with
    ``nn.Linear`` ``intermediate.dense`` and ``output.dense`` of one width.

    Args:
        model: The module searched (e.g. the LightningModule holding a Hugging Face BERT-family model).
        unit: ``"ffn_neurons"`` or ``"layers"``.
        targets: Regexes over block FQNs, or ``None``.
        owner: The call errors name.

    Returns:
        ``(blocks, candidates)``, both in block order.

    Raises:
        ValueError: no block list, several of them, a pattern that matches no block, or a neuron layout that does not
            fit (naming ``owner``).

    Example:
        >>> from transformers import BertConfig, BertModel
        >>> config = BertConfig(hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16)
        >>> find_unit_blocks(BertModel(config), "layers", ["layer.1$"])
        (['encoder.layer.0', 'encoder.layer.1'], ['encoder.layer.1'])
    """
    modules = dict(model.named_modules())
    stacks = [
        name
        for name, module in modules.items()
        if isinstance(module, nn.ModuleList) and len(module) > 0 and re.search(BLOCK_LIST_PATTERN, name)
    ]
    if not stacks:
        raise ValueError(
            f"{owner} found no encoder block list (`encoder.layer` / `encoder.layers`) in {type(model).__name__}; it "
            "supports BERT-family Hugging Face models (BERT, MiniLM, RoBERTa, XLM-RoBERTa) held as a submodule of the "
            "LightningModule."
        )
    if targets:
        for pattern in targets:
            if not any(re.search(pattern, f"{stack}.{i}") for stack in stacks for i in range(len(modules[stack]))):
                first = [f"{stacks[0]}.{i}" for i in range(min(3, len(modules[stacks[0]])))]
                raise ValueError(
                    f"`{owner}(targets=...)` pattern {pattern!r} matched no encoder block; block names are like "
                    f"{first}."
                )
        chosen = [
            stack
            for stack in stacks
            if any(re.search(p, f"{stack}.{i}") for p in targets for i in range(len(modules[stack])))
        ]
    else:
        chosen = stacks
    if len(chosen) != 1:
        raise ValueError(
            f"{owner} found several encoder block lists {chosen}; pass `targets=[...]` regexes naming the blocks of "
            "one of them."
        )
    stack = chosen[0]
    blocks = [f"{stack}.{i}" for i in range(len(modules[stack]))]
    candidates = [b for b in blocks if not targets or any(re.search(p, b) for p in targets)]
    if unit == "ffn_neurons":
        _check_ffn_blocks(modules, stack, blocks, candidates, targets, owner)
    return blocks, candidates


def _check_ffn_blocks(
    modules: Mapping[str, nn.Module],
    stack: str,
    blocks: list[str],
    candidates: list[str],
    targets: Sequence[str] | None,
    owner: str,
) -> None:
    if len(candidates) != len(blocks):
        raise ValueError(
            f"`{owner}(unit='ffn_neurons', targets={targets})` selects {len(candidates)} of the {len(blocks)} blocks "
            f"of {stack!r}; every block loses the same number of neurons (one `intermediate_size`), so `targets` must "
            "select all of them or be left unset."
        )
    for block in blocks:
        up, down = modules.get(f"{block}.intermediate.dense"), modules.get(f"{block}.output.dense")
        if not isinstance(up, nn.Linear) or not isinstance(down, nn.Linear):
            raise ValueError(
                f"{owner}(unit='ffn_neurons') needs nn.Linear `intermediate.dense` and `output.dense` in every encoder "
                f"block (BERT, MiniLM, RoBERTa, XLM-RoBERTa); {block!r} ({type(modules[block]).__name__}) has none."
            )
    widths = {modules[f"{block}.intermediate.dense"].out_features for block in blocks}
    if len(widths) != 1:
        raise ValueError(f"{owner}(unit='ffn_neurons') needs one intermediate size; found {widths}.")


def ffn_parameters(parameters: Mapping[str, Tensor], block: str) -> tuple[Tensor, Tensor | None, Tensor]:
    """``(W₁, b₁ or None, W₂)`` of the feed-forward neurons of ``block`` from a ``name -> parameter`` mapping."""
    return (
        parameters[f"{block}.intermediate.dense.weight"],
        parameters.get(f"{block}.intermediate.dense.bias"),
        parameters[f"{block}.output.dense.weight"],
    )


@torch.no_grad()
def mask_ffn_blocks_(parameters: Mapping[str, Tensor], masks: Mapping[str, Tensor], grads: bool = False) -> None:
    """:func:`mask_neurons_` on the neurons of every block of ``masks`` (block FQN -> `d_ff` keep mask); with
    ``grads`` on their gradients instead (blocks whose gradients are not all there are left alone)."""
    for name, keep in masks.items():
        up, bias, down = ffn_parameters(parameters, name)
        if grads:
            if up.grad is None or down.grad is None:
                continue
            up, bias, down = up.grad, None if bias is None else bias.grad, down.grad
        mask_neurons_(up, bias, down, keep)


def removed_unit_fraction(masks: Mapping[str, Tensor], unit: str, candidates: Sequence[str]) -> float:
    """Fraction of removed units: neurons over all blocks (``unit="ffn_neurons"``), or layers over ``candidates``.

    Example:
        >>> removed_unit_fraction({"encoder.layer.0": torch.tensor([True, False])}, "ffn_neurons", [])
        0.5
    """
    if not masks:
        return 0.0
    if unit == "ffn_neurons":
        values = list(masks.values())
        return 1.0 - sum(int(m.sum()) for m in values) / sum(m.numel() for m in values)
    removed = sum(not bool(masks[name]) for name in candidates if name in masks)
    return removed / max(len(candidates), 1)


# ---------------------------------------------------------------------------------------------------------- slicing
def encoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The ``encoder.layer`` list of a Hugging Face BERT-family model, after checking its layout.

    Raises:
        ValueError: Naming the model class and the supported layout when it does not match.
    """
    base = getattr(model, "base_model", model)
    blocks = getattr(getattr(base, "encoder", None), "layer", None)
    ok = isinstance(blocks, nn.ModuleList) and len(blocks) > 0
    ok = ok and all(
        isinstance(getattr(getattr(block, "intermediate", None), "dense", None), nn.Linear)
        and isinstance(getattr(getattr(block, "output", None), "dense", None), nn.Linear)
        for block in blocks
    )
    if not ok or getattr(model, "config", None) is None:
        raise ValueError(
            f"Structured slicing supports {_SUPPORTED_LAYOUT}, and a `config`; {type(model).__name__} does not have "
            "that layout."
        )
    return blocks


def slice_ffn_neurons_(model: nn.Module, kept_neurons: Mapping[int, Tensor]) -> nn.Module:
    """Physically remove feed-forward neurons, in place: every block keeps only the neurons listed for it.

    ``intermediate.dense`` keeps rows ``kept`` (and bias entries), ``output.dense`` keeps columns ``kept``; both are
    replaced by new ``nn.Linear`` modules from ``transformers.pytorch_utils.prune_linear_layer`` in the original dtype
    and device, and ``config.intermediate_size`` becomes the new width. A neuron whose three parts are exactly zero
    contributes nothing, so the sliced model computes what the masked one does (up to float summation order).

    Args:
        model: A BERT-family Hugging Face model (:func:`encoder_blocks`).
        kept_neurons: Layer index -> 1-d int tensor (or list) of kept neuron indices; every layer must be listed with
            the same number of neurons (a standard config has one ``intermediate_size``).

    Returns:
        ``model``, with smaller feed-forward blocks.

    Example:
        >>> kept = {0: torch.tensor([0, 5]), 1: torch.tensor([2, 3])}
        >>> slice_ffn_neurons_(model, kept).config.intermediate_size  # doctest: +SKIP
        2
    """
    from transformers.pytorch_utils import prune_linear_layer

    blocks = encoder_blocks(model)
    indices = {int(i): torch.as_tensor(kept, dtype=torch.long).flatten() for i, kept in kept_neurons.items()}
    missing = [i for i in range(len(blocks)) if i not in indices]
    unknown = [i for i in indices if not 0 <= i < len(blocks)]
    sizes = {int(kept.numel()) for kept in indices.values()}
    if missing or unknown or len(sizes) != 1 or 0 in sizes:
        raise ValueError(
            f"slice_ffn_neurons_ needs the same number (> 0) of kept neurons for every one of the {len(blocks)} "
            f"layers; got sizes {sorted(sizes)}, missing layers {missing}, unknown layers {unknown}."
        )
    for i, kept in indices.items():
        block = blocks[i]
        width = block.intermediate.dense.out_features
        if kept.numel() != kept.unique().numel() or int(kept.min()) < 0 or int(kept.max()) >= width:
            raise ValueError(f"layer {i}: kept neuron indices must be distinct and in [0, {width}).")
        kept = kept.sort().values
        up, down = block.intermediate.dense, block.output.dense
        block.intermediate.dense = _like(prune_linear_layer(up, kept, dim=0), up)
        block.output.dense = _like(prune_linear_layer(down, kept, dim=1), down)
    model.config.intermediate_size = sizes.pop()
    return model


def slice_layers_(model: nn.Module, kept_layers: Sequence[int]) -> nn.Module:
    """Physically remove encoder layers, in place: ``encoder.layer`` keeps only ``kept_layers``, in order.

    ``config.num_hidden_layers`` becomes ``len(kept_layers)`` and every ``layer_idx`` attribute inside the kept blocks
    (transformers >= 4.5x attention modules use it to index caches) is renumbered to the block's new position.

    Args:
        model: A BERT-family Hugging Face model (:func:`encoder_blocks`).
        kept_layers: Indices of the layers to keep (at least one), in the original numbering.

    Returns:
        ``model``, with fewer layers.

    Example:
        >>> slice_layers_(model, [0, 2]).config.num_hidden_layers  # doctest: +SKIP
        2
    """
    blocks = encoder_blocks(model)
    kept = sorted({int(i) for i in kept_layers})
    if not kept or kept[0] < 0 or kept[-1] >= len(blocks):
        raise ValueError(
            f"slice_layers_ needs at least one kept layer index in [0, {len(blocks)}); got {list(kept_layers)}."
        )
    new_blocks = nn.ModuleList([blocks[i] for i in kept])
    for position, block in enumerate(new_blocks):
        for sub in block.modules():
            if isinstance(getattr(sub, "layer_idx", None), int):
                sub.layer_idx = position
    base = getattr(model, "base_model", model)
    base.encoder.layer = new_blocks
    model.config.num_hidden_layers = len(kept)
    return model


def slim_model_(
    model: nn.Module, kept_neurons: Mapping[int, Tensor] | None = None, kept_layers: Sequence[int] | None = None
) -> nn.Module:
    """Slice a BERT-family model in place: feed-forward neurons first, then layers (both in the original numbering).

    Args:
        model: A Hugging Face BERT-family model (:func:`encoder_blocks`).
        kept_neurons: Layer index -> kept neuron indices (:func:`kept_neurons_from_masks`), or ``None``.
        kept_layers: Indices of the kept layers (:func:`kept_layers_from_masks`), or ``None``.

    Returns:
        ``model``; ``model.save_pretrained`` then writes an ordinary, smaller transformers folder.

    Example:
        >>> slim_model_(hf_model, kept_neurons=callback.kept_neurons)  # doctest: +SKIP
    """
    if kept_neurons is not None:
        slice_ffn_neurons_(model, kept_neurons)
    if kept_layers is not None:
        slice_layers_(model, kept_layers)
    return model


def _like(new: nn.Linear, old: nn.Linear) -> nn.Linear:
    new = new.to(device=old.weight.device, dtype=old.weight.dtype)
    new.train(old.training)
    new.requires_grad_(old.weight.requires_grad)
    return new


def _check_ffn_shapes(up_weight: Tensor, up_bias: Tensor | None, down_weight: Tensor) -> None:
    d_ff = up_weight.shape[0]
    if up_weight.dim() != 2 or down_weight.dim() != 2 or down_weight.shape[1] != d_ff:
        raise ValueError(
            f"Expected W₁ `d_ff x d` and W₂ `d x d_ff`; got {tuple(up_weight.shape)} and {tuple(down_weight.shape)}."
        )
    if up_bias is not None and up_bias.shape != (d_ff,):
        raise ValueError(f"Expected b₁ of shape ({d_ff},); got {tuple(up_bias.shape)}.")


# Deprecated names (removed in 0.2.0): the trailing `_` marks functions that change their argument in place.
skip_layer = deprecated_alias(skip_layer_, "skip_layer")
