"""CrossLingualDataModule on tiny XNLI / PAWS-X layouts and on a fake hub."""

from __future__ import annotations

import gzip
from pathlib import Path

import datasets
import pytest

from lightning_compress.data import CrossLingualDataModule
from lightning_compress.tasks import TaskSpec
from tests.data.fixtures import write_pawsx, write_xnli
from tests.data.test_glue import FakeHub

XNLI_ALL = ("en", "ar", "bg", "de", "el", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")


def test_default_task_specs() -> None:
    assert CrossLingualDataModule("xnli").task_spec == TaskSpec(
        "xnli",
        3,
        "classification",
        ("accuracy",),
        eval_names=XNLI_ALL,
        label_names=("entailment", "neutral", "contradiction"),
    )
    spec = CrossLingualDataModule("PAWS-X").task_spec
    assert spec.eval_names == ("en", "de", "es", "fr", "ja", "ko", "zh") and spec.num_labels == 2
    assert spec.main_metric == "val/avg/accuracy"


def test_xnli_local_trains_on_snli_and_evaluates_every_language(tmp_path: Path, cache_dir: str) -> None:
    write_xnli(tmp_path, ("en", "de", "fr"))
    dm = CrossLingualDataModule(
        "xnli", data_dir=str(tmp_path), languages=["fr", "en", "de"], batch_size=4, cache_dir=cache_dir
    )
    assert dm.task_spec.eval_names == ("en", "fr", "de")  # English first, then as given
    dm.setup("fit")
    assert len(dm.train_dataset) == 10  # 12 SNLI rows minus two "-"
    assert dm.train_dataset.labels.tolist()[:3] == [0, 1, 2]
    loaders = dm.val_dataloader()
    assert len(loaders) == 3
    fr = dm.val_datasets[1]
    assert dm.hf_tokenizer.decode(fr[0]["input_ids"]).startswith("[CLS] fr premise 0")
    batch = next(iter(loaders[2]))
    assert batch["idx"].tolist() == [0, 1, 2, 3, 4, 5] and batch["labels"].tolist() == [0, 1, 2, 0, 1, 2]


def test_xnli_local_test_split_uses_the_label_file(tmp_path: Path, cache_dir: str) -> None:
    write_xnli(tmp_path, ("en", "de"))
    dm = CrossLingualDataModule(
        "xnli", data_dir=str(tmp_path), languages=["de", "en"], eval_split="test", cache_dir=cache_dir
    )
    dm.setup("test")
    assert [len(d) for d in dm.test_datasets] == [9, 9]
    assert dm.test_datasets[1].labels.tolist()[:3] == [1, 2, 0]


def test_xnli_train_on_english_dev_leaves_english_out(tmp_path: Path, cache_dir: str) -> None:
    write_xnli(tmp_path, XNLI_ALL, n_dev=3, n_test=3)
    dm = CrossLingualDataModule(
        "xnli", data_dir=str(tmp_path), train_source="dev_en", cache_dir=cache_dir, text_prefix="query: "
    )
    assert dm.task_spec.eval_names == XNLI_ALL[1:]
    dm.setup("fit")
    assert len(dm.train_dataset) == 3 and len(dm.val_datasets) == 14
    assert dm.hf_tokenizer.decode(dm.train_dataset[0]["input_ids"]).startswith("[CLS] query : en premise 0")
    test = CrossLingualDataModule("xnli", data_dir=str(tmp_path), train_source="dev_en", eval_split="test")
    assert test.task_spec.eval_names == XNLI_ALL  # English test is not training data


def test_english_dev_eval_with_english_dev_training_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError,
        match=r"`CrossLingualDataModule\(languages=\['de', 'en'\]\)` is invalid: "
        r"expected no 'en' with train_source='dev_en' and eval_split='dev'",
    ):
        CrossLingualDataModule("pawsx", data_dir=str(tmp_path), languages=["de", "en"])


def test_pawsx_local(tmp_path: Path, cache_dir: str) -> None:
    write_pawsx(tmp_path, ("en", "de", "zh", "fr"))
    dm = CrossLingualDataModule("pawsx", data_dir=str(tmp_path), languages=["de", "zh", "fr"], cache_dir=cache_dir)
    assert dm.train_source == "dev_en" and dm.task_spec.eval_names == ("de", "zh", "fr")
    dm.setup("fit")
    assert dm.train_dataset.labels.tolist() == [0, 1, 0, 1, 0, 1]
    test = CrossLingualDataModule("pawsx", data_dir=str(tmp_path), eval_split="test", cache_dir=cache_dir)
    assert test.task_spec.eval_names == ("de", "zh")  # the only labelled local test sets
    test.setup("test")
    assert test.test_datasets[0].labels.tolist() == [1, 0, 1, 0, 1, 0]


def test_pawsx_test_for_a_language_without_labels(tmp_path: Path) -> None:
    write_pawsx(tmp_path, ("en", "fr"))
    dm = CrossLingualDataModule("pawsx", data_dir=str(tmp_path), languages=["fr"], eval_split="test")
    with pytest.raises(
        FileNotFoundError,
        match=r"No file at '.*pawsx/labeled_test/test-fr\.tsv'; expected the "
        r"pawsx layout .*unlabelled",
    ):
        dm.setup("test")


