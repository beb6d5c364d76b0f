"""Forward hooks that record what the distillation callbacks compare: :class:`DistillationTaps` (BinaryBERT's, on the
student and on a frozen teacher) and :class:`OutputCapture` (the logits and [CLS] vector of self-distilled pruning)."""

from __future__ import annotations

import re
from collections import deque
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from lightning_compress.distillation.losses import output_logits

#: Module names whose outputs intermediate-layer distillation compares (Bai Eq. 5.10): the embeddings, each block's
#: attention and each block.
_EMBEDDINGS = r"(^|\.)embeddings$"
_ATTENTION = r"(^|\.)encoder\.layers?\.\d+\.attention$"
_LAYER = r"(^|\.)encoder\.layers?\.\d+$"


class DistillationTaps:
    """Record the student's logits and intermediate outputs, and run the teacher on the same inputs.

    A forward hook on the student model runs the teacher (under ``no_grad``) on the student's own ``args`` and
    ``kwargs``, so the user's ``training_step`` is unchanged. Nothing is recorded unless :attr:`active` (a training
    step is running) and the student is in train mode; intermediate outputs only while :attr:`intermediate`, the
    student's inputs (detached, into :attr:`inputs`) only while :attr:`record_inputs`.

    Args:
        student: The model being trained.
        teacher: The frozen reference, or ``None`` (then only the inputs are recorded).
        inputs: Where the student's inputs are appended while :attr:`record_inputs`.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module | None, inputs: deque) -> None:
        self.student, self.teacher, self.inputs = student, teacher, inputs
        self.active = self.intermediate = self.record_inputs = False
        self.student_outputs: dict[str, Tensor] = {}
        self.teacher_outputs: dict[str, Tensor] = {}
        self.student_logits: Tensor | None = None
        self.teacher_logits: Tensor | None = None
        self._teacher_running = False
        self.handles: list[RemovableHandle] = []

    def attach(self) -> None:
        """Register the forward hooks (once)."""
        if self.handles:
            return
        self.handles.append(self.student.register_forward_hook(self._student_hook, with_kwargs=True))
        for name, module in distilled_modules(self.student).items():
            self.handles.append(module.register_forward_hook(self._recorder(self.student_outputs, name, False)))
        if self.teacher is not None:
            for name, module in distilled_modules(self.teacher).items():
                self.handles.append(module.register_forward_hook(self._recorder(self.teacher_outputs, name, True)))

    def remove(self) -> None:
        """Remove the forward hooks and drop the records."""
        self.active = False
        self.clear()
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def clear(self) -> None:
        self.student_outputs.clear()
        self.teacher_outputs.clear()
        self.student_logits = self.teacher_logits = None

    def _recorder(self, store: dict[str, Tensor], name: str, teacher: bool):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if teacher != self._teacher_running or not self.active or not self.intermediate:
                return
            if not teacher and not module.training:
                return
            store[name] = output[0] if isinstance(output, tuple) else output

        return hook

    def _student_hook(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        if not self.active or not module.training:
            return
        if self.record_inputs:
            self.inputs.append(_detached((args, kwargs)))
        if self.teacher is None:
            return
        self.student_logits = output_logits(output, "TernaryWeightSplitting")
        self._teacher_running = True
        try:
            with torch.no_grad():
                self.teacher_logits = output_logits(self.teacher(*args, **kwargs), "TernaryWeightSplitting")
        finally:
            self._teacher_running = False


class OutputCapture:
    """Forward hooks that keep the inputs, logits and last-hidden [CLS] vector of a model's latest call while active.

    Args:
        model: A Hugging Face model with a task head (its ``base_model`` is another module).
        inputs: Also keep the call's ``args`` and ``kwargs`` (without ``labels``), to run a teacher on them.
        owner: The callback errors name.
    """

    def __init__(self, model: nn.Module, inputs: bool, owner: str = "SelfDistilledPruning") -> None:
        self.active = False
        self.owner = owner
        self.args: tuple = ()
        self.kwargs: dict[str, Any] = {}
        self.logits: Tensor | None = None
        self.features: Tensor | None = None
        base = getattr(model, "base_model", None)
        if base is None or base is model:
            raise ValueError(
                f"`{owner}` needs a Hugging Face model with a task head (logits), got {type(model).__name__}."
            )
        self.handles: list[RemovableHandle] = [
            model.register_forward_hook(self._output_hook),
            base.register_forward_hook(self._base_hook),
        ]
        if inputs:
            self.handles.append(model.register_forward_pre_hook(self._input_hook, with_kwargs=True))

    def _input_hook(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        if self.active:
            self.args, self.kwargs = args, {key: value for key, value in kwargs.items() if key != "labels"}

    def _output_hook(self, module: nn.Module, args: tuple, output: Any) -> None:
        if self.active:
            logits = getattr(output, "logits", None)
            if logits is None:
                raise ValueError(
                    f"`{self.owner}` reads `logits` from the output of {type(module).__name__}, which has none."
                )
            self.logits = logits

    def _base_hook(self, module: nn.Module, args: tuple, output: Any) -> None:
        if self.active:
            hidden = output[0]  # last_hidden_state of ModelOutput or tuple outputs
            # [CLS] / first token (docs/methods.md#sdp-hyperparameters, docs/methods.md#representation-for-token-tasks)
            self.features = hidden[:, 0]

    def clear(self) -> None:
        self.args, self.kwargs, self.logits, self.features = (), {}, None, None

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []


def distilled_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The embeddings, attention and block modules of a BERT-like model (by name)."""
    return {
        name: module
        for name, module in model.named_modules()
        if re.search(_EMBEDDINGS, name) or re.search(_ATTENTION, name) or re.search(_LAYER, name)
    }


def _detached(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, (tuple, list)):
        return type(value)(_detached(v) for v in value)
    if isinstance(value, dict):
        return {key: _detached(v) for key, v in value.items()}
    return value
