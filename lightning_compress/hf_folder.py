"""Ordinary Hugging Face folders that plain ``transformers`` opens (``save_compressed(..., format="hf")``).

``format="hf"`` writes ``config.json`` and ``model.safetensors`` through ``save_pretrained``: any ``transformers``
install opens the folder with ``AutoModelFor<Task>.from_pretrained`` and never needs this library. Unstructured
zeros stay zeros in dense matrices there (portable, not smaller); ``slim=True`` physically removes what structured
pruning removed, so matrices, the file and the memory of the loaded model shrink:

* feed-forward neurons whose up-projection row, bias entry and down-projection column are all exactly zero (they
  contribute exactly nothing, whoever zeroed them); every layer keeps the same number of neurons, so the config has
  one smaller ``intermediate_size`` (a layer with fewer zero neurons keeps a few zero neurons of the others);
* encoder layers removed by :class:`~lightning_compress.callbacks.StructuredPruning` are sliced out of the model at
  the end of ``fit`` (``lightning-compress export`` slices them using the checkpoint's callback state).

Every folder is opened again with ``from_pretrained`` before it replaces ``outdir``, and its logits are compared with
the in-memory model's, so a folder that would not load as written is an error at export time.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import Tensor, nn

from lightning_compress.pruning.masks import plain_values
from lightning_compress.pruning.structured import encoder_blocks, slim_model_

HF_WEIGHTS = "model.safetensors"
#: Largest max-abs logit difference accepted between the written fp32 folder and the in-memory model.
LOGIT_TOLERANCE = 1e-5
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def zero_neuron_plan(model: nn.Module) -> dict[int, Tensor] | None:
    """Kept feed-forward neurons per layer for a slim export: every neuron that is not entirely zero.

    A neuron is removable when its row of ``intermediate.dense`` (weight and bias) and its column of
    ``output.dense`` are exactly zero. Layers keep the same count (the widest layer's), padding with zero neurons.

    Args:
        model: A BERT-family Hugging Face model (see :func:`~lightning_compress.pruning.structured.encoder_blocks`).

    Returns:
        Layer index -> sorted kept indices, or ``None`` when no layer has a removable neuron.
    """
    blocks = encoder_blocks(model)
    live: list[Tensor] = []
    for block in blocks:
        up, down = block.intermediate.dense, block.output.dense
        used = (plain_values(up.weight) != 0).any(dim=1) | (plain_values(down.weight) != 0).any(dim=0)
        if up.bias is not None:
            used |= up.bias != 0
        live.append(used)
    width = live[0].numel()
    keep = max(max(int(used.sum()) for used in live), 1)
    if keep == width:
        return None
    plan = {}
    for index, used in enumerate(live):
        kept = used.nonzero().flatten()
        if kept.numel() < keep:  # pad with zero neurons: exact, and every layer keeps `keep`
            spare = (~used).nonzero().flatten()[: keep - kept.numel()]
            kept = torch.cat([kept, spare]).sort().values
        plan[index] = kept.cpu()
    return plan


def slim_copy(model: nn.Module) -> nn.Module:
    """A physically smaller copy of ``model`` with its all-zero feed-forward neurons sliced away.

    Encoder layers removed by structured pruning are already gone from the model (the callback slices them out at the
    end of ``fit``; ``lightning-compress export`` slices them from the checkpoint's state), so only neurons are left
    to slice here. A model without removable neurons is returned as is, unless its encoder has unstructured zeros:
    then ``slim`` cannot make it smaller and the error says what slim does.

    Raises:
        ValueError: The layout is not a supported BERT-family one, or the sparsity is unstructured.
    """
    plan = zero_neuron_plan(model)
    if plan is None:
        weights = [plain_values(block.intermediate.dense.weight) for block in encoder_blocks(model)]
        zeros = sum(int((w == 0).sum()) for w in weights)
        if zeros:
            total = sum(w.numel() for w in weights)
            raise ValueError(
                "`save_compressed(slim=True)` is invalid for this model: slim physically removes whole feed-forward "
                "neurons and encoder layers removed by StructuredPruning, and this model has none to remove (every "
                f"neuron has a non-zero weight, while {zeros / total:.1%} of the feed-forward weights are zero: "
                "unstructured sparsity). HINT: export with slim=False (format='hf' writes dense matrices with zeros) "
                "or with the default compact format, which stores unstructured sparsity compactly; prune with "
                "StructuredPruning to make the model itself smaller."
            )
        return model
    from lightning_compress.quantization.qat import torchao_quantized_linears

    if torchao_quantized_linears(model):
        from lightning_compress.quantization.slicing import slim_quantized_copy

        return slim_quantized_copy(model, plan)
    return slim_model_(copy.deepcopy(model), kept_neurons=plan)


def write_hf_folder(model: nn.Module, folder: Path, dtype: str, tokenizer: object | None) -> None:
    """``save_pretrained`` of ``model`` in ``dtype`` (safetensors) and of ``tokenizer`` into ``folder``."""
    target = _DTYPES[dtype]
    if any(p.is_floating_point() and p.dtype != target for p in model.parameters()):
        model = copy.deepcopy(model).to(target)
    model.save_pretrained(folder, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)


@torch.no_grad()
def verify_hf_folder(folder: Path, model: nn.Module, dtype: str) -> int:
    """Open ``folder`` with ``from_pretrained`` of the model's class and compare logits on a fixed batch.

    Returns:
        The bytes of parameters and buffers of the loaded model (:func:`module_bytes`).

    Raises:
        ValueError: The folder does not load, or (fp32) the logits differ by more than :data:`LOGIT_TOLERANCE`.
    """
    try:
        loaded = type(model).from_pretrained(folder, torch_dtype=_DTYPES[dtype]).eval()
    except Exception as error:  # any failure means the folder is not what a user can open
        raise ValueError(f"the written Hugging Face folder does not load with from_pretrained: {error}") from error
    config = model.config
    vocab = int(getattr(config, "vocab_size", 2))
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(min(5, vocab - 1), vocab, (2, 16), generator=generator)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        expected = _logits(model, input_ids.to(device)).float().cpu()
    finally:
        model.train(was_training)
    actual = _logits(loaded, input_ids).float()
    difference = float((expected - actual).abs().max())
    tolerance = LOGIT_TOLERANCE if dtype == "float32" else 0.05 * max(float(expected.abs().max()), 1.0)
    if not difference <= tolerance:
        raise ValueError(
            f"the written Hugging Face folder gives logits {difference:.3g} away from the in-memory model (tolerance "
            f"{tolerance:.3g}); it would not reproduce the model."
        )
    return module_bytes(loaded)


def _logits(model: nn.Module, input_ids: Tensor) -> Tensor:
    output = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
    return output.logits if hasattr(output, "logits") else output[0]


def module_bytes(model: nn.Module) -> int:
    """Bytes of the parameters and buffers a loaded model holds in memory."""
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    return sum(t.numel() * t.element_size() for t in tensors.values())
