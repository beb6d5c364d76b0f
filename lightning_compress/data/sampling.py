"""Training-order sampler whose permutation depends only on (seed, epoch), so resumed runs see the same batches."""

from __future__ import annotations

from collections.abc import Iterator, Sized

import torch
from torch.utils.data import RandomSampler


class EpochSeededRandomSampler(RandomSampler):
    """A random permutation per epoch drawn from ``torch.Generator().manual_seed(seed + epoch)``.

    A plain shuffled ``DataLoader`` draws from one generator that advances across epochs, so a run resumed at
    epoch ``e`` (with a fresh generator) would see epoch 0's order again. Lightning calls :meth:`set_epoch` at
    the start of every epoch, which makes the order a pure function of ``(seed, epoch)``. Being a
    ``RandomSampler``, it is replaced by a shuffling ``DistributedSampler`` (also epoch-seeded) under DDP.
    """

    def __init__(self, data_source: Sized, seed: int = 0) -> None:
        super().__init__(data_source)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        yield from torch.randperm(len(self.data_source), generator=generator).tolist()
