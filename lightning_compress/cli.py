"""The ``lightning-compress`` command.

* ``lightning-compress fit|validate|test --config CONFIG.yaml`` — LightningCLI: model, data, trainer and
  callbacks (``class_path``/``init_args``) declared in YAML. After ``fit`` with a pruning callback, the model
  is exported compressed to ``<log_dir>/compressed`` and a summary table is printed.
* ``lightning-compress export CHECKPOINT OUTDIR`` — compressed export of a Lightning checkpoint.
* ``lightning-compress tune --config configs/tune/NAME.yaml [--resume]`` — sparsity sweep (``SparsityTuner``).
* ``lightning-compress reproduce TABLE [--scaled] [--seeds N] [-- OVERRIDES]`` — every run of a published table.
* ``lightning-compress report RUNS_DIR [--out docs/results]`` — our numbers next to the published ones, with plots.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pickle
import sys
from dataclasses import asdict
from pathlib import Path

from pytorch_lightning import LightningDataModule, LightningModule, Trainer
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from lightning_compress.data.base import TokenizedDataModule
from lightning_compress.models.base import TransformerTaskModule
from lightning_compress.reporting.summary import print_fit_summary, summarize_fit


class CompressCLI(LightningCLI):
    """LightningCLI with the model's ``pretrained`` feeding the tokenizer and the data's task feeding the model."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("model.init_args.pretrained", "data.init_args.tokenizer", apply_on="parse")
        parser.link_arguments("data", "model.init_args.task_spec", compute_fn=_task_spec_dict, apply_on="instantiate")
        parser.add_argument(
            "--export_dir",
            type=str | None,
            default=None,
            help="Where `fit` writes the compressed model (default: <log_dir>/compressed; 'none' to skip).",
        )

    def after_fit(self) -> None:
        export_dir = self.config.get(self.subcommand, {}).get("export_dir")
        if export_dir is None:
            export_dir = str(Path(self.trainer.log_dir or ".") / "compressed")
        if export_dir.lower() == "none":
            export_dir = None
        if self.trainer.is_global_zero:
            summary = summarize_fit(self.trainer, self.model, export_dir)
            if summary is not None:
                print_fit_summary(summary)


class RunFolderConfig(SaveConfigCallback):
    """Saves the parsed config beside the run's logs, never into the current folder.

    Without a logger and without ``default_root_dir`` Lightning's log folder is the current folder; a config written
    there would litter the user's working directory, so nothing is written in that case.
    """

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        log_dir = trainer.log_dir
        if log_dir is None or Path(log_dir).resolve() == Path.cwd().resolve():
            return
        super().setup(trainer, pl_module, stage)


def _task_spec_dict(datamodule: LightningDataModule) -> dict:
    return asdict(datamodule.task_spec)


