"""The argument checks of lightning_compress.validation: error type and the exact, hand-written message."""

import re
from pathlib import Path

import pytest
from torch import nn

from lightning_compress.data import checks
from lightning_compress.validation import (
    check_bool,
    check_choice,
    check_float,
    check_fraction,
    check_int,
    check_path,
    check_patterns,
    check_step_or_fraction,
    check_str,
    check_type,
    format_value,
    invalid,
)


def raises(error, message):
    """``pytest.raises`` matching the whole message literally."""
    return pytest.raises(error, match=f"^{re.escape(message)}$")


def test_invalid_names_call_value_and_what_is_allowed():
    assert invalid("C", "a", 1.5, "a float in [0, 1)") == "`C(a=1.5)` is invalid: expected a float in [0, 1)."
    assert invalid("C", "a", "x", "one of ['y']", "why") == "`C(a='x')` is invalid: expected one of ['y'] (why)."
    assert invalid("C", "a", 1, "an int.") == "`C(a=1)` is invalid: expected an int."  # one full stop


def test_format_value_shortens_modules_and_long_values():
    assert format_value(nn.Linear(2, 3)) == "<Linear>"
    assert format_value(list(range(100))) == "<list>"
    assert format_value("ok") == "'ok'"


@pytest.mark.parametrize(
    "args, kwargs, error, message",
    [
        (
            (1.5, 0.0, 1.0),
            {"high_inclusive": False},
            ValueError,
            "`GradualMagnitudePruning(final_sparsity=1.5)` is invalid: expected a float in [0, 1).",
        ),
        (
            ("0.5", 0.0, 1.0),
            {"high_inclusive": False},
            TypeError,
            "`GradualMagnitudePruning(final_sparsity='0.5')` is invalid: expected a float in [0, 1).",
        ),
        (
            (True, 0.0, 1.0),
            {},
            TypeError,
            "`GradualMagnitudePruning(final_sparsity=True)` is invalid: expected a float in [0, 1].",
        ),
        (
            (float("nan"), 0.0, 1.0),
            {},
            ValueError,
            "`GradualMagnitudePruning(final_sparsity=nan)` is invalid: expected a float in [0, 1].",
        ),
        (
            (0.0, 0.0),
            {"low_inclusive": False},
            ValueError,
            "`GradualMagnitudePruning(final_sparsity=0.0)` is invalid: expected a float > 0.",
        ),
        (
            (float("inf"), 0.0),
            {},
            ValueError,
            "`GradualMagnitudePruning(final_sparsity=inf)` is invalid: expected a float >= 0.",
        ),
        (
            (-1.0, 0.0),
            {"allow_none": True, "note": "why"},
            ValueError,
            "`GradualMagnitudePruning(final_sparsity=-1.0)` is invalid: expected a float >= 0 or None (why).",
        ),
        (
            (-1.0, 0.0),
            {"expected": "a finite float >= 0"},
            ValueError,
            "`GradualMagnitudePruning(final_sparsity=-1.0)` is invalid: expected a finite float >= 0.",
        ),
    ],
)
def test_check_float(args, kwargs, error, message):
    with raises(error, message):
        check_float("GradualMagnitudePruning", "final_sparsity", *args, **kwargs)


def test_check_float_returns_a_float_and_accepts_none_and_infinity_when_asked():
    assert check_float("C", "a", 1, 0.0) == 1.0 and isinstance(check_float("C", "a", 1, 0.0), float)
    assert check_float("C", "a", None, allow_none=True) is None
    assert check_float("C", "a", float("inf"), 0.0, finite=False) == float("inf")


def test_check_int():
    with raises(ValueError, "`GradualUnfreezing(every_n_epochs=0)` is invalid: expected an int >= 1."):
        check_int("GradualUnfreezing", "every_n_epochs", 0, 1)
    with raises(TypeError, "`GradualUnfreezing(every_n_epochs=1.0)` is invalid: expected an int >= 1 or None."):
        check_int("GradualUnfreezing", "every_n_epochs", 1.0, 1, allow_none=True)
    with raises(TypeError, "`C(seed=False)` is invalid: expected an int."):
        check_int("C", "seed", False)
    with raises(ValueError, "`C(bits=9)` is invalid: expected an int in [1, 8]."):
        check_int("C", "bits", 9, 1, maximum=8)
    check_int("C", "n", None, 1, allow_none=True)


def test_check_choice_splits_wrong_type_from_wrong_value():
    units = {"ffn_neurons": "feed-forward neuron", "layers": "encoder layer"}  # the dict that dispatches them
    with raises(ValueError, "`StructuredPruning(unit='heads')` is invalid: expected one of ['ffn_neurons', 'layers']."):
        check_choice("StructuredPruning", "unit", "heads", units)
    with raises(TypeError, "`StructuredPruning(unit=3)` is invalid: expected one of ['ffn_neurons', 'layers']."):
        check_choice("StructuredPruning", "unit", 3, units)
    with raises(ValueError, "`C(scope='row')` is invalid: expected one of ['layer', 'global'] or None."):
        check_choice("C", "scope", "row", ("layer", "global"), allow_none=True)
    with raises(TypeError, "`C(bits=True)` is invalid: expected one of [4, 8]."):
        check_choice("C", "bits", True, (4, 8))
    check_choice("C", "scope", None, ("layer",), allow_none=True)
    check_choice("C", "activations", None, ("int8", None))


def test_check_bool_str_path_type():
    with raises(TypeError, "`C(rescale=1)` is invalid: expected a bool."):
        check_bool("C", "rescale", 1)
    with raises(TypeError, "`GlueDataModule(tokenizer=None)` is invalid: expected a str."):
        check_str("GlueDataModule", "tokenizer", None)
    with raises(ValueError, "`C(name=' ')` is invalid: expected a non-empty str."):
        check_str("C", "name", " ", nonempty=True)
    with raises(TypeError, "`C(root=3)` is invalid: expected a path (str) or None."):
        check_path("C", "root", 3)
    check_path("C", "root", Path("x"))
    with raises(TypeError, "`C(width=True)` is invalid: expected a number."):
        check_type("C", "width", True, (int, float), "a number")


def test_check_step_or_fraction():
    with raises(
        ValueError,
        "`C(start=1.5)` is invalid: a float is a fraction of the run and must lie in [0, 1]; "
        "use an int for an absolute optimizer step.",
    ):
        check_step_or_fraction("C", "start", 1.5)
    with raises(ValueError, "`C(start=-1)` is invalid: an int step must be >= 0."):
        check_step_or_fraction("C", "start", -1)
    with raises(TypeError, "`C(start='0')` is invalid: expected a float fraction in [0, 1] or an int step >= 0."):
        check_step_or_fraction("C", "start", "0")


def test_check_patterns():
    assert check_patterns("C", "targets", None) == []
    assert check_patterns("C", "targets", "a.b") == ["a.b"]
    with raises(TypeError, "`C(targets=5)` is invalid: expected a regex string, a list of them or None."):
        check_patterns("C", "targets", 5)
    with pytest.raises(
        ValueError,
        match=r"^`C\(targets=\['\('\]\)` is invalid: expected regular expressions; '\(' "
        r"is not a valid regular expression: missing \)",
    ):
        check_patterns("C", "targets", ["("])


def test_the_data_checks_are_the_same_functions():
    assert checks.check_int is check_int and checks.invalid is invalid and checks.check_fraction is check_fraction
    with raises(ValueError, "`TextFolderDataModule(val_fraction=1.0)` is invalid: expected a float in (0, 1)."):
        checks.check_fraction("TextFolderDataModule", "val_fraction", 1.0)
