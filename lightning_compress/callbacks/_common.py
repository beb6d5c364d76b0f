"""Small helpers shared by the compression callbacks."""

from __future__ import annotations

from pytorch_lightning import LightningModule
from pytorch_lightning.utilities import rank_zero_warn
from torch import nn

_DROPOUT_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


def warn_if_training_in_eval_mode(pl_module: LightningModule, callback_name: str) -> None:
    """Warn when dropout modules of a module being trained are in eval mode.

    ``from_pretrained`` returns Hugging Face models in eval mode and Lightning >= 2.2 keeps the modes of
    submodules, so a user's module that wraps one trains with dropout silently off unless it calls
    ``.train()`` on it.
    """
    if not pl_module.training:
        return
    frozen = [name for name, sub in pl_module.named_modules() if isinstance(sub, _DROPOUT_TYPES) and not sub.training]
    if frozen:
        rank_zero_warn(
            f"{callback_name}: {len(frozen)} dropout module(s) of the model being trained are in eval mode "
            f"(e.g. {frozen[0]!r}), so dropout is off during fit. Hugging Face `from_pretrained` returns models in "
            "eval mode; call `.train()` on the wrapped model (e.g. in `__init__` or `on_fit_start`) "
            "if that is not intended."
        )


def named_parameters(pl_module: LightningModule) -> dict:
    return dict(pl_module.named_parameters())