def export_main(argv: list[str]) -> None:
    """``lightning-compress export CHECKPOINT OUTDIR``: write a compressed Hugging Face folder.

    The checkpoint is read weights-only (no code stored in it runs); ``--trust-checkpoint`` unpickles it without
    restriction, for trusted files that need it. The module is rebuilt from the checkpoint's hyper-parameters, so only
    checkpoints of the project's modules (``SequenceClassificationModule``, ``TokenClassificationModule``) are
    supported; export a module of your own with ``save_compressed(module.model, OUTDIR)`` from Python.
    """
    from lightning_compress.checkpoints import load_checkpoint
    from lightning_compress.export import check_export_dir, save_compressed

    parser = argparse.ArgumentParser(prog="lightning-compress export", description=export_main.__doc__)
    parser.add_argument(
        "checkpoint", type=Path, help="Lightning checkpoint (.ckpt) written by `lightning-compress fit`."
    )
    parser.add_argument("outdir", type=Path, help="Output folder (replaced whole when it is a previous export).")
    parser.add_argument(
        "--format",
        choices=["compact", "hf"],
        default=None,
        help="compact: sparse/bit-packed files read by `load_compressed` (default without --slim/--quantize); hf: a "
        "plain transformers folder that `AutoModelFor<Task>.from_pretrained` opens without this library.",
    )
    parser.add_argument(
        "--slim",
        action="store_true",
        help="With --format hf: physically remove the feed-forward neurons and encoder layers removed by "
        "StructuredPruning (smaller matrices, config and memory).",
    )
    parser.add_argument(
        "--quantize",
        choices=["int8", "int4"],
        default=None,
        help="Write int8/int4 Linear weights as a transformers + torchao folder (implies --format hf); a model "
        "trained with QuantizationAwareTraining keeps its learned formats, others are quantized post-training.",
    )
    parser.add_argument(
        "--dtype",
        choices=["float32", "float16", "bfloat16"],
        default="float32",
        help="Storage dtype of the values (bfloat16: --format hf only).",
    )
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="Unpickle the checkpoint without restriction (runs any code stored in it): only for files you trust.",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="Replace OUTDIR (deleting everything in it) even when it is a non-empty folder that is not an export.",
    )
    args = parser.parse_args(argv)
    source = f"`lightning-compress export {args.checkpoint}`"
    try:
        check_export_dir(args.outdir, args.overwrite, hint="`--overwrite`")
        checkpoint = load_checkpoint(
            args.checkpoint, trust_checkpoint=args.trust_checkpoint, source=source, trust_hint="`--trust-checkpoint`"
        )
        module = _task_module_from_checkpoint(checkpoint, source)
        summary = save_compressed(
            module.model,
            args.outdir,
            format=args.format,
            slim=args.slim,
            quantize=args.quantize,
            dtype=args.dtype,
            tokenizer=_tokenizer_of(module),
            overwrite=args.overwrite,
        )
    except (ValueError, OSError, pickle.UnpicklingError, FloatingPointError) as error:
        parser.error(str(error))
    print(
        f"wrote {summary.path} ({summary.compressed_bytes / 2**20:.1f} MiB, {summary.ratio:.3f}x the dense fp32 "
        f"safetensors; prunable weights {summary.prunable_ratio:.3f}x)"
    )


def _kept_layers(checkpoint: dict) -> list[int] | None:
    """The encoder layers a ``StructuredPruning(unit="layers")`` callback kept, from its saved state (or ``None``)."""
    from lightning_compress.pruning.structured import kept_layers_from_masks

    for state in (checkpoint.get("callbacks") or {}).values():
        if isinstance(state, dict) and state.get("unit") == "layers" and state.get("masks"):
            kept = kept_layers_from_masks(state["masks"])
            if len(kept) < len(state["masks"]):
                return kept
    return None


def _slice_layers(module: TransformerTaskModule, kept_layers: list[int]) -> None:
    from lightning_compress.pruning.structured import slice_layers_

    slice_layers_(module.model, kept_layers)


def _tokenizer_of(module: TransformerTaskModule) -> object | None:
    """The module's tokenizer when its ``pretrained`` folder or hub id has one available offline, else ``None``."""
    from lightning_compress.data.tokenized import load_tokenizer

    try:
        return load_tokenizer(str(module.hparams.get("pretrained")))
    except (OSError, ValueError):
        return None


