"""Word-tagging readers (CoNLL-U, XTREME tsv, CoNLL-2003) and first-sub-token tokenization on tiny generated files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lightning_compress.data.token_readers import (
    CONLL2003_TO_PANX,
    PANX_TAGS,
    UPOS_TAGS,
    TokenExamples,
    read_conll2003,
    read_conllu,
    read_token_tsv,
)
from lightning_compress.data.token_tokenized import (
    TaggedTokenDataset,
    first_subtoken_labels,
    tokenize_tagged,
)
from tests.data.token_fixtures import conllu_text, pos_sentences, write_panx, write_tagged_tsv

LAYOUT = "the tiny layout"


def upos(*tags: str) -> list[int]:
    return [UPOS_TAGS.index(t) for t in tags]


def test_conllu_skips_comments_multiword_tokens_and_empty_nodes(tmp_path: Path) -> None:
    path = tmp_path / "xx-ud-dev.conllu"
    path.write_text(conllu_text(pos_sentences(2), "xx"), encoding="utf-8")
    examples = read_conllu(path, label_values=UPOS_TAGS, layout=LAYOUT)
    assert examples.words == [["The", "unaffable", "cat", "sleeps", "."], ["She", "reads", "books"]]
    assert examples.tags == [upos("DET", "ADJ", "NOUN", "VERB", "PUNCT"), upos("PRON", "VERB", "NOUN")]


def test_conllu_file_without_final_blank_line(tmp_path: Path) -> None:
    path = tmp_path / "x.conllu"
    path.write_text("1\tHi\thi\tINTJ\t_\t_\t0\troot\t_\t_\n2\t!\t!\tPUNCT\t_\t_\t1\tpunct\t_\t_", encoding="utf-8")
    assert read_conllu(path, label_values=UPOS_TAGS, layout=LAYOUT).tags == [upos("INTJ", "PUNCT")]


def test_conllu_wrong_column_count_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.conllu"
    path.write_text(
        "# sent_id = 1\n1\tHi\thi\tINTJ\t_\t_\t0\troot\t_\t_\n2\t!\t!\tPUNCT\t_\t_\t1\tpunct\n\n", encoding="utf-8"
    )
    message = f"'{path}', line 3: 8 tab-separated fields, expected 10 (CoNLL-U: ID FORM LEMMA UPOS"
    with pytest.raises(ValueError, match=re.escape(message)):
        read_conllu(path, label_values=UPOS_TAGS, layout=LAYOUT)


def test_conllu_bad_word_id(tmp_path: Path) -> None:
    path = tmp_path / "bad.conllu"
    path.write_text("x1\tHi\thi\tINTJ\t_\t_\t0\troot\t_\t_\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 1: word ID 'x1' is not an integer"):
        read_conllu(path, label_values=UPOS_TAGS, layout=LAYOUT)


def test_unknown_tag_names_file_line_and_label_set(tmp_path: Path) -> None:
    path = tmp_path / "bad.conllu"
    path.write_text(
        "1\tHi\thi\tINTJ\t_\t_\t0\troot\t_\t_\n\n1\tYo\tyo\tGREETING\t_\t_\t0\troot\t_\t_\n", encoding="utf-8"
    )
    with pytest.raises(ValueError, match=re.escape(f"'{path}', line 3: tag 'GREETING' is not one of ['ADJ', 'ADP'")):
        read_conllu(path, label_values=UPOS_TAGS, layout=LAYOUT)
    tsv = write_tagged_tsv(tmp_path / "dev-xx.tsv", [[("Bob", "B-PER")], [("Acme", "B-MISC")]])
    with pytest.raises(ValueError, match=re.escape(f"'{tsv}', line 3: tag 'B-MISC' is not one of ['O', 'B-PER'")):
        read_token_tsv(tsv, label_values=PANX_TAGS, layout=LAYOUT)


def test_missing_file_names_path_and_layout(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(f"No file at '{tmp_path / 'none.tsv'}'; expected {LAYOUT}")):
        read_token_tsv(tmp_path / "none.tsv", label_values=PANX_TAGS, layout=LAYOUT)


def test_token_tsv_sentences_and_field_count(tmp_path: Path) -> None:
    root = write_panx(tmp_path, languages=("de",), n_train=3)
    examples = read_token_tsv(root / "ner/panx/en/train-en.tsv", label_values=PANX_TAGS, layout=LAYOUT)
    assert len(examples) == 3
    assert examples.words[1] == ["The", "United", "Nations", "met"]
    assert examples.tags[1] == [0, 3, 4, 0]
    bad = tmp_path / "bad.tsv"
    bad.write_text("Bob\tB-PER\nsays hi\n", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(f"'{bad}', line 2: 1 tab-separated fields, expected 2 (word, tag)")):
        read_token_tsv(bad, label_values=PANX_TAGS, layout=LAYOUT)


def test_conll2003_docstart_and_misc_to_o(tmp_path: Path) -> None:
    path = write_panx(tmp_path) / "ner/conll2003/en/eng.train"
    examples = read_conll2003(path, label_values=PANX_TAGS, layout=LAYOUT, tag_map=CONLL2003_TO_PANX)
    assert examples.words == [
        ["EU", "rejects", "German", "call"],
        ["Peter", "Blackburn"],
        ["New", "York", "in", "London"],
    ]
    # B-ORG O O(MISC) O | B-PER I-PER | O(MISC) O(MISC) O B-LOC
    assert examples.tags == [[3, 0, 0, 0], [1, 2], [0, 0, 0, 5]]
    with pytest.raises(ValueError, match=r"eng\.train', line 5: tag 'B-MISC' is not one of"):
        read_conll2003(path, label_values=PANX_TAGS, layout=LAYOUT)


def test_token_examples_select_and_concatenate() -> None:
    a = TokenExamples([["a"], ["b", "c"]], [[0], [1, 2]], "fa")
    b = TokenExamples([["d"]], [[3]], "fb")
    both = TokenExamples.concatenate([a, b])
    assert both.words == [["a"], ["b", "c"], ["d"]] and len(both) == 3
    picked = both.select([2, 0])
    assert picked.words == [["d"], ["a"]] and picked.tags == [[3], [0]]
    assert picked.fingerprint != both.fingerprint
    with pytest.raises(ValueError, match="sentence 0 has 2 words but 1 tags"):
        TokenExamples([["a", "b"]], [[0]], "f")


def test_first_subtoken_labels() -> None:
    assert first_subtoken_labels([None, 0, 1, 1, None], [5], skip_words=1) == [-100, -100, 5, -100, -100]
    assert first_subtoken_labels([None, 0, 0, 1, 2, 2, None], [7, 8, 9]) == [-100, 7, -100, 8, 9, -100, -100]


def test_tokenize_tagged_labels_first_subtoken(session_tokenizer) -> None:
    examples = TokenExamples([["The", "unaffable", "cat"], ["Hi"]], [[5, 0, 7], [6]], "f")
    data = tokenize_tagged(session_tokenizer, examples, max_seq_length=32)
    dataset = TaggedTokenDataset(data)
    first = dataset[0]
    tokens = session_tokenizer.convert_ids_to_tokens(first["input_ids"])
    assert tokens == ["[CLS]", "the", "una", "##ffa", "##ble", "cat", "[SEP]"]
    assert first["labels"] == [-100, 5, 0, -100, -100, 7, -100]
    assert first["attention_mask"] == [1] * 7 and first["idx"] == 0
    assert dataset[1]["labels"] == [-100, 6, -100] and dataset.truncated_words == 0

    # A prefix word is not scored; truncation drops (and counts) the words past max_seq_length.
    prefixed = TaggedTokenDataset(tokenize_tagged(session_tokenizer, examples, max_seq_length=5, text_prefix="query: "))
    assert session_tokenizer.convert_ids_to_tokens(prefixed[0]["input_ids"]) == ["[CLS]", "query", ":", "the", "[SEP]"]
    assert prefixed[0]["labels"] == [-100, -100, -100, 5, -100]
    assert prefixed.truncated_words == 2
