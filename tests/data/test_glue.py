"""GlueDataModule on tiny files in the GLUE release format, on a fake hub, and its error messages."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest
import torch

from lightning_compress.data import GLUE_TASKS, GlueDataModule
from lightning_compress.tasks import TaskSpec
from tests.data.fixtures import GLUE_FOLDERS, glue_label_values, write_glue_task, write_tsv

FOLDER_TO_TASK = {
    "CoLA": "cola",
    "SST-2": "sst2",
    "MRPC": "mrpc",
    "QQP": "qqp",
    "STS-B": "stsb",
    "MNLI": "mnli",
    "QNLI": "qnli",
    "RTE": "rte",
    "WNLI": "wnli",
}


class FakeHub:
    """Stands in for ``datasets.load_dataset``: records calls, returns in-memory DatasetDicts."""

    def __init__(self, tables: dict[tuple[str, str | None], dict[str, dict[str, list]]]) -> None:
        self.tables = tables
        self.calls: list[tuple[str, str | None]] = []

    def __call__(self, path: str, name: str | None = None) -> datasets.DatasetDict:
        self.calls.append((path, name))
        return datasets.DatasetDict({s: datasets.Dataset.from_dict(c) for s, c in self.tables[(path, name)].items()})


def test_task_specs() -> None:
    assert list(GLUE_TASKS) == ["cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli"]
    assert GlueDataModule("cola").task_spec == TaskSpec(
        "cola", 2, "classification", ("matthews",), label_names=("unacceptable", "acceptable")
    )
    assert GlueDataModule("STS-B").task_spec == TaskSpec("stsb", 1, "regression", ("pearson", "spearman"))
    for task in ("mrpc", "qqp"):
        assert GlueDataModule(task).task_spec.metrics == ("f1", "accuracy")
    for task in ("sst2", "qnli", "rte", "wnli", "mnli"):
        spec = GlueDataModule(task).task_spec
        assert spec.metrics == ("accuracy",) and spec.kind == "classification" and spec.eval_names == ("",)
    assert GlueDataModule("mnli").task_spec.label_names == ("entailment", "neutral", "contradiction")
    assert GlueDataModule("wnli").task_spec.label_names == ("not_entailment", "entailment")


@pytest.mark.parametrize("spelling", ["SST-2", "sst2", "Sst_2", "sst-2"])
def test_task_spellings(spelling: str) -> None:
    assert GlueDataModule(spelling).task_spec.name == "sst2"


def test_unknown_task_lists_the_valid_ones() -> None:
    with pytest.raises(
        ValueError,
        match=r"`GlueDataModule\(task='foo'\)` is invalid: expected one of \['cola', "
        r"'sst2', 'mrpc', 'qqp', 'stsb', 'mnli', 'qnli', 'rte', 'wnli'\]",
    ):
        GlueDataModule("foo")
    with pytest.raises(TypeError, match=r"task=2"):
        GlueDataModule(2)


@pytest.mark.parametrize("folder", GLUE_FOLDERS)
def test_every_task_reads_its_release_format(folder: str, tmp_path: Path, cache_dir: str) -> None:
    write_glue_task(tmp_path, folder, n_train=12, n_dev=6)
    dm = GlueDataModule(folder, data_dir=str(tmp_path), batch_size=5, cache_dir=cache_dir)
    train = dm.train_examples()
    (dev,) = dm.eval_examples("validation")
    assert len(train) == 12 and len(dev) == 6
    values = glue_label_values(folder)
    if dm.task_spec.kind == "regression":
        assert train.labels[:3] == [float(v) for v in values]
    else:
        assert train.labels[: len(values)] == list(range(len(values)))
    assert (train.pairs is None) == (folder in ("CoLA", "SST-2"))
    assert '"' in train.texts[0] or folder not in ("CoLA", "SST-2", "MRPC")  # QUOTE_NONE keeps stray quotes
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    expected = torch.float32 if folder == "STS-B" else torch.long
    assert batch["labels"].dtype == expected and batch["idx"].dtype == torch.long


def test_glue_subfolder_layout_is_accepted(tmp_path: Path, cache_dir: str) -> None:
    write_glue_task(tmp_path / "glue", "RTE")
    assert len(GlueDataModule("rte", data_dir=str(tmp_path), cache_dir=cache_dir).train_examples()) == 12


def test_missing_task_folder_names_both_places_and_layout(tmp_path: Path) -> None:
    dm = GlueDataModule("mrpc", data_dir=str(tmp_path))
    with pytest.raises(
        FileNotFoundError,
        match=r"No MRPC folder for GLUE task 'mrpc': looked at '.*MRPC' and "
        r"'.*glue/MRPC'; expected the GLUE layout <data_dir>/MRPC/train\.tsv",
    ):
        dm.setup("fit")


def test_missing_dev_file_names_the_path(tmp_path: Path) -> None:
    write_glue_task(tmp_path, "MNLI")
    (tmp_path / "MNLI" / "dev_matched.tsv").unlink()
    with pytest.raises(FileNotFoundError, match=r"No file at '.*MNLI/dev_matched\.tsv'; expected the GLUE layout"):
        GlueDataModule("mnli", data_dir=str(tmp_path)).eval_examples("validation")


def test_empty_or_header_only_dev_file_names_the_file_and_layout(tmp_path: Path) -> None:
    write_glue_task(tmp_path, "MNLI")
    dev = tmp_path / "MNLI" / "dev_matched.tsv"
    dev.write_text(dev.read_text().splitlines(keepends=True)[0])  # the header line only
    dm = GlueDataModule("mnli", data_dir=str(tmp_path))
    with pytest.raises(
        ValueError, match=r"MNLI/dev_matched\.tsv' has a header line \[.*\] but no data rows; expected the GLUE layout"
    ):
        dm.eval_examples("validation")
    dev.write_text("")
    with pytest.raises(ValueError, match=r"MNLI/dev_matched\.tsv' is empty \(no data rows\); expected the GLUE layout"):
        dm.eval_examples("validation")


def test_non_utf8_train_file_names_the_line(tmp_path: Path) -> None:
    write_glue_task(tmp_path, "SST-2")
    train = tmp_path / "SST-2" / "train.tsv"
    train.write_bytes(train.read_bytes() + "na\u00efve\t1\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"SST-2/train\.tsv', line 14: byte ef at offset \d+ is not UTF-8"):
        GlueDataModule("sst2", data_dir=str(tmp_path)).train_examples()


def test_wrong_columns_are_named(tmp_path: Path) -> None:
    write_tsv(tmp_path / "SST-2" / "train.tsv", [["good", "1"]], header=["text", "label"])
    with pytest.raises(
        ValueError,
        match=r"lacks columns \['sentence'\]: expected columns \['sentence', 'label'\], "
        r"found \['text', 'label'\]",
    ):
        GlueDataModule("sst2", data_dir=str(tmp_path)).train_examples()


def test_label_outside_the_label_set(tmp_path: Path) -> None:
    write_tsv(
        tmp_path / "RTE" / "train.tsv",
        [["0", "a", "b", "entailment"], ["1", "a", "b", "contradiction"]],
        header=["index", "sentence1", "sentence2", "label"],
    )
    with pytest.raises(
        ValueError,
        match=r"RTE/train\.tsv', line 3: label 'contradiction' is not one of "
        r"\['entailment', 'not_entailment'\]",
    ):
        GlueDataModule("rte", data_dir=str(tmp_path)).train_examples()


def test_hub_path_loads_nyu_glue(monkeypatch: pytest.MonkeyPatch, cache_dir: str) -> None:
    columns = {"premise": ["p1", "p2", "p3"], "hypothesis": ["h1", "h2", "h3"], "label": [0, 2, 1], "idx": [0, 1, 2]}
    hub = FakeHub(
        {
            ("nyu-mll/glue", "mnli"): {
                "train": columns,
                "validation_matched": columns,
                "test_matched": {**columns, "label": [-1, -1, -1]},
            }
        }
    )
    monkeypatch.setattr(datasets, "load_dataset", hub)
    dm = GlueDataModule("MNLI", batch_size=2, cache_dir=cache_dir)
    dm.setup("fit")
    assert hub.calls == [("nyu-mll/glue", "mnli")] * 2
    assert dm.train_dataset.labels.tolist() == [0, 2, 1] and len(dm.val_datasets[0]) == 3


def test_hub_regression_and_bad_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    stsb = {"sentence1": ["a"], "sentence2": ["b"], "label": [3.2]}
    sst2 = {"sentence": ["a", "b"], "label": [1, -1]}
    hub = FakeHub({("nyu-mll/glue", "stsb"): {"train": stsb}, ("nyu-mll/glue", "sst2"): {"train": sst2}})
    monkeypatch.setattr(datasets, "load_dataset", hub)
    labels = GlueDataModule("stsb").train_examples().labels
    assert labels == [pytest.approx(3.2)] and isinstance(labels[0], float)
    with pytest.raises(ValueError, match=r"nyu-mll/glue/sst2\[train\], row 1: label -1 is not in 0\.\.1"):
        GlueDataModule("sst2").train_examples()
    with pytest.raises(ValueError, match=r"has no split 'validation'; found splits \['train'\]"):
        GlueDataModule("sst2").eval_examples("validation")


def test_hub_missing_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "load_dataset", FakeHub({("nyu-mll/glue", "qnli"): {"train": {"text": ["a"]}}}))
    with pytest.raises(
        ValueError,
        match=r"lacks columns \['question', 'sentence', 'label'\]: expected columns "
        r"\['question', 'sentence', 'label'\], found \['text'\]",
    ):
        GlueDataModule("qnli").train_examples()
