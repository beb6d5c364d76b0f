"""Scaled, seed-matched comparisons of the loss-term and quantization methods against their baselines (CPU-sized).

Each comparison is a set of configs that share data, schedule, optimiser and step budget and differ in the method:

* ``sdp_sst2``: MiniLM-L6 on SST-2 pruned to 90 %: plain magnitude pruning vs SDP-KLD vs SDP-CC
  (docs/methods.md#self-distilled-pruning), the
  teacher being the dense run ``sst2_dense`` (``configs/scaled/sst2_gmp.yaml`` without callbacks, trained once);
* ``alignreg_xnli``: multilingual e5-small on English SNLI pruned to 70 %, zero-shot XNLI: plain magnitude pruning vs
  the three AlignReg regularisers (docs/methods.md#alignreg);
* ``binarybert_sst2`` / ``binarybert_mrpc``: MiniLM-L6 full precision vs TWS 1-1-8 vs BWN 1-1-8
  (docs/methods.md#ternary-weight-splitting), every
  seed distilling from its own full-precision run;
* ``structured_sst2``: MiniLM-L6 on SST-2 (``configs/scaled/sst2_structured.yaml``): dense vs half of the feed-forward
  neurons removed vs the same with SDP-KLD from the seed's dense run;
* ``quantized_sst2``: the same protocol: dense fp32 vs post-training dynamic int8 of that dense model (what a user does
  without this library: ``torch.ao.quantization.quantize_dynamic``, evaluated on the dev set) vs the library's fast
  path with int8 word embeddings on the same dense model (what int8 embeddings cost in accuracy) vs int8
  quantization-aware training vs structured pruning + int8 QAT, without and with SDP-KLD from the seed's dense run.

Runs go to ``<root>/<run>/seed<S>`` (``final_metrics.json`` and ``layer_sparsity.json`` written by
:class:`~lightning_compress.reporting.run_record.RunRecord`, the CSV log, ``result.json``), launched by
:func:`lightning_compress.reproduce.run_plans` (``--jobs`` fits side by side, teachers before their students); a
finished run is skipped, so an interrupted grid resumes. The seed sets ``seed_everything`` (initialisation, dropout);
every seed trains on the same subset in the same order (``DATA_SEED``). The table is mean ± std over the seeds of the
final validation.

    python benchmarks/scaled_comparisons.py sdp_sst2 alignreg_xnli [--seeds 42 43 44] [--root runs/scaled]
                                            [--jobs 2] [--table-only]
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from lightning_compress.reporting.comparison import gap_spread, ordering_status
from lightning_compress.reporting.published import get_table
from lightning_compress.reproduce import REPO, PlannedRun, run_plans

DATA_SEED = 42  # every seed trains on the same subset in the same order


@dataclass(frozen=True)
class Run:
    """One config of a comparison; ``teacher`` names the run (same seed unless ``shared_teacher``) it distills from."""

    name: str
    label: str
    config: str
    args: tuple[str, ...] = ()
    teacher: str | None = None
    teacher_arg: str = "teacher"
    shared_teacher: bool = False  # the teacher is the run's seed-42 run, trained once
    saves_checkpoint: bool = False
    published: str | None = None  # the row (method id) of the comparison's published table
    ptq_of: str | None = None  # not trained: post-training int8 of this run's final.ckpt (same seed)
    #: how ``ptq_of`` is quantized: "dynamic_int8" (torch's quantize_dynamic, the peer) or "fast_int8_embeddings"
    #: (the library's to_fast_int8_ with int8 word embeddings)
    ptq: str = "dynamic_int8"


@dataclass(frozen=True)
class Comparison:
    """Runs compared on ``metric``; ``published`` = (table id, column task) of the numbers printed beside them."""

    title: str
    metric: str
    runs: tuple[Run, ...]
    published: tuple[str, str] | None
    extra_metrics: tuple[str, ...] = ()
    teachers: tuple[Run, ...] = field(default=())
    task: str = ""  # the GLUE/XGLUE task (read from ``published`` when there is one)

    @property
    def task_name(self) -> str:
        return self.task or self.published[1]


_GLUE_DENSE = Run(
    "sst2_dense", "dense teacher", "configs/scaled/sst2_gmp.yaml", ("--trainer.callbacks=[]",), saves_checkpoint=True
)
_XNLI = "configs/scaled/xnli_{}.yaml"
_STRUCTURED = "configs/scaled/sst2_structured.yaml"
_STRUCTURED_DENSE = Run("sst2s_dense", "dense fp32", _STRUCTURED, ("--trainer.callbacks=[]",), saves_checkpoint=True)
_STRUCTURED_TITLE = "SST-2, MiniLM-L6 (8,000 sentences, 250 steps, word embeddings frozen, full dev set)"
COMPARISONS = {
    "sdp_sst2": Comparison(
        "SST-2, MiniLM-L6, 90 % sparsity (4,000 sentences, 250 steps, full dev set)",
        "val/accuracy",
        (
            Run("sst2_gmp", "magnitude pruning (MBP)", "configs/scaled/sst2_gmp.yaml", published="l2_mbp"),
            *(
                Run(
                    f"sst2_sdp_{kind}",
                    f"MBP + SDP-{kind.upper()}",
                    f"configs/scaled/sst2_sdp_{kind}.yaml",
                    teacher="sst2_dense",
                    shared_teacher=True,
                    published=f"sdp_{kind}",
                )
                for kind in ("kld", "cc")
            ),
        ),
        published=("oneill_11_1", "sst2"),
        teachers=(_GLUE_DENSE,),
    ),
    "alignreg_xnli": Comparison(
        "Zero-shot XNLI, multilingual e5-small, 70 % sparsity (1,600 English SNLI pairs, 2 epochs; de ru zh ar sw)",
        "val/avg_zero_shot/accuracy",
        (
            Run("xnli_gmp70", "magnitude pruning (MBP)", _XNLI.format("gmp70"), published="l2_mbp"),
            Run(
                "xnli_alignreg_cosine_unit",
                "Cosine-MBP (unit-wise)",
                _XNLI.format("alignreg_cosine_unit"),
                published="cosine_mbp",
            ),
            Run(
                "xnli_alignreg_cosine_layer",
                "Cosine-LMBP (layer-wise)",
                _XNLI.format("alignreg_cosine_layer"),
                published="cosine_lmbp",
            ),
            Run(
                "xnli_alignreg_frobenius",
                "Frobenius-MBP",
                _XNLI.format("alignreg_frobenius"),
                published="frobenius_mbp",
            ),
        ),
        published=("oneill_9_1", "xnli"),
        extra_metrics=("val/en/accuracy",),
    ),
    **{
        f"binarybert_{task}": Comparison(
            f"{task.upper()}, MiniLM-L6, 2,000 training examples (TWS / BWN: 3 epochs, full dev set)",
            "val/accuracy",
            (
                Run(
                    f"{task}_fp",
                    "full precision (teacher)",
                    f"configs/scaled/{task}_fp_1-1-8.yaml",
                    saves_checkpoint=True,
                    published="full_precision",
                ),
                Run(
                    f"{task}_tws",
                    "TWS 1-1-8",
                    f"configs/scaled/{task}_tws_1-1-8.yaml",
                    teacher=f"{task}_fp",
                    teacher_arg="teacher",
                    published="tws_118",
                ),
                Run(
                    f"{task}_bwn",
                    "BWN 1-1-8",
                    f"configs/scaled/{task}_bwn_1-1-8.yaml",
                    teacher=f"{task}_fp",
                    teacher_arg="teacher",
                    published="bwn_118",
                ),
            ),
            published=("bai_5_2", task),
            extra_metrics=("val/f1",) if task == "mrpc" else (),
        )
        for task in ("sst2", "mrpc")
    },
    "structured_sst2": Comparison(
        _STRUCTURED_TITLE,
        "val/accuracy",
        (
            _STRUCTURED_DENSE,
            Run("sst2s_ffn50", "FFN neurons 50 % (magnitude)", _STRUCTURED),
            Run(
                "sst2s_ffn50_sdp",
                "FFN neurons 50 % + SDP-KLD",
                "configs/scaled/sst2_structured_sdp.yaml",
                teacher="sst2s_dense",
            ),
        ),
        published=None,
        task="sst2",
    ),
    "quantized_sst2": Comparison(
        _STRUCTURED_TITLE,
        "val/accuracy",
        (
            _STRUCTURED_DENSE,
            Run("sst2s_ptq_int8", "peer: dynamic int8 of dense (post-training)", "", ptq_of="sst2s_dense"),
            Run(
                "sst2s_ptq_int8_emb",
                "to_fast_int8_(embeddings=True) of dense (post-training)",
                "",
                ptq_of="sst2s_dense",
                ptq="fast_int8_embeddings",
            ),
            Run("sst2s_qat_int8", "QAT int8", "configs/scaled/sst2_qat_int8.yaml"),
            Run("sst2s_ffn50_qat_int8", "FFN neurons 50 % + QAT int8", "configs/scaled/sst2_structured_qat_int8.yaml"),
            Run(
                "sst2s_ffn50_sdp_qat_int8",
                "FFN neurons 50 % + SDP-KLD + QAT int8",
                "configs/scaled/sst2_structured_sdp_qat_int8.yaml",
                teacher="sst2s_dense",
            ),
            Run(
                "sst2s_ffn50_sdp_qat_int8_emb",
                "FFN neurons 50 % + SDP-KLD + QAT int8, as shipped: + int8 word embeddings (`to_fast_int8_`)",
                "",
                ptq_of="sst2s_ffn50_sdp_qat_int8",
                ptq="fast_int8_embeddings",
            ),
        ),
        published=None,
        task="sst2",
    ),
}


def run_dir(root: Path, run: Run, seed: int) -> Path:
    return root / run.name / f"seed{seed}"


def plan(name: str, run: Run, seed: int, root: Path, teacher_seed: int | None = None) -> PlannedRun:
    """The fit of ``run`` of comparison ``name`` for ``seed``; every seed trains on the subset and order of
    ``DATA_SEED``, so the seeds vary the initialisation and dropout only. The table label is the comparison's name,
    so ``lightning-compress report`` never mixes these runs into a published table."""
    task = COMPARISONS[name].task_name
    teacher_dir = None if run.teacher is None else str((root / run.teacher / f"seed{teacher_seed}").resolve())
    return PlannedRun(
        table=name,
        row=run.name,
        task=task,
        seed=seed,
        scale="scaled",
        configs=(run.config,),
        run_dir=str(run_dir(root, run, seed).resolve()),
        teacher_dir=teacher_dir,
        teacher_arg=run.teacher_arg if run.teacher else None,
        saves_checkpoint=run.saves_checkpoint,
        args=(*run.args, f"--data.init_args.seed={DATA_SEED}"),
    )


def evaluate_post_training_int8(root: Path, run: Run, seed: int) -> None:
    """Dev-set metrics of ``run.ptq_of``'s final model quantized after training, written as ``final_metrics.json``
    of ``run``: ``torch.ao.quantization.quantize_dynamic`` (int8 Linear, the two lines a user writes without this
    library) or the library's ``to_fast_int8_(model, embeddings=True)`` (``run.ptq``).

    The final model is the source run's ``final.ckpt`` when it saves one (a teacher), else its end-of-training
    checkpoint in ``checkpoints/`` (written after the last step; a QAT run's trained fp32 weights, which
    ``to_fast_int8_`` rounds to int8 as the end-of-fit conversion does)."""
    import torch
    import yaml
    from pytorch_lightning import Trainer

    from lightning_compress.checkpoints import load_checkpoint
    from lightning_compress.cli import _task_module_from_checkpoint
    from lightning_compress.data import GlueDataModule

    trained = next(r for c in COMPARISONS.values() for r in c.runs if r.name == run.ptq_of)
    source, out = run_dir(root, trained, seed), run_dir(root, run, seed)
    path = source / "final.ckpt" if trained.saves_checkpoint else _last_checkpoint(source)
    if (out / "final_metrics.json").is_file() or path is None or not path.is_file():
        return
    checkpoint = load_checkpoint(path, source="post-training int8 evaluation")
    module = _task_module_from_checkpoint(checkpoint, str(path)).eval()
    if run.ptq == "dynamic_int8":
        module.model = torch.ao.quantization.quantize_dynamic(module.model, {torch.nn.Linear}, dtype=torch.qint8)
    else:
        from lightning_compress.quantization import to_fast_int8_

        to_fast_int8_(module.model, embeddings=True)
    data = GlueDataModule(**yaml.safe_load((REPO / trained.config).read_text())["data"]["init_args"])
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    metrics = trainer.validate(module, datamodule=data, verbose=False)[0]
    out.mkdir(parents=True, exist_ok=True)
    (out / "final_metrics.json").write_text(json.dumps({k: float(v) for k, v in metrics.items()}, indent=1))


def _last_checkpoint(run_folder: Path) -> Path | None:
    """The end-of-training checkpoint Lightning's ``ModelCheckpoint`` wrote in ``run_folder/checkpoints``."""
    checkpoints = sorted((run_folder / "checkpoints").glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    return checkpoints[-1] if checkpoints else None


def _std(values: list[float]) -> float:
    """Sample standard deviation over the seeds; 0 for a single seed."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _mean_std(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{100 * statistics.mean(values):.2f} ± {100 * _std(values):.2f}"


def _published(comparison: Comparison, run: Run) -> str:
    if run.published is None or comparison.published is None:
        return "—"
    table_id, task = comparison.published
    published = get_table(table_id)
    column = next(i for i, c in enumerate(published.columns) if c.task == task)
    return f"{published.row(run.published).values[column]:.2f}"


def _finished(root: Path, run: Run, seeds: list[int]) -> list[dict[str, float]]:
    paths = (run_dir(root, run, seed) / "final_metrics.json" for seed in seeds)
    return [json.loads(path.read_text()) for path in paths if path.is_file()]


def table(comparison: Comparison, root: Path, seeds: list[int]) -> str:
    """Markdown table of ``comparison``: mean ± std (in %) over the finished seeds, the measured sparsity and the
    published number of the same row (full-size model and protocol: compare orderings, not values)."""
    metrics = (comparison.metric, *comparison.extra_metrics)
    table_id = comparison.published[0] if comparison.published else "none"
    header = f"| run | seeds | {' | '.join(metrics)} | prunable sparsity | published ({table_id}) |"
    lines = [f"**{comparison.title}**", "", header, "|" + "---|" * (len(metrics) + 4)]
    for run in comparison.runs:
        finished = _finished(root, run, seeds)
        cells = [_mean_std([m[key] for m in finished if key in m]) for key in metrics]
        sparsity = [m["val/prunable_sparsity"] for m in finished if "val/prunable_sparsity" in m]
        sparsity_text = f"{statistics.mean(sparsity):.4f}" if sparsity else "—"
        published = _published(comparison, run)
        lines.append(f"| {run.label} | {len(finished)} | {' | '.join(cells)} | {sparsity_text} | {published} |")
    return "\n".join(lines)


def claims(comparison: Comparison, root: Path, seeds: list[int]) -> str:
    """The published table's claimed orderings between rows of ``comparison``, each marked on ``metric`` by
    ``ordering_status`` against the seeds' ``gap_spread`` (both from :mod:`lightning_compress.reporting.comparison`)."""
    if comparison.published is None:
        return ""
    table_id, _ = comparison.published
    by_row = {run.published: run for run in comparison.runs if run.published}
    lines = []
    for claim in get_table(table_id).claims:
        if claim.better not in by_row or claim.worse not in by_row:
            continue
        better, worse = (by_row[row] for row in (claim.better, claim.worse))
        values = [[100 * m[comparison.metric] for m in _finished(root, run, seeds)] for run in (better, worse)]
        text = f"{better.label} > {worse.label} ({claim.source}): "
        if not all(values):
            lines.append(f"* {text}no data")
            continue
        gap = statistics.mean(values[0]) - statistics.mean(values[1])
        spread = gap_spread([statistics.stdev(v) if len(v) > 1 else None for v in values])
        detail = "a single seed" if spread is None else f"seed spread {spread:.2f}, {min(map(len, values))} seeds"
        lines.append(f"* {text}**{ordering_status(gap, spread)}**: {gap:+.2f} points ({detail})")
    return "\n".join(lines)


def plot(name: str, comparison: Comparison, root: Path, seeds: list[int], out_dir: Path) -> Path | None:
    """Bar chart of ``comparison``: mean ± std per run of every ``val/<language>/accuracy`` it logged (cross-lingual
    runs) or of its metric; each seed's value as a dot. Returns the PNG path, or ``None`` without finished runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finished = {
        run.label: [
            json.loads(path.read_text())
            for seed in seeds
            if (path := run_dir(root, run, seed) / "final_metrics.json").is_file()
        ]
        for run in comparison.runs
    }
    finished = {label: metrics for label, metrics in finished.items() if metrics}
    if not finished:
        return None
    first = next(iter(finished.values()))[0]
    keys = sorted(k for k in first if k.startswith("val/") and k.endswith("/accuracy") and k.count("/") == 2)
    keys = [k for k in keys if "/avg" not in k] or [comparison.metric]
    width = 0.8 / len(finished)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(keys) + 2), 3.6))
    for index, (label, metrics) in enumerate(finished.items()):
        positions = [k + (index - (len(finished) - 1) / 2) * width for k in range(len(keys))]
        values = [[100 * m[key] for m in metrics if key in m] for key in keys]
        means = [statistics.mean(v) for v in values]
        errors = [_std(v) for v in values]
        ax.bar(positions, means, width, yerr=errors, capsize=2, label=f"{label} ({len(metrics)} seeds)")
        for position, points in zip(positions, values):
            ax.scatter([position] * len(points), points, s=6, color="black", zorder=3)
    ax.set_xticks(range(len(keys)), [k.split("/")[1] if len(keys) > 1 else k for k in keys])
    low = min(100 * m[k] for metrics in finished.values() for m in metrics for k in keys if k in m)
    ax.set_ylim(max(0.0, low - 10), None)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(comparison.title, fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("comparisons", nargs="+", choices=list(COMPARISONS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--root", type=Path, default=REPO / "runs" / "scaled")
    parser.add_argument("--jobs", type=int, default=1, help="Concurrent fits (CPU: the cores are shared).")
    parser.add_argument("--table-only", action="store_true", help="Tabulate the finished runs, run nothing.")
    parser.add_argument("--plots", type=Path, default=None, help="Also write one bar chart per comparison here.")
    args = parser.parse_args()
    if not args.table_only:
        plans = []
        for name in args.comparisons:  # teachers first, then the runs seed by seed
            comparison = COMPARISONS[name]
            plans += [plan(name, teacher, args.seeds[0], args.root) for teacher in comparison.teachers]
            for seed in args.seeds:
                for run in comparison.runs:
                    if run.ptq_of is None:
                        teacher_seed = args.seeds[0] if run.shared_teacher else seed
                        plans.append(plan(name, run, seed, args.root, teacher_seed))
        unique = {p.run_dir: p for p in plans}  # a run shared by two comparisons runs once
        run_plans(list(unique.values()), [], workers=args.jobs)
        for name in args.comparisons:
            for run in COMPARISONS[name].runs:
                if run.ptq_of is not None:
                    for seed in args.seeds:
                        evaluate_post_training_int8(args.root, run, seed)
    for name in args.comparisons:
        print()
        print(table(COMPARISONS[name], args.root, args.seeds))
        print()
        print(claims(COMPARISONS[name], args.root, args.seeds))
        if args.plots is not None and (path := plot(name, COMPARISONS[name], args.root, args.seeds, args.plots)):
            print(f"\n![{name}]({path})")


if __name__ == "__main__":
    main()
