"""AlignReg penalties: keep pruned weights aligned with the pretrained weights (O'Neill Ch. 9;
docs/methods.md#alignreg).

Each function returns the penalty of one matrix, 0 at perfect alignment, in the *corrected* sign of
docs/methods.md#the-alignreg-loss-term
(docs/methods.md#sign-of-the-alignment-term): minimising it pulls the weight toward the reference. ``W̃ = M ⊙ W`` is
the current (masked) weight.

* :func:`unit_cosine_alignment` — ``1 − ρ_unit``, O'Neill Eq. 9.2 ("Cosine-MBP");
* :func:`layer_cosine_alignment` — ``1 − ρ_layer``, Eq. 9.2 on vectorised weights ("Cosine-LMBP");
* :func:`frobenius_alignment` — ``‖W^ref − M ⊙ W‖_F``, unsquared, Eq. 9.6 ("Frobenius-MBP");
* :func:`align_reg_penalty` — ``(λ/L) Σ_l`` of one of them over all targeted matrices (Eq. 9.3, corrected).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

__all__ = [
    "ALIGNMENTS",
    "align_reg_penalty",
    "frobenius_alignment",
    "layer_cosine_alignment",
    "unit_cosine_alignment",
]

#: Guard of the cosine denominators (docs/methods.md#alignment-measures): a fully pruned row (or matrix) has cosine 0.
DEFAULT_EPS = 1e-12


def _one_minus_abs_cosine(weight: Tensor, reference: Tensor, eps: float) -> Tensor:
    """``1 − |⟨r, w⟩| / (‖r‖ ‖w‖ + ε)`` along the last dimension, computed so that ``w = r`` gives exactly 0.

    For unit vectors ``u = r/‖r‖``, ``v = w/‖w‖``: ``1 − |u·v| = min(‖u − v‖², ‖u + v‖²) / 2``. This form is exact
    at alignment (bitwise-equal rows give 0, not a rounding residue) and has the same value and gradient as the
    printed quotient up to ``ε``; a zero row (fully pruned) gives 1 with zero gradient.
    """
    w_norm = torch.linalg.vector_norm(weight, dim=-1, keepdim=True)
    r_norm = torch.linalg.vector_norm(reference, dim=-1, keepdim=True)
    u = reference / r_norm.clamp_min(eps)
    v = weight / w_norm.clamp_min(eps)
    chord = torch.minimum((u - v).square().sum(-1), (u + v).square().sum(-1)) / 2
    nonzero = (w_norm.squeeze(-1) > eps) & (r_norm.squeeze(-1) > eps)
    return torch.where(nonzero, chord, torch.ones_like(chord))


def _masked(weight: Tensor, mask: Tensor | None) -> Tensor:
    """``M ⊙ W`` as a select, so masked entries are exactly 0 even where ``W`` is not finite (``NaN · 0 = NaN``)."""
    return weight if mask is None else torch.where(mask.to(device=weight.device, dtype=torch.bool), weight, 0.0)


def _check_shapes(weight: Tensor, reference: Tensor, mask: Tensor | None) -> None:
    if weight.shape != reference.shape:
        raise ValueError(f"weight of shape {tuple(weight.shape)} and reference {tuple(reference.shape)} differ.")
    if mask is not None and mask.shape != weight.shape:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not match weight {tuple(weight.shape)}.")


def unit_cosine_alignment(
    weight: Tensor, reference: Tensor, mask: Tensor | None = None, eps: float = DEFAULT_EPS
) -> Tensor:
    r"""Unit-wise cosine misalignment ``1 − ρ_unit(M ⊙ W, W^ref)`` (O'Neill Eq. 9.2, sign of
    docs/methods.md#sign-of-the-alignment-term).

    .. math::

        1 - \frac{1}{N} \sum_{i=1}^{N} \frac{|\langle W^{ref}_{i,:}, \tilde W_{i,:}\rangle|}
            {\lVert W^{ref}_{i,:}\rVert_2 \lVert \tilde W_{i,:}\rVert_2 + \varepsilon},
        \qquad \tilde W = M \odot W

    Units are PyTorch rows (output units of ``nn.Linear``). The absolute value is as printed
    (docs/methods.md#absolute-value-in-the-cosine).

    Args:
        weight: An ``out x in`` tensor ``W`` (gradients flow into it).
        reference: An ``out x in`` tensor ``W^ref`` (pretrained weights).
        mask: Optional ``out x in`` bool tensor ``M`` (1 = kept); ``None`` means no mask.
        eps: Denominator guard; a fully pruned row counts as cosine 0.

    Returns:
        A scalar tensor in ``[0, 1]``, 0 when every row of ``W̃`` is parallel to the reference row.

    Example:
        >>> w = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
        >>> float(unit_cosine_alignment(w, torch.tensor([[1.0, 1.0], [0.0, 1.0]])))  # (1 - 1/√2 + 0) / 2
        0.1464...
    """
    _check_shapes(weight, reference, mask)
    return _one_minus_abs_cosine(_masked(weight, mask), reference, eps).mean()


def layer_cosine_alignment(
    weight: Tensor, reference: Tensor, mask: Tensor | None = None, eps: float = DEFAULT_EPS
) -> Tensor:
    r"""Layer-wise cosine misalignment ``1 − ρ_layer(M ⊙ W, W^ref)`` (Eq. 9.2 on vectorised weights, "Cosine-LMBP").

    .. math::

        1 - \frac{|\langle \mathrm{vec}\, W^{ref}, \mathrm{vec}\, \tilde W\rangle|}
            {\lVert W^{ref}\rVert_F \lVert \tilde W\rVert_F + \varepsilon}

    Args:
        weight: A tensor ``W`` of any shape.
        reference: ``W^ref``, same shape.
        mask: Optional bool tensor ``M``, same shape.
        eps: Denominator guard.

    Returns:
        A scalar tensor in ``[0, 1]``.

    Example:
        >>> w = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> float(layer_cosine_alignment(w, torch.tensor([[1.0, 1.0], [0.0, 1.0]])))  # 1 - 2 / (√3 √2)
        0.1835...
    """
    _check_shapes(weight, reference, mask)
    return _one_minus_abs_cosine(_masked(weight, mask).reshape(-1), reference.reshape(-1), eps)


def frobenius_alignment(
    weight: Tensor, reference: Tensor, mask: Tensor | None = None, eps: float = DEFAULT_EPS
) -> Tensor:
    r"""Frobenius distance ``‖W^ref − M ⊙ W‖_F`` (O'Neill Eq. 9.6, unsquared as printed;
    docs/methods.md#alignment-measures).

    Args:
        weight: A tensor ``W`` of any shape.
        reference: ``W^ref``, same shape.
        mask: Optional bool tensor ``M``, same shape.
        eps: Unused; accepted so that every alignment has the same signature.

    Returns:
        A scalar tensor ``>= 0`` (its gradient at distance 0 is 0).

    Example:
        >>> float(frobenius_alignment(torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 4.0]])))
        5.0
    """
    _check_shapes(weight, reference, mask)
    return torch.linalg.vector_norm(reference - _masked(weight, mask))


#: ``kind`` name -> per-matrix penalty (``AlignReg(kind=...)`` dispatches on this dict).
ALIGNMENTS: dict[str, Callable[..., Tensor]] = {
    "cosine_unit": unit_cosine_alignment,
    "cosine_layer": layer_cosine_alignment,
    "frobenius": frobenius_alignment,
}


def align_reg_penalty(
    weights: Mapping[str, Tensor],
    references: Mapping[str, Tensor],
    kind: str,
    lam: float,
    masks: Mapping[str, Tensor] | None = None,
) -> Tensor:
    r"""The AlignReg loss term ``(λ/L) Σ_l penalty(M_l ⊙ W_l, W_l^ref)`` (O'Neill Eq. 9.3 with
    docs/methods.md#sign-of-the-alignment-term).

    Args:
        weights: FQN -> weight ``W_l`` (``L`` entries).
        references: FQN -> reference ``W_l^ref``, same keys and shapes.
        kind: ``"cosine_unit"``, ``"cosine_layer"`` or ``"frobenius"`` (:data:`ALIGNMENTS`).
        lam: ``λ`` (docs/methods.md#the-alignreg-loss-term default ``5e-4``).
        masks: Optional FQN -> bool mask ``M_l``.

    Returns:
        A scalar tensor in the dtype of the weights.

    Example:
        >>> w = {"a": torch.ones(2, 2)}
        >>> float(align_reg_penalty(w, {"a": torch.ones(2, 2)}, "frobenius", lam=5e-4))
        0.0
    """
    if kind not in ALIGNMENTS:
        raise ValueError(f"kind={kind!r} is invalid: expected one of {list(ALIGNMENTS)}.")
    if not weights:
        raise ValueError("align_reg_penalty needs at least one weight.")
    alignment = ALIGNMENTS[kind]
    masks = masks or {}
    total = torch.stack([alignment(w, references[name], masks.get(name)) for name, w in weights.items()]).sum()
    return lam / len(weights) * total
