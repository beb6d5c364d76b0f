"""Shared LightningModule logic for fine-tuning Hugging Face models on a :class:`TaskSpec`.

:class:`TransformerTaskModule` owns what the sequence and token classification modules have in
common: argument validation, loading through :func:`~lightning_compress.hub.resolve_pretrained`,
batch filtering, the AdamW + linear warm-up/decay recipe, and the per-evaluation-set metric
bookkeeping behind the logged names of ``docs/architecture.md``:

* ``train/loss`` every step;
* one evaluation set: ``val/<metric>`` and ``val/loss``;
* several sets (``task_spec.eval_names``, one per dataloader): ``val/<name>/<metric>`` and
  ``val/<name>/loss`` per set, ``val/avg/<metric>`` (mean over sets), ``val/avg_zero_shot/<metric>``
  (mean over sets not named ``"en"``) and ``val/loss`` (over all examples);
* the same under ``test/`` for ``trainer.test``.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric, MetricCollection
from transformers import get_linear_schedule_with_warmup

from lightning_compress.callbacks._resume import apply_pending_loader_state
from lightning_compress.callbacks.finite_guard import NonFiniteGuard
from lightning_compress.hub import DEFAULT_PRETRAINED, resolve_pretrained
from lightning_compress.models.metrics import build_metric_collections
from lightning_compress.tasks import TaskSpec

__all__ = ["EVAL_STAGES", "ZERO_SHOT_EXCLUDED", "TransformerTaskModule", "task_spec_from_dict", "task_spec_to_dict"]

#: Evaluation stages that get their own metrics and logged-name prefix.
EVAL_STAGES: tuple[str, ...] = ("val", "test")

#: Evaluation-set name left out of the ``avg_zero_shot`` mean (the fine-tuning language).
ZERO_SHOT_EXCLUDED = "en"

#: Batch keys documented by the batch contract, used when a model's ``forward`` only takes ``**kwargs``.
_CONTRACT_MODEL_KEYS = frozenset({"input_ids", "attention_mask", "token_type_ids", "labels"})


#: Checkpoint key of the random state saved by :class:`TransformerTaskModule`.
RNG_STATE_KEY = "lightning_compress_rng_state"


def task_spec_to_dict(spec: TaskSpec) -> dict[str, Any]:
    """Plain-dict form of ``spec`` (tuples as lists), safe for YAML and ``torch.load(weights_only=True)``."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(spec).items()}


def task_spec_from_dict(data: Mapping[str, Any]) -> TaskSpec:
    """Inverse of :func:`task_spec_to_dict`: sequences become tuples again so that specs compare equal."""
    known = {f.name for f in fields(TaskSpec)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"Unknown TaskSpec field(s) {sorted(unknown)}; expected fields among {sorted(known)}.")
    values = {key: tuple(value) if isinstance(value, (list, tuple)) else value for key, value in data.items()}
    return TaskSpec(**values)


def _invalid(owner: str, name: str, value: object, expected: str) -> str:
    return f"`{owner}({name}={value!r})` is invalid: expected {expected}."


def _check_float(
    owner: str, name: str, value: object, *, low: float, high: float = math.inf, low_open: bool, high_open: bool = True
) -> float:
    """Validate a real-valued argument within an interval and return it as ``float``."""
    if low_open and high == math.inf:
        expected = f"a float > {low:g}"
    elif high == math.inf:
        expected = f"a float >= {low:g}"
    else:
        expected = f"a float in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(_invalid(owner, name, value, expected))
    number = float(value)
    too_low = number <= low if low_open else number < low
    too_high = number >= high if high_open else number > high
    if math.isnan(number) or too_low or too_high:
        raise ValueError(_invalid(owner, name, value, expected))
    return number


