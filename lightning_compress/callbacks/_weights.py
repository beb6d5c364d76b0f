"""Locate the Hugging Face model inside a LightningModule, and read weights saved by Lightning or Hugging Face."""

from __future__ import annotations

import copy
from pathlib import Path

from pytorch_lightning import LightningModule
from torch import Tensor, nn

from lightning_compress.checkpoints import load_checkpoint


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


def check_compatible_state(
    state: dict[str, Tensor], expected: dict[str, Tensor], owner: str, argument: str, value: str
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
        f"`{owner}({argument}={value!r})` does not match the module's model{hint}: {'; '.join(problems)}. "
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
