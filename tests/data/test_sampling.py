import pytest
import torch
from pytorch_lightning import LightningModule, seed_everything
from pytorch_lightning.callbacks import ModelCheckpoint

from lightning_compress.data.sampling import EpochSeededRandomSampler, ResumableDataLoader
from tests.tiny import make_trainer


def test_order_depends_only_on_seed_and_epoch():
    data = list(range(50))
    first, second = EpochSeededRandomSampler(data, seed=3), EpochSeededRandomSampler(data, seed=3)
    epoch0 = list(first)
    first.set_epoch(1)
    epoch1 = list(first)
    second.set_epoch(1)  # a resumed run jumps straight to epoch 1
    assert list(second) == epoch1
    assert epoch0 != epoch1 and sorted(epoch1) == data
    assert epoch0 == torch.randperm(50, generator=torch.Generator().manual_seed(3)).tolist()


class Recording(LightningModule):
    """Records each step's batch and one draw of the global generator (as dropout would); saves the CPU random state
    in checkpoints, like the project's modules."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.seen = []

    def training_step(self, batch, batch_idx):
        self.seen.append((self.current_epoch, batch.tolist(), torch.rand(()).item()))
        return self.layer(batch.float()[:, None]).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def on_save_checkpoint(self, checkpoint):
        checkpoint["rng"] = torch.get_rng_state()

    def on_load_checkpoint(self, checkpoint):
        torch.set_rng_state(checkpoint["rng"])


def _fit(tmp_path, callbacks=(), ckpt_path=None):
    seed_everything(0)
    module, data = Recording(), list(range(10))
    loader = ResumableDataLoader(data, batch_size=4, sampler=EpochSeededRandomSampler(data, seed=3))
    enable_checkpointing = any(isinstance(callback, ModelCheckpoint) for callback in callbacks)
    make_trainer(callbacks, max_epochs=3, enable_checkpointing=enable_checkpointing, default_root_dir=tmp_path).fit(
        module, loader, ckpt_path=ckpt_path
    )
    return module.seen


@pytest.mark.parametrize("stop_at_step", [4, 6])  # 3 batches per epoch: mid-epoch 1, end of epoch 1
def test_resumable_loader_continues_mid_epoch_with_the_next_batch_and_the_same_random_draws(tmp_path, stop_at_step):
    full = _fit(tmp_path / "full")
    assert len(full) == 9 and [epoch for epoch, _, _ in full] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    checkpoints = ModelCheckpoint(tmp_path, "{step}", save_top_k=-1, every_n_train_steps=stop_at_step)
    stopped = _fit(tmp_path / "stopped", [checkpoints])
    assert stopped == full
    resumed = _fit(tmp_path / "resumed", ckpt_path=tmp_path / f"step={stop_at_step}.ckpt")
    # the batches after the checkpoint, in the same order, with the same draws of the global generator
    assert resumed == full[stop_at_step:]


def test_resumable_loader_state_counts_the_batches_of_the_current_epoch():
    loader = ResumableDataLoader(list(range(10)), batch_size=4)
    assert [len(batch) for batch in loader] == [4, 4, 2]
    assert loader.state_dict() == {"batches_consumed": 3, "epoch": None}
    batches = iter(loader)
    assert loader.state_dict()["batches_consumed"] == 0
    next(batches)
    assert loader.state_dict()["batches_consumed"] == 1
    resumed = ResumableDataLoader(list(range(10)), batch_size=4)
    resumed.load_state_dict({"batches_consumed": 2, "epoch": None})
    assert [batch.tolist() for batch in resumed] == [[8, 9]]
    assert [len(batch) for batch in resumed] == [4, 4, 2]  # the skip applies to the next iteration only
    resumed.load_state_dict({"batches_consumed": 3, "epoch": None})  # saved after the epoch's last batch
    assert [len(batch) for batch in resumed] == [4, 4, 2]


def test_resumable_loader_skips_only_in_the_epoch_it_was_saved_in():
    data = list(range(10))
    loader = ResumableDataLoader(data, batch_size=4, sampler=EpochSeededRandomSampler(data, seed=3))
    loader.sampler.set_epoch(1)
    batches = iter(loader)
    next(batches)
    state = loader.state_dict()
    assert state == {"batches_consumed": 1, "epoch": 1}
    resumed = ResumableDataLoader(data, batch_size=4, sampler=EpochSeededRandomSampler(data, seed=3))
    resumed.load_state_dict(state)
    batches = iter(resumed)
    resumed.sampler.set_epoch(1)  # Lightning sets the epoch after making the iterator
    assert [batch.tolist() for batch in batches] == [batch.tolist() for batch in loader][1:]
    resumed.load_state_dict({"batches_consumed": 2, "epoch": 0})  # a checkpoint of the previous epoch
    assert len(list(resumed)) == 3
