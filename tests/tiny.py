"""Tiny models and data for callback tests: a 2-layer, 32-wide BERT wrapped in a plain LightningModule."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from pytorch_lightning import LightningModule, Trainer
from torch.utils.data import DataLoader, Dataset
from transformers import BertConfig, BertForSequenceClassification

VOCAB = 64
ROOT = Path(__file__).resolve().parents[1]


def tiny_bert_config(**overrides) -> BertConfig:
    config = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        num_labels=2,
    )
    config.update(overrides)
    return BertConfig(**config)


class UserModule(LightningModule):
    """A user's own module: no project base class, automatic optimization, AdamW with weight decay."""

    def __init__(self, lr: float = 1e-2, weight_decay: float = 0.1, dropout: float = 0.1, train_mode: bool = True):
        super().__init__()
        torch.manual_seed(0)
        self.model = BertForSequenceClassification(
            tiny_bert_config(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
        )
        if not train_mode:
            self.model.eval()
        self.lr, self.weight_decay = lr, weight_decay

    def training_step(self, batch, batch_idx):
        out = self.model(input_ids=batch["input_ids"], labels=batch["labels"])
        self.log("train/loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self.model(input_ids=batch["input_ids"], labels=batch["labels"])
        self.log("val/loss", out.loss)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)


class RandomTokens(Dataset):
    """Deterministic random token sequences whose label is the parity of the first token."""

    def __init__(self, n: int = 64, length: int = 12, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        self.input_ids = torch.randint(0, VOCAB, (n, length), generator=generator)
        self.labels = self.input_ids[:, 0] % 2

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.input_ids[i], "labels": self.labels[i], "idx": torch.tensor(i)}


def loader(n: int = 64, batch_size: int = 8, seed: int = 0) -> DataLoader:
    return DataLoader(RandomTokens(n, seed=seed), batch_size=batch_size, shuffle=False)


def make_trainer(callbacks, max_epochs: int = 3, **kwargs) -> Trainer:
    """A quiet, deterministic CPU Trainer for callback tests (no logger or checkpoints unless asked for)."""
    kwargs.setdefault("logger", False)
    kwargs.setdefault("enable_checkpointing", False)
    return Trainer(
        max_epochs=max_epochs,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
        **kwargs,
    )


def run_ddp_script(script: str, tmp_path: Path, *args: str) -> tuple[dict, dict]:
    """Run ``script`` (a 2-process DDP program that saves ``rank0.pt`` / ``rank1.pt`` into the folder given as its
    first argument, then ``args``) in a subprocess from the repository root; return what the two ranks saved."""
    path = tmp_path / "ddp_script.py"
    path.write_text(script)
    result = subprocess.run(
        [sys.executable, str(path), str(tmp_path), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1))
    return rank0, rank1
