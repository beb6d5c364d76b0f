"""Fixtures for the models tests: a tiny local BERT, in-memory dict-batch dataloaders, a quiet CPU Trainer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from lightning_compress.data.sampling import ResumableDataLoader
from tests import tiny

VOCAB_SIZE = 100
SEQ_LEN = 8


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Folder of a 2-layer, 32-hidden BERT encoder (no head), as a hub model folder would hold it."""
    return tiny.save_tiny_bert(tmp_path_factory.mktemp("tiny_bert"), vocab_size=VOCAB_SIZE, max_position_embeddings=512)


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
    """``make_loader(n, kind, num_labels, seed, batch_size)``: a DataLoader of dict batches (batch contract), resumable
    mid-epoch."""

    def make(
        n: int = 8, kind: str = "classification", num_labels: int = 2, seed: int = 0, batch_size: int = 4
    ) -> DataLoader:
        return ResumableDataLoader(_examples(n, kind, num_labels, seed), batch_size=batch_size)

    return make


@pytest.fixture
def make_trainer(tmp_path: Path) -> Callable[..., pl.Trainer]:
    """:func:`tests.tiny.make_trainer` writing under the test's ``tmp_path``; kwargs override."""

    def make(**kwargs: Any) -> pl.Trainer:
        return tiny.make_trainer(**{"default_root_dir": tmp_path, **kwargs})

    return make
