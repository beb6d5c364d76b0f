"""Compressed export of pruned models: sparse tensors stored as a bitmask plus packed non-zeros.

Layout of ``OUTDIR``:

* ``config.json`` (and tokenizer files, when a tokenizer is given) — a normal Hugging Face folder;
* ``model.compressed.safetensors`` — every tensor under its own key, in the cheaper of two encodings:
  dense (``<key>``), or sparse (``<key>::bitmask``: one bit per entry, ``<key>::values``: the non-zeros in
  row-major order). The file metadata records, per sparse key, its shape and dtype. The weights of quantized
  modules (:mod:`lightning_compress.quantization`) are bit-packed instead: 1 bit per binary weight, 2 per ternary
  weight, plus fp32 scales (:mod:`lightning_compress.quantization.packing`); the metadata records each module's kind.

:func:`load_compressed` rebuilds the model from ``config.json`` and fills it with the decoded tensors, so its
outputs equal those of the pruned model (exactly in fp32; within fp16 rounding with ``dtype="float16"``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import transformers
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from lightning_compress.bits import pack_bits, unpack_bits

COMPRESSED_FILE = "model.compressed.safetensors"
FORMAT = "lightning_compress.sparse/1"
_SEP = "::"


@dataclass(frozen=True)
class ExportSummary:
    """Measured sizes of an export, in bytes."""

    path: Path
    compressed_bytes: int
    dense_bytes: int
    prunable_compressed_bytes: int
    prunable_dense_bytes: int
    #: Bit-packed weights and scales of the quantized modules, and their fp32 size in the full-precision,
    #: full-width model built from the config (0 when nothing is quantized).
    quantized_bytes: int = 0
    quantized_reference_bytes: int = 0

    @property
    def ratio(self) -> float:
        """Compressed file size / dense fp32 safetensors file size."""
        return self.compressed_bytes / self.dense_bytes

    @property
    def prunable_ratio(self) -> float:
        """Stored bytes of the prunable (encoder Linear) tensors / their dense fp32 bytes."""
        return self.prunable_compressed_bytes / max(self.prunable_dense_bytes, 1)

    @property
    def compression(self) -> float:
        """Dense fp32 size / compressed file size (e.g. 25× for BinaryBERT)."""
        return self.dense_bytes / self.compressed_bytes

    @property
    def quantized_compression(self) -> float:
        """fp32 size of the quantized modules' weights / their packed size."""
        return self.quantized_reference_bytes / max(self.quantized_bytes, 1)

    def describe(self) -> str:
        """One line per size: whole model and quantized modules vs fp32, in MB (2^20 bytes)."""
        mb = 2**20
        lines = [
            f"whole model: {self.compressed_bytes / mb:.2f} MB vs {self.dense_bytes / mb:.2f} MB fp32 "
            f"({self.compression:.1f}x)"
        ]
        if self.quantized_bytes:
            lines.append(
                f"quantized modules: {self.quantized_bytes / mb:.2f} MB vs "
                f"{self.quantized_reference_bytes / mb:.2f} MB fp32 ({self.quantized_compression:.1f}x)"
            )
        return "\n".join(lines)


def encode_tensor(tensor: Tensor, dtype: torch.dtype | None = None) -> dict[str, Tensor]:
    """Encode one tensor densely or as bitmask + non-zeros, whichever takes fewer bytes.

    Returns:
        ``{"": dense}`` or ``{"bitmask": uint8, "values": 1-d}`` (keys are suffixes of the stored name).
    """
    tensor = tensor.detach().cpu()
    if tensor.is_floating_point() and dtype is not None:
        tensor = tensor.to(dtype)
    if not tensor.is_floating_point() or tensor.dim() < 2:
        return {"": tensor.contiguous()}
    nonzero = tensor != 0
    nnz = int(nonzero.sum())
    sparse_bytes = (tensor.numel() + 7) // 8 + nnz * tensor.element_size()
    if sparse_bytes >= tensor.numel() * tensor.element_size():
        return {"": tensor.contiguous()}
    return {"bitmask": pack_bits(nonzero), "values": tensor[nonzero].contiguous()}


def decode_tensor(bitmask: Tensor, values: Tensor, shape: list[int]) -> Tensor:
    """Inverse of the sparse branch of :func:`encode_tensor`."""
    numel = 1
    for size in shape:
        numel *= size
    dense = values.new_zeros(numel)
    dense[unpack_bits(bitmask, numel)] = values
    return dense.view(shape)


