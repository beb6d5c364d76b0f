"""Shared LightningDataModule for text (pair) tasks: read -> subset -> tokenize once (cached) -> dynamic padding.

Subclasses set ``self.task_spec`` in ``__init__`` and implement two hooks that return parsed :class:`Examples`:
:meth:`TokenizedDataModule.train_examples` and :meth:`TokenizedDataModule.eval_examples` (one set per
``task_spec.eval_names`` entry). Everything else (subsets, tokenization cache, collation, dataloaders) lives here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_info
from torch.utils.data import DataLoader, Sampler
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from lightning_compress.data.examples import Examples, first_n, seeded_subset
from lightning_compress.data.sampling import EpochSeededRandomSampler, ResumableDataLoader
from lightning_compress.data.tokenized import (
    TokenizedDataset,
    cache_key,
    load_tokenized,
    load_tokenizer,
    save_tokenized,
    tokenize_examples,
    tokenizer_fingerprint,
)
from lightning_compress.hub import DEFAULT_PRETRAINED
from lightning_compress.tasks import TaskSpec
from lightning_compress.validation import check_int, check_path, check_str

DEFAULT_CACHE_DIR = "~/.cache/lightning_compress/tokenized"
_T = TypeVar("_T")


class TokenizedDataModule(pl.LightningDataModule):
    """Base DataModule: tokenizes each split once in :meth:`setup` and yields dict batches.

    Batches follow ``docs/architecture.md``: ``input_ids``, ``attention_mask``, ``token_type_ids`` (when the
    tokenizer makes them), ``labels`` (long for classification, float for regression) and ``idx`` (the example's
    position in its split, stable across epochs).

    Tokenized splits are cached under ``cache_dir`` in files keyed by the sha256 of the data files read (or the hub
    data set fingerprint), how they were parsed and subset, the tokenizer's content (its vocabulary and pipeline, not
    its name or folder), ``max_seq_length`` and ``text_prefix``; a second ``setup`` with the same inputs loads the file
    instead of tokenizing again.

    Subsets: ``max_train_samples`` draws a seeded uniform sample (kept in file order), because training files are often
    sorted and the first rows may miss classes; ``max_eval_samples`` keeps the first rows of every evaluation set,
    so evaluation subsets do not depend on the seed.

    Args:
        tokenizer: Hub id or local folder of a fast tokenizer (resolved offline with ``resolve_pretrained``).
        max_seq_length: Truncation length in tokens (pairs are truncated longest-first).
        batch_size: Training batch size.
        eval_batch_size: Validation/test batch size; ``None`` means ``2 * batch_size``.
        num_workers: DataLoader worker processes.
        max_train_samples: Train on a seeded random subset of this size; ``None`` = all.
        max_eval_samples: Evaluate on the first rows of every evaluation set; ``None`` = all.
        seed: Seed of the train subset and of the training shuffle.
        text_prefix: String put before every first text (e.g. ``"query: "`` for multilingual-e5 models).
        cache_dir: Folder of the tokenization cache; ``None`` = ``~/.cache/lightning_compress/tokenized``.
    """

    task_spec: TaskSpec

    def __init__(
        self,
        tokenizer: str = DEFAULT_PRETRAINED,
        max_seq_length: int = 128,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        max_train_samples: int | None = None,
        max_eval_samples: int | None = None,
        seed: int = 42,
        text_prefix: str = "",
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        check_str(owner, "tokenizer", tokenizer)
        check_int(owner, "max_seq_length", max_seq_length, 8)
        check_int(owner, "batch_size", batch_size, 1)
        check_int(owner, "eval_batch_size", eval_batch_size, 1, allow_none=True)
        check_int(owner, "num_workers", num_workers, 0)
        check_int(owner, "max_train_samples", max_train_samples, 1, allow_none=True)
        check_int(owner, "max_eval_samples", max_eval_samples, 1, allow_none=True)
        check_int(owner, "seed", seed, 0)
        check_str(owner, "text_prefix", text_prefix)
        check_path(owner, "cache_dir", cache_dir)
        self.save_hyperparameters()
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size if eval_batch_size is not None else 2 * batch_size
        self.num_workers = num_workers
        self.max_train_samples = max_train_samples
        self.max_eval_samples = max_eval_samples
        self.seed = seed
        self.text_prefix = text_prefix
        self.cache_dir = Path(cache_dir if cache_dir is not None else DEFAULT_CACHE_DIR).expanduser()
        self.train_dataset: TokenizedDataset | None = None
        self.val_datasets: list[TokenizedDataset] | None = None
        self.test_datasets: list[TokenizedDataset] | None = None
        self._hf_tokenizer: PreTrainedTokenizerBase | None = None
        self._built: dict[str, TokenizedDataset] = {}

    # ----------------------------------------------------------------- hooks for subclasses
    def train_examples(self) -> Examples:
        """Parsed training split (before subsetting)."""
        raise NotImplementedError

    def eval_examples(self, split: str) -> list[Examples]:
        """Parsed evaluation sets for ``split`` (``"validation"`` or ``"test"``), one per ``task_spec.eval_names``."""
        raise NotImplementedError

    # ----------------------------------------------------------------- tokenizer and collation
    @property
    def hf_tokenizer(self) -> PreTrainedTokenizerBase:
        """The loaded tokenizer (``self.tokenizer`` is its name); loaded once, on first use."""
        if self._hf_tokenizer is None:
            self._hf_tokenizer = load_tokenizer(self.tokenizer)
        return self._hf_tokenizer

    @property
    def collator(self) -> DataCollatorWithPadding:
        """Pads every batch to its longest example."""
        return DataCollatorWithPadding(self.hf_tokenizer)

    # ----------------------------------------------------------------- setup
    def prepare_data(self) -> None:
        """Runs on one process per node before :meth:`setup`: downloads (hub) and fills the tokenization cache, so
        that ``setup`` on the other ranks only loads files. Builds what the running trainer stage needs."""
        trainer = self.trainer
        stage = trainer.state.fn.value if trainer is not None and trainer.state.fn is not None else None
        self.setup(stage)

    def setup(self, stage: str | None = None) -> None:
        """Read and tokenize what ``stage`` needs (``fit``: train + validation; ``validate``; ``test``)."""
        if stage in (None, "fit") and self.train_dataset is None:
            examples = seeded_subset(self.train_examples(), self.max_train_samples, self.seed)
            self.train_dataset = self._dataset(examples, "train")
        if stage in (None, "fit", "validate") and self.val_datasets is None:
            self.val_datasets = self._eval_datasets("validation")
        if stage in (None, "test") and self.test_datasets is None:
            self.test_datasets = self._eval_datasets("test")

    def _eval_datasets(self, split: str) -> list[TokenizedDataset]:
        sets = self.eval_examples(split)
        names = self.task_spec.eval_names
        if len(sets) != len(names):
            raise RuntimeError(f"{type(self).__name__}.eval_examples returned {len(sets)} sets for eval_names {names}")
        return [
            self._dataset(first_n(examples, self.max_eval_samples), f"{split} {name}".strip())
            for examples, name in zip(sets, names, strict=True)
        ]

    def _dataset(self, examples: Examples, tag: str) -> TokenizedDataset:
        """Tokenized dataset for ``examples``, from memory, the disk cache, or by tokenizing (then cached)."""
        regression = self.task_spec.kind == "regression"
        key = cache_key(
            examples, tokenizer_fingerprint(self.hf_tokenizer), self.max_seq_length, self.text_prefix, regression
        )
        if key in self._built:
            return self._built[key]
        path = self.cache_dir / f"{self.task_spec.name}-{key[:32]}.pt"
        data = load_tokenized(path)
        if data is None:
            rank_zero_info(f"Tokenizing {len(examples):,} {self.task_spec.name} {tag} examples (cache: {path})")
            data = tokenize_examples(self.hf_tokenizer, examples, self.max_seq_length, self.text_prefix, regression)
            save_tokenized(path, data)
        self._built[key] = TokenizedDataset(data)
        return self._built[key]

    # ----------------------------------------------------------------- dataloaders
    def train_dataloader(self) -> DataLoader:
        """Shuffled by an :class:`EpochSeededRandomSampler`: each epoch's order depends only on (``seed``, epoch).

        A :class:`ResumableDataLoader`: a fit resumed from a mid-epoch checkpoint continues with the batch after the
        last one the checkpointed run trained on.
        """
        dataset = self._ready(self.train_dataset, "fit")
        sampler = EpochSeededRandomSampler(dataset, seed=self.seed)
        return self._loader(dataset, self.batch_size, sampler=sampler, loader_class=ResumableDataLoader)

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        """One loader per ``task_spec.eval_names`` entry (a single loader when there is one)."""
        return self._eval_loaders(self._ready(self.val_datasets, "validate"))

    def test_dataloader(self) -> DataLoader | list[DataLoader]:
        """One loader per ``task_spec.eval_names`` entry (a single loader when there is one)."""
        return self._eval_loaders(self._ready(self.test_datasets, "test"))

    def _eval_loaders(self, datasets: list[TokenizedDataset]) -> DataLoader | list[DataLoader]:
        loaders = [self._loader(d, self.eval_batch_size) for d in datasets]
        return loaders[0] if len(loaders) == 1 else loaders

    def _loader(
        self,
        dataset: TokenizedDataset,
        batch_size: int,
        sampler: Sampler | None = None,
        loader_class: type[DataLoader] = DataLoader,
    ) -> DataLoader:
        return loader_class(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=self.collator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def _ready(self, value: _T | None, stage: str) -> _T:
        if value is None:
            raise RuntimeError(f"{type(self).__name__}: call `setup({stage!r})` before asking for its dataloaders")
        return value
