import copy

import pytest
import torch
from pytorch_lightning import Callback, seed_everything

from lightning_compress.callbacks import AlignReg, LossTermCallback, SelfDistilledPruning
from lightning_compress.distillation import cross_correlation_loss, kl_with_temperature
from lightning_compress.pruning.regularizers import align_reg_penalty
from tests.tiny import UserModule, loader, make_trainer


class Squares(LossTermCallback):
    """``c Σ W²`` over the classifier weight, and the task loss scaled by ``weight``."""

    def __init__(self, c=0.3, weight=0.7):
        self.c, self.weight = c, weight

    def loss_terms(self, trainer, pl_module):
        return {"squares": self.c * pl_module.model.classifier.weight.square().sum()}

    def task_loss_weight(self, trainer, pl_module):
        return self.weight


class GradProbe(Callback):
    """Keeps the weights before the forward of batch ``at`` and the gradients the optimizer receives."""

    def __init__(self, at=1):
        self.at, self.model, self.grads, self.batch = at, None, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.at:
            self.model, self.batch = copy.deepcopy(pl_module.model), batch

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if trainer.global_step == self.at // trainer.accumulate_grad_batches and self.grads is None:
            self.grads = {n: p.grad.clone() for n, p in pl_module.model.named_parameters() if p.grad is not None}


def _assert_grads(probe, loss):
    names = [n for n, _ in probe.model.named_parameters()]
    grads = torch.autograd.grad(loss, list(probe.model.parameters()), allow_unused=True)
    for name, grad in zip(names, grads):
        if grad is None:
            assert not probe.grads.get(name, torch.zeros(1)).any(), name
            continue
        torch.testing.assert_close(probe.grads[name], grad, rtol=1e-5, atol=1e-7, msg=name)


def test_custom_term_and_task_weight_give_the_gradient_of_the_hand_sum():
    seed_everything(0)
    module = UserModule(dropout=0.0)
    probe = GradProbe(at=1)
    trainer = make_trainer([Squares(), probe], max_steps=2)
    trainer.fit(module, loader())
    out = probe.model(input_ids=probe.batch["input_ids"], labels=probe.batch["labels"])
    _assert_grads(probe, 0.7 * out.loss + 0.3 * probe.model.classifier.weight.square().sum())
    assert float(trainer.logged_metrics["train/squares"]) > 0


def test_terms_are_divided_like_the_loss_under_gradient_accumulation():
    seed_everything(0)
    module = UserModule(dropout=0.0)
    probe = GradProbe(at=1)  # the second micro-batch of the first optimizer step
    make_trainer([Squares(), probe], max_steps=1, accumulate_grad_batches=2).fit(module, loader())
    # both micro-batches saw the same weights; recompute the two halves by hand
    model = probe.model
    first = next(iter(loader()))
    total = 0.0
    for batch in (first, probe.batch):
        out = model(input_ids=batch["input_ids"], labels=batch["labels"])
        total = total + (0.7 * out.loss + 0.3 * model.classifier.weight.square().sum()) / 2
    _assert_grads(probe, total)


def test_sdp_and_align_reg_gradients_equal_autograd_of_task_loss_plus_terms():
    seed_everything(0)
    module = UserModule(dropout=0.0)
    sdp = SelfDistilledPruning(feature_loss="cc", beta=0.1, teacher_cache=False)
    align = AlignReg(kind="cosine_unit", lam=0.5)
    probe = GradProbe(at=2)
    trainer = make_trainer([sdp, align, probe], max_steps=3)
    with pytest.warns(UserWarning, match="without a GradualMagnitudePruning"):
        trainer.fit(module, loader())
    model, batch = probe.model, probe.batch
    features = {}
    handle = model.bert.register_forward_hook(lambda m, a, o: features.__setitem__("s", o[0][:, 0]))
    out = model(input_ids=batch["input_ids"], labels=batch["labels"])
    handle.remove()
    with torch.no_grad():
        teacher_features = sdp.teacher.bert(input_ids=batch["input_ids"])[0][:, 0]
        teacher_logits = sdp.teacher(input_ids=batch["input_ids"]).logits
    weights = {n: p for n, p in model.named_parameters() if f"model.{n}" in align.target_names}
    references = {n.removeprefix("model."): r for n, r in align.references.items()}
    loss = (
        0.5 * out.loss
        + 0.5 * 0.9**2 * kl_with_temperature(out.logits, teacher_logits, 0.9)
        + 0.1 * cross_correlation_loss(features["s"], teacher_features)
        + align_reg_penalty(weights, references, "cosine_unit", 0.5)
    )
    _assert_grads(probe, loss)
    for name in ("train/kd", "train/cc", "train/align_reg"):
        assert float(trainer.logged_metrics[name]) > 0, name


def test_manual_optimization_is_refused():
    class Manual(UserModule):
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False

    with pytest.raises(ValueError, match="needs automatic optimization"):
        make_trainer([Squares()], max_steps=1).fit(Manual(), loader())


def test_a_non_finite_term_stops_the_run_with_its_name():
    class Overflow(Squares):
        def loss_terms(self, trainer, pl_module):
            big = super().loss_terms(trainer, pl_module)["squares"]
            return {"overflow": big * float("inf") if trainer.global_step == 2 else big}

    with pytest.raises(FloatingPointError, match=r"\{'overflow': inf\} at step 2 are not finite"):
        make_trainer([Overflow()], max_epochs=1, log_every_n_steps=1).fit(UserModule(), loader())
