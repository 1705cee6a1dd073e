"""`make mutate`: mutation testing (mutmut, pinned in requirements.txt) of the modules that decide what runs and
what is kept, each module's mutants against its own fast tests, then MUTATION.md rendered from the results.

Each module is tested in its own working copy, outputs/mutate/<module>/ (mnist_lib, tests, params, notebooks and
a setup.cfg naming the module and its tests), so its mutants meet only the tests chosen for it. Code a test runs in
a child process (a sweep's steps, `mnist` commands, notebook kernels) counts as reached by that test
(tests/mutation/child_hits.py). mutmut keeps
every result there: a rerun tests only what is new or changed, and `--table-only` renders without testing.
Surviving mutants judged equivalent (no behaviour can tell them apart) are listed, with the reason, in
tests/mutation/equivalent.yaml; the score counts them out.

    python tests/mutation/mutate.py                    # every module
    python tests/mutation/mutate.py --modules params   # one or a few
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
EQUIVALENT = Path(__file__).with_name("equivalent.yaml")
TARGET = 0.85  # killed share of the non-equivalent mutants, per module
# module -> the test files that claim its behaviour ("-m 'not slow'" is added, but for SLOW_TOO's modules)
MODULES: dict[str, list[str]] = {
    "params": ["tests/test_params.py", "tests/test_runner.py", "tests/test_training.py", "tests/test_formats.py"],
    "notebooks": ["tests/test_runner.py"],
    "split": ["tests/test_split.py"],
    "sweeps": ["tests/test_sweep_file.py", "tests/test_sweeps.py"],
    "executors": ["tests/test_sweeps.py"],
    "resume": ["tests/test_training.py"],
    "training": ["tests/test_training.py", "tests/test_recipes.py"],
    "modelfile": ["tests/test_modelfile.py"],
    "reports": ["tests/test_report_index.py", "tests/test_reports.py"],
}
# modules tried in part: only their functions named here (the rest of training builds and compiles models, whose
# mistakes the accuracy figures show; the rest of reports renders HTML, which the slow tests check in Chromium)
FUNCTIONS: dict[str, tuple[str, ...]] = {
    "training": ("fit", "train", "history_path"),
    "reports": ("build", "headline", "_results", "_recipe", "_entry", "_definition_list", "_format", "key_figures",
                "key_results", "first_figure", "title"),
}
# modules whose code runs in child processes, which only tests marked slow start: those run too, except these
# (a minute and more each, against every mutant)
SLOW_TOO: dict[str, list[str]] = {"executors": [
    "tests/test_sweeps.py::test_a_grid_and_added_runs_run_in_parallel_with_a_failing_run_reported_and_one_summary"]}
# what a module's score does not show, rendered under the table
NOTES = {
    "executors": "its code runs in a sweep's worker threads and in each step's child process "
                 "(`python -m mnist_lib.executors`); what a test's child processes reach counts for that test "
                 "(tests/mutation/child_hits.py). Not run against it: the grid test, which trains and evaluates three "
                 "models (other tests reach the same code in seconds).",
}
# tests that read the source text itself (mutmut's copy holds every mutant's code side by side): not run there
SOURCE_SCANS = ["tests/test_modelfile.py::test_no_code_loads_a_model_unsafely_or_around_the_hash_check"]
COPIED = ("mnist_lib", "tests", "params", "notebooks", "pyproject.toml", "dvc.yaml", "README.md")


KILLED = ("killed", "timeout", "segfault")  # mutmut's statuses of a mutant the tests noticed


def workdir(module: str, root: Path = REPO / "outputs" / "mutate") -> Path:
    return root / module


def prepare(module: str) -> Path:
    """A fresh copy of the sources and tests (mutmut's own results kept), with its setup.cfg."""
    folder = workdir(module)
    folder.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        source, target = REPO / name, folder / name
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "runs"))
        else:
            shutil.copy2(source, target)
    lists = {"pytest_add_cli_args_test_selection": sorted(MODULES[module]),
             "also_copy": ["params/", "notebooks/", "dvc.yaml", "README.md", "tests/"],
             "pytest_add_cli_args": ["-p", "no:xdist", "-p", "no:cacheprovider", "-p", "child_hits",
                                     *([] if module in SLOW_TOO else ["-m", "not slow"]),
                                     *(f"--deselect={test}" for test in SOURCE_SCANS + SLOW_TOO.get(module, []))]}
    (folder / "setup.cfg").write_text(  # mutmut reads a list as one item per line
        f"[mutmut]\nsource_paths = mnist_lib/\nonly_mutate = mnist_lib/{module}.py\nprocess_isolation = forkserver\n"
        + "".join(f"{key} =\n" + "".join(f"    {item}\n" for item in items) for key, items in lists.items())
    )
    return folder


