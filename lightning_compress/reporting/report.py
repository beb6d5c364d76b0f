"""``lightning-compress report RUNS_DIR``: a markdown and a CSV table per published table, plus figures."""

from __future__ import annotations

import argparse
from pathlib import Path

from lightning_compress.reporting.comparison import TableComparison, compare_table, write_csv, write_markdown
from lightning_compress.reporting.published import PUBLISHED_TABLES
from lightning_compress.reporting.runs import load_runs

__all__ = ["CROSS_LINGUAL_TASKS", "report_main", "write_report"]

#: Tasks whose runs log one score per language (the per-language bar plots).
CROSS_LINGUAL_TASKS = ("xnli", "pawsx")


def write_report(runs_dir: str | Path, out: str | Path) -> list[TableComparison]:
    """Write ``<table>_<scale>.md`` / ``.csv`` and the figures for every table with runs under ``runs_dir``."""
    from lightning_compress.reporting.plots import plot_languages, plot_layer_sparsity, plot_sparsity_curves

    runs = load_runs(runs_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    comparisons = []
    for table_id, scale in sorted({(run.table, run.scale) for run in runs if run.table in PUBLISHED_TABLES}):
        table = PUBLISHED_TABLES[table_id]
        mine = [run for run in runs if run.table == table_id and run.scale == scale]
        comparison = compare_table(table, mine, scale)
        stem = f"{table_id}_{scale}"
        write_markdown(comparison, out / f"{stem}.md")
        write_csv(comparison, out / f"{stem}.csv")
        figures = []
        for task in sorted({run.task for run in mine}):
            if plot_sparsity_curves(table, mine, task, out / f"{stem}_{task}_sparsity.png"):
                figures.append(f"{stem}_{task}_sparsity.png")
            if task in CROSS_LINGUAL_TASKS and plot_languages(table, mine, task, out / f"{stem}_{task}_languages.png"):
                figures.append(f"{stem}_{task}_languages.png")
        if plot_layer_sparsity(table, mine, out / f"{stem}_layers.png"):
            figures.append(f"{stem}_layers.png")
        if figures:
            with open(out / f"{stem}.md", "a") as handle:
                handle.write("\n## Figures\n\n" + "".join(f"![{name}]({name})\n\n" for name in figures))
        comparisons.append(comparison)
    return comparisons


def report_main(argv: list[str]) -> None:
    """``lightning-compress report RUNS_DIR [--out docs/results]``."""
    parser = argparse.ArgumentParser(
        prog="lightning-compress report",
        description="Tables (markdown + CSV) and figures of the runs written by `lightning-compress reproduce`.",
    )
    parser.add_argument("runs_dir", type=Path, help="Root of the run folders (the --runs-dir of reproduce).")
    parser.add_argument("--out", type=Path, default=Path("docs/results"), help="Output folder.")
    args = parser.parse_args(argv)
    if not args.runs_dir.is_dir():
        parser.error(f"runs_dir {args.runs_dir} does not exist")
    comparisons = write_report(args.runs_dir, args.out)
    if not comparisons:
        parser.error(f"no finished run (a folder with result.json) under {args.runs_dir}")
    for comparison in comparisons:
        held = sum(v.status == "held" for v in comparison.verdicts)
        checked = sum(v.status != "no data" for v in comparison.verdicts)
        print(
            f"{comparison.table.table_id} ({comparison.scale}): {sum(r.runs for r in comparison.rows)} runs, "
            f"orderings held {held}/{checked} -> {args.out / (comparison.table.table_id + '_' + comparison.scale)}.md"
        )
