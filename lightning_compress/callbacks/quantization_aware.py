"""Quantization-aware training of the targeted Linear layers (int8 / int4 weights, optional int8 activations)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.utilities import rank_zero_info
from torch import nn

from lightning_compress.callbacks._resume import StatefulCallback
from lightning_compress.quantization.qat import (
    DEFAULT_GROUP_SIZE,
    check_linear_modules,
    check_qat_arguments,
    fake_quantized_formats,
    qat_convert_,
    qat_prepare_,
)
from lightning_compress.targeting import resolve_targets
from lightning_compress.validation import check_bool, check_patterns, check_step_or_fraction


class QuantizationAwareTraining(StatefulCallback):
    r"""Fake-quantize the targeted ``nn.Linear`` layers from step ``start`` on, and convert them at the end of fit.

    From the first optimizer step ``≥ start`` the forward of every targeted Linear uses ``Q(W)`` instead of ``W``
    (and, with ``activations="int8"``, ``Q_a(x)`` instead of ``x``), with a straight-through gradient to the latent
    fp32 weights (Jacob et al. 2018, §3):

    .. math:: Q(w) = s \cdot \mathrm{clamp}(\mathrm{round}(w / s), -2^{b-1}, 2^{b-1} - 1), \quad
        s = \max|w| / ((2^b - 1) / 2)

    per output row (``weights="int8"``) or per group of ``group_size`` input weights (``"int4"``), through torchao's
    QAT API (:mod:`lightning_compress.quantization.qat`). The swapped modules keep the user's Parameter objects, so the
    optimizer, the state-dict keys (``<module>.weight`` / ``.bias``) and other callbacks' masks are unaffected; pruned
    weights stay exactly zero (``Q(0) = 0``: the scheme is symmetric). Fake quantization is deterministic and has no
    state, so a resume before or after ``start`` is exact: the callback re-prepares a resumed model past ``start``.
    At the end of fit (``convert_at_end=True``) the modules become ``nn.Linear`` with torchao int8/int4 weights that
    give the fake-quantized outputs; save them with
    :func:`~lightning_compress.quantization.hf_export.save_quantized_hf`.

    Args:
        weights: ``"int8"`` (one scale per output row) or ``"int4"`` (one scale per ``group_size`` inputs).
        activations: ``"int8"`` (dynamic, asymmetric, per token) or ``None`` (full-precision activations).
        group_size: Input weights per scale of ``"int4"``; must divide every targeted ``in_features``.
        start: First optimizer step with fake quantization: a float in ``[0, 1]`` is a fraction of the run's
            optimizer steps (``trainer.estimated_stepping_batches``), an int an absolute step. To quantize a pruned
            model, start at or after the pruning schedule's ``end``.
        targets: Regexes over parameter names (the same rules as the pruning callbacks); default every ``nn.Linear``
            weight inside the transformer encoder.
        exclude: Regexes removing parameters from the targets.
        convert_at_end: Convert to real quantized modules in ``on_fit_end``; ``False`` keeps the fake-quantized
            fp32 modules (e.g. to continue training in another ``fit``).

    Example::

        trainer = Trainer(max_epochs=3, callbacks=[QuantizationAwareTraining(weights="int8", start=0.5)])
        trainer.fit(module, datamodule)
    """

    def __init__(
        self,
        weights: Literal["int8", "int4"] = "int8",
        activations: Literal["int8"] | None = "int8",
        group_size: int = DEFAULT_GROUP_SIZE,
        start: int | float = 0.0,
        targets: str | list[str] | None = None,
        exclude: str | list[str] | None = None,
        convert_at_end: bool = True,
    ) -> None:
        super().__init__()
        self._validate_init_arguments(
            weights=weights,
            activations=activations,
            group_size=group_size,
            start=start,
            targets=targets,
            exclude=exclude,
            convert_at_end=convert_at_end,
        )
        self.weights = weights
        self.activations = activations
        self.group_size = group_size
        self.start = start
        self.targets = check_patterns("QuantizationAwareTraining", "targets", targets)
        self.exclude = check_patterns("QuantizationAwareTraining", "exclude", exclude)
        self.convert_at_end = convert_at_end

        self.module_names: list[str] = []
        self.start_step: int | None = None
        self.prepared_at_step = -1

    @staticmethod
    def _validate_init_arguments(**arguments: Any) -> None:
        name = "QuantizationAwareTraining"
        check_qat_arguments(name, arguments["weights"], arguments["activations"], arguments["group_size"])
        check_step_or_fraction(name, "start", arguments["start"])
        check_bool(name, "convert_at_end", arguments["convert_at_end"])
        check_patterns(name, "targets", arguments["targets"])
        check_patterns(name, "exclude", arguments["exclude"])

    def checkpoint_settings(self) -> dict[str, Any]:
        """The constructor settings the fake quantization depends on (saved in the state, compared on resume)."""
        return {
            "weights": self.weights,
            "activations": self.activations,
            "group_size": self.group_size,
            "start": self.start,
            "targets": list(self.targets),
            "exclude": list(self.exclude),
        }

    # ------------------------------------------------------------------ hooks
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage != "fit":
            return
        names = resolve_targets(pl_module, self.targets or None, self.exclude or None)
        owner = "QuantizationAwareTraining"
        modules = []
        for name in names:
            module_name, _, attribute = name.rpartition(".")
            if attribute != "weight":
                raise ValueError(
                    f"`{owner}` quantizes nn.Linear weights, but the target `{name}` is not a weight. "
                    "HINT: restrict `targets` to the weights of nn.Linear modules."
                )
            modules.append(module_name)
        check_linear_modules(pl_module, modules, owner, self.group_size if self.weights == "int4" else None)
        self.module_names = modules

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self.start_step = self._start_step(trainer)
        self._maybe_prepare(trainer, pl_module)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._maybe_prepare(trainer, pl_module)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.convert_at_end and self.is_prepared(pl_module):
            converted = qat_convert_(pl_module)
            rank_zero_info(f"QuantizationAwareTraining: converted {len(converted)} Linear modules to {self.weights}.")

    # ------------------------------------------------------------------ logic
    def is_prepared(self, pl_module: nn.Module) -> bool:
        """Whether every targeted module of ``pl_module`` is fake-quantized."""
        formats = fake_quantized_formats(pl_module)
        return bool(self.module_names) and all(name in formats for name in self.module_names)

    def _start_step(self, trainer: Trainer) -> int:
        if isinstance(self.start, int):
            return self.start
        total = trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise ValueError(
                f"`QuantizationAwareTraining(start={self.start})` is a fraction of the run, which needs a bounded run: "
                "set `max_epochs` or `max_steps`, or give `start` as an int step."
            )
        return round(self.start * int(total))

    def _maybe_prepare(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.start_step is None or trainer.global_step < self.start_step or self.is_prepared(pl_module):
            return
        qat_prepare_(pl_module, self.module_names, self.weights, self.activations, self.group_size)
        if not 0 <= self.prepared_at_step <= trainer.global_step:  # a resumed run keeps the step it was saved with
            self.prepared_at_step = trainer.global_step
        rank_zero_info(
            f"QuantizationAwareTraining: step {trainer.global_step}, fake-quantizing {len(self.module_names)} Linear "
            f"modules (weights={self.weights}, activations={self.activations})."
        )

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "settings": self.checkpoint_settings(),
            "module_names": list(self.module_names),
            "start_step": self.start_step,
            "prepared_at_step": self.prepared_at_step,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.check_resumed_settings(state_dict)
        # the resumed model is re-prepared in `on_train_start` when its step is past `start` (fake quantization has no
        # state besides the latent weights, which the checkpoint holds under their own keys)
        self.prepared_at_step = int(state_dict.get("prepared_at_step", -1))
