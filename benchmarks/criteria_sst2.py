"""Every pruning criterion end-to-end through ``lightning-compress fit`` on SST-2 (MiniLM-L6, CPU), to 90 % sparsity.

Each variant is one ``lightning-compress fit`` run of ``configs/scaled/sst2_gmp.yaml`` (cubic schedule, events every
10 optimizer steps from 10 % to 70 % of the run, full 872-sentence dev set), shortened to ``--train-samples`` training
sentences and ``--epochs`` epochs, with the callback's ``criterion`` replaced; ``plain`` is the same run without a
pruning callback. A probe callback (first in the list, so it times the pruning events too) writes, per run:

* accuracy: ``val/accuracy`` of the last validation (end of the last epoch), and of the first one (end of epoch 1,
  mid-schedule, with the mask sparsity at that point);
* sparsity: measured exact zeros over the prunable set at the end of fit (``sparsity_report``);
* step time: time from one ``on_train_batch_start`` to the next minus any validation in between, i.e. forward,
  backward, optimizer, every hook and the pruning events, as wall-clock and as process CPU time; the table gives
  their means and the ratios to the plain run. Runs are sequential, so other load on the machine adds noise to the
  wall-clock ratio; the CPU-time ratio is less sensitive to it.

    python benchmarks/criteria_sst2.py [--train-samples 2000] [--epochs 2] [--criteria magnitude random ...]

Results go to ``runs/benchmarks/criteria_sst2/n<N>_e<E>/<variant>.json``; a variant with a result file is not run again
(``--rerun VARIANT ...`` forces it). The table is printed at the end.
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

from lightning_compress.callbacks import GradualMagnitudePruning
from lightning_compress.pruning import sparsity_report

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
        self.starts: list[tuple[float, float]] = []  # (wall, process CPU) time at each step start
        self.validation: list[tuple[float, float]] = []  # (wall, CPU) time of validation after each step start
        self._validation_start = (0.0, 0.0)
        self.validations: list[dict] = []  # step, mask sparsity and accuracy of every validation

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append((time.perf_counter(), time.process_time()))
        self.validation.append((0.0, 0.0))

    def on_validation_start(self, trainer, pl_module) -> None:
        self._validation_start = (time.perf_counter(), time.process_time())

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            pruning = _pruning_callback(trainer)
            self.validations.append(
                {
                    "step": trainer.global_step,
                    "sparsity": pruning.sparsity if pruning else 0.0,
                    "accuracy": float(trainer.callback_metrics["val/accuracy"]),
                }
            )
        if self.validation:
            wall, cpu = self.validation[-1]
            start_wall, start_cpu = self._validation_start
            self.validation[-1] = (wall + time.perf_counter() - start_wall, cpu + time.process_time() - start_cpu)

    def on_fit_end(self, trainer, pl_module) -> None:
        pruning = _pruning_callback(trainer)
        report = sparsity_report(pl_module, pruning.target_names if pruning else None)
        steps = [
            [
                later[i] - start[i] - validation[i]
                for start, later, validation in zip(self.starts, self.starts[1:], self.validation)
            ]
            for i in (0, 1)
        ]
        result = {
            "accuracy": float(trainer.callback_metrics["val/accuracy"]),
            "sparsity": report["prunable"],
            "model_sparsity": report["model"],
            "mask_sparsity": pruning.sparsity if pruning else 0.0,
            "events": len(pruning.events) if pruning else 0,
            "step_seconds": steps[0][1:],  # the first step includes warm-up
            "step_cpu_seconds": steps[1][1:],
            "validations": self.validations,
        }
        Path(self.out).write_text(json.dumps(result))


def _pruning_callback(trainer) -> GradualMagnitudePruning | None:
    return next((cb for cb in trainer.callbacks if isinstance(cb, GradualMagnitudePruning)), None)


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
    def mean(result: dict, key: str) -> float | None:
        return statistics.mean(result[key]) if result.get(key) else None

    plain = results.get("plain", {})
    base = {key: mean(plain, key) for key in ("step_seconds", "step_cpu_seconds")}
    print(
        f"\nSST-2, MiniLM-L6 (all-MiniLM-L6-v2), {args.train_samples} training sentences x {args.epochs} epochs, "
        "batch 32 x 64 tokens, dev set 872, CPU; cubic schedule to 90 % (events every 10 steps, 10 %-70 % of the run)"
    )
    columns = ("acc ep 1", "sparsity", "accuracy", "sparsity", "wall s/step", "wall ratio", "CPU s/step", "CPU ratio")
    header = f"{'criterion':<17} " + " ".join(f"{column:>11}" for column in columns)
    print(header)
    print("-" * len(header))
    for variant, result in results.items():
        first = result.get("validations", [None])[0]
        cells = ["n/a", "n/a"] if first is None else [f"{first['accuracy']:.4f}", f"{first['sparsity']:.4f}"]
        cells += [f"{result['accuracy']:.4f}", f"{result['sparsity']:.4f}"]
        for key in ("step_seconds", "step_cpu_seconds"):
            value = mean(result, key)
            cells.append("n/a" if value is None else f"{value:.3f}")
            cells.append(f"{value / base[key]:.3f}" if value is not None and base[key] else "n/a")
        print(f"{variant:<17} " + " ".join(f"{cell:>11}" for cell in cells))
    print(
        "acc ep 1: validation after the first epoch, mid-schedule (mask sparsity next to it); accuracy: end of the "
        "run, with the measured sparsity of the prunable weights.\n"
        "wall: mean time per optimizer step (events included, validation excluded); CPU: the same in process CPU "
        "time (all threads), less sensitive to other load on the machine; ratios are to the plain run."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-samples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--criteria", nargs="+", choices=CRITERIA, default=list(CRITERIA))
    parser.add_argument("--out-dir", type=Path, default=None, help="default: runs/benchmarks/criteria_sst2/n<N>_e<E>")
    parser.add_argument("--rerun", nargs="*", default=[], help="variants to run again although they have results")
    args = parser.parse_args()
    args.out_dir = (
        args.out_dir or ROOT / "runs" / "benchmarks" / "criteria_sst2" / f"n{args.train_samples}_e{args.epochs}"
    )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for variant in ["plain", *args.criteria]:
        out = args.out_dir / f"{variant}.json"
        if variant in args.rerun or not out.exists():
            run_variant(variant, args, out)
        results[variant] = json.loads(out.read_text())
    print_table(results, args)


if __name__ == "__main__":
    main()
