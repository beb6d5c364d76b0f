"""Figures of a reproduction: metric vs remaining weights, per-layer sparsity, per-language zero-shot scores.

Needs matplotlib (the ``report`` extra); importing this module without it raises an ``ImportError`` naming the extra.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from lightning_compress.extras import import_extra
from lightning_compress.reporting.published import PublishedTable
from lightning_compress.reporting.run_record import SPARSITY_KEY
from lightning_compress.reporting.runs import RunResult, metric_value, select_point

import_extra("matplotlib", "Plotting the figures of `lightning-compress report`").use("Agg")
plt = import_extra("matplotlib.pyplot", "Plotting the figures of `lightning-compress report`")

__all__ = ["plot_languages", "plot_layer_sparsity", "plot_sparsity_curves"]


def _labels(table: PublishedTable) -> dict[str, str]:
    return {row.method: row.label for row in table.rows}


def plot_sparsity_curves(table: PublishedTable, runs: list[RunResult], task: str, path: Path) -> bool:
    """Metric (x100, mean over seeds) against % remaining targeted weights, one line per method.

    Returns ``False`` (nothing written) when no run of ``task`` was validated at two or more sparsities.
    """
    metric = next(c.metric for c in table.columns if c.task == task)
    curves: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        if run.task != task:
            continue
        for validation in run.history:
            value, sparsity = metric_value(validation, metric), validation.get(SPARSITY_KEY)
            if value is not None and sparsity is not None:
                curves[run.row][round(100 * (1 - sparsity), 1)].append(100 * value)
    if not any(len(points) > 1 for points in curves.values()):
        return False
    labels = _labels(table)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in table.methods:
        if method in curves:
            xs = sorted(curves[method], reverse=True)
            ax.plot(xs, [statistics.mean(curves[method][x]) for x in xs], marker="o", ms=3, label=labels[method])
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("% of targeted weights remaining")
    ax.set_ylabel(f"{task} {metric} (x100)")
    ax.set_title(f"{table.table_id}: {task}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def plot_layer_sparsity(table: PublishedTable, runs: list[RunResult], path: Path) -> bool:
    """Sparsity of every targeted matrix (in model order) at the end of the first run of each method."""
    first: dict[str, RunResult] = {}
    for run in sorted(runs, key=lambda r: (r.task, r.seed)):
        if run.layer_sparsity and run.row not in first:
            first[run.row] = run
    if not first or not any(max(r.layer_sparsity.values(), default=0) > 0 for r in first.values()):
        return False
    labels = _labels(table)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for method in table.methods:
        if method in first:
            values = list(first[method].layer_sparsity.values())
            ax.plot(
                range(len(values)), values, marker=".", ms=3, lw=1, label=f"{labels[method]} ({first[method].task})"
            )
    ax.set_xlabel("targeted matrix (model order)")
    ax.set_ylabel("sparsity")
    ax.set_ylim(0, 1)
    ax.set_title(f"{table.table_id}: per-layer sparsity at the end of the run")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def plot_languages(table: PublishedTable, runs: list[RunResult], task: str, path: Path) -> bool:
    """Grouped bars: per-language score (x100, mean over seeds) at the table point, one bar per method."""
    metric = next(c.metric for c in table.columns if c.task == task)
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        if run.task != task:
            continue
        point = select_point(run, table, metric)
        for key, value in (point or {}).items():
            parts = key.split("/")
            if len(parts) == 3 and parts[0] == "val" and parts[2] == metric and not parts[1].startswith("avg"):
                scores[run.row][parts[1]].append(100 * value)
    languages = sorted({lang for per in scores.values() for lang in per})
    if not languages:
        return False
    methods = [m for m in table.methods if m in scores]
    labels = _labels(table)
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(languages)), 4.5))
    for k, method in enumerate(methods):
        heights = [statistics.mean(scores[method][x]) if scores[method][x] else 0.0 for x in languages]
        ax.bar([i + k * width for i in range(len(languages))], heights, width, label=labels[method])
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(languages))], languages)
    ax.set_ylabel(f"{metric} (x100)")
    ax.set_title(f"{table.table_id}: {task} per language (zero-shot except en)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
