"""Extra loss terms contributed by callbacks, added to the training loss before its single backward pass.

A callback that adds to the loss subclasses :class:`LossTermCallback` and implements
:meth:`~LossTermCallback.loss_terms` (and, to re-weight the user's task loss,
:meth:`~LossTermCallback.task_loss_weight`). In ``on_before_backward`` the first ``LossTermCallback`` of
``trainer.callbacks`` collects the terms of *all* of them, in a canonical order (class name, then the callback's
settings), and updates the loss tensor Lightning is about to back-propagate, in place:

.. math::

    \\ell \\leftarrow \\Big(\\prod_c w_c\\Big)\\, \\ell_{task} + \\sum_c \\sum_k t_{c,k}

Lightning 2.6 passes the tensor it back-propagates to ``on_before_backward`` (``Precision.pre_backward``), already
divided by ``accumulate_grad_batches`` and, under AMP, multiplied by the gradient scaler; the terms get the same
factors. The user's returned loss is not touched (Lightning divides it into a new tensor first), so ``train/loss`` stays
the task loss. Because the terms are built and summed in the same order whatever the order of the callbacks, stacking
callbacks in any order gives bitwise-identical gradients. Each term is logged as ``train/<name>`` every step.
"""

from __future__ import annotations

import torch
from pytorch_lightning import LightningModule, Trainer
from torch import Tensor

from lightning_compress.callbacks.finite_guard import GuardedCallback

__all__ = ["LossTermCallback", "collect_loss_terms"]


class LossTermCallback(GuardedCallback):
    """Base class of callbacks that add terms to the training loss (one backward per step, automatic optimization).

    Subclasses implement :meth:`loss_terms`, returning named scalar tensors that are part of the autograd graph of the
    current step, and may override :meth:`task_loss_weight`. A subclass that overrides ``setup``,
    ``on_before_backward``, ``on_train_batch_end`` or ``on_train_end`` must call ``super()`` (the last three run the
    non-finite guard of :class:`~lightning_compress.callbacks.finite_guard.GuardedCallback`).

    Example::

        class L2(LossTermCallback):
            def loss_terms(self, trainer, pl_module):
                return {"l2": 1e-4 * sum(p.square().sum() for p in pl_module.parameters())}

        Trainer(callbacks=[L2()]).fit(module)  # logs train/l2; gradients are those of task loss + l2
    """

    def loss_terms(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Tensor]:
        """Terms to add to this step's loss, ``{name: scalar tensor}``; logged as ``train/<name>``."""
        return {}

    def task_loss_weight(self, trainer: Trainer, pl_module: LightningModule) -> float:
        """Factor applied to the loss returned by ``training_step`` (e.g. ``1 - α`` for distillation)."""
        return 1.0

    @property
    def adds_loss_terms(self) -> bool:
        """Whether this callback, as configured, contributes terms (only then is automatic optimization required)."""
        return True

    @property
    def loss_term_order_key(self) -> str:
        """Sort key that fixes where this callback's terms go in the sum (independent of the callback order).

        The class name, then the callback's ``checkpoint_settings()`` where it has them (else its ``state_key``): the
        state key of a stacked instance is its position, which would make the sum depend on the callback order.
        """
        settings = getattr(self, "checkpoint_settings", None)
        return f"{type(self).__qualname__}{settings() if callable(settings) else self.state_key!r}"

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit" and self.adds_loss_terms and not pl_module.automatic_optimization:
            raise ValueError(
                f"`{type(self).__name__}` adds terms to the loss of `training_step` before Lightning's backward pass, "
                "which needs automatic optimization; the module sets `automatic_optimization = False`. HINT: use "
                "automatic optimization, or add the terms to your loss yourself."
            )

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: Tensor) -> None:
        super().on_before_backward(trainer, pl_module, loss)  # the non-finite guard sees the loss before the terms
        callbacks = [cb for cb in trainer.callbacks if isinstance(cb, LossTermCallback)]
        if not callbacks or callbacks[0] is not self or not loss.requires_grad:
            return  # the first LossTermCallback adds the terms of all of them
        weight, terms = collect_loss_terms(callbacks, trainer, pl_module)
        for name, value in terms.items():
            pl_module.log(f"train/{name}", value.detach(), on_step=True, on_epoch=False)
        if trainer.global_step % max(1, trainer.log_every_n_steps) == 0:  # when the metrics are synced anyway
            check_finite_terms(terms, trainer.global_step)
        if not terms and weight == 1.0:
            return
        total: Tensor | None = None
        for value in terms.values():
            total = value if total is None else total + value
        if weight != 1.0:
            loss.mul_(weight)
        if total is None:
            return
        if pl_module.automatic_optimization:
            total = total / trainer.accumulate_grad_batches  # Lightning has divided the loss the same way
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        if scaler is not None:
            total = scaler.scale(total)  # the AMP loss is already scaled here
        loss.add_(total.to(device=loss.device, dtype=loss.dtype))


def check_finite_terms(terms: dict[str, Tensor], step: int) -> None:
    """Raise when a loss term is NaN or infinite: the backward pass would spread it into every weight.

    Raises:
        FloatingPointError: naming the terms, their values and the step.
    """
    bad = {name: float(value) for name, value in terms.items() if not bool(torch.isfinite(value.detach()))}
    if bad:
        raise FloatingPointError(
            f"Loss term(s) {bad} at step {step} are not finite; the backward pass would make every weight NaN. "
            "HINT: look at the inputs of that term (e.g. a teacher checkpoint of another model, fp16 overflow) or "
            "lower its weight / the learning rate."
        )


def collect_loss_terms(
    callbacks: list[LossTermCallback], trainer: Trainer, pl_module: LightningModule
) -> tuple[float, dict[str, Tensor]]:
    """Product of the task-loss weights and the named terms of ``callbacks``, in canonical order.

    Two callbacks returning the same name get suffixes ``_1``, ``_2`` … in that order.
    """
    weight = 1.0
    terms: dict[str, Tensor] = {}
    for callback in sorted(callbacks, key=lambda cb: cb.loss_term_order_key):
        weight *= float(callback.task_loss_weight(trainer, pl_module))
        for name, value in callback.loss_terms(trainer, pl_module).items():
            if not isinstance(value, Tensor) or value.numel() != 1:
                raise TypeError(
                    f"`{type(callback).__name__}.loss_terms` returned {name!r} = {type(value).__name__}"
                    f"{tuple(value.shape) if isinstance(value, Tensor) else ''}: expected a scalar tensor."
                )
            key, suffix = name, 0
            while key in terms:
                suffix += 1
                key = f"{name}_{suffix}"
            terms[key] = value.reshape(())
    return weight, terms
