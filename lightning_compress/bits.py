"""Bit packing of boolean tensors (8 entries per byte), used by the compressed exports."""

from __future__ import annotations

import torch
from torch import Tensor

_BIT_WEIGHTS = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8)


def pack_bits(mask: Tensor) -> Tensor:
    """Pack a boolean tensor into ``ceil(numel / 8)`` bytes, little-endian within each byte.

    Example:
        >>> pack_bits(torch.tensor([True, False, True, True, False, False, False, False, True]))
        tensor([13,  1], dtype=torch.uint8)
    """
    flat = mask.reshape(-1).to(torch.uint8).cpu()
    padded = torch.cat([flat, flat.new_zeros(-flat.numel() % 8)])
    return (padded.view(-1, 8) * _BIT_WEIGHTS).sum(dim=1, dtype=torch.uint8)


def unpack_bits(packed: Tensor, numel: int) -> Tensor:
    """Inverse of :func:`pack_bits`: the first ``numel`` bits as a flat ``bool`` tensor."""
    bits = packed.reshape(-1, 1).bitwise_and(_BIT_WEIGHTS.to(packed.device)).ne(0)
    return bits.reshape(-1)[:numel]
