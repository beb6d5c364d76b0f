"""Compressed export of pruned models: sparse tensors stored as a bitmask plus packed non-zeros.

Layout of ``OUTDIR``:

* ``config.json`` (and tokenizer files, when a tokenizer is given) — a normal Hugging Face folder;
* ``model.compressed.safetensors`` — every tensor under its own key, in the cheaper of two encodings:
  dense (``<key>``), or sparse (``<key>::bitmask``: one bit per entry, ``<key>::values``: the non-zeros in
  row-major order). The file metadata records, per sparse key, its shape and dtype. The weights of quantized
  modules (:mod:`lightning_compress.quantization`) are bit-packed instead: 1 bit per binary weight, 2 per ternary
  weight, plus fp32 scales (:mod:`lightning_compress.quantization.packing`); the metadata records each module's kind.

:func:`load_compressed` rebuilds the model from ``config.json`` and fills it with the decoded tensors, so its
outputs equal those of the pruned model (exactly in fp32; within fp16 rounding with ``dtype="float16"``). Every stored
tensor is checked against its declared shape and bitmask count before it is decoded, so a damaged file raises an error
naming the tensor instead of loading wrong weights.

An export replaces its folder whole: :func:`save_compressed` writes into a fresh sibling folder and swaps it in, so no
file of an earlier export is left beside the new ones and a failed export leaves the earlier one intact. A non-empty
folder that is not a previous export (no ``lightning_compress_export.json``) is only replaced with ``overwrite=True``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
import transformers
from safetensors.torch import save_file
from torch import Tensor, nn

from lightning_compress.bits import pack_bits, unpack_bits
from lightning_compress.checkpoints import open_safetensors
from lightning_compress.pruning.masks import plain_values
from lightning_compress.targeting import resolve_targets

COMPRESSED_FILE = "model.compressed.safetensors"
FORMAT = "lightning_compress.sparse/1"
HF_FORMAT = "hf"
#: Written into every export folder; marks it as one that a later export may replace whole.
MARKER_FILE = "lightning_compress_export.json"
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
    #: ``"compact"``, ``"hf"`` (plain transformers folder) or ``"hf-int8"`` / ``"hf-int4"`` (transformers + torchao).
    format: str = "compact"
    #: Bytes of parameters and buffers of the exported model once loaded, and of the dense fp32 model (0: not measured).
    memory_bytes: int = 0
    dense_memory_bytes: int = 0

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


def check_finite_weights(model: nn.Module, owner: str) -> None:
    """Raise a ``FloatingPointError`` naming the first floating-point tensor of ``model.state_dict()`` holding NaN or
    infinite values (``owner`` names the caller in the message)."""
    for name, value in model.state_dict().items():
        value = plain_values(value)
        if not value.is_floating_point():
            continue
        finite = torch.isfinite(value)
        if bool(finite.all()):
            continue
        nan = int(torch.isnan(value).sum())
        raise FloatingPointError(
            f"{owner} refuses a non-finite model: parameter {name!r} holds {nan} NaN and "
            f"{int((~finite).sum()) - nan} infinite values of {value.numel()}. HINT: the training diverged; lower the "
            "learning rate, or use a checkpoint written before the divergence."
        )


def check_export_dir(outdir: str | os.PathLike, overwrite: bool, hint: str = "`overwrite=True`") -> None:
    """Raise a ``ValueError`` unless ``outdir`` may receive an export: missing, empty, a previous export (it holds
    :data:`MARKER_FILE`, or a ``model.compressed.safetensors`` of this format) or ``overwrite``. Never the current
    folder or one containing it. ``hint`` names the caller's overwrite switch."""
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise ValueError(f"`save_compressed(outdir={str(outdir)!r})` is invalid: it is a file; expected a folder.")
    if not outdir.is_dir() or not any(outdir.iterdir()):
        return
    if Path.cwd().resolve().is_relative_to(outdir.resolve()):
        raise ValueError(
            f"`save_compressed(outdir={str(outdir)!r})` is invalid: an export replaces its folder whole, and this "
            "one holds the current folder; expected a new or empty folder."
        )
    if overwrite or is_export_dir(outdir):
        return
    names = sorted(entry.name for entry in outdir.iterdir())
    raise ValueError(
        f"`save_compressed(outdir={str(outdir)!r})` is invalid: the folder is not empty ({names[:3]}"
        f"{' ...' if len(names) > 3 else ''}) and is not an export of lightning_compress; expected a new or empty "
        f"folder or a previous export. HINT: pass {hint} to replace the folder and everything in it, or choose "
        "another folder."
    )


