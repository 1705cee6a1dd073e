"""The sweep file, checked before anything runs: every refusal's exact message, and run ids spelled out by hand."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from mnist_lib import sweeps
from mnist_lib.params import ParameterError

TRAIN = {"notebook": "notebooks/03_train.py", "parameter_files": ["params/train.yaml"], "paths": {"out_dir": "{run}/train"}}


def write(tmp_path: Path, spec) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def refusal(path: Path) -> str:
    with pytest.raises(ParameterError) as caught:
        sweeps.load(path, REPO)
    return str(caught.value)


def test_run_ids_spell_the_swept_values_then_a_hash_of_every_value():
    values = ({"b": 1, "a": Path("x")},)
    digest = hashlib.sha256(b'[{"a": "x", "b": 1}]').hexdigest()[:6]  # keys sorted, a Path written as its text
    assert sweeps.run_id({"learning_rate": 0.30000000000000004, "tta": True, "name": "A b/c", "lr": 1e-05}, values) == (
        f"learning_rate-0.3_tta-true_name-A-b-c_lr-1e-05_{digest}")
    assert sweeps.run_id({}, values) == digest
    assert sweeps.run_id({"n": 1}, ({"a": Path("x"), "b": 1},)) == f"n-1_{digest}"  # the order of the keys does not count
    long = sweeps.run_id({"name": "x" * 100}, values)
    assert long == f"name-{'x' * 75}_{digest}"  # the readable part is cut at 80 characters


@pytest.mark.parametrize(("spec", "message"), [
    ([1], "{path} must be a mapping of name: value, got list"),
    ({"chain": [TRAIN], "grid": {"seed": [1]}, "foo": 1, "bar": 2},
     "{path}: unknown key(s) bar, foo; a sweep file has chain, description, fixed, grid, runs, zip"),
    ({"chain": [1], "grid": {"seed": [1]}}, "{path}: chain[0] must be a mapping of name: value, got int"),
    ({"chain": [{"paths": {}}], "grid": {"seed": [1]}},
     "{path}: chain[0] needs `notebook` and may have `parameter_files`, `paths`"),
    ({"chain": [{**TRAIN, "paths": [1]}], "grid": {"seed": [1]}}, "chain[0].paths must be a mapping of name: value, got list"),
    ({"chain": [], "grid": {"seed": [1]}}, "{path}: chain must list at least one notebook"),
    ({"chain": [TRAIN], "fixed": [1], "grid": {"seed": [1]}}, "{path}: fixed must be a mapping of name: value, got list"),
    ({"chain": [TRAIN], "grid": {"seed": 3}}, "{path}: grid.seed must be a non-empty list of values, got 3"),
    ({"chain": [TRAIN], "grid": [1]}, "{path}: grid must be a mapping of name: value, got list"),
    ({"chain": [TRAIN], "zip": [1]}, "{path}: zip must be a mapping of name: value, got list"),
    ({"chain": [TRAIN], "grid": {"seed": [1], "epochs": [1]}, "zip": {"epochs": [2], "seed": [3]}},
     "{path}: epochs, seed is in both grid and zip"),
    ({"chain": [TRAIN], "runs": {"seed": 1}}, "{path}: runs must be a list of name: value mappings"),
    ({"chain": [TRAIN], "runs": [{"seed": 1}, 2]}, "{path}: runs[1] must be a mapping of name: value, got int"),
])
def test_a_bad_sweep_file_is_refused_with_its_exact_message(tmp_path, spec, message):
    path = write(tmp_path, spec)
    assert refusal(path) == message.format(path=path)


def test_an_unreadable_sweep_file_is_named(tmp_path):
    assert refusal(tmp_path / "none.yaml").startswith(f"{tmp_path / 'none.yaml'}: cannot read the sweep file ([Errno 2]")


def test_a_sweep_keeps_its_chain_paths_and_lists_the_swept_names_in_first_seen_order(tmp_path):
    sweep = sweeps.load(write(tmp_path, {"chain": [TRAIN], "fixed": {"epochs": 1},
                                         "grid": {"seed": [1, 2]}, "runs": [{"learning_rate": 0.01}]}), REPO)
    assert sweep.chain == (sweeps.Step("notebooks/03_train.py", ("params/train.yaml",), {"out_dir": "{run}/train"}),)
    assert sweep.swept_names == ["seed", "learning_rate"]
    assert [run.swept for run in sweep.runs] == [{"seed": 1}, {"seed": 2}, {"learning_rate": 0.01}]
    train_defaults = yaml.safe_load((REPO / "params" / "train.yaml").read_text())
    assert sweep.runs[2].values == ({**train_defaults, "epochs": 1, "learning_rate": 0.01},)
