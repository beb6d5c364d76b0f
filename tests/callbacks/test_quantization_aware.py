import copy

import pytest
import torch
from pytorch_lightning import Callback, seed_everything

from lightning_compress.callbacks import (
    GradualMagnitudePruning,
    QuantizationAwareTraining,
    SelfDistilledPruning,
    StructuredPruning,
)
from lightning_compress.quantization.qat import fake_quantized_formats, qat_convert_
from tests.tiny import UserModule, assert_resume_exact, loader, make_trainer, run_ddp_script

torchao_qat = pytest.importorskip("torchao.quantization.qat")
FakeQuantizedLinear = torchao_qat.FakeQuantizedLinear
IDS = torch.randint(0, 64, (6, 12), generator=torch.Generator().manual_seed(1))


def logits(module):
    module.eval()
    with torch.no_grad():
        return module.model(input_ids=IDS).logits


class Probe(Callback):
    """Records the step at which the targets became fake-quantized, and whether the optimizer still holds them."""

    def __init__(self):
        self.first_fake_step, self.optimizer_holds_targets = None, True

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        fake = {name: m for name, m in pl_module.named_modules() if isinstance(m, FakeQuantizedLinear)}
        if fake and self.first_fake_step is None:
            self.first_fake_step = trainer.global_step
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        self.optimizer_holds_targets &= all(id(m.weight) in held and m.weight.grad is not None for m in fake.values())


def test_fake_quantizes_from_start_and_trains_the_optimizers_parameters():
    seed_everything(0)
    module = UserModule()
    qat = QuantizationAwareTraining(weights="int8", start=5, convert_at_end=False)
    probe = Probe()
    query = module.model.bert.encoder.layer[0].attention.self.query
    weight_before, value_before = query.weight, query.weight.detach().clone()
    make_trainer([qat, probe], max_epochs=1).fit(module, loader())

    assert probe.first_fake_step == 5 and probe.optimizer_holds_targets
    swapped = module.model.bert.encoder.layer[0].attention.self.query
    assert isinstance(swapped, FakeQuantizedLinear) and swapped.weight is weight_before
    assert not torch.equal(swapped.weight.detach(), value_before)  # trained through the fake quantization
    # every encoder Linear (6 per block), nothing else: pooler and classifier stay fp32
    assert sorted(fake_quantized_formats(module)) == sorted(qat.module_names) and len(qat.module_names) == 12
    assert type(module.model.classifier) is torch.nn.Linear and type(module.model.bert.pooler.dense) is torch.nn.Linear
    assert set(module.state_dict()) == set(UserModule().state_dict())  # keys stay `...weight` / `...bias`


@pytest.mark.parametrize("weights, activations", [("int8", "int8"), ("int8", None), ("int4", "int8"), ("int4", None)])
def test_converted_model_gives_the_fake_quantized_logits(weights, activations):
    seed_everything(0)
    module = UserModule()
    qat = QuantizationAwareTraining(weights=weights, activations=activations, start=0, convert_at_end=False)
    make_trainer([qat], max_epochs=1).fit(module, loader(32))
    fake = logits(module)
    dense = copy.deepcopy(module)
    for name in qat.module_names:  # the same latent weights without fake quantization
        owner, _, child = name.rpartition(".")
        dense.get_submodule(owner).register_module(child, dense.get_submodule(name).to_linear())
    converted = qat_convert_(module)
    assert converted == qat.module_names
    # measured: identical to the last bit on this CPU; quantization itself moves the logits by more than 1e-5
    assert (logits(module) - fake).abs().max() <= 1e-6
    assert (logits(dense) - fake).abs().max() > 1e-5


def test_on_fit_end_converts_to_int8_tensors():
    seed_everything(0)
    module = UserModule()
    make_trainer([QuantizationAwareTraining(start=0.5)], max_epochs=1).fit(module, loader(32))
    weight = module.model.bert.encoder.layer[1].output.dense.weight
    assert type(weight).__name__ == "IntxUnpackedToInt8Tensor" and weight.qdata.dtype == torch.int8
    assert not fake_quantized_formats(module)


@pytest.mark.parametrize("stop_at_step", [11, 13])  # 8 steps per epoch: inside epoch 1, before and after the start
def test_resume_from_a_mid_epoch_checkpoint_before_and_after_the_start_is_exact(tmp_path, stop_at_step):
    runs = assert_resume_exact(
        lambda: [QuantizationAwareTraining(weights="int4", start=12, convert_at_end=False)],
        stop_at_step=stop_at_step,
        tmp_path=tmp_path,
        max_epochs=3,
    )
    saved = torch.load(runs.checkpoint, weights_only=False)
    assert set(saved["state_dict"]) == set(UserModule().state_dict())
    assert isinstance(runs.resumed_module.model.bert.encoder.layer[0].output.dense, FakeQuantizedLinear)


@pytest.mark.parametrize("weights", ["int8", "int4"])
def test_pruned_weights_stay_exactly_zero_under_fake_quantization_and_after_convert(weights):
    seed_everything(0)
    module = UserModule()
    pruning = GradualMagnitudePruning(final_sparsity=0.7, start=0.0, end=0.5, every_n_steps=2)
    qat = QuantizationAwareTraining(weights=weights, start=0.5, convert_at_end=False)
    make_trainer([pruning, qat], max_epochs=2).fit(module, loader())
    assert pruning.sparsity == pytest.approx(0.7, abs=1e-3)
    modules = dict(module.named_modules())
    for name, mask in pruning.masks.items():
        layer = modules[name.removesuffix(".weight")]
        assert isinstance(layer, FakeQuantizedLinear)
        assert not layer.weight[~mask].any(), name  # latent weights: the mask is still applied
        assert not layer.weight_fake_quantizer(layer.weight)[~mask].any(), name
    qat_convert_(module)
    modules = dict(module.named_modules())
    for name, mask in pruning.masks.items():
        weight = modules[name.removesuffix(".weight")].weight
        assert not weight.qdata[~mask].any() and not weight.dequantize()[~mask].any(), name


