"""Argument checks shared by the DataModules, with one message shape for every bad argument.

Messages read ``"`GlueDataModule(task='foo')` is invalid: expected one of [...]"``: the call as the user wrote it,
then what was expected. Wrong types raise ``TypeError``, wrong values ``ValueError``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any


def invalid(owner: str, name: str, value: Any, expected: str) -> str:
    """Format the message for argument ``name=value`` of ``owner(...)``."""
    return f"`{owner}({name}={value!r})` is invalid: expected {expected}"


def check_int(owner: str, name: str, value: Any, minimum: int, allow_none: bool = False) -> None:
    """Require an ``int`` (not ``bool``) of at least ``minimum``, or ``None`` when allowed."""
    if value is None and allow_none:
        return
    kind = f"an int >= {minimum}" + (" or None" if allow_none else "")
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(invalid(owner, name, value, kind))
    if value < minimum:
        raise ValueError(invalid(owner, name, value, kind))


def check_str(owner: str, name: str, value: Any, allow_none: bool = False) -> None:
    """Require a ``str`` (or ``None`` when allowed)."""
    if value is None and allow_none:
        return
    if not isinstance(value, str):
        raise TypeError(invalid(owner, name, value, "a str" + (" or None" if allow_none else "")))


def check_path(owner: str, name: str, value: Any) -> None:
    """Require ``None``, a ``str`` or an ``os.PathLike``."""
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise TypeError(invalid(owner, name, value, "a path (str) or None"))


def check_choice(owner: str, name: str, value: Any, choices: Iterable[str]) -> None:
    """Require ``value`` to be one of ``choices`` (compared as given)."""
    options = list(choices)
    check_str(owner, name, value)
    if value not in options:
        raise ValueError(invalid(owner, name, value, f"one of {options}"))


def check_fraction(owner: str, name: str, value: Any) -> None:
    """Require a float strictly between 0 and 1."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(invalid(owner, name, value, "a float in (0, 1)"))
    if not 0.0 < float(value) < 1.0:
        raise ValueError(invalid(owner, name, value, "a float in (0, 1)"))
