"""UD POS and PAN-X NER on the real shared data folder (LIGHTNING_COMPRESS_DATA); skipped when it is unset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lightning_compress.data import CrossLingualDataModule
from lightning_compress.data.token_readers import PANX_TAGS, UPOS_TAGS

pytestmark = pytest.mark.needs_data

UD_DEV = ("en", "de", "es", "fr", "zh", "tr", "vi", "bg", "el", "it", "nl", "pt", "pl", "ur")


def test_udpos_train_and_dev_sizes(data_root: Path) -> None:
    dm = CrossLingualDataModule("udpos", data_dir=str(data_root))
    assert dm.task_spec.eval_names == UD_DEV
    train = dm.train_examples()
    assert len(train) == 21253 and train.words[0][:3] == ["Al", "-", "Zaman"]
    assert [UPOS_TAGS[t] for t in train.tags[0][:3]] == ["PROPN", "PUNCT", "PROPN"]
    sets = dict(zip(UD_DEV, dm.eval_examples("validation"), strict=True))
    assert {lang: len(e) for lang, e in sets.items()} == {
        "en": 2001, "de": 799, "es": 1400, "fr": 1476, "zh": 500, "tr": 1100, "vi": 1123,
        "bg": 1115, "el": 403, "it": 564, "nl": 718, "pt": 1172, "pl": 2215, "ur": 552,
    }  # fmt: skip
    # syntactic words only: the German dev file has 12,480 integer-ID lines (multiword tokens like "im" skipped)
    assert sum(map(len, sets["de"].words)) == 12480 and sum(map(len, sets["en"].words)) == 25147
    assert all(t in range(17) for e in sets.values() for s in e.tags for t in s)


def test_udpos_thai_is_test_only(data_root: Path) -> None:
    dm = CrossLingualDataModule("udpos", data_dir=str(data_root), languages=["th"], eval_split="test")
    (th,) = dm.eval_examples("test")
    assert len(th) == 1000 and sum(map(len, th.words)) == 22330
    with pytest.raises(FileNotFoundError, match=r"for language 'th' \(found: \['LICENSE\.txt', 'th_pud-ud-test"):
        CrossLingualDataModule("udpos", data_dir=str(data_root), languages=["th"]).eval_examples("validation")


def test_panx_sizes_and_conll2003_transfer(data_root: Path) -> None:
    dm = CrossLingualDataModule("panx", data_dir=str(data_root))
    train = dm.train_examples()
    assert len(train) == 20000 and train.words[0][:2] == ["R.H.", "Saunders"]
    sizes = {lang: len(e) for lang, e in zip(dm.task_spec.eval_names, dm.eval_examples("validation"), strict=True)}
    assert sizes == {lang: (1000 if lang in ("hi", "ur") else 10000) for lang in dm.task_spec.eval_names}
    conll = CrossLingualDataModule("panx", data_dir=str(data_root), train_source="conll2003").train_examples()
    assert len(conll) == 14073 and sum(map(len, conll.words)) == 203832  # the README's counts for eng.train
    assert [PANX_TAGS[t] for t in conll.tags[0][:3]] == ["B-ORG", "O", "O"]  # EU rejects German(MISC -> O)


def test_panx_xglue_languages_end_to_end_subset(data_root: Path, cache_dir: str) -> None:
    dm = CrossLingualDataModule(
        "panx",
        data_dir=str(data_root),
        languages=["en", "de", "es", "nl"],
        max_train_samples=64,
        max_eval_samples=16,
        batch_size=8,
        cache_dir=cache_dir,
    )
    dm.setup("fit")
    assert len(dm.train_dataset) == 64 and [len(d) for d in dm.val_datasets] == [16] * 4
    batch = next(iter(dm.val_dataloader()[1]))
    labels = batch["labels"]
    assert labels.dtype == torch.long and labels[:, 0].eq(-100).all()  # [CLS] is never scored
    scored = labels[labels != -100]
    assert scored.min() >= 0 and scored.max() < len(PANX_TAGS)
