import torch

from lightning_compress.data.sampling import EpochSeededRandomSampler


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
