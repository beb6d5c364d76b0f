"""Gradual pruning during fine-tuning with any criterion of docs/methods.md#pruning-criteria, unstructured or N:M
(docs/methods.md#gradual-magnitude-pruning)."""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

import torch
from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor

from lightning_compress.callbacks._cadence import SCHEDULE_SETTINGS, PruningSchedule, resolve_cadence
from lightning_compress.callbacks._common import named_parameters
from lightning_compress.callbacks._resume import StatefulCallback
from lightning_compress.callbacks.loss_terms import LossTermCallback
from lightning_compress.pruning.criteria import (
    PruningCriterion,
    ScoreInputs,
    accumulate_gradients_,
    check_criterion,
    compute_scores,
    event_generator,
    gradient_stats,
    needs_gradients,
    sparsity_penalty,
)
from lightning_compress.pruning.l0 import L0Gates, gated_linears, untrained_gates_warning
from lightning_compress.pruning.masks import (
    apply_masks_,
    global_masks,
    layerwise_masks,
    mask_sparsity,
    sparsity_report,
)
from lightning_compress.pruning.nm import check_nm_arguments, check_nm_shape, nm_eligible_scores
from lightning_compress.pruning.schedules import PruningEvent, check_schedule_arguments
from lightning_compress.targeting import resolve_targets
from lightning_compress.validation import check_float, check_int, check_patterns

_SCOPES = {"layer": layerwise_masks, "global": global_masks}


