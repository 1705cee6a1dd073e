"""`make mutate`'s table: each module's score counted by hand from a mutmut record written here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "tests" / "mutation"))
import mutate  # noqa: E402


def test_score_counts_timeouts_as_killed_and_untested_as_not_and_leaves_out_only_equivalent_survivors(tmp_path):
    meta = tmp_path / "params" / "mutants" / "mnist_lib" / "params.py.meta"
    meta.parent.mkdir(parents=True)
    codes = {"m1": 1, "m2": 1, "m3": 0, "m4": 0, "m5": 33, "m6": 36, "m7": None, "m8": 1}
    meta.write_text(json.dumps({"exit_code_by_key": {f"mnist_lib.params.x_f__mutmut_{k[1]}": v for k, v in codes.items()}}))
    equivalent = tmp_path / "equivalent.yaml"
    # m4 survived and is judged equivalent; m8 is listed too but was killed, so it is not left out
    equivalent.write_text("params:\n  mnist_lib.params.x_f__mutmut_4: same value\n  mnist_lib.params.x_f__mutmut_8: x\n")
    page = mutate.render(tmp_path, equivalent)
    row = next(line for line in page.splitlines() if line.startswith("| params |"))
    # 8 mutants; killed: m1, m2, m8 and the timeout m6 = 4; survived: m3; not tested: m5 (no tests), m7 (not run);
    # equivalent: m4; score 4 / (8 - 1) = 57%
    assert row.split(" | ")[2:] == ["8", "4", "1", "2", "1", "57%", "**missed** |"]
    assert "- `mnist_lib.params.x_f__mutmut_4` equivalent: same value" in page
    assert "- `mnist_lib.params.x_f__mutmut_3` survived" in page and "Not tested (2): `x_f__mutmut_5`, `x_f__mutmut_7`" in page
    assert "| split | tests/test_split.py | not run |" in page


def test_a_module_tried_in_part_counts_only_the_mutants_of_its_functions(tmp_path):
    meta = tmp_path / "training" / "mutants" / "mnist_lib" / "training.py.meta"
    meta.parent.mkdir(parents=True)
    codes = {"x_fit__mutmut_1": 1, "x_fit__mutmut_2": 0, "x_train__mutmut_1": 1, "x_history_path__mutmut_1": 1,
             "x_compile_model__mutmut_1": None, "x_training_batches__mutmut_1": 0}  # the last two: out of scope
    meta.write_text(json.dumps({"exit_code_by_key": {f"mnist_lib.training.{k}": v for k, v in codes.items()}}))
    (tmp_path / "equivalent.yaml").write_text("")
    page = mutate.render(tmp_path, tmp_path / "equivalent.yaml")
    row = next(line for line in page.splitlines() if line.startswith("| training (fit, train, history_path) |"))
    assert row.split(" | ")[2:] == ["4", "3", "1", "0", "0", "75%", "**missed** |"]  # 3 killed of 4 in scope
    assert "x_compile_model" not in page and "x_training_batches" not in page


def test_a_child_process_hands_its_function_hits_to_the_test_that_started_it(tmp_path):
    """What mutmut records in a child process (sitecustomize.py) reaches the test's record (child_hits.py)."""
    import child_hits

    env = {**os.environ, "PYTHONPATH": str(REPO / "tests" / "mutation"), "MUTANT_UNDER_TEST": "stats",
           "MUTATE_CHILD_HITS": str(tmp_path)}
    script = "from mutmut.state import state; state()._stats.update({'mnist_lib.executors.x_main', 'mnist_lib.executors.x_run_step'})"
    subprocess.run([sys.executable, "-c", script], env=env, check=True)
    assert [path.suffix for path in tmp_path.iterdir()] == [".json"]  # one file, complete
    assert child_hits.child_hits(tmp_path) == {"mnist_lib.executors.x_main", "mnist_lib.executors.x_run_step"}
    assert list(tmp_path.iterdir()) == []  # read once
    subprocess.run([sys.executable, "-c", script], env={**env, "MUTANT_UNDER_TEST": "mnist_lib.executors.x_main__mutmut_1"},
                   check=True)
    assert list(tmp_path.iterdir()) == []  # a mutant's run records nothing
