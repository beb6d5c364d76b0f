"""The project's modules stop a fit on a non-finite loss or weight, with no callback at all (models/base.py)."""

from __future__ import annotations

import pytest
import torch
from pytorch_lightning import seed_everything

from lightning_compress.callbacks import GradualMagnitudePruning
from lightning_compress.models import SequenceClassificationModule
from lightning_compress.tasks import TaskSpec

SST2 = TaskSpec(name="sst2", num_labels=2, kind="classification", metrics=("accuracy",))


class NanAtStep(SequenceClassificationModule):
    """The project's module whose training loss is NaN at one global step."""

    nan_step = 2

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        return loss * float("nan") if self.global_step == self.nan_step else loss


@pytest.mark.parametrize("log_every_n_steps", [1, 50])
def test_nan_loss_stops_the_fit_without_callbacks(tiny_bert, make_loader, make_trainer, log_every_n_steps):
    """Caught at the next logging step, or (logging every 50 steps of a 5-step run) at the end of training."""
    seed_everything(0)
    module = NanAtStep(tiny_bert, task_spec=SST2, lr=1e-3)
    trainer = make_trainer(max_epochs=1, limit_train_batches=5, log_every_n_steps=log_every_n_steps)
    with pytest.raises(FloatingPointError, match=r"The training loss is nan at global step 2\b"):
        trainer.fit(module, make_loader(n=20))
    assert trainer.global_step == (3 if log_every_n_steps == 1 else 5)


def test_one_guard_checks_when_module_and_callbacks_both_have_one(tiny_bert, make_loader, make_trainer):
    seed_everything(0)
    module = NanAtStep(tiny_bert, task_spec=SST2, lr=1e-3)
    pruning = GradualMagnitudePruning(final_sparsity=0.5, schedule="one_shot", start=1)
    trainer = make_trainer(max_epochs=1, limit_train_batches=5, log_every_n_steps=2, callbacks=[pruning])
    with pytest.raises(FloatingPointError, match=r"The training loss is nan at global step 2\b"):
        trainer.fit(module, make_loader(n=20))
    assert not pruning.non_finite_guard._losses  # the module's guard is the one that checks


def test_float16_true_overflow_on_cpu_stops_the_fit(tiny_bert, make_loader, make_trainer):
    """precision="16-true": a learning rate of 1e5 pushes the float16 weights past 65504 in the first step."""
    seed_everything(0)
    module = SequenceClassificationModule(tiny_bert, task_spec=SST2, lr=1e5, warmup_fraction=0.0)
    trainer = make_trainer(max_epochs=1, limit_train_batches=4, log_every_n_steps=1, precision="16-true")
    with pytest.raises(FloatingPointError, match=r"Parameter `model\.[\w.]+` is not finite at global step 1 \("):
        trainer.fit(module, make_loader(n=16))
    assert next(module.parameters()).dtype == torch.float16
