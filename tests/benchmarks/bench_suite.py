"""The test suite's wall time: the whole `pytest` run (`make bench-suite`), written to outputs/bench/test_suite.json.

    python tests/benchmarks/bench_suite.py [-- PYTEST ARGUMENTS]

Takes as long as the suite (minutes). The exit status is pytest's; the timing is written whatever the outcome.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import benchlib

SECTION = {"section": "suite", "title": "Test suite", "order": 90}
FILENAME = "test_suite.json"


def counts(output: str) -> dict[str, int]:
    """Outcome counts from pytest's last summary line ('3 passed, 1 skipped in 2.50s')."""
    lines = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|error|skipped)", line)]
    found = re.findall(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)", lines[-1]) if lines else []
    return {outcome.rstrip("s") if outcome.startswith("error") else outcome: int(n) for n, outcome in found}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="where test_suite.json goes (default: outputs/bench)")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (default: the whole suite)")
    args = parser.parse_args(argv)

    done = benchlib.run_command([sys.executable, "-m", "pytest", "-q", *args.pytest_args],
                                benchlib.REPO, check=False)
    print(done.stdout[-3000:], done.stderr[-2000:], sep="\n")
    found = counts(done.stdout)
    benchlib.write_section({
        **SECTION, "command": "make bench-suite" if not args.pytest_args else benchlib.command_line(__file__, argv),
        "seconds": round(done.seconds, 1),
        "columns": ["what", "wall (s)", "passed", "failed", "errors", "skipped", "peak RSS (MiB)"],
        "rows": [[f"pytest {' '.join(args.pytest_args) or '(the whole suite, as `make test`)'}, exit status {done.returncode}",
                  round(done.seconds, 1), found.get("passed", 0), found.get("failed", 0), found.get("error", 0),
                  found.get("skipped", 0), round(done.peak_rss_mib)]],
        "notes": ["One run of pytest in this repo (the slow end-to-end tests included, as `make test` runs them); the "
                  "peak RSS is that of the largest single process it started."],
        "targets": [],
    }, args.out, FILENAME)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
