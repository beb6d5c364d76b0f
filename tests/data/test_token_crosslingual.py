"""CrossLingualDataModule for the token tasks (UD POS, PAN-X NER) on tiny generated layouts and a fake hub, and a
tiny end-to-end fit of TokenClassificationModule that logs per-language metrics."""

from __future__ import annotations

import re
from pathlib import Path

import datasets
import pytest
import pytorch_lightning as pl
import torch
from seqeval.metrics import f1_score

from lightning_compress.data import CrossLingualDataModule
from lightning_compress.data.token_readers import PANX_TAGS, UPOS_TAGS
from lightning_compress.models import TokenClassificationModule
from lightning_compress.tasks import TaskSpec
from tests.data.token_fixtures import write_panx, write_udpos


class FakeHub:
    """Stands in for ``datasets.load_dataset``: records calls, returns in-memory DatasetDicts of given Datasets."""

    def __init__(self, tables: dict[tuple[str, str], dict[str, datasets.Dataset]]) -> None:
        self.tables = tables
        self.calls: list[tuple[str, str]] = []

    def __call__(self, path: str, name: str | None = None) -> datasets.DatasetDict:
        self.calls.append((path, name))
        return datasets.DatasetDict(self.tables[(path, name)])


def test_task_specs() -> None:
    pos = CrossLingualDataModule("udpos").task_spec
    assert pos.kind == "token_classification" and pos.metrics == ("token_accuracy",)
    assert pos.label_names == UPOS_TAGS and pos.num_labels == 17
    assert pos.eval_names[:4] == ("en", "de", "es", "nl") and len(pos.eval_names) == 17  # XGLUE pos languages
    ner = CrossLingualDataModule("panx", data_dir="/nowhere").task_spec
    assert ner == TaskSpec(
        "panx",
        7,
        "token_classification",
        ("span_f1", "token_accuracy"),
        eval_names=("en", "ar", "de", "es", "fr", "hi", "it", "nl", "pt", "ru", "tr", "ur", "vi", "zh"),
        label_names=PANX_TAGS,
    )
    assert ner.main_metric == "val/avg/span_f1"
    # local UD: Thai has a test file only, so it is in the default test languages, not in the dev ones
    assert "th" not in CrossLingualDataModule("udpos", data_dir="/nowhere").task_spec.eval_names
    assert CrossLingualDataModule("udpos", data_dir="/nowhere", eval_split="test").task_spec.eval_names[-1] == "th"


def test_udpos_local_batches(tmp_path: Path, cache_dir: str) -> None:
    write_udpos(tmp_path, ("en", "de", "fr"))
    dm = CrossLingualDataModule(
        "udpos", data_dir=str(tmp_path), languages=["fr", "en"], batch_size=4, cache_dir=cache_dir
    )
    assert dm.task_spec.eval_names == ("en", "fr") and dm.train_source == "xtreme_en"
    dm.setup("fit")
    assert len(dm.train_dataset) == 9 and [len(d) for d in dm.val_datasets] == [6, 6]
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels", "idx"}
    assert batch["labels"].shape == batch["input_ids"].shape and batch["labels"].dtype == torch.long
    # every sentence scores each of its words exactly once: the number of non -100 labels is its word count
    for row, idx in enumerate(batch["idx"].tolist()):
        item = dm.train_dataset[idx]
        assert batch["labels"][row, : len(item["labels"])].tolist() == item["labels"]
        assert (batch["labels"][row, len(item["labels"]) :] == -100).all()
    val = dm.val_dataloader()[1]  # fr, the third fixture language: its first sentence is "Paris is big !"
    first = next(iter(val))
    tokens = dm.hf_tokenizer.convert_ids_to_tokens(first["input_ids"][0, :6].tolist())
    assert tokens == ["[CLS]", "paris", "is", "big", "!", "[SEP]"]
    assert first["labels"][0, :6].tolist() == [-100, 11, 3, 0, 12, -100]  # PROPN AUX ADJ PUNCT


