import copy

import pytest
import torch

from lightning_compress.quantization import quantize_model_, to_fast_int8_
from lightning_compress.quantization.qat import qat_convert_, qat_prepare_
from tests.quantization.test_qat import ENCODER, logits, tiny_model

pytest.importorskip("torchao.quantization.qat")
ALL_ENCODER = [
    f"bert.encoder.layer.{i}.{m}"
    for i in range(2)
    for m in (
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "intermediate.dense",
        "output.dense",
    )
]


def weight_codes(module):
    return module.weight().int_repr()


@pytest.mark.parametrize("converted", [False, True])
def test_fast_int8_keeps_the_int8_qat_weight_codes(converted):
    model = tiny_model()
    qat_prepare_(model, ENCODER, "int8", "int8")
    fake = logits(model)
    reference = copy.deepcopy(model)
    qat_convert_(reference)
    if converted:
        qat_convert_(model)
    assert to_fast_int8_(model) == ENCODER
    modules = dict(model.named_modules())
    for name in ENCODER:
        assert type(modules[name]).__name__ == "Linear" and modules[name].__module__.endswith("dynamic.modules.linear")
        assert torch.equal(weight_codes(modules[name]), reference.get_submodule(name).weight.qdata)
    # activations: one scale per tensor (7-bit range) instead of one per token; measured 3e-6 on logits of ~1e-2
    assert (logits(model) - fake).abs().max() < 3e-5


def test_fast_int8_of_a_plain_model_quantizes_the_encoder_linears():
    model = tiny_model()
    dense = logits(model)
    assert to_fast_int8_(model) == ALL_ENCODER
    assert type(model.classifier) is torch.nn.Linear
    assert 0 < (logits(model) - dense).abs().max() < 3e-5  # measured 5e-6 on logits of ~1e-2


def test_fast_int8_refuses_int4_ternary_and_models_with_nothing_to_target():
    model = tiny_model()
    qat_prepare_(model, ENCODER, "int4", None)
    with pytest.raises(ValueError, match=r"are int4 modules and PyTorch's fast CPU kernels are int8 only"):
        to_fast_int8_(model)
    ternary = tiny_model()
    quantize_model_(ternary, "ternary", act_bits=None)
    with pytest.raises(ValueError, match=r"hold ternary/binary weights; int8 kernels would change their values"):
        to_fast_int8_(ternary)
    with pytest.raises(ValueError, match=r"`to_fast_int8_` found nothing to quantize in Sequential"):
        to_fast_int8_(torch.nn.Sequential(torch.nn.Linear(4, 4)))


def test_fast_int8_with_embeddings_stores_the_word_table_in_int8_rows():
    model = tiny_model()
    table = model.get_input_embeddings().weight.detach().clone()
    dense = logits(model)
    names = to_fast_int8_(model, embeddings=True)
    assert names == [*ALL_ENCODER, "bert.embeddings.word_embeddings"]
    quantized = model.get_input_embeddings()
    assert type(quantized) is torch.ao.nn.quantized.Embedding
    codes = quantized.weight()
    assert codes.dtype == torch.quint8 and codes.shape == table.shape
    step = (table.amax(1) - table.amin(1)) / 255  # one asymmetric scale per row
    assert torch.all((codes.dequantize() - table).abs() <= step[:, None] / 2 + 1e-6)
    assert codes.int_repr().element_size() * codes.numel() == table.numel()  # 1 byte a weight instead of 4
    assert 0 < (logits(model) - dense).abs().max() < 1e-3


def test_fast_int8_embeddings_need_a_model_with_input_embeddings():
    with pytest.raises(ValueError, match=r"has no `get_input_embeddings\(\)`.*HINT: pass `embeddings=False`"):
        to_fast_int8_(torch.nn.Sequential(torch.nn.Linear(4, 4)), targets=r"0\.weight", embeddings=True)