class GradualMagnitudePruning(PruningSchedule, StatefulCallback, LossTermCallback):
    r"""Prune the target weights gradually while the model is fine-tuned.

    At each pruning event of the schedule the target weights are scored (``criterion``) and the lowest
    scores are masked until the scheduled sparsity is reached, per matrix (``scope="layer"``) or pooled
    over all targets (``scope="global"``). Masks are monotone and kept as ``torch.bool`` per parameter
    FQN. After every optimizer step the pruned weights are set back to exactly zero, and before it their
    gradients are zeroed, so AdamW's weight decay and moments can never revive them
    (docs/methods.md#the-fine-pruning-loop).
    Between pruning events the cost is one in-place masked multiply per target per step.

    Criteria (docs/methods.md#pruning-criteria; ``docs/pruning.md``): ``magnitude``, ``global_magnitude``, ``random``,
    ``global_random``, ``gradient`` (``|G|``) and ``taylor`` (``|G ⊙ W|``) with ``G`` the gradient summed over the
    optimizer steps since the last event (one float32 buffer per target, no extra backward), ``lamp`` (global),
    ``lookahead``, and the two trained-sparsity baselines: ``l1`` adds ``penalty · Σ|W|`` to the loss and prunes by
    magnitude; ``l0`` puts a hard-concrete gate on every target weight (in the forward), adds
    ``penalty · Σ P(z ≠ 0)`` to the loss, trains the gates with its own Adam (``gate_lr``), prunes the lowest keep
    probabilities and folds the gates into the weights at the end of training. Any object with a
    ``score(name, weight, grad_stats)`` method is accepted too
    (:class:`~lightning_compress.pruning.criteria.PruningCriterion`).

    Args:
        final_sparsity: Fraction of target weights pruned at the end of the schedule, in ``[0, 1)``.
        initial_sparsity: Sparsity of the first cubic event (``schedule="cubic"``), or the starting point of the
            geometric schedule.
        schedule: ``"cubic"`` (Zhu & Gupta), ``"iterative"`` (prune ``step_fraction`` of the remaining weights at
            each event, O'Neill) or ``"one_shot"`` (one event at ``start``).
        start, end: When events may happen: a float in ``[0, 1]`` is a fraction of the run's optimizer steps
            (``trainer.estimated_stepping_batches``, so gradient accumulation, ``max_steps`` and ``max_epochs`` all
            give the exact schedule); an int is an absolute optimizer step. ``end`` is inclusive; an event at the
            run's last step would prune after training and is moved to the step before it.
        every_n_steps: Optimizer steps between events (default 10 when ``every_n_epochs`` is not given).
        every_n_epochs: Epochs between events instead: ``every_n_epochs=1`` places one event per epoch (at epoch
            boundaries, after that epoch's validation, as in the O'Neill protocols).
        step_fraction: Fraction of the remaining weights pruned per event by ``schedule="iterative"``.
        scope: ``"layer"`` (every matrix to the same sparsity) or ``"global"`` (one threshold over all targets);
            ``None`` takes the criterion's scope (``global`` for ``global_*`` and ``lamp``, else ``layer``).
        criterion: A name from :data:`~lightning_compress.pruning.criteria.CRITERIA` or a
            :class:`~lightning_compress.pruning.criteria.PruningCriterion` object.
        targets: Regexes over parameter names; default every ``nn.Linear`` weight inside the transformer encoder.
        exclude: Regexes removing parameters from the targets.
        pattern: ``"unstructured"`` or ``"n:m"``: every event keeps at least ``n`` of each group of ``m``
            consecutive input weights, and the last event reaches exactly ``n:m`` (needs
            ``final_sparsity = 1 - n/m``).
        n, m: The N:M pattern (``pattern="n:m"``), e.g. ``n=2, m=4``.
        seed: Seed of the random criteria (scores drawn from ``(seed, event index)``) and of the L0 gates.
        penalty: Strength of the ``l1`` / ``l0`` loss term; ``None`` gives the defaults of
        docs/methods.md#l2-and-l1-penalties and docs/methods.md#hard-concrete-l0-gates (``5e-4`` on
            ``Σ|W|``; ``5e-4 / N_targeted`` on ``Σ P(z ≠ 0)``). Only for those two criteria.
        gate_lr: Adam learning rate of the L0 gate parameters ``log α`` (``criterion="l0"``). Adam moves every gate by
            about ``gate_lr`` per step whatever its gradient, i.e. it rescales every gated weight by ~``0.1·gate_lr``
            per step in a coherent direction: ``1e-2`` makes MiniLM-L6 fine-tuning diverge within 40 steps, ``1e-4``
            trains as stably as plain fine-tuning.
        frequency: Deprecated (removed in 0.2.0): ``frequency=n`` is ``every_n_steps=n``, ``frequency="epoch"`` is
            ``every_n_epochs=1``.

    Example::

        trainer = Trainer(max_epochs=3, callbacks=[GradualMagnitudePruning(final_sparsity=0.5, start=0.3)])
        trainer.fit(module, datamodule)
    """

    def __init__(
        self,
        final_sparsity: float = 0.9,
        initial_sparsity: float = 0.0,
        schedule: Literal["cubic", "iterative", "one_shot"] = "cubic",
        start: int | float = 0.0,
        end: int | float = 0.75,
        every_n_steps: int | None = None,
        every_n_epochs: int | None = None,
        step_fraction: float = 0.1,
        scope: Literal["layer", "global"] | None = None,
        criterion: str | PruningCriterion = "magnitude",
        targets: str | list[str] | None = None,
        exclude: str | list[str] | None = None,
        pattern: Literal["unstructured", "n:m"] = "unstructured",
        n: int = 2,
        m: int = 4,
        seed: int = 0,
        penalty: float | None = None,
        gate_lr: float = 1e-4,
        frequency: int | Literal["epoch"] | None = None,
    ) -> None:
        super().__init__()
        name = "GradualMagnitudePruning"
        every_n_steps, every_n_epochs = resolve_cadence(name, every_n_steps, every_n_epochs, frequency)
        for arg, value in (("final_sparsity", final_sparsity), ("initial_sparsity", initial_sparsity)):
            note = "the fraction of target weights set to zero; 1.0 would remove every weight"
            check_float(name, arg, value, 0.0, 1.0, high_inclusive=False, note=note)
        if initial_sparsity > final_sparsity:
            raise ValueError(
                f"`{name}(initial_sparsity={initial_sparsity}, final_sparsity={final_sparsity})` is invalid: "
                "initial_sparsity must not exceed final_sparsity."
            )
        check_schedule_arguments(name, schedule, start, end, step_fraction)
        self.scope = check_criterion(name, criterion, scope)
        self.targets = check_patterns(name, "targets", targets)
        self.exclude = check_patterns(name, "exclude", exclude)
        check_nm_arguments(name, pattern, n, m, final_sparsity)
        check_int(name, "seed", seed)
        check_float(name, "penalty", penalty, 0.0, allow_none=True)
        if penalty is not None and criterion not in ("l0", "l1"):
            raise ValueError(
                f"`{name}(criterion={criterion!r}, penalty={penalty!r})` is invalid: `penalty` is the strength "
                "of the loss term of criterion='l0' or 'l1'."
            )
        check_float(name, "gate_lr", gate_lr, 0.0, low_inclusive=False)
        self._init_schedule(final_sparsity, schedule, start, end, every_n_steps, every_n_epochs, step_fraction)
        self.initial_sparsity = float(initial_sparsity)
        self.criterion = criterion
        self.pattern = pattern
        self.n, self.m = n, m
        self.seed = seed
        self.penalty = penalty
        self.gate_lr = float(gate_lr)

        self.target_names: list[str] = []
        self.metrics_before_pruning: dict[str, float] = {}
        # gradient criteria: sum of the gradients since the last event, per target
        self.grad_sums: dict[str, Tensor] = {}
        self.grad_steps = 0
        #: criterion="l0": the gates of the targets, with their optimizer and noise generator
        self.gates: L0Gates | None = None
        self._restored_gate_state: dict[str, Any] = {}

    @property
    def criterion_name(self) -> str:
        """The criterion's name, or the class name of a custom criterion object."""
        return self.criterion if isinstance(self.criterion, str) else type(self.criterion).__qualname__

    #: The schedule settings, with ``initial_sparsity`` after ``final_sparsity`` (their saved order).
    schedule_setting_names = (SCHEDULE_SETTINGS[0], "initial_sparsity", *SCHEDULE_SETTINGS[1:])
    #: Resuming with other schedule settings keeps the saved masks; see ``resume_rule``.
    resumable_settings = (*schedule_setting_names, "penalty", "gate_lr")
    resume_rule = (
        "The saved masks are kept and the schedule is recomputed with the new settings: only its events after the "
        "last saved event still prune, and masks never shrink, so the sparsity already reached is kept even when the "
        "new final_sparsity is lower."
    )

    def checkpoint_settings(self) -> dict[str, Any]:
        """The constructor settings the masks depend on (saved in the state, compared on resume)."""
        return {
            "criterion": self.criterion_name,
            "scope": self.scope,
            "targets": list(self.targets),
            "exclude": list(self.exclude),
            "pattern": self.pattern,
            "n": self.n,
            "m": self.m,
            "seed": self.seed,
            **self.schedule_settings(),
            "penalty": self.penalty,
            "gate_lr": self.gate_lr,
        }

    # ------------------------------------------------------------------ hooks
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self.target_names = resolve_targets(pl_module, self.targets or None, self.exclude or None)
        params = named_parameters(pl_module)
        if self.pattern == "n:m":
            for name in self.target_names:
                check_nm_shape(name, params[name].shape, self.m)
        if self.criterion == "l0" and stage == "fit":
            self._linear_modules(pl_module)  # validates before any state is set
            self.gates = L0Gates({name: params[name].shape for name in self.target_names}, self.seed, self.gate_lr)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.criterion == "l0":
            self._start_gates(pl_module)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self.events = self._compute_events(trainer)
        if self.events and self.events[-1].sparsity < self.final_sparsity - 1e-6:
            rank_zero_warn(
                f"GradualMagnitudePruning: the schedule reaches only {self.events[-1].sparsity:.4f} sparsity, not "
                f"final_sparsity={self.final_sparsity}, within this run's {int(trainer.estimated_stepping_batches)} "
                "optimizer steps; more steps (`max_steps`/`max_epochs`), a larger step_fraction or an earlier `end` "
                "are needed."
            )
        remaining = [e for e in self.events if e.step > self.last_event_step and e.step >= trainer.global_step]
        if self.masks and not remaining:
            reached = mask_sparsity(self.masks.values())
            if abs(reached - self.final_sparsity) > 1e-3:
                rank_zero_warn(
                    f"GradualMagnitudePruning: resumed after the last pruning event (step {self.last_event_step}) at "
                    f"sparsity {reached:.4f}, but final_sparsity={self.final_sparsity}; no event is left to change it. "
                    "HINT: to prune further, resume with a schedule that has events after that step (e.g. a later "
                    "`end`), or start a new run."
                )
        if self.criterion == "l0" and self.events and self.last_event_step < 0:
            warning = untrained_gates_warning(
                self.gate_lr, self.events[0].step, "GradualMagnitudePruning(criterion='l0')"
            )
            if warning is not None:
                rank_zero_warn(warning)
        self._check_gradient_schedule(needs_gradients(self.criterion), self.criterion_name)
        params = named_parameters(pl_module)
        missing = [name for name in {**self.masks, **self.grad_sums} if name not in params]
        if missing:
            raise RuntimeError(
                f"GradualMagnitudePruning: the checkpoint has state for parameters the model lacks: {missing[:5]}."
            )
        self.masks = {name: mask.to(params[name].device) for name, mask in self.masks.items()}
        self.grad_sums = {name: total.to(params[name].device) for name, total in self.grad_sums.items()}
        apply_masks_(params, self.masks)

    @property
    def adds_loss_terms(self) -> bool:
        return self.criterion in ("l0", "l1")

    def loss_terms(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Tensor]:
        """The ``l1`` or ``l0`` penalty of those criteria (added before the single backward, logged as
        ``train/l1`` / ``train/l0``); nothing for the other criteria."""
        if not self.adds_loss_terms:
            return {}
        params = named_parameters(pl_module)
        expected_l0 = self.gates.expected_l0(self.masks or None) if self.criterion == "l0" else None
        weights = [params[name] for name in self.target_names]
        return {self.criterion: sparsity_penalty(self.criterion, weights, self.penalty, expected_l0)}

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        params = named_parameters(pl_module)
        if self.masks:
            apply_masks_(params, self.masks, grads=True)
        if needs_gradients(self.criterion) and any(event.step > trainer.global_step for event in self.events):
            accumulate_gradients_(self.grad_sums, params, self.target_names)
            self.grad_steps += 1
        if self.gates is not None and self.gates.optimizer is not None:
            scaler = getattr(trainer.precision_plugin, "scaler", None)  # AMP: Lightning unscales only the user's
            self.gates.step_(
                partial(trainer.strategy.reduce, reduce_op="mean") if trainer.world_size > 1 else None,
                scaler.get_scale() if scaler is not None else None,
            )

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.gates is not None and self.gates.attached:  # make the masks hard: W ← W ⊙ ẑ, ẑ = 0 joins the mask
            params = named_parameters(pl_module)
            self.masks.update(self.gates.fold_(params, self.masks))
            apply_masks_(params, {name: self.masks[name] for name in self.target_names})  # exact zeros next to NaN
        super().on_train_end(trainer, pl_module)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.gates is not None:
            self.gates.remove()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if self.gates is not None:
            self.gates.remove()

    # ------------------------------------------------------------------ logic
    def _compute_events(self, trainer: Trainer) -> list[PruningEvent]:
        events = super()._compute_events(trainer)
        total = int(trainer.estimated_stepping_batches)
        if isinstance(self.start, int) and self.start > total - 1:
            raise ValueError(
                f"`GradualMagnitudePruning(start={self.start})` is invalid for this run: expected a step before its "
                f"last optimizer step {total - 1} (the run has trainer.estimated_stepping_batches={total} optimizer "
                f"steps, from max_steps={trainer.max_steps}, max_epochs={trainer.max_epochs}), so the schedule would "
                "never prune. HINT: lower `start`, give it as a fraction of the run (e.g. start=0.3), or raise "
                "`max_steps`/`max_epochs`."
            )
        return events

    def _apply_masks(self, pl_module: LightningModule) -> None:
        apply_masks_(named_parameters(pl_module), self.masks)

    @torch.no_grad()
    def _prune(self, trainer: Trainer, pl_module: LightningModule, index: int, event: PruningEvent) -> None:
        if self.last_event_step < 0:
            self.metrics_before_pruning = {
                key: float(value) for key, value in trainer.callback_metrics.items() if key.startswith("val")
            }
        params = named_parameters(pl_module)
        grad_stats = None
        if needs_gradients(self.criterion):
            grad_stats = gradient_stats(self.grad_sums, self.grad_steps, params, self.target_names)
        inputs = ScoreInputs(
            weights={name: params[name] for name in self.target_names},
            grad_stats=grad_stats,
            generator=event_generator(self.seed, index),
            log_alphas=self.log_alphas or None,
        )
        scores = compute_scores(self.criterion, inputs)
        if self.pattern == "n:m":
            scores = {
                name: nm_eligible_scores(score, self.n, self.m, self.masks.get(name)) for name, score in scores.items()
            }
        self.masks = _SCOPES[self.scope](scores, event.sparsity, previous=self.masks or None)
        apply_masks_(params, self.masks)
        self.last_event_step = event.step
        self.grad_sums, self.grad_steps = {}, 0  # reallocated by the next step, if an event is left to score
        sparsity = mask_sparsity(self.masks.values())
        pl_module.log("compress/pruning/sparsity", sparsity, on_step=True, on_epoch=False, rank_zero_only=True)
        # Whole-model sparsity too (docs/methods.md#measuring-sparsity): embeddings are far more than 1 % of the
        # parameters.
        model_sparsity = sparsity_report(pl_module, self.target_names)["model"]
        pl_module.log(
            "compress/pruning/model_sparsity", model_sparsity, on_step=True, on_epoch=False, rank_zero_only=True
        )
        if self.log_alphas:
            density = float(self.gates.expected_l0(self.masks)) / sum(mask.numel() for mask in self.masks.values())
            pl_module.log(
                "compress/pruning/l0_expected_density", density, on_step=True, on_epoch=False, rank_zero_only=True
            )
        rank_zero_info(
            f"GradualMagnitudePruning: step {event.step}, target sparsity {event.sparsity:.4f}, measured {sparsity:.4f}"
        )

    # L0 gates ------------------------------------------------------------
    def _linear_modules(self, pl_module: LightningModule) -> dict:
        return gated_linears(pl_module, self.target_names, "GradualMagnitudePruning(criterion='l0')")

    def _start_gates(self, pl_module: LightningModule) -> None:
        restored, self._restored_gate_state = self._restored_gate_state, {}
        log_alphas = restored.get("log_alphas", self.gates.log_alphas)
        missing = [name for name in self.target_names if name not in log_alphas]
        if missing:
            raise RuntimeError(
                f"GradualMagnitudePruning: the checkpoint has no L0 gates for the targets {missing[:5]}."
            )
        self.gates.start_(self._linear_modules(pl_module), restored)

    # ------------------------------------------------------------------ state
    @property
    def log_alphas(self) -> dict[str, Tensor]:
        """FQN -> gate parameters ``log α`` (``criterion="l0"``; empty otherwise)."""
        return self.gates.log_alphas if self.gates is not None else {}

    @property
    def sparsity(self) -> float:
        """Measured sparsity of the target set, counted from the masks (0.0 before the first event)."""
        return mask_sparsity(self.masks.values()) if self.masks else 0.0

    def state_dict(self) -> dict[str, Any]:
        state = {
            "settings": self.checkpoint_settings(),
            **self._event_state(),
            "metrics_before_pruning": dict(self.metrics_before_pruning),
            "grad_sums": {name: total.cpu() for name, total in self.grad_sums.items()},
            "grad_steps": self.grad_steps,
        }
        if self.log_alphas:
            state.update(self.gates.state_dict())
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.check_resumed_settings(state_dict)
        self._load_event_state(state_dict)
        self.metrics_before_pruning = dict(state_dict.get("metrics_before_pruning", {}))
        self.grad_sums = {name: total.float() for name, total in state_dict.get("grad_sums", {}).items()}
        self.grad_steps = int(state_dict.get("grad_steps", 0))
        # the gates exist once the model is on its device (`on_fit_start`); they are restored there
        keys = ("log_alphas", "gate_optimizer", "gate_generator")
        self._restored_gate_state = {key: state_dict[key] for key in keys if key in state_dict}
