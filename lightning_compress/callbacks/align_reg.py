"""AlignReg: align the pruned weights with the pretrained weights to keep cross-lingual transfer
(docs/methods.md#alignreg)."""

from __future__ import annotations

import os
from typing import Any, Literal

from pytorch_lightning import LightningModule, Trainer
from torch import Tensor, nn

from lightning_compress.callbacks._common import named_parameters
from lightning_compress.callbacks._resume import StatefulCallback
from lightning_compress.callbacks._weights import check_teacher, teacher_settings, teacher_state
from lightning_compress.callbacks.loss_terms import LossTermCallback
from lightning_compress.deprecation import renamed_argument, warn_deprecated
from lightning_compress.pruning.regularizers import ALIGNMENTS, align_reg_penalty
from lightning_compress.targeting import resolve_targets
from lightning_compress.validation import check_bool, check_choice, check_float, check_patterns, format_value

#: O'Neill §9.3.1: λ = 5e-4 ("identical to the setting when using L2 regularization"), used for every kind
#: (docs/methods.md#alignreg-strength-and-unsquared-frobenius-norm).
_DEFAULT_LAM = 5e-4


class AlignReg(StatefulCallback, LossTermCallback):
    r"""Add ``(λ/L) Σ_l penalty(M_l ⊙ W_l, W_l^ref)`` to the training loss (O'Neill Ch. 9, corrected sign
    docs/methods.md#sign-of-the-alignment-term).

    ``penalty`` is ``1 − ρ_unit`` (``kind="cosine_unit"``, Cosine-MBP), ``1 − ρ_layer`` (``"cosine_layer"``,
    Cosine-LMBP) or ``‖W^ref − M ⊙ W‖_F`` (``"frobenius"``, Frobenius-MBP); see
    :mod:`lightning_compress.pruning.regularizers`. ``L`` is the number of targeted matrices. The term is 0 at the
    reference and its gradient pulls the weights toward it. Combine it with :class:`GradualMagnitudePruning`: its
    masked weights are exactly zero, so the current weight already is ``M ⊙ W`` and no gradient reaches pruned
    entries. Logged as ``train/align_reg``.

    Args:
        kind: ``"cosine_unit"``, ``"cosine_layer"`` or ``"frobenius"``.
        lam: ``λ >= 0``; ``λ = 0`` reproduces plain fine-tuning/pruning bit for bit.
        teacher: The reference weights ``W^ref``: ``"pretrained"`` takes the target weights as they are at the start
            of fit (the pretrained model, before task fine-tuning; docs/methods.md#alignreg-reference-weights);
            otherwise a module (``nn.Module`` or LightningModule) holding them, a Lightning checkpoint path or a
            Hugging Face model folder (as ``teacher`` of :class:`SelfDistilledPruning` and
            :class:`TernaryWeightSplitting`). The reference is kept in the weights' dtype and device and saved in
            the callback state, so a resumed run uses the same one.
        targets: Regexes over parameter names; default every ``nn.Linear`` weight inside the transformer encoder
            (same as :class:`GradualMagnitudePruning`).
        exclude: Regexes removing parameters from the targets.
        trust_checkpoint: Read a ``teacher`` checkpoint that only a full unpickling can load (e.g. one holding a
            custom hyper-parameter object). Unpickling runs any code stored in the file: only for files you trust.
            ``False`` reads it weights-only (:func:`~lightning_compress.checkpoints.load_checkpoint`).
        reference: Deprecated name of ``teacher`` (removed in 0.2.0).

    Example::

        callbacks = [GradualMagnitudePruning(final_sparsity=0.7, schedule="iterative", every_n_epochs=1),
                     AlignReg(kind="frobenius", lam=5e-4)]
        Trainer(max_epochs=12, callbacks=callbacks).fit(module, datamodule)
    """

    def __init__(
        self,
        kind: Literal["cosine_unit", "cosine_layer", "frobenius"] = "cosine_unit",
        lam: float = _DEFAULT_LAM,
        teacher: str | nn.Module = "pretrained",
        targets: str | list[str] | None = None,
        exclude: str | list[str] | None = None,
        trust_checkpoint: bool = False,
        reference: str | None = None,
    ) -> None:
        super().__init__()
        teacher = renamed_argument("AlignReg", "teacher", teacher, "reference", reference, default="pretrained")
        self._validate_init_arguments(
            kind=kind, lam=lam, teacher=teacher, targets=targets, exclude=exclude, trust_checkpoint=trust_checkpoint
        )
        self.kind = kind
        self.lam = float(lam)
        self.teacher = teacher
        self.targets = check_patterns("AlignReg", "targets", targets)
        self.exclude = check_patterns("AlignReg", "exclude", exclude)
        self.trust_checkpoint = trust_checkpoint
        self.target_names: list[str] = []
        #: FQN -> frozen reference weight ``W^ref``
        self.references: dict[str, Tensor] = {}

    @staticmethod
    def _validate_init_arguments(**arguments: Any) -> None:
        name = "AlignReg"
        check_choice(
            name, "kind", arguments["kind"], ALIGNMENTS, note="unit-wise cosine, layer-wise cosine, Frobenius distance"
        )
        check_float(
            name, "lam", arguments["lam"], 0.0, expected="a finite float >= 0", note="O'Neill 2022, §9.3.1: 5e-4"
        )
        check_teacher(name, "teacher", arguments["teacher"], allow_none=False, extra="'pretrained'")
        check_patterns(name, "targets", arguments["targets"])
        check_patterns(name, "exclude", arguments["exclude"])
        check_bool(name, "trust_checkpoint", arguments["trust_checkpoint"])

    @property
    def reference(self) -> str | nn.Module:
        """Deprecated name of :attr:`teacher` (removed in 0.2.0)."""
        warn_deprecated("`AlignReg.reference`", "`AlignReg.teacher`")
        return self.teacher

    def _pretrained(self) -> bool:
        return isinstance(self.teacher, str) and self.teacher == "pretrained"

    def _teacher_text(self) -> str:
        teacher = str(self.teacher) if isinstance(self.teacher, os.PathLike) else self.teacher
        return f"teacher={format_value(teacher)}"

    resumable_settings = ("lam",)
    resume_rule = "The saved reference weights are kept; the new `lam` weighs the term from the resumed step on."

    def checkpoint_settings(self) -> dict[str, Any]:
        """The constructor settings the saved references depend on (saved in the state, compared on resume)."""
        return {
            "kind": self.kind,
            "teacher": teacher_settings(self.teacher),
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
            if self._pretrained():
                self.references = {name: params[name].detach().clone() for name in self.target_names}
            else:
                state = teacher_state(self.teacher, pl_module, "AlignReg", "teacher", self.trust_checkpoint)
                self.references = {name: state[name] for name in self.target_names if name in state}
        missing = [name for name in self.target_names if name not in self.references]
        if missing:
            raise ValueError(
                f"`AlignReg({self._teacher_text()})` has no reference for the targets {missing[:3]} "
                f"({len(missing)} of {len(self.target_names)}). HINT: the teacher must hold the same parameters; "
                "restrict `targets` or use teacher='pretrained'."
            )
        wrong = [
            f"{name}: reference {tuple(self.references[name].shape)} vs weight {tuple(params[name].shape)}"
            for name in self.target_names
            if self.references[name].shape != params[name].shape
        ]
        if wrong:
            raise ValueError(
                f"`AlignReg({self._teacher_text()})` has references whose shape differs from the weights: "
                f"{wrong[:3]}. HINT: the teacher must come from the same architecture as the model being trained."
            )
        self.references = {
            name: self.references[name].to(device=params[name].device, dtype=params[name].dtype)
            for name in self.target_names
        }

    def loss_terms(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Tensor]:
        if self.lam == 0:
            # λ = 0: plain fine-tuning, bit for bit (docs/methods.md#alignreg-with-zero-strength-is-plain-pruning)
            return {}
        params = named_parameters(pl_module)
        weights = {name: params[name] for name in self.target_names}
        return {"align_reg": align_reg_penalty(weights, self.references, self.kind, self.lam)}

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "settings": self.checkpoint_settings(),
            "references": {name: value.cpu() for name, value in self.references.items()},
        }

    #: Settings saved under an older name: ``reference`` became ``teacher``.
    renamed_settings = {"reference": "teacher"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.check_resumed_settings(state_dict)
        self.references = dict(state_dict.get("references", {}))


__all__ = ["AlignReg"]
