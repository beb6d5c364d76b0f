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
    """``lightning-compress export CHECKPOINT OUTDIR``: write a compressed Hugging Face folder."""
    from lightning_compress.export import save_compressed

    parser = argparse.ArgumentParser(prog="lightning-compress export", description=export_main.__doc__)
    parser.add_argument(
        "checkpoint", type=Path, help="Lightning checkpoint (.ckpt) written by `lightning-compress fit`."
    )
    parser.add_argument("outdir", type=Path, help="Output folder.")
    parser.add_argument(
        "--dtype", choices=["float32", "float16"], default="float32", help="Storage dtype of the values."
    )
    args = parser.parse_args(argv)
    if not args.checkpoint.is_file():
        parser.error(f"checkpoint {args.checkpoint} does not exist")
    module = LightningModule.load_from_checkpoint(args.checkpoint, map_location="cpu", weights_only=False)
    if not hasattr(getattr(module, "model", None), "config"):
        parser.error(
            f"{type(module).__name__} keeps no Hugging Face model at `.model`; use `save_compressed` from Python."
        )
    summary = save_compressed(module.model, args.outdir, dtype=args.dtype)
    print(
        f"wrote {summary.path} ({summary.compressed_bytes / 2**20:.1f} MiB, {summary.ratio:.3f}x the dense fp32 "
        f"safetensors; prunable weights {summary.prunable_ratio:.3f}x)"
    )


def tune_main(argv: list[str]) -> None:
    """``lightning-compress tune --config TUNE.yaml [--resume]``: run or continue a sparsity sweep."""
    from lightning_compress.tuner.tuner import make_tuner

    parser = argparse.ArgumentParser(prog="lightning-compress tune", description=tune_main.__doc__)
    parser.add_argument("--config", type=Path, required=True, help="Tune YAML (see docs/tuner.md).")
    parser.add_argument("--resume", action="store_true", help="Continue the sweep journaled in its out_dir.")
    parser.add_argument("--out_dir", type=str, default=None, help="Override the config's out_dir.")
    parser.add_argument("--no_live", action="store_true", help="Print one line per trial change, no live table.")
    args = parser.parse_args(argv)
    if not args.config.is_file():
        parser.error(f"config {args.config} does not exist")
    tuner = make_tuner(args.config, out_dir=args.out_dir, live=False if args.no_live else None)
    tuner.run(resume=args.resume)


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
