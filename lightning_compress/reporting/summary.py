"""End-of-run summary of a compression run: metric before/after pruning, sparsity, exported size."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from pytorch_lightning import LightningModule, Trainer
from rich.console import Console
from rich.table import Table

from lightning_compress.callbacks.pruning import GradualMagnitudePruning
from lightning_compress.callbacks.structured_pruning import StructuredPruning
from lightning_compress.export import ExportSummary, check_finite_weights, save_compressed
from lightning_compress.pruning.masks import sparsity_report
from lightning_compress.targeting import resolve_targets


@dataclass(frozen=True)
class FitSummary:
    """What a pruning run achieved, measured at the end of ``Trainer.fit``."""

    metric: str
    dense_metric: float | None
    pruned_metric: float | None
    prunable_sparsity: float
    model_sparsity: float
    export: ExportSummary | None
    #: ``(unit, fraction removed)`` of a :class:`StructuredPruning` callback, or ``None``.
    structured: tuple[str, float] | None = None


def _main_metric(pl_module: LightningModule, trainer: Trainer) -> str:
    spec = getattr(pl_module, "task_spec", None)
    if spec is not None:
        return spec.main_metric
    return "val/loss" if "val/loss" in trainer.callback_metrics else next(iter(trainer.callback_metrics), "val/loss")


def summarize_fit(
    trainer: Trainer, pl_module: LightningModule, export_dir: str | Path | None = None
) -> FitSummary | None:
    """Summarize the pruning run of ``trainer`` (``None`` if it has no pruning callback).

    The dense metric is the last validation before the first :class:`GradualMagnitudePruning` event (the dense
    fine-tuned model); the pruned metric is the last validation of the run. With ``export_dir``, the model is exported
    with :func:`~lightning_compress.export.save_compressed` and the measured sizes are included: the compact format
    for unstructured sparsity, a slim plain transformers folder (``format="hf", slim=True``) when a
    :class:`StructuredPruning` callback removed neurons or layers, and an int8/int4 transformers + torchao folder
    (``quantize=...``, slim as well after structured pruning) when ``QuantizationAwareTraining`` converted the model.

    Raises:
        FloatingPointError: A weight of ``pl_module`` is NaN or infinite (the run diverged); nothing is exported.
    """
    pruning = next((cb for cb in trainer.callbacks if isinstance(cb, GradualMagnitudePruning)), None)
    structured = next((cb for cb in trainer.callbacks if isinstance(cb, StructuredPruning)), None)
    if pruning is None and structured is None:
        return None
    check_finite_weights(pl_module, "The fit summary")
    metric = _main_metric(pl_module, trainer)
    final = trainer.callback_metrics.get(metric)
    hf_model = getattr(pl_module, "model", None)  # the project's modules keep the HF model at `.model`
    if pruning is not None:
        target_names = pruning.target_names
    else:
        target_names = [f"model.{name}" for name in resolve_targets(hf_model)] if hasattr(hf_model, "config") else []
    report = sparsity_report(pl_module, target_names)
    export = None
    if export_dir is not None and hasattr(hf_model, "config"):
        prunable = [name.removeprefix("model.") for name in target_names]
        tokenizer = getattr(trainer.datamodule, "hf_tokenizer", None)
        quantize = _quantized_format(hf_model)  # converted at the end of fit by QuantizationAwareTraining
        if structured is not None and structured.history:
            export = save_compressed(
                hf_model, export_dir, format="hf", slim=True, quantize=quantize, tokenizer=tokenizer
            )
        elif quantize is not None:
            export = save_compressed(hf_model, export_dir, quantize=quantize, tokenizer=tokenizer)
        else:
            export = save_compressed(hf_model, export_dir, tokenizer=tokenizer, prunable=prunable)
    return FitSummary(
        metric=metric,
        dense_metric=None if pruning is None else pruning.metrics_before_pruning.get(metric),
        pruned_metric=None if final is None else float(final),
        prunable_sparsity=report["prunable"],
        model_sparsity=report["model"],
        export=export,
        structured=None
        if structured is None or not structured.history
        else (structured.unit, structured.history[-1][1]),
    )


def _quantized_format(model: object) -> str | None:
    """``"int8"`` / ``"int4"`` when ``model`` holds torchao-quantized Linear weights, else ``None``."""
    from lightning_compress.quantization.qat import torchao_quantized_linears

    bits = {module.weight.target_dtype for module in torchao_quantized_linears(model).values()}
    if not bits:
        return None
    return "int4" if torch.int4 in bits else "int8"


def print_fit_summary(summary: FitSummary, console: Console | None = None) -> None:
    """Print ``summary`` as a table."""
    console = console or Console()
    table = Table(title="lightning_compress: pruning summary")
    table.add_column("quantity", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    table.add_row(f"dense {summary.metric} (before pruning)", fmt(summary.dense_metric))
    table.add_row(f"pruned {summary.metric} (end of run)", fmt(summary.pruned_metric))
    table.add_row("sparsity of prunable weights", f"{summary.prunable_sparsity:.4f}")
    table.add_row("sparsity of the whole model", f"{summary.model_sparsity:.4f}")
    if summary.structured is not None:
        unit, fraction = summary.structured
        table.add_row(f"structured: {unit.replace('_', ' ')} removed", f"{fraction:.4f}")
    if summary.export is not None:
        mib = 2**20
        export = summary.export
        table.add_row("dense fp32 safetensors", f"{export.dense_bytes / mib:.1f} MiB")
        if export.format == "hf":
            table.add_row("export format", "hf (plain transformers folder)")
            table.add_row("export on disk", f"{export.compressed_bytes / mib:.1f} MiB ({export.ratio:.3f}x dense)")
            table.add_row(
                "export in memory (loaded)",
                f"{export.memory_bytes / mib:.1f} MiB ({export.memory_bytes / export.dense_memory_bytes:.3f}x dense)",
            )
        elif export.format.startswith("hf-"):
            bits = export.format.removeprefix("hf-")
            table.add_row("export format", f"hf {bits} (transformers + torchao folder)")
            table.add_row("export on disk", f"{export.compressed_bytes / mib:.1f} MiB ({export.ratio:.3f}x dense)")
            table.add_row(f"{bits} Linear weights / their fp32", f"{1 / export.quantized_compression:.3f}x")
        else:
            table.add_row("export format", "compact")
            table.add_row("compressed export", f"{export.compressed_bytes / mib:.1f} MiB ({export.ratio:.3f}x dense)")
            table.add_row("prunable weights: compressed / dense", f"{export.prunable_ratio:.3f}x")
    console.print(table)
    if summary.export is not None:
        console.print(f"compressed model: {summary.export.path.parent}")