def test_stacks_with_self_distilled_pruning():
    seed_everything(0)
    module = UserModule()
    pruning = GradualMagnitudePruning(final_sparsity=0.5, start=0.0, end=0.5, every_n_steps=2)
    distillation = SelfDistilledPruning()
    qat = QuantizationAwareTraining(start=0.5, convert_at_end=False)
    make_trainer([pruning, distillation, qat], max_epochs=2).fit(module, loader())
    modules = dict(module.named_modules())
    for name, mask in pruning.masks.items():
        layer = modules[name.removesuffix(".weight")]
        assert isinstance(layer, FakeQuantizedLinear)
        assert not layer.weight_fake_quantizer(layer.weight)[~mask].any(), name
    assert torch.isfinite(logits(module)).all()


def test_stacks_with_structured_pruning_and_removed_neurons_stay_zero_after_convert():
    seed_everything(0)
    module = UserModule()
    pruning = StructuredPruning(final_sparsity=0.5, unit="ffn_neurons", start=0.0, end=0.5, every_n_steps=2)
    qat = QuantizationAwareTraining(weights="int4", start=0.5, convert_at_end=False)
    make_trainer([pruning, qat], max_epochs=2).fit(module, loader())
    layers = module.model.bert.encoder.layer
    fake = {i: (layers[i].intermediate.dense, layers[i].output.dense) for i in range(2)}
    qat_convert_(module)
    for index, kept in pruning.kept_neurons.items():
        up, down = layers[index].intermediate.dense.weight, layers[index].output.dense.weight
        removed = torch.ones(up.shape[0], dtype=torch.bool)
        removed[list(kept)] = False
        assert 0 < int(removed.sum()) < up.shape[0]
        fake_up, fake_down = fake[index]
        assert not fake_up.weight_fake_quantizer(fake_up.weight)[removed].any()
        assert not fake_down.weight_fake_quantizer(fake_down.weight)[:, removed].any()
        assert not up.qdata[removed].any() and not down.qdata[:, removed].any()


DDP_SCRIPT = """
import sys, torch
from pytorch_lightning import Trainer, seed_everything
from lightning_compress.callbacks import GradualMagnitudePruning, QuantizationAwareTraining
from tests.tiny import UserModule, loader

out = sys.argv[1]
seed_everything(0)
module = UserModule()
callbacks = [GradualMagnitudePruning(final_sparsity=0.5, start=0.0, end=0.4, every_n_steps=2),
             QuantizationAwareTraining(weights="int4", start=0.5, convert_at_end=False)]
trainer = Trainer(strategy="ddp", accelerator="cpu", devices=2, max_epochs=2, callbacks=callbacks, logger=False,
                  enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
trainer.fit(module, loader(64, batch_size=4))
module.eval()
with torch.no_grad():
    logits = module.model(input_ids=torch.arange(24).reshape(2, 12)).logits
fake = sorted(n for n, m in module.named_modules() if type(m).__name__ == "FakeQuantizedLinear")
torch.save({"weights": module.state_dict(), "logits": logits, "fake": fake}, f"{out}/rank{trainer.global_rank}.pt")
"""


def test_ddp_two_processes_have_identical_weights_and_logits(tmp_path):
    rank0, rank1 = run_ddp_script(DDP_SCRIPT, tmp_path)
    assert rank0["fake"] == rank1["fake"] and len(rank0["fake"]) == 12
    assert torch.equal(rank0["logits"], rank1["logits"])
    for name in rank0["weights"]:
        assert torch.equal(rank0["weights"][name], rank1["weights"][name]), name


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            {"weights": "int3"},
            ValueError,
            r"`QuantizationAwareTraining\(weights='int3'\)` is invalid: expected one of "
            r"\['int8', 'int4'\]\.",
        ),
        ({"weights": 4}, ValueError, r"weights=4\)` is invalid: .* HINT: give the format as a string"),
        ({"activations": "int4"}, ValueError, r"activations='int4'\)` is invalid: expected one of \['int8', None\]"),
        ({"group_size": 0}, ValueError, r"group_size=0\)` is invalid: expected an int > 0"),
        ({"group_size": 32.0}, TypeError, r"group_size=32.0\)` is invalid"),
        ({"start": 1.5}, ValueError, r"start=1.5\)` is invalid: a float is a fraction of the run"),
        ({"start": -1}, ValueError, r"start=-1\)` is invalid: an int step must be >= 0"),
        ({"targets": ["("]}, ValueError, "not a valid regular expression"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        QuantizationAwareTraining(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"weights": "int4", "group_size": 48},
            r"group_size=48\)` is invalid for `model.bert.encoder.layer.0.attention",
        ),
        ({"targets": r"word_embeddings\.weight$"}, r"belongs to a Embedding"),
        ({"targets": r"decoder\.weight"}, r"`targets` pattern 'decoder.*' matched no parameter"),
    ],
)
def test_model_dependent_errors_fail_at_setup(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_trainer([QuantizationAwareTraining(**kwargs)], max_epochs=1).fit(UserModule(), loader(16))
