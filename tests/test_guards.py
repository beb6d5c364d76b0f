import pytest
import torch

from lightning_compress.guards import (
    check_finite_losses,
    check_finite_parameters,
    first_non_finite,
    first_non_finite_loss,
)

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_first_non_finite_names_the_first_bad_tensor_in_order(dtype):
    tensors = [
        ("a", torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=dtype)),
        ("b", torch.tensor([[1.0, INF, 3.0], [4.0, 5.0, 6.0]], dtype=dtype)),
        ("c", torch.tensor([NAN], dtype=dtype)),
    ]
    assert first_non_finite(tensors) == "b"
    assert first_non_finite(tensors[2:]) == "c"
    assert first_non_finite(tensors[:1]) is None


def test_first_non_finite_skips_none_and_integer_tensors():
    assert first_non_finite([("grad", None), ("ids", torch.tensor([1, 2])), ("w", torch.zeros(2, 3))]) is None
    assert first_non_finite([]) is None


def test_first_non_finite_loss_gives_step_and_value():
    losses = [(0, torch.tensor(0.7)), (1, torch.tensor(0.6)), (2, torch.tensor(-INF)), (3, torch.tensor(NAN))]
    assert first_non_finite_loss(losses) == (2, -INF)
    assert first_non_finite_loss(losses[:2]) is None
    assert first_non_finite_loss([]) is None


def test_check_finite_parameters_names_parameter_place_and_counts():
    weight = torch.tensor([[1.0, NAN, INF], [NAN, 0.0, 2.0]])
    with pytest.raises(
        FloatingPointError,
        match=r"Parameter `layer.weight` is not finite at global step 7 "
        r"\(2 NaN and 1 infinite of 6 entries\)",
    ):
        check_finite_parameters([("layer.bias", torch.zeros(3)), ("layer.weight", weight)], "at global step 7")
    check_finite_parameters([("layer.weight", torch.ones(2, 3))], "at global step 7")  # finite: no error


def test_check_finite_losses_names_the_loss_and_step():
    with pytest.raises(FloatingPointError, match=r"The training loss is nan at global step 4"):
        check_finite_losses([(3, torch.tensor(0.5)), (4, torch.tensor(NAN)), (5, torch.tensor(INF))])
    check_finite_losses([(3, torch.tensor(0.5))])
