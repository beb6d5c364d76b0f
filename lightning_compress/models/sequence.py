"""Sentence and sentence-pair classification or regression (GLUE, XNLI, news topics...)."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor
from transformers import AutoModelForSequenceClassification

from lightning_compress.models.base import TransformerTaskModule
from lightning_compress.tasks import TaskSpec

__all__ = ["SequenceClassificationModule"]


class SequenceClassificationModule(TransformerTaskModule):
    """Fine-tune ``AutoModelForSequenceClassification`` on a classification or regression :class:`TaskSpec`.

    For ``kind="regression"`` (``num_labels=1``) the model is built with
    ``problem_type="regression"`` so that Hugging Face computes an MSE loss, and predictions are
    the raw scores; otherwise ``problem_type="single_label_classification"`` (cross-entropy) and
    predictions are the arg-max class ids. The Hugging Face model is ``self.model``, so parameter
    names read ``model.bert.encoder.layer.0.attention.self.query.weight``.

    Args:
        pretrained: Hugging Face hub id or local model folder, resolved with
            :func:`~lightning_compress.hub.resolve_pretrained` (the default loads offline).
        task_spec: Task description, normally linked from ``data.task_spec`` by the CLI. ``None``
            means a classification task with ``num_labels`` labels measured by accuracy, or a
            regression task measured by Pearson/Spearman when ``num_labels=1``.
        num_labels: Number of labels when ``task_spec`` is ``None``; ignored otherwise.
        lr: Peak learning rate of AdamW, reached at the end of warm-up.
        weight_decay: AdamW weight decay, not applied to biases and LayerNorm weights.
        warmup_fraction: Fraction of the optimizer steps spent warming the learning rate up from 0;
            it then decays linearly to 0 at the last step.
        adam_eps: AdamW epsilon.
        classifier_dropout: Dropout before the classification head (``None``: the model default,
            ``hidden_dropout_prob`` for BERT).

    Example:
        >>> from lightning_compress.tasks import TaskSpec
        >>> spec = TaskSpec(name="sst2", num_labels=2, kind="classification", metrics=("accuracy",))
        >>> module = SequenceClassificationModule(task_spec=spec)  # doctest: +SKIP
    """

    auto_model_class: ClassVar[Any] = AutoModelForSequenceClassification
    task_kinds: ClassVar[tuple[str, ...]] = ("classification", "regression")

    @classmethod
    def default_task_spec(cls, num_labels: int) -> TaskSpec:
        """Accuracy over ``num_labels`` classes, or Pearson/Spearman regression when ``num_labels=1``."""
        if num_labels == 1:
            return TaskSpec(name="regression", num_labels=1, kind="regression", metrics=("pearson", "spearman"))
        return TaskSpec(name="classification", num_labels=num_labels, kind="classification", metrics=("accuracy",))

    def model_kwargs(self, spec: TaskSpec, classifier_dropout: float | None) -> dict[str, Any]:
        """Add ``problem_type`` so the Hugging Face loss matches the task (MSE or cross-entropy)."""
        kwargs = super().model_kwargs(spec, classifier_dropout)
        kwargs["problem_type"] = "regression" if spec.kind == "regression" else "single_label_classification"
        return kwargs

    def predictions(self, logits: Tensor) -> Tensor:
        """Class ids (``B``) for classification, float scores (``B``) for regression."""
        if self.task_spec.kind == "regression":
            return logits.squeeze(-1).float()
        return logits.argmax(dim=-1)
