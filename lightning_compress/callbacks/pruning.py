"""Gradual pruning during fine-tuning with any criterion of docs/methods.md#pruning-criteria, unstructured or N:M
(docs/methods.md#gradual-magnitude-pruning)."""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

import torch
from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn

from lightning_compress.callbacks._cadence import (
    legacy_frequency,
    resolve_cadence,
    schedule_steps,
    upgrade_cadence_settings,
)
from lightning_compress.callbacks._common import named_parameters, warn_if_training_in_eval_mode
from lightning_compress.callbacks._resume import StatefulCallback
from lightning_compress.callbacks.loss_terms import LossTermCallback
from lightning_compress.deprecation import warn_deprecated
from lightning_compress.pruning.criteria import (
    CRITERIA,
    GradStats,
    PruningCriterion,
    ScoreInputs,
    compute_scores,
    event_generator,
    needs_gradients,
)
from lightning_compress.pruning.l0 import INIT_NOISE_STD, L0Gates
from lightning_compress.pruning.masks import (
    apply_masks_,
    global_masks,
    layerwise_masks,
    mask_sparsity,
    sparsity_report,
)
from lightning_compress.pruning.nm import check_nm_shape, nm_eligible_scores
from lightning_compress.pruning.schedules import PruningEvent, pruning_events
from lightning_compress.targeting import resolve_targets
from lightning_compress.validation import (
    check_choice,
    check_float,
    check_int,
    check_patterns,
    check_step_or_fraction,
    format_value,
)

_SCHEDULES = ("cubic", "iterative", "one_shot")
_SCOPES = {"layer": layerwise_masks, "global": global_masks}
_PATTERNS = ("unstructured", "n:m")
#: docs/methods.md#pruning-criteria defaults of the loss terms: λ1 on Σ|W|, and λ0 = 5e-4 / N_targeted on Σ P(z != 0)
_DEFAULT_L1_PENALTY = 5e-4
_DEFAULT_L0_PENALTY_ON_MEAN = 5e-4


