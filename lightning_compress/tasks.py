"""What a task is: label space, problem kind and metrics, shared by DataModules and LightningModules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TaskKind = Literal["classification", "regression", "token_classification"]


@dataclass(frozen=True)
class TaskSpec:
    """Description of a supervised task, produced by a DataModule and consumed by a LightningModule.

    Args:
        name: Short task name (``"sst2"``, ``"xnli"``, ``"bbcnews"``...).
        num_labels: Number of output units; 1 for regression.
        kind: ``"classification"``, ``"regression"`` or ``"token_classification"``.
        metrics: Metric names from :data:`lightning_compress.models.metrics.METRICS`; the first is the main one.
        eval_names: One name per validation/test dataloader (e.g. languages); ``("",)`` for a single set.
        label_names: Human-readable label names, in label-id order (empty for regression).
    """

    name: str
    num_labels: int
    kind: TaskKind
    metrics: tuple[str, ...]
    eval_names: tuple[str, ...] = ("",)
    label_names: tuple[str, ...] = ()

    @property
    def main_metric(self) -> str:
        """Logged name of the main validation metric, e.g. ``val/accuracy`` or ``val/avg/accuracy``."""
        if len(self.eval_names) > 1:
            return f"val/avg/{self.metrics[0]}"
        return f"val/{self.metrics[0]}"
