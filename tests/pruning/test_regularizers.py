import math

import pytest
import torch

from lightning_compress.pruning.regularizers import (
    ALIGNMENTS,
    align_reg_penalty,
    frobenius_alignment,
    layer_cosine_alignment,
    unit_cosine_alignment,
)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hand_values(dtype):
    w = torch.tensor([[1.0, 0.0, 0.0], [0.0, -2.0, 0.0]], dtype=dtype)
    ref = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]], dtype=dtype)
    # row 1: cos = 1/√2; row 2: cos = -1, |cos| = 1 (docs/methods.md#absolute-value-in-the-cosine)
    assert float(unit_cosine_alignment(w, ref)) == pytest.approx((1 - 1 / math.sqrt(2) + 0) / 2, rel=1e-6)
    # vectorised: <ref, w> = 1 - 2 = -1; ‖ref‖ = √3, ‖w‖ = √5
    assert float(layer_cosine_alignment(w, ref)) == pytest.approx(1 - 1 / math.sqrt(15), rel=1e-6)
    assert float(frobenius_alignment(w, ref)) == pytest.approx(math.sqrt(0 + 1 + 0 + 9), rel=1e-6)
    mask = torch.tensor([[True, True, True], [False, False, False]])
    # masked second row is all zero: cosine 0 for that unit
    assert float(unit_cosine_alignment(w, ref, mask)) == pytest.approx((1 - 1 / math.sqrt(2) + 1) / 2, rel=1e-6)
    assert float(frobenius_alignment(w, ref, mask)) == pytest.approx(math.sqrt(1 + 1), rel=1e-6)
    penalty = align_reg_penalty({"a": w, "b": ref}, {"a": ref, "b": ref}, "frobenius", lam=0.5)
    assert float(penalty) == pytest.approx(0.5 / 2 * math.sqrt(10), rel=1e-6)


@pytest.mark.parametrize("kind", list(ALIGNMENTS))
def test_zero_at_reference_with_zero_gradient(kind):
    """docs/methods.md#alignreg-is-zero-at-the-reference: the term is exactly 0 when the weights are the reference."""
    ref = torch.randn(8, 5)
    w = ref.clone().requires_grad_()
    value = ALIGNMENTS[kind](w, ref)
    value.backward()
    assert value.item() == 0.0
    assert not w.grad.any()


@pytest.mark.parametrize("kind", list(ALIGNMENTS))
def test_gradient_step_pulls_the_weights_toward_the_reference(kind):
    """Fails with the printed sign of Eq. 9.3 (docs/methods.md#sign-of-the-alignment-term): descending `+ρ` would push
    the weights away."""
    torch.manual_seed(0)
    ref = torch.randn(6, 10, dtype=torch.float64)
    w = (ref + 0.8 * torch.randn(6, 10, dtype=torch.float64)).requires_grad_()
    penalty = align_reg_penalty({"w": w}, {"w": ref}, kind, lam=1.0)
    penalty.backward()
    with torch.no_grad():
        moved = w - 0.05 * w.grad / w.grad.norm()
    cos = torch.nn.functional.cosine_similarity
    if kind == "frobenius":
        assert (moved - ref).norm() < (w.detach() - ref).norm()
    elif kind == "cosine_unit":
        assert (cos(moved, ref, dim=1) > cos(w.detach(), ref, dim=1)).all()
    else:
        assert cos(moved.reshape(1, -1), ref.reshape(1, -1)) > cos(w.detach().reshape(1, -1), ref.reshape(1, -1))


def test_cosine_gradients_are_orthogonal_to_the_weight_I9():
    torch.manual_seed(0)
    ref = torch.randn(4, 7, dtype=torch.float64)
    w = torch.randn(4, 7, dtype=torch.float64, requires_grad=True)
    unit_cosine_alignment(w, ref).backward()
    assert (w.grad * w.detach()).sum(dim=1).abs().max() < 1e-12
    w.grad = None
    layer_cosine_alignment(w, ref).backward()
    assert abs(float((w.grad * w.detach()).sum())) < 1e-12


def test_matches_the_printed_quotient_away_from_alignment():
    torch.manual_seed(1)
    ref, w = torch.randn(5, 9, dtype=torch.float64), torch.randn(5, 9, dtype=torch.float64)
    rho = ((ref * w).sum(1).abs() / (ref.norm(dim=1) * w.norm(dim=1) + 1e-12)).mean()
    assert float(unit_cosine_alignment(w, ref)) == pytest.approx(1 - float(rho), rel=1e-10)


def test_shape_mismatch_and_unknown_kind():
    with pytest.raises(ValueError, match=r"weight of shape \(2, 3\) and reference \(3, 2\) differ"):
        unit_cosine_alignment(torch.ones(2, 3), torch.ones(3, 2))
    with pytest.raises(ValueError, match="kind='l2' is invalid: expected one of"):
        align_reg_penalty({"a": torch.ones(1)}, {"a": torch.ones(1)}, "l2", 1.0)


def test_masked_entries_count_as_zero_even_when_not_finite():
    """``M ⊙ W`` is a select: a NaN in a pruned entry neither reaches the penalty nor its gradient."""
    weight = torch.tensor([[3.0, float("nan")], [float("inf"), 4.0]], requires_grad=True)
    mask = torch.tensor([[True, False], [False, True]])
    reference = torch.zeros(2, 2)
    value = frobenius_alignment(weight, reference, mask)
    assert value.item() == 5.0  # ‖(3, 0; 0, 4)‖_F
    value.backward()
    assert torch.equal(weight.grad, torch.tensor([[0.6, 0.0], [0.0, 0.8]]))
