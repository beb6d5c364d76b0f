"""Structured pruning during fine-tuning: remove whole feed-forward neurons or whole encoder layers."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.utilities import rank_zero_info
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from lightning_compress.callbacks._cadence import SCHEDULE_SETTINGS, PruningSchedule, resolve_cadence
from lightning_compress.callbacks._common import named_parameters
from lightning_compress.callbacks._resume import StatefulCallback
from lightning_compress.callbacks._weights import find_hf_model
from lightning_compress.callbacks.finite_guard import GuardedCallback
from lightning_compress.pruning.schedules import PruningEvent, check_schedule_arguments
from lightning_compress.pruning.structured import (
    ffn_parameters,
    find_unit_blocks,
    kept_layers_from_masks,
    kept_neurons_from_masks,
    layer_magnitude_scores,
    layer_taylor_contributions,
    mask_ffn_blocks_,
    neuron_magnitude_scores,
    neuron_taylor_contributions,
    random_unit_scores,
    removed_unit_fraction,
    select_units,
    skip_layer_,
    slice_layers_,
    units_to_remove,
)
from lightning_compress.validation import check_choice, check_float, check_int, check_patterns

#: ``unit`` name -> what one unit is (dispatch in the hooks; the keys are the allowed values).
_UNITS = {"ffn_neurons": "feed-forward neuron", "layers": "encoder layer"}
#: ``criterion`` name -> whether it reads gradients accumulated between events.
_CRITERIA = {"magnitude": False, "taylor": True, "random": False}


class StructuredPruning(PruningSchedule, StatefulCallback, GuardedCallback):
    r"""Remove whole feed-forward neurons or whole encoder layers while the model is fine-tuned.

    At each event of the schedule the units are scored (``criterion``) and the lowest-scored ones are removed until
    the scheduled fraction is reached; removed units never come back.

    * ``unit="ffn_neurons"``: neuron ``j`` of a block is row ``j`` of ``intermediate.dense`` (and its bias entry) and
      column ``j`` of ``output.dense``. Every block loses the same number of neurons, so the sliced model is a standard
      config with a smaller ``intermediate_size``. A removed neuron's parameters are set to exactly 0 after every
      optimizer step (and its gradients before it), so it contributes exactly nothing.
    * ``unit="layers"``: a removed block becomes the identity on the hidden states through a forward hook
      (:func:`~lightning_compress.pruning.structured.skip_layer_`), exactly as if it were deleted (LayerDrop, Fan et al.
      2020; layer dropping, Sajjad et al. 2023). Embeddings and head stay.

    Criteria (``docs/structured_pruning.md``): ``magnitude`` (neuron: L2 norm of its up-row, bias and down-column;
    layer: root mean square of its ``nn.Linear`` weights), ``taylor`` (``Σ_t |Σ_{s ∈ unit} w_s ∂L_t/∂w_s|`` over the
    optimizer steps since the last event, Molchanov et al. 2017/2019; read in ``on_before_optimizer_step``, no second
    backward) and ``random`` (i.i.d. uniform scores from the callback's own seeded generator). Scores are deterministic
    functions of the weights and of the synchronised gradients, so every DDP rank removes the same units.

    The model keeps its shapes during training; :func:`~lightning_compress.pruning.structured.slim_model_` with
    :attr:`kept_neurons` / :attr:`kept_layers` slices it for real (``save_compressed(..., format="hf", slim=True)``).

    Args:
        final_sparsity: Fraction of units removed at the end of the schedule, in ``[0, 1)``; rounded half up to whole
            units at each event, and it may not round to every unit.
        unit: ``"ffn_neurons"`` or ``"layers"``.
        criterion: ``"magnitude"``, ``"taylor"`` or ``"random"``.
        schedule: ``"cubic"`` (Zhu & Gupta 2017), ``"iterative"`` (remove ``step_fraction`` of the remaining units per
            event) or ``"one_shot"`` (one event at ``start``).
        start, end: When events may happen: a float in ``[0, 1]`` is a fraction of the run's optimizer steps, an int
            an absolute optimizer step (as for :class:`~lightning_compress.callbacks.GradualMagnitudePruning`).
        every_n_steps: Optimizer steps between events (default 10 when ``every_n_epochs`` is not given).
        every_n_epochs: Epochs between events instead (``1``: one event per epoch, at epoch boundaries).
        targets: Regexes over block FQNs (``model.bert.encoder.layer.3``) choosing the layers that may be removed
            (``unit="layers"``); default every block of the model's ``encoder.layer`` list. ``unit="ffn_neurons"``
            prunes every block of the list (one ``intermediate_size``), so there ``targets`` must select all of them.
        step_fraction: Fraction of the remaining units removed per event by ``schedule="iterative"``.
        seed: Seed of the generator of ``criterion="random"``.
        frequency: Deprecated (removed in 0.2.0): ``frequency=n`` is ``every_n_steps=n``, ``frequency="epoch"`` is
            ``every_n_epochs=1``.

    Example::

        trainer = Trainer(max_epochs=3, callbacks=[StructuredPruning(final_sparsity=0.5, unit="ffn_neurons")])
        trainer.fit(module, datamodule)
    """

    def __init__(
        self,
        final_sparsity: float = 0.5,
        unit: Literal["ffn_neurons", "layers"] = "ffn_neurons",
        criterion: Literal["magnitude", "taylor", "random"] = "magnitude",
        schedule: Literal["cubic", "iterative", "one_shot"] = "cubic",
        start: int | float = 0.0,
        end: int | float = 0.75,
        every_n_steps: int | None = None,
        every_n_epochs: int | None = None,
        targets: str | list[str] | None = None,
        step_fraction: float = 0.1,
        seed: int = 0,
        frequency: int | Literal["epoch"] | None = None,
    ) -> None:
        super().__init__()
        name = "StructuredPruning"
        every_n_steps, every_n_epochs = resolve_cadence(name, every_n_steps, every_n_epochs, frequency)
        note = "the fraction of units removed; 1.0 would remove every unit"
        check_float(name, "final_sparsity", final_sparsity, 0.0, 1.0, high_inclusive=False, note=note)
        check_choice(name, "unit", unit, _UNITS)
        check_choice(name, "criterion", criterion, _CRITERIA)
        check_schedule_arguments(name, schedule, start, end, step_fraction)
        self.targets = check_patterns(name, "targets", targets)
        check_int(name, "seed", seed)
        self._init_schedule(final_sparsity, schedule, start, end, every_n_steps, every_n_epochs, step_fraction)
        self.unit = unit
        self.criterion = criterion
        self.seed = seed

        self.block_names: list[str] = []  # every block of the encoder list, in order
        self.candidate_names: list[str] = []  # the blocks whose units may be removed
        # `self.masks` (PruningSchedule): block FQN -> bool keep mask, `d_ff` for neurons, 0-dim for a layer
        self.history: list[tuple[int, float]] = []  # (step, measured removed fraction) per event
        #: block FQN -> Σ_t |z_t| since the last event (criterion="taylor")
        self.taylor_scores: dict[str, Tensor] = {}
        self.taylor_steps = 0
        self.generator = torch.Generator().manual_seed(seed)
        self._skip_handles: dict[str, RemovableHandle] = {}

    #: Resuming with other schedule settings keeps the removed units; see ``resume_rule``.
    resumable_settings = SCHEDULE_SETTINGS
    resume_rule = (
        "The removed units are kept and the schedule is recomputed with the new settings: only its events after the "
        "last saved event still remove units, and removed units never come back."
    )

    def checkpoint_settings(self) -> dict[str, Any]:
        """The constructor settings the removed units depend on (saved in the state, compared on resume)."""
        return {
            "unit": self.unit,
            "criterion": self.criterion,
            "targets": None if self.targets is None else list(self.targets),
            "seed": self.seed,
            **self.schedule_settings(),
        }

    # ------------------------------------------------------------------ hooks
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self.block_names, self.candidate_names = find_unit_blocks(pl_module, self.unit, self.targets)
        n_units = self._units_per_group(pl_module)
        n_removed = units_to_remove(self.final_sparsity, n_units)
        if n_removed >= n_units:
            raise ValueError(
                f"`StructuredPruning(final_sparsity={self.final_sparsity}, unit={self.unit!r})` is invalid for this "
                f"model: it would remove all {n_units} {_UNITS[self.unit]}s (rounded to whole units); expected a "
                f"final_sparsity below {(n_units - 0.5) / n_units:.4g}."
            )
        self._sync_layer_skips(pl_module)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._sync_layer_skips(pl_module)  # masks restored from a checkpoint, before the sanity validation

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self.events = self._compute_events(trainer)
        self._check_gradient_schedule(_CRITERIA[self.criterion], self.criterion)
        missing = [name for name in {**self.masks, **self.taylor_scores} if name not in self.block_names]
        if missing:
            raise RuntimeError(
                f"StructuredPruning: the checkpoint has state for encoder blocks the model lacks: {missing[:5]}; the "
                f"model's blocks are {self.block_names[:5]}."
            )
        device = self._device(pl_module)
        self.masks = {name: mask.to(device) for name, mask in self.masks.items()}
        self.taylor_scores = {name: score.to(device) for name, score in self.taylor_scores.items()}
        self._apply_masks(pl_module)
        self._sync_layer_skips(pl_module)

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        if self.masks and self.unit == "ffn_neurons":
            self._apply_masks(pl_module, grads=True)
        if _CRITERIA[self.criterion] and any(event.step > trainer.global_step for event in self.events):
            self._accumulate_taylor(pl_module)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Slice removed layers out of the model, so that after ``fit`` it computes what was trained without hooks
        (and ``save_compressed`` writes it as it is)."""
        if self.unit != "layers" or not self.masks:
            return
        kept = self.kept_layers
        self._remove_layer_skips()
        if len(kept) < len(self.masks):
            _, hf_model = find_hf_model(pl_module, type(self).__name__)
            slice_layers_(hf_model, kept)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._remove_layer_skips()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._remove_layer_skips()

    # ------------------------------------------------------------------ logic
    def _units_per_group(self, pl_module: LightningModule) -> int:
        if self.unit == "layers":
            return len(self.candidate_names)
        return dict(pl_module.named_modules())[f"{self.block_names[0]}.intermediate.dense"].out_features

    @torch.no_grad()
    def _prune(self, trainer: Trainer, pl_module: LightningModule, index: int, event: PruningEvent) -> None:
        n_units = self._units_per_group(pl_module)
        n_remove = units_to_remove(event.sparsity, n_units)
        names = self.block_names if self.unit == "ffn_neurons" else self.candidate_names
        scores = self._scores(pl_module, names)
        previous = torch.stack([self.masks[name] for name in names]).cpu() if self.masks else None
        keep = select_units(scores.cpu(), n_remove, previous)
        device = self._device(pl_module)
        if self.unit == "ffn_neurons":
            self.masks = {name: keep[i].to(device) for i, name in enumerate(names)}
        else:
            self.masks = {name: torch.tensor(True, device=device) for name in self.block_names}
            self.masks.update({name: keep[i].to(device) for i, name in enumerate(names)})
        self._apply_masks(pl_module)
        self._sync_layer_skips(pl_module)
        self.last_event_step = event.step
        self.taylor_scores, self.taylor_steps = {}, 0
        fraction = self.removed_fraction
        self.history.append((event.step, fraction))
        pl_module.log(
            "compress/structured_pruning/sparsity", fraction, on_step=True, on_epoch=False, rank_zero_only=True
        )
        rank_zero_info(
            f"StructuredPruning: step {event.step}, {_UNITS[self.unit]}s, target fraction {event.sparsity:.4f}, "
            f"removed {fraction:.4f}"
        )

    def _scores(self, pl_module: LightningModule, names: list[str]) -> Tensor:
        """Scores of the units of ``names``: `L x d_ff` for neurons, `L` for layers (lowest removed first)."""
        if self.criterion == "random":
            shape = (len(names), self._units_per_group(pl_module)) if self.unit == "ffn_neurons" else (len(names),)
            return random_unit_scores(shape, self.generator)
        if self.criterion == "taylor":
            missing = torch.zeros(self._units_per_group(pl_module)) if self.unit == "ffn_neurons" else torch.zeros(())
            return torch.stack([self.taylor_scores.get(name, missing).float().cpu() for name in names])
        params = named_parameters(pl_module)
        if self.unit == "ffn_neurons":
            return torch.stack([neuron_magnitude_scores(*ffn_parameters(params, name)).cpu() for name in names])
        modules = dict(pl_module.named_modules())
        return layer_magnitude_scores(
            [[sub.weight for sub in modules[name].modules() if isinstance(sub, nn.Linear)] for name in names]
        )

    @torch.no_grad()
    def _accumulate_taylor(self, pl_module: LightningModule) -> None:
        params = named_parameters(pl_module)
        if self.unit == "ffn_neurons":
            for name in self.block_names:
                up, bias, down = ffn_parameters(params, name)
                z = neuron_taylor_contributions(up, up.grad, bias, None if bias is None else bias.grad, down, down.grad)
                self._add_taylor(name, z.abs())
        else:
            groups = [
                [(p, p.grad) for n, p in params.items() if n.startswith(f"{name}.")] for name in self.candidate_names
            ]
            for name, z in zip(self.candidate_names, layer_taylor_contributions(groups)):
                self._add_taylor(name, z.abs())
        self.taylor_steps += 1

    def _add_taylor(self, name: str, value: Tensor) -> None:
        if name in self.taylor_scores:
            self.taylor_scores[name].add_(value.to(self.taylor_scores[name].device))
        else:
            self.taylor_scores[name] = value.clone()

    def _apply_masks(self, pl_module: LightningModule, grads: bool = False) -> None:
        if self.unit == "ffn_neurons" and self.masks:
            mask_ffn_blocks_(named_parameters(pl_module), self.masks, grads)

    def _sync_layer_skips(self, pl_module: LightningModule) -> None:
        """Register :func:`skip_layer_` on every removed block that lacks it (idempotent)."""
        if self.unit != "layers" or not self.masks:
            return
        modules = dict(pl_module.named_modules())
        for name, keep in self.masks.items():
            if not bool(keep) and name not in self._skip_handles:
                self._skip_handles[name] = skip_layer_(modules[name])

    def _remove_layer_skips(self) -> None:
        for handle in self._skip_handles.values():
            handle.remove()
        self._skip_handles = {}

    @staticmethod
    def _device(pl_module: LightningModule) -> torch.device:
        return next(pl_module.parameters()).device

    # ------------------------------------------------------------------ results and state
    @property
    def removed_fraction(self) -> float:
        """Measured fraction of removed units (neurons over all blocks, or layers over the candidate layers)."""
        return removed_unit_fraction(self.masks, self.unit, self.candidate_names)

    @property
    def kept_neurons(self) -> dict[int, Tensor] | None:
        """Layer index -> kept neuron indices (``unit="ffn_neurons"``, after an event), for ``slim_model_``."""
        return kept_neurons_from_masks(self.masks) if self.unit == "ffn_neurons" and self.masks else None

    @property
    def kept_layers(self) -> list[int] | None:
        """Indices of the kept layers (``unit="layers"``, after an event), for ``slim_model_``."""
        return kept_layers_from_masks(self.masks) if self.unit == "layers" and self.masks else None

    def state_dict(self) -> dict[str, Any]:
        return {
            "settings": self.checkpoint_settings(),
            "unit": self.unit,
            **self._event_state(),
            "history": list(self.history),
            "taylor_scores": {name: score.cpu() for name, score in self.taylor_scores.items()},
            "taylor_steps": self.taylor_steps,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.check_resumed_settings(state_dict)
        unit = state_dict.get("unit", self.unit)
        if unit != self.unit:
            raise RuntimeError(f"StructuredPruning(unit={self.unit!r}) cannot resume a unit={unit!r} state.")
        self._load_event_state(state_dict)
        self.history = [tuple(item) for item in state_dict.get("history", [])]
        self.taylor_scores = {name: score.float() for name, score in state_dict.get("taylor_scores", {}).items()}
        self.taylor_steps = int(state_dict.get("taylor_steps", 0))
        if "generator" in state_dict:
            self.generator.set_state(state_dict["generator"])
