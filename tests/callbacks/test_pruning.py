import pytest
import torch
from pytorch_lightning import Callback, seed_everything

from lightning_compress.callbacks import GradualMagnitudePruning
from lightning_compress.pruning import sparsity_report
from tests.tiny import UserModule, assert_resume_exact, loader, make_trainer, run_ddp_script


class PrunedStayZero(Callback):
    """Checks after every optimizer step that every masked weight and its grad are exactly zero."""

    def __init__(self, pruning):
        self.pruning, self.checked = pruning, 0

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        params = dict(pl_module.named_parameters())
        for name, mask in self.pruning.masks.items():
            assert not params[name].grad[~mask].any()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        params = dict(pl_module.named_parameters())
        for name, mask in self.pruning.masks.items():
            assert not params[name][~mask].any(), name
            self.checked += 1


def test_reaches_final_sparsity_and_keeps_pruned_weights_zero_under_adamw():
    seed_everything(0)
    module = UserModule(weight_decay=0.1)
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    pruning = GradualMagnitudePruning(final_sparsity=0.9, start=0.1, end=0.6, every_n_steps=2)
    probe = PrunedStayZero(pruning)
    make_trainer([pruning, probe]).fit(module, loader(), loader(16))

    report = sparsity_report(module, pruning.target_names)
    assert report["prunable"] == pytest.approx(0.9, abs=1e-3)
    assert pruning.sparsity == pytest.approx(0.9, abs=1e-3)
    assert probe.checked > 0
    for name, value in report["layers"].items():  # layer-wise: every matrix at 0.9 up to one element
        assert abs(value - 0.9) * before[name].numel() <= 0.5
    # embeddings, LayerNorm, biases, pooler and head are trained but never masked
    params = dict(module.named_parameters())
    for name in set(params) - set(pruning.target_names):
        assert int((params[name] == 0).sum()) <= int((before[name] == 0).sum()), name


def test_global_scope_reaches_pooled_sparsity_with_uneven_layers():
    seed_everything(0)
    module = UserModule()
    pruning = GradualMagnitudePruning(final_sparsity=0.8, scope="global", schedule="one_shot", start=4)
    make_trainer([pruning], max_epochs=1).fit(module, loader())
    report = sparsity_report(module, pruning.target_names)
    assert report["prunable"] == pytest.approx(0.8, abs=1e-4)
    assert len({round(v, 3) for v in report["layers"].values()}) > 1


def test_schedule_counts_optimizer_steps_under_gradient_accumulation():
    seed_everything(0)
    module = UserModule()
    pruning = GradualMagnitudePruning(
        final_sparsity=0.5, schedule="iterative", step_fraction=0.5, every_n_steps=2, start=0, end=1.0
    )
    make_trainer([pruning], max_epochs=2, accumulate_grad_batches=2).fit(module, loader(64, batch_size=4))
    # 16 batches / epoch, 2 epochs, 2 batches per step: 16 optimizer steps; events at steps 2 (0.5 reached)
    assert [e.step for e in pruning.events] == [2]
    assert pruning.sparsity == pytest.approx(0.5, abs=1e-3)


def test_epoch_frequency_prunes_at_epoch_boundaries_after_validation():
    seed_everything(0)
    module = UserModule()
    pruning = GradualMagnitudePruning(
        final_sparsity=0.5, schedule="iterative", step_fraction=0.3, every_n_epochs=1, start=0, end=1.0
    )
    make_trainer([pruning], max_epochs=3).fit(module, loader(), loader(16))
    assert [e.step for e in pruning.events] == [8, 16]  # 8 steps per epoch; events at the start of epochs 2 and 3
    assert pruning.events[0].sparsity == pytest.approx(0.3)
    assert "val/loss" in pruning.metrics_before_pruning


@pytest.mark.parametrize("stop_at_step", [4, 13, 20])
def test_resume_from_a_mid_epoch_checkpoint_is_exact(tmp_path, stop_at_step):
    """32 steps (8 per epoch), events at 6, 9, ..., 24: each checkpoint is inside an epoch, before or between events."""
    runs = assert_resume_exact(
        lambda: [GradualMagnitudePruning(final_sparsity=0.8, start=0.1, end=0.8, every_n_steps=3)],
        stop_at_step=stop_at_step,
        tmp_path=tmp_path,
        max_epochs=4,
    )
    full, resumed = runs.full_callbacks[0], runs.resumed_callbacks[0]
    assert [event.step for event in full.events] == [6, 9, 12, 15, 18, 21, 24]
    assert resumed.last_event_step == full.last_event_step == 24


