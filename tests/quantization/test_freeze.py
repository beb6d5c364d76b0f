import pytest
import torch
from transformers import BertForSequenceClassification

import lightning_compress.quantization.modules as modules_module
from lightning_compress.export import load_compressed, save_compressed
from lightning_compress.quantization import SplitBinaryLinear, quantize_model_, split_model_
from lightning_compress.quantization.modules import freeze_quantized_, quantized_modules
from tests.tiny import tiny_bert_config

IDS = torch.randint(0, 64, (3, 10), generator=torch.Generator().manual_seed(2))


def quantized(kind, seed=0):
    """A tiny BERT quantized as BWN (``binary``), TWN (``ternary``) or TWS-split (``split``), 8-bit activations."""
    torch.manual_seed(seed)
    model = BertForSequenceClassification(tiny_bert_config()).eval()
    quantize_model_(model, "binary" if kind == "binary" else "ternary", 8)
    if kind == "split":
        split_model_(model)
        with torch.no_grad():  # binary fine-tuning moves the two branches apart
            for parameter in model.parameters():
                parameter.add_(1e-3 * torch.randn_like(parameter))
    return model


def state_bytes(model):
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def logits(model):
    with torch.no_grad():
        return model(input_ids=IDS).logits


@pytest.mark.parametrize("kind", ["binary", "ternary", "split"])
def test_frozen_model_gives_the_same_logits_and_is_no_larger_than_dense(kind, monkeypatch):
    model = quantized(kind)
    before, latent_bytes = logits(model), state_bytes(model)
    names = freeze_quantized_(model)
    assert names == list(quantized_modules(model)) and all(m.frozen for m in quantized_modules(model).values())

    def no_requantization(*args, **kwargs):
        raise AssertionError("a frozen module re-quantized its weight")

    monkeypatch.setattr(modules_module, "_quantize_weight", no_requantization)
    monkeypatch.setattr(modules_module, "split_binary_quantize", no_requantization)
    monkeypatch.setattr(modules_module, "_quantize_rows", no_requantization)
    assert torch.equal(logits(model), before)
    dense = BertForSequenceClassification(tiny_bert_config())
    assert state_bytes(model) <= state_bytes(dense)  # uniform activation quantizers hold no state
    if kind == "split":
        assert state_bytes(model) < latent_bytes  # one matrix instead of two latent branches
        layer = model.bert.encoder.layer[0].output.dense
        assert not hasattr(layer, "weight1") and not layer.weight.requires_grad
        # a split branch sum takes values ±α₁ ± α₂: at most four per matrix
        assert len(torch.unique(layer.weight)) <= 4


@pytest.mark.parametrize("kind", ["binary", "split"])
def test_load_compressed_of_a_tws_or_bwn_export_gives_frozen_modules(tmp_path, kind):
    model = quantized(kind)
    save_compressed(model, tmp_path / "out")
    loaded = load_compressed(tmp_path / "out")
    frozen = quantized_modules(loaded)
    assert frozen and all(module.frozen for module in frozen.values())
    if kind == "split":
        assert isinstance(loaded.bert.encoder.layer[1].output.dense, SplitBinaryLinear)
    assert torch.equal(logits(loaded), logits(model))
    assert state_bytes(loaded) <= state_bytes(BertForSequenceClassification(tiny_bert_config()))
    trainable = load_compressed(tmp_path / "out", freeze=False)
    assert not any(module.frozen for module in quantized_modules(trainable).values())


def test_frozen_ternary_model_exports_again_and_frozen_split_model_says_why_not(tmp_path):
    model = quantized("ternary")
    freeze_quantized_(model)
    save_compressed(model, tmp_path / "ternary")
    assert torch.equal(logits(load_compressed(tmp_path / "ternary")), logits(model))
    split = quantized("split")
    freeze_quantized_(split)
    with pytest.raises(
        ValueError,
        match=r"`SplitBinary(Linear|Embedding).branch_scales\(\)` needs the two latent branches, but "
        "the module is frozen",
    ):
        save_compressed(split, tmp_path / "split")


def test_freezing_a_model_without_quantized_modules_is_an_error():
    with pytest.raises(ValueError, match=r"freeze_quantized_ found no ternary/binary module in BertForSequence"):
        freeze_quantized_(BertForSequenceClassification(tiny_bert_config()))