class TransformerTaskModule(pl.LightningModule):
    """Base LightningModule: a Hugging Face ``AutoModelFor...`` head fine-tuned on the task of a :class:`TaskSpec`.

    Subclasses set :attr:`auto_model_class` and :attr:`task_kinds` and implement
    :meth:`default_task_spec` and :meth:`predictions`; everything else (validation, loading,
    optimisation, metrics and logging) lives here so that the modules behave identically.

    Args:
        pretrained: Hugging Face hub id or local model folder, resolved with
            :func:`~lightning_compress.hub.resolve_pretrained` (offline for packaged models).
        task_spec: Task description from the DataModule (the CLI links ``data.task_spec``). Its
            plain-dict form (as stored in checkpoints) is accepted too. ``None`` builds a default
            task from ``num_labels`` (see :meth:`default_task_spec`).
        num_labels: Number of labels when ``task_spec`` is ``None``; ignored otherwise.
        lr: Peak learning rate of AdamW, reached at the end of warm-up.
        weight_decay: AdamW weight decay, not applied to biases and normalisation weights.
        warmup_fraction: Fraction of the optimizer steps spent warming the learning rate up from 0;
            it then decays linearly to 0 at the last step.
        adam_eps: AdamW epsilon.
        classifier_dropout: Dropout before the classification head, for architectures whose config
            reads ``classifier_dropout`` (BERT, RoBERTa...); ``None`` keeps the model's default.
        freeze_word_embeddings: Keep the input word embeddings at their pretrained values (no gradient, no optimizer
            state): on a small model they are most of the parameters (52 % of MiniLM-L6, 80 % of multilingual-e5-small),
            so freezing them makes each optimizer step much cheaper and keeps the multilingual vocabulary aligned.
    """

    #: ``transformers`` auto class that builds the model with its task head.
    auto_model_class: ClassVar[Any]
    #: Task kinds (``TaskSpec.kind``) the module can train.
    task_kinds: ClassVar[tuple[str, ...]]

    def __init__(
        self,
        pretrained: str = DEFAULT_PRETRAINED,
        task_spec: TaskSpec | None = None,
        num_labels: int = 2,
        lr: float = 2e-5,
        weight_decay: float = 0.01,
        warmup_fraction: float = 0.1,
        adam_eps: float = 1e-8,
        classifier_dropout: float | None = None,
        freeze_word_embeddings: bool = False,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        if not isinstance(pretrained, (str, os.PathLike)):
            raise TypeError(_invalid(owner, "pretrained", pretrained, "a hub id or a local folder (str)"))
        pretrained = os.fspath(pretrained)
        if not pretrained.strip():
            raise ValueError(_invalid(owner, "pretrained", pretrained, "a non-empty hub id or local folder"))
        if isinstance(num_labels, bool) or not isinstance(num_labels, int):
            raise TypeError(_invalid(owner, "num_labels", num_labels, "an int >= 1"))
        if num_labels < 1:
            raise ValueError(_invalid(owner, "num_labels", num_labels, "an int >= 1"))
        lr = _check_float(owner, "lr", lr, low=0.0, low_open=True)
        weight_decay = _check_float(owner, "weight_decay", weight_decay, low=0.0, low_open=False)
        warmup_fraction = _check_float(
            owner, "warmup_fraction", warmup_fraction, low=0.0, high=1.0, low_open=False, high_open=False
        )
        adam_eps = _check_float(owner, "adam_eps", adam_eps, low=0.0, low_open=True)
        if classifier_dropout is not None:
            classifier_dropout = _check_float(
                owner, "classifier_dropout", classifier_dropout, low=0.0, high=1.0, low_open=False
            )
        if not isinstance(freeze_word_embeddings, bool):
            raise TypeError(_invalid(owner, "freeze_word_embeddings", freeze_word_embeddings, "a bool"))
        spec = self._resolve_task_spec(task_spec, num_labels)

        #: The task being trained (always a :class:`TaskSpec`, whatever form was passed).
        self.task_spec: TaskSpec = spec
        # Store the spec as a plain dict: checkpoints then load with `torch.load(weights_only=True)`
        # and hparams.yaml stays plain YAML. `save_hyperparameters` reads the *current* local values.
        task_spec = task_spec_to_dict(spec)  # type: ignore[assignment]
        self.save_hyperparameters()

        # Metrics first: a task naming an unknown metric fails before the model is loaded.
        #: Stage -> one MetricCollection per evaluation set (index = dataloader_idx).
        try:
            self.eval_metrics = nn.ModuleDict({stage: build_metric_collections(spec) for stage in EVAL_STAGES})
        except ValueError as error:
            raise ValueError(_invalid(owner, "task_spec", spec, f"metrics that apply to the task ({error})")) from None
        #: Stage -> mean loss per evaluation set.
        self.eval_losses = nn.ModuleDict(
            {stage: nn.ModuleList(MeanMetric() for _ in spec.eval_names) for stage in EVAL_STAGES}
        )
        #: Stage -> mean loss over all evaluation sets (logged as ``<stage>/loss``).
        self.eval_total_loss = nn.ModuleDict({stage: MeanMetric() for stage in EVAL_STAGES})

        #: The Hugging Face model with its head; parameter names start with ``model.``.
        self.model = self.auto_model_class.from_pretrained(
            resolve_pretrained(pretrained), **self.model_kwargs(spec, classifier_dropout)
        )
        # `from_pretrained` returns the model in eval mode and Lightning (>= 2.2) keeps submodule
        # modes during fit, so dropout would silently stay off: put it in train mode now (and again
        # in `on_fit_start`, in case the module was switched to eval in between).
        self.model.train()
        if freeze_word_embeddings:
            self.model.get_input_embeddings().weight.requires_grad_(False)
        self._model_input_names = self._forward_argument_names(self.model)
        #: Stops ``fit`` with a ``FloatingPointError`` on a non-finite training loss or weight (checked at the
        #: logging cadence and at the end of training), with or without the project's callbacks.
        self.non_finite_guard = NonFiniteGuard()

    # ------------------------------------------------------------------ task and model construction

    @classmethod
    def default_task_spec(cls, num_labels: int) -> TaskSpec:
        """Task used when no ``task_spec`` is given (e.g. a module built outside the CLI)."""
        raise NotImplementedError

    def model_kwargs(self, spec: TaskSpec, classifier_dropout: float | None) -> dict[str, Any]:
        """Keyword arguments for ``auto_model_class.from_pretrained``: label space and head options.

        ``ignore_mismatched_sizes=True`` lets a checkpoint fine-tuned with another label count be
        used as a starting point: its head is re-initialised (and reported by ``transformers``).
        """
        kwargs: dict[str, Any] = {"num_labels": spec.num_labels, "ignore_mismatched_sizes": True}
        if len(spec.label_names) == spec.num_labels:
            kwargs["id2label"] = dict(enumerate(spec.label_names))
            kwargs["label2id"] = {label: i for i, label in enumerate(spec.label_names)}
        if classifier_dropout is not None:
            kwargs["classifier_dropout"] = classifier_dropout
        return kwargs

    def _resolve_task_spec(self, task_spec: TaskSpec | Mapping[str, Any] | None, num_labels: int) -> TaskSpec:
        owner = type(self).__name__
        if task_spec is None:
            spec = self.default_task_spec(num_labels)
        elif isinstance(task_spec, TaskSpec):
            spec = task_spec
        elif isinstance(task_spec, Mapping):
            try:
                spec = task_spec_from_dict(task_spec)
            except TypeError as error:
                raise ValueError(_invalid(owner, "task_spec", task_spec, f"a complete TaskSpec ({error})")) from None
        else:
            raise TypeError(_invalid(owner, "task_spec", task_spec, "a TaskSpec, its dict form, or None"))
        if spec.kind not in self.task_kinds:
            raise ValueError(
                _invalid(owner, "task_spec", spec, f"a task of kind {' or '.join(map(repr, self.task_kinds))}")
            )
        if spec.kind == "regression" and spec.num_labels != 1:
            raise ValueError(_invalid(owner, "task_spec", spec, "num_labels=1 for a regression task"))
        if spec.kind != "regression" and spec.num_labels < 2:
            raise ValueError(_invalid(owner, "task_spec", spec, "num_labels >= 2 for a classification task"))
        if not spec.eval_names:
            raise ValueError(_invalid(owner, "task_spec", spec, "at least one evaluation set name"))
        if len(spec.eval_names) > 1 and (len(set(spec.eval_names)) != len(spec.eval_names) or "" in spec.eval_names):
            raise ValueError(_invalid(owner, "task_spec", spec, "distinct, non-empty evaluation set names"))
        if spec.label_names and len(spec.label_names) != spec.num_labels:
            raise ValueError(_invalid(owner, "task_spec", spec, "one label name per label, or none"))
        return spec

    @staticmethod
    def _forward_argument_names(model: nn.Module) -> frozenset[str]:
        """Names of the batch keys that ``model.forward`` accepts explicitly."""
        parameters = inspect.signature(model.forward).parameters.values()
        named = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"}
        return frozenset(named) if named else _CONTRACT_MODEL_KEYS

    # ------------------------------------------------------------------ forward and steps

    def forward(self, batch: Mapping[str, Tensor]) -> Any:
        """Run the Hugging Face model on a dict batch, passing only the keys it accepts (``idx`` is dropped).

        Returns the model output (``loss`` when the batch has ``labels``, and ``logits``).
        """
        inputs = {key: value for key, value in batch.items() if key in self._model_input_names}
        labels = inputs.get("labels")
        if labels is not None and self.task_spec.kind == "regression" and not labels.is_floating_point():
            inputs["labels"] = labels.float()
        return self.model(**inputs)

    def predictions(self, logits: Tensor) -> Tensor:
        """Decode logits into what the metrics compare with ``labels`` (class ids, or values)."""
        raise NotImplementedError

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        """Return the model's loss on ``batch`` and log it as ``train/loss``."""
        loss = self._loss(self(batch))
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=self._batch_size(batch))
        return loss

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        """Update the loss and metrics of evaluation set ``dataloader_idx``; values are logged at epoch end."""
        self._evaluation_step("val", batch, dataloader_idx)

    def test_step(self, batch: Mapping[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        """Same as :meth:`validation_step`, for ``trainer.test``."""
        self._evaluation_step("test", batch, dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        """Log ``val/...`` metrics (see the module docstring) and reset them."""
        self._log_evaluation("val")

    def on_test_epoch_end(self) -> None:
        """Log ``test/...`` metrics and reset them."""
        self._log_evaluation("test")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep ``task_spec`` a plain dict in checkpoints and save the CPU random state.

        Lightning checkpoints do not hold the global RNG state, so a resumed run would draw different dropout
        masks than the uninterrupted one; restoring it in :meth:`on_load_checkpoint` makes resume exact.
        """
        hparams = checkpoint.get(self.CHECKPOINT_HYPER_PARAMS_KEY)
        if isinstance(hparams, dict) and isinstance(hparams.get("task_spec"), TaskSpec):
            hparams["task_spec"] = task_spec_to_dict(hparams["task_spec"])
        checkpoint[RNG_STATE_KEY] = _random_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the random state saved by :meth:`on_save_checkpoint` (absent in older checkpoints)."""
        state = checkpoint.get(RNG_STATE_KEY)
        if state is not None:
            _set_random_state(state)

    def on_validation_start(self) -> None:
        """Set the random state aside: evaluation (its loader draws a seed) must not shift the training stream.

        A checkpoint taken at the last batch of an epoch is written before that epoch's validation, and the resumed
        run does not repeat it; with the state put back in :meth:`on_validation_end`, both runs draw the same dropout
        masks afterwards. A subclass that overrides either hook must call ``super()``.
        """
        self._random_state_before_evaluation = _random_state()

    def on_validation_end(self) -> None:
        """Put back the random state of :meth:`on_validation_start`."""
        state = getattr(self, "_random_state_before_evaluation", None)
        if state is not None:
            _set_random_state(state)
            self._random_state_before_evaluation = None

    def on_fit_start(self) -> None:
        """Make sure every submodule (dropout included) trains in train mode; see ``__init__``."""
        self.train()

    def on_before_backward(self, loss: Tensor) -> None:
        """Keep the loss for the non-finite check (:class:`~lightning_compress.callbacks.finite_guard.NonFiniteGuard`).

        A subclass that overrides this hook, ``on_train_batch_end`` or ``on_train_end`` must call ``super()``.
        """
        self.non_finite_guard.on_before_backward(self.trainer, self, loss)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Stop the fit at a logging step whose losses or weights are not finite (``FloatingPointError``)."""
        self.non_finite_guard.on_train_batch_end(self.trainer, self)

    def on_train_end(self) -> None:
        """Stop the fit if a loss since the last logging step, or a weight, is not finite (``FloatingPointError``)."""
        self.non_finite_guard.on_train_end(self.trainer, self)

    @staticmethod
    def _batch_size(batch: Mapping[str, Tensor]) -> int:
        return int(batch["input_ids"].shape[0])

    @staticmethod
    def _loss(output: Any) -> Tensor:
        loss = getattr(output, "loss", None)
        if loss is None:
            raise ValueError("The model returned no loss: the batch needs a `labels` entry (see docs/architecture.md).")
        return loss

    def _evaluation_step(self, stage: str, batch: Mapping[str, Tensor], dataloader_idx: int) -> None:
        names = self.task_spec.eval_names
        if not 0 <= dataloader_idx < len(names):
            raise ValueError(
                f"{stage} dataloader {dataloader_idx} has no evaluation set name: task {self.task_spec.name!r} "
                f"names {len(names)} set(s) {names}; the DataModule must yield one dataloader per name."
            )
        output = self(batch)
        target = batch["labels"]
        preds = self.predictions(output.logits.detach())
        collection: MetricCollection = self.eval_metrics[stage][dataloader_idx]
        collection.update(preds, target)
        loss = self._loss(output).detach()
        weight = self._batch_size(batch)
        self.eval_losses[stage][dataloader_idx].update(loss, weight=weight)
        self.eval_total_loss[stage].update(loss, weight=weight)

    def _log_evaluation(self, stage: str) -> None:
        spec = self.task_spec
        main = spec.metrics[0]
        several = len(spec.eval_names) > 1
        values: dict[str, Tensor] = {}
        per_set: dict[str, dict[str, Tensor]] = {}
        for name, collection, loss in zip(spec.eval_names, self.eval_metrics[stage], self.eval_losses[stage]):
            # Sets without any batch (limit_*_batches, fewer dataloaders) are skipped rather than logged as 0.
            if loss.update_called:
                per_set[name] = {metric: value for metric, value in collection.compute().items()}
                if several:
                    values[f"{stage}/{name}/loss"] = loss.compute()
                    values.update({f"{stage}/{name}/{metric}": v for metric, v in per_set[name].items()})
            collection.reset()
            loss.reset()
        total = self.eval_total_loss[stage]
        if total.update_called:
            values[f"{stage}/loss"] = total.compute()
        total.reset()
        if not several:
            values.update({f"{stage}/{metric}": v for results in per_set.values() for metric, v in results.items()})
        else:
            groups = {"avg": list(per_set), "avg_zero_shot": [n for n in per_set if n != ZERO_SHOT_EXCLUDED]}
            for group, members in groups.items():
                if not members:
                    continue
                for metric in spec.metrics:
                    values[f"{stage}/{group}/{metric}"] = torch.stack(
                        [per_set[n][metric].float() for n in members]
                    ).mean()
        main_name = f"{stage}/avg/{main}" if several else f"{stage}/{main}"
        for key, value in values.items():
            # Values are already reduced across processes by torchmetrics; sync_dist keeps Lightning's
            # epoch-level logging consistent (and silent) under DDP at the cost of one all-reduce each.
            self.log(key, value, sync_dist=True, prog_bar=key == main_name)

    # ------------------------------------------------------------------ optimisation

    def parameter_groups(self) -> list[dict[str, Any]]:
        """AdamW parameter groups: weight decay on weights, none on biases and normalisation weights.

        Same rule as the Hugging Face ``Trainer``: parameters named ``*bias`` and parameters of
        normalisation layers (``nn.LayerNorm`` or a class whose name contains ``Norm``) go to the
        group with ``weight_decay=0``. Frozen parameters are left out.
        """
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        seen: set[int] = set()
        for module in self.modules():
            is_norm = isinstance(module, nn.LayerNorm) or "Norm" in type(module).__name__
            for name, parameter in module.named_parameters(recurse=False):
                if not parameter.requires_grad or id(parameter) in seen:
                    continue
                seen.add(id(parameter))
                (no_decay if is_norm or name.endswith("bias") else decay).append(parameter)
        return [
            {"params": decay, "weight_decay": self.hparams.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]

    def on_train_start(self) -> None:
        """Apply a mid-epoch loader position Lightning left pending because the warm-up schedule of
        :meth:`configure_optimizers` asked for ``estimated_stepping_batches`` before the checkpoint's loop state was
        loaded (:func:`~lightning_compress.callbacks._resume.apply_pending_loader_state`)."""
        apply_pending_loader_state(self.trainer)

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW with linear warm-up over ``warmup_fraction`` of the steps, then linear decay to 0.

        The step count is ``trainer.estimated_stepping_batches`` (accounts for epochs, gradient
        accumulation and devices); the scheduler steps every optimizer step.
        """
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total) or total < 1:
            raise ValueError(
                f"Cannot schedule the learning rate over {total} steps: set `max_steps` or `max_epochs` "
                "with a sized train dataloader."
            )
        total = int(total)
        warmup = math.ceil(self.hparams.warmup_fraction * total)
        optimizer = torch.optim.AdamW(self.parameter_groups(), lr=self.hparams.lr, eps=self.hparams.adam_eps)
        scheduler = get_linear_schedule_with_warmup(optimizer, num_warmup_steps=warmup, num_training_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}


def _random_state() -> dict[str, Any]:
    """The global CPU (and initialised CUDA) random state."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_random_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
