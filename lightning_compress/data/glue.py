"""GLUE benchmark (all nine tasks) from the original tsv release or from the Hugging Face hub."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from lightning_compress.data.base import TokenizedDataModule
from lightning_compress.data.examples import Examples
from lightning_compress.data.hub_data import examples_from_hub, load_hub_split
from lightning_compress.data.paths import resolve_data_dir
from lightning_compress.data.readers import Column, read_tsv_examples
from lightning_compress.hub import DEFAULT_PRETRAINED
from lightning_compress.tasks import TaskSpec
from lightning_compress.validation import check_path, check_str, invalid

GLUE_HUB_ID = "nyu-mll/glue"


@dataclass(frozen=True)
class GlueTask:
    """How one GLUE task is described and read.

    Args:
        spec: The task description handed to the model.
        folder: Folder of the task in the GLUE release (``SST-2``, ``STS-B``...).
        columns: Local (text, second text or None, label) columns: header names, or positions for header-less CoLA.
        has_header: Whether the local tsv files start with a header row.
        label_values: Raw label strings in label-id order; ``None`` for the regression task STS-B.
        hub_columns: (text, second text or None) columns of ``nyu-mll/glue``; the label column is ``label``.
        dev_file: Local validation file name.
        hub_validation: Hub validation split name.
    """

    spec: TaskSpec
    folder: str
    columns: tuple[Column, Column | None, Column]
    has_header: bool
    label_values: tuple[str, ...] | None
    hub_columns: tuple[str, str | None]
    dev_file: str = "dev.tsv"
    hub_validation: str = "validation"


def _spec(name: str, label_names: tuple[str, ...], metrics: tuple[str, ...] = ("accuracy",)) -> TaskSpec:
    return TaskSpec(
        name=name, num_labels=len(label_names), kind="classification", metrics=metrics, label_names=label_names
    )


_NLI2 = ("entailment", "not_entailment")
_NLI3 = ("entailment", "neutral", "contradiction")

#: The nine GLUE tasks by canonical (hub config) name. Label ids follow ``nyu-mll/glue``.
GLUE_TASKS: Mapping[str, GlueTask] = MappingProxyType(
    {
        "cola": GlueTask(
            _spec("cola", ("unacceptable", "acceptable"), ("matthews",)),
            "CoLA",
            (3, None, 1),
            False,
            ("0", "1"),
            ("sentence", None),
        ),
        "sst2": GlueTask(
            _spec("sst2", ("negative", "positive")),
            "SST-2",
            ("sentence", None, "label"),
            True,
            ("0", "1"),
            ("sentence", None),
        ),
        "mrpc": GlueTask(
            _spec("mrpc", ("not_equivalent", "equivalent"), ("f1", "accuracy")),
            "MRPC",
            ("#1 String", "#2 String", "Quality"),
            True,
            ("0", "1"),
            ("sentence1", "sentence2"),
        ),
        "qqp": GlueTask(
            _spec("qqp", ("not_duplicate", "duplicate"), ("f1", "accuracy")),
            "QQP",
            ("question1", "question2", "is_duplicate"),
            True,
            ("0", "1"),
            ("question1", "question2"),
        ),
        "stsb": GlueTask(
            TaskSpec("stsb", 1, "regression", ("pearson", "spearman")),
            "STS-B",
            ("sentence1", "sentence2", "score"),
            True,
            None,
            ("sentence1", "sentence2"),
        ),
        "mnli": GlueTask(
            _spec("mnli", _NLI3),
            "MNLI",
            ("sentence1", "sentence2", "gold_label"),
            True,
            _NLI3,
            ("premise", "hypothesis"),
            dev_file="dev_matched.tsv",
            hub_validation="validation_matched",
        ),
        "qnli": GlueTask(
            _spec("qnli", _NLI2), "QNLI", ("question", "sentence", "label"), True, _NLI2, ("question", "sentence")
        ),
        "rte": GlueTask(
            _spec("rte", _NLI2), "RTE", ("sentence1", "sentence2", "label"), True, _NLI2, ("sentence1", "sentence2")
        ),
        "wnli": GlueTask(
            _spec("wnli", ("not_entailment", "entailment")),
            "WNLI",
            ("sentence1", "sentence2", "label"),
            True,
            ("0", "1"),
            ("sentence1", "sentence2"),
        ),
    }
)


def glue_task_name(task: str, owner: str = "GlueDataModule") -> str:
    """Canonical task name: case-insensitive, ``-``/``_`` ignored, so ``"SST-2"``, ``"STS-B"``, ``"CoLA"`` work."""
    check_str(owner, "task", task)
    key = task.lower().replace("-", "").replace("_", "")
    if key not in GLUE_TASKS:
        raise ValueError(invalid(owner, "task", task, f"one of {list(GLUE_TASKS)} (or folder names like 'SST-2')"))
    return key


class GlueDataModule(TokenizedDataModule):
    """One GLUE task: train on ``train``, validate on ``dev`` (MNLI: ``dev_matched``).

    GLUE test labels are not public (the test files are unlabelled), so ``test_dataloader`` serves the dev set too;
    report dev scores as such.

    Data come from ``data_dir`` when it is given, laid out as the GLUE download script leaves them:
    ``<data_dir>/<FOLDER>/train.tsv`` and ``dev.tsv`` with FOLDER one of CoLA, SST-2, MRPC, QQP, STS-B, MNLI
    (``dev_matched.tsv``), QNLI, RTE, WNLI. A ``<data_dir>/glue/<FOLDER>`` layout is accepted as well, so one data
    root can serve every DataModule. With ``data_dir=None`` the task is loaded from the hub
    (``datasets.load_dataset("nyu-mll/glue", task)``).

    Args:
        task: ``cola``, ``sst2``, ``mrpc``, ``qqp``, ``stsb``, ``mnli``, ``qnli``, ``rte`` or ``wnli``
            (case-insensitive; folder spellings such as ``SST-2`` are accepted).
        data_dir: Folder holding the GLUE task folders, or ``None`` for the hub.
        tokenizer, max_seq_length, batch_size, eval_batch_size, num_workers, max_train_samples, max_eval_samples,
        seed, text_prefix, cache_dir: see :class:`TokenizedDataModule`.
    """

    def __init__(
        self,
        task: str = "sst2",
        data_dir: str | None = None,
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
        self.task = glue_task_name(task)
        check_path("GlueDataModule", "data_dir", data_dir)
        self.data_dir = resolve_data_dir(data_dir, "GlueDataModule")
        self.glue = GLUE_TASKS[self.task]
        self.task_spec = self.glue.spec

    def train_examples(self) -> Examples:
        """The ``train`` split."""
        return self._read("train.tsv", "train")

    def eval_examples(self, split: str) -> list[Examples]:
        """The dev set, for validation and for test alike (GLUE test labels are not public)."""
        return [self._read(self.glue.dev_file, self.glue.hub_validation)]

    def _read(self, file_name: str, hub_split: str) -> Examples:
        glue = self.glue
        if self.data_dir is None:
            text, pair = glue.hub_columns
            return examples_from_hub(
                load_hub_split(GLUE_HUB_ID, self.task, hub_split),
                source=f"{GLUE_HUB_ID}/{self.task}[{hub_split}]",
                text=text,
                pair=pair,
                label="label",
                num_labels=None if glue.label_values is None else len(glue.label_values),
            )
        text, pair, label = glue.columns
        return read_tsv_examples(
            self._task_dir() / file_name,
            has_header=glue.has_header,
            text=text,
            pair=pair,
            label=label,
            label_values=glue.label_values,
            layout=self._layout(),
        )

    def _task_dir(self) -> Path:
        assert self.data_dir is not None
        candidates = [self.data_dir / self.glue.folder, self.data_dir / "glue" / self.glue.folder]
        for folder in candidates:
            if folder.is_dir():
                return folder
        raise FileNotFoundError(
            f"No {self.glue.folder} folder for GLUE task {self.task!r}: looked at "
            f"{' and '.join(repr(str(c)) for c in candidates)}; expected {self._layout()}"
        )

    def _layout(self) -> str:
        return (
            f"the GLUE layout <data_dir>/{self.glue.folder}/train.tsv and <data_dir>/{self.glue.folder}/"
            f"{self.glue.dev_file} (tab-separated, as unpacked by the GLUE download script)"
        )
