"""Argument checks shared by the callbacks and DataModules, with one message shape for every bad argument.

Every message names the call as the user wrote it, then what is allowed::

    `GradualMagnitudePruning(final_sparsity=1.5)` is invalid: expected a float in [0, 1).

A value of the wrong type raises ``TypeError``, a value of the right type outside the allowed set ``ValueError``
(as ``torch.nn.utils.prune`` does). ``bool`` is never accepted as a number. Each ``check_*`` takes the owner (class
or function name), the argument name and the value, and returns nothing or the normalised value.

Example:
    >>> check_float("GradualMagnitudePruning", "final_sparsity", 1.5, 0.0, 1.0, high_inclusive=False)
    Traceback (most recent call last):
    ValueError: `GradualMagnitudePruning(final_sparsity=1.5)` is invalid: expected a float in [0, 1).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "check_bool",
    "check_choice",
    "check_float",
    "check_fraction",
    "check_int",
    "check_path",
    "check_patterns",
    "check_step_or_fraction",
    "check_str",
    "check_type",
    "format_value",
    "invalid",
]

#: Longest shown ``repr`` of a value before it is shortened (a module or a long list would drown the message).
_MAX_REPR = 120


def format_value(value: Any) -> str:
    """``repr(value)``, or ``<ClassName>`` for modules and other objects with long reprs (as messages show values)."""
    try:
        from torch import nn

        if isinstance(value, nn.Module):
            return f"<{type(value).__name__}>"
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    text = repr(value)
    return text if len(text) <= _MAX_REPR else f"<{type(value).__name__}>"


def invalid(owner: str, name: str, value: Any, expected: str, note: str | None = None) -> str:
    """The message for argument ``name=value`` of ``owner(...)``: ``"`owner(name=value)` is invalid: expected ..."``.

    Args:
        owner: Class or function name as the user calls it (``"GradualMagnitudePruning"``).
        name: Argument name.
        value: The value received.
        expected: What is allowed, starting with an article or ``one of`` (``"a float in [0, 1)"``).
        note: Optional explanation, added in parentheses (``"the fraction of weights set to zero"``).

    Example:
        >>> invalid("GlueDataModule", "task", "foo", "one of ['sst2']")
        "`GlueDataModule(task='foo')` is invalid: expected one of ['sst2']."
    """
    text = f"`{owner}({name}={format_value(value)})` is invalid: expected {expected.rstrip('.')}"
    if note:
        text += f" ({note})"
    return text + "."


def _or_none(expected: str, allow_none: bool) -> str:
    return expected + " or None" if allow_none else expected


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_type(
    owner: str, name: str, value: Any, types: type | tuple[type, ...], expected: str, allow_none: bool = False
) -> None:
    """Require an instance of ``types`` (``bool`` only when ``types`` names it), or ``None`` when allowed.

    Raises:
        TypeError: ``"`owner(name=value)` is invalid: expected <expected>."``
    """
    if value is None and allow_none:
        return
    types = types if isinstance(types, tuple) else (types,)
    wrong_bool = isinstance(value, bool) and bool not in types
    if wrong_bool or not isinstance(value, types):
        raise TypeError(invalid(owner, name, value, _or_none(expected, allow_none)))


def check_bool(owner: str, name: str, value: Any) -> None:
    """Require ``True`` or ``False`` (not ``0``/``1``, not a string)."""
    check_type(owner, name, value, bool, "a bool")


def check_str(owner: str, name: str, value: Any, allow_none: bool = False, nonempty: bool = False) -> None:
    """Require a ``str`` (non-blank with ``nonempty``), or ``None`` when allowed."""
    expected = "a non-empty str" if nonempty else "a str"
    check_type(owner, name, value, str, expected, allow_none)
    if nonempty and value is not None and not value.strip():
        raise ValueError(invalid(owner, name, value, _or_none(expected, allow_none)))


def check_path(owner: str, name: str, value: Any, allow_none: bool = True) -> None:
    """Require a ``str`` or ``os.PathLike`` (or ``None`` when allowed)."""
    check_type(owner, name, value, (str, os.PathLike), "a path (str)", allow_none)


def _int_range(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"an int in [{minimum}, {maximum}]"
    if minimum is not None:
        return f"an int >= {minimum}"
    if maximum is not None:
        return f"an int <= {maximum}"
    return "an int"


def check_int(
    owner: str,
    name: str,
    value: Any,
    minimum: int | None = None,
    allow_none: bool = False,
    *,
    maximum: int | None = None,
    note: str | None = None,
) -> None:
    """Require an ``int`` (not ``bool``) in ``[minimum, maximum]`` (either bound optional), or ``None`` when allowed.

    Example:
        >>> check_int("GradualUnfreezing", "every_n_epochs", 0, 1)
        Traceback (most recent call last):
        ValueError: `GradualUnfreezing(every_n_epochs=0)` is invalid: expected an int >= 1.
    """
    if value is None and allow_none:
        return
    expected = _or_none(_int_range(minimum, maximum), allow_none)
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(invalid(owner, name, value, expected))
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(invalid(owner, name, value, expected, note))


def _float_range(low: float | None, high: float | None, low_inclusive: bool, high_inclusive: bool) -> str:
    if low is not None and high is not None:
        return f"a float in {'[' if low_inclusive else '('}{low:g}, {high:g}{']' if high_inclusive else ')'}"
    if low is not None:
        return f"a float {'>=' if low_inclusive else '>'} {low:g}"
    if high is not None:
        return f"a float {'<=' if high_inclusive else '<'} {high:g}"
    return "a float"


def check_float(
    owner: str,
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    allow_none: bool = False,
    finite: bool = True,
    expected: str | None = None,
    note: str | None = None,
) -> float | None:
    """Require a real number (``int`` or ``float``, not ``bool``) between ``low`` and ``high``; return it as ``float``.

    NaN is always refused, infinities too unless ``finite=False``. ``expected`` replaces the generated description
    (``"a float in [0, 1)"``) in both the ``TypeError`` and the ``ValueError``; ``note`` is added to the
    ``ValueError`` only.

    Example:
        >>> check_float("SelfDistilledPruning", "temperature", 0.0, 0.0, low_inclusive=False)
        Traceback (most recent call last):
        ValueError: `SelfDistilledPruning(temperature=0.0)` is invalid: expected a float > 0.
    """
    if value is None and allow_none:
        return None
    description = _or_none(expected or _float_range(low, high, low_inclusive, high_inclusive), allow_none)
    if not _is_number(value):
        raise TypeError(invalid(owner, name, value, description))
    number = float(value)
    bad = math.isnan(number) or (finite and math.isinf(number))
    if low is not None:
        bad = bad or (number < low if low_inclusive else number <= low)
    if high is not None:
        bad = bad or (number > high if high_inclusive else number >= high)
    if bad:
        raise ValueError(invalid(owner, name, value, description, note))
    return number


def check_fraction(owner: str, name: str, value: Any) -> None:
    """Require a float strictly between 0 and 1."""
    check_float(owner, name, value, 0.0, 1.0, low_inclusive=False, high_inclusive=False)


def check_choice(
    owner: str, name: str, value: Any, choices: Iterable[Any], allow_none: bool = False, note: str | None = None
) -> None:
    """Require ``value`` to be one of ``choices`` (a dict's keys when given a dict: the dict that dispatches them).

    A value whose type matches none of the choices (``3`` among strings) raises ``TypeError``, a value of the right
    type outside the choices ``ValueError``; both list the choices.

    Example:
        >>> check_choice("StructuredPruning", "unit", "heads", {"ffn_neurons": ..., "layers": ...})
        Traceback (most recent call last):
        ValueError: `StructuredPruning(unit='heads')` is invalid: expected one of ['ffn_neurons', 'layers'].
    """
    options = list(choices)
    if (value is None and allow_none) or any(value is option or _same(value, option) for option in options):
        return
    expected = _or_none(f"one of {options}", allow_none)
    kinds = {type(option) for option in options if option is not None}
    if not any(isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool) for kind in kinds):
        raise TypeError(invalid(owner, name, value, expected))
    raise ValueError(invalid(owner, name, value, expected, note))


def _same(value: Any, option: Any) -> bool:
    try:
        return type(value) is type(option) and bool(value == option)
    except Exception:  # noqa: BLE001 - objects with odd __eq__ (tensors) are simply not equal
        return False


def check_step_or_fraction(owner: str, name: str, value: Any) -> None:
    """Require a float fraction of the run in ``[0, 1]`` or an int optimizer step ``>= 0`` (``start``, ``end``)."""
    if not _is_number(value):
        raise TypeError(invalid(owner, name, value, "a float fraction in [0, 1] or an int step >= 0"))
    if isinstance(value, float) and not 0.0 <= value <= 1.0:
        raise ValueError(
            f"`{owner}({name}={value!r})` is invalid: a float is a fraction of the run and must lie in [0, 1]; "
            "use an int for an absolute optimizer step."
        )
    if isinstance(value, int) and value < 0:
        raise ValueError(f"`{owner}({name}={value!r})` is invalid: an int step must be >= 0.")


def check_patterns(owner: str, name: str, value: Any) -> list[str]:
    """Require ``None``, a regex or a list of regexes that compile; return them as a list (``[]`` for ``None``).

    Example:
        >>> check_patterns("GradualMagnitudePruning", "targets", r"encoder\\..*\\.weight")
        ['encoder\\\\..*\\\\.weight']
    """
    if value is None:
        return []
    patterns = [value] if isinstance(value, str) else value
    if not isinstance(patterns, Sequence) or not all(isinstance(pattern, str) for pattern in patterns):
        raise TypeError(invalid(owner, name, value, "a regex string, a list of them or None"))
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as error:
            expected = f"regular expressions; {pattern!r} is not a valid regular expression: {error}"
            raise ValueError(invalid(owner, name, value, expected)) from error
    return list(patterns)
