import pytest
import torch
from pytorch_lightning import Callback

from lightning_compress.callbacks import GradualUnfreezing
from tests.callbacks.test_gradient_dropout import fit
from tests.tiny import UserModule, assert_resume_exact, loader, make_trainer


class EpochSnapshots(Callback):
    """Weights at the start and end of every epoch, and the requires_grad flags during it."""

    def __init__(self):
        self.start, self.end, self.trainable = {}, {}, {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0:
            epoch = trainer.current_epoch
            self.start[epoch] = {n: p.detach().clone() for n, p in pl_module.named_parameters()}
            self.trainable[epoch] = {n for n, p in pl_module.named_parameters() if p.requires_grad}

    def on_train_epoch_end(self, trainer, pl_module):
        self.end[trainer.current_epoch] = {n: p.detach().clone() for n, p in pl_module.named_parameters()}


def frozen_and_moved(snapshots, epoch):
    start, end = snapshots.start[epoch], snapshots.end[epoch]
    frozen = {n for n in start if torch.equal(start[n], end[n])}
    return frozen, set(start) - frozen


@pytest.mark.parametrize(
    "order, first, second",
    [("top_down", "encoder.layer.1.", "encoder.layer.0."), ("bottom_up", "encoder.layer.0.", "encoder.layer.1.")],
)
def test_unfreezes_one_block_per_epoch_and_frozen_weights_stay_bit_identical_under_adamw(order, first, second):
    snapshots = EpochSnapshots()
    unfreezing = GradualUnfreezing(order=order, layers_per_step=1)
    module = fit([unfreezing, snapshots], UserModule(weight_decay=0.1, dropout=0.0), max_epochs=3, n=32)
    names = {n for n, _ in module.named_parameters()}
    embeddings = {n for n in names if ".embeddings." in n}
    head = {n for n in names if "pooler" in n or "classifier" in n}
    # docs/methods.md#unfrozen-block-count: epoch e trains min(k * e, L) blocks; the embeddings come after the last
    # block
    expected_frozen = [
        embeddings | {n for n in names if second in n},
        embeddings,
        set(),
    ]
    for epoch, frozen_names in enumerate(expected_frozen):
        frozen, moved = frozen_and_moved(snapshots, epoch)
        assert frozen == frozen_names, epoch  # frozen: bit-identical (no weight decay, no momentum)
        assert head <= moved and {n for n in names if first in n} <= moved
        assert snapshots.trainable[epoch] == names - frozen_names
    assert all(p.requires_grad for p in module.parameters())  # restored after fit


def test_every_n_epochs_and_user_frozen_parameters():
    snapshots = EpochSnapshots()
    module = UserModule(dropout=0.0)
    module.model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    fit([GradualUnfreezing(layers_per_step=1, every_n_epochs=2), snapshots], module, max_epochs=3, n=16)
    blocks = [{n for n in snapshots.start[0] if f"encoder.layer.{i}." in n} for i in (0, 1)]
    assert blocks[0] <= frozen_and_moved(snapshots, 0)[0] and blocks[0] <= frozen_and_moved(snapshots, 1)[0]
    assert blocks[0] <= frozen_and_moved(snapshots, 2)[1]
    word = "model.bert.embeddings.word_embeddings.weight"
    assert word not in snapshots.trainable[2] and not module.model.bert.embeddings.word_embeddings.weight.requires_grad


def test_resume_from_a_mid_epoch_checkpoint_is_exact(tmp_path):
    """12 steps (4 per epoch), a block unfrozen as each epoch starts: the step-6 checkpoint lies inside epoch 1."""
    assert_resume_exact(
        lambda: [GradualUnfreezing(layers_per_step=1)],
        stop_at_step=6,
        tmp_path=tmp_path,
        make_loader=lambda: loader(32),
        max_epochs=3,
    )


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"order": "random"}, ValueError, r"`GradualUnfreezing\(order='random'\)` is invalid: expected one of"),
        ({"every_n_epochs": 0}, ValueError, r"every_n_epochs=0\)` is invalid: expected an int >= 1"),
        ({"layers_per_step": "2"}, TypeError, r"layers_per_step='2'\)` is invalid"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        GradualUnfreezing(**kwargs)


def test_model_without_transformer_blocks_is_rejected_at_setup():
    class Linear(UserModule):
        def __init__(self):
            super().__init__()
            self.model = torch.nn.Linear(2, 2)

    with pytest.raises(ValueError, match=r"found no trainable transformer block .* first parameter names are"):
        make_trainer([GradualUnfreezing()]).fit(Linear(), loader(8))
