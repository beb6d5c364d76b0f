"""The shared test helpers: the tiny BERT (config, user module, model folder), its data, the quiet Trainer, the
exact mid-epoch resume check and the 2-process DDP runner.

Every test builds its models and Trainers here, so a change of the tiny model or of the Trainer's defaults happens in
one place.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from pytorch_lightning import Callback, LightningModule, Trainer, seed_everything
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, Dataset
from transformers import BertConfig, BertForSequenceClassification, BertModel

from lightning_compress.data.sampling import ResumableDataLoader

VOCAB = 64
ROOT = Path(__file__).resolve().parents[1]
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def tiny_bert_config(**overrides) -> BertConfig:
    """A 2-layer, 32-wide BERT (2 heads, FFN 64, 64-token vocabulary, 32 positions, 2 labels); kwargs override."""
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


def save_tiny_bert(folder: str | Path, tokenizer: str | None = None, **overrides) -> str:
    """Save the tiny BERT encoder (no head, seed 0) as a model folder and return its path.

    ``tokenizer``: a hub id whose tokenizer files are copied next to the weights (resolved offline; give
    ``vocab_size`` of that tokenizer). ``overrides`` go to :func:`tiny_bert_config`.
    """
    from lightning_compress.hub import resolve_pretrained

    folder = Path(folder)
    torch.manual_seed(0)
    BertModel(tiny_bert_config(**overrides)).save_pretrained(folder)
    if tokenizer is not None:
        packaged = Path(resolve_pretrained(tokenizer))
        for name in TOKENIZER_FILES:
            shutil.copy(packaged / name, folder / name)
    return str(folder)


def save_tiny_minilm(folder: str | Path) -> str:
    """The tiny BERT with the real MiniLM vocabulary and tokenizer files, as a local model folder."""
    return save_tiny_bert(
        folder, "sentence-transformers/all-MiniLM-L6-v2", vocab_size=30522, max_position_embeddings=512
    )


class UserModule(LightningModule):
    """A user's own module: no project base class, automatic optimization, AdamW with weight decay.

    It saves no random state, so a resumed run draws other dropout masks: resume tests use ``dropout=0.0``.
    """

    def __init__(
        self,
        lr: float = 1e-2,
        weight_decay: float = 0.1,
        dropout: float = 0.1,
        train_mode: bool = True,
        layers: int = 2,
    ):
        super().__init__()
        torch.manual_seed(0)
        self.model = BertForSequenceClassification(
            tiny_bert_config(
                num_hidden_layers=layers, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout
            )
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
    """``n`` :class:`RandomTokens` in file order, in a loader that Lightning resumes mid-epoch."""
    return ResumableDataLoader(RandomTokens(n, seed=seed), batch_size=batch_size, shuffle=False)


def make_trainer(callbacks: Sequence[Callback] = (), max_epochs: int = 3, **kwargs) -> Trainer:
    """A quiet, deterministic 1-device CPU Trainer (no logger, checkpoints, progress bar or summary unless asked)."""
    options: dict[str, Any] = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
    )
    return Trainer(max_epochs=max_epochs, callbacks=list(callbacks), **{**options, **kwargs})


class ResumeRuns(NamedTuple):
    """The runs compared by :func:`assert_resume_exact`: the uninterrupted one, the resumed one, the checkpoint."""

    full_module: LightningModule
    full_callbacks: list[Callback]
    resumed_module: LightningModule
    resumed_callbacks: list[Callback]
    checkpoint: Path


def assert_resume_exact(
    make_callbacks: Callable[[], Sequence[Callback]],
    *,
    stop_at_step: int,
    tmp_path: Path,
    make_module: Callable[[], LightningModule] = lambda: UserModule(dropout=0.0),
    make_loader: Callable[[], DataLoader] = loader,
    make_val_loader: Callable[[], DataLoader] | None = None,
    max_epochs: int = 2,
    mid_epoch: bool = True,
    **trainer_kwargs: Any,
) -> ResumeRuns:
    """Check that a fit stopped at optimizer step ``stop_at_step`` and resumed from its checkpoint ends bitwise equal
    to the uninterrupted fit: every entry of the module's ``state_dict`` and of every callback's ``state_dict``.

    Three fits of ``make_module()`` with ``make_callbacks()``, each after ``seed_everything(0)``: the uninterrupted
    one; one that saves a checkpoint at step ``stop_at_step`` (``ModelCheckpoint(every_n_train_steps=...)``, on
    ``on_train_batch_end``, after the step's callback hooks) and stops there; one that resumes from it with
    ``ckpt_path``. The step must fall inside an epoch (``mid_epoch=False`` allows an epoch's end), and the train loader
    must be stateful, so the resumed epoch continues with the batch after the checkpoint's. Pick ``stop_at_step``
    between two of the callback's events; the returned runs let the test check more.
    """

    def fit(callbacks: list[Callback], directory: Path, ckpt_path: Path | None = None):
        """The fitted module, its last global step and the optimizer steps per epoch."""
        seed_everything(0)
        module = make_module()
        val = None if make_val_loader is None else make_val_loader()
        checkpointing = any(isinstance(callback, ModelCheckpoint) for callback in callbacks)
        options = dict(default_root_dir=directory, enable_checkpointing=checkpointing, **trainer_kwargs)
        trainer = make_trainer(callbacks, max_epochs=max_epochs, **options)
        trainer.fit(module, make_loader(), val, ckpt_path=ckpt_path)
        steps_per_epoch = math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches)
        return module, trainer.global_step, steps_per_epoch

    def build() -> list[Callback]:
        seed_everything(0)
        return list(make_callbacks())

    full_callbacks = build()
    full_module, last_step, steps_per_epoch = fit(full_callbacks, tmp_path / "full")
    assert last_step > stop_at_step, f"stop_at_step={stop_at_step} is not before the run's last step {last_step}"
    if mid_epoch:
        assert stop_at_step % steps_per_epoch, f"step {stop_at_step} ends an epoch of {steps_per_epoch} steps"

    directory = tmp_path / "stopped"
    checkpoints = ModelCheckpoint(directory, "{step}", save_top_k=-1, every_n_train_steps=stop_at_step)
    fit([*build(), _StopAfterStep(stop_at_step), checkpoints], directory)
    checkpoint = directory / f"step={stop_at_step}.ckpt"
    saved = torch.load(checkpoint, weights_only=False)
    assert "combined_loader" in saved["loops"]["fit_loop"]["state_dict"], "the train loader saved no state"

    resumed_callbacks = build()
    with warnings.catch_warnings():  # the resumed fit has no ModelCheckpoint, by design
        warnings.filterwarnings("ignore", "Be aware that when using `ckpt_path`")
        resumed_module, resumed_last_step, _ = fit(resumed_callbacks, tmp_path / "resumed", ckpt_path=checkpoint)
    assert resumed_last_step == last_step

    assert_same_state(full_module.state_dict(), resumed_module.state_dict(), "module")
    for index, (full, resumed) in enumerate(zip(full_callbacks, resumed_callbacks)):
        assert_same_state(full.state_dict(), resumed.state_dict(), f"callbacks[{index}] {type(full).__name__}")
    return ResumeRuns(full_module, full_callbacks, resumed_module, resumed_callbacks, checkpoint)


def assert_same_state(expected: Any, actual: Any, where: str = "state") -> None:
    """Bitwise equality of nested dicts, lists and tuples of tensors (same dtype and shape) and primitives."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor), f"{where}: {type(actual).__name__}, expected a tensor"
        assert (actual.dtype, actual.shape) == (expected.dtype, expected.shape), f"{where}: dtype or shape differs"
        assert torch.equal(actual.cpu(), expected.cpu()) or _both_nan(expected, actual), f"{where} differs"
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), f"{where}: keys differ"
        for key, value in expected.items():
            assert_same_state(value, actual[key], f"{where}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert type(actual) is type(expected) and len(actual) == len(expected), f"{where}: length differs"
        for i, (a, b) in enumerate(zip(expected, actual)):
            assert_same_state(a, b, f"{where}[{i}]")
    else:
        assert actual == expected or (actual != actual and expected != expected), f"{where}: {actual!r} != {expected!r}"


def _both_nan(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (
        a.is_floating_point()
        and torch.equal(a.cpu().isnan(), b.cpu().isnan())
        and torch.equal(a.cpu().nan_to_num(), b.cpu().nan_to_num())
    )


class _StopAfterStep(Callback):
    """Stops the fit after optimizer step ``step`` (the checkpoint of that step is saved after this hook)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.step:
            trainer.should_stop = True


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
