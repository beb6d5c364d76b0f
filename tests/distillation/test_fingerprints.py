import pytest
import torch

from lightning_compress.distillation import input_fingerprints
from lightning_compress.distillation.fingerprints import FINGERPRINT_BASES, FINGERPRINT_PRIMES


def test_hand_computed_value():
    (r1, r2), (p1, p2) = FINGERPRINT_BASES, FINGERPRINT_PRIMES
    expected = 2**62 + ((6 + 8 * r1) % p1) * 2**31 + (6 + 8 * r2) % p2  # ids 5, 7 -> terms (x + 1) r^rank
    assert input_fingerprints(torch.tensor([[5, 7]])).tolist() == [expected]


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_padding_is_ignored_and_order_length_and_ids_count(dtype):
    ids = torch.tensor([[5, 7, 0, 0], [0, 0, 5, 7], [7, 5, 0, 0], [5, 7, 0, 0], [5, 8, 0, 0]], dtype=dtype)
    mask = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 0, 0]])
    right, left, swapped, longer, other = input_fingerprints(ids, mask).tolist()
    assert right == left == input_fingerprints(torch.tensor([5, 7])).item()
    assert len({right, swapped, longer, other}) == 4
    assert input_fingerprints(ids, mask).dtype == torch.int64


def test_large_ids_do_not_overflow_and_all_values_are_tagged():
    ids = torch.randint(0, 2**31 - 2, (256, 512), generator=torch.Generator().manual_seed(0))
    fingerprints = input_fingerprints(ids)
    assert fingerprints.unique().numel() == 256
    assert bool(((fingerprints >= 2**62) & (fingerprints > 0)).all())
