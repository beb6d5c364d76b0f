"""Writers of tiny data files in the real formats (GLUE tsv, XTREME tsv, SNLI jsonl.gz, text folders)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path

#: GLUE folder -> (header or None, row builder(i, label) -> fields, label values, dev file name)
_GLUE_FORMATS = {
    "CoLA": (None, lambda i, y: ["gj04", y, "", f'The {i} sailor rode "the breeze .'], ("0", "1"), "dev.tsv"),
    "SST-2": (["sentence", "label"], lambda i, y: [f"it 's a \"charming {i} journey . ", y], ("0", "1"), "dev.tsv"),
    "MRPC": (
        ["\ufeffQuality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
        lambda i, y: [y, str(1000 + i), str(2000 + i), f'He said " {i} pies .', f'The {i} pies " .'],
        ("0", "1"),
        "dev.tsv",
    ),
    "QQP": (
        ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
        lambda i, y: [str(i), str(2 * i), str(2 * i + 1), f"How do I {i}?", f"What is {i}?", y],
        ("0", "1"),
        "dev.tsv",
    ),
    "STS-B": (
        ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2", "score"],
        lambda i, y: [
            str(i),
            "main-captions",
            "MSRvid",
            "2012test",
            f"{i:04d}",
            "none",
            "none",
            f"A man {i} is dancing.",
            "A man is dancing.",
            y,
        ],
        ("5.000", "3.800", "0.250"),
        "dev.tsv",
    ),
    "MNLI": (
        ["index", "promptID", "pairID", "genre", "sentence1", "sentence2", "label1", "gold_label"],
        lambda i, y: [str(i), str(i), f"{i}e", "fiction", f"Premise {i} here.", f"Hypothesis {i}.", y, y],
        ("entailment", "neutral", "contradiction"),
        "dev_matched.tsv",
    ),
    "QNLI": (
        ["index", "question", "sentence", "label"],
        lambda i, y: [str(i), f"What came {i}?", f"It came {i}.", y],
        ("entailment", "not_entailment"),
        "dev.tsv",
    ),
    "RTE": (
        ["index", "sentence1", "sentence2", "label"],
        lambda i, y: [str(i), f"Dana {i} died.", "Reeve had an accident.", y],
        ("entailment", "not_entailment"),
        "dev.tsv",
    ),
    "WNLI": (
        ["index", "sentence1", "sentence2", "label"],
        lambda i, y: [str(i), f"The drain {i} is clogged.", "The hair is clogged.", y],
        ("0", "1"),
        "dev.tsv",
    ),
}

GLUE_FOLDERS = tuple(_GLUE_FORMATS)


def write_tsv(path: Path, rows: Sequence[Sequence[str]], header: Sequence[str] | None = None) -> Path:
    """Write tab-separated rows (no quoting); a header starting with U+FEFF is written as a UTF-8 BOM."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ([list(header)] if header is not None else []) + [list(r) for r in rows]
    path.write_text("".join("\t".join(fields) + "\n" for fields in lines), encoding="utf-8")
    return path


def glue_label_values(folder: str) -> tuple[str, ...]:
    """Raw label strings used in the tiny files of ``folder``."""
    return _GLUE_FORMATS[folder][2]


def write_glue_task(root: Path, folder: str, n_train: int = 12, n_dev: int = 6) -> Path:
    """``root/<folder>/train.tsv`` and the dev file in the GLUE format of ``folder``; labels cycle."""
    header, row, labels, dev_file = _GLUE_FORMATS[folder]
    for name, n in (("train.tsv", n_train), (dev_file, n_dev)):
        write_tsv(root / folder / name, [row(i, labels[i % len(labels)]) for i in range(n)], header)
    return root / folder


def write_xnli(root: Path, languages: Sequence[str] = ("en", "de", "fr"), n_dev: int = 6, n_test: int = 9) -> Path:
    """A tiny shared-data layout for XNLI: snli/ train jsonl.gz (with '-' rows), xnli/ dev, test and test labels."""
    labels = ("entailment", "neutral", "contradiction")
    snli = root / "snli" / "snli_1.0_train_subset.jsonl.gz"
    snli.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(snli, "wt", encoding="utf-8") as handle:
        for i in range(12):
            gold = "-" if i in (3, 7) else labels[i % 3]
            handle.write(
                json.dumps(
                    {"gold_label": gold, "sentence1": f"A person {i}.", "sentence2": f"He {i}.", "pairID": str(i)}
                )
                + "\n"
            )
    for lang in languages:
        write_tsv(
            root / "xnli" / f"dev-{lang}.tsv",
            [[f"{lang} premise {i}", f"{lang} hypo {i}", labels[i % 3]] for i in range(n_dev)],
        )
        write_tsv(
            root / "xnli" / f"test-{lang}.tsv", [[f"{lang} premise {i}", f"{lang} hypo {i}"] for i in range(n_test)]
        )
    (root / "xnli" / "test-labels.txt").write_text("".join(labels[(i + 1) % 3] + "\n" for i in range(n_test)))
    return root


def write_pawsx(root: Path, languages: Sequence[str] = ("en", "de", "zh", "fr"), n: int = 6) -> Path:
    """A tiny PAWS-X layout: pawsx/dev-<lang>.tsv, unlabelled test-<lang>.tsv and labeled_test/test-{de,zh}.tsv."""
    for lang in languages:
        write_tsv(
            root / "pawsx" / f"dev-{lang}.tsv", [[f"{lang} s1 {i}", f"{lang} s2 {i}", str(i % 2)] for i in range(n)]
        )
        write_tsv(root / "pawsx" / f"test-{lang}.tsv", [[f"{lang} s1 {i}", f"{lang} s2 {i}"] for i in range(n)])
    for lang in ("de", "zh"):
        write_tsv(
            root / "pawsx" / "labeled_test" / f"test-{lang}.tsv",
            [[str(i), f"{lang} t1 {i}", f"{lang} t2 {i}", str((i + 1) % 2)] for i in range(n)],
            header=["id", "sentence1", "sentence2", "label"],
        )
    return root


def write_text_folder(root: Path, counts: dict[str, int]) -> Path:
    """``root/<class>/<i>.txt`` with ``counts[class]`` short documents each."""
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (root / name / f"{i:03d}.txt").write_text(f"{name} headline {i}\n\nSome {name} news number {i}.\n")
    return root
