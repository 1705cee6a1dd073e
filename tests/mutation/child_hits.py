"""pytest plugin for `make mutate`: a test's child processes run the mutated code, and the functions they reach
count as reached by that test.

A child started from another folder (`mnist run` from notebooks/, a kernel in its notebook's folder) would import
mnist_lib from the editable install, the unmutated sources: the plugin puts mutmut's copy first on every child's
PYTHONPATH. mutmut 3 learns which tests reach a function by recording hits in its own pytest process only. A sweep's steps
(`python -m mnist_lib.executors`), `mnist ...` commands and notebook kernels are child processes, so the code they
run counted as reached by no test and its mutants were never tried. While mutmut collects its stats this plugin
puts `sitecustomize.py` (beside it) on the children's PYTHONPATH; each child writes its hits to a file when it
exits, and the plugin adds them to the running test's before mutmut files them under it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

FOLDER = "MUTATE_CHILD_HITS"  # where children write their hits (one JSON list per process)
ROOT = "MUTATE_ROOT"  # where a child reads mutmut's configuration (a kernel starts in its notebook's folder)


def collecting() -> bool:
    return os.environ.get("MUTANT_UNDER_TEST") == "stats"


def pytest_configure(config: pytest.Config) -> None:
    import mnist_lib

    mutated = str(Path(mnist_lib.__file__).resolve().parents[1])  # the mnist_lib this process imports: mutmut's copy
    here = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [mutated, here, os.environ.get("PYTHONPATH")]))
    if collecting() and FOLDER not in os.environ:
        os.environ[FOLDER] = tempfile.mkdtemp(prefix="mutate-hits-")
        os.environ[ROOT] = str(Path(mutated).parent)  # mutmut's working folder, where its setup.cfg is


def child_hits(folder: Path) -> set[str]:
    """The hits every finished child wrote, its files removed."""
    hits: set[str] = set()
    for path in folder.glob("*.json"):
        try:
            hits.update(json.loads(path.read_text()))
        except (OSError, ValueError):  # a child still writing: its hits go to the next test at worst
            continue
        path.unlink()
    return hits


@pytest.hookimpl(tryfirst=True)  # before mutmut's own teardown hook files the hits under this test
def pytest_runtest_teardown(item: pytest.Item) -> None:
    if collecting() and os.environ.get(FOLDER):
        from mutmut.state import state

        state()._stats.update(child_hits(Path(os.environ[FOLDER])))


def pytest_unconfigure(config: pytest.Config) -> None:
    if collecting() and os.environ.get(FOLDER):
        shutil.rmtree(os.environ.pop(FOLDER), ignore_errors=True)
