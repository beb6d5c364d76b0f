"""Fixtures shared by the test modules."""

import shutil
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel

from lightning_compress.hub import resolve_pretrained


@pytest.fixture(scope="session")
def tiny_minilm(tmp_path_factory) -> str:
    """A 2-layer, 32-wide BERT with the real MiniLM tokenizer files, saved as a local model folder."""
    folder = tmp_path_factory.mktemp("tiny_minilm")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    BertModel(config).save_pretrained(folder)
    packaged = Path(resolve_pretrained("sentence-transformers/all-MiniLM-L6-v2"))
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(packaged / name, folder / name)
    return str(folder)
