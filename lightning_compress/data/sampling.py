"""Training order that a resumed run replays: an epoch-seeded sampler and a loader that resumes mid-epoch."""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any

import torch
from torch.utils.data import DataLoader, RandomSampler


class EpochSeededRandomSampler(RandomSampler):
    """A random permutation per epoch drawn from ``torch.Generator().manual_seed(seed + epoch)``.

    A plain shuffled ``DataLoader`` draws from one generator that advances across epochs, so a run resumed at
    epoch ``e`` (with a fresh generator) would see epoch 0's order again. Lightning calls :meth:`set_epoch` at
    the start of every epoch, which makes the order a pure function of ``(seed, epoch)``. Being a
    ``RandomSampler``, it is replaced by a shuffling ``DistributedSampler`` (also epoch-seeded) under DDP.

    Example:
        >>> sampler = EpochSeededRandomSampler(range(4), seed=0)
        >>> sampler.set_epoch(1)
        >>> list(sampler) == torch.randperm(4, generator=torch.Generator().manual_seed(1)).tolist()
        True
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


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` that Lightning resumes mid-epoch: it saves how many batches of the epoch were consumed.

    Lightning 2.x saves ``state_dict()`` of every training loader that has one in the checkpoint and, when a fit
    resumes inside an epoch, passes it back to ``load_state_dict`` before iterating again. A plain ``DataLoader`` has
    neither, so Lightning restarts the interrupted epoch from its first batch and the resumed run trains on other
    batches than the uninterrupted one. This loader skips the batches the checkpointed run had consumed (they are
    loaded and dropped, so any sampler works, the ``DistributedSampler`` that Lightning sets under DDP included).
    Combined with a sampler whose order depends only on the epoch (:class:`EpochSeededRandomSampler`), a mid-epoch
    resume sees the same batches as the uninterrupted run.

    The skip applies to the epoch the checkpoint was saved in: the sampler's ``epoch`` (set by Lightning through
    ``set_epoch`` before the first batch) is saved and compared when the first batch is asked for, so a checkpoint
    written after an epoch's last batch resumes with the whole next epoch. A sampler without ``epoch`` falls back to
    comparing the count with ``len(loader)``. The uninterrupted run drew its workers' base seed from the global random
    generator before the checkpoint saved that generator's state; a resumed iterator puts the global state back after
    drawing its own, so the steps that follow draw the same dropout masks.

    Example:
        >>> loader = ResumableDataLoader(range(6), batch_size=2)
        >>> batches = iter(loader); next(batches).tolist()
        [0, 1]
        >>> state = loader.state_dict(); state
        {'batches_consumed': 1, 'epoch': None}
        >>> resumed = ResumableDataLoader(range(6), batch_size=2); resumed.load_state_dict(state)
        >>> [batch.tolist() for batch in resumed]
        [[2, 3], [4, 5]]
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batches_consumed = 0
        self._resume_state: dict[str, Any] | None = None

    def __iter__(self) -> Iterator[Any]:
        resume_state, self._resume_state = self._resume_state, None
        self._batches_consumed = 0
        return self._batches(resume_state)

    def _batches(self, resume_state: dict[str, Any] | None) -> Iterator[Any]:
        # runs at the first `next`, after Lightning's `set_epoch`
        skip = self._batches_to_skip(resume_state)
        if skip:
            rng_state = torch.get_rng_state()
            iterator = super().__iter__()
            torch.set_rng_state(rng_state)
        else:
            iterator = super().__iter__()
        self._batches_consumed = skip
        for index, batch in enumerate(iterator):
            if index >= skip:
                self._batches_consumed += 1
                yield batch

    def _batches_to_skip(self, resume_state: dict[str, Any] | None) -> int:
        if resume_state is None:
            return 0
        consumed, epoch = int(resume_state.get("batches_consumed", 0)), resume_state.get("epoch")
        current = self._sampler_epoch()
        if epoch is not None and current is not None:
            return consumed if current == epoch else 0
        try:
            return consumed if consumed < len(self) else 0
        except TypeError:  # an iterable data set without length
            return consumed

    def _sampler_epoch(self) -> int | None:
        for sampler in (getattr(self.batch_sampler, "sampler", None), self.sampler):
            epoch = getattr(sampler, "epoch", None)
            if isinstance(epoch, int):
                return epoch
        return None

    def state_dict(self) -> dict[str, Any]:
        """``{"batches_consumed": n, "epoch": e}``: the batches of the current epoch handed out so far, and the
        sampler's epoch (``None`` when the sampler has none)."""
        return {"batches_consumed": self._batches_consumed, "epoch": self._sampler_epoch()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Skip the first ``state_dict["batches_consumed"]`` batches of the next iteration if it is the same epoch."""
        self._resume_state = dict(state_dict)
