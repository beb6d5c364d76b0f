"""Weight and activation quantizers of BinaryBERT / TernaryBERT (docs/methods.md#weight-quantizers, §4.3), with
straight-through estimators.

Weight quantizers take the latent full-precision tensor and return the quantized tensor of the same shape. The
scaling factors are recomputed from the latent weights at every call (not learned) and are computed in float64; a
split pair carries per-group scale offsets fixed at the split, so that a ternary matrix and the two binary halves of
its split (:mod:`~lightning_compress.quantization.splitting`) give the same fp32 values to the last bit.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import Tensor, nn

#: TWN threshold factor: Δ = 0.7 · mean|w| (Bai Eq. 2.7, Li & Liu 2016).
TWN_THRESHOLD_FACTOR = 0.7


class _StraightThrough(torch.autograd.Function):
    """Forward returns the quantized tensor, backward copies the gradient to the latent tensor unchanged."""

    @staticmethod
    def forward(ctx, latent: Tensor, quantized: Tensor) -> Tensor:  # noqa: ARG004
        return quantized

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


def ste(latent: Tensor, quantized: Tensor) -> Tensor:
    """Identity straight-through estimator (Bai §2.1.2): value of ``quantized``, gradient of ``latent``.

    Unlike ``latent + (quantized - latent).detach()`` the forward value is exactly ``quantized``.

    Example:
        >>> w = torch.tensor([0.3, -2.0], requires_grad=True)
        >>> ste(w, w.detach().sign()).sum().backward(); w.grad
        tensor([1., 1.])
    """
    return _StraightThrough.apply(latent, quantized.detach())


def _groups(weight: Tensor, dim: int | None) -> Tensor:
    """View ``weight`` as ``groups x n`` (one group, or one group per index of ``dim``)."""
    if dim is None:
        return weight.reshape(1, -1)
    return weight.movedim(dim, 0).reshape(weight.shape[dim], -1)


def _ungroup(grouped: Tensor, like: Tensor, dim: int | None) -> Tensor:
    if dim is None:
        return grouped.reshape(like.shape)
    moved = like.movedim(dim, 0).shape
    return grouped.reshape(moved).movedim(0, dim)


def _binary_sign(weight: Tensor) -> Tensor:
    """``sign(w)`` with ``sign(0) = +1``, so that every binary weight is ``±α`` (one bit)."""
    return torch.where(weight >= 0, 1.0, -1.0).to(weight.dtype)


def twn_scales(
    weight: Tensor, dim: int | None = None, threshold_factor: float = TWN_THRESHOLD_FACTOR
) -> tuple[Tensor, Tensor]:
    """Threshold mask and scale of TWN ternarization, per group (see :func:`twn_quantize`).

    Returns:
        ``(nonzero, alpha)``: ``nonzero`` a bool tensor shaped like ``weight`` (``|w| ≥ Δ``), ``alpha`` a float64
        tensor with one entry per group (``1`` for layer-wise, ``weight.shape[dim]`` for row-wise).
    """
    groups = _groups(weight.detach(), dim).double()
    absolute = groups.abs()
    delta = threshold_factor * absolute.mean(dim=1, keepdim=True)
    nonzero = absolute >= delta
    count = nonzero.sum(dim=1)
    alpha = (absolute * nonzero).sum(dim=1) / count.clamp_min(1)
    return _ungroup(nonzero, weight, dim), alpha


def twn_quantize(weight: Tensor, dim: int | None = None, threshold_factor: float = TWN_THRESHOLD_FACTOR) -> Tensor:
    r"""Ternarize ``weight`` with TWN (Bai Eqs. 2.7-2.8), layer-wise or row-wise, with an identity STE.

    For each scaling group of ``n`` elements:

    .. math::
        Δ = \frac{0.7}{n}\lVert w\rVert_1, \quad
        \hat w_i = α\,\mathrm{sign}(w_i)\ \text{if } |w_i| ≥ Δ \text{ else } 0, \quad
        α = \frac{1}{|I|}\sum_{i∈I}|w_i|,\ I = \{i: |w_i| ≥ Δ\}.

    Args:
        weight: A tensor of any shape (an ``out x in`` Linear weight, a ``vocab x hidden`` embedding).
        dim: ``None`` for one scale per tensor (layer-wise); an int for one scale per index of that
            dimension (``dim=0``: row-wise, as for the word embedding).
        threshold_factor: The ``0.7`` of Δ.

    Returns:
        A tensor shaped like ``weight``, same dtype, with values in ``{-α, 0, α}`` per group; its gradient w.r.t.
        ``weight`` is the identity.

    Example:
        >>> twn_quantize(torch.tensor([[1.0, -0.1], [-2.0, 0.5]]))
        tensor([[ 1.5000, -0.0000],
                [-1.5000,  0.0000]])
    """
    nonzero, alpha = twn_scales(weight, dim, threshold_factor)
    signs = torch.sign(weight.detach()) * nonzero
    scale = _ungroup(alpha.to(weight.dtype).unsqueeze(1).expand(-1, _groups(weight, dim).shape[1]), weight, dim)
    return ste(weight, signs * scale)


def bwn_scales(weight: Tensor, dim: int | None = None) -> Tensor:
    """BWN scale ``α = mean|w|`` per group, in float64 (see :func:`bwn_quantize`)."""
    return _groups(weight.detach(), dim).double().abs().mean(dim=1)


def bwn_quantize(weight: Tensor, dim: int | None = None) -> Tensor:
    r"""Binarize ``weight`` with BWN (Bai Eq. 2.9), layer-wise or row-wise, with an identity STE.

    .. math:: \hat w_i = α\,\mathrm{sign}(w_i), \quad α = \frac{1}{n}\lVert w\rVert_1 \quad (\mathrm{sign}(0) = +1)

    Args:
        weight: A tensor of any shape.
        dim: ``None`` (layer-wise) or the dimension indexing the groups (``0``: row-wise).

    Returns:
        A tensor shaped like ``weight`` with values ``±α`` per group; gradient w.r.t. ``weight`` is the identity.

    Example:
        >>> bwn_quantize(torch.tensor([1.0, -0.5, 0.0, 2.5]))
        tensor([ 1., -1.,  1.,  1.])
    """
    alpha = bwn_scales(weight, dim).to(weight.dtype)
    scale = _ungroup(alpha.unsqueeze(1).expand(-1, _groups(weight, dim).shape[1]), weight, dim)
    return ste(weight, _binary_sign(weight.detach()) * scale)


class _PairStraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, first: Tensor, second: Tensor, quantized: Tensor) -> Tensor:  # noqa: ARG004
        return quantized

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        return grad, grad, None


def split_binary_quantize(
    first: Tensor, second: Tensor, dim: int | None = None, offsets: tuple[Tensor, Tensor] | None = None
) -> Tensor:
    r"""``BWN(w₁) + BWN(w₂)`` of a split pair, with per-group scale offsets, and an identity STE to both latents.

    Each branch's scale is ``α_k' = mean|w_k| + c_k`` (float64, one per group), rounded to ``first.dtype`` like
    the fp32 scale the export stores; the two binary tensors are then added in float64 and rounded once.
    :func:`~lightning_compress.quantization.modules.split_module` sets ``c_k = α_t/2 - mean|w_k|`` at the split
    (``α_t`` the ternary scale, computed with the same :func:`bwn_scales`), so that ``α₁' = α₂' = α_t/2`` exactly
    (Sterbenz) and the result equals ``TWN(w)`` bit for bit: quantized activations downstream round the same way.

    Args:
        first, second: The two latent branches (same shape).
        dim: ``None`` (one group) or the dimension indexing the groups (``0``: row-wise).
        offsets: ``(c_1, c_2)``, float64 tensors with one entry per group, or ``None`` (no offset).

    Example:
        >>> split_binary_quantize(torch.tensor([1.0, -1.0]), torch.tensor([1.0, 1.0]))
        tensor([2., 0.])
    """
    total = torch.zeros(first.shape, dtype=torch.float64, device=first.device)
    for index, latent in enumerate((first, second)):
        alpha = bwn_scales(latent, dim)
        if offsets is not None:
            alpha = alpha + offsets[index].to(device=alpha.device, dtype=torch.float64).reshape(alpha.shape)
        alpha = alpha.to(first.dtype).double()  # the scale of each binary branch, as stored by the export
        signs = _binary_sign(latent.detach()).double()
        total += signs * _ungroup(alpha.unsqueeze(1).expand(-1, _groups(latent, dim).shape[1]), latent, dim)
    return _PairStraightThrough.apply(first, second, total.to(first.dtype))


def uniform_quantize(x: Tensor, bits: int, scale: Tensor) -> Tensor:
    r"""Symmetric uniform quantizer (Bai Eq. 2.4): ``x̂ = s · Π_{Ω(b)}(x / s)``, with an identity STE.

    ``Ω(b) = {-2^{b-1}, …, 2^{b-1} - 1}`` and Π rounds to the nearest level and clips to Ω(b).

    Args:
        x: Any tensor.
        bits: Number of bits ``b`` (2 to 16).
        scale: The step ``s`` (a scalar tensor, or broadcastable to ``x``), > 0.

    Example:
        >>> uniform_quantize(torch.tensor([0.26, -1.0, 3.0]), 2, torch.tensor(0.5))
        tensor([ 0.5000, -1.0000,  0.5000])
    """
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    quantized = torch.clamp(torch.round(x.detach() / scale), low, high) * scale
    return ste(x, quantized)


def _check_bits(owner: str, bits: object, low: int = 2, high: int = 16) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise TypeError(f"`{owner}(bits={bits!r})` is invalid: expected an int in [{low}, {high}].")
    if not low <= bits <= high:
        raise ValueError(f"`{owner}(bits={bits!r})` is invalid: expected an int in [{low}, {high}].")
    return bits


class UniformActQuantizer(nn.Module):
    r"""Symmetric uniform ``b``-bit activation quantizer with a min-max (absmax) scale per tensor
    (docs/methods.md#activation-quantization).

    ``s = max|x| / (2^{b-1} - 1)`` is recomputed at every forward (no state), ``x̂ = s · clip(round(x/s))``, with an
    identity STE through the rounding.

    Example:
        >>> UniformActQuantizer(8)(torch.tensor([0.5, -1.27]))
        tensor([ 0.5000, -1.2700])
    """

    def __init__(self, bits: int = 8) -> None:
        super().__init__()
        self.bits = _check_bits("UniformActQuantizer", bits)

    def forward(self, x: Tensor) -> Tensor:
        absmax = x.detach().abs().amax()
        scale = torch.where(absmax > 0, absmax, torch.ones_like(absmax)) / (2 ** (self.bits - 1) - 1)
        return uniform_quantize(x, self.bits, scale)

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


class _GradScale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, factor: float) -> Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.factor, None


class _RoundSte(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # noqa: ARG004
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad


class LsqActQuantizer(nn.Module):
    r"""Learned step size quantization (LSQ, Esser et al. 2020) for low-bit activations
    (docs/methods.md#activation-quantization).

    .. math::
        \hat x = s \cdot \mathrm{round}(\mathrm{clip}(x/s, -Q_N, Q_P)), \quad Q_N = 2^{b-1},\ Q_P = 2^{b-1} - 1,

    with an STE through the rounding, the step ``s`` a learned parameter whose gradient is scaled by
    ``g = 1/\sqrt{numel(x) · Q_P}``, and ``s`` initialised to ``2·mean|x| / sqrt(Q_P)`` on the first batch seen in
    training mode (averaged over the processes of a distributed run, so every rank starts from the same step).

    Example:
        >>> quantizer = LsqActQuantizer(4)
        >>> quantizer(torch.randn(2, 8)).shape
        torch.Size([2, 8])
    """

    def __init__(self, bits: int = 4) -> None:
        super().__init__()
        self.bits = _check_bits("LsqActQuantizer", bits)
        self.step = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("initialized", torch.tensor(False))

    @property
    def q_negative(self) -> int:
        return 2 ** (self.bits - 1)

    @property
    def q_positive(self) -> int:
        return 2 ** (self.bits - 1) - 1

    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        value = 2 * x.detach().abs().mean().to(self.step.dtype) / math.sqrt(self.q_positive)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(value)
            value /= dist.get_world_size()
        self.step.copy_(value.clamp_min(1e-8))
        self.initialized.fill_(True)

    def forward(self, x: Tensor) -> Tensor:
        if self.training and not bool(self.initialized):
            self._initialize(x)
        factor = 1.0 / math.sqrt(x.numel() * self.q_positive)
        step = _GradScale.apply(self.step, factor)
        levels = torch.clamp(x / step, -self.q_negative, self.q_positive)
        return _RoundSte.apply(levels) * step

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


#: Activation quantizers by name (``act_quantizer=`` of :func:`~lightning_compress.quantization.quantize_model_`).
ACT_QUANTIZERS: dict[str, type[nn.Module]] = {"uniform": UniformActQuantizer, "lsq": LsqActQuantizer}
#: Weight quantizers by name.
WEIGHT_QUANTIZERS = {"ternary": twn_quantize, "binary": bwn_quantize}
