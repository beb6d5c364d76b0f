"""Gradient dropout during fine-tuning (docs/methods.md#gradient-dropout): GradDrop, Layer-GradDrop,
GradDrop-Epoch(-Toggle), annealing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Literal

import torch
from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor, nn

from lightning_compress.callbacks._common import _DROPOUT_TYPES, named_parameters, warn_if_training_in_eval_mode
from lightning_compress.callbacks._resume import StatefulCallback
from lightning_compress.callbacks.finite_guard import GuardedCallback
from lightning_compress.gradient_dropout import (
    annealed_drop_probability,
    element_keep_mask,
    epoch_keep_mask,
    group_keeps,
    mask_generator,
)
from lightning_compress.targeting import (
    ATTENTION_PROJECTIONS_PATTERN,
    ENCODER_LAYER_PATTERN,
    resolve_encoder_parameters,
)
from lightning_compress.validation import check_bool, check_choice, check_float, check_int, check_patterns

_NAME = "GradientDropout"
#: mode -> whether its masks are redrawn from ``p`` (element, layer) or fixed per epoch (epoch, toggle).
_MODES = {"element": True, "layer": True, "epoch": False, "toggle": False}
_SCHEDULES = ("constant", "linear")
_MASK_MODES = ("grad", "update")
_RESAMPLES = ("step", "epoch")
_SCOPES = {"all": None, "attention": [ATTENTION_PROJECTIONS_PATTERN]}


class GradientDropout(StatefulCallback, GuardedCallback):
    r"""Drop gradient entries at random while the model is fine-tuned (O'Neill Ch. 10,
    docs/methods.md#gradient-dropout).

    After backpropagation and before every optimizer step, the gradient of each target parameter is multiplied
    by a binary mask that zeroes an entry with probability ``p`` (O'Neill Eq. 10.3, drop probability as in
    docs/methods.md#drop-probability-versus-keep-probability):

    .. math:: \theta' = \mathrm{opt}(\theta, g \odot (1 - m)), \quad m_{ij} \sim \mathrm{Bernoulli}(p)

    Modes: ``"element"`` (GradDrop, a fresh mask per entry and optimizer step), ``"layer"`` (Layer-GradDrop: each
    transformer block, and each target outside the blocks, is kept or dropped as a whole), ``"epoch"``
    (GradDrop-Epoch: a random permutation of every target is cut into ``T`` chunks and chunks ``1..e`` train in
    epoch ``e``, so the last epoch trains everything) and ``"toggle"`` (only chunk ``e`` trains in epoch ``e``).
    ``schedule="linear"`` anneals ``p`` per epoch from ``p`` to ``p_end`` (Anneal-GradDrop,
    docs/methods.md#annealed-gradient-dropout: use
    ``p=0.9``).

    Masks come from generators seeded by (``seed``, optimizer step, parameter FQN), so all DDP ranks drop the same
    entries and a resumed run drops exactly what the uninterrupted one did. With Adam-type optimizers a zeroed
    gradient entry still moves through the moment estimates and decoupled weight decay (``mask_mode="grad"``,
    Eq. 10.3 as printed); ``mask_mode="update"`` also restores the dropped entries after the optimizer step, so
    they do not change at all (whole dropped tensors get no gradient, hence no optimizer update or moment
    change either). With ``p == 0`` the callback touches no gradient and draws no random number: training is
    bitwise that of plain fine-tuning.

    Following O'Neill §10.3.4 the model's own dropout is switched off while the callback trains (``model_dropout``;
    docs/methods.md#graddrop, docs/methods.md#model-dropout-under-gradient-dropout); the baseline with dropout 0.2 is
    ``GradientDropout(p=0.0, model_dropout=0.2)``.

    Args:
        p: Drop probability in ``[0, 1)`` (``"element"``, ``"layer"``); the start value with ``schedule="linear"``.
            Unused by ``"epoch"`` and ``"toggle"``.
        mode: ``"element"``, ``"layer"``, ``"epoch"`` or ``"toggle"``.
        schedule: ``"constant"`` or ``"linear"`` (per epoch from ``p`` in the first to ``p_end`` in the last epoch).
        p_end: Drop probability of the last epoch with ``schedule="linear"``.
        mask_mode: ``"grad"`` (zero the dropped gradient entries) or ``"update"`` (also freeze their values).
        rescale: Multiply kept gradients by ``1 / (1 - p)`` (not in the thesis; ``"element"``, ``"layer"`` only).
        resample: Draw new masks every optimizer ``"step"`` (default) or once per ``"epoch"`` (the "chosen at random
            … at each epoch" reading of Layer-GradDrop, docs/methods.md#layer-graddrop-resampling).
        scope: Default targets when ``targets`` is None: ``"all"`` (every encoder and pooler parameter, biases and
            LayerNorm included; not the input embeddings or the task head) or ``"attention"`` (query, key, value and
            attention-output projections, the narrower reading of §10.3.1).
        model_dropout: Probability set on every ``nn.Dropout`` of the module during fit (restored afterwards);
            ``None`` leaves the model's dropout alone.
        num_epochs: ``T`` of the epoch-based modes and of the linear schedule; ``None`` uses ``trainer.max_epochs``.
        seed: Seed of the masks (independent of the global random state).
        targets: Regexes over parameter names; default given by ``scope``.
        exclude: Regexes removing parameters from the targets.

    Example::

        trainer = Trainer(max_epochs=3, callbacks=[GradientDropout(p=0.2, mode="layer")])
        trainer.fit(module, datamodule)
    """

    def __init__(
        self,
        p: float = 0.2,
        mode: Literal["element", "layer", "epoch", "toggle"] = "element",
        schedule: Literal["constant", "linear"] = "constant",
        p_end: float = 0.0,
        mask_mode: Literal["grad", "update"] = "grad",
        rescale: bool = False,
        resample: Literal["step", "epoch"] = "step",
        scope: Literal["all", "attention"] = "all",
        model_dropout: float | None = 0.0,
        num_epochs: int | None = None,
        seed: int = 0,
        targets: str | list[str] | None = None,
        exclude: str | list[str] | None = None,
    ) -> None:
        super().__init__()
        self._validate_init_arguments(
            p,
            mode,
            schedule,
            p_end,
            mask_mode,
            rescale,
            resample,
            scope,
            model_dropout,
            num_epochs,
            seed,
            targets,
            exclude,
        )
        self.p = float(p)
        self.mode = mode
        self.schedule = schedule
        self.p_end = float(p_end)
        self.mask_mode = mask_mode
        self.rescale = rescale
        self.resample = resample
        self.scope = scope
        self.model_dropout = None if model_dropout is None else float(model_dropout)
        self.num_epochs = num_epochs
        self.seed = seed
        self.targets = check_patterns(_NAME, "targets", targets)
        self.exclude = check_patterns(_NAME, "exclude", exclude)

        self.target_names: list[str] = []
        self._groups: dict[str, str] = {}  # target FQN -> Layer-GradDrop group
        self._group_names: list[str] = []
        self._saved_dropout: dict[str, float] = {}
        self._total_epochs = 0
        self._epoch = -1  # 0-based epoch whose p and epoch masks are current
        self._epoch_p = 0.0
        self._epoch_masks: dict[str, Tensor] = {}
        self._buffers: dict[Any, Tensor] = {}  # reused mask / snapshot memory
        self._pending: list[tuple[nn.Parameter, Tensor, Tensor]] = []  # (param, snapshot, keep) to restore
        self._eval_mode_checked = False

    @staticmethod
    def _validate_init_arguments(
        p: Any,
        mode: Any,
        schedule: Any,
        p_end: Any,
        mask_mode: Any,
        rescale: Any,
        resample: Any,
        scope: Any,
        model_dropout: Any,
        num_epochs: Any,
        seed: Any,
        targets: Any,
        exclude: Any = None,
    ) -> None:
        for arg, value in (("p", p), ("p_end", p_end), ("model_dropout", model_dropout)):
            check_float(
                _NAME,
                arg,
                value,
                0.0,
                1.0,
                high_inclusive=False,
                allow_none=arg == "model_dropout",
                note="a drop probability; 1.0 would drop every gradient",
            )
        check_choice(_NAME, "mode", mode, _MODES)
        check_choice(_NAME, "schedule", schedule, _SCHEDULES)
        check_choice(_NAME, "mask_mode", mask_mode, _MASK_MODES)
        check_choice(_NAME, "resample", resample, _RESAMPLES)
        check_choice(_NAME, "scope", scope, _SCOPES)
        check_bool(_NAME, "rescale", rescale)
        check_int(_NAME, "num_epochs", num_epochs, 1, allow_none=True)
        check_int(_NAME, "seed", seed)
        check_patterns(_NAME, "targets", targets)
        check_patterns(_NAME, "exclude", exclude)
        if not _MODES[mode]:
            for arg, value, default in (("schedule", schedule, "constant"), ("resample", resample, "step")):
                if value != default:
                    raise ValueError(
                        f"`{_NAME}(mode={mode!r}, {arg}={value!r})` is invalid: mode {mode!r} fixes its masks per "
                        f"epoch from a random permutation; {arg} applies to 'element' and 'layer' only."
                    )
            if rescale:
                raise ValueError(
                    f"`{_NAME}(mode={mode!r}, rescale=True)` is invalid: rescaling by 1 / (1 - p) applies to "
                    "'element' and 'layer' only."
                )
        if targets is not None and scope != "all":
            raise ValueError(
                f"`{_NAME}(scope={scope!r}, targets={targets!r})` is invalid: scope chooses the default targets; "
                "pass one or the other."
            )

    resumable_settings = ("p", "p_end", "schedule", "mask_mode", "rescale", "model_dropout", "num_epochs")
    resume_rule = (
        "Masks are drawn afresh every step from (seed, step, parameter), so the new drop settings apply from the "
        "resumed step on."
    )

    def checkpoint_settings(self) -> dict[str, Any]:
        """The constructor settings the masks depend on (compared on resume; ``seed`` is saved and restored)."""
        return {
            "mode": self.mode,
            "resample": self.resample,
            "scope": self.scope,
            "targets": list(self.targets),
            "exclude": list(self.exclude),
            "p": self.p,
            "p_end": self.p_end,
            "schedule": self.schedule,
            "mask_mode": self.mask_mode,
            "rescale": self.rescale,
            "model_dropout": self.model_dropout,
            "num_epochs": self.num_epochs,
        }

    # ------------------------------------------------------------------ hooks
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage != "fit":
            return
        targets = self.targets or _SCOPES[self.scope]
        self.target_names = resolve_encoder_parameters(pl_module, targets, self.exclude or None)
        self._groups = {name: _layer_group(name) for name in self.target_names}
        self._group_names = sorted(set(self._groups.values()))
        if self.model_dropout is not None:
            for name, module in pl_module.named_modules():
                if isinstance(module, _DROPOUT_TYPES):
                    self._saved_dropout[name] = module.p
                    module.p = self.model_dropout

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._total_epochs = self.num_epochs or max(trainer.max_epochs or 0, 0)
        uses_epochs = not _MODES[self.mode] or self.schedule == "linear"
        if uses_epochs and self._total_epochs < 1:
            raise ValueError(
                f"{_NAME}(mode={self.mode!r}, schedule={self.schedule!r}) schedules over epochs: set the trainer's "
                "`max_epochs` or the callback's `num_epochs`."
            )
        self._epoch = -1

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if not self._eval_mode_checked:
            if self.model_dropout != 0.0:
                warn_if_training_in_eval_mode(pl_module, _NAME)
            self._eval_mode_checked = True
        if self._epoch != trainer.current_epoch:
            self._start_epoch(trainer, pl_module)
            if _MODES[self.mode]:
                pl_module.log("compress/graddrop/p", self._epoch_p, on_step=False, on_epoch=True, rank_zero_only=True)
            else:
                masks = self._epoch_masks.values()
                active = sum(int(mask.sum()) for mask in masks) / sum(mask.numel() for mask in masks) if masks else 1.0
                pl_module.log(
                    "compress/graddrop/active_fraction", active, on_step=False, on_epoch=True, rank_zero_only=True
                )

    @torch.no_grad()
    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        if self._epoch != trainer.current_epoch:  # e.g. a run resumed in the middle of an epoch
            self._start_epoch(trainer, pl_module)
        if _MODES[self.mode] and self._epoch_p == 0.0:
            return
        params = named_parameters(pl_module)
        update = self.mask_mode == "update"
        scale = 1.0 / (1.0 - self._epoch_p) if self.rescale else 1.0
        for name, keep in self._keeps(trainer, params):
            param = params[name]
            if param.grad is None:
                continue
            if isinstance(keep, bool):  # Layer-GradDrop: the whole tensor
                if keep:
                    if scale != 1.0:
                        param.grad.mul_(scale)
                elif update:
                    param.grad = None  # no optimizer update, no weight decay, no moment change
                else:
                    param.grad.zero_()
                continue
            if update:
                snapshot = self._buffer(("snapshot", name), param).view_as(param)
                snapshot.copy_(param)
                self._pending.append((param, snapshot, keep))
            param.grad.mul_(keep)
            if scale != 1.0:
                param.grad.mul_(scale)

    @torch.no_grad()
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        for param, snapshot, keep in self._pending:
            torch.where(keep, param, snapshot, out=param)
        self._pending.clear()
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        modules = dict(pl_module.named_modules())
        for name, p in self._saved_dropout.items():
            if name in modules:
                modules[name].p = p
        self._saved_dropout.clear()
        self._buffers.clear()
        self._epoch_masks.clear()
        self._pending.clear()
        self._epoch = -1

    # ------------------------------------------------------------------ logic
    def _start_epoch(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Drop probability and, for the epoch modes, the masks of the current epoch."""
        epoch = trainer.current_epoch + 1
        if self.schedule == "linear":
            self._epoch_p = annealed_drop_probability(epoch, self._total_epochs, self.p, self.p_end)
        else:
            self._epoch_p = self.p
        self._epoch_masks = {}  # empty: every entry trains
        if not _MODES[self.mode] and (self.mode == "toggle" or epoch < self._total_epochs):
            params = named_parameters(pl_module)
            self._epoch_masks = {
                name: epoch_keep_mask(
                    params[name].shape,
                    epoch,
                    self._total_epochs,
                    mask_generator(self.seed, "chunks", name, device=params[name].device),
                    toggle=self.mode == "toggle",
                )
                for name in self.target_names
            }
        self._epoch = trainer.current_epoch

    def _keeps(self, trainer: Trainer, params: dict[str, nn.Parameter]) -> Iterator[tuple[str, Tensor | bool]]:
        """Yield ``(fqn, keep)`` for this optimizer step: a mask (``1`` = kept entry), or one ``bool`` for the
        whole tensor (Layer-GradDrop)."""
        if not _MODES[self.mode]:
            yield from self._epoch_masks.items()
            return
        key = ("step", trainer.global_step) if self.resample == "step" else ("epoch", trainer.current_epoch)
        if self.mode == "layer":
            keeps = group_keeps(self._group_names, self._epoch_p, self.seed, *key)
            for name in self.target_names:
                yield name, keeps[self._groups[name]]
            return
        for name in self.target_names:
            param = params[name]
            if param.grad is None:
                continue
            generator = mask_generator(self.seed, *key, name, device=param.device)
            if self.mask_mode == "update":  # a bool mask per parameter, kept until the restore after the step
                out = self._buffer(("mask", name), param, torch.bool)
            else:  # one 0/1 buffer in the gradient's dtype for every parameter: the fastest multiply on CPU
                out = self._buffer(("mask", param.device, param.grad.dtype), param, param.grad.dtype)
            scratch = self._buffer(("words", param.device), param, torch.int64, (param.numel() + 3) // 4)
            yield name, element_keep_mask(param.shape, self._epoch_p, generator, out=out, scratch=scratch)

    def _buffer(self, key: Any, like: Tensor, dtype: torch.dtype | None = None, numel: int | None = None) -> Tensor:
        """A reusable flat buffer of ``numel`` entries (default ``like.numel()``) on ``like``'s device."""
        numel = like.numel() if numel is None else numel
        dtype = like.dtype if dtype is None else dtype
        buffer = self._buffers.get(key)
        if buffer is None or buffer.numel() < numel or buffer.dtype != dtype:
            buffer = self._buffers[key] = torch.empty(numel, dtype=dtype, device=like.device)
        return buffer[:numel]

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"settings": self.checkpoint_settings(), "seed": self.seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.check_resumed_settings(state_dict)
        seed = int(state_dict.get("seed", self.seed))
        if seed != self.seed:
            rank_zero_warn(
                f"{_NAME}: the checkpoint was trained with seed={seed}, not seed={self.seed}; resuming with {seed} so "
                "that the masks continue the interrupted run."
            )
        self.seed = seed


def _layer_group(name: str) -> str:
    """Layer-GradDrop unit of a parameter: its transformer block (``...encoder.layer.3``), else the parameter."""
    match = re.search(ENCODER_LAYER_PATTERN, name)
    return name if match is None else name[: match.end() - 1]
