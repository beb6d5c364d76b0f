"""Gradual unfreezing, the GradFreeze baselines of the gradient-dropout experiments
(docs/methods.md#gradual-unfreezing)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.utilities import rank_zero_info

from lightning_compress.callbacks._common import named_parameters
from lightning_compress.callbacks._resume import StatefulCallback
from lightning_compress.callbacks.finite_guard import GuardedCallback
from lightning_compress.gradient_dropout import unfrozen_count
from lightning_compress.targeting import EMBEDDINGS_PATTERN, encoder_layer_index
from lightning_compress.validation import check_choice, check_int

_NAME = "GradualUnfreezing"
#: order -> whether the top (last) transformer block is unfrozen first.
_ORDERS = {"top_down": True, "bottom_up": False}


class GradualUnfreezing(StatefulCallback, GuardedCallback):
    """Train the task head and ``k`` transformer blocks first, and unfreeze ``k`` more every ``n`` epochs.

    GradFreeze-TopDown (Howard & Ruder; O'Neill §10.4.1) starts from the top block and moves down,
    GradFreeze-BottomUp starts from the bottom block and moves up. In epoch ``e`` (1-based)
    ``min(k * ceil(e / n), L)`` blocks train (docs/methods.md#unfrozen-block-count); the input embeddings are the last
    unit, unfrozen one
    step after the last block. Parameters outside the blocks and the embeddings (task head, pooler) always train.

    A frozen parameter has ``requires_grad=False`` (its gradient is not computed) and no gradient at the optimizer
    step, so AdamW, momentum and weight decay leave it bit-identical. Parameters the user froze stay frozen.
    Under DDP without ``find_unused_parameters=True`` frozen parameters keep ``requires_grad`` (DDP expects a
    gradient for each of them) and only their gradient is discarded before the step, with the same result.

    Args:
        order: ``"top_down"`` or ``"bottom_up"``.
        every_n_epochs: Epochs between two unfreezing steps.
        layers_per_step: Blocks unfrozen per step (``k``); 2 for XLM-R Large's 24 blocks in O'Neill §10.4.1.

    Example::

        trainer = Trainer(max_epochs=6, callbacks=[GradualUnfreezing(order="top_down", layers_per_step=2)])
    """

    def __init__(
        self,
        order: Literal["top_down", "bottom_up"] = "top_down",
        every_n_epochs: int = 1,
        layers_per_step: int = 2,
    ) -> None:
        super().__init__()
        check_choice(_NAME, "order", order, _ORDERS)
        check_int(_NAME, "every_n_epochs", every_n_epochs, 1)
        check_int(_NAME, "layers_per_step", layers_per_step, 1)
        self.order = order
        self.every_n_epochs = every_n_epochs
        self.layers_per_step = layers_per_step

        self.units: list[list[str]] = []  # parameter FQNs per unit, in unfreezing order
        self.num_layers = 0
        self.frozen: set[str] = set()
        self._toggle_requires_grad = True
        self._epoch = -1

    resumable_settings = ("every_n_epochs", "layers_per_step")
    resume_rule = (
        "Which blocks train is computed from the epoch, so the new schedule applies from the resumed epoch on."
    )

    def checkpoint_settings(self) -> dict[str, Any]:
        """The constructor settings (saved in the state, compared on resume)."""
        return {"order": self.order, "every_n_epochs": self.every_n_epochs, "layers_per_step": self.layers_per_step}

    # ------------------------------------------------------------------ hooks
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage != "fit":
            return
        layers: dict[int, list[str]] = {}
        embeddings: list[str] = []
        for name, param in pl_module.named_parameters():
            if not param.requires_grad:
                continue
            index = encoder_layer_index(name)
            if index is not None:
                layers.setdefault(index, []).append(name)
            elif re.search(EMBEDDINGS_PATTERN, name):
                embeddings.append(name)
        if not layers:
            names = [name for name, _ in pl_module.named_parameters()]
            raise ValueError(
                f"{_NAME} found no trainable transformer block (`encoder.layer.N.` parameters); first parameter "
                f"names are {names[:8]}."
            )
        self.units = [layers[i] for i in sorted(layers, reverse=_ORDERS[self.order])]
        self.num_layers = len(self.units)
        if embeddings:
            self.units.append(embeddings)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Freezing starts after the optimizer is built (it must hold every parameter) and DDP wraps the model.
        strategy = trainer.strategy
        if isinstance(strategy, DDPStrategy) and not strategy._ddp_kwargs.get("find_unused_parameters", False):
            self._toggle_requires_grad = False
            rank_zero_info(
                f"{_NAME}: DDP without find_unused_parameters=True, so frozen blocks keep requires_grad and only "
                "their gradients are discarded; use strategy='ddp_find_unused_parameters_true' to skip computing them."
            )
        self._epoch = -1

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if self._epoch == trainer.current_epoch:
            return
        count = unfrozen_count(trainer.current_epoch + 1, len(self.units), self.layers_per_step, self.every_n_epochs)
        self.frozen = {name for unit in self.units[count:] for name in unit}
        params = named_parameters(pl_module)
        for unit in self.units:
            for name in unit:
                params[name].requires_grad_(name not in self.frozen or not self._toggle_requires_grad)
        self._epoch = trainer.current_epoch
        pl_module.log(
            "compress/unfreezing/trainable_layers",
            float(min(count, self.num_layers)),
            on_step=False,
            on_epoch=True,
            rank_zero_only=True,
        )

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        if not self.frozen:
            return
        params = named_parameters(pl_module)
        for name in self.frozen:
            params[name].grad = None  # skipped by the optimizer: no update, no weight decay, no moment change

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        params = named_parameters(pl_module)
        for unit in self.units:
            for name in unit:
                params[name].requires_grad_(True)
        self.frozen = set()
        self._epoch = -1

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Only the settings: which blocks train follows from the epoch."""
        return {"settings": self.checkpoint_settings()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.check_resumed_settings(state_dict)
