"""Metric values against hand-computed numbers, and the METRICS / collection contracts."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torchmetrics import MetricCollection

from lightning_compress.models.metrics import METRICS, SpanF1, bio_spans, build_metric_collections
from lightning_compress.tasks import TaskSpec

CLS2 = TaskSpec(name="mrpc", num_labels=2, kind="classification", metrics=("accuracy", "f1"))
CLS3 = TaskSpec(name="mnli", num_labels=3, kind="classification", metrics=("accuracy",))
REG = TaskSpec(name="stsb", num_labels=1, kind="regression", metrics=("pearson", "spearman"))
TAGS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
NER = TaskSpec(
    name="ner", num_labels=5, kind="token_classification", metrics=("span_f1", "token_accuracy"), label_names=TAGS
)
O, BP, IP, BL, IL = range(5)


def test_metric_names_are_the_documented_ones() -> None:
    assert set(METRICS) == {"accuracy", "f1", "matthews", "pearson", "spearman", "token_accuracy", "span_f1"}
    with pytest.raises(TypeError):
        METRICS["new"] = METRICS["accuracy"]  # type: ignore[index]


def test_accuracy_multiclass_micro() -> None:
    metric = METRICS["accuracy"](CLS3)
    metric.update(torch.tensor([0, 2, 1, 1]), torch.tensor([0, 1, 1, 1]))
    assert metric.compute().item() == pytest.approx(3 / 4)


def test_f1_is_binary_f1_of_positive_class() -> None:
    metric = METRICS["f1"](CLS2)
    # tp=2 (idx 0, 3), fp=1 (idx 1), fn=1 (idx 4) -> F1 = 2*2 / (2*2 + 1 + 1)
    metric.update(torch.tensor([1, 1, 0, 1, 0]), torch.tensor([1, 0, 0, 1, 1]))
    assert metric.compute().item() == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="binary"):
        METRICS["f1"](CLS3)


def test_matthews() -> None:
    metric = METRICS["matthews"](CLS2)
    # tp=2, tn=1, fp=1, fn=1 -> (2*1 - 1*1) / sqrt(3*3*2*2) = 1/6
    metric.update(torch.tensor([1, 1, 0, 1, 0]), torch.tensor([1, 0, 0, 1, 1]))
    assert metric.compute().item() == pytest.approx(1 / 6)


def test_pearson_and_spearman() -> None:
    preds = torch.tensor([1.0, 2.0, 3.0, 4.0])
    target = torch.tensor([2.0, 4.0, 5.0, 4.0])
    pearson, spearman = METRICS["pearson"](REG), METRICS["spearman"](REG)
    pearson.update(preds, target)
    spearman.update(preds, target)
    # centred x = (-1.5, -.5, .5, 1.5), y = (-1.75, .25, 1.25, .25): sum xy = 3.5, sum x^2 = 5, sum y^2 = 4.75
    assert pearson.compute().item() == pytest.approx(3.5 / math.sqrt(5 * 4.75), abs=1e-6)
    # ranks of y = (1, 2.5, 4, 2.5): centred (-1.5, 0, 1.5, 0): sum xy = 3, sum y^2 = 4.5
    assert spearman.compute().item() == pytest.approx(3 / math.sqrt(5 * 4.5), abs=1e-6)


def test_token_accuracy_ignores_minus_100() -> None:
    metric = METRICS["token_accuracy"](TaskSpec("pos", 3, "token_classification", ("token_accuracy",)))
    metric.update(torch.tensor([[0, 1, 2], [1, 1, 0]]), torch.tensor([[0, 2, 2], [-100, 1, 0]]))
    assert metric.compute().item() == pytest.approx(4 / 5)


def test_metrics_refuse_the_wrong_task_kind() -> None:
    with pytest.raises(ValueError, match="regression"):
        METRICS["pearson"](CLS2)
    with pytest.raises(ValueError, match="token_classification"):
        METRICS["span_f1"](CLS2)
    with pytest.raises(ValueError, match="label_names"):
        METRICS["span_f1"](TaskSpec("ner", 3, "token_classification", ("span_f1",)))


def test_bio_spans() -> None:
    assert bio_spans(["B-PER", "I-PER", "O", "B-LOC"]) == {("PER", 0, 2), ("LOC", 3, 4)}
    # I- after O or after another type starts a span (CoNLL convention); B- always starts one.
    assert bio_spans(["O", "I-PER", "I-PER", "I-LOC", "B-LOC", "I-LOC"]) == {
        ("PER", 1, 3),
        ("LOC", 3, 4),
        ("LOC", 4, 6),
    }
    assert bio_spans([]) == set()
    with pytest.raises(ValueError, match="BIO"):
        bio_spans(["PER"])


def test_span_f1_hand_checked() -> None:
    metric = METRICS["span_f1"](NER)
    assert isinstance(metric, SpanF1)
    preds = torch.tensor(
        [
            [BP, O, O, BL],  # PER(0,1) only overlaps PER(0,2): one fp and one fn; LOC(3,4) exact: tp
            [O, BL, BP, IL],  # position 2 is ignored -> O B-LOC I-LOC -> LOC(1,3): tp
        ]
    )
    target = torch.tensor(
        [
            [BP, IP, O, BL],
            [O, BL, -100, IL],
        ]
    )
    metric.update(preds, target)
    assert (metric.tp.item(), metric.fp.item(), metric.fn.item()) == (2, 1, 1)
    # precision 2/3, recall 2/3 -> F1 2/3
    assert metric.compute().item() == pytest.approx(2 / 3)

    # logits are accepted and decoded by arg-max
    logits = nn.functional.one_hot(preds, num_classes=5).float()
    from_logits = SpanF1(TAGS)
    from_logits.update(logits, target)
    assert from_logits.compute().item() == pytest.approx(2 / 3)


def test_span_f1_sums_states_so_it_syncs_under_ddp() -> None:
    target = torch.tensor([[BP, IP, O, BL], [O, BL, IL, O]])
    preds = torch.tensor([[BP, IP, O, O], [O, BL, IL, BP]])
    whole = SpanF1(TAGS)
    whole.update(preds, target)
    first, second = SpanF1(TAGS), SpanF1(TAGS)
    first.update(preds[:1], target[:1])
    second.update(preds[1:], target[1:])
    first.merge_state(second)  # what the DDP all-reduce does with dist_reduce_fx="sum"
    assert first.compute().item() == pytest.approx(whole.compute().item())
    # tp=2, fp=1, fn=1
    assert whole.compute().item() == pytest.approx(2 / 3)


def test_span_f1_without_entities_is_zero_and_validates_names() -> None:
    metric = SpanF1(TAGS)
    metric.update(torch.tensor([[O, O]]), torch.tensor([[O, O]]))
    assert metric.compute().item() == 0.0
    with pytest.raises(ValueError, match="BIO"):
        SpanF1(("O", "PER"))
    with pytest.raises(ValueError, match="outside"):
        metric.update(torch.tensor([[7, O]]), torch.tensor([[O, O]]))


def test_one_collection_per_eval_set() -> None:
    spec = TaskSpec("xnli", 3, "classification", ("accuracy",), eval_names=("en", "de", "fr"))
    collections = build_metric_collections(spec)
    assert isinstance(collections, nn.ModuleList) and len(collections) == 3
    assert all(isinstance(c, MetricCollection) and list(c.keys()) == ["accuracy"] for c in collections)
    collections[0].update(torch.tensor([0, 1]), torch.tensor([0, 1]))
    collections[1].update(torch.tensor([0, 1]), torch.tensor([1, 1]))
    assert collections[0].compute()["accuracy"].item() == 1.0
    assert collections[1].compute()["accuracy"].item() == 0.5

    ner = build_metric_collections(NER)
    assert list(ner[0].keys()) == ["span_f1", "token_accuracy"]
    with pytest.raises(ValueError, match="unknown metric"):
        build_metric_collections(TaskSpec("x", 2, "classification", ("bleu",)))


@pytest.mark.parametrize("seed", range(5))
def test_span_f1_equals_seqeval_on_random_sequences(seed: int) -> None:
    """Same entity F1 as seqeval's default (conlleval) mode, malformed I- starts and type switches included."""
    seqeval_metrics = pytest.importorskip("seqeval.metrics")
    tags = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")
    generator = torch.Generator().manual_seed(seed)
    metric = SpanF1(tags)
    truth: list[list[str]] = []
    guess: list[list[str]] = []
    for _ in range(8):  # 8 batches of 4 sequences of 12 positions; -100 marks non-first sub-tokens and padding
        target = torch.randint(0, len(tags), (4, 12), generator=generator)
        preds = torch.randint(0, len(tags), (4, 12), generator=generator)
        target[torch.rand(4, 12, generator=generator) < 0.2] = -100
        metric.update(preds, target)
        for p_row, t_row in zip(preds.tolist(), target.tolist()):
            kept = [(p, t) for p, t in zip(p_row, t_row) if t != -100]
            guess.append([tags[p] for p, _ in kept])
            truth.append([tags[t] for _, t in kept])
    assert any(s[0].startswith("I-") for s in truth + guess)  # sequences opening with a malformed I- tag
    expected = seqeval_metrics.f1_score(truth, guess)
    assert 0.0 < expected < 1.0
    assert metric.compute().item() == pytest.approx(expected, abs=1e-6)
