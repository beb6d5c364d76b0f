"""Hard-concrete gates (docs/methods.md#hard-concrete-l0-gates) against hand-computed values; the forward hooks that
apply them."""

import math

import pytest
import torch
from torch import nn

from lightning_compress.pruning.l0 import (
    L0Gates,
    expected_l0,
    gate_weight_,
    hard_concrete_eval,
    hard_concrete_sample,
    init_log_alpha,
    keep_probability,
)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hard_concrete_values_by_hand(dtype):
    t = lambda values: torch.tensor(values, dtype=dtype)  # noqa: E731
    # s = sigmoid((log u - log(1-u) + log a) / beta); z = clamp(s * 1.2 - 0.1, 0, 1)
    # log a = 0, u = 1/2: s = 1/2 -> 0.5;  log a = log 3, u = 1/4: logit(u) = -log 3 -> s = 1/2 -> 0.5
    # log a = 0, u = 3/4: s = sigmoid(1.5 log 3) = sigmoid(1.647918) = 0.838609 -> 0.906331
    # log a = 10, u = 1/2: s ~ 1 -> 1.1 clamped to 1;  log a = -10: s ~ 0 -> -0.1 clamped to 0
    z = hard_concrete_sample(t([0.0, math.log(3), 0.0, 10.0, -10.0]), t([0.5, 0.25, 0.75, 0.5, 0.5]))
    torch.testing.assert_close(z, t([0.5, 0.5, 0.906331, 1.0, 0.0]), atol=1e-6, rtol=0)
    # evaluation gate: clamp(sigmoid(log a) * 1.2 - 0.1): sigmoid(-5) = 0.006693 -> 0; 0.5; sigmoid(5) -> 1.092 -> 1
    # sigmoid(log 9) = 0.9 -> 0.98
    torch.testing.assert_close(hard_concrete_eval(t([-5.0, 0.0, 5.0, math.log(9)])), t([0.0, 0.5, 1.0, 0.98]))
    # keep probability sigmoid(log a - (2/3) log(0.1/1.1)) = sigmoid(log a + 1.598597)
    torch.testing.assert_close(keep_probability(t([0.0, -1.598597])), t([0.831822, 0.5]), atol=1e-6, rtol=0)


def test_hard_concrete_sample_is_finite_at_u_0_and_1_and_differentiable():
    log_alpha = torch.zeros(2, requires_grad=True)
    z = hard_concrete_sample(log_alpha, torch.tensor([0.0, 1.0]))
    assert torch.equal(z, torch.tensor([0.0, 1.0]))
    log_alpha = torch.zeros(1, requires_grad=True)
    hard_concrete_sample(log_alpha, torch.tensor([0.5])).sum().backward()
    # dz/dlog a = 1.2 * s(1-s) / beta = 1.2 * 0.25 * 1.5 = 0.45
    torch.testing.assert_close(log_alpha.grad, torch.tensor([0.45]))


def test_expected_l0_counts_only_unpruned_gates():
    log_alphas = {"a": torch.zeros(2, 2), "b": torch.full((3,), -1.598597)}
    masks = {"a": torch.tensor([[True, False], [True, True]])}
    # a: 3 kept x 0.831822; b: unmasked, 3 x 0.5
    torch.testing.assert_close(expected_l0(log_alphas, masks), torch.tensor(3 * 0.831822 + 1.5), atol=1e-5, rtol=0)
    torch.testing.assert_close(expected_l0(log_alphas), torch.tensor(4 * 0.831822 + 1.5), atol=1e-5, rtol=0)


def test_init_log_alpha_starts_at_drop_rate_0_1_with_small_noise():
    log_alpha = init_log_alpha((200, 300), torch.Generator().manual_seed(0))
    assert abs(float(log_alpha.mean()) - math.log(9)) < 1e-3
    assert abs(float(log_alpha.std()) - 0.01) < 1e-3
    assert torch.equal(log_alpha, init_log_alpha((200, 300), torch.Generator().manual_seed(0)))


