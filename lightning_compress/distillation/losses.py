"""Self-distillation losses of SDP (O'Neill Ch. 11; docs/methods.md#distillation-losses with
docs/methods.md#sdp-errata).

* :func:`kl_with_temperature` — ``KL(p_T^τ ‖ p_S^τ)``, the distillation term of SDP-KLD (Eq. 11.1);
* :func:`cross_correlation_loss` — ``Σ_i (1 − C_ii)² + λ_off Σ_{i≠j} C_ij²`` on batch-standardised [CLS] features
  (Eq. 11.2, SDP-CC);
* :func:`cosine_feature_loss` — ``1 − mean_m cos(z^S_m, z^T_m)`` (SDP-COS, §11.4);
* :func:`sdp_loss_weights` — the weights of the task loss and of the KL term for each ``kd_weighting``
  (docs/methods.md#weight-of-the-kl-term).

BinaryBERT's distillation losses (Bai §5.4, docs/methods.md#binarybert-training-pipeline):

* :func:`intermediate_distillation_loss` — ``MSE(Ê, E) + Σ_l MSE(M̂_l, M_l) + Σ_l MSE(F̂_l, F_l)`` (Eq. 5.10);
* :func:`prediction_distillation_loss` — soft cross-entropy ``-Σ_c softmax(y/τ)_c log softmax(ŷ/τ)_c`` (Eq. 5.11).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "KD_WEIGHTINGS",
    "batch_standardize",
    "cosine_feature_loss",
    "cross_correlation_loss",
    "cross_correlation_matrix",
    "intermediate_distillation_loss",
    "kl_with_temperature",
    "output_logits",
    "prediction_distillation_loss",
    "sdp_loss_weights",
]

#: Barlow Twins' off-diagonal weight, docs/methods.md#sdp-hyperparameters default for λ_off
#: (docs/methods.md#off-diagonal-weight-and-batch-normalisation, external).
DEFAULT_OFFDIAG_WEIGHT = 5.1e-3
#: Epsilon of the per-feature batch standardisation (BatchNorm without affine, docs/methods.md#distillation-losses).
BATCH_NORM_EPS = 1e-5


def kl_with_temperature(
    student_logits: Tensor, teacher_logits: Tensor, temperature: float, mask: Tensor | None = None
) -> Tensor:
    r"""``KL(p_T^τ ‖ p_S^τ)`` averaged over the examples (or over the unmasked tokens);
    docs/methods.md#distillation-losses, docs/methods.md#entropy-sign-in-the-printed-kl.

    .. math::

        \mathrm{KL}(p_T \Vert p_S) = \sum_c p_{T,c} (\log p_{T,c} - \log p_{S,c}),\qquad
        p^\tau = \mathrm{softmax}(\mathrm{logits} / \tau)

    The ``τ²`` factor of Eq. 11.1 is not included (see :func:`sdp_loss_weights`).

    Args:
        student_logits: A ``batch x C`` (or ``batch x T x C`` for token tasks) tensor.
        teacher_logits: Same shape; no gradient is taken through it.
        temperature: ``τ > 0``.
        mask: For token tasks, an optional ``batch x T`` tensor, nonzero for the tokens to average over.

    Returns:
        A scalar tensor ``>= 0`` (``reduction="batchmean"``).

    Example:
        >>> s, t = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 2.0 * 0.9]])
        >>> round(float(kl_with_temperature(s, t, 0.9)), 4)  # p_T = (0.1192, 0.8808), p_S = (0.5, 0.5)
        0.3278
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits {tuple(teacher_logits.shape)} differ."
        )
    log_p_s = F.log_softmax(student_logits / temperature, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)
    per_item = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)
    if mask is None:
        return per_item.mean()
    keep = mask.to(per_item.dtype)
    return (per_item * keep).sum() / keep.sum().clamp_min(1)


def batch_standardize(z: Tensor, eps: float = BATCH_NORM_EPS) -> Tensor:
    r"""Per-feature standardisation over the batch, ``ẑ = (z − mean_m z) / sqrt(var_m z + eps)`` (biased variance).

    Args:
        z: A ``M x D`` tensor (``M`` examples, ``D`` features).
        eps: Variance guard (``BatchNorm1d(affine=False)``).

    Returns:
        A ``M x D`` tensor.
    """
    centered = z - z.mean(dim=0, keepdim=True)
    return centered / torch.sqrt(centered.square().mean(dim=0, keepdim=True) + eps)


