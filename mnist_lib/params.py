"""Parameters: a notebook's declared parameters, parameter files, and strict type and range checks."""

from __future__ import annotations

import ast
import datetime
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

TYPE_NAMES = {bool: "a boolean (true/false)", int: "an integer", float: "a number", str: "a string",
              list: "a list of plain values (text, numbers, booleans, null, lists, mappings)"}
YAML11_HINT = {
    float: " (YAML 1.1, which papermill uses, reads 1e-3 as a string: write 1.0e-3)",
    str: " (YAML 1.1 reads yes/no/on/off as booleans: quote the value)",
}
DATE_HINT = " (YAML reads an unquoted date such as 2024-01-01 as a date: quote it)"


class ParameterError(ValueError):
    """A parameter value, name or file that cannot be used; the message says which and what to do."""


@dataclass(frozen=True)
class Declared:
    """One parameter of a notebook's `parameters` cell: name, default literal, and its comment."""

    name: str
    default: Any
    help: str

    @property
    def kind(self) -> type:
        """The expected type, from the default's type."""
        return type(self.default)


def parameters_cell(cells: list[Mapping]) -> str:
    """The source of the single code cell tagged `parameters`."""
    tagged = [cell for cell in cells if "parameters" in cell.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ParameterError(f"a notebook needs exactly one cell tagged 'parameters', found {len(tagged)}")
    source = tagged[0]["source"]
    return source if isinstance(source, str) else "".join(source)


def declared_parameters(cells: list[Mapping]) -> dict[str, Declared]:
    """Parse the `parameters` cell: one `name = literal  # comment` per line."""
    source = parameters_cell(cells)
    lines = source.splitlines()
    declared = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ParameterError(f"parameters cell line {node.lineno}: only `name = literal  # comment` lines belong there")
        name = node.targets[0].id
        try:
            default = ast.literal_eval(node.value)
        except ValueError:
            raise ParameterError(f"parameters cell: {name} must be a literal (papermill does not recompute derived values)") from None
        if type(default) not in TYPE_NAMES:
            raise ParameterError(f"parameters cell: {name} has a {type(default).__name__} default; use {', '.join(t.__name__ for t in TYPE_NAMES)}")
        comment = lines[node.lineno - 1].partition("#")[2].strip()
        declared[name] = Declared(name, default, comment)
    return declared


def load_files(paths: list[str | Path]) -> tuple[dict[str, Any], dict[str, str]]:
    """Read flat YAML parameter files as papermill does (YAML 1.1); return values and the file each came from."""
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for path in map(Path, paths):
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ParameterError(f"{path}: cannot read parameters ({err})") from None
        if not isinstance(data, dict):
            raise ParameterError(f"{path}: a parameter file must be a mapping of name: value, got {type(data).__name__}")
        for key, value in data.items():
            if not isinstance(key, str):
                raise ParameterError(f"{path}: key {key!r} is not a string (YAML 1.1 reads on/off/yes/no as booleans)")
            if key in origins:
                raise ParameterError(f"{path}: {key} is also set in {origins[key]}; set each parameter in one file")
            values[key], origins[key] = value, str(path)
    return values, origins


def matches(kind: type, value: Any) -> bool:
    """Whether `value` is acceptable for a parameter whose default has type `kind`."""
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is list:
        return isinstance(value, list) and _literal(value)
    return isinstance(value, kind)


def _literal(value: Any) -> bool:
    """Whether papermill can write `value` into a notebook as a Python literal: text, a boolean, a finite number,
    null, or a list or mapping (text keys) of those; not a date or a NaN."""
    if isinstance(value, list):
        return all(map(_literal, value))
    if isinstance(value, dict):
        return all(isinstance(key, str) and _literal(item) for key, item in value.items())
    return value is None or isinstance(value, (str, bool, int)) or (isinstance(value, float) and math.isfinite(value))


def _has_date(value: Any) -> bool:
    """Whether `value` is, or a list or mapping holds, a date (what YAML makes of an unquoted 2024-01-01)."""
    if isinstance(value, dict):
        return any(map(_has_date, value.values()))
    return isinstance(value, datetime.date) or (isinstance(value, list) and any(map(_has_date, value)))


def check(declared: dict[str, Declared], values: Mapping[str, Any], origins: Mapping[str, str], notebook: str) -> None:
    """Refuse names the notebook does not declare and values of the wrong type, naming parameter and file."""
    unknown = sorted(set(values) - set(declared))
    if unknown:
        where = ", ".join(f"{name} (from {origins.get(name, 'the command line')})" for name in unknown)
        raise ParameterError(f"{notebook} does not declare {where}; its parameters are: {', '.join(declared)}")
    for name, value in values.items():
        kind = declared[name].kind
        if not matches(kind, value):
            raise ParameterError(
                f"{name} from {origins.get(name, 'the command line')}: expected {TYPE_NAMES[kind]}, "
                f"got {value!r} ({type(value).__name__})"
                f"{YAML11_HINT.get(kind, '') if isinstance(value, (str, bool)) else DATE_HINT if _has_date(value) else ''}"
            )


def parse_value(declared: Declared, raw: str) -> Any:
    """Turn a command-line string into the declared parameter's type (`-p epochs 3`, `-p flag false`)."""
    kind = declared.kind
    try:
        if kind is bool:
            return {"true": True, "false": False}[raw.strip().lower()]
        if kind in (int, float):
            return kind(raw)
        if kind is list:
            return yaml.safe_load(raw)
        return raw
    except (KeyError, ValueError):
        raise ParameterError(f"-p {declared.name} {raw}: expected {TYPE_NAMES[kind]}") from None


def require_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """`value` if it is an integer (not a bool, not 42.0, not "42") within bounds, else a ParameterError."""
    if not matches(int, value):
        raise ParameterError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    _check_range(name, value, minimum, maximum, inclusive=True)
    return value


def require_float(name: str, value: Any, minimum: float | None = None, maximum: float | None = None, inclusive: bool = True) -> float:
    """`value` as a float if it is a finite number within bounds, else a ParameterError."""
    if not matches(float, value):
        hint = YAML11_HINT[float] if isinstance(value, str) else ""
        raise ParameterError(f"{name} must be a finite number, got {value!r} ({type(value).__name__}){hint}")
    _check_range(name, value, minimum, maximum, inclusive)
    return float(value)


def require_str(name: str, value: Any) -> str:
    """`value` if it is a string, else a ParameterError."""
    if not isinstance(value, str):
        raise ParameterError(f"{name} must be a string, got {value!r} ({type(value).__name__}){YAML11_HINT[str]}")
    return value


def require_bool(name: str, value: Any) -> bool:
    """`value` if it is a real boolean (not the string "false"), else a ParameterError."""
    if not isinstance(value, bool):
        raise ParameterError(f"{name} must be true or false, got {value!r} ({type(value).__name__})")
    return value


def require_choice(name: str, value: Any, choices: Mapping | list | tuple) -> str:
    """`value` if it is one of `choices`, else a ParameterError listing them."""
    if require_str(name, value) not in choices:
        raise ParameterError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _check_range(name: str, value: float, minimum: float | None, maximum: float | None, inclusive: bool) -> None:
    low_ok = minimum is None or (value >= minimum if inclusive else value > minimum)
    high_ok = maximum is None or value <= maximum
    if not (low_ok and high_ok):
        low = "-inf" if minimum is None else minimum
        bracket = "[" if inclusive else "("
        raise ParameterError(f"{name} = {value} is outside {bracket}{low}, {'inf' if maximum is None else maximum}]")
