"""Int8 / int4 export as a plain Hugging Face folder that loads with ``transformers`` + ``torchao`` alone.

The folder holds ``config.json`` with a ``quantization_config`` (transformers' ``TorchAoConfig``: the torchao config
the weights were quantized with, and the Linear modules left in full precision), ``model.safetensors`` with every
quantized weight stored as torchao tensor parts (``<module>._weight_qdata`` int8 codes, ``_weight_scale``,
``_weight_zero_point``; torchao's safetensors layout, its metadata naming each tensor's class), the tokenizer files
when given, and ``lightning_compress_export.json`` (marks the folder as an export that a later one may replace). It
opens with::

    AutoModelForSequenceClassification.from_pretrained(folder)   # no lightning_compress import

and gives the logits of the in-memory quantized model (measured equal to the last bit on CPU).

Both formats store their codes in int8 containers (torchao's ``"unpacked_to_int8"`` layout, the one that runs on
CPU and serializes to safetensors in torchao 0.18): an ``"int4"`` folder is therefore about the size of an ``"int8"``
one (its per-group scales even add ~1/8 byte per weight); int4 saves accuracy-for-bits during QAT, not disk.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import save_file
from torch import nn

from lightning_compress.export import ExportSummary, check_export_dir, staged_export
from lightning_compress.quantization.modules import quantized_modules
from lightning_compress.quantization.qat import (
    DEFAULT_GROUP_SIZE,
    check_qat_arguments,
    fake_quantized_formats,
    ptq_quantize_,
    qat_base_config,
    qat_convert_,
    torchao_quantized_linears,
)
from lightning_compress.targeting import resolve_targets

WEIGHTS_FILE = "model.safetensors"
FORMAT = "lightning_compress.torchao-hf/1"
_OWNER = "save_quantized_hf"


def save_quantized_hf(
    model: nn.Module,
    outdir: str | os.PathLike,
    quantize: Literal["int8", "int4"] = "int8",
    tokenizer: object | None = None,
    *,
    activations: Literal["int8"] | None = "int8",
    group_size: int = DEFAULT_GROUP_SIZE,
    overwrite: bool = False,
) -> ExportSummary:
    """Write ``model`` with int8/int4 Linear weights as a Hugging Face folder that loads without this library.

    ``model`` is not changed; a copy is quantized: the fake-quantized modules of
    :class:`~lightning_compress.callbacks.QuantizationAwareTraining` are converted with their own formats, modules
    already converted are saved as they are, and a model that was never quantized gets post-training quantization of
    every ``nn.Linear`` inside the transformer encoder (the default targets of the pruning callbacks).

    Args:
        model: A Hugging Face ``PreTrainedModel`` (e.g. ``pl_module.model``), fp32, finite.
        outdir: Output folder: missing, empty or a previous export (replaced whole), unless ``overwrite``.
        quantize: ``"int8"`` (one scale per output row) or ``"int4"`` (one per ``group_size`` inputs) weights.
        tokenizer: Saved alongside when given.
        activations: ``"int8"`` (dynamic per-token int8 activations at inference) or ``None`` (weight-only).
        group_size: Input weights per scale of ``"int4"``.
        overwrite: Replace a non-empty ``outdir`` that is not an export.

    Returns:
        Measured sizes: ``compressed_bytes`` the weights file, ``dense_bytes`` the fp32 safetensors file of ``model``,
        ``quantized_bytes`` / ``quantized_reference_bytes`` the quantized weights' parts and their fp32 size.

    Raises:
        ValueError: Unknown format, a ternary/binary model, nothing to quantize, a fake-quantized model trained with
            other formats, or an ``outdir`` that may not be replaced.
        FloatingPointError: A tensor of ``model`` holds NaN or infinite values.

    Example:
        >>> save_quantized_hf(pl_module.model, "out/int8", "int8", tokenizer).describe()  # doctest: +SKIP
        'whole model: 25.1 MB vs 86.7 MB fp32 (3.5x)...'
    """
    check_qat_arguments(_OWNER, quantize, activations, group_size)
    if not hasattr(model, "config") or not hasattr(model.config, "to_dict"):
        raise TypeError(
            f"`{_OWNER}` expects a Hugging Face PreTrainedModel (with `.config`), got {type(model).__name__}. "
            "HINT: pass the wrapped model, e.g. `pl_module.model`."
        )
    ternary = quantized_modules(model)
    if ternary:
        kinds = sorted({module.weights for module in ternary.values()})
        raise ValueError(
            f"`{_OWNER}(quantize={quantize!r})` is invalid for this model: its modules {list(ternary)[:3]} are already "
            f"quantized to {kinds} weights (1-2 bits), which int8/int4 would only enlarge. HINT: export it with "
            "`save_compressed` (bit-packed), or load it with `load_compressed` to run it."
        )
    _check_finite(model)
    check_export_dir(outdir, overwrite)
    quantized = copy.deepcopy(model).eval()
    names = _quantize_copy_(quantized, quantize, activations, group_size)

    from transformers import TorchAoConfig

    linears = [name for name, module in quantized.named_modules() if isinstance(module, nn.Linear)]
    quantized.config.quantization_config = TorchAoConfig(
        quant_type=qat_base_config(quantize, activations, group_size),
        modules_to_not_convert=[name for name in linears if name not in names],
    )
    quantized.config.architectures = [type(quantized).__name__]

    outdir = Path(outdir)
    with staged_export(outdir, {"format": FORMAT, "quantize": quantize}) as staging:
        summary = _write(quantized, model, names, staging, tokenizer)
    return ExportSummary(outdir / WEIGHTS_FILE, *summary, format=f"hf-{quantize}")


def _quantize_copy_(model: nn.Module, quantize: str, activations: str | None, group_size: int) -> list[str]:
    """Quantize ``model`` (a copy) in place; return the names of its quantized Linear modules."""
    formats = fake_quantized_formats(model)
    expected = (quantize, activations, group_size if quantize == "int4" else DEFAULT_GROUP_SIZE)
    trained = set(formats.values())
    if formats and trained != {expected}:
        found = ", ".join(f"weights={w!r}, activations={a!r}, group_size={g}" for w, a, g in sorted(trained, key=str))
        raise ValueError(
            f"`{_OWNER}(quantize={quantize!r}, activations={activations!r})` is invalid for this model: it was trained "
            f"with fake quantization ({found}); expected the export to use the same formats. HINT: pass those."
        )
    if formats:
        qat_convert_(model)
    converted = torchao_quantized_linears(model)
    bits = {name: getattr(module.weight, "target_dtype", None) for name, module in converted.items()}
    other = {name: dtype for name, dtype in bits.items() if dtype != {"int8": torch.int8, "int4": torch.int4}[quantize]}
    if other:
        name, dtype = next(iter(other.items()))
        raise ValueError(
            f"`{_OWNER}(quantize={quantize!r})` is invalid for this model: `{name}` is already quantized to {dtype}; "
            "expected the export to use the model's own format. HINT: pass that format."
        )
    if converted:
        return list(converted)
    try:
        targets = resolve_targets(model)
    except ValueError as error:
        raise ValueError(
            f"`{_OWNER}(quantize={quantize!r})` found nothing to quantize in {type(model).__name__}: no nn.Linear "
            f"inside a transformer encoder ({error})"
        ) from None
    return ptq_quantize_(model, [name.removesuffix(".weight") for name in targets], quantize, activations, group_size)


def _write(
    quantized: nn.Module, original: nn.Module, names: list[str], outdir: Path, tokenizer: object | None
) -> tuple[int, int, int, int, int, int]:
    """Write the folder's files; return the sizes of :class:`~lightning_compress.export.ExportSummary`."""
    from torchao.prototype.safetensors.safetensors_support import flatten_tensor_state_dict

    state = {key: value.detach().contiguous() for key, value in quantized.state_dict().items()}
    tensors, metadata = flatten_tensor_state_dict(state)
    path = outdir / WEIGHTS_FILE
    save_file(tensors, str(path), metadata={**metadata, "format": "pt"})
    quantized.config.save_pretrained(outdir)
    if tokenizer is not None:
        tokenizer.save_pretrained(outdir)

    reference = outdir / "dense_reference.safetensors"
    save_file({key: _as_fp32(value) for key, value in original.state_dict().items()}, str(reference))
    dense_bytes = reference.stat().st_size
    reference.unlink()
    prefixes = tuple(f"{name}._weight_" for name in names)
    quantized_bytes = sum(t.numel() * t.element_size() for key, t in tensors.items() if key.startswith(prefixes))
    weights = dict(original.named_parameters())
    reference_bytes = sum(weights[f"{name}.weight"].numel() * 4 for name in names)
    return path.stat().st_size, dense_bytes, quantized_bytes, reference_bytes, quantized_bytes, reference_bytes


