"""N:M masks (every group of m consecutive input weights keeps at most n) and semi-structured conversion."""

import pytest
import torch
from torch import nn

from lightning_compress.pruning.masks import global_masks, layerwise_masks
from lightning_compress.pruning.nm import (
    SemiStructuredUnsupportedError,
    check_nm_shape,
    is_nm_sparse,
    nm_eligible_scores,
    semi_structured_support,
    to_semi_structured_,
)

S = torch.tensor([[4.0, 1.0, 3.0, 2.0, 0.5, 0.6, 0.7, 0.8], [9.0, 8.0, 7.0, 6.0, 1.0, 5.0, 2.0, 3.0]])


def test_eligible_scores_protect_the_n_highest_of_each_group():
    inf = float("inf")
    expected = torch.tensor([[inf, 1.0, inf, 2.0, 0.5, 0.6, inf, inf], [inf, inf, 7.0, 6.0, 1.0, inf, 2.0, inf]])
    assert torch.equal(nm_eligible_scores(S, 2, 4), expected)


def test_full_nm_sparsity_gives_exactly_n_of_m_and_partial_events_never_break_it():
    scores = {"w": nm_eligible_scores(S, 2, 4)}
    half = layerwise_masks(scores, 0.5)["w"]
    expected = torch.tensor([[1, 0, 1, 0, 0, 0, 1, 1], [1, 1, 0, 0, 0, 1, 0, 1]], dtype=torch.bool)
    assert torch.equal(half, expected)
    # a partial event prunes the lowest eligible scores (0.5, 0.6, 1.0, 1.0 by index) and keeps >= 2 of every 4
    quarter = layerwise_masks(scores, 0.25)["w"]
    assert torch.equal(~quarter, torch.tensor([[0, 1, 0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 1, 0, 0, 0]], dtype=torch.bool))
    assert bool((quarter.reshape(-1, 4).sum(1) >= 2).all())


def test_nm_masks_are_monotone_across_events():
    torch.manual_seed(0)
    previous = None
    for sparsity in (0.125, 0.25, 0.375, 0.5):
        scores = {"w": nm_eligible_scores(torch.randn(6, 16), 2, 4, previous)}  # fresh scores at every event
        masks = layerwise_masks(scores, sparsity, previous={"w": previous} if previous is not None else None)
        assert int((~masks["w"]).sum()) == round(sparsity * 96)
        assert bool((masks["w"].reshape(-1, 4).sum(1) >= 2).all())
        if previous is not None:
            assert bool((masks["w"] <= previous).all())
        previous = masks["w"]
    assert is_nm_sparse(previous, 2, 4)


def test_global_scope_also_respects_the_pattern():
    torch.manual_seed(1)
    raw = {"a": torch.randn(4, 8), "b": torch.randn(2, 8) * 10}
    masks = global_masks({k: nm_eligible_scores(v, 2, 4) for k, v in raw.items()}, 0.5)
    assert all(is_nm_sparse(mask, 2, 4) and int(mask.sum()) == mask.numel() // 2 for mask in masks.values())


def test_is_nm_sparse_checks_every_group():
    assert is_nm_sparse(torch.tensor([[1.0, 0.0, 0.0, 2.0, 0.0, 3.0, 4.0, 0.0]]), 2, 4)
    assert not is_nm_sparse(torch.tensor([[1.0, 0.0, 0.0, 2.0, 1.0, 3.0, 4.0, 0.0]]), 2, 4)
    assert not is_nm_sparse(torch.zeros(2, 6), 2, 4)  # not divisible


def test_shape_errors():
    check_nm_shape("ok.weight", (3, 8), 4)
    with pytest.raises(
        ValueError, match=r"`l.weight` has shape \(3, 6\) and its input dimension 6 is not divisible by m=4"
    ):
        check_nm_shape("l.weight", (3, 6), 4)
    with pytest.raises(ValueError, match=r"needs 2-d \(nn.Linear\) weights: `b` has shape \(8,\)"):
        check_nm_shape("b", (8,), 4)


def _two_four_linear(dtype=torch.float32, device="cpu"):
    torch.manual_seed(0)
    linear = nn.Linear(128, 64).to(device=device, dtype=dtype)
    with torch.no_grad():
        mask = layerwise_masks({"w": nm_eligible_scores(linear.weight.abs(), 2, 4)}, 0.5)["w"]
        linear.weight.mul_(mask)
    return linear


def test_semi_structured_conversion_explains_why_it_cannot_run_here():
    model = nn.Sequential(_two_four_linear(), nn.Linear(128, 2))
    if not torch.cuda.is_available():
        assert "need a CUDA device" in semi_structured_support(model[0].weight)
        with pytest.raises(SemiStructuredUnsupportedError, match=r"cannot convert `0.weight`.*need a CUDA device"):
            to_semi_structured_(model)
    with pytest.raises(ValueError, match=r"\['2.weight'\] are not nn.Linear weights"):
        to_semi_structured_(model, ["2.weight"])
    with pytest.raises(SemiStructuredUnsupportedError, match="no nn.Linear weight of the model is 2:4 sparse"):
        to_semi_structured_(nn.Sequential(nn.Linear(8, 4)))


@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 0),
    reason="semi-structured sparse kernels need CUDA with compute capability >= 8.0",
)
def test_semi_structured_round_trip_gives_the_same_outputs():
    linear = _two_four_linear(torch.float16, "cuda")
    x = torch.randn(64, 128, dtype=torch.float16, device="cuda")
    dense = linear(x)
    assert to_semi_structured_(nn.Sequential(linear)) == ["0.weight"]
    assert type(linear.weight.data).__name__.startswith("SparseSemiStructuredTensor")
    torch.testing.assert_close(linear(x), dense, rtol=1e-2, atol=1e-2)
