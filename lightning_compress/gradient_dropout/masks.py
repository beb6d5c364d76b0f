"""Gradient-dropout masks (docs/methods.md#gradient-dropout): which gradient entries an optimizer step ignores.

Every mask is drawn from a generator seeded by a stable digest of (seed, schedule position, parameter FQN),
see :func:`mask_generator`. Nothing is carried from one step to the next, so every DDP rank draws the same
mask and a resumed run draws exactly what the uninterrupted run drew, with no generator state to save.

Masks mark the *kept* entries (``True`` / ``1`` = the gradient entry is used), as pruning masks do; ``p`` is the
drop probability (docs/methods.md#drop-probability-versus-keep-probability).
"""

from __future__ import annotations

import hashlib
import math

import torch
from torch import Tensor

#: Element masks compare 16-bit random integers with a threshold, so ``p`` is used rounded to a multiple of
#: ``1 / PROBABILITY_RESOLUTION`` (0.2 -> 0.1999969). Four draws share one 64-bit random word, which makes the
#: mask four times cheaper to draw than with ``torch.rand`` on CPU.
PROBABILITY_RESOLUTION = 2**16

_INT16_MIN = -(2**15)


def mask_seed(seed: int, *key: object) -> int:
    """Stable 63-bit seed for the mask identified by ``key`` (e.g. ``("step", 12, fqn)``).

    A BLAKE2b digest of the parts, so unlike Python's ``hash`` it is the same in every process and run.
    Torch's CPU generator (Mersenne Twister) uses the low 32 bits of a seed; CUDA generators use all of them.

    Example:
        >>> name = "encoder.layer.0.output.dense.weight"
        >>> mask_seed(0, "step", 3, name) != mask_seed(0, "step", 4, name)
        True
    """
    text = "/".join(str(part) for part in (seed, *key))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def mask_generator(seed: int, *key: object, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with :func:`mask_seed` of ``(seed, *key)``."""
    return torch.Generator(device=device).manual_seed(mask_seed(seed, *key))


def _drop_threshold(p: float) -> int:
    """Largest ``t`` with ``P(u <= t) = round(p * 2**16) / 2**16`` for ``u`` uniform on int16 (``-2**15 - 1`` for 0)."""
    return _INT16_MIN - 1 + round(p * PROBABILITY_RESOLUTION)


def element_keep_mask(
    shape: torch.Size | tuple[int, ...],
    p: float,
    generator: torch.Generator,
    *,
    dtype: torch.dtype = torch.bool,
    out: Tensor | None = None,
    scratch: Tensor | None = None,
) -> Tensor:
    r"""Element-wise GradDrop mask: each entry dropped independently with probability ``p`` (O'Neill Eq. 10.3).

    .. math:: g' = g \odot m, \quad m_{ij} \sim \mathrm{Bernoulli}(1 - p)

    ``p`` is rounded to a multiple of ``2**-16`` (:data:`PROBABILITY_RESOLUTION`). A floating ``dtype`` gives a
    ``0/1`` mask that multiplies a gradient faster than a ``bool`` one on CPU.

    Args:
        shape: Shape of the parameter.
        p: Drop probability in ``[0, 1]``.
        generator: Source of randomness, on the device the mask is wanted on.
        dtype: Mask dtype (ignored when ``out`` is given).
        out: Optional flat tensor with at least ``numel`` entries, reused for the result.
        scratch: Optional ``int64`` tensor with at least ``ceil(numel / 4)`` entries, reused for the random words.

    Returns:
        A tensor of ``shape`` (``True`` / ``1`` = kept), a view of ``out`` when given.

    Example:
        >>> element_keep_mask((2, 3), 0.5, mask_generator(0, "step", 0, "w")).dtype
        torch.bool
    """
    numel = math.prod(shape)
    words = (numel + 3) // 4
    device = generator.device
    if scratch is None:
        scratch = torch.empty(words, dtype=torch.int64, device=device)
    if out is None:
        out = torch.empty(numel, dtype=dtype, device=device)
    out = out[:numel]
    threshold = _drop_threshold(p)
    if threshold < _INT16_MIN:  # p rounds to 0: everything kept (and no int16 overflow)
        return out.fill_(1).view(shape)
    randoms = scratch[:words].random_(-(2**63), None, generator=generator).view(torch.int16)[:numel]
    return torch.gt(randoms, threshold, out=out).view(shape)


def group_keeps(groups: list[str], p: float, seed: int, *key: object) -> dict[str, bool]:
    """Layer-GradDrop decisions (docs/methods.md#layer-graddrop): each group (transformer block) is dropped with
    probability ``p``.

    Args:
        groups: Group names (e.g. ``"bert.encoder.layer.3"``).
        p: Drop probability in ``[0, 1]``.
        seed, key: Identify the draw (e.g. ``("step", 12)``); each group draws from its own generator.

    Returns:
        Group name -> ``True`` when the group's gradient is kept, ``False`` when it is dropped as a whole.

    Example:
        >>> group_keeps(["layer.0", "layer.1"], 0.0, 0, "step", 7)
        {'layer.0': True, 'layer.1': True}
    """
    return {group: bool(element_keep_mask((1,), p, mask_generator(seed, *key, group)).item()) for group in groups}


def epoch_chunk_bounds(epoch: int, num_epochs: int, numel: int) -> tuple[int, int]:
    """Positions ``[start, stop)`` of the random permutation that chunk ``epoch`` (1-based) covers
    (docs/methods.md#graddrop-epoch-and-graddrop-epoch-toggle).

    Chunk ``e`` is ``perm[round((e - 1) / T * N) : round(e / T * N)]``, so the ``T`` chunks are disjoint, equal-sized
    up to one entry and cover all ``N`` entries.

    Example:
        >>> [epoch_chunk_bounds(e, 3, 10) for e in (1, 2, 3)]
        [(0, 3), (3, 7), (7, 10)]
    """
    return round((epoch - 1) * numel / num_epochs), round(epoch * numel / num_epochs)


def epoch_keep_mask(
    shape: torch.Size | tuple[int, ...], epoch: int, num_epochs: int, generator: torch.Generator, toggle: bool = False
) -> Tensor:
    """GradDrop-Epoch mask (docs/methods.md#graddrop-epoch-and-graddrop-epoch-toggle): the entries that train in epoch
    ``epoch`` (1-based) of ``num_epochs``.

    A random permutation of the entries (drawn from ``generator``, which must be seeded the same way every epoch)
    is cut into ``num_epochs`` disjoint chunks (:func:`epoch_chunk_bounds`). Accumulative (default): chunks
    ``1..e`` are active in epoch ``e``, so ``round(e / T * N)`` entries train and the last epoch trains all.
    Toggle: only chunk ``e`` is active in epoch ``e``. Epochs after ``num_epochs`` train every entry.

    Args:
        shape: Shape of the parameter.
        epoch: 1-based epoch.
        num_epochs: ``T``, the number of epochs of the schedule.
        generator: Seeded per parameter, independent of the epoch.
        toggle: GradDrop-Epoch-Toggle instead of the accumulative variant.

    Returns:
        A ``bool`` tensor of ``shape`` (``True`` = trains this epoch).

    Example:
        >>> epoch_keep_mask((2, 2), 1, 2, mask_generator(0, "chunks", "w")).sum().item()
        2
    """
    numel = math.prod(shape)
    if epoch > num_epochs:
        return torch.ones(shape, dtype=torch.bool, device=generator.device)
    start, stop = epoch_chunk_bounds(epoch, num_epochs, numel)
    permutation = torch.randperm(numel, generator=generator, device=generator.device)
    keep = torch.zeros(numel, dtype=torch.bool, device=generator.device)
    keep[permutation[start if toggle else 0 : stop]] = True
    return keep.view(shape)
