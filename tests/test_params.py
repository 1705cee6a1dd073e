"""Parameter checks, function by function: exact messages (name, value, its type, the YAML hint only where it
applies), both ends of every range, and command-line values parsed to the declared type."""

from __future__ import annotations

import re

import pytest

from mnist_lib.params import Declared, ParameterError, parse_value, require_bool, require_choice, require_float, require_int

HINT_FLOAT = " (YAML 1.1, which papermill uses, reads 1e-3 as a string: write 1.0e-3)"


def refused(call, *args, **kwargs) -> str:
    with pytest.raises(ParameterError) as caught:
        call(*args, **kwargs)
    return str(caught.value)


def test_type_errors_name_the_parameter_the_value_and_its_type():
    assert refused(require_int, "epochs", "3") == "epochs must be an integer, got '3' (str)"
    assert refused(require_int, "epochs", True) == "epochs must be an integer, got True (bool)"
    assert refused(require_bool, "tta", "yes") == "tta must be true or false, got 'yes' (str)"
    assert refused(require_float, "learning_rate", "1e-3") == f"learning_rate must be a finite number, got '1e-3' (str){HINT_FLOAT}"
    # the YAML hint is for strings only
    assert refused(require_float, "learning_rate", None) == "learning_rate must be a finite number, got None (NoneType)"
    assert refused(require_choice, "optimizer", 5, ("adam", "sgd")).startswith("optimizer must be a string, got 5 (int)")
    assert refused(require_choice, "optimizer", "adamw", ("adam", "sgd")) == "optimizer must be one of adam, sgd; got 'adamw'"


def test_ranges_take_both_ends_when_inclusive_and_name_open_ends_as_infinity():
    assert require_int("epochs", 1, 1, 10) == 1 and require_int("epochs", 10, 1, 10) == 10
    assert require_float("zoom", 0.5, 0.0, 0.5) == 0.5
    assert refused(require_int, "epochs", 11, 1, 10) == "epochs = 11 is outside [1, 10]"
    assert refused(require_int, "epochs", 0, 1, None) == "epochs = 0 is outside [1, inf]"
    assert refused(require_int, "epochs", 4, None, 3) == "epochs = 4 is outside [-inf, 3]"
    assert refused(require_float, "learning_rate", 0.0, 0.0, 10.0, inclusive=False) == "learning_rate = 0.0 is outside (0.0, 10.0]"
    assert require_float("learning_rate", 10.0, 0.0, 10.0, inclusive=False) == 10.0
    assert isinstance(require_float("learning_rate", 1, 0.0, 10.0), float)


@pytest.mark.parametrize(("default", "raw", "expected"), [
    ([1, 2], "[3, 4]", [3, 4]),
    ([], "[]", []),
    ("a", "[3, 4]", "[3, 4]"),  # a string parameter keeps the text as given
    (1, "7", 7),
    (0.5, "2", 2.0),
    (False, " TRUE ", True),
])
def test_command_line_values_become_the_declared_type(default, raw, expected):
    value = parse_value(Declared("x", default, ""), raw)
    assert value == expected and type(value) is type(expected)


def test_a_command_line_value_of_the_wrong_kind_names_the_flag_and_the_type_wanted():
    assert refused(parse_value, Declared("epochs", 1, ""), "three") == "-p epochs three: expected an integer"
    assert re.fullmatch(r"-p tta maybe: expected a boolean \(true/false\)", refused(parse_value, Declared("tta", False, ""), "maybe"))
