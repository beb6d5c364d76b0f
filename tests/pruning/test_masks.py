import pytest
import torch

from lightning_compress.pruning.criteria import magnitude_score
from lightning_compress.pruning.masks import apply_masks_, global_masks, layerwise_masks, mask_sparsity


def test_layerwise_prunes_lowest_magnitudes_per_matrix():
    w = torch.tensor([[0.5, -3.0, 0.1, 2.0], [-0.2, 1.0, 4.0, -0.3], [0.7, 0.05, -1.5, 0.6]])
    v = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    masks = layerwise_masks({"w": magnitude_score(w), "v": magnitude_score(v)}, 0.5)
    expected_w = torch.tensor([[False, True, False, True], [False, True, True, False], [True, False, True, False]])
    assert torch.equal(masks["w"], expected_w)
    assert torch.equal(masks["v"], torch.tensor([[False, False], [True, True]]))
    assert masks["w"].dtype == torch.bool


def test_global_pools_scores_with_one_threshold():
    scores = {"a": torch.tensor([0.1, 0.2, 0.9, 1.0]), "b": torch.tensor([0.3, 0.4, 0.5, 0.6])}
    masks = global_masks(scores, 0.5)
    assert torch.equal(masks["a"], torch.tensor([False, False, True, True]))
    assert torch.equal(masks["b"], torch.tensor([False, False, True, True]))
    masks = global_masks(scores, 0.75)
    assert mask_sparsity(masks.values()) == 0.75
    assert int(masks["a"].sum()) == 2 and int(masks["b"].sum()) == 0


def test_masks_are_monotone_even_when_pruned_weights_would_score_high():
    scores = {"w": torch.tensor([1.0, 2.0, 3.0, 4.0])}
    first = layerwise_masks(scores, 0.25)
    assert torch.equal(first["w"], torch.tensor([False, True, True, True]))
    # the pruned entry now has the highest score: it must stay pruned, one more entry is removed
    second = layerwise_masks({"w": torch.tensor([9.0, 2.0, 3.0, 4.0])}, 0.5, previous=first)
    assert torch.equal(second["w"], torch.tensor([False, False, True, True]))
    assert bool((second["w"] <= first["w"]).all())


def test_ties_are_broken_by_index_deterministically():
    masks = layerwise_masks({"w": torch.ones(2, 3)}, 0.5)
    assert torch.equal(masks["w"], torch.tensor([[False, False, False], [True, True, True]]))


def test_rounding_is_within_one_element_per_matrix():
    torch.manual_seed(0)
    scores = {f"w{i}": torch.rand(7, 13) for i in range(5)}
    for sparsity in (0.1, 0.333, 0.9):
        for mask in layerwise_masks(scores, sparsity).values():
            assert abs(int((~mask).sum()) - sparsity * mask.numel()) <= 0.5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("grads", [False, True])
def test_apply_masks_zeroes_pruned_entries_even_next_to_nan(dtype, grads):
    """NaN · 0 = NaN: a multiply would leave NaN in pruned positions; the select gives exact zeros."""
    nan, inf = float("nan"), float("inf")
    values = torch.tensor([[nan, nan, 1.0], [inf, 2.0, -inf]], dtype=dtype)
    mask = torch.tensor([[True, False, True], [False, True, False]])
    weight = torch.nn.Parameter(torch.zeros(2, 3, dtype=dtype))
    if grads:
        weight.grad = values.clone()
    else:
        weight.data.copy_(values)
    apply_masks_({"w": weight}, {"w": mask}, grads=grads)
    result = weight.grad if grads else weight.detach()
    assert torch.equal(result[~mask], torch.zeros(3, dtype=dtype))  # pruned: exactly 0
    assert torch.isnan(result[0, 0]) and result[0, 2] == 1.0 and result[1, 1] == 2.0  # kept: untouched
