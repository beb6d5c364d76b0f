"""Dense vs 2:4 semi-structured ``nn.Linear`` throughput (inference forward), on the device at hand.

For each shape (tokens x in -> out: the MiniLM-L6 and BERT-base encoder Linears at batch 32 x 64 tokens) it times

* ``dense``: the Linear with dense weights;
* ``2:4 masked dense``: the same Linear after 2:4 magnitude pruning, still a dense kernel (what a pruned model costs
  without sparse kernels: the same as dense);
* ``2:4 semi-structured``: the pruned weight converted with
  :func:`lightning_compress.pruning.to_semi_structured_` (``torch.sparse.to_sparse_semi_structured``), where the
  device supports it (CUDA, compute capability >= 8.0, fp16/bf16); elsewhere the reason is printed.

Ratios are dense time / other time (> 1 means faster than dense). Times are medians over ``--repeats``
timed blocks of ``--iters`` forwards each, after warm-up.

    python benchmarks/nm_speedup.py [--iters 20] [--repeats 5] [--tokens 2048]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch import nn

from lightning_compress.pruning import layerwise_masks, nm_eligible_scores, to_semi_structured_
from lightning_compress.pruning.nm import SemiStructuredUnsupportedError, semi_structured_support

SHAPES = [  # (in_features, out_features, model)
    (384, 1536, "MiniLM-L6 intermediate"),
    (1536, 384, "MiniLM-L6 output"),
    (768, 3072, "BERT-base intermediate"),
    (3072, 768, "BERT-base output"),
]


def prune_two_four_(linear: nn.Linear) -> None:
    with torch.no_grad():
        scores = {"w": nm_eligible_scores(linear.weight.abs(), 2, 4)}
        linear.weight.mul_(layerwise_masks(scores, 0.5)["w"].to(linear.weight.device))


def time_forward(module: nn.Module, x: torch.Tensor, iters: int, repeats: int) -> float:
    """Median seconds per forward."""
    synchronize = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    blocks = []
    with torch.inference_mode():
        for _ in range(3):
            module(x)
        for _ in range(repeats):
            synchronize()
            start = time.perf_counter()
            for _ in range(iters):
                module(x)
            synchronize()
            blocks.append((time.perf_counter() - start) / iters)
    return statistics.median(blocks)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"{torch.cuda.get_device_name(device)} (compute capability {major}.{minor})"
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=2048, help="rows of the input (batch x sequence length)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    print(f"device: {describe_device(device)}; dtype {dtype}; torch {torch.__version__}; input {args.tokens} tokens")
    header = (
        f"{'Linear (in -> out)':<36} {'dense ms':>9} {'2:4 masked dense ms':>20} {'dense/masked':>12} "
        f"{'2:4 semi-structured ms':>23} {'dense/2:4':>9}"
    )
    print(header)
    print("-" * len(header))
    reasons = set()
    for in_features, out_features, label in SHAPES:
        torch.manual_seed(0)
        linear = nn.Linear(in_features, out_features).to(device=device, dtype=dtype)
        x = torch.randn(args.tokens, in_features, device=device, dtype=dtype)
        dense = time_forward(linear, x, args.iters, args.repeats)
        prune_two_four_(linear)
        masked = time_forward(linear, x, args.iters, args.repeats)
        reason = semi_structured_support(linear.weight)
        sparse_text, ratio_text = "unsupported", "n/a"
        if reason is None:
            try:
                to_semi_structured_(nn.Sequential(linear))
                sparse = time_forward(linear, x, args.iters, args.repeats)
                sparse_text, ratio_text = f"{sparse * 1e3:.3f}", f"{dense / sparse:.2f}"
            except (SemiStructuredUnsupportedError, RuntimeError) as error:  # e.g. no cuSPARSELt/CUTLASS kernel
                reasons.add(str(error).splitlines()[0])
        else:
            reasons.add(reason)
        name = f"{label} ({in_features} -> {out_features})"
        print(
            f"{name:<36} {dense * 1e3:>9.3f} {masked * 1e3:>20.3f} {dense / masked:>12.2f} "
            f"{sparse_text:>23} {ratio_text:>9}"
        )
    print("dense/masked: 2:4 zeros in a dense kernel (about 1: zeros alone do not make a Linear faster).")
    for reason in sorted(reasons):
        print(f"2:4 semi-structured unsupported here: {reason}.")


if __name__ == "__main__":
    main()
