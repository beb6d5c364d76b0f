"""Writers of tiny word-tagging files in the real formats (XTREME tsv, CoNLL-U, CoNLL-2003) and the shared layout."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

#: (word, UPOS) sentences cycled through by the UD writers; "unaffable" splits into several MiniLM word pieces.
POS_SENTENCES = (
    (("The", "DET"), ("unaffable", "ADJ"), ("cat", "NOUN"), ("sleeps", "VERB"), (".", "PUNCT")),
    (("She", "PRON"), ("reads", "VERB"), ("books", "NOUN")),
    (("Paris", "PROPN"), ("is", "AUX"), ("big", "ADJ"), ("!", "PUNCT")),
)

#: (word, PAN-X tag) sentences cycled through by the NER writers.
NER_SENTENCES = (
    (("Angela", "B-PER"), ("Merkel", "I-PER"), ("visited", "O"), ("Paris", "B-LOC"), (".", "O")),
    (("The", "O"), ("United", "B-ORG"), ("Nations", "I-ORG"), ("met", "O")),
    (("Nothing", "O"), ("here", "O")),
)


def write_tagged_tsv(path: Path, sentences: Sequence[Sequence[tuple[str, str]]]) -> Path:
    """``word \\t tag`` lines, a blank line after every sentence (the XTREME udpos / PAN-X format)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("".join(f"{w}\t{t}\n" for w, t in s) + "\n" for s in sentences), encoding="utf-8")
    return path


def conllu_text(sentences: Sequence[Sequence[tuple[str, str]]], lang: str) -> str:
    """CoNLL-U text: comments, one 10-column line per word, a multiword token line before the first sentence's
    second word and an empty node after its last word (both must be skipped by readers)."""
    out: list[str] = []
    for s, sentence in enumerate(sentences):
        out.append(f"# sent_id = {lang}-{s}\n# text = {' '.join(w for w, _ in sentence)}\n")
        for i, (word, tag) in enumerate(sentence, start=1):
            if s == 0 and i == 2:
                out.append(f"2-3\t{lang}mwt\t_\t_\t_\t_\t_\t_\t_\t_\n")
            out.append(f"{i}\t{word}\t{word.lower()}\t{tag}\tX{tag}\t_\t{max(i - 1, 0)}\tdep\t_\t_\n")
        if s == 0:
            out.append(f"{len(sentence)}.1\tghost\tghost\tNOUN\t_\t_\t_\t_\t{len(sentence)}:dep\t_\n")
        out.append("\n")
    return "".join(out)


def pos_sentences(n: int, offset: int = 0) -> list[tuple[tuple[str, str], ...]]:
    return [POS_SENTENCES[(i + offset) % len(POS_SENTENCES)] for i in range(n)]


def ner_sentences(n: int, offset: int = 0) -> list[tuple[tuple[str, str], ...]]:
    return [NER_SENTENCES[(i + offset) % len(NER_SENTENCES)] for i in range(n)]


def write_udpos(root: Path, languages: Sequence[str] = ("en", "de", "fr"), n_train: int = 9, n_eval: int = 6) -> Path:
    """ud/xtreme_udpos/{train,dev}-en.tsv and ud/<lang>/<lang>_tiny-ud-{dev,test}.conllu."""
    write_tagged_tsv(root / "ud" / "xtreme_udpos" / "train-en.tsv", pos_sentences(n_train))
    write_tagged_tsv(root / "ud" / "xtreme_udpos" / "dev-en.tsv", pos_sentences(3))
    for k, lang in enumerate(languages):
        for split in ("dev", "test"):
            path = root / "ud" / lang / f"{lang}_tiny-ud-{split}.conllu"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(conllu_text(pos_sentences(n_eval, offset=k), lang), encoding="utf-8")
    return root


def write_panx(root: Path, languages: Sequence[str] = ("en", "de", "es"), n_train: int = 9, n_dev: int = 6) -> Path:
    """ner/panx/en/train-en.tsv, ner/panx/<lang>/dev-<lang>.tsv and a CoNLL-2003 ner/conll2003/en/eng.train."""
    write_tagged_tsv(root / "ner" / "panx" / "en" / "train-en.tsv", ner_sentences(n_train))
    for k, lang in enumerate(languages):
        write_tagged_tsv(root / "ner" / "panx" / lang / f"dev-{lang}.tsv", ner_sentences(n_dev, offset=k))
    conll = root / "ner" / "conll2003" / "en" / "eng.train"
    conll.parent.mkdir(parents=True, exist_ok=True)
    conll.write_text(
        "-DOCSTART- -X- -X- O\n\n"
        "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\ncall NN I-NP O\n\n"
        "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n\n"
        "-DOCSTART- -X- -X- O\n\n"
        "New NNP B-NP B-MISC\nYork NNP I-NP I-MISC\nin IN B-PP O\nLondon NNP B-NP B-LOC\n",
        encoding="utf-8",
    )
    return root
