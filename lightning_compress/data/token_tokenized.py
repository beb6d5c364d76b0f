"""Tokenize word-tagged sentences with labels on the first sub-token of each word, and serve them as a dataset.

Word ``w`` split into sub-tokens ``t_1 .. t_k`` gets its tag id on ``t_1`` and ``-100`` on ``t_2 .. t_k``; special
tokens and ``text_prefix`` words get ``-100`` too. The metrics skip ``-100``, so they score each word once (word-level
accuracy and span F1, as in XTREME and XGLUE). Words cut by ``max_seq_length`` are not scored; their number is
returned as ``truncated_words`` so the DataModule can report it.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerBase

from lightning_compress.data.examples import fingerprint
from lightning_compress.data.token_readers import TokenExamples
from lightning_compress.data.tokenized import TOKEN_FIELDS

#: Bump when the stored layout or the tokenization call changes, so that old cache files are not reused.
TAGGED_CACHE_VERSION = 1
#: Label of sub-tokens that are not scored (Hugging Face convention).
IGNORE_LABEL = -100


def tagged_cache_key(examples: TokenExamples, tokenizer_key: str, max_seq_length: int, text_prefix: str) -> str:
    """Everything that determines the tokenized tensors of a word-tagged split: the content read
    (``examples.fingerprint``), the tokenizer's content
    (:func:`~lightning_compress.data.tokenized.tokenizer_fingerprint`, not its name, so a tokenizer replaced in the
    same folder re-tokenizes) and the options."""
    return fingerprint("tagged", TAGGED_CACHE_VERSION, examples.fingerprint, tokenizer_key, max_seq_length, text_prefix)


def first_subtoken_labels(word_ids: list[int | None], tags: list[int], skip_words: int = 0) -> list[int]:
    """Per-token labels: the word's tag on its first sub-token, ``-100`` elsewhere.

    Args:
        word_ids: Word index of every token (``None`` for special tokens), as ``BatchEncoding.word_ids`` gives.
        tags: Tag id of every word after the first ``skip_words`` (the prefix words, which are not scored).
        skip_words: Number of leading prefix words.

    Returns:
        A list as long as ``word_ids``.

    Example:
        >>> first_subtoken_labels([None, 0, 1, 1, None], [5], skip_words=1)
        [-100, -100, 5, -100, -100]
    """
    labels: list[int] = []
    previous: int | None = None
    for word in word_ids:
        if word is None or word == previous or word < skip_words:
            labels.append(IGNORE_LABEL)
        else:
            labels.append(tags[word - skip_words])
        previous = word
    return labels


def tokenize_tagged(
    tokenizer: PreTrainedTokenizerBase,
    examples: TokenExamples,
    max_seq_length: int,
    text_prefix: str = "",
    chunk_size: int = 2048,
) -> dict[str, torch.Tensor]:
    """Tokenize pre-split sentences (``is_split_into_words=True``) and align tags to first sub-tokens.

    ``text_prefix`` (e.g. ``"query: "`` for multilingual-e5) is split on whitespace and put before the words, with
    label ``-100``.

    Returns:
        ``{"input_ids", ["token_type_ids"], "labels"}`` flattened end to end (``int32``, ``int32``, ``int64``),
        ``"lengths"`` (``int64``, tokens per sentence) and ``"truncated_words"`` (0-dim ``int64``).
    """
    if not tokenizer.is_fast:
        raise ValueError("tokenize_tagged needs a fast tokenizer (word_ids); got a slow one")
    prefix = text_prefix.split()
    columns: dict[str, list[list[int]]] = {}
    labels: list[list[int]] = []
    truncated = 0
    for start in range(0, len(examples), chunk_size):
        words = examples.words[start : start + chunk_size]
        tags = examples.tags[start : start + chunk_size]
        encoded = tokenizer(
            [prefix + w for w in words],
            is_split_into_words=True,
            truncation=True,
            max_length=max_seq_length,
            return_attention_mask=False,
        )
        for field in TOKEN_FIELDS:
            if field in encoded:
                columns.setdefault(field, []).extend(encoded[field])
        for row, row_tags in enumerate(tags):
            row_labels = first_subtoken_labels(encoded.word_ids(row), row_tags, skip_words=len(prefix))
            truncated += len(row_tags) - sum(label != IGNORE_LABEL for label in row_labels)
            labels.append(row_labels)
    out = {
        field: torch.tensor(list(itertools.chain.from_iterable(rows)), dtype=torch.int32)
        for field, rows in columns.items()
    }
    out["labels"] = torch.tensor(list(itertools.chain.from_iterable(labels)), dtype=torch.int64)
    out["lengths"] = torch.tensor([len(row) for row in labels], dtype=torch.int64)
    out["truncated_words"] = torch.tensor(truncated, dtype=torch.int64)
    return out


class TaggedTokenDataset(Dataset):
    """Map-style dataset over tokenized, word-tagged sentences.

    Item ``i`` is ``{"input_ids", ["token_type_ids"], "attention_mask", "labels"}`` (lists of ints of one length,
    unpadded) plus ``"idx"`` = ``i``, the sentence's position in its split. Pad batches with
    ``transformers.DataCollatorForTokenClassification`` (labels padded with ``-100``).
    """

    def __init__(self, data: dict[str, torch.Tensor]) -> None:
        self.fields = {field: data[field] for field in TOKEN_FIELDS if field in data}
        self.labels = data["labels"]
        self.lengths = data["lengths"]
        self.truncated_words = int(data.get("truncated_words", torch.tensor(0)))
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.int64), self.lengths.cumsum(0)]).tolist()

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} sentences")
        start, end = self.offsets[index], self.offsets[index + 1]
        item: dict[str, Any] = {field: flat[start:end].tolist() for field, flat in self.fields.items()}
        item["attention_mask"] = [1] * (end - start)
        item["labels"] = self.labels[start:end].tolist()
        item["idx"] = index
        return item
