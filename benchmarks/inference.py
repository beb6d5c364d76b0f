"""CPU inference of exported models, loaded the way a user loads them: plain ``transformers`` (+ torch/torchao).

Builds each variant of MiniLM-L6 for sequence classification (2 labels), exports it, loads every export back in this
process with ``AutoModelForSequenceClassification.from_pretrained`` and times the variants interleaved (round-robin,
so machine load hits all of them alike). Printed per variant, as ratios against dense fp32:

* median latency at batch 1 x 128 and 32 x 128 tokens (``--threads`` intra-op threads, default 2);
* peak RSS of a fresh process that loads the model and runs one 32 x 128 batch;
* weight bytes in memory (parameters and buffers of the loaded model) and the size of the weight files.

Variants (weights are pruned with the library's core functions; accuracy is measured by the training runs in
``docs/results.md``, speed does not depend on the values):

* ``dense fp32``: the pretrained model, ``format="hf"``;
* ``90% unstructured (hf)``: every encoder Linear magnitude-pruned to 90 %, ``format="hf"`` (dense matrices with zeros);
* ``ffn 50% slim``: half of every feed-forward block's neurons removed (magnitude), ``format="hf", slim=True``;
* ``ffn 50% + layers 1/3 slim``: the same, then 2 of the 6 layers removed (magnitude);
With ``--quantized`` it adds what a user does without this library (``torch.ao.quantization.quantize_dynamic`` of
the dense model at load time: int8 Linear, fbgemm kernels), printed a second time as the reference, and the library's
quantized outputs (``docs/quantization.md``): the portable int8 folder (``save_compressed(quantize="int8")``) as
transformers + torchao load it, the same folder after the one-line fast path ``to_fast_int8_``, FFN 50 % slim + int8
and FFN 50 % + layers 1/3 slim + int8 through the fast path (each also with ``embeddings=True``: int8 word
embeddings), and a ternary-weight-split binary model loaded frozen by ``load_compressed``.

    python benchmarks/inference.py [--repeats 7] [--threads 2] [--quantized] [--out FOLDER]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification

from lightning_compress.export import save_compressed
from lightning_compress.hub import resolve_pretrained
from lightning_compress.pruning import layerwise_masks
from lightning_compress.pruning.masks import apply_masks_
from lightning_compress.pruning.structured import (
    encoder_blocks,
    layer_magnitude_scores,
    mask_neurons_,
    neuron_magnitude_scores,
    select_units,
    slice_layers_,
    units_to_remove,
)
from lightning_compress.targeting import resolve_targets

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
SEQUENCE = 128

#: Code run in a fresh process to measure peak RSS: load as a user would, one 32 x 128 batch.
RSS_SCRIPT = textwrap.dedent(
    """
    import re, sys, torch, transformers
    folder, convert, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(threads)
    if convert == "compressed":  # this library's compact format (bit-packed ternary/binary weights)
        from lightning_compress.export import load_compressed
        model = load_compressed(folder).eval()
    else:
        model = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    if convert == "dynamic_int8":
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    if convert.startswith("fast_int8"):
        from lightning_compress.quantization import to_fast_int8_
        to_fast_int8_(model, embeddings=convert == "fast_int8_embeddings")
    with torch.inference_mode():
        model(input_ids=torch.randint(1000, 3000, (32, 128)))
    status = open("/proc/self/status").read()  # VmHWM: this process's peak RSS (ru_maxrss survives exec)
    print(int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) * 1024)
    """
)


@dataclass
class Variant:
    name: str
    folder: Path
    #: how it is loaded: "none" (from_pretrained), "dynamic_int8" (then torch's quantize_dynamic, the peer),
    #: "fast_int8" (then to_fast_int8_), "fast_int8_embeddings" (to_fast_int8_ with int8 word embeddings),
    #: "compressed" (load_compressed)
    convert: str = "none"
    model: torch.nn.Module | None = None


def base_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(resolve_pretrained(MODEL), num_labels=2).eval()


@torch.no_grad()
def unstructured_(model: torch.nn.Module, sparsity: float) -> torch.nn.Module:
    parameters = dict(model.named_parameters())
    names = resolve_targets(model)
    masks = layerwise_masks({name: parameters[name].abs() for name in names}, sparsity)
    apply_masks_({name: parameters[name] for name in names}, masks)
    return model


@torch.no_grad()
def ffn_neurons_(model: torch.nn.Module, sparsity: float) -> torch.nn.Module:
    blocks = encoder_blocks(model)
    for block in blocks:
        up, down = block.intermediate.dense, block.output.dense
        scores = neuron_magnitude_scores(up.weight, up.bias, down.weight)
        keep = select_units(scores, units_to_remove(sparsity, scores.numel()))
        mask_neurons_(up.weight, up.bias, down.weight, keep)
    return model


@torch.no_grad()
def drop_layers_(model: torch.nn.Module, fraction: float) -> torch.nn.Module:
    blocks = encoder_blocks(model)
    weights = [[m.weight for m in block.modules() if isinstance(m, torch.nn.Linear)] for block in blocks]
    keep = select_units(layer_magnitude_scores(weights), units_to_remove(fraction, len(blocks)))
    return slice_layers_(model, keep.nonzero().flatten().tolist())


def build_variants(root: Path, quantized: bool) -> list[Variant]:
    dense = base_model()
    builders: list[tuple[str, Callable[[], torch.nn.Module], bool]] = [
        ("dense fp32", lambda: dense, False),
        ("90% unstructured (hf)", lambda: unstructured_(copy.deepcopy(dense), 0.9), False),
        ("ffn 50% slim", lambda: ffn_neurons_(copy.deepcopy(dense), 0.5), True),
        ("ffn 50% + layers 1/3 slim", lambda: drop_layers_(ffn_neurons_(copy.deepcopy(dense), 0.5), 1 / 3), True),
    ]
    variants = []
    for index, (name, build, slim) in enumerate(builders):
        folder = root / f"v{index}"
        save_compressed(build(), folder, format="hf", slim=slim, overwrite=True)
        variants.append(Variant(name, folder))
    if quantized:
        variants += quantized_variants(root, dense, variants)
    return variants


def quantized_variants(root: Path, dense: torch.nn.Module, built: list[Variant]) -> list[Variant]:
    """The peer (dynamic int8 of the dense model at load time) and the library's int8 and ternary variants."""
    from lightning_compress.quantization import half_width_, quantize_model_, split_model_

    by_name = {variant.name: variant for variant in built}
    save_compressed(dense, root / "int8", quantize="int8", overwrite=True)
    ffn = ffn_neurons_(copy.deepcopy(dense), 0.5)
    save_compressed(ffn, root / "ffn_int8", slim=True, quantize="int8", overwrite=True)
    slim = drop_layers_(ffn, 1 / 3)
    save_compressed(slim, root / "slim_int8", slim=True, quantize="int8", overwrite=True)
    tws = copy.deepcopy(dense)
    half_width_(tws)
    quantize_model_(tws, "ternary", act_bits=8)
    split_model_(tws)
    save_compressed(tws, root / "tws", overwrite=True)
    return [
        Variant("peer: dynamic int8 of dense", by_name["dense fp32"].folder, "dynamic_int8"),
        Variant("int8 folder (transformers+torchao)", root / "int8"),
        Variant("int8 folder + to_fast_int8_", root / "int8", "fast_int8"),
        Variant("ffn 50% + int8 (fast)", root / "ffn_int8", "fast_int8"),
        Variant("ffn 50% + int8 (fast, int8 embeddings)", root / "ffn_int8", "fast_int8_embeddings"),
        Variant("ffn 50% + layers 1/3 + int8 (fast)", root / "slim_int8", "fast_int8"),
        Variant("ffn 50% + layers 1/3 + int8 (fast, int8 emb.)", root / "slim_int8", "fast_int8_embeddings"),
        Variant("TWS binary, frozen (load_compressed)", root / "tws", "compressed"),
    ]


