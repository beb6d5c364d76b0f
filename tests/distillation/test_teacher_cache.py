import pytest
import torch

from lightning_compress.distillation.teacher_cache import TeacherCache

CPU = torch.device("cpu")


def _filled(owner="TeacherCache"):
    cache = TeacherCache(owner)
    cache.reserve_(3, classes=2, features=1, device=CPU)
    idx = torch.tensor([0, 2])
    missing = cache.missing(idx, torch.tensor([11, 12]))
    cache.store_(
        idx, missing, torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[0.5], [0.25]]), torch.tensor([11, 12])
    )
    return cache


def test_store_and_serve_rows_through_float16():
    cache = _filled()
    assert cache.cached.tolist() == [True, False, True] and cache.count() == 2
    assert cache.logits.dtype == torch.float16 and cache.fingerprints.tolist() == [11, 0, 12]
    logits, features = cache.targets(torch.tensor([2, 0]))
    assert logits.dtype == torch.float32 and logits.tolist() == [[3.0, 4.0], [1.0, 2.0]]
    assert features.tolist() == [[0.25], [0.5]]
    assert cache.missing(torch.tensor([0, 2]), torch.tensor([11, 12])) is None
    assert cache.missing(torch.tensor([1, 2]), None).tolist() == [True, False]


def test_growth_keeps_rows_and_widths():
    cache = _filled()
    cache.reserve_(2, classes=9, features=9, device=CPU)  # never shrinks
    assert cache.size == 3
    cache.reserve_(5, classes=9, features=9, device=CPU)
    assert cache.size == 5 and cache.logits.shape == (5, 2) and cache.features.shape == (5, 1)
    assert cache.cached.tolist() == [True, False, True, False, False] and cache.logits[2].tolist() == [3.0, 4.0]


def test_a_row_served_for_other_input_ids_names_the_idx_and_the_owner():
    cache = _filled("Owner(x=1)")
    with pytest.raises(RuntimeError, match=r"`Owner\(x=1\)`: the cached teacher output of training example idx=2"):
        cache.missing(torch.tensor([0, 2]), torch.tensor([11, 99]))
    cache.fingerprints[2] = 0  # unknown fingerprint (older checkpoint): served unchecked
    assert cache.missing(torch.tensor([0, 2]), torch.tensor([11, 99])) is None


def test_state_dict_round_trip_and_old_states_without_fingerprints():
    cache = _filled()
    state = cache.state_dict()
    assert set(state) == {"cached", "logits", "features", "fingerprints"}
    restored = TeacherCache()
    restored.load_state_dict(state)
    for key in state:
        assert torch.equal(restored.state_dict()[key], state[key]), key
    old = {key: value for key, value in state.items() if key != "fingerprints"}
    restored.load_state_dict(old)
    assert restored.fingerprints.tolist() == [0, 0, 0]
    assert TeacherCache().state_dict() == {}


def test_sync_shares_the_pending_rows_of_every_rank():
    """Two ranks simulated with a fake all_gather that stacks this rank's tensor with the other rank's."""
    rank0, rank1 = _filled(), TeacherCache()
    rank1.reserve_(3, classes=2, features=1, device=CPU)
    idx = torch.tensor([1])
    rank1.store_(idx, torch.tensor([True]), torch.tensor([[5.0, 6.0]]), torch.tensor([[1.0]]), torch.tensor([13]))
    calls = []

    def gather_from(other_values):
        def all_gather(tensor):
            other = other_values.pop(0)
            calls.append(tensor)
            return torch.stack([tensor, other])

        return all_gather

    # what rank 1 sends: its count, rows padded to width 2, payload and fingerprints of those rows
    rank1_sends = [torch.tensor([1]), torch.tensor([1, -1]), torch.tensor([[5.0, 6.0, 1.0], [0.0, 0.0, 0.0]])]
    rank1_sends.append(torch.tensor([13, 0]))
    rank0.sync_(gather_from(rank1_sends))
    assert rank0.cached.tolist() == [True, True, True] and rank0.logits[1].tolist() == [5.0, 6.0]
    assert rank0.fingerprints.tolist() == [11, 13, 12]
    rank0.sync_(None)  # one process: nothing to share, pending rows dropped
    assert rank0._pending == []
