"""Pure parsers from local data files (tsv, label lists, SNLI jsonl.gz) to :class:`Examples`.

Every error names the file, and where it helps the line and what was expected, in a single message: a file that
is not UTF-8 names the line of the first bad byte, and a file without data rows (empty, or a header line only) is
refused here rather than as an empty data set later.
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


def not_utf8_error(path: Path, raw: bytes, error: UnicodeDecodeError) -> ValueError:
    """A ``ValueError`` naming ``path``, the line and the first byte of ``raw`` (the file's bytes) that is not UTF-8."""
    start = error.start
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as whole_file:  # `error` may come from a chunk: find the offset in the whole file
        start = whole_file.start
    line = raw.count(b"\n", 0, start) + 1
    return ValueError(
        f"'{path}', line {line}: byte {raw[start : start + 1].hex() or '?'} at offset {start} is not UTF-8; expected a "
        "UTF-8 text file. HINT: convert it (e.g. `iconv -f latin1 -t utf-8`) or download it again."
    )


def no_rows_error(path: Path, header: Sequence[str] | None, layout: str) -> ValueError:
    """A ``ValueError`` for a data file without data rows: empty, or a ``header`` line only."""
    hint = "HINT: the file was probably cut short while downloading or unpacking; download or unpack it again."
    if header:
        return ValueError(f"'{path}' has a header line {list(header)} but no data rows; expected {layout}. {hint}")
    return ValueError(f"'{path}' is empty (no data rows); expected {layout}. {hint}")


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
    """Read a tab-separated file (no quoting); blank lines are skipped; ``ValueError`` naming the line if not UTF-8."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = next(reader, None) if has_header else None
            rows: list[list[str]] = []
            lines: list[int] = []
            for row in reader:
                if row:
                    rows.append(row)
                    lines.append(reader.line_num)
    except UnicodeDecodeError as error:
        raise not_utf8_error(path, path.read_bytes(), error) from None
    return TsvTable(path, header, rows, lines)


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
    if not table.rows:
        raise no_rows_error(table.path, table.header, layout)
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
    if not table.rows:
        raise no_rows_error(table.path, None, layout)
    try:
        with require_file(labels_path, layout).open(encoding="utf-8") as handle:
            raw = [line.rstrip("\r\n") for line in handle]
    except UnicodeDecodeError as error:
        raise not_utf8_error(labels_path, labels_path.read_bytes(), error) from None
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
    try:
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
    except UnicodeDecodeError as error:
        with opener(path, "rb") as handle:
            raise not_utf8_error(path, handle.read(), error) from None
    if not texts:
        raise ValueError(
            f"'{path}' holds no sentence pairs with a gold label (empty, or every gold_label is '-'); expected {layout}"
        )
    return Examples(
        texts=texts,
        pairs=pairs,
        labels=parse_labels(raw, lines, path, label_values),
        fingerprint=fingerprint("snli-jsonl", tuple(label_values), file_sha256(path)),
    )
