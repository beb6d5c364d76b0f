"""Every pruning criterion end-to-end through ``lightning-compress fit`` on SST-2 (MiniLM-L6, CPU), to 90 % sparsity.

Each variant is one ``lightning-compress fit`` run of ``configs/scaled/sst2_gmp.yaml`` (cubic schedule, events every
10 optimizer steps from 10 % to 70 % of the run, full 872-sentence dev set), shortened to ``--train-samples`` training
sentences and ``--epochs`` epochs, with the callback's ``criterion`` replaced; ``plain`` is the same run without a
pruning callback. A probe callback (first in the list, so it times the pruning events too) writes, per run:

* accuracy: ``val/accuracy`` of the last validation (end of the last epoch);
* sparsity: measured exact zeros over the prunable set at the end of fit (``sparsity_report``);
* step time: time from one ``on_train_batch_start`` to the next minus any validation in between, i.e. forward,
  backward, optimizer, every hook and the pruning events; the table gives the mean and the median, and their ratios
  to the plain run. Runs are sequential, so load from other processes on the machine adds noise to the ratios.

    python benchmarks/criteria_sst2.py [--train-samples 2000] [--epochs 2] [--criteria magnitude random ...]

Results go to ``runs/benchmarks/criteria_sst2/n<N>_e<E>/<variant>.json``; a variant with a result file is not run again
(``--rerun`` forces it). The table is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml
from pytorch_lightning import Callback

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "scaled" / "sst2_gmp.yaml"
CRITERIA = (
    "magnitude",
    "global_magnitude",
    "random",
    "global_random",
    "gradient",
    "taylor",
    "lamp",
    "lookahead",
    "l0",
    "l1",
)


class BenchmarkProbe(Callback):
    """Times every training step and writes accuracy, sparsity and step times to ``out`` at the end of fit."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.starts: list[float] = []
        self.validation_seconds: list[float] = []  # validation time after each step start
        self._validation_start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append(time.perf_counter())
        self.validation_seconds.append(0.0)

    def on_validation_start(self, trainer, pl_module) -> None:
        self._validation_start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        if self.validation_seconds:
            self.validation_seconds[-1] += time.perf_counter() - self._validation_start

    def on_fit_end(self, trainer, pl_module) -> None:
        from lightning_compress.callbacks import GradualMagnitudePruning
        from lightning_compress.pruning import sparsity_report

        pruning = next((cb for cb in trainer.callbacks if isinstance(cb, GradualMagnitudePruning)), None)
        report = sparsity_report(pl_module, pruning.target_names if pruning else None)
        steps = [
            later - start - validation
            for start, later, validation in zip(self.starts, self.starts[1:], self.validation_seconds)
        ]
        result = {
            "accuracy": float(trainer.callback_metrics["val/accuracy"]),
            "sparsity": report["prunable"],
            "model_sparsity": report["model"],
            "mask_sparsity": pruning.sparsity if pruning else 0.0,
            "events": len(pruning.events) if pruning else 0,
            "step_seconds": steps[1:],  # the first step includes warm-up
        }
        Path(self.out).write_text(json.dumps(result))


def run_variant(variant: str, args: argparse.Namespace, out: Path) -> None:
    config = yaml.safe_load(CONFIG.read_text())
    pruning = config["trainer"]["callbacks"][0]
    callbacks = [{"class_path": "criteria_sst2.BenchmarkProbe", "init_args": {"out": str(out)}}]
    if variant != "plain":
        pruning["init_args"]["criterion"] = variant
        callbacks.append(pruning)
    config["trainer"].update(
        callbacks=callbacks,
        max_epochs=args.epochs,
        default_root_dir=str(out.parent / variant),
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )
    config["data"]["init_args"]["max_train_samples"] = args.train_samples
    config_path = out.with_suffix(".yaml")
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    command = [str(Path(sys.executable).parent / "lightning-compress"), "fit", "--config", str(config_path)]
    log = out.with_suffix(".log")
    started = time.perf_counter()
    with log.open("w") as handle:
        code = subprocess.run(
            [*command, "--export_dir", "none"], cwd=ROOT, env=env, stdout=handle, stderr=handle
        ).returncode
    if code != 0 or not out.exists():
        raise RuntimeError(f"{variant}: `lightning-compress fit` failed (exit {code}); see {log}")
    print(f"{variant}: done in {time.perf_counter() - started:.0f} s", flush=True)


def print_table(results: dict[str, dict], args: argparse.Namespace) -> None:
    plain = results.get("plain")
    base_mean = statistics.mean(plain["step_seconds"]) if plain else None
    base_median = statistics.median(plain["step_seconds"]) if plain else None
    print(
        f"\nSST-2, MiniLM-L6 (all-MiniLM-L6-v2), {args.train_samples} training sentences x {args.epochs} epochs, "
        "batch 32 x 64 tokens, dev set 872, CPU; cubic schedule to 90 % (events every 10 steps, 10 %-70 % of the run)"
    )
    columns = ("accuracy", "sparsity", "step mean (s)", "ratio mean", "ratio median")
    header = f"{'criterion':<17} " + " ".join(f"{column:>{max(8, len(column))}}" for column in columns)
    print(header)
    print("-" * len(header))
    for variant, result in results.items():
        mean, median = statistics.mean(result["step_seconds"]), statistics.median(result["step_seconds"])
        ratio_mean = f"{mean / base_mean:.3f}" if base_mean else "n/a"
        ratio_median = f"{median / base_median:.3f}" if base_median else "n/a"
        print(
            f"{variant:<17} {result['accuracy']:>8.4f} {result['sparsity']:>8.4f} {mean:>13.3f} "
            f"{ratio_mean:>10} {ratio_median:>12}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-samples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--criteria", nargs="+", choices=CRITERIA, default=list(CRITERIA))
    parser.add_argument("--out-dir", type=Path, default=None, help="default: runs/benchmarks/criteria_sst2/n<N>_e<E>")
    parser.add_argument("--rerun", action="store_true", help="run variants again even if their result file exists")
    args = parser.parse_args()
    args.out_dir = (
        args.out_dir or ROOT / "runs" / "benchmarks" / "criteria_sst2" / f"n{args.train_samples}_e{args.epochs}"
    )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for variant in ["plain", *args.criteria]:
        out = args.out_dir / f"{variant}.json"
        if args.rerun or not out.exists():
            run_variant(variant, args, out)
        results[variant] = json.loads(out.read_text())
    print_table(results, args)


if __name__ == "__main__":
    main()