def is_export_dir(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds an export written by this library (which a new export may replace whole)."""
    folder = Path(folder)
    if (folder / MARKER_FILE).is_file():
        return True
    file = folder / COMPRESSED_FILE
    if not file.is_file():
        return False
    try:
        with open_safetensors(file) as handle:
            return (handle.metadata() or {}).get("format") == FORMAT
    except ValueError:
        return False


@contextmanager
def staged_export(outdir: Path, marker: dict[str, Any]) -> Iterator[Path]:
    """A new hidden folder beside ``outdir`` to write an export into; when the ``with`` block succeeds, it gets the
    :data:`MARKER_FILE` (``marker`` as JSON) and replaces ``outdir`` whole, else it is deleted and ``outdir`` is left
    as it was."""
    outdir.parent.mkdir(parents=True, exist_ok=True)
    staging = outdir.parent / f".{outdir.name}.partial-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        yield staging
        (staging / MARKER_FILE).write_text(json.dumps(marker) + "\n")
        if outdir.exists():
            shutil.rmtree(outdir)
        staging.rename(outdir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def save_compressed(
    model: nn.Module,
    outdir: str | os.PathLike,
    *,
    format: Literal["compact", "hf"] | None = None,
    slim: bool = False,
    quantize: Literal["int8", "int4"] | None = None,
    dtype: Literal["float32", "float16", "bfloat16"] = "float32",
    tokenizer: object | None = None,
    prunable: list[str] | None = None,
    overwrite: bool = False,
) -> ExportSummary:
    """Write ``model`` (a Hugging Face ``PreTrainedModel``) to ``outdir``, compact or as a plain transformers folder.

    ``format="compact"`` (default) stores sparse tensors as bitmask + non-zeros and quantized modules bit-packed;
    :func:`load_compressed` reads it back. ``format="hf"`` writes an ordinary Hugging Face folder
    (:mod:`lightning_compress.hf_folder`) that ``AutoModelFor<Task>.from_pretrained`` opens without this library;
    with ``slim=True`` the feed-forward neurons removed by structured pruning are sliced away, so the matrices, the
    file and the loaded model are smaller. ``quantize="int8"|"int4"`` writes the Linear layers of the encoder as
    torchao int8/int4 tensors in a Hugging Face folder that ``transformers`` + ``torchao`` open
    (:func:`~lightning_compress.quantization.save_quantized_hf`; models trained with
    :class:`~lightning_compress.callbacks.QuantizationAwareTraining` keep their learned formats, others are quantized
    post-training); it composes with ``slim``. The folder is replaced whole (see the module docstring): it must be
    missing, empty or a previous export, unless ``overwrite``.

    Args:
        model: The pruned Hugging Face model (e.g. ``pl_module.model``); every floating-point tensor must be finite.
        outdir: Output folder (created, or replaced whole).
        format: ``"compact"`` (this library's sparse/bit-packed files) or ``"hf"`` (portable transformers folder);
            ``None``: ``"hf"`` when ``slim`` or ``quantize`` is given, else ``"compact"``.
        slim: With ``format="hf"``: physically remove all-zero feed-forward neurons (structured pruning).
        quantize: ``"int8"`` or ``"int4"`` Linear weights (``format="hf"``), or ``None``.
        dtype: Storage dtype of floating-point tensors; ``"float16"`` halves the values (``"bfloat16"``: ``hf`` only).
        tokenizer: Saved alongside when given, so the folder is self-contained.
        prunable: Names (keys of ``model.state_dict()``) of the prunable set, for the size breakdown; default:
            every encoder Linear weight.
        overwrite: Replace ``outdir`` even when it is a non-empty folder that is not an export (everything in it is
            deleted).

    Returns:
        The measured sizes, including those of a dense fp32 safetensors file written for comparison
        (``<outdir>/dense_reference.safetensors`` is removed afterwards). For a quantized model the dense
        reference is the full-precision model of the same config (full width, one matrix per split pair), and
        ``quantized_bytes`` / ``quantized_reference_bytes`` give the breakdown of the quantized modules.

    Raises:
        FloatingPointError: A tensor of ``model`` holds NaN or infinite values (nothing is written).
        ValueError: ``outdir`` is a non-empty folder that is not an export, and ``overwrite`` is ``False``.
    """
    outdir = Path(outdir)
    if not hasattr(model, "config"):
        raise TypeError(
            f"save_compressed expects a Hugging Face PreTrainedModel (with `.config`), got {type(model).__name__}. "
            "HINT: pass the wrapped model, e.g. `pl_module.model`."
        )
    if format is None:
        format = "hf" if slim or quantize is not None else "compact"
    _check_format_arguments(format, slim, dtype, quantize)
    check_finite_weights(model, "`save_compressed`")
    check_export_dir(outdir, overwrite)
    if format == "hf":
        from lightning_compress.hf_folder import slim_copy

        exported = slim_copy(model) if slim else model  # errors (layout, unstructured sparsity) before any write
        if quantize is not None:
            from lightning_compress.quantization.hf_export import save_quantized_hf

            return save_quantized_hf(exported, outdir, quantize, tokenizer, overwrite=overwrite)
    with staged_export(outdir, {"format": FORMAT if format == "compact" else HF_FORMAT}) as staging:
        if format == "hf":
            summary = _write_hf(model, exported, staging, dtype, tokenizer)
        else:
            summary = _write_compressed(model, staging, dtype, tokenizer, prunable)
    return replace(summary, path=outdir / summary.path.name)


def _check_format_arguments(format: str, slim: bool, dtype: str, quantize: str | None) -> None:
    if format not in ("compact", "hf"):
        raise ValueError(f"`save_compressed(format={format!r})` is invalid: expected one of ['compact', 'hf'].")
    if quantize not in (None, "int8", "int4"):
        raise ValueError(
            f"`save_compressed(quantize={quantize!r})` is invalid: expected one of ['int8', 'int4', None]."
        )
    if quantize is not None and (format != "hf" or dtype != "float32"):
        raise ValueError(
            f"`save_compressed(quantize={quantize!r})` is invalid with format={format!r}, dtype={dtype!r}: quantized "
            "exports are Hugging Face folders of int8/int4 weights. HINT: leave format and dtype at their defaults."
        )
    if not isinstance(slim, bool):
        raise TypeError(f"`save_compressed(slim={slim!r})` is invalid: expected a bool.")
    allowed = ["float32", "float16", "bfloat16"] if format == "hf" else ["float32", "float16"]
    if dtype not in allowed:
        raise ValueError(
            f"`save_compressed(dtype={dtype!r})` is invalid with format={format!r}: expected one of {allowed}."
        )
    if slim and format != "hf":
        raise ValueError(
            "`save_compressed(slim=True)` is invalid with format='compact': slim writes a smaller plain transformers "
            "folder. HINT: pass format='hf' with slim=True."
        )


def _write_hf(
    model: nn.Module, exported: nn.Module, folder: Path, dtype: str, tokenizer: object | None
) -> ExportSummary:
    """Write ``exported`` (``model`` or its slim copy) as a Hugging Face folder and check it reproduces ``model``."""
    from lightning_compress.hf_folder import HF_WEIGHTS, module_bytes, verify_hf_folder, write_hf_folder

    write_hf_folder(exported, folder, dtype, tokenizer)
    loaded_bytes = verify_hf_folder(folder, model, dtype)
    path = folder / HF_WEIGHTS
    state = model.state_dict()
    prunable = set(resolve_targets(model))
    dense_bytes = sum(value.numel() * 4 for value in state.values())
    prunable_dense = sum(state[key].numel() * 4 for key in prunable)
    element = torch.empty((), dtype=getattr(torch, dtype)).element_size()
    exported_state = exported.state_dict()
    prunable_bytes = sum(value.numel() * element for key, value in exported_state.items() if key in prunable)
    return ExportSummary(
        path,
        path.stat().st_size,
        dense_bytes,
        prunable_bytes,
        prunable_dense,
        format="hf",
        memory_bytes=loaded_bytes,
        dense_memory_bytes=module_bytes(model),
    )


def _write_compressed(
    model: nn.Module, outdir: Path, dtype: str, tokenizer: object | None, prunable: list[str] | None
) -> ExportSummary:
    """Write the export files of ``model`` into the existing, empty folder ``outdir``."""
    from lightning_compress.quantization.packing import encode_quantized, quantized_size_bytes

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


def load_compressed(path: str | os.PathLike, model_class: type | None = None, freeze: bool = True) -> nn.Module:
    """Load a folder written by :func:`save_compressed` into a runnable model (eval mode, fp32).

    The ternary/binary modules of a TWS/BWN export come back frozen (``freeze=True``): their weights are the stored
    quantized values, computed once (:func:`~lightning_compress.quantization.modules.freeze_quantized_`), so they run
    as fast as dense Linears and hold no latent fp32 weights; ``freeze=False`` gives trainable quantized modules.

    The tensor file is read with ``safetensors`` (no code runs from it), and every stored tensor is checked before it
    is decoded: a sparse tensor's bitmask must cover its declared shape and its values must number the set bits; a
    bit-packed tensor's parts must have the sizes of its declared shape.

    Args:
        path: The export folder.
        model_class: The ``transformers`` model class; default: the first entry of ``config.architectures``.

    Raises:
        FileNotFoundError: ``path`` holds no ``model.compressed.safetensors``.
        ValueError: The file is empty, truncated or not an export, or a tensor does not match its declared shape.
    """
    path = Path(path)
    file = path / COMPRESSED_FILE
    source = f"`load_compressed({str(path)!r})`"
    if not file.is_file():
        raise FileNotFoundError(f"No {COMPRESSED_FILE} in {path}; expected a folder written by `save_compressed`.")
    config = transformers.AutoConfig.from_pretrained(path)
    if model_class is None:
        architectures = config.architectures or []
        if not architectures:
            raise ValueError(f"{path}/config.json names no `architectures`; pass `model_class=`.")
        model_class = getattr(transformers, architectures[0])
    with open_safetensors(file, source) as handle:
        metadata = handle.metadata() or {}
        if metadata.get("format") != FORMAT:
            raise ValueError(f"{file} is not a lightning_compress export (format={metadata.get('format')!r}).")
        stored = set(handle.keys())

        def get_tensor(key: str) -> Tensor:
            if key not in stored:
                raise ValueError(f"{source} is invalid: {file} lacks the tensor {key!r}; the file is damaged.")
            return handle.get_tensor(key)

        sparse_meta = json.loads(metadata["sparse"])
        state = {key: _as_fp32(handle.get_tensor(key)) for key in stored if _SEP not in key}
        for key, info in sparse_meta.items():
            bitmask = get_tensor(key + _SEP + "bitmask")
            values = get_tensor(key + _SEP + "values")
            _check_sparse(key, bitmask, values, info.get("shape"), file)
            state[key] = decode_tensor(bitmask, values.float(), info["shape"])
        quantized_specs = json.loads(metadata.get("quantized", "{}"))
        if quantized_specs:
            from lightning_compress.quantization.packing import decode_quantized

            state.update(decode_quantized(quantized_specs, _checked_parts(quantized_specs, get_tensor, file)))
    model = model_class(config)
    if quantized_specs:
        from lightning_compress.quantization.packing import rebuild_quantized_
        from lightning_compress.quantization.width import resize_to_state_dict_

        if any(".encoder.layer" in key for key in state):
            resize_to_state_dict_(model, state)
        rebuild_quantized_(model, quantized_specs)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(
            f"{source} is invalid: the tensors of {file} do not fit the model that {path / 'config.json'} describes "
            f"({error})."
        ) from None
    if quantized_specs and freeze:
        from lightning_compress.quantization.modules import freeze_quantized_

        freeze_quantized_(model)
    return model.eval()


def _check_sparse(key: str, bitmask: Tensor, values: Tensor, shape: object, file: Path) -> None:
    """Raise a ``ValueError`` naming ``key`` and ``file`` unless ``bitmask`` covers ``shape`` and ``values`` holds one
    entry per set bit."""
    if not isinstance(shape, list) or not all(isinstance(size, int) and size >= 0 for size in shape):
        raise ValueError(f"{file}: tensor {key!r} declares the shape {shape!r}; expected a list of sizes >= 0.")
    numel = math.prod(shape)
    if bitmask.dtype != torch.uint8 or bitmask.dim() != 1 or bitmask.numel() != (numel + 7) // 8:
        raise ValueError(
            f"{file}: the bitmask of tensor {key!r} has {bitmask.numel()} {bitmask.dtype} entries; its declared "
            f"shape {shape} needs {(numel + 7) // 8} uint8 bytes. The file is damaged."
        )
    count = int(unpack_bits(bitmask, numel).sum())
    if values.dim() != 1 or values.numel() != count:
        raise ValueError(
            f"{file}: tensor {key!r} stores {values.numel()} values (shape {tuple(values.shape)}) but its bitmask "
            f"marks {count} non-zeros; the file is damaged."
        )


def _checked_parts(specs: dict[str, dict], get_tensor, file: Path):
    """``get_tensor`` that checks each bit-packed part against the shape declared for its module."""
    sizes = {}
    for name, spec in specs.items():
        shape = spec.get("shape")
        if not isinstance(shape, list) or not all(isinstance(size, int) and size >= 0 for size in shape):
            raise ValueError(f"{file}: quantized module {name!r} declares the shape {shape!r}; expected sizes >= 0.")
        bits = (math.prod(shape) + 7) // 8
        scales = shape[0] if spec.get("module") == "embedding" else 1
        for attribute in ("weight", "weight1", "weight2"):
            key = f"{name}.{attribute}{_SEP}"
            sizes.update({key + "sign": bits, key + "nonzero": bits, key + "scale": scales})

    def get(key: str) -> Tensor:
        tensor = get_tensor(key)
        expected = sizes.get(key)
        if expected is not None and tensor.numel() != expected:
            raise ValueError(
                f"{file}: tensor {key!r} has {tensor.numel()} entries but the declared shape of its module needs "
                f"{expected}; the file is damaged."
            )
        return tensor

    return get
