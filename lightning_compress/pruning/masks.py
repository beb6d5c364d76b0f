"""Masks: choose which weights to prune, keep them pruned, and measure sparsity.

Masks are ``torch.bool`` tensors (``True`` = kept) keyed by parameter FQN. Selection is
deterministic (stable sort on the flattened index breaks ties), so every DDP rank computes the same
mask from the same weights (docs/methods.md#the-fine-pruning-loop), and monotone: already-pruned entries score
``-inf`` and are always selected first, so a pruned weight never regrows (rule 1).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn


def _prune_count(sparsity: float, numel: int) -> int:
    return min(numel, int(round(sparsity * numel)))


def _lowest(scores: Tensor, count: int) -> Tensor:
    """Flat indices of the ``count`` lowest scores; ties broken by index (stable sort)."""
    if count <= 0:
        return torch.empty(0, dtype=torch.long, device=scores.device)
    return torch.sort(scores, stable=True).indices[:count]


def layerwise_masks(
    scores: Mapping[str, Tensor], sparsity: float, previous: Mapping[str, Tensor] | None = None
) -> dict[str, Tensor]:
    """Prune every matrix to the same ``sparsity`` (docs/methods.md#layer-wise-and-global-sparsity-targets, layer-wise).

    Args:
        scores: FQN -> score tensor (same shape as the weight); lowest scores are pruned.
        sparsity: Target fraction of pruned entries per matrix, in ``[0, 1]``.
        previous: FQN -> current ``bool`` mask; pruned entries stay pruned.

    Returns:
        FQN -> ``bool`` mask (``True`` = kept) with ``round(sparsity * numel)`` ``False`` entries
        (or the previous count, if larger).

    Example:
        >>> layerwise_masks({"w": torch.tensor([[3.0, 1.0], [2.0, 4.0]])}, 0.5)["w"]
        tensor([[ True, False],
                [False,  True]])
    """
    masks = {}
    for name, score in scores.items():
        flat = _monotone_scores(score, None if previous is None else previous.get(name))
        mask = torch.ones(flat.numel(), dtype=torch.bool, device=flat.device)
        mask[_lowest(flat, _prune_count(sparsity, flat.numel()))] = False
        masks[name] = mask.view_as(score)
    return masks


def global_masks(
    scores: Mapping[str, Tensor], sparsity: float, previous: Mapping[str, Tensor] | None = None
) -> dict[str, Tensor]:
    """Prune the pooled scores of all matrices to ``sparsity`` with one threshold (docs/methods.md#pruning-criteria,
    global).

    Same arguments and return as :func:`layerwise_masks`; per-matrix sparsity varies, the pooled sparsity
    is ``round(sparsity * total) / total``.

    Example:
        >>> m = global_masks({"a": torch.tensor([1.0, 5.0]), "b": torch.tensor([2.0, 3.0])}, 0.5)
        >>> m["a"], m["b"]
        (tensor([False,  True]), tensor([False,  True]))
    """
    names = list(scores)
    flats = [_monotone_scores(scores[n], None if previous is None else previous.get(n)) for n in names]
    pooled = torch.cat([flat.to(flats[0].device) for flat in flats])
    keep = torch.ones(pooled.numel(), dtype=torch.bool, device=pooled.device)
    keep[_lowest(pooled, _prune_count(sparsity, pooled.numel()))] = False
    masks, offset = {}, 0
    for name, flat in zip(names, flats):
        masks[name] = keep[offset : offset + flat.numel()].view_as(scores[name]).to(flat.device)
        offset += flat.numel()
    return masks


def _monotone_scores(score: Tensor, previous: Tensor | None) -> Tensor:
    flat = score.detach().reshape(-1).float()
    if previous is not None:
        flat = flat.masked_fill(~previous.reshape(-1).to(flat.device), float("-inf"))
    return flat


@torch.no_grad()
def apply_masks_(parameters: Mapping[str, Tensor], masks: Mapping[str, Tensor], grads: bool = False) -> None:
    """Zero the pruned entries of each parameter (or of its ``.grad`` if ``grads``), in place.

    ``W ← where(M, W, 0)``: a select, not ``W ⊙ M``, so pruned entries are exactly 0 even when the tensor holds a
    NaN or an infinity (``NaN · 0 = NaN``); kept entries are left as they are. It costs the same as the multiply.

    Args:
        parameters: FQN -> parameter (e.g. ``dict(module.named_parameters())``).
        masks: FQN -> ``bool`` mask of the parameter's shape, on its device (``True`` = kept).
        grads: Mask the parameters' ``.grad`` instead (skipped where it is ``None``).

    Example:
        >>> w = torch.tensor([[1.0, float("nan")], [float("inf"), 2.0]])
        >>> apply_masks_({"w": w}, {"w": torch.tensor([[True, False], [False, True]])}); w
        tensor([[1., 0.],
                [0., 2.]])
    """
    zeros: dict[tuple[torch.device, torch.dtype], Tensor] = {}
    for name, mask in masks.items():
        tensor = parameters[name].grad if grads else parameters[name]
        if tensor is None:
            continue
        zero = zeros.get((tensor.device, tensor.dtype))
        if zero is None:
            zero = zeros[tensor.device, tensor.dtype] = tensor.new_zeros(())
        torch.where(mask, tensor, zero, out=tensor)


def mask_sparsity(masks: Iterable[Tensor]) -> float:
    """Fraction of pruned entries over all ``masks`` pooled (docs/methods.md#measuring-sparsity: counted from the
    masks)."""
    masks = list(masks)
    total = sum(mask.numel() for mask in masks)
    kept = sum(int(mask.sum()) for mask in masks)
    return 0.0 if total == 0 else 1.0 - kept / total


def sparsity_report(module: nn.Module, names: Iterable[str] | None = None) -> dict:
    """Per-parameter and overall sparsity of ``module``, counted as exact zeros.

    Args:
        module: Any module (a LightningModule, a Hugging Face model, ...).
        names: FQNs of the prunable set; ``None`` uses the default encoder targets
            (:func:`lightning_compress.targeting.resolve_targets`).

    Returns:
        ``{"layers": {fqn: sparsity}, "prunable": pooled sparsity of ``names``,
        "model": zeros / all parameters, "prunable_numel": int, "model_numel": int}``.
    """
    from lightning_compress.targeting import resolve_targets

    params = {name: plain_values(p) for name, p in module.named_parameters()}
    names = resolve_targets(module) if names is None else list(names)
    layers = {name: float((params[name] == 0).float().mean()) for name in names}
    prunable_numel = sum(params[name].numel() for name in names)
    prunable_zeros = sum(int((params[name] == 0).sum()) for name in names)
    model_numel = sum(p.numel() for p in params.values())
    model_zeros = sum(int((p == 0).sum()) for p in params.values())
    return {
        "layers": layers,
        "prunable": prunable_zeros / max(prunable_numel, 1),
        "model": model_zeros / max(model_numel, 1),
        "prunable_numel": prunable_numel,
        "model_numel": model_numel,
    }


def plain_values(tensor: torch.Tensor) -> torch.Tensor:
    """The values of ``tensor`` as a plain tensor: a quantized weight (a torchao tensor after
    ``QuantizationAwareTraining`` converts) is dequantized, its zeros staying exact zeros (symmetric, zero point 0);
    any other tensor is returned detached."""
    data = tensor.detach()
    if type(data) is not torch.Tensor and hasattr(data, "dequantize"):
        return data.dequantize()
    return data
