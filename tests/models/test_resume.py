"""Resuming a fit of the project's modules from a checkpoint is bitwise exact, dropout included."""

import torch
from pytorch_lightning import seed_everything
from pytorch_lightning.callbacks import ModelCheckpoint

from lightning_compress.callbacks import GradualMagnitudePruning
from lightning_compress.models import SequenceClassificationModule
from lightning_compress.tasks import TaskSpec

SPEC = TaskSpec(name="toy", num_labels=2, kind="classification", metrics=("accuracy",))


def _fit(tiny_bert, make_loader, make_trainer, directory, ckpt_path=None):
    seed_everything(0)
    module = SequenceClassificationModule(tiny_bert, task_spec=SPEC, lr=1e-3)
    assert module.model.config.hidden_dropout_prob > 0  # dropout is on: the RNG state matters
    checkpoints = ModelCheckpoint(dirpath=directory, save_top_k=-1, every_n_epochs=1, filename="{epoch}")
    pruning = GradualMagnitudePruning(final_sparsity=0.6, start=0.2, end=0.7, every_n_steps=2)
    trainer = make_trainer(max_epochs=3, callbacks=[pruning, checkpoints], enable_checkpointing=True)
    trainer.fit(module, make_loader(16), make_loader(8, seed=1), ckpt_path=ckpt_path)
    return module


def test_resume_with_dropout_is_bitwise_exact(tiny_bert, make_loader, make_trainer, tmp_path):
    full = _fit(tiny_bert, make_loader, make_trainer, tmp_path / "full")
    resumed = _fit(tiny_bert, make_loader, make_trainer, tmp_path / "resumed", tmp_path / "full" / "epoch=0.ckpt")
    for (name, a), (_, b) in zip(full.named_parameters(), resumed.named_parameters()):
        assert torch.equal(a, b), name
