"""``lightning-compress report RUNS_DIR``: a markdown and a CSV table per published table, plus figures."""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from pathlib import Path

from lightning_compress.extras import extra_hint, has_module
from lightning_compress.reporting.comparison import (
    TableComparison,
    compare_table,
    summary_markdown,
    write_csv,
    write_markdown,
)
from lightning_compress.reporting.published import PUBLISHED_TABLES
from lightning_compress.reporting.runs import load_runs

__all__ = ["CROSS_LINGUAL_TASKS", "TableReport", "report_main", "update_document", "write_report"]

#: Tasks whose runs log one score per language (the per-language bar plots).
CROSS_LINGUAL_TASKS = ("xnli", "pawsx")


@dataclass(frozen=True)
class TableReport:
    """What :func:`write_report` wrote for one table and scale: the comparison and the figures (paths under ``out``)."""

    comparison: TableComparison
    figures: tuple[Path, ...]


def write_report(runs_dir: str | Path, out: str | Path, plots: bool = True) -> list[TableReport]:
    """Write ``<table>_<scale>.md`` / ``.csv`` and (``plots=True``) the figures for every table with runs under
    ``runs_dir``. The figures need matplotlib (the ``report`` extra); ``plots=False`` writes the tables alone."""
    if plots:
        from lightning_compress.reporting.plots import plot_languages, plot_layer_sparsity, plot_sparsity_curves
    else:
        plot_languages = plot_layer_sparsity = plot_sparsity_curves = _no_figure

    runs = load_runs(runs_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    reports = []
    for table_id, scale in sorted({(run.table, run.scale) for run in runs if run.table in PUBLISHED_TABLES}):
        table = PUBLISHED_TABLES[table_id]
        mine = [run for run in runs if run.table == table_id and run.scale == scale]
        comparison = compare_table(table, mine, scale)
        stem = f"{table_id}_{scale}"
        write_markdown(comparison, out / f"{stem}.md")
        write_csv(comparison, out / f"{stem}.csv")
        figures = []
        # pruning tables only: elsewhere the measured sparsity is the model's own exact zeros (e.g. those a frozen
        # block keeps), not a point on a pruning schedule
        pruning = table.remaining is not None
        for task in sorted({run.task for run in mine}):
            if pruning and plot_sparsity_curves(table, mine, task, out / f"{stem}_{task}_sparsity.png"):
                figures.append(f"{stem}_{task}_sparsity.png")
            if task in CROSS_LINGUAL_TASKS and plot_languages(table, mine, task, out / f"{stem}_{task}_languages.png"):
                figures.append(f"{stem}_{task}_languages.png")
        if plot_layer_sparsity(table, mine, out / f"{stem}_layers.png"):
            figures.append(f"{stem}_layers.png")
        if figures:
            with open(out / f"{stem}.md", "a") as handle:
                handle.write("\n## Figures\n\n" + "".join(f"![{name}]({name})\n\n" for name in figures))
        reports.append(TableReport(comparison, tuple(sorted(out / name for name in figures))))
    return reports


def _no_figure(*args: object) -> bool:
    """Stands in for a plot function when figures are off: nothing written."""
    return False


def update_document(document: str | Path, reports: list[TableReport]) -> list[str]:
    """Refresh the generated sections of a results page in place and return the names of those refreshed.

    A section is the text between ``<!-- report:<table>_<scale> -->`` and ``<!-- /report:<table>_<scale> -->``; it
    becomes :func:`~lightning_compress.reporting.comparison.summary_markdown` of that table, with the figures that
    :func:`write_report` wrote for it linked relative to the page. Text outside the markers is kept as it is, and
    sections of tables without runs are left alone; an opening marker without its closing one is an error.
    """
    document = Path(document)
    text = document.read_text()
    refreshed = []
    for report in reports:
        comparison = report.comparison
        stem = f"{comparison.table.table_id}_{comparison.scale}"
        pattern = re.compile(rf"(<!-- report:{stem} -->\n).*?(<!-- /report:{stem} -->)", re.DOTALL)
        if not pattern.search(text):
            if f"<!-- report:{stem} -->" in text:
                raise ValueError(f"{document}: <!-- report:{stem} --> has no closing <!-- /report:{stem} --> line")
            continue
        figures = [os.path.relpath(path, document.parent) for path in report.figures]
        section = summary_markdown(comparison, figures)
        text = pattern.sub(lambda match, body=section: match.group(1) + body + match.group(2), text)
        refreshed.append(stem)
    document.write_text(text)
    return refreshed


def report_main(argv: list[str]) -> None:
    """``lightning-compress report RUNS_DIR [--out docs/results] [--update docs/results.md]``."""
    parser = argparse.ArgumentParser(
        prog="lightning-compress report",
        description="Tables (markdown + CSV) and figures of the runs written by `lightning-compress reproduce`.",
    )
    parser.add_argument("runs_dir", type=Path, help="Root of the run folders (the --runs-dir of reproduce).")
    parser.add_argument("--out", type=Path, default=Path("docs/results"), help="Output folder.")
    parser.add_argument(
        "--update",
        type=Path,
        metavar="PAGE",
        help="Also refresh the sections of this markdown page marked <!-- report:TABLE_SCALE --> ... "
        "<!-- /report:TABLE_SCALE --> (e.g. docs/results.md) with the rows and columns that were run.",
    )
    args = parser.parse_args(argv)
    if not args.runs_dir.is_dir():
        parser.error(f"runs_dir {args.runs_dir} does not exist")
    if args.update is not None and not args.update.is_file():
        parser.error(f"--update {args.update}: no such markdown page")
    plots = has_module("matplotlib")
    if not plots:
        print(f"figures skipped: they need matplotlib, {extra_hint('matplotlib')}; writing the tables only")
    reports = write_report(args.runs_dir, args.out, plots=plots)
    if not reports:
        parser.error(f"no finished run (a folder with result.json) under {args.runs_dir}")
    for comparison in (report.comparison for report in reports):
        held = sum(v.status == "held" for v in comparison.verdicts)
        checked = sum(v.status != "no data" for v in comparison.verdicts)
        print(
            f"{comparison.table.table_id} ({comparison.scale}): {sum(r.runs for r in comparison.rows)} runs, "
            f"orderings held {held}/{checked} -> {args.out / (comparison.table.table_id + '_' + comparison.scale)}.md"
        )
    if args.update is not None:
        refreshed = update_document(args.update, reports)
        print(f"{args.update}: refreshed {', '.join(refreshed) if refreshed else 'no section (no matching markers)'}")
