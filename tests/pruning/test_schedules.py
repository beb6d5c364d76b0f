import pytest

from lightning_compress.pruning.schedules import cubic_sparsity, iterative_sparsity, pruning_events


def test_cubic_hits_endpoints_exactly_and_is_monotone():
    events = pruning_events("cubic", start_step=10, end_step=50, frequency=10, final_sparsity=0.8, initial_sparsity=0.2)
    assert [e.step for e in events] == [10, 20, 30, 40, 50]
    assert events[0].sparsity == 0.2 and events[-1].sparsity == 0.8
    sparsities = [e.sparsity for e in events]
    assert sparsities == sorted(sparsities)
    # s_j = s_f + (s_i - s_f)(1 - j/n)^3 with n = 4, j = 1: 0.8 - 0.6 * 0.421875
    assert sparsities[1] == pytest.approx(0.8 - 0.6 * 0.75**3, abs=1e-12)


def test_cubic_drops_zero_sparsity_event_and_ignores_partial_interval():
    events = pruning_events("cubic", start_step=0, end_step=25, frequency=10, final_sparsity=0.5)
    assert [e.step for e in events] == [10, 20]  # j = 0 has sparsity 0; 30 > end
    assert events[-1].sparsity == 0.5
    assert events[0].sparsity == pytest.approx(0.5 - 0.5 * 0.5**3)


def test_iterative_is_geometric_and_capped():
    # docs/methods.md#measuring-sparsity: remaining 0.9^k; 31.38 % at k = 11, 9.85 % at k = 22
    assert 1 - iterative_sparsity(11, 0.1) == pytest.approx(0.31381, abs=1e-5)
    assert 1 - iterative_sparsity(22, 0.1) == pytest.approx(0.09848, abs=1e-5)
    events = pruning_events(
        "iterative", start_step=0, end_step=1000, frequency=5, final_sparsity=0.5, step_fraction=0.1
    )
    assert [e.step for e in events[:3]] == [5, 10, 15]
    assert events[0].sparsity == pytest.approx(0.1)
    assert events[1].sparsity == pytest.approx(0.19)
    assert events[-1].sparsity == 0.5 and len(events) == 7  # 1 - 0.9^6 = 0.469 < 0.5 <= 1 - 0.9^7


def test_one_shot_and_bad_inputs():
    assert pruning_events("one_shot", start_step=3, end_step=3, frequency=1, final_sparsity=0.7) == [(3, 0.7)]
    with pytest.raises(ValueError, match="Unknown schedule 'linear'"):
        pruning_events("linear", start_step=0, end_step=1, frequency=1, final_sparsity=0.5)
    with pytest.raises(ValueError, match="ends .* before it starts"):
        pruning_events("cubic", start_step=5, end_step=1, frequency=1, final_sparsity=0.5)
    assert cubic_sparsity(3, 0, 0.0, 0.6) == 0.6
