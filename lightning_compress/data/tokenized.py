"""Tokenize :class:`Examples` once, cache the result on disk, and serve it as a map-style dataset.

A tokenized split is stored as flat ``int32`` tensors (all token ids end to end) plus one length per example: compact on
disk, fast to ``torch.load`` and cheap to slice. No padding is stored; batches are padded dynamically by
``transformers.DataCollatorWithPadding``, so ``attention_mask`` before padding is all ones and is rebuilt on the fly.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from lightning_compress.data.examples import Examples, fingerprint
from lightning_compress.hub import resolve_pretrained

#: Bump when the stored layout or the tokenization call changes, so that old cache files are not reused.
CACHE_VERSION = 2
#: Token fields kept from the tokenizer output (``attention_mask`` is rebuilt, see module docstring).
TOKEN_FIELDS = ("input_ids", "token_type_ids")


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """Load a fast tokenizer for a hub id or local folder (resolved offline by :func:`resolve_pretrained`)."""
    tokenizer = AutoTokenizer.from_pretrained(resolve_pretrained(name_or_path))
    if not tokenizer.is_fast:
        raise ValueError(f"Tokenizer {name_or_path!r} has no fast (Rust) implementation; expected a fast tokenizer")
    return tokenizer


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """sha256 of what maps text to ids: the fast tokenizer's whole pipeline as JSON (vocabulary, normalizer,
    pre-tokenizer, post-processor, added tokens) and its special tokens. A tokenizer replaced in the same folder gets
    another fingerprint, so the tokenization cache never serves ids of the old one."""
    pipeline = json.loads(tokenizer.backend_tokenizer.to_str())
    for state in ("truncation", "padding"):  # set by each call (max_length=...), not part of the tokenizer's content
        pipeline.pop(state, None)
    return fingerprint(
        type(tokenizer).__name__, json.dumps(pipeline, sort_keys=True), sorted(tokenizer.special_tokens_map.items())
    )


def cache_key(examples: Examples, tokenizer_key: str, max_seq_length: int, text_prefix: str, regression: bool) -> str:
    """Everything that determines the tokenized tensors: the content read (``examples.fingerprint``, from the bytes of
    the data files), the tokenizer's content (:func:`tokenizer_fingerprint`) and the options."""
    return fingerprint(CACHE_VERSION, examples.fingerprint, tokenizer_key, max_seq_length, text_prefix, regression)


def tokenize_examples(
    tokenizer: PreTrainedTokenizerBase,
    examples: Examples,
    max_seq_length: int,
    text_prefix: str = "",
    regression: bool = False,
    chunk_size: int = 4096,
) -> dict[str, torch.Tensor]:
    """Tokenize (and truncate to ``max_seq_length``) every example; ``text_prefix`` is put before the first text.

    Returns ``{"input_ids", ["token_type_ids"], "lengths", "labels"}`` with the token fields flattened.
    """
    columns: dict[str, list[list[int]]] = {}
    for start in range(0, len(examples), chunk_size):
        texts = [text_prefix + t for t in examples.texts[start : start + chunk_size]]
        pairs = None if examples.pairs is None else examples.pairs[start : start + chunk_size]
        encoded = tokenizer(texts, pairs, truncation=True, max_length=max_seq_length, return_attention_mask=False)
        for field in TOKEN_FIELDS:
            if field in encoded:
                columns.setdefault(field, []).extend(encoded[field])
    ids = columns.get("input_ids", [])
    out = {
        field: torch.tensor(list(itertools.chain.from_iterable(rows)), dtype=torch.int32)
        for field, rows in columns.items()
    }
    out["lengths"] = torch.tensor([len(row) for row in ids], dtype=torch.int64)
    out["labels"] = torch.tensor(examples.labels, dtype=torch.float32 if regression else torch.int64)
    return out


def save_tokenized(path: Path, data: dict[str, torch.Tensor]) -> None:
    """Write ``data`` atomically (temporary file + rename), so a crash or a concurrent rank never leaves half a file.

    A cache folder that cannot be created or written to (read-only, or a path through a regular file) raises the
    same ``OSError`` subclass with a message naming the folder and the ``cache_dir`` argument to change.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    except OSError as error:
        reason = error.strerror or type(error).__name__
        blocker = f" ('{error.filename}')" if error.filename and str(error.filename) != str(path.parent) else ""
        raise type(error)(
            f"Cannot write the tokenization cache into the folder '{path.parent}': {reason}{blocker}. HINT: pass a "
            "writable folder as the data module's `cache_dir` argument (`data.init_args.cache_dir` in a config), "
            "or make this one writable."
        ) from error
    os.close(handle)
    try:
        torch.save(data, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_tokenized(path: Path) -> dict[str, torch.Tensor] | None:
    """Read a cache file written by :func:`save_tokenized`; ``None`` if it is missing or unreadable."""
    if not path.is_file():
        return None
    try:
        data = torch.load(path, weights_only=True)
    except Exception:  # noqa: BLE001 - a truncated or foreign file just means "re-tokenize"
        return None
    return data if isinstance(data, dict) and {"input_ids", "lengths", "labels"} <= set(data) else None


class TokenizedDataset(Dataset):
    """Map-style dataset over tokenized examples.

    Item ``i`` is ``{"input_ids", ["token_type_ids"], "attention_mask"}`` (lists of ints, unpadded) plus
    ``"labels"`` (``int`` or ``float``) and ``"idx"`` = ``i``, the example's position in this split, which survives
    collation so callbacks can cache per-example values.
    """

    def __init__(self, data: dict[str, torch.Tensor]) -> None:
        self.fields = {field: data[field] for field in TOKEN_FIELDS if field in data}
        self.labels = data["labels"]
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.int64), data["lengths"].cumsum(0)]).tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} examples")
        start, end = self.offsets[index], self.offsets[index + 1]
        item: dict[str, Any] = {field: flat[start:end].tolist() for field, flat in self.fields.items()}
        item["attention_mask"] = [1] * (end - start)
        item["labels"] = self.labels[index].item()
        item["idx"] = index
        return item
