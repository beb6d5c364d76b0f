import copy

import pytest
import torch
from pytorch_lightning import Callback, seed_everything

from lightning_compress.callbacks import GradualMagnitudePruning, SelfDistilledPruning, StructuredPruning
from lightning_compress.pruning import slim_model_
from lightning_compress.pruning.structured import units_to_remove
from tests.tiny import RandomTokens, UserModule, assert_resume_exact, loader, make_trainer, run_ddp_script

pytestmark = pytest.mark.filterwarnings("ignore:.*(val_dataloader|LeafSpec|does not have many workers).*")


class RemovedStayZero(Callback):
    """After every optimizer step: removed neurons' rows, bias entries and columns are exactly zero."""

    def __init__(self, pruning):
        self.pruning, self.checked = pruning, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        modules = dict(pl_module.named_modules())
        for name, keep in self.pruning.masks.items():
            up, down = modules[f"{name}.intermediate.dense"], modules[f"{name}.output.dense"]
            assert not up.weight[~keep].any() and not up.bias[~keep].any() and not down.weight[:, ~keep].any()
            self.checked += 1


def _logits(model, ids):
    with torch.no_grad():
        return model.eval()(input_ids=ids).logits


def test_ffn_neurons_follow_the_schedule_stay_zero_and_slice_to_the_same_logits():
    seed_everything(0)
    module = UserModule()
    pruning = StructuredPruning(final_sparsity=0.5, unit="ffn_neurons", start=0.1, end=0.6, every_n_steps=2)
    probe = RemovedStayZero(pruning)
    make_trainer([pruning, probe], max_epochs=2).fit(module, loader())

    # 16 steps, cubic events at 2, 4, ..., 10 (the one at 2 has sparsity 0 and is dropped); each event removes
    # round-half-up(s · 64) neurons in every layer: 0.2891 -> 19, 0.4375 -> 28, 0.4922 -> 32, 0.5 -> 32
    assert [event.step for event in pruning.events] == [4, 6, 8, 10]
    for (_, measured), event in zip(pruning.history, pruning.events):
        assert measured == units_to_remove(event.sparsity, 64) / 64
    assert pruning.history == [(4, 19 / 64), (6, 28 / 64), (8, 0.5), (10, 0.5)]
    assert pruning.removed_fraction == 0.5 and probe.checked > 0
    assert {layer: len(kept) for layer, kept in pruning.kept_neurons.items()} == {0: 32, 1: 32}

    ids = RandomTokens(16).input_ids
    slim = slim_model_(copy.deepcopy(module.model), kept_neurons=pruning.kept_neurons)
    assert slim.config.intermediate_size == 32
    assert torch.allclose(_logits(slim, ids), _logits(module.model, ids), atol=1e-5, rtol=0)


