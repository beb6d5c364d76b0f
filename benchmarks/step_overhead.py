"""Step-time and peak-memory overhead of GradualMagnitudePruning on MiniLM-L6 (real BBC News batches, CPU).

Step time: the variants are interleaved in one process (round-robin over short fits, same batches), so machine
noise hits all of them alike; the printed ratio is median callback step / median plain step, where a step is the
time between consecutive ``on_train_batch_start`` calls (forward, backward, optimizer, every hook). The masks are
active for every measured step (one-shot pruning to 50 % at step 0); the pruning event itself is timed apart.

Peak memory: each variant runs in a fresh subprocess and reports its peak RSS (``VmHWM`` of ``/proc/self/status``;
``ru_maxrss`` would report the parent's peak, which a child inherits across fork and exec).

Variants: ``plain`` (no callback), ``gmp`` (this library: bool masks, in-place masked update after the step),
``torch_prune`` (``torch.nn.utils.prune``, what Lightning's ``ModelPruning`` uses: fp32 masks and a
``weight_orig * weight_mask`` product in every forward).

    python benchmarks/step_overhead.py [--steps 8] [--rounds 3] [--batch-size 16] [--max-seq-length 128]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch
from pytorch_lightning import Callback, Trainer, seed_everything
from torch.nn.utils import prune

from lightning_compress.callbacks import GradualMagnitudePruning
from lightning_compress.data import TextFolderDataModule
from lightning_compress.models import SequenceClassificationModule
from lightning_compress.targeting import resolve_targets

VARIANTS = ("plain", "gmp", "torch_prune")


class StepTimer(Callback):
    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, *args) -> None:
        self.starts.append(time.perf_counter())

    def on_train_end(self, *args) -> None:
        self.starts.append(time.perf_counter())

    def step_times(self, skip: int) -> list[float]:
        return [b - a for a, b in zip(self.starts, self.starts[1:])][skip:]


def build(variant: str, module: SequenceClassificationModule) -> list[Callback]:
    if variant == "gmp":
        return [GradualMagnitudePruning(final_sparsity=0.5, schedule="one_shot", start=0)]
    if variant == "torch_prune":
        modules = dict(module.named_modules())
        for name in resolve_targets(module):
            prune.l1_unstructured(modules[name.removesuffix(".weight")], "weight", amount=0.5)
    return []


def run(variant: str, datamodule: TextFolderDataModule, steps: int) -> list[float]:
    seed_everything(0)
    module = SequenceClassificationModule(task_spec=datamodule.task_spec, lr=5e-5)
    timer = StepTimer()
    trainer = Trainer(
        max_steps=steps + 2,
        callbacks=[timer, *build(variant, module)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        accelerator="cpu",
    )
    trainer.fit(module, datamodule)
    return timer.step_times(skip=2)  # drop the first step (warm-up) and the pruning event at step 0


def peak_rss_kib() -> int:
    """Peak resident set size of this process (Linux ``VmHWM``), in KiB."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0])


def peak_rss_mib(variant: str, args: argparse.Namespace) -> float:
    command = [
        sys.executable,
        __file__,
        "--child",
        variant,
        "--steps",
        str(args.steps),
        "--batch-size",
        str(args.batch_size),
        "--max-seq-length",
        str(args.max_seq_length),
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    return json.loads(output)["peak_rss_mib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    datamodule = TextFolderDataModule(max_seq_length=args.max_seq_length, batch_size=args.batch_size)
    if args.child:
        run(args.child, datamodule, args.steps)
        print(json.dumps({"peak_rss_mib": peak_rss_kib() / 1024}))
        return

    times: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            times[variant] += run(variant, datamodule, args.steps)
            gc.collect()  # free the previous fit's model and optimizer before the next one
    median = {variant: statistics.median(values) for variant, values in times.items()}
    memory = {variant: peak_rss_mib(variant, args) for variant in VARIANTS}
    print(
        f"\nMiniLM-L6, BBC News, batch {args.batch_size} x {args.max_seq_length} tokens, "
        f"{torch.get_num_threads()} CPU threads, {args.rounds} rounds x {args.steps} steps per variant, "
        "masks at 50 % sparsity"
    )
    print(f"{'variant':<12} {'median step (s)':>16} {'step ratio':>11} {'peak RSS (MiB)':>15} {'memory ratio':>13}")
    for variant in VARIANTS:
        print(
            f"{variant:<12} {median[variant]:>16.4f} {median[variant] / median['plain']:>11.3f} "
            f"{memory[variant]:>15.0f} {memory[variant] / memory['plain']:>13.3f}"
        )


if __name__ == "__main__":
    main()
