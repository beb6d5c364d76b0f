"""GradualMagnitudePruning with every criterion, N:M patterns, the L0/L1 loss terms and their resume."""

import warnings

import pytest
import torch
from jsonargparse import ArgumentParser
from pytorch_lightning import Callback, seed_everything
from torch import nn

from lightning_compress.callbacks import GradualMagnitudePruning
from lightning_compress.pruning import is_nm_sparse, sparsity_report
from lightning_compress.pruning.criteria import CRITERIA
from lightning_compress.pruning.l0 import hard_concrete_eval, hard_concrete_sample, init_log_alpha, keep_probability
from lightning_compress.pruning.masks import layerwise_masks
from tests.callbacks.test_pruning import PrunedStayZero
from tests.tiny import UserModule, assert_resume_exact, loader, make_trainer


def fit(callbacks, module=None, n=32, **trainer_kwargs):
    seed_everything(0)
    module = module or UserModule(dropout=0.0)
    trainer_kwargs.setdefault("max_epochs", 2)
    make_trainer(callbacks, **trainer_kwargs).fit(module, loader(n))
    return module


@pytest.mark.parametrize("criterion", sorted(CRITERIA))
def test_every_criterion_reaches_the_final_sparsity_with_pruned_weights_zero(criterion):
    pruning = GradualMagnitudePruning(final_sparsity=0.8, start=1, end=6, every_n_steps=2, criterion=criterion)
    probe = PrunedStayZero(pruning)
    module = fit([pruning, probe])  # 4 steps per epoch, events at steps 1, 3, 5
    report = sparsity_report(module, pruning.target_names)
    assert report["prunable"] == pytest.approx(0.8, abs=1e-3)
    assert probe.checked > 0
    if pruning.scope == "layer":
        numel = {name: p.numel() for name, p in module.named_parameters()}
        assert all(abs(value - 0.8) * numel[name] <= 0.5 for name, value in report["layers"].items())
    else:
        assert pruning.scope == CRITERIA[criterion].scope == "global"


