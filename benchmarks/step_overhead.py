"""Step-time and peak-memory overhead of every callback on MiniLM-L6 (real BBC News batches, CPU).

Step time: the variants are interleaved in one process (round-robin over short fits, same batches, the order
rotated every round), so machine noise hits all of them alike; the printed ratio is median callback step / median
plain step, where a step is the time between consecutive ``on_train_batch_start`` calls (forward, backward,
optimizer, every hook). The first ``warmup`` steps of every fit are left out (allocation, one-shot pruning events,
filling caches). Every variant keeps the model's dropout, so a ratio is the cost of the callback alone.

Peak memory: each variant runs in a fresh subprocess and reports its peak RSS (``VmHWM`` of ``/proc/self/status``;
``ru_maxrss`` would report the parent's peak, which a child inherits across fork and exec).

Variants (``VARIANTS`` below): ``plain`` (no callback); ``gmp`` (GradualMagnitudePruning, bool masks at 50 %, an
in-place masked update after each step); ``torch_prune`` (``torch.nn.utils.prune``, what Lightning's
``ModelPruning`` uses: fp32 masks and a ``weight_orig * weight_mask`` product in every forward); ``graddrop``
(GradDrop p = 0.2, a fresh mask over the encoder gradients every step), ``graddrop_update`` (the same, dropped
entries frozen exactly under AdamW), ``layer_graddrop`` and ``graddrop_epoch``; the loss-term callbacks, stacked on
``gmp``: ``sdp_live`` (SelfDistilledPruning SDP-CC, teacher run every step), ``sdp_cached`` (the same with the teacher
outputs cached per example: its first epoch fills the cache and is left out, so it is timed with a full cache and the
teacher freed) and ``align_reg`` (AlignReg, unit cosine); ``qat`` (TernaryWeightSplitting as plain
quantization-aware training: ternary weights, 8-bit activations, no distillation, no split). Targets:
``sdp_live`` <= 1.6x, ``sdp_cached`` <= 1.10x, ``qat`` <= 1.5x, peak memory <= 1.3x of ``plain``. Every fit
trains on the same ``steps x batch-size`` examples.

    python benchmarks/step_overhead.py [--variants gmp graddrop ...] [--steps 8] [--rounds 3] [--batch-size 16]
                                       [--max-seq-length 128] [--threads N] [--no-memory]
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
from collections.abc import Callable
from pathlib import Path

import torch
from pytorch_lightning import Callback, LightningModule, Trainer, seed_everything
from torch.nn.utils import prune

from lightning_compress.callbacks import (
    AlignReg,
    GradientDropout,
    GradualMagnitudePruning,
    SelfDistilledPruning,
    TernaryWeightSplitting,
)
from lightning_compress.data import TextFolderDataModule
from lightning_compress.models import SequenceClassificationModule
from lightning_compress.targeting import resolve_targets


def torch_prune(module: LightningModule) -> list[Callback]:
    modules = dict(module.named_modules())
    for name in resolve_targets(module):
        prune.l1_unstructured(modules[name.removesuffix(".weight")], "weight", amount=0.5)
    return []


def gmp_and(*callbacks: Callback) -> list[Callback]:
    return [GradualMagnitudePruning(final_sparsity=0.5, schedule="one_shot", start=0), *callbacks]


# name -> (callbacks for a fresh module, steps left out at the start of each fit; None: the first epoch and one step)
VARIANTS: dict[str, tuple[Callable[[LightningModule], list[Callback]], int | None]] = {
    "plain": (lambda module: [], 1),
    "gmp": (lambda module: [GradualMagnitudePruning(final_sparsity=0.5, schedule="one_shot", start=0)], 2),
    "torch_prune": (torch_prune, 1),
    "graddrop": (lambda module: [GradientDropout(p=0.2, model_dropout=None)], 1),
    "graddrop_update": (lambda module: [GradientDropout(p=0.2, mask_mode="update", model_dropout=None)], 1),
    "layer_graddrop": (lambda module: [GradientDropout(p=0.2, mode="layer", model_dropout=None)], 1),
    "graddrop_epoch": (lambda module: [GradientDropout(mode="epoch", num_epochs=3, model_dropout=None)], 1),
    "sdp_live": (lambda module: gmp_and(SelfDistilledPruning(feature_loss="cc", teacher_cache=False)), 2),
    "sdp_cached": (lambda module: gmp_and(SelfDistilledPruning(feature_loss="cc", teacher_cache=True)), None),
    "align_reg": (lambda module: gmp_and(AlignReg(kind="cosine_unit")), 2),
    "qat": (lambda module: [TernaryWeightSplitting(split_at=None, distill="none", act_bits=8, width=1.0)], 1),
}


class StepTimer(Callback):
    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, *args) -> None:
        self.starts.append(time.perf_counter())

    def on_train_end(self, *args) -> None:
        self.starts.append(time.perf_counter())

    def step_times(self, skip: int) -> list[float]:
        return [b - a for a, b in zip(self.starts, self.starts[1:])][skip:]


def run(variant: str, datamodule: TextFolderDataModule, steps: int) -> list[float]:
    """Step times of one short fit, the warm-up steps left out."""
    seed_everything(0)
    module = SequenceClassificationModule(task_spec=datamodule.task_spec, lr=5e-5)
    build, warmup = VARIANTS[variant]
    if warmup is None:  # one epoch = `steps` batches (see `main`), then one more step
        warmup = steps + 1
    timer = StepTimer()
    trainer = Trainer(
        max_steps=steps + warmup,
        callbacks=[timer, *build(module)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        accelerator="cpu",
    )
    trainer.fit(module, datamodule)
    return timer.step_times(skip=warmup)


def peak_rss_kib() -> int:
    """Peak resident set size of this process (Linux ``VmHWM``), in KiB."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0])


