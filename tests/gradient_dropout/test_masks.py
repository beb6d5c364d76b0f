import math

import pytest
import torch

from lightning_compress.gradient_dropout import (
    PROBABILITY_RESOLUTION,
    element_keep_mask,
    epoch_chunk_bounds,
    epoch_keep_mask,
    group_keeps,
    mask_generator,
    mask_seed,
)

NAME = "bert.encoder.layer.0.output.dense.weight"


def test_mask_seed_is_stable_across_processes_and_distinguishes_keys():
    # pinned value: a BLAKE2b digest, unlike hash(), does not change between interpreter runs
    assert mask_seed(0, "step", 3, NAME) == 2393286886691859867
    seeds = {mask_seed(s, "step", k, n) for s in (0, 1) for k in range(50) for n in (NAME, NAME + "x")}
    assert len(seeds) == 200
    assert all(0 <= s < 2**63 for s in seeds)


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5, 0.9])
def test_element_drop_rate_matches_p(p):
    n = 1_000_000
    keep = element_keep_mask((n,), p, mask_generator(7, "step", 0, NAME))
    rate = 1 - keep.float().mean().item()
    assert abs(rate - p) <= 0.005
    # docs/methods.md#graddrop-keep-fraction: within 3 binomial standard deviations of the (2^-16-rounded) probability
    p_used = round(p * PROBABILITY_RESOLUTION) / PROBABILITY_RESOLUTION
    assert abs(rate - p_used) <= 3 * math.sqrt(p_used * (1 - p_used) / n)


def test_element_mask_extremes_shape_and_dtype():
    generator = mask_generator(0, "step", 0, NAME)
    assert element_keep_mask((64, 33), 0.0, generator).all()
    none = element_keep_mask((64, 33), 1.0, generator)
    assert not none.any() and none.shape == (64, 33) and none.dtype == torch.bool


def test_float_mask_equals_bool_mask():
    def draw(**kwargs):
        return element_keep_mask((50, 7), 0.4, mask_generator(0, "step", 2, NAME), **kwargs)

    as_float = draw(dtype=torch.float32)
    assert as_float.dtype == torch.float32 and set(as_float.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(as_float.bool(), draw())
    assert torch.equal(draw(out=torch.empty(400, dtype=torch.float64)), as_float.double())


def test_element_mask_is_a_function_of_seed_step_and_name():
    def draw(seed, step, name, **kwargs):
        return element_keep_mask((37, 11), 0.3, mask_generator(seed, "step", step, name), **kwargs)

    reference = draw(0, 5, NAME)
    assert torch.equal(draw(0, 5, NAME), reference)
    out, scratch = torch.zeros(1000, dtype=torch.bool), torch.zeros(300, dtype=torch.int64)  # larger than needed
    assert torch.equal(draw(0, 5, NAME, out=out, scratch=scratch), reference)  # buffer reuse changes nothing
    for other in (draw(1, 5, NAME), draw(0, 6, NAME), draw(0, 5, NAME + "2")):
        assert not torch.equal(other, reference)


def test_element_mask_does_not_depend_on_the_thread_count():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = element_keep_mask((300_001,), 0.2, mask_generator(0, "step", 1, NAME))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(single, element_keep_mask((300_001,), 0.2, mask_generator(0, "step", 1, NAME)))


def test_group_keeps_decide_per_group_at_rate_p():
    groups = [f"encoder.layer.{i}" for i in range(4000)]
    keeps = group_keeps(groups, 0.2, 0, "step", 3)
    assert set(keeps) == set(groups) and all(isinstance(k, bool) for k in keeps.values())
    assert abs(1 - sum(keeps.values()) / len(groups) - 0.2) < 0.03
    assert keeps == group_keeps(groups, 0.2, 0, "step", 3)
    assert keeps != group_keeps(groups, 0.2, 0, "step", 4)
    assert all(group_keeps(groups[:10], 0.0, 0, "step", 3).values())


def test_epoch_chunks_are_disjoint_equal_and_cover_everything():
    n, epochs = 10, 3
    bounds = [epoch_chunk_bounds(e, epochs, n) for e in range(1, epochs + 1)]
    assert bounds == [(0, 3), (3, 7), (7, 10)]
    assert [stop for _, stop in bounds] == [round(e / epochs * n) for e in range(1, epochs + 1)]


@pytest.mark.parametrize("shape", [(7,), (40, 13)])
def test_accumulative_epoch_masks_grow_to_the_full_set(shape):
    numel, epochs = math.prod(shape), 4

    def active(epoch):
        return epoch_keep_mask(shape, epoch, epochs, mask_generator(0, "chunks", NAME))

    masks = [active(e) for e in range(1, epochs + 1)]
    for e, mask in enumerate(masks, start=1):
        assert mask.shape == shape and mask.dtype == torch.bool
        assert int(mask.sum()) == round(
            e / epochs * numel
        )  # docs/methods.md#graddrop-epoch-and-graddrop-epoch-toggle: round(e/T * N) active
    for earlier, later in zip(masks, masks[1:]):
        assert not (earlier & ~later).any()  # docs/methods.md#graddrop-epoch-active-sets: an active entry stays active
    assert masks[-1].all()  # the last epoch trains everything
    assert active(epochs + 1).all()


def test_toggle_chunks_are_disjoint_and_cover_all_entries():
    shape, epochs = (33, 5), 3
    active = [epoch_keep_mask(shape, e, epochs, mask_generator(2, "chunks", NAME), toggle=True) for e in (1, 2, 3)]
    counts = torch.stack(active).sum(0)
    assert torch.equal(
        counts, torch.ones(shape, dtype=torch.long)
    )  # every entry in exactly one chunk (docs/methods.md#graddrop-epoch-active-sets)
    accumulative = epoch_keep_mask(shape, 2, epochs, mask_generator(2, "chunks", NAME))
    assert torch.equal(accumulative, active[0] | active[1])  # same permutation as the accumulative variant
