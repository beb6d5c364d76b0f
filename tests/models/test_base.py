"""TransformerTaskModule (models/base.py): resuming a fit from a mid-epoch checkpoint is bitwise exact, dropout
included, because the module saves the CPU random state and the project's train loaders resume mid-epoch."""

import pytest

from lightning_compress.callbacks import GradualMagnitudePruning
from lightning_compress.models import SequenceClassificationModule
from lightning_compress.tasks import TaskSpec
from tests.tiny import assert_resume_exact

# Lightning 2.6 leaves the train loader's mid-epoch state pending when `configure_optimizers` reads
# `trainer.estimated_stepping_batches` (the module's warm-up schedule does); `on_train_start` applies it.
SPEC = TaskSpec(name="toy", num_labels=2, kind="classification", metrics=("accuracy",))


@pytest.mark.parametrize("stop_at_step", [3, 8])  # 4 steps per epoch: inside epoch 0, and the end of epoch 1
def test_resume_with_dropout_is_bitwise_exact(tiny_bert, make_loader, tmp_path, stop_at_step):
    def module():
        module = SequenceClassificationModule(tiny_bert, task_spec=SPEC, lr=1e-3)
        assert module.model.config.hidden_dropout_prob > 0  # dropout is on: the random state matters
        return module

    assert_resume_exact(
        lambda: [GradualMagnitudePruning(final_sparsity=0.6, start=0.2, end=0.7, every_n_steps=2)],
        stop_at_step=stop_at_step,
        tmp_path=tmp_path,
        make_module=module,
        make_loader=lambda: make_loader(16),
        make_val_loader=lambda: make_loader(8, seed=1),
        max_epochs=3,
        mid_epoch=stop_at_step != 8,
    )
