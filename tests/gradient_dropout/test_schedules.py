import pytest

from lightning_compress.gradient_dropout import annealed_drop_probability, unfrozen_count


def test_annealed_p_is_linear_from_0_9_to_0():
    epochs = 10
    ps = [annealed_drop_probability(e, epochs) for e in range(1, epochs + 1)]
    assert ps[0] == 0.9 and ps[-1] == 0.0  # docs/methods.md#annealed-drop-probability-endpoints, exact
    steps = [a - b for a, b in zip(ps, ps[1:])]
    assert steps == pytest.approx([0.1] * (epochs - 1), abs=1e-12)
    assert annealed_drop_probability(epochs + 3, epochs) == 0.0
    assert annealed_drop_probability(1, 1) == 0.9
    assert annealed_drop_probability(2, 3, p_start=0.2, p_end=0.4) == pytest.approx(0.3)


@pytest.mark.parametrize("k, every, layers", [(2, 1, 24), (1, 1, 3), (3, 2, 12)])
def test_unfrozen_count_is_k_per_unfreezing_step(k, every, layers):
    counts = [unfrozen_count(e, layers, k, every) for e in range(1, 30)]
    # docs/methods.md#unfrozen-block-count: after epoch e, min(k * e, L) units (with every_n_epochs=1)
    assert counts == [min(k * -(-e // every), layers) for e in range(1, 30)]
    if (k, every) == (2, 1):
        assert counts[2] == 6  # O'Neill §10.4.1: after 3 epochs, 6 of 24 layers
