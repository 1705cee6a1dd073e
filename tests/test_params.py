"""Parameter checks, function by function: exact messages (name, value, its type, the YAML hint only where it
applies), both ends of every range, and command-line values parsed to the declared type."""

from __future__ import annotations

import datetime
import re

import pytest

from mnist_lib import params
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


def code(source, tags=()) -> dict:
    """A notebook cell as nbformat stores it: the source a string or a list of lines."""
    return {"cell_type": "code", "source": source, "metadata": {"tags": list(tags)}}


def test_the_parameters_cell_is_the_one_tagged_cell_its_lines_joined():
    cells = [{"cell_type": "markdown", "source": "# t"}, code("x = 1\n"), code(["epochs = 2  # passes\n", "seed = 1\n"], ["parameters"])]
    assert params.parameters_cell(cells) == "epochs = 2  # passes\nseed = 1\n"
    assert params.parameters_cell([code("a = 1", ["parameters"])]) == "a = 1"
    for tagged in (0, 2):
        cells = [code("a = 1", ["parameters"]) for _ in range(tagged)] + [{"source": "b = 2"}]  # no metadata at all
        assert refused(params.parameters_cell, cells) == f"a notebook needs exactly one cell tagged 'parameters', found {tagged}"


def test_declared_parameters_take_only_single_name_assignments_of_literals():
    declared = params.declared_parameters([code("epochs = 2  # passes over the data\nrate = 0.1\n", ["parameters"])])
    assert declared == {"epochs": Declared("epochs", 2, "passes over the data"), "rate": Declared("rate", 0.1, "")}
    for line in ("a = b = 1", "a.b = 1", "a, b = 1, 2", "print(1)"):
        assert refused(params.declared_parameters, [code(line, ["parameters"])]) == (
            "parameters cell line 1: only `name = literal  # comment` lines belong there")


def test_check_names_the_parameter_where_it_came_from_and_the_yaml_hint_for_text_only():
    declared = {"epochs": Declared("epochs", 1, ""), "learning_rate": Declared("learning_rate", 0.1, ""),
                "optimizer": Declared("optimizer", "adam", "")}
    origins = {"epochs": "params/train.yaml"}
    assert refused(params.check, declared, {"seeds": 1, "epoch": 2}, {"seeds": "a.yaml"}, "03_train.py") == (
        "03_train.py does not declare epoch (from the command line), seeds (from a.yaml); "
        "its parameters are: epochs, learning_rate, optimizer")
    assert refused(params.check, declared, {"epochs": "3"}, origins, "n") == (
        "epochs from params/train.yaml: expected an integer, got '3' (str)")
    assert refused(params.check, declared, {"learning_rate": "1e-3"}, origins, "n") == (
        f"learning_rate from the command line: expected a number, got '1e-3' (str){HINT_FLOAT}")
    assert refused(params.check, declared, {"learning_rate": None}, origins, "n") == (
        "learning_rate from the command line: expected a number, got None (NoneType)")
    assert refused(params.check, declared, {"optimizer": True}, origins, "n") == (
        "optimizer from the command line: expected a string, got True (bool)"
        " (YAML 1.1 reads yes/no/on/off as booleans: quote the value)")
    params.check(declared, {"epochs": 3, "learning_rate": 1, "optimizer": "sgd"}, origins, "n")  # an int is a number


DATE_HINT = " (YAML reads an unquoted date such as 2024-01-01 as a date: quote it)"
PLAIN_LIST = "expected a list of plain values (text, numbers, booleans, null, lists, mappings)"


def test_a_list_parameter_takes_only_what_papermill_can_write_as_a_literal_and_a_date_gets_the_quoting_hint():
    declared = {"tags": Declared("tags", ["a"], ""), "name": Declared("name", "x", "")}
    origins = {"tags": "p.yaml", "name": "p.yaml"}
    day = datetime.date(2024, 1, 1)
    params.check(declared, {"tags": [1, 2.5, True, "b", None, [3, ["c"]], {"k": [1]}], "name": "2024-01-01"}, origins, "n")
    assert refused(params.check, declared, {"tags": ["b", [day]]}, origins, "n") == (
        f"tags from p.yaml: {PLAIN_LIST}, got ['b', [datetime.date(2024, 1, 1)]] (list){DATE_HINT}")
    assert refused(params.check, declared, {"tags": [{"when": datetime.datetime(2024, 1, 1, 12)}]}, origins, "n") == (
        f"tags from p.yaml: {PLAIN_LIST}, got [{{'when': datetime.datetime(2024, 1, 1, 12, 0)}}] (list){DATE_HINT}")
    assert refused(params.check, declared, {"name": day}, origins, "n") == (
        f"name from p.yaml: expected a string, got datetime.date(2024, 1, 1) (date){DATE_HINT}")
    for bad in ([float("nan")], [float("inf")], [{1: "a"}], [b"bytes"], "text"):
        assert refused(params.check, declared, {"tags": bad}, origins, "n") == (
            f"tags from p.yaml: {PLAIN_LIST}, got {bad!r} ({type(bad).__name__})")  # no date: no hint


def test_a_parameters_cell_that_is_not_plain_literals_is_refused_saying_what_belongs_there():
    assert params.declared_parameters([code("x = 1  # a comment # with a hash\n", ["parameters"])])["x"].help == (
        "a comment # with a hash")  # the comment is all after the first hash
    assert params.declared_parameters([code("a = 1\nb = 2  # two\n", ["parameters"])])["b"].help == "two"
    assert refused(params.declared_parameters, [code("a = 1\nb = a + 1\n", ["parameters"])]) == (
        "parameters cell: b must be a literal (papermill does not recompute derived values)")
    assert refused(params.declared_parameters, [code("a = None\n", ["parameters"])]) == (
        "parameters cell: a has a NoneType default; use bool, int, float, str, list")
    assert refused(params.declared_parameters, [code("a = {'k': 1}\n", ["parameters"])]) == (
        "parameters cell: a has a dict default; use bool, int, float, str, list")
    assert refused(params.declared_parameters, [code("a = 1\nimport os\n", ["parameters"])]) == (
        "parameters cell line 2: only `name = literal  # comment` lines belong there")


def test_parameter_files_are_mappings_of_text_keys_each_set_once(tmp_path):
    files = {"list.yaml": "- 1\n", "broken.yaml": "a: [1\n", "on.yaml": "on: 1\n", "a.yaml": "epochs: 1\n", "b.yaml": "epochs: 2\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert refused(params.load_files, [tmp_path / "list.yaml"]) == (
        f"{tmp_path / 'list.yaml'}: a parameter file must be a mapping of name: value, got list")
    assert refused(params.load_files, [tmp_path / "broken.yaml"]).startswith(f"{tmp_path / 'broken.yaml'}: cannot read parameters (")
    assert refused(params.load_files, [tmp_path / "missing.yaml"]).startswith(f"{tmp_path / 'missing.yaml'}: cannot read parameters (")
    assert refused(params.load_files, [tmp_path / "on.yaml"]) == (
        f"{tmp_path / 'on.yaml'}: key True is not a string (YAML 1.1 reads on/off/yes/no as booleans)")
    assert refused(params.load_files, [tmp_path / "a.yaml", tmp_path / "b.yaml"]) == (
        f"{tmp_path / 'b.yaml'}: epochs is also set in {tmp_path / 'a.yaml'}; set each parameter in one file")
    assert params.load_files([tmp_path / "a.yaml"]) == ({"epochs": 1}, {"epochs": str(tmp_path / "a.yaml")})