def save_compressed(
    model: nn.Module,
    outdir: str | os.PathLike,
    *,
    dtype: Literal["float32", "float16"] = "float32",
    tokenizer: object | None = None,
    prunable: list[str] | None = None,
) -> ExportSummary:
    """Write ``model`` (a Hugging Face ``PreTrainedModel``) to ``outdir`` with sparse tensors compressed.

    Args:
        model: The pruned Hugging Face model (e.g. ``pl_module.model``).
        outdir: Output folder (created).
        dtype: Storage dtype of floating-point tensors; ``"float16"`` halves the values.
        tokenizer: Saved alongside when given, so the folder is self-contained.
        prunable: Names (keys of ``model.state_dict()``) of the prunable set, for the size breakdown; default:
            every encoder Linear weight.

    Returns:
        The measured sizes, including those of a dense fp32 safetensors file written for comparison
        (``<outdir>/dense_reference.safetensors`` is removed afterwards). For a quantized model the dense
        reference is the full-precision model of the same config (full width, one matrix per split pair), and
        ``quantized_bytes`` / ``quantized_reference_bytes`` give the breakdown of the quantized modules.
    """
    from lightning_compress.quantization.packing import encode_quantized, quantized_size_bytes
    from lightning_compress.targeting import resolve_targets

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    if not hasattr(model, "config"):
        raise TypeError(
            f"save_compressed expects a Hugging Face PreTrainedModel (with `.config`), got {type(model).__name__}. "
            "HINT: pass the wrapped model, e.g. `pl_module.model`."
        )
    storage_dtype = {"float32": torch.float32, "float16": torch.float16}[dtype]
    state = model.state_dict()
    packed, quantized_specs, packed_keys = encode_quantized(model)
    if quantized_specs:
        prunable = set(prunable or [])
    else:
        prunable = set(resolve_targets(model) if prunable is None else prunable)
    tensors: dict[str, Tensor] = dict(packed)
    sparse_meta: dict[str, dict] = {}
    prunable_bytes = 0
    for key, value in state.items():
        if key in packed_keys:
            continue
        encoded = encode_tensor(value, storage_dtype)
        if "" in encoded:
            tensors[key] = encoded[""]
        else:
            tensors[key + _SEP + "bitmask"] = encoded["bitmask"]
            tensors[key + _SEP + "values"] = encoded["values"]
            sparse_meta[key] = {"shape": list(value.shape), "dtype": str(value.dtype).removeprefix("torch.")}
        if key in prunable:
            prunable_bytes += sum(t.numel() * t.element_size() for t in encoded.values())
    metadata = {"format": FORMAT, "sparse": json.dumps(sparse_meta), "dtype": dtype}
    if quantized_specs:
        metadata["quantized"] = json.dumps(quantized_specs)
    path = outdir / COMPRESSED_FILE
    save_file(tensors, str(path), metadata=metadata)
    model.config.architectures = [type(model).__name__]  # as PreTrainedModel.save_pretrained does
    model.config.save_pretrained(outdir)
    if tokenizer is not None:
        tokenizer.save_pretrained(outdir)

    prunable_dense = sum(state[key].numel() * 4 for key in prunable)
    if quantized_specs:
        with torch.device("meta"):
            reference_model = type(model)(model.config)
        reference_state = reference_model.state_dict()
        dense_bytes = sum(value.numel() * 4 for value in reference_state.values())
        quantized_reference = sum(reference_state[f"{name}.weight"].numel() * 4 for name in quantized_specs)
        return ExportSummary(
            path,
            path.stat().st_size,
            dense_bytes,
            prunable_bytes,
            prunable_dense,
            quantized_size_bytes(packed),
            quantized_reference,
        )
    reference = outdir / "dense_reference.safetensors"
    save_file({key: _as_fp32(value) for key, value in state.items()}, str(reference))
    dense_bytes = reference.stat().st_size
    reference.unlink()
    return ExportSummary(path, path.stat().st_size, dense_bytes, prunable_bytes, prunable_dense)


def _as_fp32(tensor: Tensor) -> Tensor:
    tensor = tensor.detach().cpu()
    return (tensor.float() if tensor.is_floating_point() else tensor).contiguous()


def load_compressed(path: str | os.PathLike, model_class: type | None = None) -> nn.Module:
    """Load a folder written by :func:`save_compressed` into a runnable model (eval mode, fp32).

    Args:
        path: The export folder.
        model_class: The ``transformers`` model class; default: the first entry of ``config.architectures``.
    """
    path = Path(path)
    file = path / COMPRESSED_FILE
    if not file.is_file():
        raise FileNotFoundError(f"No {COMPRESSED_FILE} in {path}; expected a folder written by `save_compressed`.")
    config = transformers.AutoConfig.from_pretrained(path)
    if model_class is None:
        architectures = config.architectures or []
        if not architectures:
            raise ValueError(f"{path}/config.json names no `architectures`; pass `model_class=`.")
        model_class = getattr(transformers, architectures[0])
    with safe_open(str(file), framework="pt") as handle:
        metadata = handle.metadata() or {}
        if metadata.get("format") != FORMAT:
            raise ValueError(f"{file} is not a lightning_compress export (format={metadata.get('format')!r}).")
        sparse_meta = json.loads(metadata["sparse"])
        state = {key: _as_fp32(handle.get_tensor(key)) for key in handle.keys() if _SEP not in key}
        for key, info in sparse_meta.items():
            bitmask = handle.get_tensor(key + _SEP + "bitmask")
            values = handle.get_tensor(key + _SEP + "values").float()
            state[key] = decode_tensor(bitmask, values, info["shape"])
        quantized_specs = json.loads(metadata.get("quantized", "{}"))
        if quantized_specs:
            from lightning_compress.quantization.packing import decode_quantized

            state.update(decode_quantized(quantized_specs, handle.get_tensor))
    model = model_class(config)
    if quantized_specs:
        from lightning_compress.quantization.packing import rebuild_quantized_
        from lightning_compress.quantization.width import resize_to_state_dict_

        if any(".encoder.layer" in key for key in state):
            resize_to_state_dict_(model, state)
        rebuild_quantized_(model, quantized_specs)
    model.load_state_dict(state, strict=True)
    return model.eval()
