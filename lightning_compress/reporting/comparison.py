"""Our numbers next to the published ones: mean ± std over seeds per row and column, and the claimed orderings."""

from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from lightning_compress.reporting.published import Claim, PublishedTable
from lightning_compress.reporting.run_record import SPARSITY_KEY
from lightning_compress.reporting.runs import RunResult, metric_value, select_point

__all__ = [
    "Cell",
    "ClaimVerdict",
    "RowComparison",
    "TableComparison",
    "compare_table",
    "gap_spread",
    "ordering_status",
    "summary_markdown",
    "write_csv",
    "write_markdown",
]

#: Logged metrics are fractions (accuracy, MCC, correlations); the papers print them x100.
SCALE = 100.0


@dataclass(frozen=True)
class Cell:
    """Our mean and sample standard deviation over ``n`` seeds (``None`` without runs; std needs 2), and the paper's."""

    mean: float | None
    std: float | None
    n: int
    published: float | None


@dataclass(frozen=True)
class RowComparison:
    """One row: a :class:`Cell` per column, our average over the average columns we ran, the published average and
    the mean remaining fraction of targeted weights at the selected points."""

    method: str
    label: str
    cells: tuple[Cell, ...]
    average: float | None
    published_average: float | None
    remaining: float | None
    runs: int


@dataclass(frozen=True)
class ClaimVerdict:
    """A claimed ordering checked on our numbers (``status``: see :func:`ordering_status`, or ``no data``); ``spread``
    is the seeds' spread of the gap (``None`` when a side has a single seed)."""

    claim: Claim
    status: str
    better: float | None
    worse: float | None
    columns: tuple[int, ...]
    spread: float | None = None


@dataclass(frozen=True)
class TableComparison:
    table: PublishedTable
    scale: str
    rows: tuple[RowComparison, ...]
    verdicts: tuple[ClaimVerdict, ...]


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _points(table: PublishedTable, runs: list[RunResult], column: int) -> list[tuple[float, float | None]]:
    """(metric x100, sparsity) at the table point of every run of this column's task."""
    col = table.columns[column]
    out = []
    for run in runs:
        if run.task != col.task:
            continue
        point = select_point(run, table, col.metric)
        value = None if point is None else metric_value(point, col.metric)
        if value is not None:
            out.append((SCALE * value, point.get(SPARSITY_KEY)))  # type: ignore[union-attr]
    return out


def gap_spread(stds: list[float | None], columns: int = 1) -> float | None:
    """Seeds' spread of the gap between two rows averaged over ``columns`` columns, from the per-column seed standard
    deviations of both rows (``stds``): their variances add, scaled by 1/columns²; ``None`` if one is missing."""
    if any(std is None for std in stds):
        return None
    return math.sqrt(sum(std * std for std in stds)) / columns  # type: ignore[operator, misc]


def ordering_status(gap: float, spread: float | None) -> str:
    """How well a claimed ordering holds, given our mean gap (better - worse) and the seeds' spread of that gap
    (sqrt of the sum of the seed variances of both sides; ``None`` when a side has a single seed).

    ``held`` (the gap exceeds the spread), ``held on the mean only`` (positive but within the spread), ``not held``
    (zero or negative), or ``undecided`` (a single seed: a gap without a spread says nothing).
    """
    if spread is None:
        return "undecided"
    if gap <= 0:
        return "not held"
    return "held" if gap > spread else "held on the mean only"


def _mean_over(cells: tuple[Cell, ...], columns: tuple[int, ...]) -> float | None:
    values = [cells[i].mean for i in columns]
    return None if not values or any(v is None for v in values) else statistics.mean(values)  # type: ignore[arg-type]


def _verdict(table: PublishedTable, claim: Claim, by_method: dict[str, RowComparison]) -> ClaimVerdict:
    better, worse = by_method[claim.better], by_method[claim.worse]
    if claim.on == "average":
        candidates = table.average_columns
    else:
        candidates = tuple(i for i, c in enumerate(table.columns) if c.task == claim.on)[:1]
    columns = tuple(i for i in candidates if better.cells[i].mean is not None and worse.cells[i].mean is not None)
    if not columns:
        return ClaimVerdict(claim, "no data", None, None, ())
    ours_better, ours_worse = _mean_over(better.cells, columns), _mean_over(worse.cells, columns)
    stds = [cell.std for row in (better, worse) for cell in (row.cells[i] for i in columns)]
    spread = gap_spread(stds, len(columns))
    status = ordering_status(ours_better - ours_worse, spread)  # type: ignore[operator]
    return ClaimVerdict(claim, status, ours_better, ours_worse, columns, spread)