def test_replaced_tokenizer_in_the_same_folder_gives_new_ids(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cache_dir: str
) -> None:
    """The tagged-sentence cache is keyed by the tokenizer's content, not its name (like the sentence cache)."""
    from lightning_compress.data import base, tokenized
    from tests.data.test_base import _write_word_tokenizer

    monkeypatch.setattr(base, "load_tokenizer", tokenized.load_tokenizer)  # the real loader, not the shared one
    write_udpos(tmp_path / "data", ("en",))
    text = (tmp_path / "data" / "ud" / "xtreme_udpos" / "train-en.tsv").read_text()
    words = sorted({line.split("\t")[0] for line in text.splitlines() if line})  # every word: no [UNK]
    folder = tmp_path / "tokenizer"

    def first_sentence() -> tuple[list[int], list[int]]:
        """Ids served by the DataModule, and ids of the tokenizer now in the folder, for the first training sentence."""
        dm = CrossLingualDataModule(
            "udpos", data_dir=str(tmp_path / "data"), languages=["en"], tokenizer=str(folder), cache_dir=cache_dir
        )
        dm.setup("fit")
        sentence = dm.train_examples().words[0]
        expected = tokenized.load_tokenizer(str(folder))(sentence, is_split_into_words=True)["input_ids"]
        return dm.train_dataset[0]["input_ids"], expected

    _write_word_tokenizer(folder, words)
    before, expected = first_sentence()
    assert before == expected
    _write_word_tokenizer(folder, words[::-1])  # same folder and name, other ids
    after, expected = first_sentence()
    assert after == expected and after != before


def test_udpos_english_evaluation_reads_conllu_and_skips_mwt_lines(tmp_path: Path, cache_dir: str) -> None:
    write_udpos(tmp_path, ("en",))
    dm = CrossLingualDataModule("udpos", data_dir=str(tmp_path), languages=["en"], eval_split="test")
    (en,) = dm.eval_examples("test")
    assert en.words[0] == ["The", "unaffable", "cat", "sleeps", "."]  # no "enmwt" (2-3) and no "ghost" (5.1)


def test_udpos_language_without_file(tmp_path: Path) -> None:
    write_udpos(tmp_path, ("en", "de"))
    dm = CrossLingualDataModule("udpos", data_dir=str(tmp_path), languages=["en", "pl"])
    message = f"No '{tmp_path / 'ud' / 'pl'}/*-ud-dev.conllu' for language 'pl' (found: no such folder)"
    with pytest.raises(FileNotFoundError, match=re.escape(message) + r".*Drop 'pl' from `languages`"):
        dm.eval_examples("validation")


def test_udpos_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    write_udpos(tmp_path, ("en", "de"))
    path = tmp_path / "ud" / "de" / "de_tiny-ud-dev.conllu"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[3] = "1\tThe\tthe\tDET\n"
    path.write_text("".join(lines), encoding="utf-8")
    dm = CrossLingualDataModule("udpos", data_dir=str(tmp_path), languages=["de"])
    with pytest.raises(ValueError, match=re.escape(f"'{path}', line 4: 4 tab-separated fields, expected 10")):
        dm.eval_examples("validation")


def test_panx_local_and_conll2003_training(tmp_path: Path, cache_dir: str) -> None:
    write_panx(tmp_path, ("en", "de", "es"))
    dm = CrossLingualDataModule("panx", data_dir=str(tmp_path), languages=["de", "en"], cache_dir=cache_dir)
    assert dm.train_source == "panx" and dm.task_spec.eval_names == ("en", "de")
    assert len(dm.train_examples()) == 9
    de = dm.eval_examples("validation")[1]
    assert de.words[0] == ["The", "United", "Nations", "met"]  # the German fixture starts one sentence later
    conll = CrossLingualDataModule("panx", data_dir=str(tmp_path), train_source="conll2003", languages=["de"])
    train = conll.train_examples()
    assert [PANX_TAGS[t] for t in train.tags[2]] == ["O", "O", "O", "B-LOC"]  # New York = MISC -> O
    small = CrossLingualDataModule(
        "panx", data_dir=str(tmp_path), languages=["es"], max_train_samples=4, max_eval_samples=2, cache_dir=cache_dir
    )
    small.setup("fit")
    assert len(small.train_dataset) == 4 and [len(d) for d in small.val_datasets] == [2]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"task": "panx", "data_dir": "/x", "eval_split": "test"}, ValueError, r"panx has no labelled test files"),
        ({"task": "panx", "data_dir": "/x", "train_source": "xtreme_en"}, ValueError, r"\['panx', 'conll2003'\]"),
        ({"task": "udpos", "languages": ["xx"]}, ValueError, r"`CrossLingualDataModule\(languages=\['xx'\]\)`"),
        ({"task": "nc", "data_dir": "/x"}, ValueError, r"data_dir='/x'\)` is invalid: expected None: nc loads from"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        CrossLingualDataModule(**kwargs)


def test_hub_udpos_reads_xglue_pos(monkeypatch: pytest.MonkeyPatch, cache_dir: str) -> None:
    sentences = {"words": [["A", "cat"], ["Runs"]], "pos": [["DET", "NOUN"], ["VERB"]]}
    splits = {"train": datasets.Dataset.from_dict(sentences)}
    splits.update({f"validation.{lang}": datasets.Dataset.from_dict(sentences) for lang in ("en", "th")})
    hub = FakeHub({("microsoft/xglue", "pos"): splits})
    monkeypatch.setattr(datasets, "load_dataset", hub)
    dm = CrossLingualDataModule("udpos", languages=["th", "en"], cache_dir=cache_dir)
    dm.setup("fit")
    assert len(dm.train_dataset) == 2 and [len(d) for d in dm.val_datasets] == [2, 2]
    assert dm.train_dataset[0]["labels"] == [-100, UPOS_TAGS.index("DET"), UPOS_TAGS.index("NOUN"), -100]
    assert hub.calls == [("microsoft/xglue", "pos")] * 3


def test_hub_panx_reads_xtreme_class_label_ids(monkeypatch: pytest.MonkeyPatch, cache_dir: str) -> None:
    # google/xtreme stores tags as ClassLabel ids; the names, not the ids, are mapped onto PANX_TAGS
    names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
    features = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names)),
        }
    )
    table = datasets.Dataset.from_dict({"tokens": [["Ada", "Lovelace", "wrote"]], "ner_tags": [[1, 2, 0]]}, features)
    hub = FakeHub({("google/xtreme", f"PAN-X.{lang}"): {"train": table, "validation": table} for lang in ("en", "de")})
    monkeypatch.setattr(datasets, "load_dataset", hub)
    dm = CrossLingualDataModule("panx", languages=["de"], cache_dir=cache_dir)
    assert dm.eval_examples("validation")[0].tags == [[1, 2, 0]]
    assert dm.train_examples().words == [["Ada", "Lovelace", "wrote"]]
    assert hub.calls == [("google/xtreme", "PAN-X.de"), ("google/xtreme", "PAN-X.en")]


