"""Ready LightningModules for fine-tuning Hugging Face transformers, and their metrics.

See ``docs/architecture.md`` for the batch, ``TaskSpec`` and logged-name contracts they follow.
"""

from lightning_compress.models.base import TransformerTaskModule, task_spec_from_dict, task_spec_to_dict
from lightning_compress.models.metrics import (
    METRICS,
    SpanF1,
    bio_spans,
    build_metric_collection,
    build_metric_collections,
)
from lightning_compress.models.sequence import SequenceClassificationModule
from lightning_compress.models.token import TokenClassificationModule

__all__ = [
    "METRICS",
    "SequenceClassificationModule",
    "SpanF1",
    "TokenClassificationModule",
    "TransformerTaskModule",
    "bio_spans",
    "build_metric_collection",
    "build_metric_collections",
    "task_spec_from_dict",
    "task_spec_to_dict",
]