def peak_rss_mib(variant: str, args: argparse.Namespace) -> float:
    command = [sys.executable, __file__, "--child", variant, "--steps", "3"]
    command += ["--batch-size", str(args.batch_size), "--max-seq-length", str(args.max_seq_length)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    return json.loads(output)["peak_rss_mib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    datamodule = TextFolderDataModule(
        max_seq_length=args.max_seq_length, batch_size=args.batch_size, max_train_samples=args.steps * args.batch_size
    )
    if args.child:
        run(args.child, datamodule, args.steps)
        print(json.dumps({"peak_rss_mib": peak_rss_kib() / 1024}))
        return

    variants = ["plain", *(variant for variant in args.variants if variant != "plain")]
    times: dict[str, list[float]] = {variant: [] for variant in variants}
    for round_index in range(args.rounds):
        shift = round_index % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            times[variant] += run(variant, datamodule, args.steps)
            gc.collect()  # free the previous fit's model and optimizer before the next one
    median = {variant: statistics.median(values) for variant, values in times.items()}
    memory = {variant: None if args.no_memory else peak_rss_mib(variant, args) for variant in variants}
    print(
        f"\nMiniLM-L6, BBC News, batch {args.batch_size} x {args.max_seq_length} tokens, "
        f"{torch.get_num_threads()} CPU threads, {args.rounds} rounds x {args.steps} steps per variant"
    )
    print(f"{'variant':<16} {'median step (s)':>16} {'step ratio':>11} {'peak RSS (MiB)':>15} {'memory ratio':>13}")
    for variant in variants:
        rss = memory[variant]
        rss_text = f"{rss:>15.0f} {rss / memory['plain']:>13.3f}" if rss is not None else f"{'-':>15} {'-':>13}"
        print(f"{variant:<16} {median[variant]:>16.4f} {median[variant] / median['plain']:>11.3f} {rss_text}")


if __name__ == "__main__":
    main()
