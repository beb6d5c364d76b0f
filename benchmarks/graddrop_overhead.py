"""Step-time and peak-memory overhead of GradientDropout on MiniLM-L6 (real BBC News batches, CPU).

Same method as ``step_overhead.py``: the variants are interleaved in one process (round-robin over short fits,
same batches, the order rotated every round), so machine noise hits all of them alike; the printed ratio is median
callback step / median plain step, a step being the time between consecutive ``on_train_batch_start`` calls
(forward, backward, optimizer, every hook). Every variant keeps the model's dropout (``model_dropout=None``):
switching it off, the thesis setting, would make the callback look faster than it is. The time spent inside the
callback's hooks is also measured in the same steps and printed as a share of the median plain step ("hook share"):
on a shared machine it is the steadier number. Peak memory: each variant runs in a fresh subprocess and reports its
own high-water mark (``VmHWM`` of ``/proc/self/status``; ``ru_maxrss`` would include the parent's peak, which Linux
carries across ``exec``).

Variants: ``plain`` (no callback); ``element`` (GradDrop, p = 0.2, a fresh mask over the ~10.8M encoder and pooler
entries every step); ``element_update`` (the same, dropped entries frozen exactly under AdamW); ``layer``
(Layer-GradDrop, p = 0.2); ``epoch`` (GradDrop-Epoch, masks fixed per epoch).

    python benchmarks/graddrop_overhead.py [--steps 8] [--rounds 3] [--batch-size 16] [--max-seq-length 128]
                                           [--threads N] [--variants element layer ...] [--no-memory]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import subprocess
import sys
import time
import warnings

import torch
from pytorch_lightning import Callback, Trainer, seed_everything

from lightning_compress.callbacks import GradientDropout
from lightning_compress.data import TextFolderDataModule
from lightning_compress.models import SequenceClassificationModule

VARIANTS = {
    "plain": None,
    "element": {"p": 0.2},
    "element_update": {"p": 0.2, "mask_mode": "update"},
    "layer": {"p": 0.2, "mode": "layer"},
    "epoch": {"mode": "epoch", "num_epochs": 3},
}


class TimedGradientDropout(GradientDropout):
    """GradientDropout that adds the wall time spent in its per-step hooks to ``hook_seconds``."""

    hook_seconds = 0.0

    def _timed(self, hook, *args) -> None:
        start = time.perf_counter()
        getattr(super(), hook)(*args)
        TimedGradientDropout.hook_seconds += time.perf_counter() - start

    def on_train_batch_start(self, *args) -> None:
        self._timed("on_train_batch_start", *args)

    def on_before_optimizer_step(self, *args) -> None:
        self._timed("on_before_optimizer_step", *args)

    def on_train_batch_end(self, *args) -> None:
        self._timed("on_train_batch_end", *args)


class StepTimer(Callback):
    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, *args) -> None:
        self.starts.append(time.perf_counter())

    def on_train_end(self, *args) -> None:
        self.starts.append(time.perf_counter())

    def step_times(self, skip: int) -> list[float]:
        return [b - a for a, b in zip(self.starts, self.starts[1:])][skip:]


def run(variant: str, datamodule: TextFolderDataModule, steps: int) -> tuple[list[float], float]:
    """Step times (first step dropped) and the hook seconds of the measured steps."""
    seed_everything(0)
    module = SequenceClassificationModule(task_spec=datamodule.task_spec, lr=5e-5)
    kwargs = VARIANTS[variant]
    callbacks = [] if kwargs is None else [TimedGradientDropout(model_dropout=None, **kwargs)]
    hook_seconds: list[float] = []

    class FirstStepHooks(Callback):  # hook time of the warm-up step, left out like its step time
        def on_train_batch_start(self, trainer, *args) -> None:
            if trainer.global_step == 1:
                hook_seconds.append(TimedGradientDropout.hook_seconds)

    TimedGradientDropout.hook_seconds = 0.0
    timer = StepTimer()
    trainer = Trainer(
        max_steps=steps + 1,
        max_epochs=1,
        callbacks=[timer, FirstStepHooks(), *callbacks],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        accelerator="cpu",
    )
    trainer.fit(module, datamodule)
    first = hook_seconds[0] if hook_seconds else 0.0
    return timer.step_times(skip=1), TimedGradientDropout.hook_seconds - first  # skip warm-up, buffer allocation


def own_peak_rss_mib() -> float:
    try:
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_mib(variant: str, args: argparse.Namespace) -> float:
    command = [sys.executable, __file__, "--child", variant, "--steps", "3"]
    command += ["--batch-size", str(args.batch_size), "--max-seq-length", str(args.max_seq_length)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    return json.loads(output)["peak_rss_mib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    datamodule = TextFolderDataModule(max_seq_length=args.max_seq_length, batch_size=args.batch_size)
    if args.child:
        run(args.child, datamodule, args.steps)
        print(json.dumps({"peak_rss_mib": own_peak_rss_mib()}))
        return

    variants = ["plain", *(v for v in args.variants if v != "plain")]
    times: dict[str, list[float]] = {variant: [] for variant in variants}
    hooks = dict.fromkeys(variants, 0.0)
    for round_index in range(args.rounds):
        shift = round_index % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            step_times, hook_seconds = run(variant, datamodule, args.steps)
            times[variant] += step_times
            hooks[variant] += hook_seconds
            gc.collect()
    median = {variant: statistics.median(values) for variant, values in times.items()}
    hook_share = {variant: hooks[variant] / len(times[variant]) / median["plain"] for variant in variants}
    memory = {variant: None if args.no_memory else peak_rss_mib(variant, args) for variant in variants}
    print(
        f"\nMiniLM-L6, BBC News, batch {args.batch_size} x {args.max_seq_length} tokens, "
        f"{torch.get_num_threads()} CPU threads, {args.rounds} rounds x {args.steps} steps per variant, "
        "model dropout kept at 0.1 in every variant"
    )
    header = f"{'variant':<15} {'median step (s)':>16} {'step ratio':>11} {'hook share':>11}"
    print(f"{header} {'peak RSS (MiB)':>15} {'memory ratio':>13}")
    for variant in variants:
        rss = memory[variant]
        rss_text = f"{rss:>15.0f} {rss / memory['plain']:>13.3f}" if rss is not None else f"{'-':>15} {'-':>13}"
        ratio = median[variant] / median["plain"]
        print(f"{variant:<15} {median[variant]:>16.4f} {ratio:>11.3f} {hook_share[variant]:>11.4f} {rss_text}")


if __name__ == "__main__":
    main()
