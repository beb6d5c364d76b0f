"""Scaled zero-shot XNLI comparison of the gradient-dropout family (O'Neill Table 10.1, CPU-sized).

Runs ``lightning-compress fit`` on ``configs/scaled/xnli_<variant>.yaml`` for every variant and seed through
:func:`lightning_compress.reproduce.run_plans` (``--jobs`` fits side by side, the cores shared between them; a finished
run is skipped, so an interrupted grid resumes), then prints mean ± std over the seeds of

* ``zero-shot``: ``val/avg_zero_shot/accuracy`` (mean over the non-English languages) after the last epoch;
* ``zero-shot @best en``: the same at the epoch with the best English dev accuracy (the protocol's model selection);
* ``en``: English dev accuracy after the last epoch.

The seed sets ``seed_everything`` (head initialisation, dropout), the training subset and order
(``data.init_args.seed``) and the gradient-dropout masks (``seed`` of the last callback, a GradientDropout in every
config).

    python benchmarks/graddrop_xnli.py [--seeds 1 2 3] [--variants ft graddrop ...] [--root runs/scaled/graddrop_xnli]
                                       [--jobs 1] [--table-only] [-- EXTRA CLI OVERRIDES]

``--jobs 2`` runs two single-threaded fits side by side: on a busy 2-core machine this is faster than one fit on two
threads, whose thread synchronisation stalls whenever another process holds a core.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from pathlib import Path

from lightning_compress.reproduce import REPO, PlannedRun, run_plans

VARIANTS = {
    "ft": "fine-tuning (dropout 0.2)",
    "graddrop": "GradDrop p=0.2",
    "layer_graddrop": "Layer-GradDrop p=0.2",
    "graddrop_epoch": "GradDrop-Epoch",
    "gradfreeze": "GradFreeze-TopDown",
    "ft_nodropout": "fine-tuning (dropout 0)",  # control: GradDrop's dropout setting without its masks
}
ZERO_SHOT, ENGLISH = "val/avg_zero_shot/accuracy", "val/en/accuracy"


def run_dir(root: Path, variant: str, seed: int) -> Path:
    return root / variant / f"seed{seed}"


def plan(variant: str, seed: int, root: Path) -> PlannedRun:
    """The fit of ``variant`` for ``seed``; the seed also seeds the gradient-dropout masks (the last callback)."""
    return PlannedRun(
        table="graddrop_xnli",
        row=variant,
        task="xnli",
        seed=seed,
        scale="scaled",
        configs=(f"configs/scaled/xnli_{variant}.yaml",),
        run_dir=str(run_dir(root, variant, seed).resolve()),
        args=(f"--trainer.callbacks.init_args.seed={seed}",),
    )


def read_metrics(directory: Path) -> dict[str, float]:
    """Last-epoch and best-English-epoch metrics from the CSVLogger file of a run."""
    path = max(directory.rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)
    with open(path) as handle:
        rows = [row for row in csv.DictReader(handle) if row.get(ZERO_SHOT)]
    if not rows:
        raise RuntimeError(f"{path} has no {ZERO_SHOT} values")
    best = max(rows, key=lambda row: float(row[ENGLISH]))
    result = {
        "epochs": len(rows),
        "zero_shot": float(rows[-1][ZERO_SHOT]),
        "zero_shot_best_en": float(best[ZERO_SHOT]),
        "en": float(rows[-1][ENGLISH]),
    }
    names = [key.split("/")[1] for key in rows[-1] if key.endswith("/accuracy") and key.count("/") == 2]
    result["languages"] = {
        name: float(rows[-1][f"val/{name}/accuracy"]) for name in names if not name.startswith("avg")
    }
    return result


def mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f"{100 * values[0]:.2f}" if values else "-"
    return f"{100 * statistics.mean(values):.2f} ± {100 * statistics.stdev(values):.2f}"


def print_table(root: Path, variants: list[str], seeds: list[int]) -> None:
    results = {
        variant: [
            {**read_metrics(folder), "seconds": json.loads((folder / "result.json").read_text())["seconds"]}
            for folder in (run_dir(root, variant, seed) for seed in seeds)
            if (folder / "result.json").is_file()
        ]
        for variant in variants
    }
    print(f"\nZero-shot XNLI dev accuracy (%), mean ± std over seeds {seeds}")
    header = f"{'method':<26} {'runs':>4} {'zero-shot':>15} {'zero-shot @best en':>19} {'en':>15} {'min/run':>8}"
    print(header)
    print("-" * len(header))
    for variant in variants:
        rows = results[variant]
        minutes = statistics.mean(r["seconds"] for r in rows) / 60 if rows else math.nan
        print(
            f"{VARIANTS[variant]:<26} {len(rows):>4} {mean_std([r['zero_shot'] for r in rows]):>15} "
            f"{mean_std([r['zero_shot_best_en'] for r in rows]):>19} {mean_std([r['en'] for r in rows]):>15} "
            f"{minutes:>8.1f}"
        )
    languages = next((list(rows[0]["languages"]) for rows in results.values() if rows), [])
    if languages:
        print(
            f"\nPer language after the last epoch, mean over seeds (%)\n{'method':<26} "
            + " ".join(f"{x:>6}" for x in languages)
        )
        for variant in variants:
            rows = results[variant]
            if rows:
                means = " ".join(f"{100 * statistics.mean(r['languages'][x] for r in rows):6.2f}" for x in languages)
                print(f"{VARIANTS[variant]:<26} {means}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--root", type=Path, default=REPO / "runs" / "scaled" / "graddrop_xnli")
    parser.add_argument("--jobs", type=int, default=1, help="fits run side by side (CPU: the cores are shared)")
    parser.add_argument("--table-only", action="store_true", help="print the table of the finished runs")
    parser.add_argument("extra", nargs="*", help="CLI overrides passed to every run (after --)")
    args = parser.parse_args()
    if not args.table_only:
        grid = [plan(variant, seed, args.root) for seed in args.seeds for variant in args.variants]  # seed-major
        run_plans(grid, args.extra, workers=args.jobs)
    print_table(args.root, args.variants, args.seeds)


if __name__ == "__main__":
    main()
