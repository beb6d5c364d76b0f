"""Field mappings of the XGLUE (and XTREME PAN-X) hub data sets, and their conversion to examples.

XGLUE (Liang et al., 2020) is published on the hub as ``microsoft/xglue`` with one config per task and the splits
``train`` (English), ``validation.<lang>`` and ``test.<lang>``. Some column names carry the publisher's typos
(``wed_page_title``, ``annswer``, ``relavance_label``); each field lists every spelling seen, first match wins.
Labels may be strings or ``ClassLabel`` ids depending on the data set version: both are mapped through the label
names, so ids always follow the order given here.

* ``nc`` (news classification, 10 categories): ``news_title`` + ``news_body``.
* ``qam`` (question-answer matching, False/True): ``question`` + ``answer``.
* ``qadsm`` (query-ad matching, Bad/Good): ``query`` + ``ad_title`` and ``ad_description`` joined by a space.
* ``wpr`` (web page ranking, Bad..Perfect): ``query`` + ``web_page_title`` and ``web_page_snippet`` joined by a
  space. XGLUE scores WPR by nDCG over each query's pages; here the relevance grade is a 5-way classification
  measured by accuracy.
* ``pos`` / ``ner`` (word tagging): ``words`` with ``pos`` / ``ner`` tags.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from lightning_compress.data.examples import Examples, fingerprint
from lightning_compress.data.token_readers import TokenExamples

XGLUE_HUB_ID = "microsoft/xglue"


@dataclass(frozen=True)
class XglueSentenceFields:
    """Where a sentence-level XGLUE task keeps its texts and label.

    Args:
        text: Spellings of the first-text column.
        pair: One entry per second-text field (each a tuple of spellings); present fields are joined by a space.
        label: Spellings of the label column.
        label_names: Label names in label-id order.
    """

    text: tuple[str, ...]
    pair: tuple[tuple[str, ...], ...]
    label: tuple[str, ...]
    label_names: tuple[str, ...]


#: Sentence-level XGLUE tasks on the hub.
XGLUE_SENTENCE_TASKS: Mapping[str, XglueSentenceFields] = MappingProxyType(
    {
        "nc": XglueSentenceFields(
            text=("news_title",),
            pair=(("news_body",),),
            label=("news_category",),
            label_names=(
                "foodanddrink",
                "sports",
                "travel",
                "finance",
                "lifestyle",
                "news",
                "entertainment",
                "health",
                "video",
                "autos",
            ),
        ),
        "qam": XglueSentenceFields(
            text=("question",), pair=(("answer", "annswer"),), label=("label",), label_names=("False", "True")
        ),
        "qadsm": XglueSentenceFields(
            text=("query",),
            pair=(("ad_title",), ("ad_description",)),
            label=("relevance_label",),
            label_names=("Bad", "Good"),
        ),
        "wpr": XglueSentenceFields(
            text=("query",),
            pair=(("web_page_title", "wed_page_title"), ("web_page_snippet",)),
            label=("relavance_label", "relevance_label"),
            label_names=("Bad", "Fair", "Good", "Excellent", "Perfect"),
        ),
    }
)


def _column(dataset: Any, spellings: Sequence[str], source: str, role: str) -> str:
    for name in spellings:
        if name in dataset.column_names:
            return name
    raise ValueError(
        f"Hub data set {source} has no {role} column: expected one of {list(spellings)}, "
        f"found columns {dataset.column_names}"
    )


def _class_names(feature: Any) -> list[str] | None:
    """Names of a ``ClassLabel`` feature (or of the ``ClassLabel`` inside a ``Sequence``/list feature)."""
    inner = getattr(feature, "feature", None)
    if inner is not None:
        feature = inner
    elif isinstance(feature, list) and feature:
        feature = feature[0]
    names = getattr(feature, "names", None)
    return list(names) if names else None


def _label_mapper(dataset: Any, column: str, label_names: Sequence[str], tag_map: Mapping[str, str], source: str):
    """Function ``(raw value, row) -> label id`` for string labels or ``ClassLabel`` ids of ``column``."""
    ids = {name: i for i, name in enumerate(label_names)}
    class_names = _class_names(getattr(dataset, "features", {}).get(column))

    def to_id(value: Any, row: int) -> int:
        name = value
        if isinstance(value, int) and not isinstance(value, bool):
            if class_names is None or not 0 <= value < len(class_names):
                raise ValueError(
                    f"Hub data set {source}, row {row}: label id {value!r} in column {column!r} has no name "
                    f"(ClassLabel names: {class_names}); expected one of {list(label_names)}"
                )
            name = class_names[value]
        name = tag_map.get(name, name)
        label = ids.get(name)
        if label is None:
            raise ValueError(
                f"Hub data set {source}, row {row}: label {value!r} in column {column!r} is not one of "
                f"{list(label_names)}"
            )
        return label

    return to_id


def xglue_sentence_examples(dataset: Any, *, task: str, source: str) -> Examples:
    """Examples of the sentence-level XGLUE ``task`` (``nc``, ``qam``, ``qadsm``, ``wpr``) from a hub split."""
    if task not in XGLUE_SENTENCE_TASKS:
        raise ValueError(f"Unknown XGLUE sentence task {task!r}; expected one of {list(XGLUE_SENTENCE_TASKS)}")
    fields = XGLUE_SENTENCE_TASKS[task]
    text = _column(dataset, fields.text, source, "text")
    pairs = [_column(dataset, spellings, source, "second-text") for spellings in fields.pair]
    label = _column(dataset, fields.label, source, "label")
    to_id = _label_mapper(dataset, label, fields.label_names, {}, source)
    labels = [to_id(value, row) for row, value in enumerate(dataset[label])]
    columns = [list(dataset[name]) for name in pairs]
    joined = [" ".join(part for part in parts if part) for parts in zip(*columns, strict=True)]
    texts = list(dataset[text])
    stamp = getattr(dataset, "_fingerprint", None) or fingerprint(texts, joined, labels)
    return Examples(
        texts=texts,
        pairs=joined,
        labels=labels,
        fingerprint=fingerprint("xglue-hub", task, source, text, tuple(pairs), label, stamp),
    )


def token_examples_from_hub(
    dataset: Any,
    *,
    source: str,
    words: Sequence[str],
    tags: Sequence[str],
    label_names: Sequence[str],
    tag_map: Mapping[str, str] | None = None,
) -> TokenExamples:
    """Word-tagged sentences from a hub split whose ``words`` column holds word lists and ``tags`` their tags.

    ``words`` and ``tags`` list the accepted spellings (``("words", "tokens")``, ``("pos", "pos_tags")``). Tags may
    be strings or ``ClassLabel`` ids; ``tag_map`` renames tags before they are looked up in ``label_names``.
    """
    word_column = _column(dataset, words, source, "words")
    tag_column = _column(dataset, tags, source, "tags")
    to_id = _label_mapper(dataset, tag_column, label_names, dict(tag_map or {}), source)
    all_words: list[list[str]] = []
    all_tags: list[list[int]] = []
    for row, (sentence, sentence_tags) in enumerate(zip(dataset[word_column], dataset[tag_column], strict=True)):
        if len(sentence) != len(sentence_tags):
            raise ValueError(
                f"Hub data set {source}, row {row}: {len(sentence)} words but {len(sentence_tags)} tags; "
                "expected one tag per word"
            )
        all_words.append(list(sentence))
        all_tags.append([to_id(tag, row) for tag in sentence_tags])
    stamp = getattr(dataset, "_fingerprint", None) or fingerprint(all_words, all_tags)
    return TokenExamples(
        words=all_words,
        tags=all_tags,
        fingerprint=fingerprint(
            "hub-tagged",
            source,
            word_column,
            tag_column,
            tuple(label_names),
            tuple(sorted((tag_map or {}).items())),
            stamp,
        ),
    )
