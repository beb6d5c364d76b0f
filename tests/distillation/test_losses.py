import math

import pytest
import torch

from lightning_compress.distillation import (
    cosine_feature_loss,
    cross_correlation_loss,
    cross_correlation_matrix,
    kl_with_temperature,
    sdp_loss_weights,
)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kl_with_temperature_hand_value(dtype):
    student = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=dtype)
    teacher = torch.tensor([[0.0, 1.8], [1.0, 0.0]], dtype=dtype)
    # row 1: p_T = softmax([0, 2]) = (1, e²)/(1 + e²), p_S = (1/2, 1/2); row 2: identical -> 0
    pt = torch.tensor([1.0, math.exp(2)], dtype=torch.float64) / (1 + math.exp(2))
    expected = float((pt * (pt.log() - math.log(0.5))).sum()) / 2
    assert float(kl_with_temperature(student, teacher, 0.9)) == pytest.approx(expected, rel=1e-6)


def test_kl_is_zero_for_equal_logits_and_masks_padding_tokens():
    logits = torch.randn(3, 5)
    assert float(kl_with_temperature(logits, logits.clone(), 0.9)) == pytest.approx(0.0, abs=1e-6)
    student, teacher = torch.zeros(1, 2, 2), torch.tensor([[[0.0, 0.0], [5.0, 0.0]]])
    mask = torch.tensor([[1, 0]])
    assert float(kl_with_temperature(student, teacher, 1.0, mask)) == pytest.approx(0.0, abs=1e-7)
    assert float(kl_with_temperature(student, teacher, 1.0)) > 0


def test_kl_gradient_flows_only_into_the_student():
    student = torch.randn(4, 3, requires_grad=True)
    teacher = torch.randn(4, 3, requires_grad=True)
    kl_with_temperature(student, teacher, 0.9).backward()
    assert student.grad.abs().sum() > 0 and teacher.grad is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cross_correlation_hand_value(dtype):
    # two features, batch of 4: student feature 0 = teacher feature 0, student feature 1 = -teacher feature 1
    zt = torch.tensor([[1.0, 2.0], [-1.0, 0.0], [2.0, -2.0], [-2.0, 0.0]], dtype=dtype)
    zs = zt * torch.tensor([1.0, -1.0], dtype=dtype)
    c = cross_correlation_matrix(zs, zt)
    pearson = torch.corrcoef(zt.T.double())[0, 1].item()  # correlation between the two teacher features
    expected = torch.tensor([[1.0, pearson], [-pearson, -1.0]], dtype=torch.float64)
    torch.testing.assert_close(c.double(), expected, rtol=1e-5, atol=1e-6)
    loss = cross_correlation_loss(zs, zt, offdiag_weight=0.1)
    assert float(loss) == pytest.approx((1 - 1) ** 2 + (1 + 1) ** 2 + 0.1 * 2 * pearson**2, rel=1e-5)


def test_cross_correlation_invariants_I11_I12():
    z = torch.randn(16, 6, dtype=torch.float64)
    c = cross_correlation_matrix(z, z)
    torch.testing.assert_close(c, c.T)
    torch.testing.assert_close(torch.diagonal(c), torch.ones(6, dtype=torch.float64))
    assert float(c.abs().max()) <= 1 + 1e-6
    off = (c.square().sum() - torch.diagonal(c).square().sum()).item()
    assert float(cross_correlation_loss(z, z, offdiag_weight=0.3)) == pytest.approx(0.3 * off, rel=1e-6)
    # any per-feature affine change of the teacher features leaves C unchanged (batch standardisation)
    scaled = z * torch.linspace(0.5, 3, 6, dtype=torch.float64) + 7
    torch.testing.assert_close(cross_correlation_matrix(z, scaled), c, rtol=1e-4, atol=1e-6)


def test_cross_correlation_of_a_feature_near_zero_stays_bounded():
    # a student feature of ~1e-32 (MiniLM-L6 has one in its [CLS] vector): its squared norm underflows in float32
    # while its products with the teacher do not; its row of C must vanish, not explode (it did: |C| = 1.5e9)
    generator = torch.Generator().manual_seed(0)
    zt = torch.randn(32, 4, generator=generator)
    zs = torch.randn(32, 4, generator=generator)
    zs[:, 2] = 2.2e-32 + 1e-33 * torch.rand(32, generator=generator)
    zs.requires_grad_(True)
    c = cross_correlation_matrix(zs, zt)
    assert float(c.abs().max()) <= 1 + 1e-6
    assert float(c[2].abs().max()) < 1e-6
    loss = cross_correlation_loss(zs, zt)
    loss.backward()
    assert bool(torch.isfinite(loss)) and bool(torch.isfinite(zs.grad).all())


def test_cosine_feature_loss_hand_value():
    zs = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    zt = torch.tensor([[0.0, 1.0], [2.0, 2.0]])
    assert float(cosine_feature_loss(zs, zt)) == pytest.approx(1 - (0 + 1) / 2)


def test_sdp_loss_weights_per_kd_weighting():
    assert sdp_loss_weights(0.5, 0.9, "alpha_tau2", None) == pytest.approx((0.5, 0.5 * 0.81))
    assert sdp_loss_weights(0.2, 0.9, "alpha_sq", "cc") == pytest.approx((0.8, 0.04))
    assert sdp_loss_weights(0.2, 0.9, "algorithm5", "cc") == pytest.approx((1.0, 0.2))
    assert sdp_loss_weights(0.2, 0.9, "alpha_tau2", "cos") == pytest.approx((0.2, 0.0))
    with pytest.raises(ValueError, match="kd_weighting='x' is invalid"):
        sdp_loss_weights(0.5, 0.9, "x", None)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tws_prediction_and_intermediate_losses_on_hand_numbers(dtype):
    from lightning_compress.distillation import intermediate_distillation_loss, prediction_distillation_loss

    # soft cross-entropy (Bai Eq. 5.11): teacher p = (1/2, 1/2), student log q = log softmax([0, log 3]) = log(1/4, 3/4)
    student, teacher = torch.tensor([[0.0, math.log(3)]], dtype=dtype), torch.zeros(1, 2, dtype=dtype)
    expected = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    assert float(prediction_distillation_loss(student, teacher)) == pytest.approx(expected, rel=1e-6)
    # τ = 2 halves the logits; one output: MSE
    assert float(prediction_distillation_loss(student * 2, teacher, 2.0)) == pytest.approx(expected, rel=1e-6)
    one = torch.tensor([[1.0], [3.0]], dtype=dtype)
    assert float(prediction_distillation_loss(one, torch.zeros(2, 1, dtype=dtype))) == pytest.approx(5.0)
    # Eq. 5.10: sum over the recorded outputs of the MSEs
    s = {"e": torch.ones(1, 2, 2, dtype=dtype), "l0": torch.zeros(1, 2, 2, dtype=dtype)}
    t = {"e": torch.zeros(1, 2, 2, dtype=dtype), "l0": torch.full((1, 2, 2), 2.0, dtype=dtype)}
    assert float(intermediate_distillation_loss(s, t)) == pytest.approx(1.0 + 4.0)
    with pytest.raises(RuntimeError, match=r"differing: \['l0'\]"):
        intermediate_distillation_loss({"e": s["e"]}, t)
