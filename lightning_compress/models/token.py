"""Token classification (named-entity recognition, part-of-speech tagging...)."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor
from transformers import AutoModelForTokenClassification

from lightning_compress.models.base import TransformerTaskModule
from lightning_compress.tasks import TaskSpec

__all__ = ["TokenClassificationModule"]


class TokenClassificationModule(TransformerTaskModule):
    """Fine-tune ``AutoModelForTokenClassification`` on a ``token_classification`` :class:`TaskSpec`.

    Labels are ``B x T`` tag ids with ``-100`` on positions to ignore (padding, special tokens,
    non-first sub-words); the cross-entropy loss and the metrics (``token_accuracy``,
    ``span_f1`` over BIO ``label_names``) skip them. The Hugging Face model is ``self.model``.

    Args:
        pretrained: Hugging Face hub id or local model folder, resolved with
            :func:`~lightning_compress.hub.resolve_pretrained` (the default loads offline).
        task_spec: Task description, normally linked from ``data.task_spec`` by the CLI. ``None``
            means ``num_labels`` tags measured by token accuracy (no tag names, so no span F1).
        num_labels: Number of tags when ``task_spec`` is ``None``; ignored otherwise.
        lr: Peak learning rate of AdamW, reached at the end of warm-up.
        weight_decay: AdamW weight decay, not applied to biases and LayerNorm weights.
        warmup_fraction: Fraction of the optimizer steps spent warming the learning rate up from 0;
            it then decays linearly to 0 at the last step.
        adam_eps: AdamW epsilon.
        classifier_dropout: Dropout before the token classification head (``None``: the model default).
    """

    auto_model_class: ClassVar[Any] = AutoModelForTokenClassification
    task_kinds: ClassVar[tuple[str, ...]] = ("token_classification",)

    @classmethod
    def default_task_spec(cls, num_labels: int) -> TaskSpec:
        """Token accuracy over ``num_labels`` tags."""
        return TaskSpec(
            name="token_classification", num_labels=num_labels, kind="token_classification", metrics=("token_accuracy",)
        )

    def predictions(self, logits: Tensor) -> Tensor:
        """Tag ids (``B x T``); positions labelled ``-100`` are ignored by the metrics."""
        return logits.argmax(dim=-1)