class Probe(Callback):
    """Placed before the pruning callback: records grads of step 0 and the weights just before each event."""

    def __init__(self, pruning):
        self.pruning, self.grads, self.weights, self.gate_grads = pruning, {}, {}, {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        params = dict(pl_module.named_parameters())
        self.weights[trainer.global_step] = {n: params[n].detach().clone() for n in self.pruning.target_names}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if trainer.global_step == 0:
            self.grads = {n: p.grad.clone() for n, p in pl_module.named_parameters() if p.grad is not None}
            self.gate_grads = {n: a.grad.clone() for n, a in self.pruning.log_alphas.items()}


def first_batch():
    return next(iter(loader(32)))


@pytest.mark.parametrize("criterion", ["gradient", "taylor"])
def test_gradient_criteria_score_the_autograd_gradient_since_the_last_event(criterion):
    """docs/methods.md#gradient-and-taylor-scores-match-autograd: one step before a one-shot event, the score is |g| or
    |g * w| with g from autograd on that batch."""
    pruning = GradualMagnitudePruning(final_sparsity=0.5, schedule="one_shot", start=1, criterion=criterion)
    probe = Probe(pruning)
    fit([probe, pruning], max_epochs=None, max_steps=2)

    reference = UserModule(dropout=0.0)
    batch = first_batch()
    reference.model(input_ids=batch["input_ids"], labels=batch["labels"]).loss.backward()
    grads = {n: p.grad for n, p in reference.named_parameters()}
    weights = probe.weights[1]  # the weights at the event
    for name in pruning.target_names:
        torch.testing.assert_close(probe.grads[name], grads[name], rtol=1e-6, atol=1e-7)
    scores = {n: grads[n].abs() * (weights[n].abs() if criterion == "taylor" else 1) for n in pruning.target_names}
    expected = layerwise_masks(scores, 0.5)
    for name in pruning.target_names:
        assert torch.equal(pruning.masks[name], expected[name]), name
    assert pruning.grad_sums == {}  # buffers freed after the last event


def test_l1_term_is_in_the_single_backward():
    pruning = GradualMagnitudePruning(final_sparsity=0.5, schedule="one_shot", start=2, criterion="l1", penalty=0.01)
    probe = Probe(pruning)
    fit([probe, pruning], max_epochs=None, max_steps=3)

    reference = UserModule(dropout=0.0)
    params = dict(reference.named_parameters())
    batch = first_batch()
    task = reference.model(input_ids=batch["input_ids"], labels=batch["labels"]).loss
    (task + 0.01 * sum(params[n].abs().sum() for n in pruning.target_names)).backward()
    for name, param in params.items():
        torch.testing.assert_close(probe.grads[name], param.grad, rtol=1e-5, atol=1e-7, msg=name)


def test_l0_gates_enter_the_forward_and_the_expected_l0_term_the_backward():
    pruning = GradualMagnitudePruning(
        final_sparsity=0.5, schedule="one_shot", start=2, criterion="l0", penalty=0.1, seed=3
    )
    probe = Probe(pruning)
    fit([probe, pruning], max_epochs=None, max_steps=3)

    # by hand: log a from the seed, u drawn in forward order (= target order), z = hard concrete, loss on W * z
    reference = UserModule(dropout=0.0)
    params = dict(reference.named_parameters())
    init, noise = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    log_alphas = {n: init_log_alpha(params[n].shape, init).requires_grad_() for n in pruning.target_names}
    gated = {
        n.removeprefix("model."): params[n] * hard_concrete_sample(a, torch.rand(a.shape, generator=noise))
        for n, a in log_alphas.items()
    }
    batch = first_batch()
    task = torch.func.functional_call(
        reference.model, gated, kwargs={"input_ids": batch["input_ids"], "labels": batch["labels"]}
    ).loss
    (task + 0.1 * sum(keep_probability(a).sum() for a in log_alphas.values())).backward()
    for name, param in params.items():
        torch.testing.assert_close(probe.grads[name], param.grad, rtol=1e-5, atol=1e-7, msg=name)
    for name, log_alpha in log_alphas.items():
        torch.testing.assert_close(probe.gate_grads[name], log_alpha.grad, rtol=1e-5, atol=1e-7, msg=name)


def test_l0_masks_are_made_hard_and_gates_folded_at_the_end():
    class BeforeFold(Callback):
        def on_train_end(self, trainer, pl_module):
            params = dict(pl_module.named_parameters())
            self.weights = {n: params[n].detach().clone() for n in pruning.target_names}
            self.gates = {n: hard_concrete_eval(a.detach()) for n, a in pruning.log_alphas.items()}

    pruning = GradualMagnitudePruning(final_sparsity=0.6, start=1, end=6, every_n_steps=2, criterion="l0", gate_lr=0.5)
    before = BeforeFold()
    module = fit([before, pruning])
    params, modules = dict(module.named_parameters()), dict(module.named_modules())
    for name in pruning.target_names:
        gate = before.gates[name]
        assert torch.equal(pruning.masks[name], pruning.masks[name] & (gate > 0))
        torch.testing.assert_close(params[name], before.weights[name] * gate * pruning.masks[name])
        linear = modules[name.removesuffix(".weight")]
        assert not linear._forward_pre_hooks and not linear._forward_hooks
    assert pruning.sparsity >= 0.6 - 1e-3


def test_nm_pattern_keeps_n_of_every_m_at_every_step_and_reaches_it_at_the_end():
    class GroupCheck(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            for mask in pruning.masks.values():
                assert bool((mask.reshape(-1, 4).sum(1) >= 2).all())

    pruning = GradualMagnitudePruning(
        final_sparsity=0.5, start=1, end=6, every_n_steps=2, pattern="n:m", n=2, m=4, criterion="lamp"
    )
    module = fit([pruning, GroupCheck()])
    params = dict(module.named_parameters())
    assert pruning.sparsity == 0.5
    for name in pruning.target_names:
        assert is_nm_sparse(params[name], 2, 4) and is_nm_sparse(pruning.masks[name], 2, 4), name


class RecordingCriterion:
    """Prunes the largest magnitudes first and records what it was given."""

    def __init__(self):
        self.calls = []

    def score(self, name, weight, grad_stats):
        self.calls.append((name, grad_stats.steps, grad_stats.grad_sum.shape))
        return -weight.abs()


def test_custom_criterion_object_scores_with_accumulated_gradient_stats():
    criterion = RecordingCriterion()
    pruning = GradualMagnitudePruning(final_sparsity=0.5, schedule="one_shot", start=3, criterion=criterion)
    probe = Probe(pruning)
    fit([probe, pruning], max_epochs=None, max_steps=4)
    assert [call[0] for call in criterion.calls] == pruning.target_names
    assert {call[1] for call in criterion.calls} == {3}
    expected = layerwise_masks({n: -w.abs() for n, w in probe.weights[3].items()}, 0.5)
    assert all(torch.equal(pruning.masks[n], expected[n]) for n in pruning.target_names)
    assert pruning.checkpoint_settings()["criterion"] == "RecordingCriterion"


def test_criteria_are_configurable_by_name_or_class_path():
    parser = ArgumentParser()
    parser.add_class_arguments(GradualMagnitudePruning, "pruning")
    named = parser.instantiate(parser.parse_args(["--pruning.criterion=lamp"])).pruning
    assert named.criterion == "lamp" and named.scope == "global"
    custom = parser.parse_args([f"--pruning.criterion.class_path={__name__}.RecordingCriterion"])
    assert isinstance(parser.instantiate(custom).pruning.criterion, RecordingCriterion)


@pytest.mark.parametrize("criterion", ["taylor", "l0"])
def test_resume_from_a_mid_epoch_checkpoint_with_gradient_statistics_or_gates_is_exact(tmp_path, criterion):
    """Events at steps 5, 8, 11, ...: the step-7 checkpoint (inside epoch 1) holds gradients summed since step 5 / the
    gates."""
    runs = assert_resume_exact(
        lambda: [GradualMagnitudePruning(final_sparsity=0.8, start=0.1, end=0.8, every_n_steps=3, criterion=criterion)],
        stop_at_step=7,
        tmp_path=tmp_path,
        max_epochs=3,
    )
    full = runs.full_callbacks[0]
    state = torch.load(runs.checkpoint, weights_only=False)["callbacks"][full.state_key]
    assert (state["grad_steps"] > 0) if criterion == "taylor" else ("gate_generator" in state)
    assert [event.step for event in full.events][:3] == [5, 8, 11]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            {"criterion": "lamp", "scope": "layer"},
            ValueError,
            r"criterion='lamp', scope='layer'\)` is invalid: 'lamp' is a global criterion",
        ),
        ({"criterion": "global_random", "scope": "layer"}, ValueError, "'global_random' is a global criterion"),
        (
            {"criterion": "taylr"},
            ValueError,
            r"criterion='taylr'\)` is invalid: expected one of \['global_magnitude', 'global_random', 'gradient', 'l0'",
        ),
        (
            {"criterion": 3},
            TypeError,
            r"expected a criterion name or an object with a `score\(name, weight, grad_stats\)` method, got int",
        ),
        (
            {"penalty": 1e-3},
            ValueError,
            r"criterion='magnitude', penalty=0.001\)` is invalid: `penalty` is the strength",
        ),
        ({"criterion": "l1", "penalty": -1.0}, ValueError, r"penalty=-1.0\)` is invalid: expected a float >= 0"),
        ({"pattern": "2:4"}, ValueError, r"pattern='2:4'\)` is invalid: expected one of \['unstructured', 'n:m'\]"),
        ({"pattern": "n:m"}, ValueError, r"final_sparsity=0.9\)` is invalid: .* final_sparsity must be 1 - n/m = 0.5"),
        ({"n": 4, "m": 4}, ValueError, r"n=4, m=4\)` is invalid: expected 1 <= n < m"),
        ({"m": 4.0}, TypeError, r"m=4.0\)` is invalid: expected an int"),
        ({"gate_lr": 0}, ValueError, r"gate_lr=0\)` is invalid"),
    ],
)
def test_bad_criterion_and_pattern_arguments_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        GradualMagnitudePruning(**kwargs)


