"""`make mutate`'s table: each module's score counted by hand from a mutmut record written here."""

from __future__ import annotations

import json
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