def test_fit_token_classification_logs_per_language_metrics(tmp_path: Path, cache_dir: str, tiny_minilm: str) -> None:
    pl.seed_everything(0)
    write_panx(tmp_path, ("en", "de", "es"), n_dev=4)  # en: sentences 0 1 2 0, de: 1 2 0 1, es: 2 0 1 2
    dm = CrossLingualDataModule(
        "panx", data_dir=str(tmp_path), languages=["en", "de", "es"], batch_size=4, cache_dir=cache_dir
    )
    module = TokenClassificationModule(tiny_minilm, task_spec=dm.task_spec, lr=3e-3, warmup_fraction=0.0)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=6,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=dm)
    metrics = trainer.callback_metrics
    per_language = {f"val/{lang}/{m}" for lang in ("en", "de", "es") for m in ("span_f1", "token_accuracy", "loss")}
    groups = {f"val/{g}/{m}" for g in ("avg", "avg_zero_shot") for m in ("span_f1", "token_accuracy")}
    assert per_language | groups | {"val/loss", "train/loss"} <= set(metrics)
    for metric in ("span_f1", "token_accuracy"):
        values = [metrics[f"val/{lang}/{metric}"].item() for lang in ("en", "de", "es")]
        assert metrics[f"val/avg/{metric}"].item() == pytest.approx(sum(values) / 3)
        assert metrics[f"val/avg_zero_shot/{metric}"].item() == pytest.approx(sum(values[1:]) / 2)

    # The logged German span F1 equals seqeval's entity F1 over the words (first sub-tokens) of the German set.
    module.eval()
    truth: list[list[str]] = []
    guess: list[list[str]] = []
    with torch.no_grad():
        for batch in dm.val_dataloader()[1]:
            preds = module(batch).logits.argmax(-1)
            for p_row, t_row in zip(preds.tolist(), batch["labels"].tolist()):
                kept = [(p, t) for p, t in zip(p_row, t_row) if t != -100]
                guess.append([PANX_TAGS[p] for p, _ in kept])
                truth.append([PANX_TAGS[t] for _, t in kept])
    assert [len(t) for t in truth] == [4, 2, 5, 4]
    assert 0.0 < metrics["val/de/span_f1"].item() < 1.0  # some entities found, some missed: a real comparison
    assert metrics["val/de/span_f1"].item() == pytest.approx(f1_score(truth, guess), abs=1e-6)
    words = sum(map(len, truth))
    hits = sum(t == g for ts, gs in zip(truth, guess) for t, g in zip(ts, gs))
    assert metrics["val/de/token_accuracy"].item() == pytest.approx(hits / words)
