"""Stop a fit whose training loss or weights stop being finite, naming the global step and the parameter.

Every callback of the project (:class:`GuardedCallback`) and the project's LightningModules
(:class:`~lightning_compress.models.TransformerTaskModule`) hold a :class:`NonFiniteGuard`, so a run is guarded on a
user's own module with any callback of the project, and with the project's modules with no callback at all. Only one
guard per run checks: the module's if it has one, else the first guarded callback of ``trainer.callbacks``.

Cadence (no host synchronisation on most steps):

* every backward pass, the loss Lightning back-propagates is copied on its device (one scalar copy, no
  synchronisation);
* at every logging step (``trainer.global_step % trainer.log_every_n_steps == 0``, after the optimizer step), the
  losses since the last check are read back and every parameter is reduced with ``torch.isfinite(p).all()``: one
  host synchronisation for the lot. The losses alone are also read back every :data:`MAX_PENDING_LOSSES` steps, so
  their number stays bounded when logging is rare;
* once more at the end of training (``on_train_end``), so a non-finite loss between two logging steps, or after the
  last one, still stops ``fit`` with an error instead of returning a NaN model.

Under DDP the ranks agree on the outcome at each check (one all-reduce of a flag), so every rank raises together.
"""

from __future__ import annotations

from pytorch_lightning import Callback, LightningModule, Trainer
from torch import Tensor

from lightning_compress.guards import check_finite_losses, check_finite_parameters

__all__ = ["MAX_PENDING_LOSSES", "GuardedCallback", "NonFiniteGuard"]

#: Losses kept on the device before they are read back, whatever ``log_every_n_steps`` is.
MAX_PENDING_LOSSES = 1024


class NonFiniteGuard:
    """The per-run state of the non-finite checks: the losses not yet read back and the last checked step.

    An owner (a callback or a LightningModule) exposes it as its ``non_finite_guard`` attribute and calls
    :meth:`on_before_backward`, :meth:`on_train_batch_end` and :meth:`on_train_end` from its hooks of the same name.

    Raises (from the hooks):
        FloatingPointError: ``"The training loss is nan at global step 3 ..."`` or ``"Parameter `model.bert...weight`
            is not finite at global step 4 ..."``.
    """

    def __init__(self) -> None:
        self._losses: list[tuple[int, Tensor]] = []
        self._checked_step = -1
        self._trainer: Trainer | None = None

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: Tensor) -> None:
        if not self._checks(trainer, pl_module):
            return
        if self._trainer is not trainer:  # a new fit: forget what an interrupted one left
            self._losses, self._checked_step, self._trainer = [], -1, trainer
        # a copy: loss-term callbacks add to `loss` in place after this hook
        self._losses.append((trainer.global_step, loss.detach().clone()))
        if len(self._losses) >= MAX_PENDING_LOSSES:
            self._check(trainer, pl_module, f"at global step {trainer.global_step}", parameters=False)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        step = trainer.global_step
        every = trainer.log_every_n_steps
        if step == 0 or step == self._checked_step or not every or step % every or not self._checks(trainer, pl_module):
            return
        self._checked_step = step
        self._check(trainer, pl_module, f"at global step {step}")

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._checks(trainer, pl_module):
            self._check(trainer, pl_module, f"at the end of training (global step {trainer.global_step})")
        self._losses, self._checked_step, self._trainer = [], -1, None

    def _checks(self, trainer: Trainer, pl_module: LightningModule) -> bool:
        """Whether this guard is the one that checks this run (the module's, else the first callback's)."""
        for owner in (pl_module, *trainer.callbacks):
            guard = getattr(owner, "non_finite_guard", None)
            if isinstance(guard, NonFiniteGuard):
                return guard is self
        return False

    def _check(self, trainer: Trainer, pl_module: LightningModule, where: str, parameters: bool = True) -> None:
        losses, self._losses = self._losses, []
        error: FloatingPointError | None = None
        try:
            check_finite_losses(losses)  # first: a non-finite loss is the cause of non-finite weights
            if parameters:
                check_finite_parameters(pl_module.named_parameters(), where)
        except FloatingPointError as found:
            error = found
        if trainer.world_size > 1:
            anywhere = trainer.strategy.reduce_boolean_decision(error is not None, all=False)
            if anywhere and error is None:
                error = FloatingPointError(
                    f"Another process of this {trainer.world_size}-process run found a non-finite training loss or "
                    f"weight {where}; its error names the step and the parameter."
                )
        if error is not None:
            raise error


class GuardedCallback(Callback):
    """Base of the project's callbacks: the run stops with a ``FloatingPointError`` on a non-finite loss or weight.

    Its :class:`NonFiniteGuard` is ``non_finite_guard``. A subclass that overrides ``on_before_backward``,
    ``on_train_batch_end`` or ``on_train_end`` must call ``super()`` (at the end of ``on_train_batch_end`` /
    ``on_train_end``, so the check sees the weights the subclass leaves).
    """

    @property
    def non_finite_guard(self) -> NonFiniteGuard:
        guard = self.__dict__.get("_non_finite_guard")
        if guard is None:
            guard = self.__dict__["_non_finite_guard"] = NonFiniteGuard()
        return guard

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: Tensor) -> None:
        self.non_finite_guard.on_before_backward(trainer, pl_module, loss)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: object, batch: object, batch_idx: int
    ) -> None:
        self.non_finite_guard.on_train_batch_end(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.non_finite_guard.on_train_end(trainer, pl_module)
