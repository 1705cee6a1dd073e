"""The sweep file: a grid of parameter values expanded into runs, each a chain of notebooks with complete parameters
and a stable, readable id; everything validated before anything runs."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mnist_lib import notebooks, params
from mnist_lib.params import ParameterError

SPEC_KEYS = {"description", "chain", "fixed", "grid", "zip", "runs"}
STEP_KEYS = {"notebook", "parameter_files", "paths"}
MAX_ID_LENGTH = 80


@dataclass(frozen=True)
class Step:
    """One notebook of a run's chain: its base parameter files and its path parameters ({run} is the run folder)."""

    notebook: str
    parameter_files: tuple[str, ...]
    paths: dict[str, str]


@dataclass(frozen=True)
class Run:
    """One combination: the swept values, and per step the complete parameters the notebook gets."""

    run_id: str
    swept: dict[str, Any]
    values: tuple[dict[str, Any], ...]


@dataclass
class Sweep:
    """A validated sweep file: its name, chain of notebooks and expanded runs."""

    name: str
    path: Path
    chain: tuple[Step, ...]
    runs: list[Run]
    swept_names: list[str] = field(default_factory=list)


def _mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ParameterError(f"{where} must be a mapping of name: value, got {type(value).__name__}")
    return value


def _lists(value: Any, where: str) -> dict[str, list]:
    mapping = _mapping(value, where)
    for name, choices in mapping.items():
        if not isinstance(choices, list) or not choices:
            raise ParameterError(f"{where}.{name} must be a non-empty list of values, got {choices!r}")
    return mapping


def combinations(spec: dict, where: str) -> list[dict[str, Any]]:
    """The runs a sweep spec asks for: the cartesian product of `grid` times the rows of `zip`, then `runs`."""
    grid, zipped = _lists(spec.get("grid"), f"{where}: grid"), _lists(spec.get("zip"), f"{where}: zip")
    lengths = {name: len(choices) for name, choices in zipped.items()}
    if len(set(lengths.values())) > 1:
        raise ParameterError(f"{where}: zip lists must have equal lengths, got {lengths}")
    both = set(grid) & set(zipped)
    if both:
        raise ParameterError(f"{where}: {', '.join(sorted(both))} is in both grid and zip")
    combos = []
    if grid or zipped:
        zip_rows = [dict(zip(zipped, row)) for row in zip(*zipped.values())] or [{}]
        for values in itertools.product(*grid.values()):
            combos += [{**dict(zip(grid, values)), **row} for row in zip_rows]
    explicit = spec.get("runs") or []
    if not isinstance(explicit, list):
        raise ParameterError(f"{where}: runs must be a list of name: value mappings")
    combos += [_mapping(run, f"{where}: runs[{index}]") for index, run in enumerate(explicit)]
    if not combos:
        raise ParameterError(f"{where}: no runs; give a grid, zip lists or a list of runs")
    return combos


def _format(value: Any) -> str:
    text = format(value, "g") if isinstance(value, float) else str(value).lower() if isinstance(value, bool) else str(value)
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text)


def run_id(swept: dict[str, Any], values: tuple[dict[str, Any], ...]) -> str:
    """A readable id from the swept values plus a short hash of every value the notebooks get (stable across calls)."""
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:6]
    readable = "_".join(f"{name}-{_format(value)}" for name, value in swept.items())[:MAX_ID_LENGTH]
    return f"{readable}_{digest}" if readable else digest


def load(path: str | Path, root: str | Path = ".") -> Sweep:
    """Read and validate a sweep file: every step's notebook and files exist, every swept name is declared by a
    notebook of the chain, and every run's values have the declared types; nothing runs before this passes."""
    path, root = Path(path), Path(root)
    try:
        spec = yaml.safe_load(path.read_text())  # YAML 1.1, as papermill reads parameter files
    except (OSError, yaml.YAMLError) as err:
        raise ParameterError(f"{path}: cannot read the sweep file ({err})") from None
    spec = _mapping(spec, str(path))
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise ParameterError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; a sweep file has {', '.join(sorted(SPEC_KEYS))}")
    chain = []
    for index, step in enumerate(spec.get("chain") or []):
        step = _mapping(step, f"{path}: chain[{index}]")
        if set(step) - STEP_KEYS or "notebook" not in step:
            raise ParameterError(f"{path}: chain[{index}] needs `notebook` and may have `parameter_files`, `paths`")
        chain.append(Step(str(step["notebook"]), tuple(map(str, step.get("parameter_files") or [])),
                          {name: str(value) for name, value in _mapping(step.get("paths"), f"chain[{index}].paths").items()}))
    if not chain:
        raise ParameterError(f"{path}: chain must list at least one notebook")
    declared, base = [], []
    for step in chain:
        if not (root / step.notebook).is_file():
            raise ParameterError(f"{path}: notebook {step.notebook} does not exist")
        declared.append(params.declared_parameters(notebooks.read_notebook(root / step.notebook).cells))
        values, _ = params.load_files([root / name for name in step.parameter_files])
        base.append(values)
    fixed = _mapping(spec.get("fixed"), f"{path}: fixed")
    all_declared = sorted({name for names in declared for name in names})
    runs, seen = [], {}
    combos = combinations(spec, str(path))
    swept_names = list(dict.fromkeys(name for combo in combos for name in combo))
    for number, combo in enumerate(combos, start=1):
        wanted = {**fixed, **combo}
        orphans = [name for name in wanted if not any(name in names for names in declared)]
        if orphans:
            raise ParameterError(f"{path}: run {number} sets {', '.join(orphans)}, which no notebook of the chain "
                                 f"declares; the declared parameters are: {', '.join(all_declared)}")
        values = []
        for step, names, defaults in zip(chain, declared, base):
            merged = {**defaults, **{name: value for name, value in wanted.items() if name in names}}
            origins = {name: f"{path} (run {number})" if name in wanted else "its parameter files" for name in merged}
            params.check(names, merged, origins, step.notebook)
            values.append(merged)
        run = Run(run_id(combo, tuple(values)), combo, tuple(values))
        if run.run_id in seen:
            raise ParameterError(f"{path}: runs {seen[run.run_id]} and {number} are the same combination")
        seen[run.run_id] = number
        runs.append(run)
    return Sweep(path.stem, path, tuple(chain), runs, swept_names)
