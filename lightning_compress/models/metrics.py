"""Evaluation metrics named in :attr:`lightning_compress.tasks.TaskSpec.metrics`.

:data:`METRICS` maps each metric name to a factory that builds a fresh ``torchmetrics`` metric for a
:class:`~lightning_compress.tasks.TaskSpec`. All metrics take *predictions already decoded* by the
LightningModule (class ids for classification and token tasks, one float per example for
regression) and the ``labels`` of the batch as target, so one ``MetricCollection`` can be updated
with a single call. States are torchmetrics states with sum/cat reductions, so values are exact
under DDP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType

import torch
from torch import Tensor, nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import BinaryF1Score, MulticlassAccuracy, MulticlassMatthewsCorrCoef
from torchmetrics.regression import PearsonCorrCoef, SpearmanCorrCoef

from lightning_compress.tasks import TaskSpec

__all__ = [
    "IGNORE_INDEX",
    "METRICS",
    "MetricFactory",
    "SpanF1",
    "bio_spans",
    "build_metric_collection",
    "build_metric_collections",
]

#: Label value that marks positions to ignore in token-level targets (Hugging Face convention).
IGNORE_INDEX = -100

MetricFactory = Callable[[TaskSpec], Metric]

Span = tuple[str, int, int]


def _parse_bio_tag(tag: str) -> tuple[str, str | None]:
    """Split a BIO tag into ``(prefix, entity type)``: ``"B-PER" -> ("B", "PER")``, ``"O" -> ("O", None)``."""
    if tag == "O":
        return "O", None
    prefix, sep, entity = tag.partition("-")
    if sep and prefix in ("B", "I") and entity:
        return prefix, entity
    raise ValueError(f"Tag {tag!r} is not a BIO tag: expected 'O', 'B-<type>' or 'I-<type>'.")


def bio_spans(tags: Iterable[str]) -> set[Span]:
    """Extract entity spans ``(type, start, end)`` (``end`` exclusive) from a sequence of BIO tags.

    Follows the CoNLL evaluation script (and ``seqeval``'s default mode): a span starts at ``B-X``,
    or at ``I-X`` that does not continue a span of type ``X`` (after ``O`` or another type); it ends
    before the next tag that is not ``I-X``.

    Example:
        >>> sorted(bio_spans(["B-PER", "I-PER", "O", "I-LOC", "B-LOC"]))
        [('LOC', 3, 4), ('LOC', 4, 5), ('PER', 0, 2)]
    """
    spans: set[Span] = set()
    start: int | None = None
    entity: str | None = None
    position = -1
    for position, tag in enumerate(tags):
        prefix, tag_entity = _parse_bio_tag(tag)
        if start is not None and (prefix != "I" or tag_entity != entity):
            spans.add((str(entity), start, position))
            start = None
        if prefix == "B" or (prefix == "I" and start is None):
            start, entity = position, tag_entity
    if start is not None:
        spans.add((str(entity), start, position + 1))
    return spans


class SpanF1(Metric):
    """Entity-level (span) micro F1 for BIO-tagged token classification, as reported for NER.

    A predicted entity counts as a true positive only when its type and its exact token span match a
    target entity; a partial overlap is one false positive and one false negative. Positions whose
    target is ``ignore_index`` (padding, non-first sub-words) are removed from both sequences before
    spans are extracted, like the Hugging Face NER examples do before calling ``seqeval``.

    States are the summed counts ``tp``, ``fp`` and ``fn``, so the metric syncs exactly under DDP.

    Args:
        label_names: Tag name of each label id, in id order, e.g. ``("O", "B-PER", "I-PER")``.
        ignore_index: Target value of positions to skip.

    ``update(preds, target)`` takes ``preds`` as tag ids (``B x T``) or logits (``B x T x C``) and
    ``target`` as tag ids (``B x T``); a single sequence (``T``) is also accepted.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    tp: Tensor
    fp: Tensor
    fn: Tensor

    def __init__(self, label_names: Sequence[str], ignore_index: int = IGNORE_INDEX, **kwargs: object) -> None:
        super().__init__(**kwargs)
        if isinstance(label_names, str) or not isinstance(label_names, Sequence):
            raise TypeError(f"`SpanF1(label_names={label_names!r})` is invalid: expected a sequence of BIO tag names.")
        if not label_names:
            raise ValueError("`SpanF1(label_names=())` is invalid: expected the BIO tag name of every label id.")
        for tag in label_names:
            try:
                _parse_bio_tag(tag)
            except ValueError as error:
                raise ValueError(f"`SpanF1(label_names={tuple(label_names)!r})` is invalid: {error}") from None
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
            raise TypeError(f"`SpanF1(ignore_index={ignore_index!r})` is invalid: expected an int.")
        self.label_names = tuple(label_names)
        self.ignore_index = ignore_index
        self.add_state("tp", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("fp", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("fn", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Count matched, spurious and missed entity spans of a batch of sequences."""
        if preds.is_floating_point() and preds.ndim == target.ndim + 1:
            preds = preds.argmax(dim=-1)
        if preds.shape != target.shape:
            raise ValueError(
                f"SpanF1 expects preds and target of the same shape (or logits with one more dimension); "
                f"got {tuple(preds.shape)} and {tuple(target.shape)}."
            )
        if target.ndim == 1:
            preds, target = preds.unsqueeze(0), target.unsqueeze(0)
        if target.ndim != 2:
            raise ValueError(f"SpanF1 expects tag ids of shape B x T; got {tuple(target.shape)}.")
        tp = fp = fn = 0
        num_labels = len(self.label_names)
        for pred_row, target_row in zip(preds.tolist(), target.tolist()):
            kept = [(p, t) for p, t in zip(pred_row, target_row) if t != self.ignore_index]
            for p, t in kept:
                if not (0 <= p < num_labels and 0 <= t < num_labels):
                    raise ValueError(
                        f"SpanF1 got tag id {p if not 0 <= p < num_labels else t} outside [0, {num_labels}) "
                        f"for label_names={self.label_names!r}."
                    )
            predicted = bio_spans(self.label_names[p] for p, _ in kept)
            expected = bio_spans(self.label_names[t] for _, t in kept)
            tp += len(predicted & expected)
            fp += len(predicted - expected)
            fn += len(expected - predicted)
        self.tp += tp
        self.fp += fp
        self.fn += fn

    def compute(self) -> Tensor:
        """Return ``2 tp / (2 tp + fp + fn)``, 0 when there is no entity at all."""
        denominator = 2 * self.tp + self.fp + self.fn
        if denominator == 0:
            return torch.tensor(0.0, device=self.tp.device)
        return (2 * self.tp).float() / denominator.float()


def _require_kind(metric: str, task: TaskSpec, kinds: tuple[str, ...]) -> None:
    if task.kind not in kinds:
        raise ValueError(
            f"Metric {metric!r} does not apply to task {task.name!r} of kind {task.kind!r}: "
            f"it needs kind {' or '.join(map(repr, kinds))}."
        )


def _accuracy(task: TaskSpec) -> Metric:
    _require_kind("accuracy", task, ("classification",))
    return MulticlassAccuracy(num_classes=task.num_labels, average="micro")


def _f1(task: TaskSpec) -> Metric:
    _require_kind("f1", task, ("classification",))
    if task.num_labels != 2:
        raise ValueError(
            f"Metric 'f1' is the binary F1 of the positive class; task {task.name!r} has {task.num_labels} labels."
        )
    return BinaryF1Score()


def _matthews(task: TaskSpec) -> Metric:
    _require_kind("matthews", task, ("classification",))
    return MulticlassMatthewsCorrCoef(num_classes=task.num_labels)


def _pearson(task: TaskSpec) -> Metric:
    _require_kind("pearson", task, ("regression",))
    return PearsonCorrCoef()


def _spearman(task: TaskSpec) -> Metric:
    _require_kind("spearman", task, ("regression",))
    return SpearmanCorrCoef()


def _token_accuracy(task: TaskSpec) -> Metric:
    _require_kind("token_accuracy", task, ("token_classification",))
    return MulticlassAccuracy(num_classes=task.num_labels, average="micro", ignore_index=IGNORE_INDEX)


def _span_f1(task: TaskSpec) -> Metric:
    _require_kind("span_f1", task, ("token_classification",))
    if len(task.label_names) != task.num_labels:
        raise ValueError(
            f"Metric 'span_f1' needs the BIO tag name of each of the {task.num_labels} labels of task "
            f"{task.name!r}; got label_names={task.label_names!r}."
        )
    return SpanF1(task.label_names, ignore_index=IGNORE_INDEX)


#: Metric name -> factory building a fresh metric for a task. Inputs are decoded predictions and labels.
METRICS: Mapping[str, MetricFactory] = MappingProxyType(
    {
        "accuracy": _accuracy,
        "f1": _f1,
        "matthews": _matthews,
        "pearson": _pearson,
        "spearman": _spearman,
        "token_accuracy": _token_accuracy,
        "span_f1": _span_f1,
    }
)


def build_metric_collection(task: TaskSpec) -> MetricCollection:
    """Build one ``MetricCollection`` with every metric of ``task.metrics``, keyed by metric name."""
    if not task.metrics:
        raise ValueError(f"Task {task.name!r} names no metric; expected at least one of {sorted(METRICS)}.")
    unknown = [name for name in task.metrics if name not in METRICS]
    if unknown:
        raise ValueError(f"Task {task.name!r} names unknown metric(s) {unknown}; expected names in {sorted(METRICS)}.")
    # compute_groups=False: each metric keeps its own state; sharing is a premature optimisation here.
    return MetricCollection({name: METRICS[name](task) for name in task.metrics}, compute_groups=False)


def build_metric_collections(task: TaskSpec) -> nn.ModuleList:
    """Build one ``MetricCollection`` per evaluation set of ``task`` (one per validation/test dataloader).

    The result is a ``ModuleList`` (index = ``dataloader_idx``, name = ``task.eval_names[idx]``), so
    the metrics move with the LightningModule to its device.
    """
    return nn.ModuleList(build_metric_collection(task) for _ in task.eval_names)
