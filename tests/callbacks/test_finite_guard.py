"""A non-finite step stops the fit with a FloatingPointError naming the step and the parameter, whatever callback of
the project runs on a user's own module (tests/models/test_finite_guard.py covers the project's modules)."""

import pytest
import torch
from pytorch_lightning import Callback, seed_everything

from lightning_compress.callbacks import (
    AlignReg,
    GradientDropout,
    GradualMagnitudePruning,
    GradualUnfreezing,
    SelfDistilledPruning,
    TernaryWeightSplitting,
)
from lightning_compress.callbacks.finite_guard import GuardedCallback
from tests.tiny import UserModule, loader, make_trainer

NAN_STEP = 3


class NanLossModule(UserModule):
    """The user's module, whose training loss is NaN at one global step (a bad batch, an fp16 overflow)."""

    def __init__(self, nan_step: int = NAN_STEP, **kwargs):
        super().__init__(**kwargs)
        self.nan_step = nan_step

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        return loss * float("nan") if self.global_step == self.nan_step else loss


class InfWeight(Callback):
    """Makes one weight of the model infinite right after the optimizer step of global step ``NAN_STEP``.

    Placed before the project's callbacks, so their end-of-batch hooks (and the check) see it at once.
    """

    name = "model.bert.encoder.layer.1.output.dense.weight"

    @torch.no_grad()
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == NAN_STEP + 1:
            dict(pl_module.named_parameters())[self.name].fill_(float("inf"))


CALLBACKS = {
    "pruning": lambda: [GradualMagnitudePruning(final_sparsity=0.5, schedule="one_shot", start=1)],
    "align_reg": lambda: [AlignReg(kind="frobenius", lam=1e-3)],
    "self_distillation": lambda: [SelfDistilledPruning(feature_loss="cc", teacher_cache=False)],
    "weight_splitting": lambda: [TernaryWeightSplitting(split_at=None, distill="none", act_bits=8, width=1.0)],
    "gradient_dropout": lambda: [GradientDropout(p=0.2, model_dropout=None)],
    "gradual_unfreezing": lambda: [GradualUnfreezing(layers_per_step=1)],
}


def fit(callbacks, module, log_every_n_steps: int, max_epochs: int = 1):
    seed_everything(0)
    trainer = make_trainer(callbacks, max_epochs=max_epochs, limit_train_batches=8, log_every_n_steps=log_every_n_steps)
    trainer.fit(module, loader(64))
    return trainer


@pytest.mark.parametrize("name", list(CALLBACKS))
def test_nan_loss_on_a_logging_step_stops_the_fit(name):
    with pytest.raises(FloatingPointError, match=rf"The training loss is nan at global step {NAN_STEP}\b"):
        fit(CALLBACKS[name](), NanLossModule(), log_every_n_steps=2)


@pytest.mark.parametrize("name", list(CALLBACKS))
def test_nan_loss_between_logging_steps_stops_the_fit_at_its_end(name):
    """Logging every 50 steps in an 8-step run: the check at the end of training still finds step 3."""
    trainer = make_trainer(CALLBACKS[name](), max_epochs=1, limit_train_batches=8, log_every_n_steps=50)
    seed_everything(0)
    with pytest.raises(FloatingPointError, match=rf"The training loss is nan at global step {NAN_STEP}\b"):
        trainer.fit(NanLossModule(), loader(64))
    assert trainer.global_step == 8  # no logging step in the run: found by the end-of-training check


@pytest.mark.parametrize("name", ["pruning", "align_reg", "gradient_dropout"])
def test_infinite_weight_stops_the_fit_naming_it(name):
    with pytest.raises(
        FloatingPointError, match=rf"Parameter `{InfWeight.name}` is not finite at global step {NAN_STEP + 1} \("
    ):
        fit([InfWeight(), *CALLBACKS[name]()], UserModule(), log_every_n_steps=1)


def test_pruned_weights_stay_exactly_zero_after_a_nan_step():
    """NaN · mask stays NaN; the masks select instead, so the pruned weights are still 0 when the run stops."""
    pruning = GradualMagnitudePruning(final_sparsity=0.5, schedule="one_shot", start=1)
    module = NanLossModule()
    with pytest.raises(FloatingPointError, match="global step 3"):
        fit([pruning], module, log_every_n_steps=4)
    params = dict(module.named_parameters())
    for name, mask in pruning.masks.items():
        assert torch.isnan(params[name][mask]).all()  # the NaN step reached every kept weight
        assert torch.equal(params[name][~mask], torch.zeros_like(params[name][~mask]))


def test_finite_run_is_untouched_and_only_one_guard_checks():
    """Stacked callbacks: the run finishes, and only the first guarded callback keeps losses."""
    callbacks = [GradualMagnitudePruning(final_sparsity=0.5, schedule="one_shot", start=1), AlignReg(lam=1e-3)]
    trainer = fit(callbacks, UserModule(), log_every_n_steps=3, max_epochs=2)
    assert trainer.global_step == 16
    assert all(isinstance(callback, GuardedCallback) for callback in callbacks)
    assert callbacks[0].non_finite_guard._trainer is None  # reset at the end of training
    assert callbacks[1].non_finite_guard._trainer is None and not callbacks[1].non_finite_guard._losses
