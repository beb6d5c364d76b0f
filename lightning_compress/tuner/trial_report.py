"""``TrialReport``: the callback a tuner trial carries to hand its metrics back."""

from __future__ import annotations

import json
import math
from pathlib import Path

from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.utilities import rank_zero_only

__all__ = ["TrialReport"]


class TrialReport(Callback):
    """Write the trial's last validation metrics to ``out`` (JSON) after every validation and at the end of fit.

    Besides every scalar in ``trainer.callback_metrics`` it adds ``trial/nonzero_params`` and
    ``trial/nonzero_mb`` (bytes of the non-zero parameters at fp32, Condensa's memory footprint, Condensa
    §4), usable as stage-2 objectives.

    Args:
        out: Path of the JSON file.
    """

    def __init__(self, out: str) -> None:
        self.out = out

    @rank_zero_only
    def _write(self, trainer: Trainer, pl_module: LightningModule) -> None:
        metrics = {}
        for key, value in trainer.callback_metrics.items():
            try:
                metrics[key] = float(value)
            except (TypeError, ValueError):
                continue
        nonzero = sum(int(p.count_nonzero()) for p in pl_module.parameters())
        metrics["trial/nonzero_params"] = float(nonzero)
        metrics["trial/nonzero_mb"] = nonzero * 4 / 2**20
        payload = {k: (v if math.isfinite(v) else repr(v)) for k, v in metrics.items()}
        path = Path(self.out)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload))
        tmp.replace(path)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._write(trainer, pl_module)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, pl_module)
