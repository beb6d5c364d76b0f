import pytest
from torch import nn
from transformers import BertForSequenceClassification

from lightning_compress.targeting import encoder_layer_index, resolve_encoder_parameters, resolve_targets
from tests.tiny import tiny_bert_config


def test_default_targets_are_the_six_encoder_linear_weights_per_layer():
    model = BertForSequenceClassification(tiny_bert_config())
    names = resolve_targets(model)
    assert len(names) == 2 * 6
    assert all(".encoder.layer." in n and n.endswith(".weight") for n in names)
    assert not any(k in n for n in names for k in ("embeddings", "LayerNorm", "pooler", "classifier"))
    assert "bert.encoder.layer.1.intermediate.dense.weight" in names


def test_targets_and_exclude_patterns():
    model = BertForSequenceClassification(tiny_bert_config())
    assert resolve_targets(model, targets=r"query\.weight$") == [
        "bert.encoder.layer.0.attention.self.query.weight",
        "bert.encoder.layer.1.attention.self.query.weight",
    ]
    assert len(resolve_targets(model, exclude=r"layer\.0\.")) == 6


def test_pattern_matching_nothing_is_an_error_naming_the_pattern():
    model = BertForSequenceClassification(tiny_bert_config())
    with pytest.raises(ValueError, match=r"`targets` pattern 'decoder' matched no parameter; first parameter names"):
        resolve_targets(model, targets=["decoder"])
    with pytest.raises(ValueError, match=r"`exclude` pattern 'nothing_here' matched no parameter"):
        resolve_targets(model, exclude="nothing_here")
    with pytest.raises(ValueError, match="removed every target"):
        resolve_targets(model, exclude="encoder")
    with pytest.raises(ValueError, match="not a valid regular expression"):
        resolve_targets(model, targets="(")


def test_plain_module_without_encoder_needs_explicit_targets():
    with pytest.raises(ValueError, match="HINT: pass `targets="):
        resolve_targets(nn.Sequential(nn.Linear(2, 2)))
    assert resolve_targets(nn.Sequential(nn.Linear(2, 2)), targets=r"0\.weight") == ["0.weight"]


def test_gradient_dropout_defaults_take_every_encoder_and_pooler_parameter():
    model = BertForSequenceClassification(tiny_bert_config())
    names = resolve_encoder_parameters(model)
    encoder = [n for n, _ in model.named_parameters() if ".encoder." in n or ".pooler." in n]
    assert names == encoder and len(names) == 2 * 16 + 2  # 16 tensors per block (biases, LayerNorm), pooler
    assert not any("embeddings" in n or "classifier" in n for n in names)
    assert resolve_encoder_parameters(model, exclude="pooler") == encoder[:-2]
    layer_norm_biases = [n for n, _ in model.named_parameters() if n.endswith("LayerNorm.bias")]
    assert resolve_encoder_parameters(model, targets=r"LayerNorm\.bias$") == layer_norm_biases  # explicit: any name
    with pytest.raises(ValueError, match=r"`targets` pattern 'decoder' matched no parameter"):
        resolve_encoder_parameters(model, targets="decoder")
    with pytest.raises(ValueError, match="HINT: pass `targets="):
        resolve_encoder_parameters(nn.Sequential(nn.Linear(2, 2)))


def test_encoder_layer_index():
    assert encoder_layer_index("model.bert.encoder.layer.11.output.dense.weight") == 11
    assert encoder_layer_index("model.encoder.layers.2.fc1.bias") == 2
    assert encoder_layer_index("bert.pooler.dense.weight") is None
    assert encoder_layer_index("bert.embeddings.word_embeddings.weight") is None
