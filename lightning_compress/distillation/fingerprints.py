"""Fingerprints of tokenized examples: tell whether a cached teacher output belongs to the example it is served for.

:func:`input_fingerprints` hashes the non-padding input ids of each example to a 63-bit integer, on the device the
ids live on, with integer arithmetic that gives the same value on every device and DDP rank.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = ["FINGERPRINT_BASES", "FINGERPRINT_PRIMES", "call_input_fingerprints", "input_fingerprints"]

#: The two Mersenne-sized primes ``p_1, p_2 < 2^31`` of the double polynomial hash.
FINGERPRINT_PRIMES = (2_147_483_647, 2_147_483_629)
#: The bases ``r_1, r_2`` of the double polynomial hash (any fixed values in ``[2, p)``).
FINGERPRINT_BASES = (1_000_003, 998_244_353)
_TAG = 1 << 62  # set in every fingerprint, so 0 stays free to mean "no fingerprint"


def _powers(base: int, prime: int, length: int, device: torch.device) -> Tensor:
    values, power = [], 1
    for _ in range(length):
        values.append(power)
        power = power * base % prime
    return torch.tensor(values, dtype=torch.long, device=device)


def input_fingerprints(input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
    r"""A 63-bit fingerprint of each example's non-padding input ids (a double polynomial hash).

    .. math::

        h_k = \sum_{j \in \mathrm{kept}} (x_j + 1)\, r_k^{\,\mathrm{rank}(j)} \bmod p_k,\qquad
        \mathrm{fingerprint} = 2^{62} + 2^{31} h_1 + h_2

    where ``rank(j)`` counts the kept tokens before ``j``, so the value does not depend on how much (left or right)
    padding the batch added. Every product stays below ``2^62``, so int64 arithmetic never overflows and every
    device gives the same value. Two different sequences of ``n`` tokens collide with probability about
    ``(n / 2^31)^2``.

    Args:
        input_ids: A ``batch x T`` integer tensor of token ids in ``[0, 2^31 - 1)`` (a ``T`` tensor is one example).
        attention_mask: An optional ``batch x T`` tensor, nonzero for the kept (non-padding) tokens; ``None`` keeps
            all tokens.

    Returns:
        A ``batch`` int64 tensor on the device of ``input_ids``; every value is in ``[2^62, 2^63)``.

    Example:
        >>> a = input_fingerprints(torch.tensor([[5, 7, 0]]), torch.tensor([[1, 1, 0]]))
        >>> bool(a == input_fingerprints(torch.tensor([[5, 7]]))), bool(a == input_fingerprints(torch.tensor([[7, 5]])))
        (True, False)
    """
    ids = input_ids.long()
    if ids.dim() == 1:
        ids = ids.unsqueeze(0)
    if attention_mask is None:
        keep = torch.ones_like(ids, dtype=torch.bool)
    else:
        keep = attention_mask.reshape(ids.shape) != 0
    rank = (keep.long().cumsum(-1) - 1).clamp_min(0)
    fingerprint = torch.full((ids.shape[0],), _TAG, dtype=torch.long, device=ids.device)
    for base, prime, shift in zip(FINGERPRINT_BASES, FINGERPRINT_PRIMES, (31, 0)):
        powers = _powers(base, prime, ids.shape[-1], ids.device)[rank]
        terms = ((ids + 1) % prime) * powers % prime * keep
        fingerprint += (terms.sum(-1) % prime) << shift
    return fingerprint


def call_input_fingerprints(args: tuple, kwargs: Mapping[str, Any]) -> Tensor | None:
    """:func:`input_fingerprints` of the ``input_ids`` a model was called with: the keyword argument, else the first
    positional one, masked by an ``attention_mask`` keyword argument; ``None`` when the call had no ``input_ids``.

    Example:
        >>> call_input_fingerprints((), {"inputs_embeds": torch.zeros(1, 2, 4)}) is None
        True
    """
    input_ids = kwargs.get("input_ids")
    if input_ids is None and args and isinstance(args[0], Tensor):
        input_ids = args[0]
    if not isinstance(input_ids, Tensor):
        return None
    attention_mask = kwargs.get("attention_mask")
    return input_fingerprints(input_ids, attention_mask if isinstance(attention_mask, Tensor) else None)