def load(variant: Variant) -> torch.nn.Module:
    if variant.convert == "compressed":
        from lightning_compress.export import load_compressed

        return load_compressed(variant.folder).eval()
    model = AutoModelForSequenceClassification.from_pretrained(variant.folder).eval()
    if variant.convert == "dynamic_int8":
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    if variant.convert.startswith("fast_int8"):
        from lightning_compress.quantization import to_fast_int8_

        to_fast_int8_(model, embeddings=variant.convert == "fast_int8_embeddings")
    return model


def weight_bytes(model: torch.nn.Module) -> int:
    """Parameters and buffers (torchao tensors by their parts), plus the int8 weights, scales and biases of
    dynamically quantized Linear modules and the int8 rows, scales and zero points of quantized embeddings."""
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    total = sum(tensor_bytes(t.data if isinstance(t, torch.nn.Parameter) else t) for t in tensors.values())
    for module in model.modules():
        if isinstance(module, torch.ao.nn.quantized.dynamic.Linear):
            weight, bias = module.weight(), module.bias()
            per_channel = weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric)
            scales = weight.q_per_channel_scales().numel() if per_channel else 1
            total += weight.numel() + 16 * scales + (0 if bias is None else bias.numel() * bias.element_size())
        if isinstance(module, torch.ao.nn.quantized.Embedding):
            table = module.weight()
            total += table.numel() + 8 * table.shape[0]  # one byte a weight, a float scale and zero point a row
    return total