def test_layers_are_skipped_exactly_during_fit_and_sliced_out_at_its_end():
    seed_everything(0)
    module = UserModule(layers=3, dropout=0.0)
    pruning = StructuredPruning(final_sparsity=0.34, unit="layers", schedule="one_shot", start=3)
    seen = {}
    ids = RandomTokens(16).input_ids

    class Probe(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == 5:  # after the event at step 3; hooks active during fit
                out = pl_module.model(input_ids=batch["input_ids"], output_hidden_states=True)
                removed = [i for i in range(3) if not bool(pruning.masks[f"model.bert.encoder.layer.{i}"])]
                seen["removed"] = removed
                seen["identity"] = torch.equal(out.hidden_states[removed[0] + 1], out.hidden_states[removed[0]])

        def on_train_end(self, trainer, pl_module):  # the trained model, removed layer skipped by its hook
            seen["masked"] = _logits(pl_module.model, ids)

    make_trainer([pruning, Probe()], max_epochs=1).fit(module, loader())
    assert pruning.history == [(3, 1 / 3)] and len(seen["removed"]) == 1 and seen["identity"]
    assert pruning.kept_layers == [i for i in range(3) if i not in seen["removed"]]
    assert not pruning._skip_handles  # hooks removed
    assert module.model.config.num_hidden_layers == 2 and len(module.model.bert.encoder.layer) == 2
    assert torch.allclose(_logits(module.model, ids), seen["masked"], atol=1e-5, rtol=0)


def test_taylor_accumulates_gradients_between_events_and_random_is_seeded():
    seed_everything(0)
    seen = []
    pruning = StructuredPruning(final_sparsity=0.5, criterion="taylor", schedule="one_shot", start=4)

    class Probe(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == 4:  # right before the event: four optimizer steps accumulated
                seen.append((pruning.taylor_steps, {k: v.clone() for k, v in pruning.taylor_scores.items()}))

    make_trainer([Probe(), pruning], max_epochs=1).fit(UserModule(), loader())
    steps, scores = seen[0]
    assert steps == 4 and set(scores) == {"model.bert.encoder.layer.0", "model.bert.encoder.layer.1"}
    for name, score in scores.items():  # the lowest accumulated |Σ w·g| are the removed neurons
        assert score.shape == (64,) and bool((score >= 0).all())
        removed = ~pruning.masks[name]
        assert int(removed.sum()) == 32 and float(score[removed].max()) <= float(score[~removed].min())

    masks = []
    for _ in range(2):
        seed_everything(1)
        random = StructuredPruning(final_sparsity=0.5, criterion="random", schedule="one_shot", start=2, seed=7)
        make_trainer([random], max_steps=4).fit(UserModule(), loader())
        masks.append(random.masks)
    assert all(torch.equal(masks[0][name], masks[1][name]) for name in masks[0])


def test_stacks_with_gradual_magnitude_pruning_and_self_distillation():
    seed_everything(0)
    module = UserModule()
    structured = StructuredPruning(final_sparsity=0.25, schedule="one_shot", start=2)
    gmp = GradualMagnitudePruning(final_sparsity=0.5, schedule="one_shot", start=4)
    sdp = SelfDistilledPruning(teacher_cache=False)
    probe = RemovedStayZero(structured)
    trainer = make_trainer([structured, gmp, sdp, probe], max_epochs=1)
    trainer.fit(module, loader())
    assert structured.removed_fraction == 0.25 and gmp.sparsity == pytest.approx(0.5, abs=1e-3)
    assert "train/kd" in trainer.callback_metrics and probe.checked > 0
    params = dict(module.named_parameters())
    for name, mask in gmp.masks.items():
        assert not params[name][~mask].any()
    # the unstructured sparsity sits inside the remaining units too: kept neurons have pruned weights
    up = params["model.bert.encoder.layer.0.intermediate.dense.weight"]
    kept = structured.masks["model.bert.encoder.layer.0"]
    assert (up[kept] == 0).any() and not up[~kept].any()


@pytest.mark.parametrize("unit, criterion", [("ffn_neurons", "taylor"), ("layers", "random")])
def test_resume_from_a_mid_epoch_checkpoint_between_events_is_exact(tmp_path, unit, criterion):
    # 16 optimizer steps (8 per epoch), events at 5, 8, 11; the step-10 checkpoint is mid-epoch 2, between events
    def callbacks():
        sparsity = 0.67 if unit == "layers" else 0.6
        settings = dict(unit=unit, criterion=criterion, start=0.1, end=0.8, every_n_steps=3)
        return [StructuredPruning(final_sparsity=sparsity, **settings)]

    runs = assert_resume_exact(
        callbacks,
        stop_at_step=10,
        tmp_path=tmp_path,
        make_module=lambda: UserModule(dropout=0.0, layers=3 if unit == "layers" else 2),
    )
    full, resumed = runs.full_callbacks[0], runs.resumed_callbacks[0]
    assert [event.step for event in full.events] == [5, 8, 11]
    assert resumed.history == full.history and resumed.last_event_step == full.last_event_step == 11


def test_warns_once_when_the_users_model_trains_in_eval_mode():
    seed_everything(0)
    with pytest.warns(UserWarning, match="dropout module\\(s\\) of the model being trained are in eval mode"):
        make_trainer([StructuredPruning(final_sparsity=0.5)], max_steps=2).fit(UserModule(train_mode=False), loader())


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            {"unit": "heads"},
            ValueError,
            r"`StructuredPruning\(unit='heads'\)` is invalid: expected one of \['ffn_neurons', 'layers'\]\.",
        ),
        (
            {"criterion": "l0"},
            ValueError,
            r"`StructuredPruning\(criterion='l0'\)` is invalid: expected one of \['magnitude', 'taylor', 'random'\]",
        ),
        ({"unit": 3}, TypeError, r"`StructuredPruning\(unit=3\)` is invalid: expected one of"),
        (
            {"final_sparsity": 1.0},
            ValueError,
            r"final_sparsity=1.0\)` is invalid: expected a float in \[0, 1\) \(the fraction of units removed",
        ),
        ({"final_sparsity": -0.1}, ValueError, r"final_sparsity=-0.1\)` is invalid"),
        ({"final_sparsity": "0.5"}, TypeError, r"final_sparsity='0.5'\)` is invalid: expected a float in \[0, 1\)"),
        ({"final_sparsity": True}, TypeError, r"final_sparsity=True\)` is invalid"),
        (
            {"schedule": "linear"},
            ValueError,
            r"schedule='linear'\)` is invalid: expected one of \['cubic', 'iterative', 'one_shot'\]",
        ),
        ({"start": 1.5}, ValueError, r"must lie in \[0, 1\]; use an int for an absolute optimizer step"),
        ({"start": "0"}, TypeError, r"start='0'\)` is invalid"),
        ({"start": 0.8, "end": 0.2}, ValueError, "end must not come before start"),
        ({"every_n_steps": 0}, ValueError, r"every_n_steps=0\)` is invalid: expected an int >= 1 or None"),
        ({"step_fraction": 1.0}, ValueError, r"step_fraction=1.0\)` is invalid: expected a float in \(0, 1\)"),
        ({"seed": 1.5}, TypeError, r"seed=1.5\)` is invalid: expected an int"),
        ({"targets": ["("]}, ValueError, "not a valid regular expression"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        StructuredPruning(**kwargs)


@pytest.mark.parametrize(
    "kwargs, layers, match",
    [
        ({"unit": "layers", "final_sparsity": 0.9}, 3, r"would remove all 3 encoder layers .*below 0.8333"),
        ({"unit": "layers", "final_sparsity": 0.75}, 2, r"would remove all 2 encoder layers"),
        ({"unit": "ffn_neurons", "final_sparsity": 0.995}, 2, r"would remove all 64 feed-forward neurons"),
        ({"unit": "ffn_neurons", "targets": r"layer\.0$"}, 2, r"selects 1 of the 2 blocks .* must select all of them"),
        ({"unit": "layers", "targets": r"decoder"}, 2, r"pattern 'decoder' matched no encoder block; block names are"),
    ],
)
def test_model_dependent_errors_at_setup(kwargs, layers, match):
    with pytest.raises(ValueError, match=match):
        make_trainer([StructuredPruning(**kwargs)], max_steps=1).fit(UserModule(layers=layers), loader())


def test_taylor_with_an_event_at_step_zero_is_rejected():
    pruning = StructuredPruning(criterion="taylor", start=0)
    with pytest.raises(ValueError, match="first event is at step 0: start the schedule at step >= 1"):
        make_trainer([pruning], max_steps=4).fit(UserModule(), loader())


def test_layers_targets_restrict_which_layers_may_go():
    seed_everything(0)
    pruning = StructuredPruning(
        final_sparsity=0.5, unit="layers", schedule="one_shot", start=1, targets=r"layer\.[12]$"
    )
    make_trainer([pruning], max_steps=3).fit(UserModule(layers=3), loader())
    assert bool(pruning.masks["model.bert.encoder.layer.0"]) and len(pruning.kept_layers) == 2


DDP_SCRIPT = """
import sys, torch
from pytorch_lightning import Trainer, seed_everything
from torch.utils.data import DataLoader
from transformers import BertForSequenceClassification
from lightning_compress.callbacks import StructuredPruning
from tests.tiny import UserModule, loader, tiny_bert_config

out = sys.argv[1]
seed_everything(0)
module = UserModule()
torch.manual_seed(0)
module.model = BertForSequenceClassification(tiny_bert_config(num_hidden_layers=3))
callbacks = [
    StructuredPruning(final_sparsity=0.5, unit="ffn_neurons", criterion="taylor", start=0.1, end=0.7, every_n_steps=2),
    StructuredPruning(final_sparsity=0.4, unit="layers", criterion="random", schedule="one_shot", start=3, seed=5),
]
trainer = Trainer(strategy="ddp", accelerator="cpu", devices=2, max_epochs=2, callbacks=callbacks, logger=False,
                  enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
trainer.fit(module, loader(64, batch_size=4))
torch.save({"masks": [cb.masks for cb in callbacks], "history": [cb.history for cb in callbacks],
            "weights": module.state_dict()}, f"{out}/rank{trainer.global_rank}.pt")
"""


def test_ddp_two_processes_remove_the_same_units(tmp_path):
    rank0, rank1 = run_ddp_script(DDP_SCRIPT, tmp_path)
    assert rank0["history"] == rank1["history"]
    assert rank0["history"][0][-1][1] == 0.5 and rank0["history"][1] == [(3, 1 / 3)]
    for masks0, masks1 in zip(rank0["masks"], rank1["masks"]):
        assert masks0.keys() == masks1.keys() and masks0
        for name in masks0:
            assert torch.equal(masks0[name], masks1[name]), name
    for name in rank0["weights"]:
        assert torch.equal(rank0["weights"][name], rank1["weights"][name]), name