def run(module: str) -> int:
    """Test the module's mutants not tested yet, and again those that survived (the tests may have changed)."""
    folder = prepare(module)
    # child_hits (and the sitecustomize its children load) from the working copy's tests/mutation
    plugins = str(folder / "tests" / "mutation")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join(filter(None, [plugins, os.environ.get("PYTHONPATH")]))}
    print(f"== mutate {module} ({', '.join(MODULES[module])})", flush=True)
    # which tests reach which function is learnt again: the tests, or what their child processes reach, may have
    # changed since (mutmut would only add new tests' hits)
    (folder / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
    # survivors are tested again, but for those judged equivalent: no test tells them apart, and each takes every test
    judged = (yaml.safe_load(EQUIVALENT.read_text()) or {}).get(module) or {}
    again = [name for name, status in results(folder, module).items()
             if status in ("survived", "no tests") and name not in judged]
    code = 0
    if again:
        code = subprocess.run([sys.executable, "-m", "mutmut", "run", *again], cwd=folder, env=env).returncode
    # then the mutants never tried: all of them (mutmut skips those with a result), or the module's in scope, named
    # (mutmut tries a named mutant even when it has a result: once recorded, only the untried ones are named)
    found = results(folder, module)
    if not FUNCTIONS.get(module) or not found:
        names = patterns(module)
    else:
        names = [name for name, status in found.items() if status == "not checked"]
        if not names:
            return code
    return code or subprocess.run([sys.executable, "-m", "mutmut", "run", *names], cwd=folder, env=env).returncode


def patterns(module: str) -> list[str]:
    """`mutmut run`'s arguments for the module's mutants in scope: none (all of them) or its FUNCTIONS'."""
    return [f"mnist_lib.{module}.x_{function}__mutmut_*" for function in FUNCTIONS.get(module, ())]


def results(folder: Path, module: str) -> dict[str, str]:
    """mutant name -> status ("killed", "survived", "no tests", "not checked", ...), from mutmut's record, for the
    mutants in scope (`patterns`)."""
    from mutmut.stats import status_by_exit_code

    meta = folder / "mutants" / "mnist_lib" / f"{module}.py.meta"
    if not meta.is_file():
        return {}
    scope = patterns(module)
    return {name: status_by_exit_code[code] for name, code in json.loads(meta.read_text())["exit_code_by_key"].items()
            if not scope or any(fnmatch.fnmatchcase(name, pattern) for pattern in scope)}


def diff(folder: Path, mutant: str) -> str:
    """The lines the mutant changes, as `mutmut show` prints them."""
    done = subprocess.run([sys.executable, "-m", "mutmut", "show", mutant], cwd=folder, capture_output=True, text=True)
    return "\n".join(line for line in done.stdout.splitlines() if line.startswith(("+", "-")) and
                     not line.startswith(("+++", "---")))


def render(root: Path = REPO / "outputs" / "mutate", equivalent_file: Path = EQUIVALENT) -> str:
    """MUTATION.md: the score table of every module, then each module's equivalent and surviving mutants."""
    equivalent = yaml.safe_load(equivalent_file.read_text()) or {}
    lines = ["# Mutation testing", "",
             f"`make mutate` (mutmut, {mutmut_version()}), rendered {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}. "
             "Each module's mutants ran against its own fast tests (`-m 'not slow'`; executors: its sweep tests but "
             "the one that takes minutes); a mutant is killed when a "
             "test fails or times out. Score: killed / (mutants - equivalent). Target: >= "
             f"{TARGET:.0%} per module.", "",
             "| module | tests | mutants | killed | survived | not tested (no test reached it, or not run) | equivalent | score | target |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    details = []
    for module in MODULES:
        folder = workdir(module, root)
        found = results(folder, module)
        if not found:
            lines.append(f"| {label(module)} | {', '.join(MODULES[module])} | not run | | | | | | |")
            continue
        same = {name: why for name, why in (equivalent.get(module) or {}).items() if found.get(name) == "survived"}
        killed = sum(status in KILLED for status in found.values())
        survived = [name for name, status in found.items() if status == "survived" and name not in same]
        untested = [name for name, status in found.items() if status not in KILLED and status != "survived"]
        counted = len(found) - len(same)
        score = killed / counted if counted else 1.0
        lines.append(f"| {label(module)} | {', '.join(MODULES[module])} | {len(found)} | {killed} | {len(survived)} | "
                     f"{len(untested)} | {len(same)} | {score:.0%} | {'met' if score >= TARGET else '**missed**'} |")
        if same or survived or untested:
            details += ["", f"## {module}", ""]
        for name, why in sorted(same.items()):
            details += [f"- `{name}` equivalent: {why}", "", "```diff", diff(folder, name), "```"]
        for name in sorted(survived):
            details += [f"- `{name}` survived", "", "```diff", diff(folder, name), "```"]
        if untested:  # named only: often whole functions no test reaches in the pytest process
            details += ["", f"Not tested ({len(untested)}): " + ", ".join(f"`{name.rpartition('.')[2]}`" for name in sorted(untested))]
    lines += [""] + [f"- **{module}:** {note}" for module, note in NOTES.items()]
    return "\n".join(lines + details) + "\n"


def label(module: str) -> str:
    """The module's name in the table, with the functions tried when only some are."""
    functions = FUNCTIONS.get(module)
    return f"{module} ({', '.join(functions)})" if functions else module


def mutmut_version() -> str:
    from importlib.metadata import version

    return version("mutmut")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", nargs="+", choices=sorted(MODULES), default=list(MODULES))
    parser.add_argument("--table-only", action="store_true", help="render MUTATION.md from the kept results")
    parser.add_argument("--out", type=Path, default=REPO / "MUTATION.md")
    args = parser.parse_args(argv)
    failed = [] if args.table_only else [module for module in args.modules if run(module) != 0]
    args.out.write_text(render())
    print(f"wrote {args.out}")
    if failed:
        print(f"mutmut failed for: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
