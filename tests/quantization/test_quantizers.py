import pytest
import torch

from lightning_compress.quantization import LsqActQuantizer, UniformActQuantizer, bwn_quantize, twn_quantize
from lightning_compress.quantization.quantizers import ste


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_twn_on_a_hand_checked_matrix(dtype):
    w = torch.tensor([[1.0, -0.1], [-2.0, 0.5]], dtype=dtype)  # Δ = 0.7 · 0.9 = 0.63, I = {1, -2}, α = 1.5
    expected = torch.tensor([[1.5, 0.0], [-1.5, 0.0]], dtype=dtype)
    assert torch.equal(twn_quantize(w), expected)
    # row-wise: row 0 Δ = 0.385 -> I = {1.0}, α = 1; row 1 Δ = 0.875 -> I = {-2}, α = 2
    assert torch.equal(twn_quantize(w, dim=0), torch.tensor([[1.0, 0.0], [-2.0, 0.0]], dtype=dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("dim", [None, 0])
def test_twn_and_bwn_invariants(dtype, dim):
    """docs/methods.md#twn-and-bwn-scales: non-zero ternary values have magnitude α and |I| = #{|w| ≥ Δ}; BWN keeps
    mean |w| per group."""
    torch.manual_seed(0)
    w = torch.randn(6, 50, dtype=dtype)
    ternary = twn_quantize(w, dim)
    groups = [ternary] if dim is None else list(ternary)
    latent = [w] if dim is None else list(w)
    for q, x in zip(groups, latent):
        values = q[q != 0].abs()
        assert torch.allclose(values, values[0].expand_as(values), rtol=0, atol=0)
        delta = 0.7 * x.abs().mean()
        assert int((q != 0).sum()) == int((x.abs() >= delta).sum())
    binary = bwn_quantize(w, dim)
    means = binary.abs().mean() if dim is None else binary.abs().mean(dim=1)
    expected = w.abs().mean() if dim is None else w.abs().mean(dim=1)
    assert torch.allclose(means, expected, rtol=1e-6)
    assert bool((binary != 0).all())


def test_bwn_maps_zero_to_plus_alpha():
    assert torch.equal(bwn_quantize(torch.tensor([1.0, -0.5, 0.0, 2.5])), torch.tensor([1.0, -1.0, 1.0, 1.0]))


@pytest.mark.parametrize("quantizer", [twn_quantize, bwn_quantize])
def test_straight_through_gradient_is_the_identity(quantizer):
    """docs/methods.md#straight-through-gradient: ∂ℓ/∂w = ∂ℓ/∂ŵ exactly."""
    torch.manual_seed(0)
    w = torch.randn(4, 5, requires_grad=True)
    x = torch.randn(3, 5)
    q = quantizer(w)
    q.retain_grad()
    (x @ q.t()).square().sum().backward()
    assert torch.equal(w.grad, q.grad)
    assert torch.equal(ste(w, w.detach() * 2), w.detach() * 2)


def test_uniform_activation_quantizer_is_symmetric_absmax():
    quantizer = UniformActQuantizer(8)
    x = torch.tensor([0.5, -1.27, 0.004])
    out = quantizer(x)
    assert torch.allclose(out, torch.tensor([0.5, -1.27, 0.0]), atol=1e-7)  # step 0.01
    assert len(torch.unique(UniformActQuantizer(2)(torch.randn(1000)))) <= 4


def test_lsq_initialises_from_the_first_batch_and_learns_the_step():
    torch.manual_seed(0)
    quantizer = LsqActQuantizer(4)
    x = torch.randn(16, 8)
    out = quantizer(x)
    assert bool(quantizer.initialized)
    assert quantizer.step.item() == pytest.approx(2 * x.abs().mean().item() / 7**0.5, rel=1e-6)
    assert len(torch.unique(out.detach())) <= 16
    out.square().sum().backward()
    assert quantizer.step.grad is not None and quantizer.step.grad.abs().item() > 0


@pytest.mark.parametrize("bits, error", [(1, ValueError), (17, ValueError), (4.0, TypeError)])
def test_unsupported_bits_raise(bits, error):
    with pytest.raises(error, match="bits="):
        UniformActQuantizer(bits)
