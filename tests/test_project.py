"""Project-level contracts: pins, parameter files vs notebooks vs dvc.yaml, thin notebooks."""

from __future__ import annotations

import io
import re
import subprocess
import shlex
import sys

import pytest
import yaml
from ruamel.yaml import YAML

from conftest import REPO
from mnist_lib import notebooks, params

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
NOTEBOOK_STAGES = {name: stage for name, stage in DVC["stages"].items() if "mnist run" in stage["cmd"]}
PARAM_FILES = sorted((REPO / "params").glob("*.yaml")) + sorted((REPO / "params" / "profiles").glob("*.yaml"))


def pins(lines: list[str]) -> dict[str, str]:
    found = {}
    for line in lines:
        match = re.fullmatch(r"\s*(?:-\s*)?([A-Za-z0-9_.\-]+)==(\S+)\s*", line)
        if match:
            found[match[1].lower()] = match[2]
    return found


def stage_call(stage: dict) -> tuple[str, list[str], dict[str, str]]:
    """Notebook, parameter files and -p values of a `mnist run` stage command."""
    words = shlex.split(stage["cmd"])
    notebook = words[words.index("run") + 1]
    files = [words[i + 1] for i, word in enumerate(words) if word == "-f"]
    values = {words[i + 1]: words[i + 2] for i, word in enumerate(words) if word == "-p"}
    return notebook, files, values


def test_requirements_and_environment_pin_the_same_versions():
    required = pins((REPO / "requirements.txt").read_text().splitlines())
    environment = pins((REPO / "environment.yml").read_text().splitlines())
    assert required == environment
    assert len(required) > 100  # every dependency, not only the direct ones


def test_the_gpu_requirements_pin_the_same_tensorflow_and_every_cuda_library_exactly():
    lines = [line for line in (REPO / "requirements-gpu.txt").read_text().splitlines() if not line.startswith("#")]
    assert lines[0] == f"tensorflow[and-cuda]=={pins((REPO / 'requirements.txt').read_text().splitlines())['tensorflow']}"
    assert all(re.fullmatch(r"nvidia-[a-z0-9-]+-cu12==[0-9.]+", line) for line in lines[1:]), lines
    assert {"nvidia-cudnn-cu12", "nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12"} <= set(pins(lines[1:]))