def file_bytes(variant: Variant) -> int:
    return sum(path.stat().st_size for path in variant.folder.glob("*.safetensors"))


def tensor_bytes(tensor: torch.Tensor) -> int:
    """Bytes a tensor holds, including torchao tensor subclasses (their inner int8 data, scales, zero points)."""
    inner = getattr(tensor, "__tensor_flatten__", None)
    if inner is not None and type(tensor) is not torch.nn.Parameter and type(tensor) is not torch.Tensor:
        names, _ = inner()
        return sum(tensor_bytes(getattr(tensor, name)) for name in names)
    return tensor.numel() * tensor.element_size()


def peak_rss(variant: Variant, threads: int) -> int:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(RSS_SCRIPT)
    result = subprocess.run(
        [sys.executable, handle.name, str(variant.folder), variant.convert, str(threads)],
        capture_output=True,
        text=True,
        check=True,
    )
    Path(handle.name).unlink()
    return int(result.stdout.strip().splitlines()[-1])


@torch.inference_mode()
def time_interleaved(variants: list[Variant], batch: int, repeats: int) -> dict[str, float]:
    inputs = torch.randint(1000, 3000, (batch, SEQUENCE), generator=torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {variant.name: [] for variant in variants}
    for variant in variants:  # warm-up
        variant.model(input_ids=inputs)
    for _ in range(repeats):
        for variant in variants:
            start = time.perf_counter()
            variant.model(input_ids=inputs)
            times[variant.name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quantized", action="store_true", help="add the int8 peer and the int8 variants")
    parser.add_argument("--out", type=Path, default=None, help="keep the exported folders here")
    parser.add_argument("--json", type=Path, default=None, help="also write the measured numbers as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = args.out or Path(tempfile.mkdtemp(prefix="lc_inference_"))
    variants = build_variants(root, args.quantized)
    for variant in variants:
        variant.model = load(variant)
    latency = {batch: time_interleaved(variants, batch, args.repeats) for batch in (1, 32)}
    rows = []
    for variant in variants:
        rows.append(
            {
                "variant": variant.name,
                "latency_1x128_s": latency[1][variant.name],
                "latency_32x128_s": latency[32][variant.name],
                "peak_rss_bytes": peak_rss(variant, args.threads),
                "weight_bytes": weight_bytes(variant.model),
                "file_bytes": file_bytes(variant),
            }
        )
    print_table(rows, "dense fp32")
    if args.quantized:
        print_table(rows, "peer: dynamic int8 of dense")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


def print_table(rows: list[dict], reference: str) -> None:
    ref = next(row for row in rows if row["variant"] == reference)
    print(f"\nratios against {reference} (speed: reference time / variant time; sizes: variant / reference)")
    header = f"{'variant':34s} {'1x128 ms':>9s} {'speed':>6s} {'32x128 ms':>10s} {'speed':>6s} {'peak RSS':>9s}"
    print(header + f" {'weights':>8s} {'file':>7s}")
    for row in rows:
        print(
            f"{row['variant']:34s} {row['latency_1x128_s'] * 1e3:9.1f} "
            f"{ref['latency_1x128_s'] / row['latency_1x128_s']:5.2f}x {row['latency_32x128_s'] * 1e3:10.1f} "
            f"{ref['latency_32x128_s'] / row['latency_32x128_s']:5.2f}x "
            f"{row['peak_rss_bytes'] / ref['peak_rss_bytes']:8.3f}x {row['weight_bytes'] / ref['weight_bytes']:7.3f}x "
            f"{row['file_bytes'] / ref['file_bytes']:6.3f}x"
        )


if __name__ == "__main__":
    main()
