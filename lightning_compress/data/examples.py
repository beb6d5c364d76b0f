"""Parsed, not yet tokenized examples, and the fingerprints that key the tokenization cache.

Every reader returns an :class:`Examples`: parallel lists of texts, optional second texts and labels, plus a
``fingerprint`` that changes whenever the bytes read or the way they were parsed change. The tokenization cache is
keyed by that fingerprint, so the cache never needs to re-read a path to know whether it is stale.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


def fingerprint(*parts: object) -> str:
    """sha256 hex digest of the ``repr`` of ``parts`` (stable for str/int/float/tuple/None)."""
    return hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 hex digest of the bytes of ``path``."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Examples:
    """One split of a text (pair) classification or regression data set, before tokenization.

    Args:
        texts: First text of every example.
        pairs: Second text of every example (sentence pairs), or ``None`` for single texts.
        labels: Class ids (``int``) or regression targets (``float``), one per example.
        fingerprint: Identifies the content read and how it was parsed (see :func:`fingerprint`).
    """

    texts: list[str]
    pairs: list[str] | None
    labels: list[int] | list[float]
    fingerprint: str

    def __post_init__(self) -> None:
        sizes = {len(self.texts), len(self.labels)} | ({len(self.pairs)} if self.pairs is not None else set())
        if len(sizes) != 1:
            raise ValueError(f"Examples: texts, pairs and labels differ in length ({sorted(sizes)})")

    def __len__(self) -> int:
        return len(self.texts)

    def select(self, indices: Sequence[int]) -> Examples:
        """Examples at ``indices`` (in that order); the fingerprint records the selection."""
        keep = list(indices)
        return Examples(
            texts=[self.texts[i] for i in keep],
            pairs=None if self.pairs is None else [self.pairs[i] for i in keep],
            labels=[self.labels[i] for i in keep],
            fingerprint=fingerprint(self.fingerprint, "select", hashlib.sha256(repr(keep).encode()).hexdigest()),
        )


def first_n(examples: Examples, limit: int | None) -> Examples:
    """The first ``limit`` examples (all when ``limit`` is ``None`` or not smaller than the split).

    Used for evaluation sets: deterministic and independent of any seed, so scores stay comparable between runs.
    """
    if limit is None or limit >= len(examples):
        return examples
    return examples.select(range(limit))


def seeded_subset(examples: Examples, limit: int | None, seed: int) -> Examples:
    """A uniform random subset of ``limit`` examples drawn with ``seed``, kept in file order.

    Used for training sets, which are often sorted (by label, source or premise): the first N rows could hold a
    single class, while a uniform sample keeps the class balance in expectation.
    """
    if limit is None or limit >= len(examples):
        return examples
    chosen = sorted(random.Random(seed).sample(range(len(examples)), limit))
    return examples.select(chosen)