def test_make_setup_installs_the_gpu_libraries_only_when_asked():
    def planned(*args: str) -> str:
        done = subprocess.run(["make", "-n", "-B", "setup", *args], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout
    assert "requirements-gpu.txt" not in planned()
    assert "pip install --quiet -r requirements-gpu.txt" in planned("GPU=1")


def test_pins_are_above_the_known_keras_advisories():
    version = tuple(int(part) for part in pins((REPO / "requirements.txt").read_text().splitlines())["keras"].split("."))
    assert version >= (3, 15, 1)


@pytest.mark.parametrize("path", PARAM_FILES, ids=lambda p: p.name)
def test_parameter_file_means_the_same_to_papermill_and_dvc(path):
    papermill_view = yaml.safe_load(path.read_text())  # YAML 1.1, as papermill reads -f files
    dvc_view = YAML(typ="safe", pure=True).load(io.StringIO(path.read_text()))  # YAML 1.2, as DVC reads params
    assert papermill_view == dvc_view
    assert all(type(papermill_view[key]) is type(dvc_view[key]) for key in papermill_view)


@pytest.mark.parametrize("stage", sorted(NOTEBOOK_STAGES))
def test_stage_parameters_equal_the_notebook_parameters_cell(stage):
    notebook, files, values = stage_call(NOTEBOOK_STAGES[stage])
    declared = params.declared_parameters(notebooks.read_notebook(REPO / notebook).cells)
    from_files, _ = params.load_files([REPO / name for name in files])
    assert set(from_files) | set(values) == set(declared), "params files + dvc.yaml paths must cover the notebook exactly"
    for name, value in from_files.items():
        assert declared[name].default == value, f"{name}: notebook default differs from {files}"
    for name, value in values.items():
        if name == "out_dir":  # the pipeline's folder comes from dvc.yaml alone; the notebook's default is scratch
            assert value in NOTEBOOK_STAGES[stage]["outs"], f"-p out_dir {value} must be an out of stage {stage}"
            continue
        assert declared[name].default == value, f"{name}: notebook default differs from dvc.yaml"
    tracked = {path for entry in NOTEBOOK_STAGES[stage]["params"] for path in entry}
    assert set(files) <= tracked, "every -f file must be a tracked DVC params file of the stage"


@pytest.mark.parametrize("stage", sorted(NOTEBOOK_STAGES))
def test_every_parameter_has_a_comment(stage):
    notebook, _, _ = stage_call(NOTEBOOK_STAGES[stage])
    declared = params.declared_parameters(notebooks.read_notebook(REPO / notebook).cells)
    assert all(entry.help for entry in declared.values())


@pytest.mark.parametrize("path", sorted((REPO / "notebooks").glob("*.py")), ids=lambda p: p.name)
def test_notebooks_are_thin(path):
    source = path.read_text()
    forbidden = [r"^\s*(def|class) ", r"^\s*!", r"os\.chdir", r"import \*", r"warnings\.(filterwarnings|simplefilter)"]
    for pattern in forbidden:
        assert not re.search(pattern, source, re.MULTILINE), f"{path.name} matches {pattern}"
    assert source.count('tags=["parameters"]') == 1
    assert source.startswith("# %% [markdown]\n# # ")


DVC_OUTS = [out for stage in DVC["stages"].values() for out in stage.get("outs", [])]


@pytest.mark.parametrize("path", sorted((REPO / "notebooks").glob("*.py")), ids=lambda p: p.name)
def test_notebook_defaults_write_only_to_scratch_never_to_a_dvc_output(path):
    declared = params.declared_parameters(notebooks.read_notebook(path).cells)
    if "out_dir" not in declared:
        return  # a notebook that writes nothing (the sweep report only shows)
    default = declared["out_dir"].default
    assert default == f"outputs/scratch/{path.stem}", f"{path.name}: out_dir defaults to {default}"
    inside = [out for out in DVC_OUTS if default == out or default.startswith(out.rstrip("/") + "/")]
    assert not inside, f"{path.name}: the default out_dir {default} lies in DVC-tracked {inside}"


def test_each_stage_depends_on_its_own_notebook():
    for name, stage in NOTEBOOK_STAGES.items():
        notebook, _, _ = stage_call(stage)
        assert notebook in stage["deps"], name


@pytest.mark.parametrize("path", sorted((REPO / "params" / "profiles").glob("*.yaml")), ids=lambda p: p.name)
def test_each_profile_sets_only_train_parameters_and_gives_a_valid_configuration(path):
    from mnist_lib import recipe

    declared = params.declared_parameters(notebooks.read_notebook(REPO / "notebooks" / "03_train.py").cells)
    profile, _ = params.load_files([path])
    assert set(profile) <= set(declared), f"{path.name}: not train parameters: {set(profile) - set(declared)}"
    defaults, _ = params.load_files([REPO / "params" / "train.yaml"])
    recipe.TrainConfig(**{**defaults, **profile})
    assert "mnist run notebooks/03_train.py -f params/profiles/" + path.name in path.read_text()


@pytest.mark.parametrize("config_class, params_file", [("recipe.TrainConfig", "train.yaml"),
                                                       ("evaluation.EvaluateConfig", "evaluate.yaml")])
def test_config_class_defaults_are_the_parameter_file_values(config_class, params_file):
    import dataclasses
    import importlib

    module, name = config_class.split(".")
    cls = getattr(importlib.import_module(f"mnist_lib.{module}"), name)
    defaults = {field.name: field.default for field in dataclasses.fields(cls)}
    from_file = yaml.safe_load((REPO / "params" / params_file).read_text())
    assert defaults == from_file, f"{config_class}'s defaults must equal params/{params_file} (one default per parameter)"


def test_the_readme_module_tour_states_each_modules_own_job():
    import ast

    tour = (REPO / "README.md").read_text().split("## The library, module by module", 1)[1].split("\n## ", 1)[0]
    listed = dict(re.findall(r"^\| `(\w+)` \| (.+) \|$", tour, flags=re.M))
    jobs = {path.stem: ast.get_docstring(ast.parse(path.read_text())).split("\n\n")[0].replace("\n", " ")
            for path in sorted((REPO / "mnist_lib").glob("*.py")) if path.stem != "__init__"}
    assert listed == jobs, "README's module tour must list every mnist_lib module with its docstring's first paragraph"


def test_xdist_workers_take_the_longest_test_files_first_then_the_rest_in_collection_order():
    """`make test` spreads whole files over pytest-xdist workers; conftest's LONGEST_FILES is only worth its order
    if xdist keeps it (by default it hands out the files with the most tests first)."""
    longest = "tests/test_evaluation.py::test_summary_counts_accuracy_loss_and_errors"  # a file in LONGEST_FILES
    given = ["tests/test_paths.py", "tests/test_stats.py", longest]  # 3 tests, 18 tests, then 1
    done = subprocess.run([sys.executable, "-m", "pytest", "-n", "1", "--dist", "loadfile", "-v", "-p",
                           "no:cacheprovider", *given], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    order = list(dict.fromkeys(re.findall(r"PASSED (tests/[\w/]+\.py)::", done.stdout)))
    assert order == ["tests/test_evaluation.py", "tests/test_paths.py", "tests/test_stats.py"]
