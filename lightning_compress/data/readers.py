"""Pure parsers from local data files (tsv, label lists, SNLI jsonl.gz) to :class:`Examples`.

Every error names the file, and where it helps the line and what was expected, in a single message.
Tab-separated files are read with ``csv.QUOTE_NONE`` (GLUE/XTREME files contain unbalanced quotes) and
``utf-8-sig`` (MRPC starts with a byte-order mark, which must not become part of the first column name).
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lightning_compress.data.examples import Examples, file_sha256, fingerprint

#: A column given by header name (files with a header) or by 0-based position (files without one).
Column = str | int


def require_file(path: Path, layout: str) -> Path:
    """Return ``path`` if it is a file, else raise ``FileNotFoundError`` naming it and the expected ``layout``."""
    if not path.is_file():
        raise FileNotFoundError(f"No file at '{path}'; expected {layout}")
    return path


@dataclass(frozen=True)
class TsvTable:
    """Rows of a tab-separated file with their 1-based line numbers in the file."""

    path: Path
    header: list[str] | None
    rows: list[list[str]]
    lines: list[int]

    def column(self, column: Column) -> list[str]:
        """Values of ``column`` (header name or position) for every row; ``ValueError`` when it is absent."""
        if isinstance(column, str):
            if self.header is None or column not in self.header:
                raise ValueError(f"'{self.path}' has no column {column!r}; found columns {self.header}")
            position = self.header.index(column)
        else:
            position = column
        for row, line in zip(self.rows, self.lines, strict=True):
            if len(row) <= position:
                raise ValueError(
                    f"'{self.path}', line {line}: {len(row)} tab-separated fields, expected at least {position + 1} "
                    f"(column {column!r})"
                )
        return [row[position] for row in self.rows]

    def require_columns(self, columns: Sequence[Column]) -> None:
        """Raise one ``ValueError`` listing expected and found columns when a named column is missing."""
        named = [c for c in columns if isinstance(c, str)]
        missing = [c for c in named if self.header is None or c not in self.header]
        if missing:
            raise ValueError(f"'{self.path}' lacks columns {missing}: expected columns {named}, found {self.header}")


def read_tsv(path: Path, has_header: bool) -> TsvTable:
    """Read a tab-separated file (no quoting); blank lines are skipped."""
    with Path(path).open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None) if has_header else None
        rows: list[list[str]] = []
        lines: list[int] = []
        for row in reader:
            if row:
                rows.append(row)
                lines.append(reader.line_num)
    return TsvTable(Path(path), header, rows, lines)


def parse_labels(
    raw: Sequence[str], lines: Sequence[int], path: Path, label_values: Sequence[str] | None
) -> list[int] | list[float]:
    """Map raw label strings to ids (their position in ``label_values``), or to floats when it is ``None``."""
    if label_values is None:
        values: list[float] = []
        for text, line in zip(raw, lines, strict=True):
            try:
                values.append(float(text))
            except ValueError:
                raise ValueError(f"'{path}', line {line}: label {text!r} is not a number (regression score)") from None
        return values
    ids = {value: i for i, value in enumerate(label_values)}
    out: list[int] = []
    for text, line in zip(raw, lines, strict=True):
        label = ids.get(text.strip())
        if label is None:
            raise ValueError(f"'{path}', line {line}: label {text!r} is not one of {list(label_values)}")
        out.append(label)
    return out


def read_tsv_examples(
    path: Path,
    *,
    has_header: bool,
    text: Column,
    pair: Column | None,
    label: Column,
    label_values: Sequence[str] | None,
    layout: str,
) -> Examples:
    """Examples from one labelled tsv file; ``label_values`` lists the raw labels in id order (None = regression)."""
    table = read_tsv(require_file(path, layout), has_header)
    columns = [text, label] if pair is None else [text, pair, label]
    table.require_columns(columns)
    labels = parse_labels(table.column(label), table.lines, table.path, label_values)
    return Examples(
        texts=table.column(text),
        pairs=None if pair is None else table.column(pair),
        labels=labels,
        fingerprint=fingerprint("tsv", has_header, tuple(columns), tuple(label_values or ()), file_sha256(path)),
    )


def read_tsv_with_label_file(path: Path, labels_path: Path, *, label_values: Sequence[str], layout: str) -> Examples:
    """Examples from an unlabelled ``sentence1 \\t sentence2`` file plus a row-aligned file of one label per line."""
    table = read_tsv(require_file(path, layout), has_header=False)
    with require_file(labels_path, layout).open(encoding="utf-8") as handle:
        raw = [line.rstrip("\r\n") for line in handle]
    while raw and not raw[-1].strip():
        raw.pop()
    if len(raw) != len(table.rows):
        raise ValueError(
            f"'{labels_path}' has {len(raw)} labels but '{path}' has {len(table.rows)} rows; expected one label per row"
        )
    labels = parse_labels(raw, range(1, len(raw) + 1), labels_path, label_values)
    return Examples(
        texts=table.column(0),
        pairs=table.column(1),
        labels=labels,
        fingerprint=fingerprint("tsv+labels", tuple(label_values), file_sha256(path), file_sha256(labels_path)),
    )


def read_snli_jsonl(path: Path, *, label_values: Sequence[str], layout: str) -> Examples:
    """SNLI-style ``jsonl`` (optionally ``.gz``): ``sentence1``, ``sentence2``, ``gold_label``.

    Pairs whose ``gold_label`` is ``"-"`` (annotators did not agree) are dropped, as in the SNLI paper.
    """
    require_file(path, layout)
    opener = gzip.open if path.suffix == ".gz" else open
    fields = ("sentence1", "sentence2", "gold_label")
    texts: list[str] = []
    pairs: list[str] = []
    raw: list[str] = []
    lines: list[int] = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            missing = [f for f in fields if f not in record]
            if missing:
                raise ValueError(
                    f"'{path}', line {line_number}: missing fields {missing}; expected {list(fields)}, "
                    f"found {sorted(record)}"
                )
            if record["gold_label"] == "-":
                continue
            texts.append(record["sentence1"])
            pairs.append(record["sentence2"])
            raw.append(record["gold_label"])
            lines.append(line_number)
    return Examples(
        texts=texts,
        pairs=pairs,
        labels=parse_labels(raw, lines, path, label_values),
        fingerprint=fingerprint("snli-jsonl", tuple(label_values), file_sha256(path)),
    )
