"""XGLUE hub field mappings (NC, QAM, QADSM, WPR, POS) on small generated in-memory data sets."""

from __future__ import annotations

import datasets
import pytest

from lightning_compress.data import CrossLingualDataModule
from lightning_compress.data.token_readers import UPOS_TAGS
from lightning_compress.data.xglue_hub import XGLUE_SENTENCE_TASKS, token_examples_from_hub, xglue_sentence_examples
from tests.data.test_token_crosslingual import FakeHub


def test_nc_string_categories() -> None:
    table = datasets.Dataset.from_dict(
        {
            "news_title": ["Goal!", "Stocks"],
            "news_body": ["A late goal.", "Markets fell."],
            "news_category": ["sports", "finance"],
        }
    )
    examples = xglue_sentence_examples(table, task="nc", source="t")
    assert examples.texts == ["Goal!", "Stocks"] and examples.pairs == ["A late goal.", "Markets fell."]
    assert examples.labels == [1, 3]


def test_qam_typo_column_and_class_label_ids() -> None:
    features = datasets.Features(
        {
            "question": datasets.Value("string"),
            "annswer": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["False", "True"]),
        }
    )
    table = datasets.Dataset.from_dict({"question": ["q?"], "annswer": ["a."], "label": [1]}, features)
    examples = xglue_sentence_examples(table, task="qam", source="t")
    assert examples.pairs == ["a."] and examples.labels == [1]


def test_qadsm_and_wpr_join_title_and_description() -> None:
    qadsm = datasets.Dataset.from_dict(
        {"query": ["shoes"], "ad_title": ["Red shoes"], "ad_description": ["Cheap."], "relevance_label": ["Good"]}
    )
    assert xglue_sentence_examples(qadsm, task="qadsm", source="t").pairs == ["Red shoes Cheap."]
    features = datasets.Features(
        {
            "query": datasets.Value("string"),
            "wed_page_title": datasets.Value("string"),
            "web_page_snippet": datasets.Value("string"),
            "relavance_label": datasets.ClassLabel(names=["Bad", "Fair", "Good", "Excellent", "Perfect"]),
        }
    )
    wpr = datasets.Dataset.from_dict(
        {
            "query": ["q", "r"],
            "wed_page_title": ["T", ""],
            "web_page_snippet": ["S", "only"],
            "relavance_label": [4, 0],
        },
        features,
    )
    examples = xglue_sentence_examples(wpr, task="wpr", source="t")
    assert examples.pairs == ["T S", "only"] and examples.labels == [4, 0]
    assert XGLUE_SENTENCE_TASKS["wpr"].label_names[4] == "Perfect"


def test_missing_column_and_unknown_label_name_the_source() -> None:
    table = datasets.Dataset.from_dict({"news_title": ["t"], "news_category": ["sports"]})
    with pytest.raises(
        ValueError, match=r"Hub data set src has no second-text column: expected one of \['news_body'\]"
    ):
        xglue_sentence_examples(table, task="nc", source="src")
    table = datasets.Dataset.from_dict({"news_title": ["t"], "news_body": ["b"], "news_category": ["weather"]})
    with pytest.raises(ValueError, match=r"src, row 0: label 'weather' in column 'news_category' is not one of"):
        xglue_sentence_examples(table, task="nc", source="src")


def test_pos_string_tags_and_length_mismatch() -> None:
    table = datasets.Dataset.from_dict({"words": [["I", "ran"]], "pos": [["PRON", "VERB"]]})
    examples = token_examples_from_hub(table, source="t", words=("words",), tags=("pos",), label_names=UPOS_TAGS)
    assert examples.tags == [[UPOS_TAGS.index("PRON"), UPOS_TAGS.index("VERB")]]
    bad = datasets.Dataset.from_dict({"words": [["I", "ran"]], "pos": [["PRON"]]})
    with pytest.raises(ValueError, match=r"Hub data set t, row 0: 2 words but 1 tags"):
        token_examples_from_hub(bad, source="t", words=("words",), tags=("pos",), label_names=UPOS_TAGS)


def test_hub_nc_module_reads_xglue_splits(monkeypatch: pytest.MonkeyPatch, cache_dir: str) -> None:
    rows = {"news_title": ["a", "b"], "news_body": ["c", "d"], "news_category": ["autos", "video"]}
    splits = {name: datasets.Dataset.from_dict(rows) for name in ("train", "validation.en", "validation.ru", "test.ru")}
    hub = FakeHub({("microsoft/xglue", "nc"): splits})
    monkeypatch.setattr(datasets, "load_dataset", hub)
    dm = CrossLingualDataModule("nc", languages=["ru", "en"], cache_dir=cache_dir)
    assert dm.task_spec.num_labels == 10 and dm.task_spec.eval_names == ("en", "ru")
    dm.setup("fit")
    assert dm.train_dataset.labels.tolist() == [9, 8] and [len(d) for d in dm.val_datasets] == [2, 2]
    test = CrossLingualDataModule("nc", languages=["ru"], eval_split="test", cache_dir=cache_dir)
    assert test.eval_examples("test")[0].labels == [9, 8]
