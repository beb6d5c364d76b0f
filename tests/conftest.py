"""Fixtures shared by the test modules."""

import pytest

from tests.tiny import save_tiny_minilm


@pytest.fixture(scope="session")
def tiny_minilm(tmp_path_factory) -> str:
    """A 2-layer, 32-wide BERT with the real MiniLM tokenizer files, saved as a local model folder."""
    return save_tiny_minilm(tmp_path_factory.mktemp("tiny_minilm"))
