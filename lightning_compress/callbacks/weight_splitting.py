"""BinaryBERT's ternary weight splitting recipe in one ``fit`` (Bai Ch. 5, docs/methods.md#ternary-weight-splitting)."""

from __future__ import annotations

import copy
from collections import deque
from functools import partial
from typing import Any, Literal

from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.utilities import rank_zero_info
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from lightning_compress.callbacks._cadence import bounded_steps
from lightning_compress.callbacks._common import warn_if_training_in_eval_mode
from lightning_compress.callbacks._distillation_taps import DistillationTaps
from lightning_compress.callbacks._optimizers import rebuild_optimizers, time_compress_schedules
from lightning_compress.callbacks._resume import StatefulCallback
from lightning_compress.callbacks._weights import check_teacher, find_hf_model, submodel_teacher_state, teacher_settings
from lightning_compress.callbacks.loss_terms import LossTermCallback
from lightning_compress.deprecation import renamed_argument, warn_deprecated
from lightning_compress.distillation.losses import intermediate_distillation_loss, prediction_distillation_loss
from lightning_compress.quantization.modules import (
    WEIGHT_KINDS,
    check_act_arguments,
    quantize_model_,
    require_linear,
    split_model_,
    split_on_load_,
    ternary_modules,
)
from lightning_compress.quantization.splitting import (
    check_adaptive_budget,
    check_split_at,
    plan_adaptive_split,
    split_step,
)
from lightning_compress.quantization.width import half_width_
from lightning_compress.validation import check_bool, check_choice, check_float, check_int

_DISTILL = ("two_stage", "prediction", "none")
_REST = ("binary", "ternary")


