"""Read checkpoints and weight files without running code stored in them.

A file written by ``torch.save`` (a Lightning ``.ckpt``, a ``pytorch_model.bin``) is a pickle, and unpickling can call
any function the file names: opening an untrusted checkpoint with ``torch.load(weights_only=False)`` runs its code.
Every path of this library that reads such a file goes through :func:`load_checkpoint`, which

* reads ``.safetensors`` files with ``safetensors`` (tensors only, no code);
* reads everything else with ``torch.load(weights_only=True)`` (tensors, containers and primitives only);
* never falls back to an unrestricted load on its own: a file that only a full unpickling can read raises
  :class:`UntrustedCheckpointError`, naming the file, torch's reason and the explicit trust switch of the caller
  (``trust_checkpoint=True`` on the callbacks, ``--trust-checkpoint`` on ``lightning-compress export``);
* tells an empty or truncated file apart from an unsafe one.

:func:`open_safetensors` opens a safetensors file lazily with the same error handling.

Example::

    checkpoint = load_checkpoint("epoch=2.ckpt")  # weights-only
    checkpoint = load_checkpoint("epoch=2.ckpt", trust_checkpoint=True)  # full unpickling: trusted files only
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

__all__ = ["UntrustedCheckpointError", "load_checkpoint", "open_safetensors"]

SAFETENSORS_SUFFIX = ".safetensors"
_TORCH_BOILERPLATE = ("Weights only load failed", "Check the documentation of torch.load", "Please file an issue")


class UntrustedCheckpointError(pickle.UnpicklingError):
    """A file that only an unrestricted unpickling (which may run code stored in it) can read, loaded untrusted."""


def load_checkpoint(
    path: str | os.PathLike,
    *,
    trust_checkpoint: bool = False,
    source: str | None = None,
    trust_hint: str = "`trust_checkpoint=True`",
) -> Any:
    """Load a checkpoint or weights file on the CPU without executing code from it (unless trusted).

    Args:
        path: A file written by ``torch.save`` / ``Trainer.save_checkpoint``, or a ``.safetensors`` file.
        trust_checkpoint: Unpickle the file without restriction (``torch.load(weights_only=False)``). Only for
            files you or someone you trust wrote: unpickling can run any code the file names.
        source: How errors name the request, e.g. ``"`AlignReg(reference='ref.ckpt')`"``; default
            ``"`load_checkpoint('<path>')`"``.
        trust_hint: The caller's trust switch, named in the error of a file that needs it.

    Returns:
        What the file holds: a Lightning checkpoint ``dict``, a state dict, or (safetensors) ``{name: tensor}``.

    Raises:
        FileNotFoundError: No file at ``path``.
        ValueError: ``path`` is a folder, an empty file, or a truncated or corrupted file.
        UntrustedCheckpointError: The file holds objects that a weights-only load refuses (a custom class, or code)
            and ``trust_checkpoint`` is ``False``.
    """
    location = Path(path).expanduser()
    source = source or f"`load_checkpoint({str(path)!r})`"
    _check_file(location, source)
    if location.suffix == SAFETENSORS_SUFFIX:
        try:
            return load_file(str(location), device="cpu")
        except SafetensorError as error:
            raise ValueError(_corrupted(source, location, "a safetensors file", error)) from None
    try:
        return torch.load(location, map_location="cpu", weights_only=not trust_checkpoint)
    except pickle.UnpicklingError as error:
        if trust_checkpoint:
            raise ValueError(_corrupted(source, location, "a PyTorch checkpoint", error)) from error
        raise UntrustedCheckpointError(
            f"{source} is invalid: {location} cannot be loaded safely: it holds objects that "
            f"`torch.load(weights_only=True)` refuses ({_reason(error)}). Loading it anyway unpickles it without "
            "restriction, which runs any code stored in the file. Only if you trust the file (you or someone you "
            f"trust wrote it), pass {trust_hint}; otherwise do not load it."
        ) from None
    except (RuntimeError, EOFError, OSError) as error:
        raise ValueError(_corrupted(source, location, "a PyTorch checkpoint", error)) from None


@contextmanager
def open_safetensors(path: str | os.PathLike, source: str | None = None) -> Iterator[Any]:
    """``safetensors.safe_open(path, framework="pt")`` with :func:`load_checkpoint`'s checks and messages."""
    location = Path(path)
    source = source or f"`open_safetensors({str(path)!r})`"
    _check_file(location, source)
    try:
        handle = safe_open(str(location), framework="pt")
    except SafetensorError as error:
        raise ValueError(_corrupted(source, location, "a safetensors file", error)) from None
    with handle:
        yield handle


def _check_file(location: Path, source: str) -> None:
    if not location.exists():
        raise FileNotFoundError(f"{source} is invalid: {location} does not exist; expected a checkpoint file.")
    if location.is_dir():
        raise ValueError(f"{source} is invalid: {location} is a folder; expected a checkpoint file.")
    if location.stat().st_size == 0:
        raise ValueError(
            f"{source} is invalid: {location} is empty (0 bytes), so it was truncated (an interrupted save or copy?). "
            "HINT: write or copy the checkpoint again."
        )


def _corrupted(source: str, location: Path, kind: str, error: BaseException) -> str:
    reason = _reason(error) or type(error).__name__
    return (
        f"{source} is invalid: {location} ({location.stat().st_size} bytes) cannot be read as {kind}: it is truncated "
        f"or corrupted ({reason}). HINT: write or copy the file again."
    )


def _reason(error: BaseException) -> str:
    """The informative lines of ``error``'s message, without torch's generic advice."""
    lines = [line.strip() for line in str(error).splitlines()]
    kept = [line for line in lines if line and not line.startswith(_TORCH_BOILERPLATE)]
    return " ".join(kept).removeprefix("WeightsUnpickler error: ").strip()