def test_missing_snli_file_names_path_and_layout(tmp_path: Path) -> None:
    dm = CrossLingualDataModule("xnli", data_dir=str(tmp_path), languages=["de"])
    with pytest.raises(
        FileNotFoundError,
        match=r"No file at '.*snli/snli_1\.0_train_subset\.jsonl\.gz'; expected "
        r"the xnli layout <data_dir>/snli/",
    ):
        dm.setup("fit")


def test_bad_label_in_a_language_file(tmp_path: Path) -> None:
    write_xnli(tmp_path, ("en", "de"))
    path = tmp_path / "xnli" / "dev-de.tsv"
    path.write_text(path.read_text() + "a\tb\tcontradictory\n")
    dm = CrossLingualDataModule("xnli", data_dir=str(tmp_path), languages=["de"])
    with pytest.raises(ValueError, match=r"dev-de\.tsv', line 7: label 'contradictory' is not one of"):
        dm.eval_examples("validation")


def test_empty_language_dev_file_names_the_file_and_layout(tmp_path: Path) -> None:
    write_xnli(tmp_path, ("en", "de"))
    (tmp_path / "xnli" / "dev-de.tsv").write_text("")
    dm = CrossLingualDataModule("xnli", data_dir=str(tmp_path), languages=["de"])
    with pytest.raises(ValueError, match=r"xnli/dev-de\.tsv' is empty \(no data rows\); expected the xnli layout"):
        dm.eval_examples("validation")


def test_snli_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    write_xnli(tmp_path, ("en", "de"))
    snli = tmp_path / "snli" / "snli_1.0_train_subset.jsonl.gz"
    with gzip.open(snli, "ab") as handle:
        handle.write(b'{"gold_label": "neutral", "sentence1": "caf\xe9", "sentence2": "h"}\n')
    with pytest.raises(ValueError, match=r"snli_1\.0_train_subset\.jsonl\.gz', line 13: byte e9 .* is not UTF-8"):
        CrossLingualDataModule("xnli", data_dir=str(tmp_path), languages=["de"]).train_examples()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"task": "mlqa"},
            ValueError,
            r"`CrossLingualDataModule\(task='mlqa'\)` is invalid: expected one of "
            r"\['xnli', 'pawsx', 'udpos', 'panx', 'nc', 'qam', 'qadsm', 'wpr'\]",
        ),
        ({"languages": ["de", "xx"]}, ValueError, r"languages=\['de', 'xx'\]\)` is invalid: expected distinct codes"),
        ({"languages": ["de", "de"]}, ValueError, r"expected distinct codes"),
        ({"languages": []}, ValueError, r"languages=\[\]"),
        ({"languages": "de"}, TypeError, r"languages='de'"),
        ({"eval_split": "train"}, ValueError, r"eval_split='train'\)` is invalid: expected one of \['dev', 'test'\]"),
        (
            {"train_source": "mnli", "data_dir": "/x"},
            ValueError,
            r"train_source='mnli'\)` is invalid: expected one of \['snli', 'dev_en'\] for xnli from local data",
        ),
        ({"train_source": "snli"}, ValueError, r"expected one of \['mnli', 'dev_en'\] for xnli from hub data"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        CrossLingualDataModule(**kwargs)


def test_hub_xnli_trains_on_mnli_and_evaluates_on_facebook_xnli(
    monkeypatch: pytest.MonkeyPatch, cache_dir: str
) -> None:
    nli = {"premise": ["p1", "p2"], "hypothesis": ["h1", "h2"], "label": [2, 0]}
    tables = {("nyu-mll/glue", "mnli"): {"train": nli}}
    tables.update({("facebook/xnli", lang): {"validation": nli, "test": nli} for lang in ("en", "sw")})
    hub = FakeHub(tables)
    monkeypatch.setattr(datasets, "load_dataset", hub)
    dm = CrossLingualDataModule("xnli", languages=["sw", "en"], cache_dir=cache_dir)
    dm.setup("fit")
    assert hub.calls == [("nyu-mll/glue", "mnli"), ("facebook/xnli", "en"), ("facebook/xnli", "sw")]
    assert [len(d) for d in dm.val_datasets] == [2, 2]


def test_hub_pawsx(monkeypatch: pytest.MonkeyPatch, cache_dir: str) -> None:
    pairs = {"id": [1, 2], "sentence1": ["a", "b"], "sentence2": ["c", "d"], "label": [1, 0]}
    hub = FakeHub(
        {
            ("google-research-datasets/paws-x", lang): {"train": pairs, "validation": pairs, "test": pairs}
            for lang in ("en", "ja")
        }
    )
    monkeypatch.setattr(datasets, "load_dataset", hub)
    dm = CrossLingualDataModule("pawsx", languages=["ja", "en"], eval_split="test", cache_dir=cache_dir)
    assert dm.train_source == "train"
    dm.setup("fit")
    assert hub.calls[0] == ("google-research-datasets/paws-x", "en") and len(dm.val_datasets) == 2