def compare_table(table: PublishedTable, runs: list[RunResult], scale: str) -> TableComparison:
    """Compare the runs of ``table`` at ``scale`` with the published rows.

    Our average of a row is the mean over the table's ``average_columns`` for which that row has runs; an ordering
    is checked on the average columns both rows have (so a partial reproduction still gives verdicts).
    """
    runs = [run for run in runs if run.table == table.table_id and run.scale == scale]
    rows = []
    for published in table.rows:
        mine = [run for run in runs if run.row == published.method]
        cells, sparsities = [], []
        for index in range(len(table.columns)):
            points = _points(table, mine, index)
            mean, std = _mean_std([value for value, _ in points])
            cells.append(Cell(mean, std, len(points), published.values[index]))
            sparsities += [s for _, s in points if s is not None]
        cells_t = tuple(cells)
        present = tuple(i for i in table.average_columns if cells_t[i].mean is not None)
        rows.append(
            RowComparison(
                method=published.method,
                label=published.label,
                cells=cells_t,
                average=_mean_over(cells_t, present) if present else None,
                published_average=published.printed_average,
                remaining=(1.0 - statistics.mean(sparsities)) if sparsities else None,
                runs=len(mine),
            )
        )
    by_method = {row.method: row for row in rows}
    verdicts = tuple(_verdict(table, claim, by_method) for claim in table.claims)
    return TableComparison(table, scale, tuple(rows), verdicts)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _ours(cell: Cell) -> str:
    return _fmt(cell.mean) if cell.std is None or cell.mean is None else f"{cell.mean:.2f} ± {cell.std:.2f}"


def _cell_text(cell: Cell) -> str:
    return f"{_ours(cell)} ({_fmt(cell.published)})"


def write_markdown(comparison: TableComparison, path: Path) -> None:
    """Markdown table: per cell ``ours ± std (published)``, then the orderings and how well each holds."""
    table = comparison.table
    lines = [
        f"# {table.title}",
        "",
        f"Scale: **{comparison.scale}**. Model of the paper: {table.model}. Source: {table.section}.",
        "",
        f"Cells: our mean ± std over seeds (published number). {table.note}",
        "",
    ]
    if not table.reproducible:
        lines += ["**Not reproducible with this library** (see the note above).", ""]
    header = ["Method", *[c.label for c in table.columns], f"{table.average_label or 'Avg'}", "remaining %", "runs"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in comparison.rows:
        remaining = "–" if row.remaining is None else f"{100 * row.remaining:.1f}"
        average = f"{_fmt(row.average)} ({_fmt(row.published_average)})"
        cells = [row.label, *[_cell_text(c) for c in row.cells], average, remaining, str(row.runs)]
        lines.append("| " + " | ".join(cells) + " |")
    if comparison.verdicts:
        lines += [
            "",
            "## Claimed orderings",
            "",
            "**held**: our mean gap exceeds the seeds' spread of the gap; **held on the mean only**: positive but "
            "within it; **not held**: zero or negative; **undecided**: a single seed on one side.",
            "",
        ]
        lines += _verdict_lines(comparison)
    path.write_text("\n".join(lines) + "\n")


def _verdict_lines(comparison: TableComparison, with_no_data: bool = True) -> list[str]:
    table = comparison.table
    labels = {row.method: row.label for row in comparison.rows}
    lines = []
    for verdict in comparison.verdicts:
        if verdict.status == "no data" and not with_no_data:
            continue
        claim = verdict.claim
        text = f"- {labels[claim.better]} > {labels[claim.worse]} ({claim.on}; {claim.source}): **{verdict.status}**"
        if verdict.status != "no data":
            names = ", ".join(table.columns[i].label for i in verdict.columns)
            spread = "one seed" if verdict.spread is None else f"seed spread {verdict.spread:.2f}"
            text += f" — ours {verdict.better:.2f} vs {verdict.worse:.2f} on {names} ({spread})"
        lines.append(text)
    return lines


def summary_markdown(comparison: TableComparison, figures: list[str] | tuple[str, ...] = ()) -> str:
    """The part of a table that was run, for a results page: only the rows and columns with runs (ours ± std next
    to the published number), the measured % of weights remaining (pruning tables), the orderings that could be
    checked, and ``figures`` (image paths as the page should link them)."""
    table = comparison.table
    rows = [row for row in comparison.rows if row.runs]
    columns = [i for i in range(len(table.columns)) if any(row.cells[i].n for row in rows)]
    header = ["method", "seeds"]
    for i in columns:
        header += [table.columns[i].label, f"published ({table.model})"]
    pruning = table.remaining is not None
    if pruning:
        header.append("weights remaining %")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        seeds = sorted({row.cells[i].n for i in columns})
        cells = [row.label, str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]}"]
        for i in columns:
            cells += [_ours(row.cells[i]), _fmt(row.cells[i].published)]
        if pruning:
            cells.append("–" if row.remaining is None else f"{100 * row.remaining:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    verdicts = _verdict_lines(comparison, with_no_data=False)
    if verdicts:
        lines += ["", *verdicts]
    if figures:
        lines += ["", *(f"![{Path(name).name}]({name})" for name in figures)]
    return "\n".join(lines) + "\n"


def write_csv(comparison: TableComparison, path: Path) -> None:
    """Long CSV: one line per row x column (and the average), ours next to the published value."""
    table = comparison.table
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["table", "scale", "method", "label", "task", "metric", "ours_mean", "ours_std", "n", "published"]
        )
        for row in comparison.rows:
            for column, cell in zip(table.columns, row.cells):
                writer.writerow(
                    [
                        table.table_id,
                        comparison.scale,
                        row.method,
                        row.label,
                        column.task,
                        column.metric,
                        cell.mean,
                        cell.std,
                        cell.n,
                        cell.published,
                    ]  # fmt: skip
                )
            writer.writerow(
                [
                    table.table_id,
                    comparison.scale,
                    row.method,
                    row.label,
                    "average",
                    table.average_label,
                    row.average,
                    None,
                    row.runs,
                    row.published_average,
                ]  # fmt: skip
            )
