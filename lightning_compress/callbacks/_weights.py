"""Locate the Hugging Face model inside a LightningModule, and read weights saved by Lightning or Hugging Face."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from pytorch_lightning import LightningModule
from torch import Tensor, nn

from lightning_compress.checkpoints import load_checkpoint
from lightning_compress.validation import format_value, invalid

#: What a ``teacher`` argument may be, as error messages say it.
TEACHER_KINDS = "a module (nn.Module or LightningModule), a Lightning checkpoint path or a Hugging Face model folder"


def find_hf_model(pl_module: LightningModule, owner: str, required: bool = True) -> tuple[str, nn.Module]:
    """The outermost ``transformers.PreTrainedModel`` inside ``pl_module``, with its FQN prefix (``"model"``).

    Without one, ``required=False`` returns ``("", pl_module)`` (methods that also work on plain modules) and
    ``required=True`` raises a ``ValueError`` naming ``owner``.
    """
    from transformers import PreTrainedModel

    for name, module in pl_module.named_modules():
        if isinstance(module, PreTrainedModel):
            return name, module
    if not required:
        return "", pl_module
    raise ValueError(
        f"`{owner}` reads logits and hidden states from a Hugging Face model, but {type(pl_module).__name__} holds no "
        "`transformers.PreTrainedModel`. HINT: keep the model as a submodule (e.g. `self.model = "
        "AutoModelForSequenceClassification.from_pretrained(...)`)."
    )


def module_state_from_path(
    path: str, pl_module: LightningModule, owner: str, argument: str, trust_checkpoint: bool = False
) -> dict[str, Tensor]:
    """Weights in ``pl_module``'s namespace from a Lightning checkpoint or a Hugging Face model folder.

    A checkpoint's ``state_dict`` is returned as is (its keys are FQNs of the LightningModule); it is read by
    :func:`~lightning_compress.checkpoints.load_checkpoint`, weights-only unless ``trust_checkpoint``. A folder is
    loaded with ``from_pretrained`` of the class of the module's Hugging Face model (same architecture required) and
    its keys get that model's prefix.
    """
    location = Path(path).expanduser()
    if location.is_file():
        checkpoint = load_checkpoint(
            location,
            trust_checkpoint=trust_checkpoint,
            source=f"`{owner}({argument}={path!r})`",
            trust_hint=f"`{owner}(..., trust_checkpoint=True)`",
        )
        state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
        if not isinstance(state, dict):
            raise ValueError(
                f"`{owner}({argument}={path!r})` is invalid: the file is not a Lightning checkpoint (no `state_dict`)."
            )
        return state
    if location.is_dir():
        prefix, hf_model = find_hf_model(pl_module, owner)
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(location)
        student = hf_model.config
        if config.model_type != student.model_type:
            raise ValueError(
                f"`{owner}({argument}={path!r})` is a {config.model_type!r} model but the module trains a "
                f"{student.model_type!r} model; the architectures must match."
            )
        loaded = type(hf_model).from_pretrained(location, num_labels=config.num_labels)
        return {f"{prefix}.{key}" if prefix else key: value for key, value in loaded.state_dict().items()}
    raise FileNotFoundError(
        f"`{owner}({argument}={path!r})` is invalid: no such file or folder; expected a Lightning checkpoint (.ckpt) "
        "or a Hugging Face model folder."
    )


def check_teacher(owner: str, argument: str, value: Any, allow_none: bool = True, extra: str = "") -> None:
    """Require ``value`` to be a module, a non-empty path (``str`` or ``os.PathLike``), ``extra`` or ``None``.

    Raises:
        TypeError: ``"`owner(argument=value)` is invalid: expected [extra, ]a module (...), a Lightning checkpoint path
            or a Hugging Face model folder[ or None]."``
    """
    expected = (f"{extra}, " if extra else "") + TEACHER_KINDS + (" or None" if allow_none else "")
    if (value is None and allow_none) or isinstance(value, nn.Module):
        return
    if isinstance(value, os.PathLike) or (isinstance(value, str) and value.strip()):
        return
    raise TypeError(invalid(owner, argument, value, expected))


def teacher_settings(value: Any) -> Any:
    """A primitive that stands for a ``teacher`` argument in saved settings: the path, or ``"<module ClassName>"``."""
    if isinstance(value, nn.Module):
        return f"<module {type(value).__qualname__}>"
    return value if value is None or isinstance(value, str) else str(value)


def module_state(teacher: nn.Module, pl_module: LightningModule) -> dict[str, Tensor]:
    """Detached copies of ``teacher``'s weights in ``pl_module``'s namespace.

    A LightningModule (or a module of ``pl_module``'s class) gives its keys as they are; another module gets the FQN
    prefix of the first submodule of ``pl_module`` of the same class (``"model"`` for the wrapped Hugging Face model
    when ``teacher`` is a ``*ForSequenceClassification`` of that class), else the prefix of the Hugging Face model
    inside ``pl_module`` when ``teacher`` is one, else no prefix.
    """
    from transformers import PreTrainedModel

    prefix = ""
    if not isinstance(teacher, LightningModule) and type(teacher) is not type(pl_module):
        same_class = next((name for name, sub in pl_module.named_modules() if type(sub) is type(teacher)), None)
        if same_class is not None:
            prefix = same_class
        elif isinstance(teacher, PreTrainedModel):
            prefix, _ = find_hf_model(pl_module, "", required=False)
    return {f"{prefix}.{key}" if prefix else key: value.detach().clone() for key, value in teacher.state_dict().items()}


def teacher_state(
    teacher: nn.Module | str | os.PathLike,
    pl_module: LightningModule,
    owner: str,
    argument: str,
    trust_checkpoint: bool = False,
) -> dict[str, Tensor]:
    """Weights of a ``teacher`` argument in ``pl_module``'s namespace (the keys of ``pl_module.state_dict()``).

    Args:
        teacher: A module (:func:`module_state`), a Lightning checkpoint path or a Hugging Face model folder
            (:func:`module_state_from_path`).
        pl_module: The module being trained.
        owner, argument: How errors name the request (``"AlignReg"``, ``"teacher"``).
        trust_checkpoint: Unpickle a checkpoint that a weights-only read cannot load.
    """
    if isinstance(teacher, nn.Module):
        return module_state(teacher, pl_module)
    return module_state_from_path(os.fspath(teacher), pl_module, owner, argument, trust_checkpoint)


def submodel_teacher_state(
    teacher: nn.Module | str | os.PathLike,
    pl_module: LightningModule,
    prefix: str,
    expected: dict[str, Tensor],
    owner: str,
    trust_checkpoint: bool = False,
) -> dict[str, Tensor]:
    """The weights a ``teacher`` argument holds for the submodule of ``pl_module`` at FQN ``prefix`` (``""``: all),
    with that prefix taken off the keys (:func:`teacher_state`).

    Raises:
        ValueError: no weights under ``prefix``, or weights that do not fit ``expected``, the submodule's state
            (:func:`check_compatible_state`).
    """
    state = teacher_state(teacher, pl_module, owner, "teacher", trust_checkpoint)
    start = f"{prefix}." if prefix else ""
    weights = {key[len(start) :]: value for key, value in state.items() if key.startswith(start)}
    shown = os.fspath(teacher) if isinstance(teacher, os.PathLike) else teacher
    if not weights:
        raise ValueError(
            invalid(
                owner,
                "teacher",
                shown,
                f"weights under {start!r}, but it holds none there",
                "use a checkpoint or module of the same LightningModule class",
            )
        )
    check_compatible_state(weights, expected, owner, "teacher", shown)
    return weights


def check_compatible_state(
    state: dict[str, Tensor], expected: dict[str, Tensor], owner: str, argument: str, value: Any
) -> None:
    """Raise a ``ValueError`` listing missing keys, unexpected keys and shape mismatches of ``state``."""
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    shapes = [
        f"{key}: {tuple(state[key].shape)} vs {tuple(expected[key].shape)}"
        for key in expected
        if key in state and state[key].shape != expected[key].shape
    ]
    if not (missing or unexpected or shapes):
        return
    problems = []
    if shapes:
        problems.append(f"shapes differ for {shapes[:3]}")
    if missing:
        problems.append(f"missing {missing[:3]}")
    if unexpected:
        problems.append(f"unexpected {unexpected[:3]}")
    hint = ""
    if any("classifier" in text or "score" in text for text in shapes):
        hint = " (the classification heads differ: the number of labels must match)"
    raise ValueError(
        f"`{owner}({argument}={format_value(value)})` does not match the module's model{hint}: {'; '.join(problems)}. "
        "HINT: use a checkpoint of the same architecture and task."
    )


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy in eval mode with no hooks and no gradients (callbacks' hooks are not copied along)."""
    clone = copy.deepcopy(module)
    for sub in clone.modules():
        for hooks in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_forward_hooks_with_kwargs"):
            getattr(sub, hooks, {}).clear()
        getattr(sub, "_forward_pre_hooks_with_kwargs", {}).clear()
        getattr(sub, "_forward_hooks_always_called", {}).clear()
        sub.__dict__.pop("weight", None)  # a gated weight shadowing the parameter (pruning.l0.gate_weight_)
    clone.requires_grad_(False)
    clone.eval()
    for parameter in clone.parameters():
        parameter.grad = None
    return clone
