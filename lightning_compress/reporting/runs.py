"""Finished reproduction runs read back from their folders: metadata, validation history, per-layer sparsity."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from lightning_compress.reporting.published import PublishedTable
from lightning_compress.reporting.run_record import SPARSITY_KEY

__all__ = ["RunResult", "load_runs", "metric_value", "select_point"]

# a validation counts as "at the table point" if its sparsity is at most the target plus this slack
_SPARSITY_SLACK = 5e-3
# the keys of result.json that place a run in a table
_RESULT_KEYS = ("table", "row", "task", "seed")


@dataclass
class RunResult:
    """One finished run: what it reproduces and every validation it logged (``history``, in order)."""

    table: str
    row: str
    task: str
    seed: int
    scale: str
    run_dir: Path
    history: list[dict[str, float]]
    layer_sparsity: dict[str, float] = field(default_factory=dict)


def _read_history(run_dir: Path) -> list[dict[str, float]]:
    """Validation rows of the run's CSVLogger file(s): rows holding a ``val/`` metric, numbers only."""
    rows: list[dict[str, float]] = []
    for path in sorted(run_dir.rglob("metrics.csv")):
        with open(path) as handle:
            for raw in csv.DictReader(handle):
                row = {}
                for key, value in raw.items():
                    if value in ("", None):
                        continue
                    try:
                        row[key] = float(value)
                    except ValueError:
                        continue
                if any(key.startswith("val/") for key in row):
                    rows.append(row)
    return rows


def _read_run_json(path: Path) -> dict:
    """The JSON object in ``path`` (a file of a run folder); ``ValueError`` naming the file, line and fix if it is
    truncated or not an object."""
    fix = (
        f"HINT: delete the run folder '{path.parent}' and run `lightning-compress reproduce` for its table again "
        "(runs with a result.json are skipped, so only this one is re-run), or delete the folder to leave the run "
        "out of the report."
    )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(
            f"'{path}', line {error.lineno}, column {error.colno}: not valid JSON ({error.msg}); the run was probably "
            f"interrupted while writing it. {fix}"
        ) from None
    except UnicodeDecodeError:
        raise ValueError(f"'{path}' is not UTF-8 text; expected the JSON written by the run. {fix}") from None
    if not isinstance(data, dict):
        raise ValueError(f"'{path}' holds a JSON {type(data).__name__}, expected an object. {fix}")
    return data


def load_runs(runs_dir: str | Path) -> list[RunResult]:
    """Every finished run (a folder with ``result.json``) under ``runs_dir``.

    The history comes from ``metrics.csv``; a run without one contributes its final metrics
    (``result.json["metrics"]``) as a single validation. A truncated or incomplete ``result.json`` or
    ``layer_sparsity.json`` raises a ``ValueError`` naming the file and saying how to fix it.
    """
    results = []
    for path in sorted(Path(runs_dir).rglob("result.json")):
        meta = _read_run_json(path)
        missing = [key for key in _RESULT_KEYS if key not in meta]
        if missing:
            raise ValueError(
                f"'{path}' lacks the keys {missing} (expected {list(_RESULT_KEYS)}, found {sorted(meta)}). HINT: "
                f"delete the run folder '{path.parent}' and run `lightning-compress reproduce` for its table again."
            )
        run_dir = path.parent
        history = _read_history(run_dir)
        if not history and meta.get("metrics"):
            history = [{k: float(v) for k, v in meta["metrics"].items()}]
        layers_file = run_dir / "layer_sparsity.json"
        layers = _read_run_json(layers_file).get("layers", {}) if layers_file.is_file() else {}
        results.append(
            RunResult(
                table=meta["table"],
                row=meta["row"],
                task=meta["task"],
                seed=int(meta["seed"]),
                scale=meta.get("scale", "full"),
                run_dir=run_dir,
                history=history,
                layer_sparsity=layers,
            )
        )
    return results


def metric_value(validation: dict[str, float], metric: str, language: str | None = None) -> float | None:
    """The column's metric in one validation: ``val/avg/<metric>`` (cross-lingual: mean over languages) or
    ``val/<metric>``; with ``language``, ``val/<language>/<metric>``."""
    keys = [f"val/{language}/{metric}"] if language else [f"val/avg/{metric}", f"val/{metric}"]
    for key in keys:
        value = validation.get(key)
        if value is not None and math.isfinite(value):
            return value
    return None


def select_point(run: RunResult, table: PublishedTable, metric: str) -> dict[str, float] | None:
    """The validation of ``run`` that corresponds to the table's reported point.

    * Pruned runs of a pruning table: the last validation whose prunable sparsity is at most the table's
      (``1 - remaining``), i.e. the end of the recovery interval of that pruning step
      (docs/methods.md#where-pruning-results-are-read).
    * ``selection="best_en"`` tables: the validation with the best English score (cross-lingual model selection);
      without an English score, the last one.
    * Otherwise the last validation.
    """
    history = [row for row in run.history if metric_value(row, metric) is not None]
    if not history:
        return None
    remaining = table.remaining_for(run.task)
    sparsities = [row.get(SPARSITY_KEY) for row in history]
    if remaining is not None and any(s is not None and s > _SPARSITY_SLACK for s in sparsities):
        target = 1.0 - remaining
        eligible = [row for row in history if row.get(SPARSITY_KEY, 0.0) <= target + _SPARSITY_SLACK]
        return eligible[-1] if eligible else history[0]
    if table.selection == "best_en":
        english = [row for row in history if metric_value(row, metric, "en") is not None]
        if english:
            return max(english, key=lambda row: metric_value(row, metric, "en"))  # type: ignore[arg-type, return-value]
    return history[-1]
