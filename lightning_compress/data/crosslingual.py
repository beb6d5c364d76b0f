"""Zero-shot cross-lingual transfer: train on English, evaluate on every language (XNLI, PAWS-X, UD POS, PAN-X NER,
and the hub-only XGLUE tasks NC, QAM, QADSM, WPR).

Validation and test yield one dataloader per language, named by ``task_spec.eval_names`` (English first), so the
model logs ``val/<lang>/<metric>``, their mean and the mean over non-English languages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from pytorch_lightning.utilities import rank_zero_info
from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding

from lightning_compress.data.base import TokenizedDataModule
from lightning_compress.data.examples import Examples
from lightning_compress.data.hub_data import examples_from_hub, load_hub_split
from lightning_compress.data.paths import resolve_data_dir
from lightning_compress.data.readers import read_snli_jsonl, read_tsv_examples, read_tsv_with_label_file
from lightning_compress.data.token_readers import (
    CONLL2003_TO_PANX,
    PANX_TAGS,
    UPOS_TAGS,
    TokenExamples,
    read_conll2003,
    read_conllu,
    read_token_tsv,
)
from lightning_compress.data.token_tokenized import TaggedTokenDataset, tagged_cache_key, tokenize_tagged
from lightning_compress.data.tokenized import TokenizedDataset, load_tokenized, save_tokenized, tokenizer_fingerprint
from lightning_compress.data.xglue_hub import (
    XGLUE_HUB_ID,
    XGLUE_SENTENCE_TASKS,
    token_examples_from_hub,
    xglue_sentence_examples,
)
from lightning_compress.hub import DEFAULT_PRETRAINED
from lightning_compress.tasks import TaskSpec
from lightning_compress.validation import check_choice, check_path, check_str, invalid

OWNER = "CrossLingualDataModule"


@dataclass(frozen=True)
class CrossLingualTask:
    """Languages, labels and data sources of one cross-lingual task.

    Args:
        name: Task name (``xnli``, ``pawsx``).
        languages: All evaluation languages, English first.
        label_values: Raw labels of the local files in label-id order (ids equal those of the hub data sets).
        label_names: Readable label names in label-id order.
        hub_id: Hub data set with one config per language.
        hub_columns: (text, second text) columns of ``hub_id``; labels are in ``label``.
        train_sources: Valid ``train_source`` values for local files and for the hub; the first is the default.
        local_test_languages: Languages with a labelled local test file.
        kind: ``"sentence"`` (one label per text pair) or ``"token"`` (one tag per word).
        metrics: Metric names of the task spec; the first is the main one.
        local_dev_languages: Languages with a labelled local dev file; ``None`` = all of ``languages``.
        hub_languages: Languages of the hub data set; ``None`` = all of ``languages``.
        hub_config: Hub config name, formatted with ``lang`` (``"{lang}"``: one config per language).
        hub_split: Hub split name, formatted with ``split`` (``validation``/``test``) and ``lang``; the English
            train split is always ``train``.
    """

    name: str
    languages: tuple[str, ...]
    label_values: tuple[str, ...]
    label_names: tuple[str, ...]
    hub_id: str
    hub_columns: tuple[str, str]
    train_sources: Mapping[str, tuple[str, ...]]
    local_test_languages: tuple[str, ...]
    kind: Literal["sentence", "token"] = "sentence"
    metrics: tuple[str, ...] = ("accuracy",)
    local_dev_languages: tuple[str, ...] | None = None
    hub_languages: tuple[str, ...] | None = None
    hub_config: str = "{lang}"
    hub_split: str = "{split}"


_NLI = ("entailment", "neutral", "contradiction")
#: Languages with UD dev and test files in the shared data (Thai PUD has a test file only).
_UD_LOCAL = ("en", "de", "es", "fr", "zh", "tr", "vi", "bg", "el", "it", "nl", "pt", "pl", "ur")
#: XGLUE ``pos`` languages.
_XGLUE_POS = ("en", "de", "es", "nl", "bg", "el", "fr", "pl", "tr", "vi", "zh", "ur", "hi", "it", "ar", "ru", "th")
#: PAN-X languages of the shared data (English train/dev, dev for the others).
_PANX = ("en", "ar", "de", "es", "fr", "hi", "it", "nl", "pt", "ru", "tr", "ur", "vi", "zh")


def _xglue_sentence_task(name: str, languages: tuple[str, ...]) -> CrossLingualTask:
    names = XGLUE_SENTENCE_TASKS[name].label_names
    return CrossLingualTask(
        name=name,
        languages=languages,
        label_values=names,
        label_names=names,
        hub_id=XGLUE_HUB_ID,
        hub_columns=("", ""),
        train_sources=MappingProxyType({"local": (), "hub": ("train",)}),
        local_test_languages=(),
        hub_config=name,
        hub_split="{split}.{lang}",
    )


#: The supported tasks. XNLI labels follow MNLI/XNLI on the hub (0 entailment, 1 neutral, 2 contradiction).
CROSSLINGUAL_TASKS: Mapping[str, CrossLingualTask] = MappingProxyType(
    {
        "xnli": CrossLingualTask(
            name="xnli",
            languages=("en", "ar", "bg", "de", "el", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh"),
            label_values=_NLI,
            label_names=_NLI,
            hub_id="facebook/xnli",
            hub_columns=("premise", "hypothesis"),
            train_sources=MappingProxyType({"local": ("snli", "dev_en"), "hub": ("mnli", "dev_en")}),
            local_test_languages=(
                "en",
                "ar",
                "bg",
                "de",
                "el",
                "es",
                "fr",
                "hi",
                "ru",
                "sw",
                "th",
                "tr",
                "ur",
                "vi",
                "zh",
            ),
        ),
        "pawsx": CrossLingualTask(
            name="pawsx",
            languages=("en", "de", "es", "fr", "ja", "ko", "zh"),
            label_values=("0", "1"),
            label_names=("not_paraphrase", "paraphrase"),
            hub_id="google-research-datasets/paws-x",
            hub_columns=("sentence1", "sentence2"),
            train_sources=MappingProxyType({"local": ("dev_en",), "hub": ("train", "dev_en")}),
            local_test_languages=("de", "zh"),
        ),
        "udpos": CrossLingualTask(
            name="udpos",
            languages=_XGLUE_POS + ("pt",),
            label_values=UPOS_TAGS,
            label_names=UPOS_TAGS,
            hub_id=XGLUE_HUB_ID,
            hub_columns=("words", "pos"),
            train_sources=MappingProxyType({"local": ("xtreme_en",), "hub": ("train",)}),
            local_test_languages=_UD_LOCAL + ("th",),
            kind="token",
            metrics=("token_accuracy",),
            local_dev_languages=_UD_LOCAL,
            hub_languages=_XGLUE_POS,
            hub_config="pos",
            hub_split="{split}.{lang}",
        ),
        "panx": CrossLingualTask(
            name="panx",
            languages=_PANX,
            label_values=PANX_TAGS,
            label_names=PANX_TAGS,
            hub_id="google/xtreme",
            hub_columns=("tokens", "ner_tags"),
            train_sources=MappingProxyType({"local": ("panx", "conll2003"), "hub": ("train",)}),
            local_test_languages=(),
            kind="token",
            metrics=("span_f1", "token_accuracy"),
            hub_config="PAN-X.{lang}",
        ),
        "nc": _xglue_sentence_task("nc", ("en", "de", "es", "fr", "ru")),
        "qam": _xglue_sentence_task("qam", ("en", "de", "fr")),
        "qadsm": _xglue_sentence_task("qadsm", ("en", "de", "fr")),
        "wpr": _xglue_sentence_task("wpr", ("en", "de", "es", "fr", "it", "pt", "zh")),
    }
)

LOCAL_LAYOUT = {
    "xnli": "<data_dir>/snli/snli_1.0_train_subset.jsonl.gz, <data_dir>/xnli/dev-<lang>.tsv (sentence1, sentence2, "
    "label; no header), <data_dir>/xnli/test-<lang>.tsv (sentence1, sentence2) and <data_dir>/xnli/test-labels.txt",
    "pawsx": "<data_dir>/pawsx/dev-<lang>.tsv (sentence1, sentence2, label; no header) and "
    "<data_dir>/pawsx/labeled_test/test-<lang>.tsv (header id, sentence1, sentence2, label; the XTREME "
    "pawsx/test-<lang>.tsv files are unlabelled)",
    "udpos": "<data_dir>/ud/xtreme_udpos/{train,dev}-en.tsv (word \\t UPOS, blank line between sentences) and "
    "<data_dir>/ud/<lang>/<treebank>-ud-{dev,test}.conllu",
    "panx": "<data_dir>/ner/panx/en/train-en.tsv, <data_dir>/ner/panx/<lang>/dev-<lang>.tsv (word \\t tag, blank "
    "line between sentences) and, for train_source='conll2003', <data_dir>/ner/conll2003/en/eng.train",
}


def crosslingual_task_name(task: str) -> str:
    """Canonical task name: case-insensitive, ``-``/``_`` ignored (``"PAWS-X"`` -> ``"pawsx"``)."""
    check_str(OWNER, "task", task)
    key = task.lower().replace("-", "").replace("_", "")
    if key not in CROSSLINGUAL_TASKS:
        raise ValueError(invalid(OWNER, "task", task, f"one of {list(CROSSLINGUAL_TASKS)}"))
    return key


def resolve_languages(
    task: CrossLingualTask, languages: Sequence[str] | None, train_source: str, eval_split: str, local: bool
) -> tuple[str, ...]:
    """Evaluation languages, English first, then in the order given (default: all the task has labels for in
    ``eval_split`` of the local files or of the hub).

    When training on English dev data (``train_source="dev_en"``) the English dev set is the training set, so it is
    left out of the default dev evaluation and refused when asked for explicitly.
    """
    english_is_train = train_source == "dev_en" and eval_split == "dev"
    if languages is None:
        if local:
            pool = task.local_test_languages if eval_split == "test" else (task.local_dev_languages or task.languages)
        else:
            pool = task.hub_languages or task.languages
        chosen = [lang for lang in pool if not (english_is_train and lang == "en")]
    else:
        if isinstance(languages, str) or not all(isinstance(lang, str) for lang in languages):
            raise TypeError(invalid(OWNER, "languages", languages, "a list of language codes or None"))
        chosen = list(languages)
        unknown = [lang for lang in chosen if lang not in task.languages]
        if unknown or len(set(chosen)) != len(chosen) or not chosen:
            raise ValueError(
                invalid(
                    OWNER, "languages", languages, f"distinct codes from {list(task.languages)} for task {task.name!r}"
                )
            )
        if english_is_train and "en" in chosen:
            raise ValueError(
                invalid(
                    OWNER,
                    "languages",
                    languages,
                    "no 'en' with train_source='dev_en' and eval_split='dev': English dev is the "
                    "training set (evaluate English with eval_split='test' or drop it)",
                )
            )
    return tuple(sorted(chosen, key=lambda lang: lang != "en"))


class CrossLingualDataModule(TokenizedDataModule):
    """Train on English, evaluate zero-shot on every language of XNLI, PAWS-X, UD POS, PAN-X NER or an XGLUE task.

    Local files (``data_dir`` set, the layout of the shared data folder):

    * XNLI: train on SNLI (``snli/snli_1.0_train_subset.jsonl.gz``, no-consensus ``-`` pairs dropped) or on
      ``xnli/dev-en.tsv`` (``train_source="dev_en"``); evaluate on ``xnli/dev-<lang>.tsv`` or, with
      ``eval_split="test"``, on ``xnli/test-<lang>.tsv`` with the row-aligned ``xnli/test-labels.txt``.
    * PAWS-X: the English train set is not available locally, so the model trains on ``pawsx/dev-en.tsv`` and English
      is dropped from dev evaluation (it would score the training data). ``eval_split="test"`` uses the labelled
      ``pawsx/labeled_test/test-<lang>.tsv``, which exist for ``de`` and ``zh`` only.
    * UD POS (``udpos``, XGLUE POS): train on XTREME's English UD v2.5 split ``ud/xtreme_udpos/train-en.tsv``
      (``word \t UPOS``); evaluate on ``ud/<lang>/*-ud-dev.conllu`` (or ``-test``; several treebanks of one language
      are concatenated in name order) with the UPOS column; multiword-token (``n-m``) and empty-node (``n.m``) lines
      are skipped. Thai has a test file only. Metric: word-level ``token_accuracy``.
    * PAN-X NER (``panx``): train on ``ner/panx/en/train-en.tsv`` or, with ``train_source="conll2003"``, on
      CoNLL-2003 ``ner/conll2003/en/eng.train`` with MISC mapped to ``O`` (PAN-X has no MISC type); evaluate on
      ``ner/panx/<lang>/dev-<lang>.tsv`` (the PAN-X test files carry no labels). Metrics: entity-level ``span_f1``
      (seqeval's definition) and ``token_accuracy``. XGLUE's NER test sets for de, es and nl are CoNLL-2002/2003,
      which are not in the shared data: evaluate with ``languages=["en", "de", "es", "nl"]`` on PAN-X as the
      substitute, and do not compare those numbers with XGLUE's published NER F1.

    Token tasks put each word's tag on its first sub-token and ``-100`` on the others and on special tokens, so the
    metrics are word-level; words cut by ``max_seq_length`` are not scored (their count is reported when tokenizing).

    Hub (``data_dir=None``): XNLI trains on MNLI (``nyu-mll/glue``, ``mnli``) and evaluates on
    ``facebook/xnli``; PAWS-X trains and evaluates on ``google-research-datasets/paws-x``. ``dev_en`` selects the
    English validation split as training data there too. ``udpos`` reads ``microsoft/xglue`` config ``pos``;
    ``panx`` reads ``google/xtreme`` configs ``PAN-X.<lang>``; ``nc``, ``qam``, ``qadsm`` and ``wpr`` (hub only)
    read ``microsoft/xglue`` (fields in :mod:`lightning_compress.data.xglue_hub`; WPR is scored by accuracy over its
    five relevance grades, not XGLUE's nDCG).

    ``eval_split`` chooses the split behind both the validation and the test dataloaders, so that both have the
    languages of ``task_spec.eval_names``.

    Args:
        task: ``"xnli"``, ``"pawsx"`` (``"paws-x"`` accepted), ``"udpos"``, ``"panx"``, ``"nc"``, ``"qam"``,
            ``"qadsm"`` or ``"wpr"``.
        data_dir: Root holding ``xnli/``, ``snli/``, ``pawsx/``, ``ud/``, ``ner/``; ``None`` for the hub.
        train_source: English training data: local ``snli`` (XNLI default) or ``dev_en``, ``xtreme_en`` (UD POS),
            ``panx`` (PAN-X default) or ``conll2003``; hub ``mnli`` (XNLI default), ``train`` or ``dev_en``.
            ``None`` picks the default.
        languages: Evaluation languages; ``None`` = all languages with labels for ``eval_split``.
        eval_split: ``"dev"`` or ``"test"``.
        tokenizer, max_seq_length, batch_size, eval_batch_size, num_workers, max_train_samples, max_eval_samples,
        seed, text_prefix, cache_dir: see :class:`TokenizedDataModule`. ``text_prefix`` (e.g. ``"query: "`` for
        multilingual-e5) goes before the first sentence of each pair (token tasks: before the words, unscored).
    """

    def __init__(
        self,
        task: str = "xnli",
        data_dir: str | None = None,
        train_source: str | None = None,
        languages: list[str] | None = None,
        eval_split: Literal["dev", "test"] = "dev",
        tokenizer: str = DEFAULT_PRETRAINED,
        max_seq_length: int = 128,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        max_train_samples: int | None = None,
        max_eval_samples: int | None = None,
        seed: int = 42,
        text_prefix: str = "",
        cache_dir: str | None = None,
    ) -> None:
        super().__init__(
            tokenizer=tokenizer,
            max_seq_length=max_seq_length,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            max_train_samples=max_train_samples,
            max_eval_samples=max_eval_samples,
            seed=seed,
            text_prefix=text_prefix,
            cache_dir=cache_dir,
        )
        self.task = crosslingual_task_name(task)
        check_path(OWNER, "data_dir", data_dir)
        check_choice(OWNER, "eval_split", eval_split, ("dev", "test"))
        self.xtask = CROSSLINGUAL_TASKS[self.task]
        self.data_dir = resolve_data_dir(data_dir, OWNER)
        where = "hub" if self.data_dir is None else "local"
        sources = self.xtask.train_sources[where]
        if not sources:
            raise ValueError(invalid(OWNER, "data_dir", data_dir, f"None: {self.task} loads from the hub only"))
        check_str(OWNER, "train_source", train_source, allow_none=True)
        if train_source is not None and train_source not in sources:
            raise ValueError(
                invalid(
                    OWNER,
                    "train_source",
                    train_source,
                    f"one of {list(sources)} for {self.task} from {where} data "
                    f"(hub: data_dir=None; local: data_dir set)",
                )
            )
        self.train_source = train_source or sources[0]
        self.eval_split = eval_split
        self.languages = resolve_languages(
            self.xtask, languages, self.train_source, eval_split, local=self.data_dir is not None
        )
        if not self.languages:
            raise ValueError(
                invalid(
                    OWNER, "eval_split", eval_split, f"'dev': {self.task} has no labelled {eval_split} files ({where})"
                )
            )
        if self.train_source == "dev_en" and eval_split == "dev" and languages is None:
            rank_zero_info(f"{OWNER}: training on English dev data, so English is left out of dev evaluation")
        self.task_spec = TaskSpec(
            name=self.xtask.name,
            num_labels=len(self.xtask.label_names),
            kind="token_classification" if self.xtask.kind == "token" else "classification",
            metrics=self.xtask.metrics,
            eval_names=self.languages,
            label_names=self.xtask.label_names,
        )

    # ----------------------------------------------------------------- train
    def train_examples(self) -> Examples:
        """English training pairs (sentences for token tasks) from ``train_source``."""
        if self.data_dir is None:
            return self._train_from_hub()
        if self.task == "udpos":
            return self._tagged_tsv(self.data_dir / "ud" / "xtreme_udpos" / "train-en.tsv")
        if self.task == "panx" and self.train_source == "conll2003":
            return read_conll2003(
                self.data_dir / "ner" / "conll2003" / "en" / "eng.train",
                label_values=PANX_TAGS,
                layout=self._layout(),
                tag_map=CONLL2003_TO_PANX,
            )
        if self.task == "panx":
            return self._tagged_tsv(self.data_dir / "ner" / "panx" / "en" / "train-en.tsv")
        if self.train_source == "snli":
            path = self.data_dir / "snli" / "snli_1.0_train_subset.jsonl.gz"
            return read_snli_jsonl(path, label_values=self.xtask.label_values, layout=self._layout())
        return self._local_tsv(self.data_dir / self.xtask.name / "dev-en.tsv")

    def _train_from_hub(self) -> Examples:
        if self.train_source == "mnli":
            dataset, source = load_hub_split("nyu-mll/glue", "mnli", "train"), "nyu-mll/glue/mnli[train]"
            return examples_from_hub(
                dataset,
                source=source,
                text="premise",
                pair="hypothesis",
                label="label",
                num_labels=len(self.xtask.label_names),
            )
        return self._hub_split("en", "train" if self.train_source == "train" else "validation")

    # ----------------------------------------------------------------- evaluation
    def eval_examples(self, split: str) -> list[Examples]:
        """One labelled set per language of ``eval_names``, from ``eval_split`` (for validation and test alike)."""
        return [self._eval_language(lang) for lang in self.languages]

    def _eval_language(self, lang: str) -> Examples:
        if self.data_dir is None:
            return self._hub_split(lang, "validation" if self.eval_split == "dev" else "test")
        if self.task == "udpos":
            return self._conllu(lang)
        if self.task == "panx":
            return self._tagged_tsv(self.data_dir / "ner" / "panx" / lang / f"dev-{lang}.tsv")
        folder = self.data_dir / self.xtask.name
        if self.eval_split == "dev":
            return self._local_tsv(folder / f"dev-{lang}.tsv")
        if self.xtask.name == "xnli":
            return read_tsv_with_label_file(
                folder / f"test-{lang}.tsv",
                folder / "test-labels.txt",
                label_values=self.xtask.label_values,
                layout=self._layout(),
            )
        return read_tsv_examples(
            folder / "labeled_test" / f"test-{lang}.tsv",
            has_header=True,
            text="sentence1",
            pair="sentence2",
            label="label",
            label_values=self.xtask.label_values,
            layout=self._layout(),
        )

    # ----------------------------------------------------------------- readers
    def _local_tsv(self, path: Path) -> Examples:
        """XTREME format: no header, ``sentence1 \\t sentence2 \\t label``."""
        return read_tsv_examples(
            path, has_header=False, text=0, pair=1, label=2, label_values=self.xtask.label_values, layout=self._layout()
        )

    def _hub_split(self, lang: str, split: str) -> Examples | TokenExamples:
        config = self.xtask.hub_config.format(lang=lang)
        name = "train" if split == "train" else self.xtask.hub_split.format(split=split, lang=lang)
        dataset, source = load_hub_split(self.xtask.hub_id, config, name), f"{self.xtask.hub_id}/{config}[{name}]"
        if self.xtask.kind == "token":
            words, tags = self.xtask.hub_columns
            return token_examples_from_hub(
                dataset,
                source=source,
                words=(words, "words", "tokens"),
                tags=(tags,),
                label_names=self.xtask.label_names,
            )
        if self.task in XGLUE_SENTENCE_TASKS:
            return xglue_sentence_examples(dataset, task=self.task, source=source)
        text, pair = self.xtask.hub_columns
        return examples_from_hub(
            dataset,
            source=source,
            text=text,
            pair=pair,
            label="label",
            num_labels=len(self.xtask.label_names),
        )

    def _tagged_tsv(self, path: Path) -> TokenExamples:
        """XTREME ``word \\t tag`` format, a blank line after each sentence."""
        return read_token_tsv(path, label_values=self.xtask.label_values, layout=self._layout())

    def _conllu(self, lang: str) -> TokenExamples:
        """The UPOS column of every ``ud/<lang>/*-ud-<split>.conllu`` treebank file, concatenated in name order."""
        folder = self.data_dir / "ud" / lang
        paths = sorted(folder.glob(f"*-ud-{self.eval_split}.conllu"))
        if not paths:
            found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else "no such folder"
            raise FileNotFoundError(
                f"No '{folder}/*-ud-{self.eval_split}.conllu' for language {lang!r} (found: {found}); expected "
                f"{self._layout()}. Drop {lang!r} from `languages` or add its treebank file"
            )
        parts = [read_conllu(p, label_values=self.xtask.label_values, layout=self._layout()) for p in paths]
        return parts[0] if len(parts) == 1 else TokenExamples.concatenate(parts)

    # ----------------------------------------------------------------- token tasks: tokenization and collation
    @property
    def collator(self) -> DataCollatorWithPadding | DataCollatorForTokenClassification:
        """Pads every batch to its longest example (token tasks: labels padded with ``-100``)."""
        if self.xtask.kind == "token":
            return DataCollatorForTokenClassification(self.hf_tokenizer)
        return DataCollatorWithPadding(self.hf_tokenizer)

    def _dataset(self, examples: Examples | TokenExamples, tag: str) -> TokenizedDataset | TaggedTokenDataset:
        """Sentence tasks: see :class:`TokenizedDataModule`. Token tasks: first-sub-token labels, cached alike."""
        if not isinstance(examples, TokenExamples):
            return super()._dataset(examples, tag)
        key = tagged_cache_key(
            examples, tokenizer_fingerprint(self.hf_tokenizer), self.max_seq_length, self.text_prefix
        )
        if key in self._built:
            return self._built[key]
        path = self.cache_dir / f"{self.task_spec.name}-{key[:32]}.pt"
        data = load_tokenized(path)
        if data is None:
            rank_zero_info(f"Tokenizing {len(examples):,} {self.task_spec.name} {tag} sentences (cache: {path})")
            data = tokenize_tagged(self.hf_tokenizer, examples, self.max_seq_length, self.text_prefix)
            save_tokenized(path, data)
        dataset = TaggedTokenDataset(data)
        if dataset.truncated_words:
            rank_zero_info(
                f"{OWNER}: {dataset.truncated_words:,} words of {self.task_spec.name} {tag} fall beyond "
                f"max_seq_length={self.max_seq_length} and are not scored"
            )
        self._built[key] = dataset
        return dataset

    def _layout(self) -> str:
        return f"the {self.xtask.name} layout {LOCAL_LAYOUT[self.xtask.name]}"
