"""Pure file parsers: tsv layout quirks and one-message errors naming file, line and expectation."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from lightning_compress.data.readers import (
    read_snli_jsonl,
    read_tsv,
    read_tsv_examples,
    read_tsv_with_label_file,
    require_file,
)
from tests.data.fixtures import write_tsv

NLI = ("entailment", "neutral", "contradiction")


def test_bom_is_stripped_and_quotes_are_kept(tmp_path: Path) -> None:
    path = write_tsv(tmp_path / "a.tsv", [["1", 'He said " hi', "x"]], header=["\ufeffQuality", "#1 String", "b"])
    table = read_tsv(path, has_header=True)
    assert table.header == ["Quality", "#1 String", "b"]
    assert table.column("#1 String") == ['He said " hi'] and table.lines == [2]


def test_blank_lines_are_skipped_and_lines_counted(tmp_path: Path) -> None:
    path = tmp_path / "a.tsv"
    path.write_text("s\tlabel\nx\t1\n\ny\t0\n")
    table = read_tsv(path, has_header=True)
    assert table.column("s") == ["x", "y"] and table.lines == [2, 4]


def test_missing_file_names_path_and_layout(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"No file at '.*nope\.tsv'; expected the layout X"):
        require_file(tmp_path / "nope.tsv", "the layout X")


def test_missing_columns_name_expected_and_found(tmp_path: Path) -> None:
    path = write_tsv(tmp_path / "a.tsv", [["x", "1"]], header=["text", "label"])
    with pytest.raises(
        ValueError,
        match=r"lacks columns \['sentence'\]: expected columns \['sentence', 'label'\], "
        r"found \['text', 'label'\]",
    ):
        read_tsv_examples(
            path, has_header=True, text="sentence", pair=None, label="label", label_values=("0", "1"), layout="L"
        )


def test_short_row_names_line_and_field_count(tmp_path: Path) -> None:
    path = write_tsv(tmp_path / "a.tsv", [["a", "b", "entailment"], ["a", "b"]])
    with pytest.raises(ValueError, match=r"a\.tsv', line 2: 2 tab-separated fields, expected at least 3"):
        read_tsv_examples(path, has_header=False, text=0, pair=1, label=2, label_values=NLI, layout="L")


def test_unknown_label_names_label_file_and_line(tmp_path: Path) -> None:
    path = write_tsv(tmp_path / "a.tsv", [["x", "1"], ["y", "2"]], header=["sentence", "label"])
    with pytest.raises(ValueError, match=r"a\.tsv', line 3: label '2' is not one of \['0', '1'\]"):
        read_tsv_examples(
            path, has_header=True, text="sentence", pair=None, label="label", label_values=("0", "1"), layout="L"
        )


def test_regression_scores_must_be_numbers(tmp_path: Path) -> None:
    path = write_tsv(tmp_path / "a.tsv", [["a", "b", "4.5"], ["a", "b", "high"]], header=["s1", "s2", "score"])
    with pytest.raises(ValueError, match=r"line 3: label 'high' is not a number"):
        read_tsv_examples(path, has_header=True, text="s1", pair="s2", label="score", label_values=None, layout="L")
    path.write_text("s1\ts2\tscore\na\tb\t4.5\n")
    examples = read_tsv_examples(
        path, has_header=True, text="s1", pair="s2", label="score", label_values=None, layout="L"
    )
    assert examples.labels == [4.5] and isinstance(examples.labels[0], float)


def test_fingerprint_follows_bytes_not_path(tmp_path: Path) -> None:
    kwargs = dict(has_header=False, text=0, pair=1, label=2, label_values=NLI, layout="L")
    a = read_tsv_examples(write_tsv(tmp_path / "a.tsv", [["x", "y", "neutral"]]), **kwargs)
    b = read_tsv_examples(write_tsv(tmp_path / "b.tsv", [["x", "y", "neutral"]]), **kwargs)
    c = read_tsv_examples(write_tsv(tmp_path / "c.tsv", [["x", "y", "entailment"]]), **kwargs)
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_label_file_must_align_with_rows(tmp_path: Path) -> None:
    tsv = write_tsv(tmp_path / "test-de.tsv", [["p", "h"], ["p2", "h2"]])
    labels = tmp_path / "labels.txt"
    labels.write_text("neutral\ncontradiction\n")
    examples = read_tsv_with_label_file(tsv, labels, label_values=NLI, layout="L")
    assert examples.labels == [1, 2] and examples.pairs == ["h", "h2"]
    labels.write_text("neutral\n")
    with pytest.raises(ValueError, match=r"labels\.txt' has 1 labels but '.*test-de\.tsv' has 2 rows"):
        read_tsv_with_label_file(tsv, labels, label_values=NLI, layout="L")
    labels.write_text("neutral\nmaybe\n")
    with pytest.raises(ValueError, match=r"labels\.txt', line 2: label 'maybe' is not one of"):
        read_tsv_with_label_file(tsv, labels, label_values=NLI, layout="L")


def _write_jsonl_gz(path: Path, records: list[dict]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in records)
    return path


def test_snli_drops_no_consensus_pairs(tmp_path: Path) -> None:
    records = [
        {"gold_label": g, "sentence1": f"p{i}", "sentence2": f"h{i}"}
        for i, g in enumerate(["neutral", "-", "contradiction", "entailment"])
    ]
    examples = read_snli_jsonl(_write_jsonl_gz(tmp_path / "s.jsonl.gz", records), label_values=NLI, layout="L")
    assert examples.texts == ["p0", "p2", "p3"] and examples.labels == [1, 2, 0]


def test_snli_errors_name_fields_and_labels(tmp_path: Path) -> None:
    path = _write_jsonl_gz(tmp_path / "s.jsonl.gz", [{"gold_label": "neutral", "premise": "p", "sentence2": "h"}])
    with pytest.raises(ValueError, match=r"line 1: missing fields \['sentence1'\]; expected .*found \['gold_label'"):
        read_snli_jsonl(path, label_values=NLI, layout="L")
    path = _write_jsonl_gz(
        tmp_path / "t.jsonl.gz", [{"gold_label": "contradictory", "sentence1": "p", "sentence2": "h"}]
    )
    with pytest.raises(ValueError, match=r"t\.jsonl\.gz', line 1: label 'contradictory' is not one of"):
        read_snli_jsonl(path, label_values=NLI, layout="L")


def test_header_only_and_empty_files_name_the_file_and_the_layout(tmp_path: Path) -> None:
    path = write_tsv(tmp_path / "dev.tsv", [], header=["sentence", "label"])
    kwargs = dict(has_header=True, text="sentence", pair=None, label="label", label_values=("0", "1"), layout="L")
    with pytest.raises(ValueError, match=r"dev\.tsv' has a header line \['sentence', 'label'\] but no data rows; "):
        read_tsv_examples(path, **kwargs)
    path.write_text("")
    with pytest.raises(ValueError, match=r"dev\.tsv' is empty \(no data rows\); expected L\. HINT: .*download"):
        read_tsv_examples(path, **kwargs)
    path.write_text("\n\n")  # blank lines only, no header expected
    with pytest.raises(ValueError, match=r"dev\.tsv' is empty \(no data rows\); expected L"):
        read_tsv_examples(path, has_header=False, text=0, pair=1, label=2, label_values=NLI, layout="L")
    labels = tmp_path / "labels.txt"
    labels.write_text("neutral\n")
    with pytest.raises(ValueError, match=r"dev\.tsv' is empty \(no data rows\); expected L"):
        read_tsv_with_label_file(path, labels, label_values=NLI, layout="L")


def test_non_utf8_files_name_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    path.write_bytes(b"sentence\tlabel\nok\t1\n" + "caf\u00e9\t0\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"train\.tsv', line 3: byte e9 at offset 23 is not UTF-8; .*HINT: convert"):
        read_tsv_examples(
            path, has_header=True, text="sentence", pair=None, label="label", label_values=("0", "1"), layout="L"
        )
    # the bad byte past the reader's first 8 KiB chunk is still located in the whole file
    path.write_bytes(b"s\tlabel\n" + b"x\t1\n" * 3000 + b"\xff\t0\n")
    with pytest.raises(ValueError, match=r"train\.tsv', line 3002: byte ff at offset 12008 is not UTF-8"):
        read_tsv(path, has_header=True)
    tsv = write_tsv(tmp_path / "test-de.tsv", [["p", "h"]])
    labels = tmp_path / "labels.txt"
    labels.write_bytes(b"neutral\n\x96\n")
    with pytest.raises(ValueError, match=r"labels\.txt', line 2: byte 96 at offset 8 is not UTF-8"):
        read_tsv_with_label_file(tsv, labels, label_values=NLI, layout="L")
    snli = tmp_path / "s.jsonl.gz"
    with gzip.open(snli, "wb") as handle:
        handle.write(b'{"gold_label": "neutral", "sentence1": "p", "sentence2": "h"}\n{"sentence1": "\xe9"}\n')
    with pytest.raises(ValueError, match=r"s\.jsonl\.gz', line 2: byte e9 at offset \d+ is not UTF-8"):
        read_snli_jsonl(snli, label_values=NLI, layout="L")


def test_snli_without_labelled_pairs_is_refused(tmp_path: Path) -> None:
    path = _write_jsonl_gz(tmp_path / "s.jsonl.gz", [{"gold_label": "-", "sentence1": "p", "sentence2": "h"}])
    with pytest.raises(ValueError, match=r"s\.jsonl\.gz' holds no sentence pairs with a gold label .*expected L"):
        read_snli_jsonl(path, label_values=NLI, layout="L")
