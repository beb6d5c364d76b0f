"""Fixtures for the data tests: the real data root (or a skip), one shared tokenizer, a per-test cache folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lightning_compress.data import base
from lightning_compress.data.tokenized import load_tokenizer
from lightning_compress.hub import DEFAULT_PRETRAINED


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared evaluation data folder named by LIGHTNING_COMPRESS_DATA; tests using it skip when it is unset."""
    root = os.environ.get("LIGHTNING_COMPRESS_DATA")
    if not root:
        pytest.skip("LIGHTNING_COMPRESS_DATA is not set")
    return Path(root)


@pytest.fixture(scope="session")
def session_tokenizer():
    """The default (packaged, offline) MiniLM tokenizer, loaded once through the real loading path."""
    return load_tokenizer(DEFAULT_PRETRAINED)


@pytest.fixture(autouse=True)
def shared_tokenizer(monkeypatch: pytest.MonkeyPatch, session_tokenizer) -> None:
    """DataModules reuse the session tokenizer instead of loading their own (saves ~1 s per DataModule)."""
    monkeypatch.setattr(base, "load_tokenizer", lambda name: session_tokenizer)


@pytest.fixture
def cache_dir(tmp_path: Path) -> str:
    """A fresh tokenization cache folder, so tests never read or write ~/.cache."""
    return str(tmp_path / "cache")