def test_warns_once_when_the_users_model_trains_in_eval_mode():
    seed_everything(0)
    module = UserModule(train_mode=False)
    with pytest.warns(UserWarning, match="dropout module\\(s\\) of the model being trained are in eval mode"):
        make_trainer([GradualMagnitudePruning(final_sparsity=0.5)], max_epochs=1).fit(module, loader())


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"final_sparsity": 1.0}, ValueError, r"final_sparsity=1.0\)` is invalid: expected a float in \[0, 1\)"),
        ({"final_sparsity": -0.1}, ValueError, r"final_sparsity=-0.1\)` is invalid"),
        ({"final_sparsity": "0.5"}, TypeError, r"final_sparsity='0.5'\)` is invalid"),
        ({"initial_sparsity": 0.6, "final_sparsity": 0.5}, ValueError, "initial_sparsity must not exceed"),
        ({"criterion": "magnitud"}, ValueError, r"criterion='magnitud'\)` is invalid: expected one of"),
        ({"schedule": "linear"}, ValueError, r"schedule='linear'\)` is invalid"),
        ({"scope": "row"}, ValueError, r"scope='row'\)` is invalid"),
        ({"start": 1.5}, ValueError, "must lie in \\[0, 1\\]; use an int for an absolute optimizer step"),
        ({"start": 0.8, "end": 0.2}, ValueError, "end must not come before start"),
        ({"every_n_steps": 0}, ValueError, r"every_n_steps=0\)` is invalid: expected an int >= 1 or None"),
        ({"step_fraction": 1.0}, ValueError, r"step_fraction=1.0\)` is invalid"),
        ({"targets": ["("]}, ValueError, "not a valid regular expression"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        GradualMagnitudePruning(**kwargs)


def test_target_pattern_matching_nothing_fails_at_setup():
    pruning = GradualMagnitudePruning(targets=["decoder\\.weight"])
    with pytest.raises(
        ValueError, match=r"`targets` pattern 'decoder.*' matched no parameter; first parameter names are"
    ):
        make_trainer([pruning], max_epochs=1).fit(UserModule(), loader())


def test_unbounded_run_is_rejected():
    pruning = GradualMagnitudePruning()
    trainer = make_trainer([pruning], max_epochs=-1, max_steps=-1)
    with pytest.raises(ValueError, match="needs a bounded run"):
        trainer.fit(UserModule(), loader())


def test_int_start_after_the_last_optimizer_step_names_start_last_step_and_max_steps():
    seed_everything(0)
    with pytest.raises(
        ValueError,
        match=r"`GradualMagnitudePruning\(start=5\)` is invalid for this run: expected a step before its last "
        r"optimizer step 4 \(the run has trainer\.estimated_stepping_batches=5 optimizer steps, from max_steps=5, "
        r"max_epochs=3\), so the schedule would never prune\. HINT: lower `start`.*raise `max_steps`/`max_epochs`",
    ):
        make_trainer([GradualMagnitudePruning(start=5, end=5)], max_steps=5).fit(UserModule(), loader())
    match = r"start=8\)` is invalid for this run: .* last optimizer step 7 .*max_steps=-1, max_epochs=1\)"
    with pytest.raises(ValueError, match=match):
        make_trainer([GradualMagnitudePruning(start=8, end=9)], max_epochs=1).fit(UserModule(), loader())
    # the last step itself is allowed: the one event prunes to final_sparsity there
    pruning = GradualMagnitudePruning(final_sparsity=0.5, start=4, end=4)
    make_trainer([pruning], max_steps=5).fit(UserModule(), loader())
    assert [event.step for event in pruning.events] == [4] and pruning.sparsity == pytest.approx(0.5, abs=0.01)


DDP_SCRIPT = """
import sys, torch
from pytorch_lightning import Trainer, seed_everything
from lightning_compress.callbacks import GradualMagnitudePruning
from tests.tiny import UserModule, loader

out = sys.argv[1]
seed_everything(0)
module = UserModule()
# three stacked callbacks on disjoint targets: global magnitude, global random scores, L0 gates (own optimizer)
schedule = dict(final_sparsity=0.7, start=0.0, end=0.7, every_n_steps=2)
callbacks = [
    GradualMagnitudePruning(**schedule, scope="global", targets=r"layer\\.0\\..*(query|key|value|dense)\\.weight$"),
    GradualMagnitudePruning(
        **schedule, criterion="global_random", targets=r"layer\\.1\\.attention\\..*(query|key|value|dense)\\.weight$"
    ),
    GradualMagnitudePruning(**schedule, criterion="l0", targets=r"layer\\.1\\.(intermediate|output)\\.dense\\.weight$"),
]
trainer = Trainer(strategy="ddp", accelerator="cpu", devices=2, max_epochs=2, callbacks=callbacks, logger=False,
                  enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
trainer.fit(module, loader(64, batch_size=4))
torch.save({"masks": [cb.masks for cb in callbacks], "gates": callbacks[2].log_alphas, "weights": module.state_dict()},
           f"{out}/rank{trainer.global_rank}.pt")
"""


def test_ddp_two_processes_have_identical_masks_and_weights(tmp_path):
    """docs/methods.md#deterministic-masks-across-ranks: magnitude, random and L0 masks, the gates and all weights
    agree across ranks."""
    rank0, rank1 = run_ddp_script(DDP_SCRIPT, tmp_path)
    for masks0, masks1 in zip(rank0["masks"], rank1["masks"]):
        assert masks0.keys() == masks1.keys() and masks0
        for name in masks0:
            assert torch.equal(masks0[name], masks1[name]), name
        sparsity = 1 - sum(int(m.sum()) for m in masks0.values()) / sum(m.numel() for m in masks0.values())
        assert sparsity == pytest.approx(0.7, abs=1e-3)
    for name in rank0["gates"]:
        assert torch.equal(rank0["gates"][name], rank1["gates"][name]), name
    for name in rank0["weights"]:
        assert torch.equal(rank0["weights"][name], rank1["weights"][name]), name


def test_logs_prunable_and_whole_model_sparsity_at_each_event():
    seed_everything(0)
    module = UserModule()
    pruning = GradualMagnitudePruning(final_sparsity=0.6, schedule="one_shot", start=2)
    trainer = make_trainer([pruning], max_epochs=1)
    trainer.fit(module, loader())
    logged = trainer.logged_metrics
    assert float(logged["compress/pruning/sparsity"]) == pytest.approx(0.6, abs=1e-3)
    total = sum(p.numel() for p in module.parameters())
    zeros = sum(int((p == 0).sum()) for p in module.parameters())
    assert float(logged["compress/pruning/model_sparsity"]) == pytest.approx(zeros / total, abs=1e-3)
    assert 0 < float(logged["compress/pruning/model_sparsity"]) < 0.6
