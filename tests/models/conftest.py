"""Fixtures for the models tests: a tiny local BERT, in-memory dict-batch dataloaders, a quiet CPU Trainer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader
from transformers import BertConfig, BertModel

VOCAB_SIZE = 100
SEQ_LEN = 8


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Folder of a 2-layer, 32-hidden BERT encoder (no head), as a hub model folder would hold it."""
    folder = tmp_path_factory.mktemp("tiny_bert")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=VOCAB_SIZE, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    BertModel(config).save_pretrained(folder)
    return str(folder)


def _examples(n: int, kind: str, num_labels: int, seed: int) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1, VOCAB_SIZE, (n, SEQ_LEN), generator=generator)
    examples = []
    for i in range(n):
        ids = input_ids[i]
        if kind == "regression":
            labels = torch.rand((), generator=generator) * 5
        elif kind == "token_classification":
            labels = ids % num_labels
            labels[0] = -100  # like [CLS]
            labels[-1] = -100
        else:
            labels = ids[1] % num_labels
        examples.append(
            {
                "input_ids": ids,
                "attention_mask": torch.ones(SEQ_LEN, dtype=torch.long),
                "token_type_ids": torch.zeros(SEQ_LEN, dtype=torch.long),
                "labels": labels,
                "idx": torch.tensor(i),
            }
        )
    return examples


@pytest.fixture
def make_loader() -> Callable[..., DataLoader]:
    """``make_loader(n, kind, num_labels, seed, batch_size)``: a DataLoader of dict batches (batch contract)."""

    def make(
        n: int = 8, kind: str = "classification", num_labels: int = 2, seed: int = 0, batch_size: int = 4
    ) -> DataLoader:
        return DataLoader(_examples(n, kind, num_labels, seed), batch_size=batch_size)

    return make


@pytest.fixture
def make_trainer(tmp_path: Path) -> Callable[..., pl.Trainer]:
    """A CPU Trainer without logger, checkpointing, progress bar or summary; kwargs override."""

    def make(**kwargs: Any) -> pl.Trainer:
        options: dict[str, Any] = {
            "accelerator": "cpu",
            "devices": 1,
            "logger": False,
            "enable_checkpointing": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "default_root_dir": tmp_path,
        }
        options.update(kwargs)
        return pl.Trainer(**options)

    return make