def _task_module_from_checkpoint(checkpoint: object, source: str) -> TransformerTaskModule:
    """The project module a loaded Lightning checkpoint was written from, rebuilt from its hyper-parameters.

    Encoder layers removed by ``StructuredPruning(unit="layers")`` are sliced out (a checkpoint written during fit
    still holds them, skipped by hooks that a checkpoint does not keep). The class is the checkpoint's
    ``_class_path`` (written by the CLI) when it names a subclass of
    :class:`TransformerTaskModule` of this package or one already imported; otherwise the project module of the
    ``task_spec`` kind. Nothing is imported from a path the checkpoint names outside this package.
    """
    from lightning_compress.models import SequenceClassificationModule, TokenClassificationModule

    supported = (
        f"expected a checkpoint of {SequenceClassificationModule.__name__} or {TokenClassificationModule.__name__} "
        "(or a subclass), as `lightning-compress fit` writes. HINT: for a LightningModule of your own, export its "
        "Hugging Face model from Python: `save_compressed(module.model, outdir)` "
        "(`from lightning_compress.export import save_compressed`)."
    )
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{source} is invalid: the file is not a Lightning checkpoint (no `state_dict`); {supported}")
    hparams = dict(checkpoint.get(LightningModule.CHECKPOINT_HYPER_PARAMS_KEY) or {})
    class_path = hparams.pop("_class_path", None)
    hparams.pop("_instantiator", None)
    task_spec = hparams.get("task_spec")
    kind = task_spec.get("kind") if isinstance(task_spec, dict) else getattr(task_spec, "kind", None)
    if class_path is not None:
        module_class = _imported_task_module(class_path)
        if module_class is None:
            raise ValueError(f"{source} is invalid: it was written from {class_path}; {supported}")
    elif "pretrained" in hparams and kind in TokenClassificationModule.task_kinds:
        module_class = TokenClassificationModule
    elif "pretrained" in hparams and kind in SequenceClassificationModule.task_kinds:
        module_class = SequenceClassificationModule
    else:
        raise ValueError(
            f"{source} is invalid: its hyper-parameters name no module of lightning_compress (no `_class_path`, "
            f"no `pretrained` and task kind; found {sorted(hparams)[:6]}); {supported}"
        )
    arguments = inspect.signature(module_class.__init__).parameters
    module = module_class(**{key: value for key, value in hparams.items() if key in arguments})
    kept_layers = _kept_layers(checkpoint)
    if kept_layers is not None and not any(f".layer.{len(kept_layers)}." in key for key in state):
        _slice_layers(module, kept_layers)  # saved after fit, where the removed layers were already sliced out
        kept_layers = None
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(
            f"{source} is invalid: its weights do not fit the {module_class.__name__} its hyper-parameters describe "
            "(a model changed during fit, e.g. quantized by TernaryWeightSplitting, is exported at the end of that "
            f"fit, or with `save_compressed` from Python): {' '.join(str(error).split())[:500]}"
        ) from None
    if kept_layers is not None:
        _slice_layers(module, kept_layers)  # saved during fit: the removed layers are skipped by hooks, not gone
    return module


def _imported_task_module(class_path: object) -> type[TransformerTaskModule] | None:
    """The :class:`TransformerTaskModule` subclass ``class_path`` names, if it is in this package or imported."""
    if not isinstance(class_path, str) or "." not in class_path:
        return None
    module_path, _, name = class_path.rpartition(".")
    if module_path == "lightning_compress" or module_path.startswith("lightning_compress."):
        try:
            importlib.import_module(module_path)
        except ImportError:
            return None
    target = getattr(sys.modules.get(module_path), name, None)
    return target if isinstance(target, type) and issubclass(target, TransformerTaskModule) else None


def tune_main(argv: list[str]) -> None:
    """``lightning-compress tune --config TUNE.yaml [--resume]``: run or continue a sparsity sweep."""
    from lightning_compress.tuner.tuner import make_tuner

    parser = argparse.ArgumentParser(prog="lightning-compress tune", description=tune_main.__doc__)
    parser.add_argument("--config", type=Path, required=True, help="Tune YAML (see docs/tuner.md).")
    parser.add_argument("--resume", action="store_true", help="Continue the sweep journaled in its out_dir.")
    parser.add_argument("--out_dir", type=str, default=None, help="Override the config's out_dir.")
    parser.add_argument("--no_live", action="store_true", help="Print one line per trial change, no live table.")
    parser.add_argument(
        "--allow-changed-settings",
        "--allow_changed_settings",
        dest="allow_changed_settings",
        action="store_true",
        help="With --resume: continue even if the tune settings or trial config differ from the stored ones.",
    )
    args = parser.parse_args(argv)
    if not args.config.is_file():
        parser.error(f"config {args.config} does not exist")
    tuner = make_tuner(args.config, out_dir=args.out_dir, live=False if args.no_live else None)
    try:
        tuner.run(resume=args.resume, allow_changed_settings=args.allow_changed_settings)
    except KeyboardInterrupt:
        raise SystemExit(130) from None  # the tuner stopped and re-queued its running trials


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``lightning-compress``; ``argv`` defaults to the command line."""
    command = sys.argv[1:] if argv is None else argv
    if command and command[0] == "export":
        export_main(command[1:])
        return
    if command and command[0] == "tune":
        tune_main(command[1:])
        return
    if command and command[0] == "reproduce":
        from lightning_compress.reproduce import reproduce_main

        sys.exit(reproduce_main(command[1:]))
    if command and command[0] == "report":
        from lightning_compress.reporting.report import report_main

        report_main(command[1:])
        return
    CompressCLI(
        TransformerTaskModule,
        TokenizedDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=argv,
        save_config_callback=RunFolderConfig,
        save_config_kwargs={"overwrite": True},
    )


if __name__ == "__main__":
    main()