def test_nm_with_an_input_dimension_not_divisible_by_m_fails_at_setup():
    pruning = GradualMagnitudePruning(pattern="n:m", n=1, m=3, final_sparsity=2 / 3)
    with pytest.raises(ValueError, match=r"input dimension 32 is not divisible by m=3"):
        fit([pruning], max_epochs=1)


class NoEncoder(UserModule):
    """A model without transformer encoder: nothing for the default targets."""

    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(nn.Embedding(64, 8), nn.Linear(8, 2))


def test_l0_without_linear_target_weights_fails_at_setup():
    with pytest.raises(
        ValueError, match=r"default targets \(every nn.Linear weight inside `encoder.layer.N`\) matched no parameter"
    ):
        fit([GradualMagnitudePruning(criterion="l0")], module=NoEncoder(), max_epochs=1)
    pruning = GradualMagnitudePruning(criterion="l0", targets=["word_embeddings"])
    with pytest.raises(
        ValueError,
        match=r"gates the weights of nn.Linear modules, but the target `model.bert.embeddings.word_embeddings.weight`",
    ):
        fit([pruning], max_epochs=1)


def test_gradient_criterion_needs_a_step_before_the_first_event():
    pruning = GradualMagnitudePruning(schedule="one_shot", start=0, criterion="gradient")
    with pytest.raises(ValueError, match="the first event is at step 0: start the schedule at step >= 1"):
        fit([pruning], max_epochs=1)


def test_l0_warns_when_the_gates_cannot_outgrow_their_initial_noise_before_the_first_event():
    # first event at step 2: the default gate_lr 1e-4 moves log α by <= 2e-4 < 3 × 0.01: the ranking is the init noise
    with pytest.warns(UserWarning, match=r"0\.0001 × 2 = 0\.0002 before the first pruning event"):
        fit([GradualMagnitudePruning(final_sparsity=0.5, schedule="one_shot", start=2, criterion="l0")], max_steps=3)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*initial noise.*")
        fit(
            [GradualMagnitudePruning(final_sparsity=0.5, schedule="one_shot", start=2, criterion="l0", gate_lr=0.1)],
            max_steps=3,
        )