def cross_correlation_matrix(z_student: Tensor, z_teacher: Tensor, eps: float = BATCH_NORM_EPS) -> Tensor:
    r"""``C ∈ [−1, 1]^{D x D}`` between batch-standardised student and teacher features (O'Neill Eq. 11.2).

    .. math::

        C_{ij} = \frac{\sum_m \hat z^S_{m,i} \hat z^T_{m,j}}
            {\sqrt{\sum_m (\hat z^S_{m,i})^2}\,\sqrt{\sum_m (\hat z^T_{m,j})^2}}

    A feature that is (nearly) constant over the batch has ``ẑ ≈ 0`` and a zero row/column in ``C``.

    Args:
        z_student: A ``M x D`` tensor ``z^S``.
        z_teacher: A ``M x D`` tensor ``z^T``.
        eps: Epsilon of :func:`batch_standardize`.

    Returns:
        A ``D x D`` tensor; with ``z^S = z^T`` it is symmetric with unit diagonal (Pearson correlations).
    """
    if z_student.shape != z_teacher.shape or z_student.dim() != 2:
        raise ValueError(
            f"student features {tuple(z_student.shape)} and teacher features {tuple(z_teacher.shape)} must both be "
            "`M x D`."
        )
    s, t = batch_standardize(z_student, eps), batch_standardize(z_teacher, eps)
    # A feature (nearly) constant over the batch has a standardised column ~0 whose squared norm can underflow while
    # its products with the other side do not (MiniLM-L6 has a [CLS] dimension of ~1e-32). Flooring the squared
    # norms at M·eps, the batch-norm guard, makes its row / column of C vanish instead of exploding; any feature with
    # variance above ~eps² keeps its exact Pearson correlation.
    floor = z_student.shape[0] * eps
    s_norm = s.square().sum(dim=0).clamp_min(floor).sqrt()
    t_norm = t.square().sum(dim=0).clamp_min(floor).sqrt()
    return (s.T @ t) / (s_norm[:, None] * t_norm[None, :])


def cross_correlation_loss(
    z_student: Tensor,
    z_teacher: Tensor,
    offdiag_weight: float = DEFAULT_OFFDIAG_WEIGHT,
    eps: float = BATCH_NORM_EPS,
) -> Tensor:
    r"""``ℓ_CC = Σ_i (1 − C_ii)² + λ_off Σ_i Σ_{j≠i} C_ij²`` (O'Neill Eq. 11.2; docs/methods.md#distillation-losses,
    docs/methods.md#off-diagonal-weight-and-batch-normalisation).

    Args:
        z_student: A ``M x D`` tensor of student [CLS] features.
        z_teacher: A ``M x D`` tensor of teacher [CLS] features (no gradient is taken through it).
        offdiag_weight: ``λ_off`` (default ``5.1e-3``).
        eps: Epsilon of the batch standardisation.

    Returns:
        A scalar tensor ``>= 0``.

    Example:
        >>> z = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
        >>> round(float(cross_correlation_loss(z, z)), 6)  # C = I
        0.0
    """
    c = cross_correlation_matrix(z_student, z_teacher.detach(), eps)
    diagonal = torch.diagonal(c)
    on = (1 - diagonal).square().sum()
    off = c.square().sum() - diagonal.square().sum()
    return on + offdiag_weight * off


def cosine_feature_loss(z_student: Tensor, z_teacher: Tensor, eps: float = 1e-8) -> Tensor:
    r"""``1 − mean_m cos(z^S_m, z^T_m)``, the feature term of SDP-COS (O'Neill §11.4, as printed;
    docs/methods.md#sdp-cos-as-printed).

    Args:
        z_student: A ``M x D`` tensor.
        z_teacher: A ``M x D`` tensor (no gradient is taken through it).
        eps: Guard of :func:`torch.nn.functional.cosine_similarity`.

    Returns:
        A scalar tensor in ``[0, 2]``.

    Example:
        >>> float(cosine_feature_loss(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.tensor([[0.0, 1.0], [2.0, 2.0]])))
        0.5
    """
    if z_student.shape != z_teacher.shape:
        raise ValueError(f"student features {tuple(z_student.shape)} and teacher {tuple(z_teacher.shape)} differ.")
    return 1 - F.cosine_similarity(z_student, z_teacher.detach(), dim=-1, eps=eps).mean()


def _alpha_tau2(alpha: float, temperature: float) -> tuple[float, float]:
    return 1 - alpha, alpha * temperature**2


def _alpha_sq(alpha: float, temperature: float) -> tuple[float, float]:
    return 1 - alpha, alpha**2


def _algorithm5(alpha: float, temperature: float) -> tuple[float, float]:
    return 1.0, alpha


