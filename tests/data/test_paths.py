"""One data root: ``${LIGHTNING_COMPRESS_DATA}`` in ``data_dir``, and local model copies under a models root."""

from pathlib import Path

import pytest

from lightning_compress.data import GlueDataModule
from lightning_compress.data.paths import resolve_data_dir
from lightning_compress.hub import resolve_pretrained

ROOT = Path(__file__).resolve().parents[2]


def test_data_dir_expands_the_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("LIGHTNING_COMPRESS_DATA", str(tmp_path))
    assert resolve_data_dir("${LIGHTNING_COMPRESS_DATA}/glue", "X") == tmp_path / "glue"
    assert resolve_data_dir("$LIGHTNING_COMPRESS_DATA", "X") == tmp_path
    assert resolve_data_dir("/abs/glue", "X") == Path("/abs/glue")
    assert resolve_data_dir(None, "X") is None
    assert GlueDataModule(task="sst2", data_dir="${LIGHTNING_COMPRESS_DATA}/glue").data_dir == tmp_path / "glue"


def test_an_unset_data_root_is_named_with_the_fix(monkeypatch):
    monkeypatch.delenv("LIGHTNING_COMPRESS_DATA", raising=False)
    with pytest.raises(ValueError, match=r"GlueDataModule\(data_dir=.*LIGHTNING_COMPRESS_DATA is not set.*export"):
        GlueDataModule(task="sst2", data_dir="${LIGHTNING_COMPRESS_DATA}/glue")


def test_no_config_reaches_outside_the_repository():
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in (ROOT / "configs").rglob("*.yaml")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "../" in line
    ]
    assert offenders == []


def test_models_root_serves_local_copies_of_hub_ids(monkeypatch, tmp_path, tiny_minilm):
    monkeypatch.setenv("LIGHTNING_COMPRESS_MODELS", str(tmp_path))
    (tmp_path / "intfloat").mkdir()
    (tmp_path / "intfloat" / "multilingual-e5-small").symlink_to(tiny_minilm)
    assert resolve_pretrained("intfloat/multilingual-e5-small") == str(tmp_path / "intfloat/multilingual-e5-small")
    (tmp_path / "minilm-l3").symlink_to(tiny_minilm)
    assert resolve_pretrained("sentence-transformers/paraphrase-MiniLM-L3-v2") == str(tmp_path / "minilm-l3")
    assert resolve_pretrained("org/unknown-model") == "org/unknown-model"