def _check_finite(model: nn.Module) -> None:
    """Raise a ``FloatingPointError`` naming the first tensor of ``model.state_dict()`` with NaN or infinite values
    (as :func:`~lightning_compress.export.check_finite_weights`); of a torchao tensor, the scales are checked (its
    integer codes are finite by construction)."""
    from torchao.utils import TorchAOBaseTensor

    for name, value in model.state_dict().items():
        tensor = getattr(value, "scale", None) if isinstance(value, TorchAOBaseTensor) else value
        if tensor is None or not tensor.is_floating_point() or bool(torch.isfinite(tensor).all()):
            continue
        raise FloatingPointError(
            f"`{_OWNER}` refuses a non-finite model: {name!r} holds {int((~torch.isfinite(tensor)).sum())} NaN or "
            f"infinite values of {tensor.numel()}. HINT: the training diverged; lower the learning rate, or use a "
            "checkpoint written before the divergence."
        )


def _as_fp32(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` as a plain fp32 CPU tensor (a torchao tensor dequantized), for the dense reference file."""
    tensor = tensor.detach().cpu()
    if hasattr(tensor, "dequantize") and hasattr(tensor, "qdata"):
        tensor = tensor.dequantize()
    return (tensor.float() if tensor.is_floating_point() else tensor).contiguous()
