"""Renamed public names: the old name keeps working for one minor release and warns through Lightning.

Warnings go through :func:`pytorch_lightning.utilities.rank_zero_deprecation` (a ``LightningDeprecationWarning``,
emitted on global rank 0 only) and name the old spelling, the release that removes it and the new spelling.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["DEPRECATED_SINCE", "REMOVED_IN", "deprecated_alias", "renamed_argument", "warn_deprecated"]

#: The release that renamed the names, and the one that removes the old ones.
DEPRECATED_SINCE = "0.1.0"
REMOVED_IN = "0.2.0"

_F = TypeVar("_F", bound=Callable[..., Any])


def warn_deprecated(old: str, new: str, stacklevel: int = 2) -> None:
    """Warn that ``old`` (as the user wrote it) is deprecated in favour of ``new``.

    ``stacklevel`` counts from the caller of this function, as for :func:`warnings.warn` (2: the caller's caller).

    Example:
        >>> warn_deprecated("`GradualMagnitudePruning(frequency=10)`", "`every_n_steps=10`")  # doctest: +SKIP
    """
    # imported here so that the Lightning-free cores (pruning, quantization) can define deprecated aliases
    from pytorch_lightning.utilities import rank_zero_deprecation

    # rank_zero_deprecation -> rank_zero_warn -> rank_zero_only wrapper -> _warn -> warnings.warn: 4 frames of its own
    rank_zero_deprecation(
        f"{old} is deprecated since lightning_compress {DEPRECATED_SINCE} and will be removed in {REMOVED_IN}: "
        f"use {new} instead.",
        stacklevel=stacklevel + 4,
    )


def renamed_argument(owner: str, name: str, value: Any, old_name: str, old_value: Any, default: Any = None) -> Any:
    """The value of argument ``name`` of ``owner(...)``, which may also come under its deprecated ``old_name``.

    ``old_value`` (with a deprecation warning pointing at the caller's caller) when the old name was given (not
    ``None``), else ``value``; ``default`` is the default of ``name``, which ``value`` must keep when ``old_name`` is
    given.

    Raises:
        ValueError: both names given.

    Example:
        >>> renamed_argument("AlignReg", "teacher", "pretrained", "reference", None, default="pretrained")
        'pretrained'
    """
    if old_value is None:
        return value
    warn_deprecated(f"`{owner}({old_name}={old_value!r})`", f"`{owner}({name}={old_value!r})`", stacklevel=3)
    if not (value is default or (isinstance(value, str) and value == default)):
        from lightning_compress.validation import format_value

        raise ValueError(
            f"`{owner}({name}={format_value(value)}, {old_name}={old_value!r})` is invalid: expected only `{name}` "
            f"(`{old_name}` is its deprecated name)."
        )
    return old_value


def deprecated_alias(function: _F, old_name: str) -> _F:
    """A function named ``old_name`` that warns and then calls ``function`` with the same arguments.

    Example:
        >>> quantize_model = deprecated_alias(quantize_model_, "quantize_model")  # doctest: +SKIP
    """

    @functools.wraps(function)
    def alias(*args: Any, **kwargs: Any) -> Any:
        warn_deprecated(f"`{old_name}`", f"`{function.__name__}` (same arguments)", stacklevel=3)
        return function(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old_name
    alias.__doc__ = f"Deprecated alias of :func:`{function.__name__}` (removed in {REMOVED_IN})."
    return alias  # type: ignore[return-value]
