"""Distillation core: losses between student and teacher outputs and input fingerprints (tensor functions)."""

from lightning_compress.distillation.fingerprints import input_fingerprints
from lightning_compress.distillation.losses import (
    KD_WEIGHTINGS,
    batch_standardize,
    cosine_feature_loss,
    cross_correlation_loss,
    cross_correlation_matrix,
    intermediate_distillation_loss,
    kl_with_temperature,
    prediction_distillation_loss,
    sdp_loss_weights,
)

__all__ = [
    "KD_WEIGHTINGS",
    "batch_standardize",
    "cosine_feature_loss",
    "cross_correlation_loss",
    "cross_correlation_matrix",
    "input_fingerprints",
    "intermediate_distillation_loss",
    "kl_with_temperature",
    "prediction_distillation_loss",
    "sdp_loss_weights",
]
