"""`make mutate` only (tests/mutation/child_hits.py): a child process started while mutmut collects its stats
writes the functions it reached to a file when it exits."""

import atexit
import json
import os


def _write_hits() -> None:
    try:
        from mutmut.state import state
    except ImportError:
        return
    hits = sorted(state()._stats)
    if hits:
        path = os.path.join(os.environ["MUTATE_CHILD_HITS"], f"{os.getpid()}.json")
        with open(path + ".part", "w") as f:
            json.dump(hits, f)
        os.replace(path + ".part", path)


def _read_configuration(root: str) -> None:
    """mutmut reads its setup.cfg from the working folder when it records a first hit: read it now, from mutmut's
    folder, as a child (a kernel in its notebook's folder, a command in a project) may run elsewhere."""
    here = os.getcwd()
    try:
        os.chdir(root)
        from mutmut.configuration import config

        config()
    finally:
        os.chdir(here)


if os.environ.get("MUTANT_UNDER_TEST") == "stats" and os.environ.get("MUTATE_CHILD_HITS"):
    if os.environ.get("MUTATE_ROOT"):
        _read_configuration(os.environ["MUTATE_ROOT"])
    atexit.register(_write_hits)