#: ``kd_weighting`` -> (weight of the task loss, weight of ``KL``), docs/methods.md#distillation-losses /
#: docs/methods.md#weight-of-the-kl-term:
#: ``alpha_tau2`` = Eq. 11.1 ``(1 − α) CE + α τ² KL`` (default); ``alpha_sq`` = printed Eq. 11.3 ``(1 − α) CE + α² KL``;
#: ``algorithm5`` = O'Neill Algorithm 5 ``CE + α KL``.
KD_WEIGHTINGS = {"alpha_tau2": _alpha_tau2, "alpha_sq": _alpha_sq, "algorithm5": _algorithm5}


def sdp_loss_weights(
    alpha: float, temperature: float, kd_weighting: str, feature_loss: str | None
) -> tuple[float, float]:
    """Weights ``(w_task, w_kl)`` of the task loss and of ``KL(p_T^τ ‖ p_S^τ)`` in an SDP objective.

    SDP-COS (``feature_loss="cos"``) is ``α CE + β(1 − cos)`` as printed (docs/methods.md#sdp-cos-as-printed): ``(α,
    0)`` whatever
    ``kd_weighting``. Otherwise :data:`KD_WEIGHTINGS` applies.

    Example:
        >>> [round(w, 6) for w in sdp_loss_weights(0.5, 0.9, "alpha_tau2", "cc")]
        [0.5, 0.405]
    """
    if kd_weighting not in KD_WEIGHTINGS:
        raise ValueError(f"kd_weighting={kd_weighting!r} is invalid: expected one of {list(KD_WEIGHTINGS)}.")
    if feature_loss == "cos":
        return alpha, 0.0
    return KD_WEIGHTINGS[kd_weighting](alpha, temperature)


def intermediate_distillation_loss(student: Mapping[str, Tensor], teacher: Mapping[str, Tensor]) -> Tensor:
    r"""Intermediate-layer distillation ``MSE(Ê, E) + Σ_l MSE(M̂_l, M_l) + Σ_l MSE(F̂_l, F_l)`` (Bai Eq. 5.10).

    The sum runs over the recorded module outputs: the embedding output ``E``, each block's attention output ``M_l``
    and each block's output ``F_l`` (hats: the student).

    Args:
        student: Module name -> output, a ``batch x length x hidden`` tensor.
        teacher: The same names -> the teacher's outputs, same shapes.

    Returns:
        A scalar tensor (sum of the mean squared errors).

    Example:
        >>> float(intermediate_distillation_loss({"e": torch.ones(1, 2, 2)}, {"e": torch.zeros(1, 2, 2)}))
        1.0
    """
    missing = sorted(set(teacher) ^ set(student))
    if missing or not student:
        raise RuntimeError(
            f"Intermediate distillation needs the same recorded outputs on both sides; differing: {missing[:4]}."
        )
    return sum(F.mse_loss(student[name], teacher[name]) for name in student)


def prediction_distillation_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    r"""Prediction-layer distillation, the soft cross-entropy of Bai Eq. 5.11 (MSE for a one-output head).

    .. math:: \ell_{pred} = -\frac{1}{B} \sum_b \sum_c \mathrm{softmax}(y_b/τ)_c \log \mathrm{softmax}(ŷ_b/τ)_c

    Args:
        student_logits: A ``batch x C`` tensor ``ŷ``.
        teacher_logits: A ``batch x C`` tensor ``y``.
        temperature: ``τ > 0``.

    Returns:
        A scalar tensor (batch mean); ``MSE(ŷ, y)`` when ``C = 1``.

    Example:
        >>> round(float(prediction_distillation_loss(torch.zeros(1, 2), torch.zeros(1, 2))), 4)  # log 2
        0.6931
    """
    if student_logits.shape[-1] == 1:
        return F.mse_loss(student_logits, teacher_logits)
    targets = F.softmax(teacher_logits / temperature, dim=-1)
    return -(targets * F.log_softmax(student_logits / temperature, dim=-1)).sum(dim=-1).mean()


def output_logits(output: Any, owner: str) -> Tensor:
    """The logits of a model output: its ``logits`` attribute, else its first element, else the output itself.

    Args:
        output: A Hugging Face ``ModelOutput``, a tuple or a tensor.
        owner: Who asks (named in the error when no tensor is found).
    """
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, (tuple, list)):
        logits = output[0]
    if logits is None:
        logits = output
    if not isinstance(logits, Tensor):
        raise RuntimeError(f"{owner} cannot find logits in the model output ({type(output).__name__}).")
    return logits
