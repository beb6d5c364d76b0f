"""AlignReg: align the pruned weights with the pretrained weights to keep cross-lingual transfer (docs/methods.md#alignreg)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pytorch_lightning import LightningModule, Trainer
from torch import Tensor

from lightning_compress.callbacks._common import named_parameters
from lightning_compress.callbacks._weights import module_state_from_path
from lightning_compress.callbacks._resume import StatefulCallback
from lightning_compress.callbacks.loss_terms import LossTermCallback
from lightning_compress.pruning.regularizers import ALIGNMENTS, align_reg_penalty
from lightning_compress.targeting import resolve_targets, validate_patterns

#: O'Neill §9.3.1: λ = 5e-4 ("identical to the setting when using L2 regularization"), used for every kind (docs/methods.md#alignreg-strength-and-unsquared-frobenius-norm).
_DEFAULT_LAM = 5e-4


class AlignReg(StatefulCallback, LossTermCallback):
    r"""Add ``(λ/L) Σ_l penalty(M_l ⊙ W_l, W_l^ref)`` to the training loss (O'Neill Ch. 9, corrected sign docs/methods.md#sign-of-the-alignment-term).

    ``penalty`` is ``1 − ρ_unit`` (``kind="cosine_unit"``, Cosine-MBP), ``1 − ρ_layer`` (``"cosine_layer"``,
    Cosine-LMBP) or ``‖W^ref − M ⊙ W‖_F`` (``"frobenius"``, Frobenius-MBP); see
    :mod:`lightning_compress.pruning.regularizers`. ``L`` is the number of targeted matrices. The term is 0 at the
    reference and its gradient pulls the weights toward it. Combine it with :class:`GradualMagnitudePruning`: its
    masked weights are exactly zero, so the current weight already is ``M ⊙ W`` and no gradient reaches pruned
    entries. Logged as ``train/align_reg``.

    Args:
        kind: ``"cosine_unit"``, ``"cosine_layer"`` or ``"frobenius"``.
        lam: ``λ >= 0``; ``λ = 0`` reproduces plain fine-tuning/pruning bit for bit.
        reference: ``"pretrained"``: the target weights as they are at the start of fit (the pretrained model,
            before task fine-tuning; docs/methods.md#alignreg-reference-weights), or a path to a Lightning checkpoint or Hugging Face folder
            holding them. The reference is kept in the weights' dtype and device and saved in the callback state,
            so a resumed run uses the same one.
        targets: Regexes over parameter names; default every ``nn.Linear`` weight inside the transformer encoder
            (same as :class:`GradualMagnitudePruning`).
        exclude: Regexes removing parameters from the targets.
        trust_checkpoint: Read a ``reference`` checkpoint that only a full unpickling can load (e.g. one holding a
            custom hyper-parameter object). Unpickling runs any code stored in the file: only for files you trust.
            ``False`` reads it weights-only (:func:`~lightning_compress.checkpoints.load_checkpoint`).

    Example::

        callbacks = [GradualMagnitudePruning(final_sparsity=0.7, schedule="iterative", frequency="epoch"),
                     AlignReg(kind="frobenius", lam=5e-4)]
        Trainer(max_epochs=12, callbacks=callbacks).fit(module, datamodule)
    """

    def __init__(
        self,
        kind: Literal["cosine_unit", "cosine_layer", "frobenius"] = "cosine_unit",
        lam: float = _DEFAULT_LAM,
        reference: str = "pretrained",
        targets: str | list[str] | None = None,
        exclude: str | list[str] | None = None,
        trust_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        self._validate_init_arguments(kind=kind, lam=lam, reference=reference, trust_checkpoint=trust_checkpoint)
        self.kind = kind
        self.lam = float(lam)
        self.reference = reference
        self.targets = validate_patterns("targets", targets)
        self.exclude = validate_patterns("exclude", exclude)
        self.trust_checkpoint = trust_checkpoint
        self.target_names: list[str] = []
        #: FQN -> frozen reference weight ``W^ref``
        self.references: dict[str, Tensor] = {}

    @staticmethod
    def _validate_init_arguments(kind: Any, lam: Any, reference: Any, trust_checkpoint: Any) -> None:
        if kind not in ALIGNMENTS:
            raise ValueError(
                f"`AlignReg(kind={kind!r})` is invalid: expected one of {list(ALIGNMENTS)} "
                "(unit-wise cosine, layer-wise cosine, Frobenius distance)."
            )
        if isinstance(lam, bool) or not isinstance(lam, (int, float)):
            raise TypeError(f"`AlignReg(lam={lam!r})` is invalid: expected a float >= 0.")
        if not lam >= 0 or math.isinf(lam):
            raise ValueError(f"`AlignReg(lam={lam!r})` is invalid: expected a finite float >= 0 (O'Neill 2022, §9.3.1: 5e-4).")
        if not isinstance(reference, str) or not reference.strip():
            raise TypeError(
                f"`AlignReg(reference={reference!r})` is invalid: expected 'pretrained' or a path to a Lightning "
                "checkpoint or Hugging Face folder."
            )
        if not isinstance(trust_checkpoint, bool):
            raise TypeError(f"`AlignReg(trust_checkpoint={trust_checkpoint!r})` is invalid: expected a bool.")

    resumable_settings = ("lam",)
    resume_rule = "The saved reference weights are kept; the new `lam` weighs the term from the resumed step on."

    def checkpoint_settings(self) -> dict[str, Any]:
        """The constructor settings the saved references depend on (saved in the state, compared on resume)."""
        return {
            "kind": self.kind,
            "reference": self.reference,
            "targets": list(self.targets),
            "exclude": list(self.exclude),
            "lam": self.lam,
        }

    # ------------------------------------------------------------------ hooks
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self.target_names = resolve_targets(pl_module, self.targets or None, self.exclude or None)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        params = named_parameters(pl_module)
        if not self.references:  # restored from a checkpoint otherwise
            if self.reference == "pretrained":
                self.references = {name: params[name].detach().clone() for name in self.target_names}
            else:
                state = module_state_from_path(
                    self.reference, pl_module, "AlignReg", "reference", self.trust_checkpoint
                )
                self.references = {name: state[name] for name in self.target_names if name in state}
        missing = [name for name in self.target_names if name not in self.references]
        if missing:
            raise ValueError(
                f"`AlignReg(reference={self.reference!r})` has no reference for the targets {missing[:3]} "
                f"({len(missing)} of {len(self.target_names)}). HINT: the reference must hold the same parameters; "
                "restrict `targets` or use reference='pretrained'."
            )
        wrong = [
            f"{name}: reference {tuple(self.references[name].shape)} vs weight {tuple(params[name].shape)}"
            for name in self.target_names
            if self.references[name].shape != params[name].shape
        ]
        if wrong:
            raise ValueError(
                f"`AlignReg(reference={self.reference!r})` has references whose shape differs from the weights: "
                f"{wrong[:3]}. HINT: the reference must come from the same architecture as the model being trained."
            )
        self.references = {
            name: self.references[name].to(device=params[name].device, dtype=params[name].dtype)
            for name in self.target_names
        }

    def loss_terms(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Tensor]:
        if self.lam == 0:
            return {}  # λ = 0: plain fine-tuning, bit for bit (docs/methods.md#alignreg-with-zero-strength-is-plain-pruning)
        params = named_parameters(pl_module)
        weights = {name: params[name] for name in self.target_names}
        return {"align_reg": align_reg_penalty(weights, self.references, self.kind, self.lam)}

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "settings": self.checkpoint_settings(),
            "references": {name: value.cpu() for name, value in self.references.items()},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.check_resumed_settings(state_dict)
        self.references = dict(state_dict.get("references", {}))


__all__ = ["AlignReg"]
