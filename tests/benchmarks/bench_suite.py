"""The test suite's wall time: the whole `pytest` run (`make bench-suite`), written to outputs/bench/test_suite.json.

    python tests/benchmarks/bench_suite.py [--workers 0,2] [-- PYTEST ARGUMENTS]

Each `--workers` value is one run of the suite, one after the other in this process: 0 runs it in one process,
N > 0 in N pytest-xdist worker processes (`-n N --dist loadfile`: a file's tests stay on one worker, as `make
test` runs them), so serial and parallel are compared on the same machine in the same run. Takes as long as the
runs (minutes each). The exit status is the worst of pytest's; the timings are written whatever the outcome.
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


def targets(seconds: float, workers: int) -> list[dict]:
    """The whole suite's targets: under the 10-minute limit of `make test`, and under the 6 minutes aimed at."""
    measured = f"{seconds:.0f} s ({f'{workers} workers' if workers else 'one process'})"
    return [{"target": f"the whole suite as `make test` runs it under {minutes} minutes{aim}",
             "met": seconds < minutes * 60, "measured": measured} for minutes, aim in ((10, ""), (6, " (the aim)"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="where test_suite.json goes (default: outputs/bench)")
    parser.add_argument("--workers", type=lambda text: [int(value) for value in text.split(",")], default=[2],
                        help="comma-separated, one run per value: 0 = one process, N = N xdist workers (default: 2, "
                             "as make test)")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (default: the whole suite)")
    args = parser.parse_args(argv)

    rows, seconds, worst, last = [], {}, 0, args.workers[-1]
    for workers in args.workers:
        spread = ["-n", str(workers), "--dist", "loadfile"] if workers else ["-p", "no:xdist"]
        done = benchlib.run_command([sys.executable, "-m", "pytest", "-q", *spread, *args.pytest_args],
                                    benchlib.REPO, check=False)
        print(done.stdout[-3000:], done.stderr[-2000:], sep="\n")
        found, seconds[workers], worst = counts(done.stdout), round(done.seconds, 1), max(worst, done.returncode)
        rows.append([f"pytest {' '.join(spread + args.pytest_args)}, exit status {done.returncode}",
                     seconds[workers], found.get("passed", 0), found.get("failed", 0), found.get("error", 0),
                     found.get("skipped", 0), round(done.peak_rss_mib)])
    notes = ["Runs of pytest in this repo, one after the other (the slow end-to-end tests included, as `make test` "
             "runs them); the peak RSS is that of the largest single process a run started."]
    if 0 in seconds and len(seconds) > 1:
        notes += [f"{workers} workers: {seconds[0] / value:.2f}x the speed of one process ({value:.0f} s vs "
                  f"{seconds[0]:.0f} s)" for workers, value in seconds.items() if workers]
    benchlib.write_section({
        **SECTION, "command": benchlib.command_line(__file__, argv),  # as run: `make bench-suite` passes --workers 0,2
        "seconds": round(sum(seconds.values()), 1),
        "columns": ["what", "wall (s)", "passed", "failed", "errors", "skipped", "peak RSS (MiB)"],
        "rows": rows, "notes": notes,
        "targets": [] if args.pytest_args else targets(seconds[last], last),
    }, args.out, FILENAME)
    return worst


if __name__ == "__main__":
    sys.exit(main())
