import torch

from lightning_compress.pruning.criteria import magnitude_score
from lightning_compress.pruning.masks import global_masks, layerwise_masks, mask_sparsity


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
