"""SequenceClassificationModule: logged names, regression, train mode, optimiser, schedule, checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from lightning_compress.models import SequenceClassificationModule
from lightning_compress.tasks import TaskSpec

SST2 = TaskSpec(name="sst2", num_labels=2, kind="classification", metrics=("accuracy",))
MRPC = TaskSpec(name="mrpc", num_labels=2, kind="classification", metrics=("f1", "accuracy"))
STSB = TaskSpec(name="stsb", num_labels=1, kind="regression", metrics=("pearson", "spearman"))
XNLI = TaskSpec(
    name="xnli",
    num_labels=3,
    kind="classification",
    metrics=("accuracy",),
    eval_names=("en", "de", "fr"),
    label_names=("entailment", "neutral", "contradiction"),
)


def test_hf_model_is_exposed_as_model(tiny_bert: str) -> None:
    module = SequenceClassificationModule(tiny_bert, task_spec=XNLI)
    names = [name for name, _ in module.named_parameters()]
    assert "model.bert.encoder.layer.0.attention.self.query.weight" in names
    assert "model.classifier.weight" in names
    assert module.model.config.num_labels == 3
    assert module.model.config.id2label == {0: "entailment", 1: "neutral", 2: "contradiction"}
    assert module.model.config.problem_type == "single_label_classification"
    assert module.task_spec == XNLI
    # metric states are not parameters and not in the state dict (checkpoints hold the model only)
    assert all(key.startswith("model.") for key in module.state_dict())


def test_single_eval_set_logged_names(tiny_bert: str, make_loader, make_trainer) -> None:
    module = SequenceClassificationModule(tiny_bert, task_spec=MRPC)
    trainer = make_trainer(fast_dev_run=True)
    trainer.fit(module, make_loader(), make_loader(seed=1))
    assert set(trainer.callback_metrics) == {"train/loss", "val/loss", "val/f1", "val/accuracy"}
    trainer.test(module, make_loader(seed=2))
    assert {"test/loss", "test/f1", "test/accuracy"} <= set(trainer.callback_metrics)
    assert not any("dataloader_idx" in key for key in trainer.callback_metrics)


def test_several_eval_sets_logged_names_and_averages(tiny_bert: str, make_loader, make_trainer) -> None:
    torch.manual_seed(0)
    module = SequenceClassificationModule(tiny_bert, task_spec=XNLI)
    val = [make_loader(n=16, num_labels=3, seed=s, batch_size=16) for s in (1, 2, 3)]
    trainer = make_trainer(fast_dev_run=True)
    trainer.fit(module, make_loader(num_labels=3), val)
    metrics = trainer.callback_metrics
    expected = {"train/loss", "val/loss", "val/avg/accuracy", "val/avg_zero_shot/accuracy"}
    for name in XNLI.eval_names:
        expected |= {f"val/{name}/accuracy", f"val/{name}/loss"}
    assert set(metrics) == expected
    per_set = {name: metrics[f"val/{name}/accuracy"].item() for name in XNLI.eval_names}
    assert metrics["val/avg/accuracy"].item() == pytest.approx(sum(per_set.values()) / 3)
    assert metrics["val/avg_zero_shot/accuracy"].item() == pytest.approx((per_set["de"] + per_set["fr"]) / 2)
    assert metrics["val/loss"].item() == pytest.approx(
        sum(metrics[f"val/{n}/loss"].item() for n in XNLI.eval_names) / 3, rel=1e-5
    )

    # per-set accuracy is the accuracy of that set's predictions
    module.eval()
    with torch.no_grad():
        batch = next(iter(val[1]))
        accuracy = (module(batch).logits.argmax(-1) == batch["labels"]).float().mean().item()
    assert per_set["de"] == pytest.approx(accuracy)

    trainer.test(module, val)
    assert {"test/avg/accuracy", "test/avg_zero_shot/accuracy", "test/en/accuracy", "test/loss"} <= set(
        trainer.callback_metrics
    )


def test_more_dataloaders_than_eval_names_is_an_error(tiny_bert: str, make_loader, make_trainer) -> None:
    module = SequenceClassificationModule(tiny_bert, task_spec=SST2)
    with pytest.raises(ValueError, match="evaluation set name"):
        make_trainer().validate(module, [make_loader(), make_loader()])


def test_regression_uses_mse(tiny_bert: str, make_loader, make_trainer) -> None:
    module = SequenceClassificationModule(tiny_bert, task_spec=STSB)
    assert module.model.config.problem_type == "regression"
    assert module.model.config.num_labels == 1
    batch = next(iter(make_loader(kind="regression", num_labels=1)))
    module.eval()
    with torch.no_grad():
        output = module(batch)
        assert output.loss.item() == pytest.approx(
            nn.functional.mse_loss(output.logits.squeeze(-1), batch["labels"]).item()
        )
        integer_labels = dict(batch, labels=batch["labels"].round().long())
        assert torch.isfinite(module(integer_labels).loss)  # integer scores are cast to float
    trainer = make_trainer(fast_dev_run=True)
    trainer.fit(module, make_loader(kind="regression", num_labels=1), make_loader(kind="regression", num_labels=1))
    assert {"val/pearson", "val/spearman", "val/loss"} <= set(trainer.callback_metrics)


def test_default_task_from_num_labels(tiny_bert: str) -> None:
    assert SequenceClassificationModule(tiny_bert, num_labels=4).task_spec.metrics == ("accuracy",)
    regression = SequenceClassificationModule(tiny_bert, num_labels=1)
    assert regression.task_spec.kind == "regression"
    assert regression.model.config.problem_type == "regression"


class _RecordModes(pl.Callback):
    def __init__(self) -> None:
        self.model_training: list[bool] = []
        self.dropout_training: list[bool] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        dropouts = [m for m in pl_module.model.modules() if isinstance(m, nn.Dropout)]
        assert dropouts
        self.model_training.append(pl_module.model.training)
        self.dropout_training.extend(m.training for m in dropouts)


@pytest.mark.parametrize("eval_before_fit", [False, True])
def test_dropout_is_on_during_fit(tiny_bert: str, make_loader, make_trainer, eval_before_fit: bool) -> None:
    module = SequenceClassificationModule(tiny_bert, task_spec=SST2, classifier_dropout=0.2)
    assert module.model.classifier is not None and module.model.dropout.p == 0.2
    if eval_before_fit:
        module.eval()
    recorder = _RecordModes()
    trainer = make_trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, callbacks=[recorder])
    trainer.fit(module, make_loader(), make_loader())  # sanity-check validation runs before training
    assert recorder.model_training == [True, True]
    assert recorder.dropout_training and all(recorder.dropout_training)


def test_no_weight_decay_on_bias_and_layernorm(tiny_bert: str) -> None:
    module = SequenceClassificationModule(tiny_bert, task_spec=SST2, weight_decay=0.05)
    names = {id(p): n for n, p in module.named_parameters()}
    decay, no_decay = module.parameter_groups()
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    decay_names = {names[id(p)] for p in decay["params"]}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert decay_names | no_decay_names == set(names.values()) and not decay_names & no_decay_names
    assert no_decay_names == {n for n in names.values() if n.endswith("bias") or ".LayerNorm." in n}
    assert "model.bert.encoder.layer.0.attention.output.LayerNorm.weight" in no_decay_names
    assert "model.bert.encoder.layer.0.attention.self.query.weight" in decay_names


class _RecordLR(pl.Callback):
    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_lr_warms_up_then_decays_to_zero(tiny_bert: str, make_loader, make_trainer) -> None:
    lr = 1e-3
    module = SequenceClassificationModule(tiny_bert, task_spec=SST2, lr=lr, warmup_fraction=0.3, adam_eps=1e-6)
    recorder = _RecordLR()
    trainer = make_trainer(max_steps=10, limit_val_batches=0, callbacks=[recorder])
    trainer.fit(module, make_loader(n=20, batch_size=2))
    optimizer = trainer.optimizers[0]
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["eps"] == 1e-6
    # 10 steps, ceil(0.3 * 10) = 3 warm-up steps: 0, 1/3, 2/3, 1, then linear decay 6/7 ... 1/7,
    # and 0 once the last step is taken
    expected = [0, 1 / 3, 2 / 3, 1, 6 / 7, 5 / 7, 4 / 7, 3 / 7, 2 / 7, 1 / 7]
    assert recorder.lrs == pytest.approx([lr * f for f in expected])
    assert max(recorder.lrs) == pytest.approx(lr)
    config = trainer.lr_scheduler_configs[0]
    assert config.interval == "step"
    assert config.scheduler.get_last_lr() == pytest.approx([0.0, 0.0])


def test_checkpoint_round_trip(tiny_bert: str, make_loader, make_trainer, tmp_path: Path) -> None:
    module = SequenceClassificationModule(tiny_bert, task_spec=XNLI, lr=3e-5, classifier_dropout=0.1)
    trainer = make_trainer(max_steps=1, limit_val_batches=0)
    trainer.fit(module, make_loader(num_labels=3))
    path = tmp_path / "module.ckpt"
    trainer.save_checkpoint(path)

    raw = torch.load(path, weights_only=True)  # plain types only: no pickled TaskSpec
    assert raw["hyper_parameters"]["task_spec"]["eval_names"] == ["en", "de", "fr"]

    loaded = SequenceClassificationModule.load_from_checkpoint(path)
    assert loaded.task_spec == XNLI
    assert loaded.hparams == module.hparams
    assert loaded.hparams.lr == 3e-5 and loaded.hparams.pretrained == tiny_bert
    state, loaded_state = module.state_dict(), loaded.state_dict()
    assert state.keys() == loaded_state.keys()
    assert all(torch.equal(state[k], loaded_state[k]) for k in state)
    batch = next(iter(make_loader(num_labels=3)))
    module.eval()
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch).logits, module(batch).logits)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"lr": -1}, ValueError, r"`SequenceClassificationModule\(lr=-1\)` is invalid: expected a float > 0\."),
        ({"lr": "fast"}, TypeError, r"`SequenceClassificationModule\(lr='fast'\)` is invalid"),
        ({"weight_decay": -0.1}, ValueError, r"weight_decay=-0.1"),
        ({"warmup_fraction": 1.5}, ValueError, r"expected a float in \[0, 1\]"),
        ({"adam_eps": 0}, ValueError, r"adam_eps=0"),
        ({"classifier_dropout": 1.0}, ValueError, r"classifier_dropout=1.0"),
        ({"num_labels": 0}, ValueError, r"num_labels=0"),
        ({"num_labels": 2.0}, TypeError, r"num_labels=2.0"),
        ({"pretrained": 3}, TypeError, r"pretrained=3"),
        ({"task_spec": "sst2"}, TypeError, r"task_spec='sst2'"),
        ({"task_spec": TaskSpec("ner", 3, "token_classification", ("token_accuracy",))}, ValueError, "kind"),
        ({"task_spec": TaskSpec("stsb", 2, "regression", ("pearson",))}, ValueError, "num_labels=1"),
        ({"task_spec": TaskSpec("sst2", 2, "classification", ("bleu",))}, ValueError, "unknown metric"),
        ({"task_spec": TaskSpec("sst2", 2, "classification", ("pearson",))}, ValueError, "metrics that apply"),
    ],
)
def test_invalid_arguments(tiny_bert: str, kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        SequenceClassificationModule(**{"pretrained": tiny_bert, **kwargs})
