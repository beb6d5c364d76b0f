"""``RunRecord``: the callback a reproduction run carries so that its results can be tabulated and plotted."""

from __future__ import annotations

import json
import math
from pathlib import Path

from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.utilities import rank_zero_only

from lightning_compress.pruning.masks import sparsity_report

__all__ = ["FINAL_CHECKPOINT", "SPARSITY_KEY", "RunRecord"]

#: Logged at every validation: fraction of exact zeros in the prunable weights (docs/methods.md#measuring-sparsity),
#: i.e. the sparsity
#: at which that validation was measured.
SPARSITY_KEY = "val/prunable_sparsity"
#: File name of the weights-only Lightning checkpoint written with ``save_checkpoint=True`` (the teacher of later runs).
FINAL_CHECKPOINT = "final.ckpt"


def _prunable_names(trainer: Trainer, pl_module: LightningModule) -> list[str] | None:
    """The targets of the run's pruning callback, or ``None`` for the default encoder targets."""
    for callback in trainer.callbacks:
        names = getattr(callback, "target_names", None)
        if names:
            return list(names)
    return None


class RunRecord(Callback):
    """Log the prunable sparsity at every validation and write the run's final numbers to ``out_dir``.

    * ``val/prunable_sparsity`` joins the validation metrics (so the CSV log pairs every score with the sparsity
      it was measured at, which is how the report finds a table's sparsity point);
    * at the end of fit, ``layer_sparsity.json`` (:func:`~lightning_compress.pruning.masks.sparsity_report`:
      per-parameter sparsity, prunable and whole-model sparsity) and ``final_metrics.json`` (every scalar of
      ``trainer.callback_metrics``) are written.

    * with ``save_checkpoint=True``, the final weights as ``final.ckpt`` (a weights-only Lightning checkpoint): the
      teacher that ``lightning-compress reproduce`` hands to the distillation rows of a table.

    Args:
        out_dir: Folder of the files; ``None`` uses ``trainer.log_dir``.
        save_checkpoint: Also write ``final.ckpt`` when training ends.
    """

    def __init__(self, out_dir: str | None = None, save_checkpoint: bool = False) -> None:
        if out_dir is not None and not isinstance(out_dir, str):
            raise TypeError(f"`RunRecord(out_dir={out_dir!r})` is invalid: expected a folder path (str) or None.")
        self.out_dir = out_dir
        self.save_checkpoint = bool(save_checkpoint)

    def _folder(self, trainer: Trainer) -> Path:
        folder = Path(self.out_dir or trainer.log_dir or ".")
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        try:
            report = sparsity_report(pl_module, _prunable_names(trainer, pl_module))
        except (KeyError, ValueError):  # a model without the default targets: nothing to measure
            return
        pl_module.log(SPARSITY_KEY, float(report["prunable"]), rank_zero_only=True)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.save_checkpoint:  # every rank calls it: the strategy decides who writes
            trainer.save_checkpoint(self._folder(trainer) / FINAL_CHECKPOINT, weights_only=True)

    @rank_zero_only
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        folder = self._folder(trainer)
        try:
            report = sparsity_report(pl_module, _prunable_names(trainer, pl_module))
            (folder / "layer_sparsity.json").write_text(json.dumps(report, indent=1))
        except (KeyError, ValueError):
            pass
        metrics = {}
        for key, value in trainer.callback_metrics.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(number):
                metrics[key] = number
        (folder / "final_metrics.json").write_text(json.dumps(metrics, indent=1))