class TernaryWeightSplitting(StatefulCallback, LossTermCallback):
    r"""Train a ternary model with distillation, split it into a binary one, and fine-tune that (BinaryBERT).

    One ``fit`` runs the whole recipe of Bai §5.3-5.4 (docs/methods.md#binarybert-training-pipeline):

    1. ``setup``: the model is copied as the frozen full-precision **teacher**; the student is reduced to
       ``width`` (DynaBERT 0.5×, :func:`~lightning_compress.quantization.half_width_`) and quantized
       (:func:`~lightning_compress.quantization.quantize_model_`: ternary encoder/pooler Linears and word embedding,
       ``act_bits`` activations).
    2. **Intermediate-layer distillation** (``distill="two_stage"``, until ``intermediate_until``):
       ``ℓ_int = MSE(Ê, E) + Σ_l MSE(M̂_l, M_l) + Σ_l MSE(F̂_l, F_l)`` on the embedding output, each block's attention
       output and each block's output (Bai Eq. 5.10).
    3. **Prediction-layer distillation**: ``ℓ_pred = -Σ_c softmax(y/τ)_c log softmax(ŷ/τ)_c`` (Eq. 5.11; MSE for
       a regression head).
    4. At optimizer step ``split_at``: every ternary module is **split** into two binary branches with the same
       forward function (:func:`~lightning_compress.quantization.split_model_`), and the optimizers and LR
       schedulers are rebuilt from the module's ``configure_optimizers`` (Bai §5.4.4: the optimizer cannot be
       inherited); under DDP the model is wrapped again.
    5. **Split fine-tuning** of the binary model with prediction-layer distillation.

    The distillation term is added to the loss before the single backward (:class:`LossTermCallback`, logged as
    ``train/tws/kd``); the
    teacher runs on the same inputs as the student through a forward hook on the Hugging Face model, so the user's
    ``training_step`` is unchanged. With ``restart_schedule`` each phase gets the whole learning-rate schedule
    (warm-up and decay to 0, as each stage of Bai Table 5.1) by time-compressing the ``LambdaLR`` schedulers
    (Hugging Face's linear/cosine warm-up schedules are ``LambdaLR``) into the phase.

    The BWN baseline (Bai §5.4.1) is ``TernaryWeightSplitting(split_at=None, weights="binary")``: the full-width
    binary model with the same distillation for the same number of steps.

    Args:
        split_at: Optimizer step of the split: an int step, a float fraction of the run
            (``trainer.estimated_stepping_batches``), or ``None`` to never split. Must leave at least one ternary step.
        weights: ``"ternary"`` (the TWS recipe) or ``"binary"`` (BWN baseline; needs ``split_at=None``).
        act_bits: Activation bits (8 or 4 in BinaryBERT; ``None``: full-precision activations).
        act_quantizer: ``"uniform"`` (absmax, 8-bit) or ``"lsq"`` (learned step size, 4-bit).
        distill: ``"two_stage"`` (intermediate then prediction layer, then prediction after the split),
            ``"prediction"`` (prediction layer only), or ``"none"`` (plain quantization-aware training).
        intermediate_until: Fraction of the pre-split phase (of the run when ``split_at=None``) spent on
            intermediate-layer distillation with ``distill="two_stage"``.
        task_loss_weight: Factor on the user's own loss; ``None`` gives 0 when distilling (BinaryBERT trains on the
            distillation losses only) and 1 with ``distill="none"``.
        temperature: Softmax temperature τ of the prediction-layer loss (Bai does not state it; 1).
        width: Fraction of attention heads and FFN neurons kept in each block (0.5: DynaBERT 0.5×, so the split
            binary model costs what a full-width binary one does; 1.0: full width). ``None``: 0.5 with a split,
            1.0 without.
        adaptive_budget: Adaptive splitting (Bai §5.3.2, docs/methods.md#adaptive-splitting): ``None`` splits every
        ternary module. A
            float in [0, 1] is the budget as a fraction of the extra cost of splitting everything (0: split nothing,
            1: split all); an int is the extra cost in parameters (1-bit weights). At the split, the per-parameter
            sensitivity ``u`` of each (layer, part) group (MHA-QK, MHA-V, MHA-O, FFN-Mid, FFN-Out), of the word
            embedding and of the pooler is measured on the last ``adaptive_batches`` training batches (gain = drop
            of the prediction-distillation loss when the group's weights run in full precision, divided by its
            parameters; part and layer gains are summed), the 0/1 knapsack ``max uᵀs, cᵀs ≤ budget`` is solved
            exactly (``c`` = parameters of the group), and only the chosen groups are split.
        adaptive_rest: What the groups not chosen become: ``"binary"`` (BWN of their latent weights, so the model is
            uniformly 1-bit and the budget bounds its size, as in docs/methods.md#adaptive-splitting) or ``"ternary"``
            (kept as they are).
        adaptive_batches: Number of training batches (the forwards of the last optimizer steps before the split)
            the sensitivity is measured on. A run resumed inside that window measures on fewer batches.
        teacher: The fine-tuned full-precision model: a module (``nn.Module`` or LightningModule), a Lightning
            checkpoint path or a Hugging Face model folder of the same architecture (as ``teacher`` of
            :class:`AlignReg` and :class:`SelfDistilledPruning`); when given, teacher and student start from its
            weights (the student of BinaryBERT starts from the fine-tuned model). ``None``: the module passed to
            ``fit`` is the fine-tuned model.
        restart_schedule: Time-compress ``LambdaLR`` schedules into each phase (see above).
        trust_checkpoint: Read a ``teacher`` checkpoint that only a full unpickling can load (e.g. one holding a
            custom hyper-parameter object). Unpickling runs any code stored in the file: only for files you trust.
            ``False`` reads it weights-only (:func:`~lightning_compress.checkpoints.load_checkpoint`).
        teacher_checkpoint: Deprecated name of ``teacher`` (removed in 0.2.0).

    Example::

        tws = TernaryWeightSplitting(split_at=2 / 3, act_bits=8)
        Trainer(max_epochs=18, callbacks=[tws]).fit(finetuned_module, datamodule)
    """

    def __init__(
        self,
        split_at: int | float | None = 0.5,
        weights: Literal["ternary", "binary"] = "ternary",
        act_bits: int | None = 8,
        act_quantizer: Literal["uniform", "lsq"] = "uniform",
        distill: Literal["two_stage", "prediction", "none"] = "two_stage",
        intermediate_until: float = 0.5,
        task_loss_weight: float | None = None,
        temperature: float = 1.0,
        width: float | None = None,
        adaptive_budget: float | int | None = None,
        teacher: str | nn.Module | None = None,
        restart_schedule: bool = True,
        adaptive_rest: Literal["binary", "ternary"] = "binary",
        adaptive_batches: int = 4,
        trust_checkpoint: bool = False,
        teacher_checkpoint: str | None = None,
    ) -> None:
        super().__init__()
        name = "TernaryWeightSplitting"
        teacher = renamed_argument(name, "teacher", teacher, "teacher_checkpoint", teacher_checkpoint)
        check_split_at(name, split_at)
        check_choice(name, "weights", weights, WEIGHT_KINDS)
        if weights == "binary" and split_at is not None:
            raise ValueError(
                f"`{name}(weights='binary', split_at={split_at!r})` is invalid: only ternary weights are split. "
                "HINT: the BWN baseline is `weights='binary', split_at=None`."
            )
        check_act_arguments(name, act_bits, act_quantizer)
        check_choice(name, "distill", distill, _DISTILL)
        check_float(name, "intermediate_until", intermediate_until, 0.0, 1.0)
        check_float(name, "task_loss_weight", task_loss_weight, 0.0, allow_none=True)
        check_float(name, "temperature", temperature, 0.0, low_inclusive=False)
        check_float(name, "width", width, 0.0, 1.0, low_inclusive=False, allow_none=True, note="0.5 or 1.0")
        check_adaptive_budget(name, adaptive_budget, split_at, weights)
        check_choice(name, "adaptive_rest", adaptive_rest, _REST)
        check_int(name, "adaptive_batches", adaptive_batches, 1)
        check_teacher(name, "teacher", teacher)
        check_bool(name, "restart_schedule", restart_schedule)
        check_bool(name, "trust_checkpoint", trust_checkpoint)
        self.split_at = split_at
        self.weights = weights
        self.act_bits = act_bits
        self.act_quantizer = act_quantizer
        self.distill = distill
        self.intermediate_until = float(intermediate_until)
        self.task_loss_weight_value = (
            (0.0 if distill != "none" else 1.0) if task_loss_weight is None else task_loss_weight
        )
        self.temperature = float(temperature)
        self.width = (0.5 if split_at is not None else 1.0) if width is None else float(width)
        self.adaptive_budget = adaptive_budget
        self.adaptive_rest = adaptive_rest
        self.adaptive_batches = adaptive_batches
        #: Adaptive splitting: the module names to split, and the measured sensitivities, costs and groups.
        self.plan: list[str] | None = None
        self.adaptive: dict[str, Any] = {}
        self._recorded_inputs: deque = deque(maxlen=adaptive_batches if isinstance(adaptive_batches, int) else 1)
        #: The ``teacher`` argument (``self.teacher`` is the frozen teacher model built from it in ``setup``).
        self.teacher_source = teacher
        self.trust_checkpoint = trust_checkpoint
        self.restart_schedule = restart_schedule

        #: ``"ternary"`` before the split, ``"binary"`` after it (or from the start with ``weights="binary"``).
        self.phase = "binary" if weights == "binary" else "ternary"
        self.split_step: int | None = None
        self.intermediate_step = 0
        self.kept: dict[str, dict[str, list[int]]] = {}
        self.teacher: nn.Module | None = None
        self._model_name = ""
        self._student: nn.Module | None = None
        self._load_hook: RemovableHandle | None = None
        self._taps: DistillationTaps | None = None
        self._eval_mode_checked = False

    resumable_settings = ("temperature", "task_loss_weight")
    resume_rule = "The saved phase and split plan are kept; the new loss weights apply from the resumed step on."

    def checkpoint_settings(self) -> dict[str, Any]:
        """The constructor settings the model's quantized structure and phase depend on (compared on resume)."""
        return {
            "split_at": self.split_at,
            "weights": self.weights,
            "act_bits": self.act_bits,
            "act_quantizer": self.act_quantizer,
            "distill": self.distill,
            "intermediate_until": self.intermediate_until,
            "width": self.width,
            "adaptive_budget": self.adaptive_budget,
            "adaptive_rest": self.adaptive_rest,
            "adaptive_batches": self.adaptive_batches,
            "teacher": teacher_settings(self.teacher_source),
            "restart_schedule": self.restart_schedule,
            "temperature": self.temperature,
            "task_loss_weight": self.task_loss_weight_value,
        }

    # ------------------------------------------------------------------ set-up
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage != "fit":
            return
        if self._student is not None:  # a later fit: `teardown` of the previous one removed the forward hooks
            self._taps.attach()
            return
        name = "TernaryWeightSplitting"
        self._model_name, student = find_hf_model(pl_module, name, required=False)
        require_linear(student)
        if self.teacher_source is not None:  # teacher and student start from the fine-tuned model
            weights = submodel_teacher_state(
                self.teacher_source, pl_module, self._model_name, student.state_dict(), name, self.trust_checkpoint
            )
            student.load_state_dict(weights, strict=True)
        if self.distill != "none":
            if not hasattr(student, "config"):
                raise ValueError(
                    "TernaryWeightSplitting distills from a Hugging Face model, but "
                    f"{type(pl_module).__name__} holds none. HINT: use `distill='none'` for plain quantization."
                )
            self.teacher = copy.deepcopy(student).eval().requires_grad_(False)
        if self.width < 1.0:
            self.kept = half_width_(student, "magnitude", self.width)
        quantize_model_(student, self.weights, self.act_bits, self.act_quantizer)
        self._student = student
        # kept after fit: a checkpoint of the split model loads into this module (validate/test with `ckpt_path`)
        self._load_hook = split_on_load_(pl_module, student, self._model_name)
        self._taps = DistillationTaps(student, self.teacher, self._recorded_inputs)
        self._taps.attach()

    @property
    def teacher_checkpoint(self) -> str | nn.Module | None:
        """Deprecated name of :attr:`teacher_source`, the ``teacher`` argument (removed in 0.2.0)."""
        warn_deprecated("`TernaryWeightSplitting.teacher_checkpoint`", "`TernaryWeightSplitting.teacher_source`")
        return self.teacher_source

    #: Settings saved under an older name: ``teacher_checkpoint`` became ``teacher``.
    renamed_settings = {"teacher_checkpoint": "teacher"}

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.teacher is not None:
            self.teacher.to(pl_module.device)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        total = bounded_steps(trainer, "TernaryWeightSplitting")
        if self.split_at is not None:
            step = split_step(self.split_at, total)
            if self.split_step is None or self.phase == "ternary":
                self.split_step = step
        ternary_steps = self.split_step if self.split_step is not None else total
        self.intermediate_step = round(self.intermediate_until * ternary_steps) if self.distill == "two_stage" else 0
        if self.restart_schedule and self.split_step is not None:
            phase_steps = self.split_step if self.phase == "ternary" else total - self.split_step
            time_compress_schedules(trainer, total / phase_steps, "TernaryWeightSplitting(restart_schedule=True)")

    # ------------------------------------------------------------------ training
    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if not self._eval_mode_checked:
            warn_if_training_in_eval_mode(pl_module, type(self).__name__)
            self._eval_mode_checked = True
        if self.phase == "ternary" and self.split_step is not None and trainer.global_step >= self.split_step:
            self._split(trainer, pl_module)
        self._step = trainer.global_step
        taps = self._taps
        taps.intermediate = self.stage == "intermediate"
        taps.record_inputs = (
            self.adaptive_budget is not None
            and self.phase == "ternary"
            and self.split_step is not None
            and self._step >= self.split_step - self.adaptive_batches
        )
        taps.active = True

    def loss_terms(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Tensor]:
        """The distillation term of the current stage, ``{"tws/kd": ℓ_int or ℓ_pred}`` (none without distillation)."""
        stage, taps = self.stage, self._taps
        if stage == "none":
            return {}
        if taps.student_logits is None or taps.teacher_logits is None:
            raise RuntimeError(
                "TernaryWeightSplitting saw no forward of the Hugging Face model in this training step; the "
                "distillation needs `training_step` to call the model found at "
                f"{self._model_name or '<root>'!r} in train mode."
            )
        if stage == "intermediate":
            return {"tws/kd": intermediate_distillation_loss(taps.student_outputs, taps.teacher_outputs)}
        return {"tws/kd": prediction_distillation_loss(taps.student_logits, taps.teacher_logits, self.temperature)}

    def task_loss_weight(self, trainer: Trainer, pl_module: LightningModule) -> float:
        return self.task_loss_weight_value

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._taps.active = False
        self._taps.clear()
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)  # non-finite weights stop here
        if (
            self.adaptive_budget is not None
            and self.phase == "ternary"
            and self.plan is None
            and self.split_step is not None
            and trainer.global_step >= self.split_step
        ):  # the last ternary step is done: measure on the weights of the split point, before any checkpoint
            self._plan_adaptive_split(trainer)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._taps is not None:
            self._taps.remove()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if self._taps is not None:
            self._taps.remove()

    # ------------------------------------------------------------------ logic
    @property
    def stage(self) -> str:
        """The current distillation stage: ``"intermediate"``, ``"prediction"`` or ``"none"``."""
        if self.distill == "none":
            return "none"
        if self.phase == "ternary" or self.split_step is None:
            if self.distill == "two_stage" and self._step < self.intermediate_step:
                return "intermediate"
        return "prediction"

    _step = 0

    def _split(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.adaptive_budget is not None:
            if self.plan is None:
                raise RuntimeError(
                    "TernaryWeightSplitting(adaptive_budget=...) reached the split without a plan: the sensitivity is "
                    "measured at the end of the last ternary step, which this run did not execute (was it resumed "
                    "from a checkpoint written at the split step by a run without `adaptive_budget`?)."
                )
            names = split_model_(self._student, self.plan) if self.plan else []
            self._apply_adaptive_rest()
        else:
            names = split_model_(self._student)
        self.phase = "binary"
        rebuild_optimizers(trainer, pl_module)  # Bai §5.4.4: the optimizer cannot be inherited
        if self.restart_schedule:
            total = int(trainer.estimated_stepping_batches)
            time_compress_schedules(
                trainer, total / (total - self.split_step), "TernaryWeightSplitting(restart_schedule=True)"
            )
        rank_zero_info(
            f"TernaryWeightSplitting: split {len(names)} ternary modules into binary pairs at step "
            f"{trainer.global_step}; optimizers and schedulers rebuilt."
        )

    # ------------------------------------------------------------------ adaptive splitting
    def _plan_adaptive_split(self, trainer: Trainer) -> None:
        """Measure the sensitivities at the split point, solve the knapsack and record the plan
        (docs/methods.md#adaptive-splitting)."""
        inputs = list(self._recorded_inputs)
        self._recorded_inputs.clear()
        if not inputs:
            raise RuntimeError(
                "TernaryWeightSplitting(adaptive_budget=...) recorded no training forward of the Hugging Face model "
                "before the split, so it cannot measure the sensitivities."
            )
        self.plan, self.adaptive = plan_adaptive_split(
            self._student,
            ternary_modules(self._student),
            inputs,
            self.adaptive_budget,
            self.teacher,
            self.temperature,
            partial(trainer.strategy.reduce, reduce_op="mean"),
        )
        costs, selected = self.adaptive["costs"], self.adaptive["selected"]
        rank_zero_info(
            f"TernaryWeightSplitting: adaptive splitting chose {len(selected)} of {len(costs)} groups "
            f"({sum(costs[i] for i in selected)} of {sum(costs.values())} extra parameters, budget "
            f"{self.adaptive['budget']})."
        )

    def _apply_adaptive_rest(self) -> list[str]:
        """Binarize the ternary modules left out of the plan (``adaptive_rest="binary"``)."""
        if self.adaptive_rest != "binary" or self.plan is None or self._student is None:
            return []
        modules = ternary_modules(self._student)
        for module in modules.values():
            module.weights = "binary"
        return list(modules)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "settings": self.checkpoint_settings(),
            "phase": self.phase,
            "split_step": self.split_step,
            "kept": self.kept,
            "plan": self.plan,
            "adaptive": self.adaptive,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.check_resumed_settings(state_dict)
        self.phase = state_dict.get("phase", self.phase)
        self.split_step = state_dict.get("split_step", self.split_step)
        self.kept = state_dict.get("kept", self.kept)
        self.plan = state_dict.get("plan", self.plan)
        self.adaptive = state_dict.get("adaptive", self.adaptive)
        if self.phase == "binary":  # the planned modules were split when the model state loaded
            self._apply_adaptive_rest()


__all__ = ["TernaryWeightSplitting"]
