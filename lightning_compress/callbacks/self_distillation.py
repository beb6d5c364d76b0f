"""Self-distilled pruning: distil the dense fine-tuned model into the model being pruned
(docs/methods.md#self-distilled-pruning)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn

from lightning_compress.callbacks._distillation_taps import OutputCapture
from lightning_compress.callbacks._resume import StatefulCallback
from lightning_compress.callbacks._weights import (
    check_teacher,
    find_hf_model,
    frozen_copy,
    submodel_teacher_state,
    teacher_settings,
)
from lightning_compress.callbacks.loss_terms import LossTermCallback
from lightning_compress.distillation.fingerprints import call_input_fingerprints
from lightning_compress.distillation.losses import (
    DEFAULT_OFFDIAG_WEIGHT,
    KD_WEIGHTINGS,
    cosine_feature_loss,
    cross_correlation_loss,
    kl_with_temperature,
    sdp_loss_weights,
)
from lightning_compress.distillation.teacher_cache import TeacherCache
from lightning_compress.validation import check_bool, check_choice, check_float

#: docs/methods.md#sdp-hyperparameters (O'Neill §11.4): β of the feature term per ``feature_loss``.
DEFAULT_BETAS = {"cc": 2e-5, "cos": 0.05}
_FEATURE_LOSSES = {"cc": cross_correlation_loss, "cos": cosine_feature_loss}


class SelfDistilledPruning(StatefulCallback, LossTermCallback):
    r"""Distil a frozen dense teacher into the model while it is pruned: SDP-KLD, SDP-CC, SDP-COS (O'Neill Ch. 11).

    The loss of ``training_step`` (task cross-entropy ``CE``) becomes (docs/methods.md#distillation-losses,
    docs/methods.md#sdp-errata)

    * ``feature_loss=None`` (SDP-KLD): ``(1 − α) CE + α τ² KL(p_T^τ ‖ p_S^τ)``;
    * ``feature_loss="cc"`` (SDP-CC): ``(1 − α) CE + α τ² KL + β ℓ_CC(z^S, z^T)``, ``ℓ_CC`` the cross-correlation
      loss on batch-standardised last-hidden [CLS] vectors;
    * ``feature_loss="cos"`` (SDP-COS): ``α CE + β (1 − mean cos(z^S, z^T))`` as printed (no KL term).

    ``kd_weighting`` selects the KL weight: ``"alpha_tau2"`` (above), ``"alpha_sq"`` (``α²``, printed Eq. 11.3) or
    ``"algorithm5"`` (``CE + α KL``). For one-output regression heads (STS-B) the KL term is the mean squared error
    between student and teacher outputs, weighted by ``α`` (``α²`` for ``"alpha_sq"``).
    Logits and [CLS] vectors are read by forward hooks on the module's Hugging Face model, so ``training_step`` stays
    the user's. Terms are logged as ``train/kd``, ``train/cc``, ``train/cos`` (weighted, as added to the loss).

    The teacher (docs/methods.md#teacher-and-student) is a frozen eval-mode copy of the dense model: captured from the
    module at the start of
    fit (before any pruning), or loaded from ``teacher``; it runs under ``no_grad`` on the same inputs as the student
    and is never updated. With ``teacher_cache=True`` its logits and [CLS] vectors are computed once per training
    example (keyed by the batch's ``idx``), stored in float16 and reused by later epochs; once every training example
    is cached the teacher copy is freed. Each cached row keeps a fingerprint of its example's non-padding input ids
    (:func:`~lightning_compress.distillation.fingerprints.input_fingerprints`), and a row served for an example with
    other input ids (e.g. a run resumed on another data subset of the same size) raises an error. A captured teacher
    and the cache are saved in the callback state, so a resumed run is exact.

    Args:
        alpha: ``α ∈ [0, 1]`` (O'Neill 2022, §11.4: 0.5).
        temperature: ``τ > 0`` (O'Neill 2022, §11.4: 0.9).
        feature_loss: ``"cc"``, ``"cos"`` or ``None``.
        beta: ``β >= 0``; ``None`` takes docs/methods.md#sdp-hyperparameters: ``2e-5`` for ``"cc"``, ``0.05`` for
        ``"cos"``.
        offdiag_weight: ``λ_off`` of the cross-correlation loss (default ``5.1e-3``, Barlow Twins).
        kd_weighting: ``"alpha_tau2"``, ``"alpha_sq"`` or ``"algorithm5"`` (docs/methods.md#weight-of-the-kl-term).
        teacher: ``None`` (copy of the module's model at fit start), or a module (``nn.Module`` or
            LightningModule), a Lightning checkpoint path or a Hugging Face model folder of the same architecture and
            label count (as ``teacher`` of :class:`AlignReg` and :class:`TernaryWeightSplitting`).
        teacher_cache: Cache the teacher's outputs per training example (needs an ``idx`` entry in the batches).
        student_from_teacher: Copy the teacher's weights into the model at the start of fit (the student starts from
            the fine-tuned dense model, docs/methods.md#teacher-and-student); only with a ``teacher``.
        trust_checkpoint: Read a ``teacher`` checkpoint that only a full unpickling can load (e.g. one holding a
            custom hyper-parameter object). Unpickling runs any code stored in the file: only for files you trust.
            ``False`` reads it weights-only (:func:`~lightning_compress.checkpoints.load_checkpoint`).

    Example::

        callbacks = [GradualMagnitudePruning(final_sparsity=0.9), SelfDistilledPruning(feature_loss="cc")]
        Trainer(max_epochs=3, callbacks=callbacks).fit(finetuned_module, datamodule)
    """

    def __init__(
        self,
        alpha: float = 0.5,
        temperature: float = 0.9,
        feature_loss: Literal["cc", "cos"] | None = "cc",
        beta: float | None = None,
        offdiag_weight: float = DEFAULT_OFFDIAG_WEIGHT,
        kd_weighting: Literal["alpha_tau2", "alpha_sq", "algorithm5"] = "alpha_tau2",
        teacher: str | nn.Module | None = None,
        teacher_cache: bool = True,
        student_from_teacher: bool = False,
        trust_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        name = "SelfDistilledPruning"
        check_float(name, "alpha", alpha, 0.0, 1.0, note="the share of the distillation term; O'Neill 2022, §11.4: 0.5")
        note = "logits are divided by it; O'Neill 2022, §11.4: 0.9"
        check_float(name, "temperature", temperature, 0.0, low_inclusive=False, note=note)
        check_choice(name, "feature_loss", feature_loss, _FEATURE_LOSSES, allow_none=True)
        check_float(name, "beta", beta, 0.0, allow_none=True)
        if beta not in (None, 0, 0.0) and feature_loss is None:
            raise ValueError(
                f"`{name}(beta={beta!r}, feature_loss=None)` is invalid: `beta` weighs the feature loss; "
                "set feature_loss='cc' or 'cos'."
            )
        check_float(name, "offdiag_weight", offdiag_weight, 0.0)
        check_choice(name, "kd_weighting", kd_weighting, KD_WEIGHTINGS)
        check_teacher(name, "teacher", teacher)
        for arg, value in (
            ("teacher_cache", teacher_cache),
            ("student_from_teacher", student_from_teacher),
            ("trust_checkpoint", trust_checkpoint),
        ):
            check_bool(name, arg, value)
        if student_from_teacher and teacher is None:
            raise ValueError(
                f"`{name}(student_from_teacher=True)` needs `teacher=<module, checkpoint or folder>`: without it the "
                "teacher is a copy of the module's own model."
            )
        self.alpha = float(alpha)
        self.temperature = float(temperature)
        self.feature_loss = feature_loss
        self.beta = float(DEFAULT_BETAS[feature_loss] if beta is None and feature_loss else (beta or 0.0))
        self.offdiag_weight = float(offdiag_weight)
        self.kd_weighting = kd_weighting
        #: The ``teacher`` argument (``self.teacher`` is the frozen teacher model built from it at fit start).
        self.teacher_source = teacher
        self.teacher_cache = teacher_cache
        self.student_from_teacher = student_from_teacher
        self.trust_checkpoint = trust_checkpoint
        self.task_weight, self.kl_weight = sdp_loss_weights(self.alpha, self.temperature, kd_weighting, feature_loss)

        self.teacher: nn.Module | None = None
        self._hf_prefix = ""
        self._student: OutputCapture | None = None
        self._teacher_capture: OutputCapture | None = None
        self._batch_idx: Tensor | None = None
        self._restored_teacher: dict[str, Tensor] | None = None
        self.student_initialized = False
        #: The teacher's outputs per training example (``teacher_cache=True``): row i holds example idx=i.
        self.cache = TeacherCache("SelfDistilledPruning(teacher_cache=True)")
        self.cache_complete = False
        self._expected_examples: int | None = None

    resumable_settings = ("alpha", "temperature", "beta", "offdiag_weight", "kd_weighting")
    resume_rule = (
        "The saved teacher and cached teacher outputs are kept (they do not depend on these settings); the new loss "
        "weights apply from the resumed step on."
    )

    def checkpoint_settings(self) -> dict[str, Any]:
        """The constructor settings the saved teacher and cache depend on (saved in the state, compared on resume)."""
        return {
            "feature_loss": self.feature_loss,
            "teacher": teacher_settings(self.teacher_source),
            "teacher_cache": self.teacher_cache,
            "student_from_teacher": self.student_from_teacher,
            "alpha": self.alpha,
            "temperature": self.temperature,
            "beta": self.beta,
            "offdiag_weight": self.offdiag_weight,
            "kd_weighting": self.kd_weighting,
        }

    # ------------------------------------------------------------------ hooks
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage == "fit":
            self._hf_prefix, _ = find_hf_model(pl_module, "SelfDistilledPruning")

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        from lightning_compress.callbacks.pruning import GradualMagnitudePruning

        if not any(isinstance(cb, GradualMagnitudePruning) for cb in trainer.callbacks):
            rank_zero_warn(
                "SelfDistilledPruning is used without a GradualMagnitudePruning callback: nothing is pruned, so this "
                "is plain distillation from a copy of the model (with the default teacher, student and teacher start "
                "equal and the distillation terms are ~0). HINT: add GradualMagnitudePruning(...) to the callbacks."
            )
        _, hf_model = find_hf_model(pl_module, "SelfDistilledPruning")
        if not self.cache_complete:
            self.teacher = self._build_teacher(pl_module, hf_model)
            self.teacher.to(device=pl_module.device)
            if self.student_from_teacher and not self.student_initialized:
                hf_model.load_state_dict(self.teacher.state_dict())
                self.student_initialized = True
            self._teacher_capture = OutputCapture(self.teacher, inputs=False)
        self._student = OutputCapture(hf_model, inputs=True)
        self.cache.to(pl_module.device)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        try:
            self._expected_examples = len(trainer.train_dataloader.dataset)  # type: ignore[union-attr]
        except (AttributeError, TypeError):
            self._expected_examples = None
            if self.teacher_cache:
                rank_zero_warn(
                    "SelfDistilledPruning: the size of the training set is unknown, so the teacher is never freed "
                    "(its outputs are still cached)."
                )

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if self.teacher_cache:
            idx = batch.get("idx") if isinstance(batch, Mapping) else None
            if not isinstance(idx, Tensor):
                raise ValueError(
                    "`SelfDistilledPruning(teacher_cache=True)` keys the cached teacher outputs by the batch entry "
                    "`idx` (a stable per-example index), but the training batches have none. HINT: add `idx` to the "
                    "batches (the lightning_compress DataModules do) or pass teacher_cache=False."
                )
            self._batch_idx = idx.reshape(-1).long()
        if self._student is not None:
            self._student.clear()
            self._student.active = True

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._student is not None:
            self._student.active = False
            self._student.clear()
        if self.teacher_cache and batch_idx + 1 == trainer.num_training_batches:
            self.cache.sync_(trainer.strategy.all_gather if trainer.world_size > 1 else None)
            if (
                not self.cache_complete
                and self._expected_examples is not None
                and self.cache.cached is not None
                and self.cache.count() >= self._expected_examples
            ):
                self.cache_complete = True
                self._free_teacher()
                rank_zero_info(
                    f"SelfDistilledPruning: teacher outputs cached for all {self._expected_examples} training "
                    "examples; the teacher copy is freed."
                )
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        for capture in (self._student, self._teacher_capture):
            if capture is not None:
                capture.remove()
        self._student = self._teacher_capture = None

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self.teardown(trainer, pl_module, "fit")

    # ------------------------------------------------------------------ loss
    def task_loss_weight(self, trainer: Trainer, pl_module: LightningModule) -> float:
        return self.task_weight

    def loss_terms(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Tensor]:
        student = self._student
        if student is None or student.logits is None or student.features is None:
            raise RuntimeError(
                "SelfDistilledPruning: the module's Hugging Face model was not called in `training_step`, so there "
                "are no student logits to distil into."
            )
        logits_s, features_s = student.logits.float(), student.features.float()
        logits_t, features_t = self._teacher_outputs(student)
        terms: dict[str, Tensor] = {}
        if self.kl_weight:
            if logits_s.shape[-1] == 1:  # regression head: match the teacher's prediction
                weight = self.kl_weight / self.temperature**2 if self.kd_weighting == "alpha_tau2" else self.kl_weight
                terms["kd"] = weight * F.mse_loss(logits_s, logits_t)
            else:
                mask = student.kwargs.get("attention_mask") if logits_s.dim() == 3 else None
                terms["kd"] = self.kl_weight * kl_with_temperature(logits_s, logits_t, self.temperature, mask)
        if self.feature_loss == "cc":
            terms["cc"] = self.beta * cross_correlation_loss(features_s, features_t, self.offdiag_weight)
        elif self.feature_loss == "cos":
            terms["cos"] = self.beta * cosine_feature_loss(features_s, features_t)
        student.active = False
        return terms

    @torch.no_grad()
    def _run_teacher(self, student: OutputCapture) -> tuple[Tensor, Tensor]:
        if self.teacher is None or self._teacher_capture is None:
            raise RuntimeError(
                "SelfDistilledPruning: a training example has no cached teacher output and the teacher was freed "
                "(the training set changed after the cache was completed). HINT: pass teacher_cache=False."
            )
        capture = self._teacher_capture
        capture.clear()
        capture.active = True
        try:
            self.teacher(*student.args, **student.kwargs)
        finally:
            capture.active = False
        logits, features = capture.logits, capture.features
        capture.clear()
        return logits.float(), features.float()

    def _teacher_outputs(self, student: OutputCapture) -> tuple[Tensor, Tensor]:
        if not self.teacher_cache:
            return self._run_teacher(student)
        idx = self._batch_idx.to(student.logits.device)
        if student.logits.dim() != 2:
            raise ValueError(
                "`SelfDistilledPruning(teacher_cache=True)` caches one logit vector per example, but the model returns "
                f"logits of shape {tuple(student.logits.shape)} (a token-level task). HINT: pass teacher_cache=False."
            )
        needed = int(idx.max()) + 1
        if self.cache.size < needed:
            size = max(needed, self._expected_examples or 0)
            self.cache.reserve_(size, student.logits.shape[-1], student.features.shape[-1], student.logits.device)
        fingerprints = call_input_fingerprints(student.args, student.kwargs)
        missing = self.cache.missing(idx, fingerprints)
        if missing is not None:
            logits, features = self._run_teacher(student)
            self.cache.store_(idx, missing, logits, features, fingerprints)
        # cached and fresh values alike go through float16, so every epoch (and a resumed run) sees the same targets
        return self.cache.targets(idx)

    # ------------------------------------------------------------------ teacher
    def _build_teacher(self, pl_module: LightningModule, hf_model: nn.Module) -> nn.Module:
        teacher = frozen_copy(hf_model)
        expected = teacher.state_dict()
        if self._restored_teacher is not None:
            state, self._restored_teacher = self._restored_teacher, None
        elif self.teacher_source is not None:
            state = submodel_teacher_state(
                self.teacher_source, pl_module, self._hf_prefix, expected, "SelfDistilledPruning", self.trust_checkpoint
            )
        else:
            return teacher  # the dense model at the start of fit
        teacher.load_state_dict(state)
        return teacher

    def _free_teacher(self) -> None:
        if self._teacher_capture is not None:
            self._teacher_capture.remove()
        self.teacher = self._teacher_capture = None

    # ------------------------------------------------------------------ state
    @property
    def cached(self) -> Tensor | None:
        """``N`` bool: which training examples have cached teacher outputs (:attr:`cache`)."""
        return self.cache.cached

    @property
    def cache_logits(self) -> Tensor | None:
        """``N x C`` float16 cached teacher logits."""
        return self.cache.logits

    @property
    def cache_features(self) -> Tensor | None:
        """``N x D`` float16 cached teacher [CLS] vectors."""
        return self.cache.features

    @property
    def cache_fingerprints(self) -> Tensor | None:
        """``N`` int64 input fingerprints of the cached rows (0: unknown)."""
        return self.cache.fingerprints

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "settings": self.checkpoint_settings(),
            "cache_complete": self.cache_complete,
            "student_initialized": self.student_initialized,
        }
        if self.cache.cached is not None:
            state["cache"] = self.cache.state_dict()
        if self.teacher is not None and self.teacher_source is None:
            # a copy of the module at fit start cannot be rebuilt after pruning started: save it
            state["teacher"] = {key: value.cpu() for key, value in self.teacher.state_dict().items()}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.check_resumed_settings(state_dict)
        self.cache_complete = bool(state_dict.get("cache_complete", False))
        self.student_initialized = bool(state_dict.get("student_initialized", False))
        cache = state_dict.get("cache")
        if cache is not None:  # checkpoints written before fingerprints were kept load with unknown ones
            self.cache.load_state_dict(cache)
        self._restored_teacher = state_dict.get("teacher")


__all__ = ["DEFAULT_BETAS", "SelfDistilledPruning"]
