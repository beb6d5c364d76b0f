"""What a sweep shows and writes: a live rich table, ``best_config.yaml``, ``trials.csv`` and PNG plots."""

from __future__ import annotations

import csv
import math
from typing import TYPE_CHECKING

import torch
import yaml
from rich.console import Console
from rich.live import Live
from rich.table import Table

from lightning_compress.extras import extra_hint, has_module, import_extra
from lightning_compress.tuner.journal import Journal, Trial
from lightning_compress.tuner.search import fit_gp

if TYPE_CHECKING:
    from lightning_compress.tuner.tuner import SparsityTuner, TunerResult

__all__ = ["LiveTable", "trials_table", "write_outputs"]


def trials_table(tuner: SparsityTuner, trials: list[Trial]) -> Table:
    """A rich table of the trials: id, stage, knobs, status, metric, objective, seconds."""
    table = Table(title=f"sweep {tuner.out_dir}")
    for column in ("id", "stage", *[k.path.split(".")[-1] for k in tuner.knobs], "status", tuner.metric):
        table.add_column(column)
    if tuner.objective:
        table.add_column(tuner.objective)
    table.add_column("s")
    styles = {"done": "green", "failed": "red", "running": "yellow", "queued": "dim"}
    for trial in trials:
        metric = trial.metrics.get(tuner.metric)
        row = [str(trial.id), trial.stage, *[f"{trial.knobs.get(k.path, float('nan')):.4f}" for k in tuner.knobs]]
        row += [f"[{styles.get(trial.status, '')}]{trial.status}[/]", "" if metric is None else f"{metric:.4f}"]
        if tuner.objective:
            value = trial.metrics.get(tuner.objective)
            row.append("" if value is None else f"{value:.4g}")
        row.append("" if trial.seconds is None else f"{trial.seconds:.0f}")
        table.add_row(*row)
    return table


class LiveTable:
    """Context manager redrawing the trials table on every journal change (plain prints when disabled)."""

    def __init__(self, tuner: SparsityTuner, enabled: bool = True) -> None:
        self.tuner, self.enabled = tuner, enabled
        self._live: Live | None = None
        self._seen: dict[int, str] = {}

    def __enter__(self) -> LiveTable:
        if self.enabled:
            self._live = Live(Table(), console=Console(), refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def update(self, journal: Journal) -> None:
        trials = journal.trials()
        if self._live is not None:
            self._live.update(trials_table(self.tuner, trials))
            return
        for trial in trials:
            if self._seen.get(trial.id) != trial.status:
                self._seen[trial.id] = trial.status
                metric = trial.metrics.get(self.tuner.metric)
                print(f"trial {trial.id} [{trial.stage}] {trial.knobs} {trial.status} {metric}", flush=True)


def write_outputs(tuner: SparsityTuner, result: TunerResult, journal: Journal) -> None:
    """``best_config.yaml``, ``trials.csv``, ``metric_vs_knob.png`` and ``trace.png`` in ``tuner.out_dir``.

    The two plots need matplotlib (the ``report`` extra); without it they are skipped and the printed summary says so.
    """
    out = tuner.out_dir
    (out / "best_config.yaml").write_text(yaml.safe_dump(result.config, sort_keys=False))
    trials = journal.trials()
    metric_keys = sorted({k for t in trials for k in t.metrics})
    knob_keys = [k.path for k in tuner.knobs]
    with (out / "trials.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "stage", "status", *knob_keys, *metric_keys, "seconds", "attempts", "run_dir", "error"])
        for t in trials:
            writer.writerow(
                [
                    t.id,
                    t.stage,
                    t.status,
                    *[t.knobs.get(k) for k in knob_keys],
                    *[t.metrics.get(k) for k in metric_keys],
                    t.seconds,
                    t.attempts,
                    t.run_dir,
                    (t.error or "").splitlines()[0] if t.error else "",
                ]
            )
    written = [out / "best_config.yaml", out / "trials.csv"]
    if has_module("matplotlib"):
        _plot(tuner, result, trials)
        written += [out / "metric_vs_knob.png", out / "trace.png"]
        skipped = ""
    else:
        skipped = f"\nplots skipped: they need matplotlib, {extra_hint('matplotlib')}"
    Console().print(
        f"level {result.level:.4f} (dense {result.dense_metric:.4f}); best: "
        + (
            f"trial {result.best.id} {result.best.knobs} {tuner.metric}={result.best.metrics.get(tuner.metric)}"
            if result.best
            else "no feasible trial"
        )
        + f"\nwrote {', '.join(str(path) for path in written)}{skipped}",
        markup=False,  # "[report]" in the hint is text, not a rich style
    )


def _plot(tuner: SparsityTuner, result: TunerResult, trials: list[Trial]) -> None:
    import_extra("matplotlib", "Plotting a sweep").use("Agg")
    plt = import_extra("matplotlib.pyplot", "Plotting a sweep")

    knob = tuner.knobs[0]
    points = [(t.knobs[knob.path], t.metrics.get(tuner.metric, float("nan")), t.status) for t in trials]
    finite = [(x, y) for x, y, s in points if s == "done" and not math.isnan(y)]
    figure, axis = plt.subplots(figsize=(6, 4))
    if len(finite) >= 2:
        train_x = torch.tensor([[(x - knob.low) / (knob.high - knob.low)] for x, _ in finite], dtype=torch.double)
        train_y = torch.tensor([[y] for _, y in finite], dtype=torch.double)
        model = fit_gp(train_x, train_y)
        grid = torch.linspace(0, 1, 200, dtype=torch.double).view(-1, 1)
        with torch.no_grad():
            posterior = model.posterior(grid)
        mean = posterior.mean.view(-1)
        std = posterior.variance.clamp_min(0).sqrt().view(-1)
        xs = knob.low + (knob.high - knob.low) * grid.view(-1)
        axis.plot(xs, mean, label="GP mean")
        axis.fill_between(xs, mean - 2 * std, mean + 2 * std, alpha=0.2, label="± 2σ")
    for status, marker in (("done", "o"), ("failed", "x")):
        chosen = [(x, y if not math.isnan(y) else result.level) for x, y, s in points if s == status]
        if chosen:
            axis.scatter(
                *zip(*chosen, strict=True),
                marker=marker,
                color="k" if status == "done" else "r",
                label=f"{status} trials",
                zorder=3,
            )
    axis.axhline(result.level, color="r", linestyle="--", label="level")
    if result.best is not None:
        axis.axvline(result.best.knobs[knob.path], color="g", linestyle=":", label="best")
    axis.set_xlabel(knob.path.split(".")[-1])
    axis.set_ylabel(tuner.metric)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(tuner.out_dir / "metric_vs_knob.png", dpi=120)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(6, 3))
    ordered = [(t.id, t.knobs[knob.path]) for t in trials if t.stage != "dense"]
    if ordered:
        axis.plot(*zip(*ordered, strict=True), marker="o")
    axis.set_xlabel("trial")
    axis.set_ylabel(f"proposed {knob.path.split('.')[-1]}")
    axis.set_title("search trace")
    figure.tight_layout()
    figure.savefig(tuner.out_dir / "trace.png", dpi=120)
    plt.close(figure)
