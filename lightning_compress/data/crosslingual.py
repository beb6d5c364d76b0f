"""Zero-shot cross-lingual transfer: train on English, evaluate on every language (XNLI, PAWS-X).

Validation and test yield one dataloader per language, named by ``task_spec.eval_names`` (English first), so the
model logs ``val/<lang>/accuracy``, their mean and the mean over non-English languages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from pytorch_lightning.utilities import rank_zero_info

from lightning_compress.data.base import TokenizedDataModule
from lightning_compress.data.checks import check_choice, check_path, check_str, invalid
from lightning_compress.data.examples import Examples
from lightning_compress.data.hub_data import examples_from_hub, load_hub_split
from lightning_compress.data.readers import read_snli_jsonl, read_tsv_examples, read_tsv_with_label_file
from lightning_compress.hub import DEFAULT_PRETRAINED
from lightning_compress.tasks import TaskSpec

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
    """

    name: str
    languages: tuple[str, ...]
    label_values: tuple[str, ...]
    label_names: tuple[str, ...]
    hub_id: str
    hub_columns: tuple[str, str]
    train_sources: Mapping[str, tuple[str, ...]]
    local_test_languages: tuple[str, ...]


_NLI = ("entailment", "neutral", "contradiction")

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
    }
)

LOCAL_LAYOUT = {
    "xnli": "<data_dir>/snli/snli_1.0_train_subset.jsonl.gz, <data_dir>/xnli/dev-<lang>.tsv (sentence1, sentence2, "
    "label; no header), <data_dir>/xnli/test-<lang>.tsv (sentence1, sentence2) and <data_dir>/xnli/test-labels.txt",
    "pawsx": "<data_dir>/pawsx/dev-<lang>.tsv (sentence1, sentence2, label; no header) and "
    "<data_dir>/pawsx/labeled_test/test-<lang>.tsv (header id, sentence1, sentence2, label; the XTREME "
    "pawsx/test-<lang>.tsv files are unlabelled)",
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
    """Evaluation languages, English first, then in the order given (default: all the task has labels for).

    When training on English dev data (``train_source="dev_en"``) the English dev set is the training set, so it is
    left out of the default dev evaluation and refused when asked for explicitly.
    """
    english_is_train = train_source == "dev_en" and eval_split == "dev"
    if languages is None:
        pool = task.local_test_languages if (local and eval_split == "test") else task.languages
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
    """Train on English, evaluate zero-shot on every language of XNLI or PAWS-X.

    Local files (``data_dir`` set, the layout of the shared data folder):

    * XNLI: train on SNLI (``snli/snli_1.0_train_subset.jsonl.gz``, no-consensus ``-`` pairs dropped) or on
      ``xnli/dev-en.tsv`` (``train_source="dev_en"``); evaluate on ``xnli/dev-<lang>.tsv`` or, with
      ``eval_split="test"``, on ``xnli/test-<lang>.tsv`` with the row-aligned ``xnli/test-labels.txt``.
    * PAWS-X: the English train set is not available locally, so the model trains on ``pawsx/dev-en.tsv`` and English
      is dropped from dev evaluation (it would score the training data). ``eval_split="test"`` uses the labelled
      ``pawsx/labeled_test/test-<lang>.tsv``, which exist for ``de`` and ``zh`` only.

    Hub (``data_dir=None``): XNLI trains on MNLI (``nyu-mll/glue``, ``mnli``) and evaluates on
    ``facebook/xnli``; PAWS-X trains and evaluates on ``google-research-datasets/paws-x``. ``dev_en`` selects the
    English validation split as training data there too.

    ``eval_split`` chooses the split behind both the validation and the test dataloaders, so that both have the
    languages of ``task_spec.eval_names``.

    Args:
        task: ``"xnli"`` or ``"pawsx"`` (``"paws-x"`` accepted).
        data_dir: Root holding ``xnli/``, ``snli/``, ``pawsx/``; ``None`` for the hub.
        train_source: English training data: local ``snli`` (XNLI default) or ``dev_en``; hub ``mnli`` (XNLI default),
            ``train`` (PAWS-X default) or ``dev_en``. ``None`` picks the default.
        languages: Evaluation languages; ``None`` = all languages with labels for ``eval_split``.
        eval_split: ``"dev"`` or ``"test"``.
        tokenizer, max_seq_length, batch_size, eval_batch_size, num_workers, max_train_samples, max_eval_samples,
        seed, text_prefix, cache_dir: see :class:`TokenizedDataModule`. ``text_prefix`` (e.g. ``"query: "`` for
        multilingual-e5) goes before the first sentence of each pair.
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
        self.data_dir = None if data_dir is None else Path(data_dir).expanduser()
        where = "hub" if self.data_dir is None else "local"
        sources = self.xtask.train_sources[where]
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
        if self.train_source == "dev_en" and eval_split == "dev" and languages is None:
            rank_zero_info(f"{OWNER}: training on English dev data, so English is left out of dev evaluation")
        self.task_spec = TaskSpec(
            name=self.xtask.name,
            num_labels=len(self.xtask.label_names),
            kind="classification",
            metrics=("accuracy",),
            eval_names=self.languages,
            label_names=self.xtask.label_names,
        )

    # ----------------------------------------------------------------- train
    def train_examples(self) -> Examples:
        """English training pairs from ``train_source``."""
        if self.data_dir is None:
            return self._train_from_hub()
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

    def _hub_split(self, lang: str, split: str) -> Examples:
        text, pair = self.xtask.hub_columns
        return examples_from_hub(
            load_hub_split(self.xtask.hub_id, lang, split),
            source=f"{self.xtask.hub_id}/{lang}[{split}]",
            text=text,
            pair=pair,
            label="label",
            num_labels=len(self.xtask.label_names),
        )

    def _layout(self) -> str:
        return f"the {self.xtask.name} layout {LOCAL_LAYOUT[self.xtask.name]}"
