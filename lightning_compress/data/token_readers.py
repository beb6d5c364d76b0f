"""Pure parsers from word-per-line files (CoNLL-U, XTREME ``token \\t tag`` tsv, CoNLL-2003) to :class:`TokenExamples`.

Every error names the file and the 1-based line, says what was found and what was expected, in a single message.
Sentences are separated by blank lines; a file need not end with one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from lightning_compress.data.examples import file_sha256, fingerprint
from lightning_compress.data.readers import require_file

#: The 17 Universal POS tags (UD v2) in the alphabetical order of XTREME ``udpos`` and XGLUE ``pos``.
UPOS_TAGS: tuple[str, ...] = (
    "ADJ",
    "ADP",
    "ADV",
    "AUX",
    "CCONJ",
    "DET",
    "INTJ",
    "NOUN",
    "NUM",
    "PART",
    "PRON",
    "PROPN",
    "PUNCT",
    "SCONJ",
    "SYM",
    "VERB",
    "X",
)

#: PAN-X / WikiANN tags (IOB2) in the label-id order of the XTREME ``PAN-X.<lang>`` hub configs.
PANX_TAGS: tuple[str, ...] = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")

#: CoNLL-2003 tags onto the PAN-X tag set: PAN-X has no MISC type, so MISC words become ``O``.
CONLL2003_TO_PANX: Mapping[str, str] = MappingProxyType({"B-MISC": "O", "I-MISC": "O"})

#: Number of tab-separated fields of a CoNLL-U word line (ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC).
CONLLU_FIELDS = 10
#: 0-based CoNLL-U column of the universal part-of-speech tag.
CONLLU_UPOS = 3


@dataclass(frozen=True)
class TokenExamples:
    """One split of a word-tagging data set (NER, POS), before tokenization.

    Args:
        words: The words of every sentence.
        tags: Tag ids (positions in the task's label set), one per word.
        fingerprint: Identifies the content read and how it was parsed (keys the tokenization cache).
    """

    words: list[list[str]]
    tags: list[list[int]]
    fingerprint: str

    def __post_init__(self) -> None:
        if len(self.words) != len(self.tags):
            raise ValueError(f"TokenExamples: {len(self.words)} sentences but {len(self.tags)} tag sequences")
        for i, (words, tags) in enumerate(zip(self.words, self.tags, strict=True)):
            if len(words) != len(tags):
                raise ValueError(f"TokenExamples: sentence {i} has {len(words)} words but {len(tags)} tags")

    def __len__(self) -> int:
        return len(self.words)

    def select(self, indices: Sequence[int]) -> TokenExamples:
        """Sentences at ``indices`` (in that order); the fingerprint records the selection."""
        keep = list(indices)
        return TokenExamples(
            words=[self.words[i] for i in keep],
            tags=[self.tags[i] for i in keep],
            fingerprint=fingerprint(self.fingerprint, "select", hashlib.sha256(repr(keep).encode()).hexdigest()),
        )

    @staticmethod
    def concatenate(parts: Sequence[TokenExamples]) -> TokenExamples:
        """All sentences of ``parts``, in order."""
        return TokenExamples(
            words=[w for part in parts for w in part.words],
            tags=[t for part in parts for t in part.tags],
            fingerprint=fingerprint("concatenate", tuple(part.fingerprint for part in parts)),
        )


class _SentenceBuilder:
    """Collects (word, raw tag) pairs into sentences and maps tags to ids, naming file and line on a bad tag."""

    def __init__(self, path: Path, label_values: Sequence[str], tag_map: Mapping[str, str] | None) -> None:
        self.path = path
        self.label_values = tuple(label_values)
        self.ids = {value: i for i, value in enumerate(label_values)}
        self.tag_map = dict(tag_map or {})
        self.words: list[list[str]] = []
        self.tags: list[list[int]] = []
        self._words: list[str] = []
        self._tags: list[int] = []

    def add(self, word: str, tag: str, line: int) -> None:
        mapped = self.tag_map.get(tag, tag)
        label = self.ids.get(mapped)
        if label is None:
            mapping = f" (after tag_map {self.tag_map})" if self.tag_map else ""
            raise ValueError(
                f"'{self.path}', line {line}: tag {tag!r}{mapping} is not one of {list(self.label_values)}; "
                "fix the line or map the tag onto the label set"
            )
        self._words.append(word)
        self._tags.append(label)

    def end_sentence(self) -> None:
        if self._words:
            self.words.append(self._words)
            self.tags.append(self._tags)
            self._words, self._tags = [], []

    def build(self, *how: object) -> TokenExamples:
        self.end_sentence()
        return TokenExamples(
            words=self.words,
            tags=self.tags,
            fingerprint=fingerprint(
                *how, self.label_values, tuple(sorted(self.tag_map.items())), file_sha256(self.path)
            ),
        )


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(1-based line number, line without its newline)`` for every line of a UTF-8 file."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for number, line in enumerate(handle, start=1):
            yield number, line.rstrip("\r\n")


def read_conllu(path: Path, *, label_values: Sequence[str], layout: str, column: int = CONLLU_UPOS) -> TokenExamples:
    """Sentences of a CoNLL-U file with the tag of ``column`` (default: UPOS) for every syntactic word.

    Comment lines (``#``) are skipped, and so are multiword-token lines (ID ``n-m``, e.g. German ``im`` = ``in dem``:
    the tagged words ``in`` and ``dem`` follow it) and empty nodes (ID ``n.m``), as in the UD evaluation.
    """
    builder = _SentenceBuilder(require_file(path, layout), label_values, None)
    for number, line in _lines(path):
        if not line.strip():
            builder.end_sentence()
            continue
        if line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != CONLLU_FIELDS:
            raise ValueError(
                f"'{path}', line {number}: {len(fields)} tab-separated fields, expected {CONLLU_FIELDS} "
                "(CoNLL-U: ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC)"
            )
        word_id = fields[0]
        if "-" in word_id or "." in word_id:
            continue
        if not word_id.isdigit():
            raise ValueError(
                f"'{path}', line {number}: word ID {word_id!r} is not an integer, a range 'n-m' or an empty node 'n.m'"
            )
        builder.add(fields[1], fields[column], number)
    return builder.build("conllu", column)


def read_token_tsv(
    path: Path, *, label_values: Sequence[str], layout: str, tag_map: Mapping[str, str] | None = None
) -> TokenExamples:
    """Sentences of an XTREME-style file: one ``word \\t tag`` per line, a blank line after each sentence.

    ``tag_map`` renames raw tags before they are looked up in ``label_values``.
    """
    builder = _SentenceBuilder(require_file(path, layout), label_values, tag_map)
    for number, line in _lines(path):
        if not line.strip():
            builder.end_sentence()
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise ValueError(f"'{path}', line {number}: {len(fields)} tab-separated fields, expected 2 (word, tag)")
        builder.add(fields[0], fields[1].strip(), number)
    return builder.build("token-tsv")


def read_conll2003(
    path: Path, *, label_values: Sequence[str], layout: str, tag_map: Mapping[str, str] | None = None
) -> TokenExamples:
    """Sentences of a CoNLL-2003 file (``word POS chunk NER`` separated by spaces; ``-DOCSTART-`` lines skipped).

    The NER tag is the last column. ``tag_map`` renames raw tags (e.g. :data:`CONLL2003_TO_PANX`).
    """
    builder = _SentenceBuilder(require_file(path, layout), label_values, tag_map)
    for number, line in _lines(path):
        if not line.strip():
            builder.end_sentence()
            continue
        fields = line.split()
        if fields[0] == "-DOCSTART-":
            builder.end_sentence()
            continue
        if len(fields) != 4:
            raise ValueError(
                f"'{path}', line {number}: {len(fields)} space-separated fields, expected 4 (word POS chunk NER)"
            )
        builder.add(fields[0], fields[3], number)
    return builder.build("conll2003")
