"""The published result tables of docs/methods.md#published-results as typed data: rows, columns, numbers and the
claimed orderings.

Numbers are as printed (percent; MCC and correlations x100). ``None`` marks a cell printed as "–". Each table
records how its printed average relates to the row (``average``), so tests can check the printed averages where
docs/methods.md#published-results says they are the row means, and :mod:`lightning_compress.reporting.results` can
compute ours the same way.

Example:
    >>> table = PUBLISHED_TABLES["oneill_11_2"]
    >>> table.row("sdp_cc").values[0]
    66.47
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

__all__ = ["PUBLISHED_TABLES", "Claim", "Column", "PublishedRow", "PublishedTable", "get_table"]


@dataclass(frozen=True)
class Column:
    """One column: ``task`` (data-module task name), ``metric`` (logged metric name) and the printed header."""

    task: str
    metric: str
    label: str


@dataclass(frozen=True)
class PublishedRow:
    """One row: ``method`` (stable id), the printed ``label``, one value per column and the printed average.

    ``average_is_row_mean`` is ``False`` where docs/methods.md#errata-in-the-published-tables records that the printed
    average is not the mean of the
    row (errata docs/methods.md#score-column-of-table-111, docs/methods.md#averages-of-table-112); ``note`` says why or
    where a row comes from.
    """

    method: str
    label: str
    values: tuple[float | None, ...]
    printed_average: float | None = None
    average_is_row_mean: bool = True
    note: str = ""


@dataclass(frozen=True)
class Claim:
    """An ordering a paper claims: ``better`` scores higher than ``worse`` on ``on`` (``"average"`` or a task)."""

    better: str
    worse: str
    on: str = "average"
    source: str = ""


@dataclass(frozen=True)
class PublishedTable:
    """A published table.

    Attributes:
        table_id: Stable id, e.g. ``oneill_9_1``.
        title: Paper, table number and setting.
        section: Section of docs/methods.md with the numbers.
        model: Backbone of the published runs.
        columns: The columns, in printed order.
        rows: The rows, in printed order.
        average_columns: Indices of the columns averaged into the printed average (and into ours).
        average_label: Header of the average column.
        claims: Orderings the paper claims.
        selection: Which validation of a run is the table point: ``"last"`` (end of the run) or ``"best_en"``
            (the epoch with the best English dev score, the cross-lingual model selection).
        reproducible: ``False`` for tables whose setting this library does not cover.
        remaining: Fraction of the targeted weights that remain at the table point of pruned rows (``None``: the
            table is not about pruning); ``remaining_by_task`` overrides it per task.
        note: Protocol details (sparsity point, errata).
    """

    table_id: str
    title: str
    section: str
    model: str
    columns: tuple[Column, ...]
    rows: tuple[PublishedRow, ...]
    average_columns: tuple[int, ...]
    average_label: str = "Avg"
    claims: tuple[Claim, ...] = ()
    selection: Literal["last", "best_en"] = "last"
    reproducible: bool = True
    remaining: float | None = None
    remaining_by_task: tuple[tuple[str, float], ...] = ()
    note: str = ""
    _index: Mapping[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row.values) != len(self.columns):
                raise ValueError(
                    f"table {self.table_id!r} row {row.method!r} has {len(row.values)} values for "
                    f"{len(self.columns)} columns."
                )
        methods = [row.method for row in self.rows]
        if len(set(methods)) != len(methods):
            raise ValueError(f"table {self.table_id!r} has duplicate method ids: {methods}")
        object.__setattr__(self, "_index", MappingProxyType({m: i for i, m in enumerate(methods)}))

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(row.method for row in self.rows)

    @property
    def tasks(self) -> tuple[str, ...]:
        """Distinct tasks of the columns, in order."""
        return tuple(dict.fromkeys(column.task for column in self.columns))

    def remaining_for(self, task: str) -> float | None:
        """Fraction of targeted weights remaining at the table point of ``task`` (``None`` if not a pruning table)."""
        return dict(self.remaining_by_task).get(task, self.remaining)

    def row(self, method: str) -> PublishedRow:
        """The row of ``method``; ``KeyError`` lists the valid ids."""
        if method not in self._index:
            raise KeyError(f"table {self.table_id!r} has no row {method!r}; rows are {list(self.methods)}")
        return self.rows[self._index[method]]

    def row_mean(self, method: str) -> float | None:
        """Mean of the row over ``average_columns`` (``None`` if one of them is missing)."""
        values = [self.row(method).values[i] for i in self.average_columns]
        if any(v is None for v in values):
            return None
        return sum(values) / len(values)  # type: ignore[arg-type]


def _cols(spec: list[tuple[str, str, str]]) -> tuple[Column, ...]:
    return tuple(Column(task, metric, label) for task, metric, label in spec)


# ---------------------------------------------------------------- O'Neill Table 9.1
# (docs/methods.md#table-91-alignreg-on-xglue)
# NER runs on PAN-X (XGLUE's NER test sets, CoNLL-2002/2003 de/es/nl, are not freely redistributable): the column
# is reproduced on a substitute, so our F1 is not comparable with the printed one, only the orderings are.
_XGLUE_COLUMNS = _cols(
    [
        ("xnli", "accuracy", "XNLI"),
        ("nc", "accuracy", "NC"),
        ("panx", "span_f1", "NER"),
        ("pawsx", "accuracy", "PAWSX"),
        ("udpos", "token_accuracy", "POS"),
        ("qam", "accuracy", "QAM"),
        ("qadsm", "accuracy", "QADSM"),
        ("wpr", "ndcg", "WPR"),
    ]
)
_T91_SHARED = (
    PublishedRow("dense", "Dense (unpruned)", (73.48, 80.10, 82.60, 89.24, 80.34, 68.56, 68.06, 73.32), 76.96),
    PublishedRow("random", "Random", (51.22, 70.19, 38.19, 57.37, 52.57, 53.85, 52.34, 70.69), 55.80),
    PublishedRow("global_random", "Global-Random", (50.97, 69.88, 38.30, 56.74, 53.02, 54.02, 53.49, 69.11), 55.69),
    PublishedRow("l0_mbp", "L0-MBP", (64.75, 78.98, 56.22, 72.09, 71.38, 59.31, 53.35, 71.70), 65.97),
    PublishedRow("l2_mbp", "L2-MBP", (64.30, 78.79, 54.43, 77.99, 70.68, 59.24, 60.33, 71.52), 67.16),
)
_T91_GLOBAL = PublishedRow(
    "l2_global_mbp", "L2-Global-MBP", (64.17, 78.64, 54.47, 75.51, 72.27, 59.26, 60.10, 71.50), 66.99
)
_T91_TAIL = (
    PublishedRow("l2_gradient_mbp", "L2-Gradient-MBP", (61.11, 73.77, 53.25, 79.56, 65.89, 57.35, 59.33, 71.59), 65.23),
    PublishedRow("lookahead", "Lookahead", (60.84, 79.18, 54.44, 71.05, 68.76, 55.94, 53.41, 71.26), 64.36),
    PublishedRow("lamp", "LAMP", (58.04, 63.64, 51.92, 66.05, 67.43, 55.36, 52.42, 71.09), 60.74),
)
ONEILL_9_1 = PublishedTable(
    table_id="oneill_9_1",
    title="O'Neill Table 9.1: XGLUE zero-shot @31% remaining weights, XLM-R Base (AlignReg)",
    section="docs/methods.md#table-91-alignreg-on-xglue, docs/methods.md#xglue-pruning-protocol",
    model="XLM-R Base",
    columns=_XGLUE_COLUMNS,
    rows=(
        *_T91_SHARED,
        _T91_GLOBAL,
        *_T91_TAIL,
        PublishedRow(
            "cosine_lmbp",
            "Cosine-LMBP (layer-wise cosine)",
            (65.01, 79.01, 55.18, 78.27, 71.60, 57.27, 61.32, 71.33),
            67.37,
        ),
        PublishedRow(
            "cosine_mbp",
            "Cosine-MBP (unit-wise cosine)",
            (66.20, 79.15, 55.62, 78.45, 71.62, 57.56, 61.37, 72.51),
            67.81,
        ),
        PublishedRow("frobenius_mbp", "Frobenius-MBP", (65.71, 79.84, 55.61, 78.78, 71.62, 61.62, 61.37, 71.48), 68.25),
    ),
    average_columns=tuple(range(8)),
    claims=(
        Claim("frobenius_mbp", "l2_mbp", source="§9.5: AlignReg beats magnitude pruning; Frobenius-MBP best"),
        Claim("cosine_mbp", "l2_mbp", source="§9.5"),
        Claim("cosine_lmbp", "l2_mbp", source="§9.5"),
        Claim("frobenius_mbp", "cosine_mbp", source="Table 9.1 (bold: Frobenius-MBP best average)"),
        Claim("l2_mbp", "random", source="Table 9.1"),
        Claim("l2_mbp", "lamp", source="Table 9.1"),
    ),
    remaining=0.9**11,
    note="Pruning: 10% of the remaining targeted weights per epoch; table point after step 11 (31.38% remaining). "
    "Per-task score = mean over all test languages including English.",
)

# ---------------------------------------------------------------- O'Neill Table 11.2
# (docs/methods.md#table-112-sdp-on-xglue)
ONEILL_11_2 = PublishedTable(
    table_id="oneill_11_2",
    title="O'Neill Table 11.2: XGLUE zero-shot @30% remaining weights, XLM-R Base (SDP)",
    section="docs/methods.md#table-112-sdp-on-xglue, docs/methods.md#xglue-pruning-protocol",
    model="XLM-R Base",
    columns=_XGLUE_COLUMNS,
    rows=(
        *_T91_SHARED,
        PublishedRow(
            "l2_global_mbp",
            "L2-Global-MBP",
            (65.12, 78.64, 54.47, 79.13, 71.37, 59.26, 60.61, 71.80),
            67.55,
            note="differs from Table 9.1's row (66.99), docs/methods.md#averages-of-table-112",
        ),
        *_T91_TAIL,
        PublishedRow(
            "taylor",
            "1st-order Taylor",
            (64.26, 79.34, 63.60, 82.83, 68.94, 61.69, 62.42, 72.28),
            69.09,
            average_is_row_mean=False,
            note="printed 69.09, row mean 69.42 (docs/methods.md#averages-of-table-112)",
        ),
        PublishedRow("sdp_cos", "L2-MBP + SDP-COS", (64.96, 79.02, 62.77, 78.70, 72.88, 60.21, 60.94, 72.04), 68.94),
        PublishedRow("sdp_kld", "L2-MBP + SDP-KLD", (65.94, 80.72, 64.50, 79.25, 73.18, 61.66, 61.09, 71.84), 69.77),
        PublishedRow(
            "sdp_cc",
            "L2-MBP + SDP-CC",
            (66.47, 79.73, 66.34, 80.03, 73.45, 63.73, 62.78, 72.59),
            70.76,
            average_is_row_mean=False,
            note="printed 70.76, row mean 70.64 (docs/methods.md#averages-of-table-112)",
        ),
    ),
    average_columns=tuple(range(8)),
    claims=(
        Claim("sdp_cc", "sdp_kld", source="§11.5: SDP-CC best"),
        Claim("sdp_kld", "l2_mbp", source="§11.5"),
        Claim("sdp_cc", "taylor", source="Table 11.2"),
        Claim("sdp_cos", "l2_mbp", source="Table 11.2"),
    ),
    remaining=0.9**11,
    note="Same protocol as Table 9.1 (30% = step 11, 31.38% remaining).",
)

# ---------------------------------------------------------------- O'Neill Table 11.1
# (docs/methods.md#table-111-sdp-on-glue)
_GLUE_11_1_COLUMNS = _cols(
    [
        ("cola", "matthews", "CoLA"),
        ("sst2", "accuracy", "SST-2"),
        ("mnli", "accuracy", "MNLI"),
        ("mrpc", "f1", "MRPC F1"),
        ("mrpc", "accuracy", "MRPC acc"),
        ("stsb", "pearson", "STS-B P"),
        ("stsb", "spearman", "STS-B S"),
        ("qqp", "f1", "QQP F1"),
        ("qqp", "accuracy", "QQP acc"),
        ("rte", "accuracy", "RTE"),
        ("qnli", "accuracy", "QNLI"),
    ]
)
_QUOTED = "quoted by O'Neill from other papers; not trained here"


def _glue_row(method: str, label: str, score: float, values: tuple, note: str = "") -> PublishedRow:
    return PublishedRow(
        method,
        label,
        values,
        score,
        average_is_row_mean=False,
        note=note or "Score: docs/methods.md#score-column-of-table-111",
    )


ONEILL_11_1 = PublishedTable(
    table_id="oneill_11_1",
    title="O'Neill Table 11.1: GLUE dev, BERT-base, @10% remaining weights (CoLA @20%)",
    section="docs/methods.md#table-111-sdp-on-glue, docs/methods.md#glue-pruning-protocol",
    model="BERT-base",
    columns=_GLUE_11_1_COLUMNS,
    rows=(
        _glue_row(
            "dense", "BERT-base (dense)", 84.06, (53.24, 90.71, 80.27, 80.9, 77.7, 83.5, 83.8, 83.9, 88.0, 68.59, 86.91)
        ),
        _glue_row(
            "distilbert",
            "DistilBERT (60%)",
            82.85,
            (51.3, 91.3, 82.2, 87.5, None, 86.9, None, None, 85.5, 59.9, 89.2),
            _QUOTED,
        ),
        _glue_row(
            "bert_medium",
            "BERT-Medium (44.4%)",
            81.54,
            (38.0, 89.6, 80.0, 86.6, 81.6, 80.4, 78.4, 69.6, 87.9, 62.2, 87.7),
            _QUOTED,
        ),
        _glue_row(
            "bert_small",
            "BERT-Small (20%)",
            79.02,
            (27.8, 89.7, 77.6, 83.4, 76.2, 78.8, 77.0, 68.1, 87.0, 61.8, 86.4),
            _QUOTED,
        ),
        _glue_row(
            "bert_mini",
            "BERT-Mini (10%)",
            76.97,
            (0.0, 85.9, 75.1, 74.8, 74.3, 75.4, 73.3, 66.4, 86.2, 57.9, 84.1),
            _QUOTED,
        ),
        _glue_row(
            "bert_tiny",
            "BERT-Tiny (3.6%)",
            73.32,
            (0.0, 83.2, 70.2, 81.1, 71.1, 74.3, 73.6, 62.2, 83.4, 57.2, 81.5),
            _QUOTED,
        ),
        _glue_row("random", "Random", 66.03, (6.50, 78.44, 69.55, 77.5, 67.1, 27.4, 26.9, 77.07, 81.86, 52.70, 74.66)),
        _glue_row("l0_mbp", "L0-MBP", 77.25, (31.68, 83.37, 75.61, 78.4, 68.2, 75.9, 75.7, 81.56, 86.49, 64.26, 82.62)),
        _glue_row("l2_mbp", "L2-MBP", 76.48, (29.51, 83.37, 76.19, 78.4, 68.2, 75.3, 75.6, 77.50, 82.98, 62.09, 82.61)),
        _glue_row(
            "l2_global_mbp",
            "L2-Global-MBP",
            77.16,
            (29.25, 82.83, 76.40, 81.2, 69.9, 75.1, 75.5, 82.77, 86.70, 62.01, 82.24),
        ),
        _glue_row(
            "l2_gradient_mbp",
            "L2-Gradient-MBP",
            74.84,
            (15.46, 82.91, 72.51, 81.0, 73.7, 73.8, 73.6, 80.41, 85.19, 56.31, 79.33),
        ),
        _glue_row(
            "taylor",
            "1st-order Taylor",
            76.31,
            (28.88, 83.26, 74.64, 83.0, 74.8, 76.7, 76.6, 80.09, 85.29, 57.76, 81.20),
        ),
        _glue_row(
            "lookahead", "Lookahead", 76.40, (28.15, 82.80, 75.31, 79.8, 70.5, 71.9, 71.9, 81.84, 86.53, 60.29, 81.80)
        ),
        _glue_row("lamp", "LAMP", 74.03, (20.31, 83.26, 74.27, 72.3, 63.7, 73.7, 74.1, 79.32, 85.07, 58.84, 81.09)),
        _glue_row(
            "sdp_cos",
            "L2-MBP + SDP-COS",
            77.83,
            (31.80, 86.00, 75.68, 81.6, 72.2, 76.4, 76.3, 81.39, 86.68, 61.73, 83.07),
        ),
        _glue_row(
            "sdp_kld",
            "L2-MBP + SDP-KLD",
            78.34,
            (36.74, 87.96, 77.94, 80.5, 68.2, 77.1, 77.3, 83.21, 85.58, 63.18, 83.54),
        ),
        _glue_row(
            "sdp_cc",
            "L2-MBP + SDP-CC",
            78.90,
            (36.77, 87.84, 78.04, 81.1, 71.0, 77.3, 77.5, 83.79, 86.37, 62.64, 84.20),
        ),
    ),
    # score_7 (docs/methods.md#glue-pruning-protocol): first number of each non-CoLA task
    average_columns=(1, 2, 3, 5, 7, 9, 10),
    average_label="score_7",
    claims=(
        Claim("sdp_cc", "sdp_kld", source="Table 11.1 Score (bold: SDP-CC best)"),
        Claim("sdp_kld", "l2_mbp", source="Table 11.1 Score"),
        Claim("sdp_cos", "l2_mbp", source="Table 11.1 Score"),
        Claim("l2_mbp", "random", source="Table 11.1 Score"),
    ),
    remaining=0.9**22,
    remaining_by_task=(("cola", 0.9**15),),
    note="Pruning: 10% of the remaining targeted weights per epoch; table point after step 22 (9.85% remaining), "
    "CoLA after step 15 (20.59%). The printed Score cannot be recomputed (docs/methods.md#score-column-of-table-111); "
    "averages here are score_7, the mean of the first number of the 7 non-CoLA tasks.",
)

# ---------------------------------------------------------------- O'Neill Table 10.10
# (docs/methods.md#table-1010-gradient-dropout-on-xglue)
_GRADDROP_VARIANTS = ("graddrop", "anneal_graddrop", "layer_graddrop", "anneal_layer_graddrop", "graddrop_epoch")
ONEILL_10_10 = PublishedTable(
    table_id="oneill_10_10",
    title="O'Neill Table 10.10: XGLUE zero-shot, XLM-R Large, gradient dropout",
    section="docs/methods.md#table-1010-gradient-dropout-on-xglue, docs/methods.md#gradient-dropout-protocol",
    model="XLM-R Large",
    columns=(*_XGLUE_COLUMNS, Column("mlqa", "f1", "MLQA")),
    rows=(
        PublishedRow(
            "filter",
            "FILTER + Self-Teaching (translation)",
            (83.9, 83.5, 82.6, 93.8, 81.6, 73.4, 71.4, 74.7, 76.2),
            80.1,
            note="quoted; uses translated training data",
        ),
        PublishedRow(
            "unicoder",
            "Unicoder (255M)",
            (75.3, 83.5, 79.70, 90.1, 79.6, 68.9, 68.4, 73.9, 66.0),
            76.1,
            average_is_row_mean=False,
            note="quoted; printed 76.1, row mean 76.16",
        ),
        PublishedRow("ft", "XLM-R Large (FT)", (79.25, 83.21, 80.61, 89.23, 80.38, 69.82, 71.05, 73.27, 70.21), 77.45),
        PublishedRow(
            "gradfreeze_top_down",
            "+GradFreeze-TopDown",
            (79.23, 83.65, 78.64, 88.33, 78.11, 71.01, 71.01, 72.61, 70.55),
            77.02,
        ),
        PublishedRow(
            "gradfreeze_bottom_up",
            "+GradFreeze-BottomUp",
            (78.07, 80.41, 76.35, 87.31, 73.32, 64.81, 68.56, 71.17, 69.64),
            74.40,
        ),
        PublishedRow("graddrop", "+GradDrop", (79.97, 83.41, 80.21, 91.46, 81.00, 71.72, 71.02, 73.44, 71.29), 78.17),
        PublishedRow(
            "anneal_graddrop",
            "+Anneal-GradDrop",
            (79.58, 81.87, 81.87, 91.18, 80.72, 71.46, 70.71, 73.27, 71.20),
            77.98,
        ),
        PublishedRow(
            "layer_graddrop",
            "+Layer-GradDrop",
            (79.22, 83.73, 81.85, 92.23, 81.42, 72.33, 71.39, 74.51, 72.25),
            78.77,
        ),
        PublishedRow(
            "anneal_layer_graddrop",
            "+Anneal-Layer-GradDrop",
            (79.94, 84.24, 81.48, 91.06, 80.88, 72.31, 71.16, 74.25, 71.40),
            78.52,
        ),
        PublishedRow(
            "graddrop_epoch",
            "+GradDrop-Epoch",
            (79.94, 83.73, 82.41, 91.15, 80.45, 72.98, 70.52, 74.61, 72.01),
            78.64,
        ),
    ),
    average_columns=tuple(range(9)),
    claims=(
        *(
            Claim(variant, "ft", source="§10.4: GradDrop variants improve over fine-tuning")
            for variant in _GRADDROP_VARIANTS
        ),
        Claim("ft", "gradfreeze_bottom_up", source="Table 10.10"),
        Claim("layer_graddrop", "graddrop", source="Table 10.10 (bold: Layer-GradDrop best)"),
    ),
    selection="best_en",
    note="Model selection: the epoch with the best English dev score. Per-task tables 10.1-10.9 disagree with "
    "this table in places (docs/methods.md#table-1010-versus-the-per-task-tables); this table is the reference.",
)

# ---------------------------------------------------------------- Bai Table 5.2
# (docs/methods.md#table-52-binarybert-on-glue)
_BAI_COLUMNS = _cols(
    [
        ("mnli", "accuracy", "MNLI-m"),
        ("mnli_mm", "accuracy", "MNLI-mm"),
        ("qqp", "accuracy", "QQP"),
        ("qnli", "accuracy", "QNLI"),
        ("sst2", "accuracy", "SST-2"),
        ("cola", "matthews", "CoLA"),
        ("stsb", "spearman", "STS-B"),
        ("mrpc", "accuracy", "MRPC"),
        ("rte", "accuracy", "RTE"),
    ]
)


def _bai(method: str, label: str, values: tuple, avg: float, note: str) -> PublishedRow:
    return PublishedRow(method, label, values, avg, note=note)


BAI_5_2 = PublishedTable(
    table_id="bai_5_2",
    title="Bai Table 5.2: GLUE dev, BinaryBERT (BERT-base size)",
    section="docs/methods.md#table-52-binarybert-on-glue, docs/methods.md#binarybert-protocol",
    model="BERT-base (DynaBERT backbone)",
    columns=_BAI_COLUMNS,
    rows=(
        _bai(
            "full_precision",
            "full-prec. 32-32-32",
            (84.9, 85.5, 91.4, 92.1, 93.2, 59.7, 90.1, 86.3, 72.2),
            83.9,
            "417.6 MB, 22.5 GFLOPs",
        ),
        _bai("bwn_118", "BWN 1-1-8", (84.2, 84.0, 91.1, 90.7, 92.3, 46.7, 86.8, 82.6, 68.6), 80.8, "13.4 MB, no DA"),
        _bai("tws_118", "TWS 1-1-8", (84.2, 84.7, 91.2, 91.5, 92.6, 53.4, 88.6, 85.5, 72.2), 82.7, "16.5 MB, no DA"),
        _bai("bwn_114", "BWN 1-1-4", (83.5, 83.4, 90.9, 90.7, 92.3, 34.8, 84.9, 79.9, 65.3), 78.4, "13.4 MB, no DA"),
        PublishedRow(
            "tws_114",
            "TWS 1-1-4",
            (83.9, 84.2, 91.2, 90.9, 92.3, 44.4, 87.2, 83.3, 65.3),
            79.9,
            average_is_row_mean=False,
            note="16.5 MB, no DA; printed 79.9, row mean 80.3",
        ),
        _bai("bwn_118_da", "BWN 1-1-8 + DA", (84.2, 84.0, 91.1, 91.2, 92.7, 54.2, 88.2, 86.8, 70.0), 82.5, "with DA"),
        _bai("tws_118_da", "TWS 1-1-8 + DA", (84.2, 84.7, 91.2, 91.6, 93.2, 55.5, 89.2, 86.0, 74.0), 83.3, "with DA"),
        _bai("bwn_114_da", "BWN 1-1-4 + DA", (83.5, 83.4, 90.9, 91.2, 92.5, 51.9, 87.7, 85.5, 70.4), 81.9, "with DA"),
        _bai("tws_114_da", "TWS 1-1-4 + DA", (83.9, 84.2, 91.2, 91.4, 93.7, 53.3, 88.6, 86.0, 71.5), 82.6, "with DA"),
    ),
    average_columns=tuple(range(9)),
    claims=tuple(
        Claim(f"tws_{bits}{da}", f"bwn_{bits}{da}", source="Bai §5.4: TWS beats BWN at the same bit-width")
        for bits in ("118", "114")
        for da in ("", "_da")
    ),
    note="Avg = mean of 9 numbers with MNLI-m and MNLI-mm counted separately (printed to one decimal). DA = data "
    "augmentation.",
)

# ---------------------------------------------------------------- Condensa Table 2 (docs/methods.md#condensa-table-2)
_CONDENSA_COLUMNS = _cols(
    [
        ("cifar10_vgg19bn", "accuracy", "CIFAR-10 VGG19-BN"),
        ("cifar10_resnet56", "accuracy", "CIFAR-10 ResNet56"),
        ("imagenet_vgg16bn", "top5", "ImageNet VGG16-BN (top-5)"),
        ("wikitext2_lstm", "log_ppl", "WikiText-2 LSTM (log-ppl)"),
    ]
)
CONDENSA_2 = PublishedTable(
    table_id="condensa_2",
    title="Condensa Table 2: constrained BO compression (eps = 2%, 10 samples per search)",
    section="docs/methods.md#condensa-table-2, docs/methods.md#condensa-protocol",
    model="VGG19-BN, ResNet56, VGG16-BN, 2-layer LSTM",
    columns=_CONDENSA_COLUMNS,
    rows=(
        PublishedRow("baseline", "Baseline", (92.98, 92.75, 91.50, 4.70), note="uncompressed"),
        PublishedRow(
            "condensa_pq",
            "Condensa P+Q",
            (93.26, 91.42, 89.89, 4.75),
            note="s* = 0.99, 0.95, 0.93, 0.92; r_c = 188.23x, 31.14x, 29.29x, 4.2x",
        ),
        PublishedRow(
            "condensa_structured",
            "Condensa Filter / Block",
            (93.34, 93.18, 90.25, 4.62),
            note="s* = 0.79, 0.63, 0.12, 0.60; throughput 2.59x, 1.17x, 1.16x; LSTM FLOPs 2.14x",
        ),
    ),
    average_columns=(),
    average_label="",
    reproducible=False,
    note="CNNs and LSTMs: not reproducible with the transformer models of this library; the same tuner is applied "
    "to transformer GMP instead (docs/tuner.md).",
)

#: Every table of docs/methods.md#published-results by id.
PUBLISHED_TABLES: Mapping[str, PublishedTable] = MappingProxyType(
    {t.table_id: t for t in (ONEILL_9_1, ONEILL_11_2, ONEILL_11_1, ONEILL_10_10, BAI_5_2, CONDENSA_2)}
)


def get_table(table_id: str) -> PublishedTable:
    """The table ``table_id``; the error lists the valid ids."""
    if table_id not in PUBLISHED_TABLES:
        raise KeyError(f"unknown table {table_id!r}; expected one of {list(PUBLISHED_TABLES)}")
    return PUBLISHED_TABLES[table_id]