class GradualMagnitudePruning(StatefulCallback, LossTermCallback):
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
        every_n_steps, every_n_epochs = resolve_cadence(
            "GradualMagnitudePruning", every_n_steps, every_n_epochs, frequency
        )
        self._validate_init_arguments(
            final_sparsity=final_sparsity,
            initial_sparsity=initial_sparsity,
            schedule=schedule,
            start=start,
            end=end,
            step_fraction=step_fraction,
            scope=scope,
            criterion=criterion,
            targets=targets,
            exclude=exclude,
            pattern=pattern,
            n=n,
            m=m,
            seed=seed,
            penalty=penalty,
            gate_lr=gate_lr,
        )
        self.final_sparsity = float(final_sparsity)
        self.initial_sparsity = float(initial_sparsity)
        self.schedule = schedule
        self.start = start
        self.end = end
        self.every_n_steps = every_n_steps
        self.every_n_epochs = every_n_epochs
        self.step_fraction = float(step_fraction)
        self.criterion = criterion
        implied = CRITERIA[criterion].scope if isinstance(criterion, str) else None
        self.scope = scope or implied or "layer"
        self.targets = check_patterns("GradualMagnitudePruning", "targets", targets)
        self.exclude = check_patterns("GradualMagnitudePruning", "exclude", exclude)
        self.pattern = pattern
        self.n, self.m = n, m
        self.seed = seed
        self.penalty = penalty
        self.gate_lr = float(gate_lr)

        self.target_names: list[str] = []
        self.masks: dict[str, Tensor] = {}
        self.events: list[PruningEvent] = []
        self.last_event_step = -1
        self.metrics_before_pruning: dict[str, float] = {}
        # gradient criteria: sum of the gradients since the last event, per target
        self.grad_sums: dict[str, Tensor] = {}
        self.grad_steps = 0
        #: criterion="l0": the gates of the targets, with their optimizer and noise generator
        self.gates: L0Gates | None = None
        self._restored_gate_state: dict[str, Any] = {}
        self._masked_at_step = -1
        self._eval_mode_checked = False

    @staticmethod
    def _validate_init_arguments(**arguments: Any) -> None:
        name = "GradualMagnitudePruning"
        final_sparsity, initial_sparsity = arguments["final_sparsity"], arguments["initial_sparsity"]
        for arg in ("final_sparsity", "initial_sparsity"):
            check_float(
                name,
                arg,
                arguments[arg],
                0.0,
                1.0,
                high_inclusive=False,
                note="the fraction of target weights set to zero; 1.0 would remove every weight",
            )
        if initial_sparsity > final_sparsity:
            raise ValueError(
                f"`{name}(initial_sparsity={initial_sparsity}, final_sparsity={final_sparsity})` is invalid: "
                "initial_sparsity must not exceed final_sparsity."
            )
        check_choice(name, "schedule", arguments["schedule"], _SCHEDULES)
        start, end = arguments["start"], arguments["end"]
        check_step_or_fraction(name, "start", start)
        check_step_or_fraction(name, "end", end)
        if type(start) is type(end) and end < start:
            raise ValueError(f"`{name}(start={start!r}, end={end!r})` is invalid: end must not come before start.")
        step_fraction = arguments["step_fraction"]
        check_float(name, "step_fraction", step_fraction, 0.0, 1.0, low_inclusive=False, high_inclusive=False)

        criterion, scope = arguments["criterion"], arguments["scope"]
        if isinstance(criterion, str):
            check_choice(name, "criterion", criterion, sorted(CRITERIA))
        elif not callable(getattr(criterion, "score", None)):
            raise TypeError(
                f"`{name}(criterion={format_value(criterion)})` is invalid: expected a criterion name or an object "
                f"with a `score(name, weight, grad_stats)` method, got {type(criterion).__name__}."
            )
        check_choice(name, "scope", scope, _SCOPES, allow_none=True)
        implied = CRITERIA[criterion].scope if isinstance(criterion, str) else None
        if scope is not None and implied is not None and scope != implied:
            raise ValueError(
                f"`{name}(criterion={criterion!r}, scope={scope!r})` is invalid: {criterion!r} is a {implied} "
                f"criterion; leave `scope` unset or use scope={implied!r}."
            )
        check_patterns(name, "targets", arguments["targets"])
        check_patterns(name, "exclude", arguments["exclude"])

        pattern, n, m = arguments["pattern"], arguments["n"], arguments["m"]
        check_choice(name, "pattern", pattern, _PATTERNS)
        check_int(name, "n", n)
        check_int(name, "m", m)
        if not 1 <= n < m:
            raise ValueError(f"`{name}(n={n}, m={m})` is invalid: expected 1 <= n < m (keep n of every m weights).")
        if pattern == "n:m" and abs(final_sparsity - (1 - n / m)) > 1e-6:
            raise ValueError(
                f"`{name}(pattern='n:m', n={n}, m={m}, final_sparsity={final_sparsity})` is invalid: the last event "
                f"reaches exactly {n}:{m}, so final_sparsity must be 1 - n/m = {1 - n / m:g}."
            )
        check_int(name, "seed", arguments["seed"])
        penalty = arguments["penalty"]
        check_float(name, "penalty", penalty, 0.0, allow_none=True)
        if penalty is not None and criterion not in ("l0", "l1"):
            raise ValueError(
                f"`{name}(criterion={criterion!r}, penalty={penalty!r})` is invalid: `penalty` is the strength "
                "of the loss term of criterion='l0' or 'l1'."
            )
        check_float(name, "gate_lr", arguments["gate_lr"], 0.0, low_inclusive=False)

    @property
    def frequency(self) -> int | str | None:
        """Deprecated (removed in 0.2.0): :attr:`every_n_steps`, or ``"epoch"`` for ``every_n_epochs=1``."""
        warn_deprecated("`GradualMagnitudePruning.frequency`", "`every_n_steps` / `every_n_epochs`")
        return legacy_frequency(self.every_n_steps, self.every_n_epochs)

    def upgrade_settings(self, saved: dict[str, Any]) -> dict[str, Any]:
        """Settings of checkpoints written with ``frequency`` compare as ``every_n_steps``/``every_n_epochs``."""
        return upgrade_cadence_settings(super().upgrade_settings(saved))

    @property
    def criterion_name(self) -> str:
        """The criterion's name, or the class name of a custom criterion object."""
        return self.criterion if isinstance(self.criterion, str) else type(self.criterion).__qualname__

    #: Resuming with other schedule settings keeps the saved masks; see ``resume_rule``.
    resumable_settings = (
        "final_sparsity",
        "initial_sparsity",
        "schedule",
        "start",
        "end",
        "every_n_steps",
        "every_n_epochs",
        "step_fraction",
        "penalty",
        "gate_lr",
    )
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
            "final_sparsity": self.final_sparsity,
            "initial_sparsity": self.initial_sparsity,
            "schedule": self.schedule,
            "start": self.start,
            "end": self.end,
            "every_n_steps": self.every_n_steps,
            "every_n_epochs": self.every_n_epochs,
            "step_fraction": self.step_fraction,
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
            self._warn_if_gates_untrained(self.events[0].step)
        if needs_gradients(self.criterion) and self.events and self.events[0].step == 0:
            raise ValueError(
                f"GradualMagnitudePruning(criterion={self.criterion_name!r}) scores "
                "gradients summed over the optimizer steps before each event, but the first event is at step 0: "
                "start the schedule at step >= 1 (e.g. `start=1` or a fraction > 0)."
            )
        params = named_parameters(pl_module)
        missing = [name for name in {**self.masks, **self.grad_sums} if name not in params]
        if missing:
            raise RuntimeError(
                f"GradualMagnitudePruning: the checkpoint has state for parameters the model lacks: {missing[:5]}."
            )
        self.masks = {name: mask.to(params[name].device) for name, mask in self.masks.items()}
        self.grad_sums = {name: total.to(params[name].device) for name, total in self.grad_sums.items()}
        apply_masks_(params, self.masks)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if not self._eval_mode_checked:
            warn_if_training_in_eval_mode(pl_module, type(self).__name__)
            self._eval_mode_checked = True
        step = trainer.global_step
        if step <= self.last_event_step:
            return
        for index, event in enumerate(self.events):
            if event.step == step:
                self._prune(trainer, pl_module, index, event)

    @property
    def adds_loss_terms(self) -> bool:
        return self.criterion in ("l0", "l1")

    def loss_terms(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Tensor]:
        """The ``l1`` or ``l0`` penalty of those criteria (added before the single backward, logged as
        ``train/l1`` / ``train/l0``); nothing for the other criteria."""
        return {self.criterion: self._penalty_term(pl_module)} if self.adds_loss_terms else {}

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        params = named_parameters(pl_module)
        if self.masks:
            apply_masks_(params, self.masks, grads=True)
        if needs_gradients(self.criterion) and any(event.step > trainer.global_step for event in self.events):
            self._accumulate_gradients(params)
        if self.gates is not None and self.gates.optimizer is not None:
            scaler = getattr(trainer.precision_plugin, "scaler", None)  # AMP: Lightning unscales only the user's
            self.gates.step_(
                partial(trainer.strategy.reduce, reduce_op="mean") if trainer.world_size > 1 else None,
                scaler.get_scale() if scaler is not None else None,
            )

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.masks and trainer.global_step != self._masked_at_step:
            apply_masks_(named_parameters(pl_module), self.masks)
            self._masked_at_step = trainer.global_step
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

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
        start, end, frequency, total = schedule_steps(
            trainer, type(self).__name__, self.start, self.end, self.every_n_steps, self.every_n_epochs
        )
        if isinstance(self.start, int) and self.start > total - 1:
            raise ValueError(
                f"`GradualMagnitudePruning(start={self.start})` is invalid for this run: expected a step before its "
                f"last optimizer step {total - 1} (the run has trainer.estimated_stepping_batches={total} optimizer "
                f"steps, from max_steps={trainer.max_steps}, max_epochs={trainer.max_epochs}), so the schedule would "
                "never prune. HINT: lower `start`, give it as a fraction of the run (e.g. start=0.3), or raise "
                "`max_steps`/`max_epochs`."
            )
        return pruning_events(
            self.schedule,
            start_step=start,
            end_step=end,
            frequency=frequency,
            final_sparsity=self.final_sparsity,
            initial_sparsity=self.initial_sparsity,
            step_fraction=self.step_fraction,
        )

    @torch.no_grad()
    def _prune(self, trainer: Trainer, pl_module: LightningModule, index: int, event: PruningEvent) -> None:
        if self.last_event_step < 0:
            self.metrics_before_pruning = {
                key: float(value) for key, value in trainer.callback_metrics.items() if key.startswith("val")
            }
        params = named_parameters(pl_module)
        inputs = ScoreInputs(
            weights={name: params[name] for name in self.target_names},
            grad_stats=self._grad_stats(params) if needs_gradients(self.criterion) else None,
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

    # gradient statistics ------------------------------------------------
    @torch.no_grad()
    def _accumulate_gradients(self, params: dict[str, Tensor]) -> None:
        for name in self.target_names:
            grad = params[name].grad
            if grad is None:
                continue
            if name not in self.grad_sums:
                self.grad_sums[name] = torch.zeros_like(grad, dtype=torch.float32)
            self.grad_sums[name].add_(grad)
        self.grad_steps += 1

    def _grad_stats(self, params: dict[str, Tensor]) -> dict[str, GradStats]:
        return {
            name: GradStats(
                self.grad_sums.get(name, torch.zeros_like(params[name], dtype=torch.float32)), self.grad_steps
            )
            for name in self.target_names
        }

    # loss terms and L0 gates ---------------------------------------------
    def _warn_if_gates_untrained(self, first_event_step: int) -> None:
        """Warn when the gates cannot learn a ranking before the first event.

        Adam moves a gate's ``log α`` by at most about ``gate_lr`` per step, so before the first event the learned
        part of ``log α`` is at most ``gate_lr · first_event_step``. When that is below 3 standard deviations of the
        initial noise, the keep probabilities rank the weights by that noise: the events prune at random (measured
        on SST-2 / MiniLM-L6 with a first event at step 25: Spearman correlation 0.000 between keep probability
        and |w|, and a 90 % run that ends at the majority class like ``criterion="random"``).
        """
        reach = self.gate_lr * first_event_step
        if reach < 3 * INIT_NOISE_STD:
            rank_zero_warn(
                f"GradualMagnitudePruning(criterion='l0'): the gates can move their log α by at most "
                f"gate_lr × steps = {self.gate_lr:g} × {first_event_step} = {reach:.4f} before the first pruning "
                f"event, less than 3σ of their initial noise ({3 * INIT_NOISE_STD:g}): the keep probabilities will "
                "rank the weights at random. Start pruning later (`start`), train longer, or raise `gate_lr` "
                "(with care: large gate learning rates destabilise fine-tuning)."
            )

    def _penalty_term(self, pl_module: LightningModule) -> Tensor:
        """The loss term of ``criterion="l1"`` (``λ1 Σ_l ‖M_l ⊙ W_l‖₁``) or ``"l0"`` (``λ0 Σ_l Σ M_l ⊙ P(z ≠ 0)``)."""
        params = named_parameters(pl_module)
        if self.criterion == "l1":
            strength = _DEFAULT_L1_PENALTY if self.penalty is None else self.penalty
            return strength * sum(params[name].abs().sum() for name in self.target_names)
        numel = sum(params[name].numel() for name in self.target_names)
        strength = _DEFAULT_L0_PENALTY_ON_MEAN / numel if self.penalty is None else self.penalty
        return strength * self.gates.expected_l0(self.masks or None)

    def _linear_modules(self, pl_module: LightningModule) -> dict[str, nn.Linear]:
        modules = dict(pl_module.named_modules())
        linears = {}
        for name in self.target_names:
            owner, _, attribute = name.rpartition(".")
            module = modules.get(owner)
            if attribute != "weight" or not isinstance(module, nn.Linear):
                raise ValueError(
                    f"`GradualMagnitudePruning(criterion='l0')` gates the weights of nn.Linear modules, but the target "
                    f"`{name}` is not one. HINT: restrict `targets` to nn.Linear weights."
                )
            linears[name] = module
        return linears

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
            "masks": {name: mask.cpu() for name, mask in self.masks.items()},
            "last_event_step": self.last_event_step,
            "metrics_before_pruning": dict(self.metrics_before_pruning),
            "grad_sums": {name: total.cpu() for name, total in self.grad_sums.items()},
            "grad_steps": self.grad_steps,
        }
        if self.log_alphas:
            state.update(self.gates.state_dict())
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.check_resumed_settings(state_dict)
        self.masks = {name: mask.bool() for name, mask in state_dict.get("masks", {}).items()}
        self.last_event_step = int(state_dict.get("last_event_step", -1))
        self.metrics_before_pruning = dict(state_dict.get("metrics_before_pruning", {}))
        self.grad_sums = {name: total.float() for name, total in state_dict.get("grad_sums", {}).items()}
        self.grad_steps = int(state_dict.get("grad_steps", 0))
        # the gates exist once the model is on its device (`on_fit_start`); they are restored there
        keys = ("log_alphas", "gate_optimizer", "gate_generator")
        self._restored_gate_state = {key: state_dict[key] for key in keys if key in state_dict}
