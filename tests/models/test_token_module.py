"""TokenClassificationModule: loss and metrics skip -100, logged names, shared base behaviour."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_compress.models import SequenceClassificationModule, TokenClassificationModule, TransformerTaskModule
from lightning_compress.models.metrics import SpanF1
from lightning_compress.tasks import TaskSpec

TAGS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
NER = TaskSpec(
    name="conll", num_labels=5, kind="token_classification", metrics=("span_f1", "token_accuracy"), label_names=TAGS
)
WIKIANN = TaskSpec(
    name="wikiann",
    num_labels=5,
    kind="token_classification",
    metrics=("span_f1",),
    eval_names=("en", "sw"),
    label_names=TAGS,
)


def test_shares_the_base_class() -> None:
    assert issubclass(TokenClassificationModule, TransformerTaskModule)
    assert issubclass(SequenceClassificationModule, TransformerTaskModule)


def test_loss_ignores_minus_100_and_logs_token_metrics(tiny_bert: str, make_loader, make_trainer) -> None:
    module = TokenClassificationModule(tiny_bert, task_spec=NER)
    names = [name for name, _ in module.named_parameters()]
    assert "model.bert.encoder.layer.1.output.dense.weight" in names
    assert module.model.config.id2label[1] == "B-PER"
    batch = next(iter(make_loader(kind="token_classification", num_labels=5)))
    assert (batch["labels"] == -100).any()
    module.eval()
    with torch.no_grad():
        output = module(batch)
    expected = nn.functional.cross_entropy(output.logits.reshape(-1, 5), batch["labels"].reshape(-1), ignore_index=-100)
    assert output.loss.item() == pytest.approx(expected.item(), rel=1e-5)

    loader = make_loader(n=8, kind="token_classification", num_labels=5, batch_size=8)
    trainer = make_trainer(fast_dev_run=True)
    trainer.fit(module, make_loader(kind="token_classification", num_labels=5), loader)
    metrics = trainer.callback_metrics
    assert set(metrics) == {"train/loss", "val/loss", "val/span_f1", "val/token_accuracy"}

    # logged values equal the metrics recomputed from the module's predictions
    module.eval()
    batch = next(iter(loader))
    with torch.no_grad():
        preds = module(batch).logits.argmax(-1)
    keep = batch["labels"] != -100
    token_accuracy = (preds[keep] == batch["labels"][keep]).float().mean().item()
    assert metrics["val/token_accuracy"].item() == pytest.approx(token_accuracy)
    span_f1 = SpanF1(TAGS)
    span_f1.update(preds, batch["labels"])
    assert metrics["val/span_f1"].item() == pytest.approx(span_f1.compute().item())


def test_several_eval_sets(tiny_bert: str, make_loader, make_trainer) -> None:
    module = TokenClassificationModule(tiny_bert, task_spec=WIKIANN)
    val = [make_loader(kind="token_classification", num_labels=5, seed=s) for s in (1, 2)]
    trainer = make_trainer(fast_dev_run=True)
    trainer.validate(module, val)
    assert set(trainer.callback_metrics) == {
        "val/loss",
        "val/en/loss",
        "val/sw/loss",
        "val/en/span_f1",
        "val/sw/span_f1",
        "val/avg/span_f1",
        "val/avg_zero_shot/span_f1",
    }
    metrics = trainer.callback_metrics
    assert metrics["val/avg_zero_shot/span_f1"].item() == pytest.approx(metrics["val/sw/span_f1"].item())


def test_default_task_and_kind_check(tiny_bert: str) -> None:
    module = TokenClassificationModule(tiny_bert, num_labels=7)
    assert module.task_spec.kind == "token_classification"
    assert module.task_spec.metrics == ("token_accuracy",)
    assert module.model.config.num_labels == 7
    with pytest.raises(ValueError, match=r"`TokenClassificationModule\(task_spec=.*kind 'token_classification'"):
        TokenClassificationModule(tiny_bert, task_spec=TaskSpec("sst2", 2, "classification", ("accuracy",)))
    with pytest.raises(ValueError, match=r"`TokenClassificationModule\(lr=0\)` is invalid: expected a float > 0\."):
        TokenClassificationModule(tiny_bert, lr=0)


def test_task_spec_dict_form_is_accepted(tiny_bert: str) -> None:
    as_dict = {
        "name": "conll",
        "num_labels": 5,
        "kind": "token_classification",
        "metrics": ["span_f1", "token_accuracy"],
        "eval_names": [""],
        "label_names": list(TAGS),
    }
    assert TokenClassificationModule(tiny_bert, task_spec=as_dict).task_spec == NER  # type: ignore[arg-type]