def test_gate_weight_gates_the_forward_without_renaming_the_parameter():
    torch.manual_seed(0)
    linear = nn.Linear(4, 3)
    x = torch.randn(5, 4)
    gate = torch.tensor([[1.0, 0.0, 0.5, 1.0]] * 3, requires_grad=True)
    handles = gate_weight_(linear, lambda module: gate)
    assert [name for name, _ in linear.named_parameters()] == ["weight", "bias"]
    out = linear(x)
    torch.testing.assert_close(out, nn.functional.linear(x, linear.weight * gate, linear.bias))
    out.sum().backward()
    assert linear.weight.grad is not None and gate.grad is not None
    assert not linear.weight.grad[:, 1].any()  # gated-off inputs get no gradient
    assert isinstance(linear.weight, nn.Parameter)  # outside the forward the attribute is the parameter again
    with pytest.raises(RuntimeError):
        linear(torch.randn(5, 7))
    assert "weight" not in linear.__dict__  # cleaned up even when the forward raises
    for handle in handles:
        handle.remove()
    torch.testing.assert_close(linear(x), nn.functional.linear(x, linear.weight, linear.bias))


def test_l0_gates_sample_in_train_mode_use_the_eval_gate_in_eval_mode_and_fold():
    torch.manual_seed(0)
    linear = nn.Linear(3, 2)
    gates = L0Gates({"fc.weight": (2, 3)}, seed=0, lr=0.1)
    assert torch.equal(gates.log_alphas["fc.weight"], init_log_alpha((2, 3), torch.Generator().manual_seed(0)))
    gates.start_({"fc.weight": linear})
    assert gates.attached and [name for name, _ in linear.named_parameters()] == ["weight", "bias"]
    x = torch.randn(4, 3)
    eval_gate = hard_concrete_eval(gates.log_alphas["fc.weight"].detach())
    torch.testing.assert_close(linear.eval()(x), nn.functional.linear(x, linear.weight * eval_gate, linear.bias))
    linear.train()(x).sum().backward()  # a sampled gate: log α gets a gradient, an Adam step moves it
    before = gates.log_alphas["fc.weight"].detach().clone()
    gates.step_()
    assert not torch.equal(before, gates.log_alphas["fc.weight"]) and gates.log_alphas["fc.weight"].grad is None
    torch.testing.assert_close(gates.expected_l0(), keep_probability(gates.log_alphas["fc.weight"]).sum())
    with torch.no_grad():
        gates.log_alphas["fc.weight"][0, 0] = -10.0  # evaluation gate 0: the weight joins the mask
    weight = linear.weight.detach().clone()
    masks = gates.fold_({"fc.weight": linear.weight}, {"fc.weight": torch.ones(2, 3, dtype=torch.bool)})
    gate = hard_concrete_eval(gates.log_alphas["fc.weight"].detach())
    assert masks["fc.weight"].tolist() == (gate > 0).tolist() and not masks["fc.weight"][0, 0]
    torch.testing.assert_close(linear.weight.detach(), weight * gate)
    assert not gates.attached and gates.optimizer is None
    torch.testing.assert_close(linear(x), nn.functional.linear(x, linear.weight, linear.bias))  # plain forward again


def test_l0_gates_state_round_trip_resumes_the_same_samples():
    def started(state=None):
        linear = nn.Linear(3, 2)
        gates = L0Gates({"fc.weight": (2, 3)}, seed=1, lr=0.1)
        gates.start_({"fc.weight": linear}, state)
        return gates, linear

    gates, linear = started()
    linear(torch.randn(2, 3)).sum().backward()
    gates.step_(reduce=lambda flat: flat / 2, loss_scale=2.0)  # a fake 2-rank mean and an AMP scale
    state = gates.state_dict()
    assert set(state) == {"log_alphas", "gate_optimizer", "gate_generator"}
    resumed, _ = started(state)
    assert torch.equal(resumed.log_alphas["fc.weight"], gates.log_alphas["fc.weight"])
    draw = [torch.rand(3, generator=g.generator) for g in (gates, resumed)]
    assert torch.equal(*draw)
