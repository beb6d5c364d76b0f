"""Where a compression callback's state sits in a checkpoint, and the settings it was written with.

A callback's state is stored under its class name (``"GradualMagnitudePruning"``) and, when several instances of one
class are stacked on a Trainer, under ``"<Class>{'index': i}"`` for the ``i``-th of them (0-based, in the order of
``trainer.callbacks``). The key no longer holds hyper-parameters, so a resume with changed settings finds its state
instead of silently starting from scratch. The settings live in the state (``"settings"``) and are compared on load:
settings a class lists in ``resumable_settings`` may change (a warning lists the changes and the class's documented
rule applies); any other change raises a ``ValueError`` that lists each difference (old → new) and the fix.

Checkpoints written before this scheme, whose keys were ``"<Class>{<hyper-parameters>}"``, are matched by class-name
prefix in the order they were saved (Lightning warns about their key first); their settings were not stored, so they
are not checked.
"""

from __future__ import annotations

import ast
from typing import Any, ClassVar

from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn

__all__ = ["StatefulCallback", "apply_pending_loader_state"]


class StatefulCallback(Callback):
    """Base of the compression callbacks that save state: class-and-position ``state_key`` and settings checks.

    Subclasses implement :meth:`checkpoint_settings`, add ``"settings": self.checkpoint_settings()`` to their
    ``state_dict`` and call :meth:`check_resumed_settings` first thing in ``load_state_dict``. A subclass that
    overrides ``setup``, ``on_train_start`` or ``on_load_checkpoint`` must call ``super()``.
    """

    #: Settings that may differ between the checkpoint and the resumed run (the others must match).
    resumable_settings: ClassVar[tuple[str, ...]] = ()
    #: What happens when a resumable setting changed (shown in the warning).
    resume_rule: ClassVar[str] = ""
    #: Settings saved under an older argument name -> the current name, so checkpoints written before a rename
    #: are still compared.
    renamed_settings: ClassVar[dict[str, str]] = {}

    _state_index: int | None = None  # position among the Trainer's callbacks of this class, known from `setup`
    _resume_source: str | None = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Apply a mid-epoch loader position Lightning left pending (:func:`apply_pending_loader_state`)."""
        apply_pending_loader_state(trainer)

    def checkpoint_settings(self) -> dict[str, Any]:
        """The constructor settings the saved state depends on, as primitives (compared on resume)."""
        return {}

    def upgrade_settings(self, saved: dict[str, Any]) -> dict[str, Any]:
        """Settings read from a checkpoint, under their current names (:attr:`renamed_settings`).

        Override to translate a setting whose meaning changed with its name (call ``super()`` first).
        """
        return {self.renamed_settings.get(key, key): value for key, value in saved.items()}

    @property
    def state_key(self) -> str:
        index = self._state_index
        if index is None:
            # Not placed on a Trainer yet (Lightning checks that keys are unique when the Trainer is built, before
            # `setup` tells an instance its position): a key unique to this object, never written to a checkpoint.
            return self._generate_state_key(unplaced=id(self))
        return type(self).__qualname__ if index == 0 else self._generate_state_key(index=index)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._assign_state_index(trainer)
        super().setup(trainer, pl_module, stage)

    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        self._assign_state_index(trainer)
        self._resume_source = None if trainer.ckpt_path is None else str(trainer.ckpt_path)
        states = checkpoint.get("callbacks")
        if isinstance(states, dict) and self.state_key not in states:
            legacy = legacy_state_keys(states, type(self).__qualname__)
            if self._state_index is not None and self._state_index < len(legacy):
                states[self.state_key] = states[legacy[self._state_index]]
                rank_zero_info(
                    f"{self._describe()}: restored from the state saved under the older key "
                    f"{legacy[self._state_index]!r}"
                    " (its settings were not saved, so they are not checked against this run's)."
                )
        super().on_load_checkpoint(trainer, pl_module, checkpoint)

    def check_resumed_settings(self, state: dict[str, Any]) -> None:
        """Compare the settings saved in ``state`` with this instance's: warn on resumable changes, raise on others.

        Raises:
            ValueError: listing every changed setting that this class cannot resume with (old → new) and the fix.
        """
        saved = state.get("settings")
        if not isinstance(saved, dict):
            return  # written before settings were saved
        saved = self.upgrade_settings(saved)
        current = self.checkpoint_settings()
        changed = {key: (saved[key], current[key]) for key in current if key in saved and saved[key] != current[key]}
        if not changed:
            return
        source = f" {self._resume_source!r}" if self._resume_source else ""
        fixed = {key: values for key, values in changed.items() if key not in self.resumable_settings}
        if fixed:
            arguments = ", ".join(f"{key}={new!r}" for key, (_, new) in fixed.items())
            old_arguments = ", ".join(f"{key}={old!r}" for key, (old, _) in fixed.items())
            raise ValueError(
                f"`{type(self).__name__}({arguments})` is invalid for resuming from the checkpoint{source}: expected "
                f"the settings it was written with ({_differences(fixed)}). {self._describe()}'s saved state was "
                f"built under those settings and cannot continue under others. HINT: resume with {old_arguments}, "
                "or start a new run from the checkpoint's weights only (without `ckpt_path`)."
            )
        rank_zero_warn(
            f"{self._describe()}: resuming from the checkpoint{source} with changed settings ({_differences(changed)})."
            f" {self.resume_rule}"
        )

    def _assign_state_index(self, trainer: Trainer) -> None:
        peers = [callback for callback in trainer.callbacks if type(callback) is type(self)]
        self._state_index = next((i for i, callback in enumerate(peers) if callback is self), None)

    def _describe(self) -> str:
        name = type(self).__name__
        return name if not self._state_index else f"{name} (instance {self._state_index} of its class, 0-based)"


def legacy_state_keys(states: dict[Any, Any], class_name: str) -> list[str]:
    """Keys ``"<class_name>{<hyper-parameters>}"`` of checkpoints written before the class-and-position keys."""
    keys = []
    for key in states:
        if not isinstance(key, str) or not key.startswith(class_name + "{"):
            continue
        try:
            arguments = ast.literal_eval(key[len(class_name) :])
        except (ValueError, SyntaxError):
            arguments = None
        if isinstance(arguments, dict) and set(arguments) in ({"index"}, {"unplaced"}):
            continue  # a current key of another instance
        keys.append(key)
    return keys


def _differences(changed: dict[str, tuple[Any, Any]]) -> str:
    return "; ".join(f"{key}: {old!r} → {new!r}" for key, (old, new) in changed.items())


def apply_pending_loader_state(trainer: Trainer) -> None:
    """Hand the checkpoint's training-loader state to the loader when Lightning set it aside without applying it.

    Lightning restores a mid-epoch loader position when it builds the training loader after the checkpoint's loop
    state is loaded. When ``configure_optimizers`` reads ``trainer.estimated_stepping_batches`` (a warm-up schedule
    does), the loader is built before that, the saved position stays pending and the resumed epoch would start
    again from its first batch. Called from ``on_train_start`` (by the compression callbacks, through ``super()``,
    and by the task modules), this applies the pending state and recreates the batch iterator, so the resumed run
    sees the uninterrupted run's batches; it does nothing when no state is pending and applies it only once.
    """
    fit_loop = trainer.fit_loop
    if not getattr(fit_loop, "_combined_loader_states_to_load", None) or fit_loop._combined_loader is None:
        return
    fit_loop._load_combined_loader_states()
    if fit_loop._data_fetcher is not None:
        iter(fit_loop._data_fetcher)
