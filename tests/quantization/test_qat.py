import copy

import pytest
import torch
from torch import nn

from lightning_compress.quantization import quantize_model_
from lightning_compress.quantization.qat import (
    check_qat_arguments,
    fake_quantized_formats,
    ptq_quantize_,
    qat_base_config,
    qat_convert_,
    qat_prepare_,
)
from tests.tiny import tiny_bert_config

pytest.importorskip("torchao.quantization.qat")
from transformers import BertForSequenceClassification  # noqa: E402

IDS = torch.randint(0, 64, (4, 12), generator=torch.Generator().manual_seed(3))
ENCODER = [f"bert.encoder.layer.{i}.{m}" for i in range(2) for m in ("attention.self.query", "output.dense")]


def tiny_model():
    torch.manual_seed(0)
    return BertForSequenceClassification(tiny_bert_config()).eval()


def logits(model):
    with torch.no_grad():
        return model(input_ids=IDS).logits


def test_int8_fake_quantization_of_a_2x3_weight_is_the_hand_computed_grid():
    layer = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -0.5, 0.25], [-2.0, 0.0, 0.3]]))
    model = nn.Sequential(layer)
    qat_prepare_(model, ["0"], "int8", None)
    # s = max|w_row| / 127.5, w = s · clamp(round(w / s), -128, 127): rows of step 1/127.5 and 2/127.5
    s = torch.tensor([[1.0], [2.0]], dtype=torch.float32) / 127.5
    codes = torch.tensor([[127, -64, 32], [-127, 0, 19]], dtype=torch.float32)  # ±127.5 rounds to ±127 in fp32
    quantized = model[0].weight_fake_quantizer(model[0].weight)
    assert torch.allclose(quantized.double(), (s * codes).double(), rtol=0, atol=1e-7)
    assert quantized[1, 1] == 0  # zero stays exactly zero (symmetric)


def test_prepare_keeps_the_parameter_objects_and_the_state_dict_keys():
    model = tiny_model()
    before = dict(model.named_parameters())
    keys = set(model.state_dict())
    assert qat_prepare_(model, ENCODER, "int4", "int8", 32) == ENCODER
    after = dict(model.named_parameters())
    assert all(after[name] is before[name] for name in before)
    assert set(model.state_dict()) == keys
    assert fake_quantized_formats(model) == {name: ("int4", "int8", 32) for name in ENCODER}


@pytest.mark.parametrize("weights, activations", [("int8", "int8"), ("int8", None), ("int4", "int8"), ("int4", None)])
def test_convert_gives_the_fake_quantized_logits_and_ptq_gives_the_same_model(weights, activations):
    model = tiny_model()
    reference = copy.deepcopy(model)
    qat_prepare_(model, ENCODER, weights, activations)
    fake = logits(model)
    assert qat_convert_(model) == ENCODER
    assert (logits(model) - fake).abs().max() <= 1e-6  # measured: 0.0
    ptq_quantize_(reference, ENCODER, weights, activations)  # no training in between: post-training quantization
    assert torch.equal(logits(reference), logits(model))


def test_base_configs_are_the_cpu_torchao_configs():
    assert type(qat_base_config("int8", "int8")).__name__ == "Int8DynamicActivationIntxWeightConfig"
    config = qat_base_config("int4", None, 16)
    assert type(config).__name__ == "IntxWeightOnlyConfig" and config.granularity.group_size == 16


@pytest.mark.parametrize(
    "arguments, error, match",
    [
        (("int3", "int8", 32), ValueError, r"`owner\(weights='int3'\)` is invalid: expected one of \['int8', 'int4'\]"),
        (("int8", "int16", 32), ValueError, r"`owner\(activations='int16'\)` is invalid"),
        (("int4", None, -1), ValueError, r"`owner\(group_size=-1\)` is invalid: expected an int > 0"),
        (("int4", None, "32"), TypeError, r"`owner\(group_size='32'\)` is invalid"),
    ],
)
def test_bad_formats_raise_clear_errors(arguments, error, match):
    with pytest.raises(error, match=match):
        check_qat_arguments("owner", *arguments)


def test_prepare_rejects_non_linear_and_indivisible_groups():
    model = tiny_model()
    with pytest.raises(ValueError, match=r"target `bert.embeddings.word_embeddings.weight` belongs to a Embedding"):
        qat_prepare_(model, ["bert.embeddings.word_embeddings"])
    with pytest.raises(
        ValueError, match=r"group_size=24\)` is invalid for `bert.encoder.layer.0.attention.self.query`"
    ):
        qat_prepare_(model, ENCODER, "int4", None, 24)


def test_float64_weights_are_refused_with_a_clear_error():
    model = nn.Sequential(nn.Linear(3, 2).double())
    with pytest.raises(
        ValueError, match=r"cannot quantize `0`: its weight is torch.float64; torchao's quantizers take"
    ):
        qat_prepare_(model, ["0"])


def test_ternary_modules_are_not_prepared():
    model = tiny_model()
    quantize_model_(model, "ternary", act_bits=None)
    with pytest.raises(ValueError, match="belongs to a QuantLinear"):
        qat_prepare_(model, ["bert.encoder.layer.0.attention.self.query"])


def test_sparsity_report_counts_the_zeros_of_converted_int8_weights():
    from lightning_compress.pruning import sparsity_report

    model = tiny_model()
    weight = model.get_submodule(ENCODER[0]).weight
    with torch.no_grad():
        weight[:, ::2] = 0  # half of the layer's weights
    before = sparsity_report(model)
    qat_prepare_(model, ENCODER, "int8", "int8")
    qat_convert_(model)
    assert type(model.get_submodule(ENCODER[0]).weight).__name__ != "Parameter"  # a torchao tensor now
    after = sparsity_report(model)
    assert after["layers"][f"{ENCODER[0]}.weight"] >= 0.5
    assert after["layers"] == pytest.approx(before["layers"], abs=0.01)  # int8 rounding may zero a few more
