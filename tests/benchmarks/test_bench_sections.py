"""The benchmark sections run end to end on tiny real inputs (digits drawn with Pillow, written as IDX files, then as a
Kaggle CSV and JPG files by the section itself), write JSON in the shared schema, and report.py renders them."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

import bench_data
import bench_pipeline
import bench_suite
import benchlib
import report
from conftest import write_tiny_mnist


def check_schema(section: dict, name: str) -> None:
    """The keys every section JSON has, with the types report.py relies on."""
    assert section["section"] == name and isinstance(section["title"], str) and isinstance(section["order"], int)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", section["measured_at"])
    assert section["command"].startswith("python tests/benchmarks/bench_")
    env = section["environment"]
    assert {"cpu_model", "ram_gib", "cpu_count", "python", "tensorflow", "keras", "numpy", "load_average"} <= set(env)
    assert env["cpu_model"] and env["ram_gib"] > 0
    assert section["rows"] and all(len(row) == len(section["columns"]) for row in section["rows"])
    assert all(isinstance(note, str) for note in section["notes"])
    assert all(set(t) == {"target", "measured", "met"} and isinstance(t["met"], bool) for t in section["targets"])


@pytest.fixture(scope="module")
def data_run(tmp_path_factory) -> tuple[Path, dict]:
    """The data section on 300 + 100 drawn digits: a 200-row CSV and 120 JPG files generated from them."""
    root = tmp_path_factory.mktemp("bench_data")
    write_tiny_mnist(root / "raw")
    assert bench_data.main(["--raw-dir", str(root / "raw"), "--work-dir", str(root / "work"), "--rows", "200",
                            "--files", "120", "--repeats", "1", "--naive-repeats", "1", "--out", str(root / "out")]) == 0
    return root, json.loads((root / "out" / "data.json").read_text())


def test_data_section_compares_each_reader_with_the_naive_way(data_run):
    root, section = data_run
    check_schema(section, "data")
    assert section["columns"][:4] == ["what", "mnist_lib (s)", "naive (s)", "speed-up"]
    labels = [row[0] for row in section["rows"]]
    assert labels[1:] == ["parse IDX images + labels, 400 images", "Kaggle CSV, 200 rows", "JPG class folders, 120 files"]
    assert all(row[1] > 0 and row[2] > 0 and row[3].endswith("x") for row in section["rows"])
    assert [t["target"] for t in section["targets"]] == ["Kaggle CSV of 200 rows < 2 s"]
    assert len((root / "work" / "kaggle_200" / "train.csv").read_text().splitlines()) == 201
    assert len(list((root / "work" / "jpg_120" / "train").glob("*/*.jpg"))) == 120
    assert not list((root / "work").glob("fetch-*"))  # the fetch scratch folders are removed


@pytest.mark.slow
def test_pipeline_section_times_a_stage_through_dvc_and_in_one_process(tmp_path):
    write_tiny_mnist(tmp_path / "raw")
    assert bench_pipeline.main(["--raw-dir", str(tmp_path / "raw"), "--stages", "eda", "--notebooks", "--repeats", "1",
                                "--stage-repeats", "1", "--noop-in", "copy", "--out", str(tmp_path / "out"),
                                "--real-train-s", "100"]) == 0
    section = json.loads((tmp_path / "out" / "pipeline.json").read_text())
    check_schema(section, "pipeline")
    rows = {row[0].split(" (")[0]: row for row in section["rows"]}
    assert rows["no-op `dvc repro`"][1] > 0
    assert rows["fixed cost per notebook: empty notebook"][1] > rows["fixed cost per notebook: empty notebook"][2]
    eda = rows["stage eda"]
    assert eda[1] > eda[4] > 0 and eda[2] > 0 and eda[5] > 50  # outside the cells is part of the stage; MiB of the kernel
    assert [t["target"].split(" <=")[0] for t in section["targets"]] == [
        "no-op `dvc repro`", "kernel start + imports", "pipeline overhead", "pipeline overhead"]


def test_suite_section_times_pytest_in_one_process_and_in_xdist_workers(tmp_path, monkeypatch):
    arguments = ["--out", str(tmp_path), "--workers", "0,2", "tests/test_paths.py"]
    monkeypatch.setattr(sys, "argv", ["tests/benchmarks/bench_suite.py", *arguments])  # as from a shell
    assert bench_suite.main() == 0
    section = json.loads((tmp_path / "test_suite.json").read_text())
    check_schema(section, "suite")
    assert section["command"] == shlex.join(["python", "tests/benchmarks/bench_suite.py", *arguments])  # what ran
    serial, parallel = section["rows"]  # tests/test_paths.py holds 3 tests: both runs pass all of them
    assert serial[0].startswith("pytest -p no:xdist") and parallel[0].startswith("pytest -n 2 --dist loadfile")
    assert serial[2:5] == parallel[2:5] == [3, 0, 0]
    assert section["seconds"] == pytest.approx(serial[1] + parallel[1], abs=0.2)
    assert f"2 workers: {serial[1] / parallel[1]:.2f}x" in section["notes"][1] and section["targets"] == []


def test_the_whole_suite_is_held_to_the_ten_minute_limit_and_the_six_minute_aim():
    whole = "the whole suite as `make test` runs it under"
    assert bench_suite.targets(400.0, 2) == [
        {"target": f"{whole} 10 minutes", "met": True, "measured": "400 s (2 workers)"},
        {"target": f"{whole} 6 minutes (the aim)", "met": False, "measured": "400 s (2 workers)"}]
    assert [t["met"] for t in bench_suite.targets(359.4, 0)] == [True, True]
    assert bench_suite.targets(600.0, 0)[0] == {"target": f"{whole} 10 minutes", "met": False,
                                                "measured": "600 s (one process)"}


def test_report_renders_every_section_the_targets_and_what_is_not_measured(data_run, tmp_path):
    root, data = data_run
    idle = {**data, "environment": {**data["environment"], "load_average": [0.1, 0.1, 0.1], "other_cores": 0.0}}
    benchlib.write_section({"section": "inference", "title": "Inference", "order": 60, "command": "python x.py",
                            "columns": ["what", "seconds", "images/s"], "rows": [["cnn_small, batch 1,000", 0.8123, 12345.6]],
                            "notes": ["best of 3"], "targets": [{"target": "fast", "measured": "9 s", "met": False}],
                            "environment": idle["environment"]}, tmp_path)
    (tmp_path / "data.json").write_text(json.dumps(idle))
    (tmp_path / "notes.json").write_text('{"not": "a section"}')
    output = tmp_path / "BENCHMARKS.md"
    assert report.main(["--bench-dir", str(tmp_path), "--output", str(output), "--expect", "data training inference"]) == 0
    text = output.read_text()
    assert "same run on the same machine" in text and data["environment"]["cpu_model"] in text
    assert f"TensorFlow {data['environment']['tensorflow']}" in text
    targets = text[text.index("## Targets"):text.index("## Data loading")]
    assert "| Data loading | Kaggle CSV of 200 rows < 2 s |" in targets and "| Inference | fast | 9 s | **missed** |" in targets
    order = [text.index(heading) for heading in ("## Data loading", "## training", "## Inference", "## suite")]
    assert order == sorted(order)
    assert "Not measured yet: run `make bench SECTIONS=training`." in text
    assert "Not measured yet: run `make bench-suite`." in text
    assert "| cnn_small, batch 1,000 | 0.812 | 12,346 |" in text
    assert "`python tests/benchmarks/bench_data.py --raw-dir" in text and "- best of 3" in text
    assert "busy" not in text
    inference = json.loads((tmp_path / "inference.json").read_text())
    for others, load, warning in [(0.9, 0.1, "**The machine was busy:** other processes took 0.90 of its 2 cores"),
                                  (0.1, 9.0, None),  # its own threads: a load average of 9 with no other work
                                  (None, 9.0, "**The machine may have been busy:** a load average above its 2 cores"),
                                  (None, 1.5, None)]:
        env = {**data["environment"], "load_average": [load] * 3, "cpu_count": 2, "other_cores": others}
        benchlib.write_section({**inference, "environment": env}, tmp_path)
        report.main(["--bench-dir", str(tmp_path), "--output", str(output)])
        text = output.read_text()
        assert text.count("busy:**") == (warning is not None) and (warning is None or warning in text), (others, load)
        assert ("other work 0.90 cores" in text) == (others == 0.9)


EARLIER = """# Benchmarks

**Machine:** Old CPU, 2 cores.

## Targets

| section | target | measured | met? |
|---|---|---|---|
| Inference | batch 1 under 5 ms | 4 ms \\| warm | met |
| Training speed | fast | slow | **missed** |

## Training speed

`python tests/benchmarks/bench_training.py`, measured 2026-01-01 00:00:00 UTC.

| model | images/s |
|---|---:|
| mlp | 25,748 |

## Inference

`python tests/benchmarks/bench_inference.py`, measured 2026-01-01 00:00:00 UTC.

| what | s |
|---|---:|
| old row | 1 |

## suite

Not measured yet: run `make bench-suite`.
"""


def test_report_keeps_earlier_sections_it_has_no_json_for_and_replaces_those_it_has(tmp_path):
    env = {"cpu_model": "New CPU", "cpu_count": 2, "ram_gib": 8, "load_average": [0.1, 0.1, 0.1]}
    benchlib.write_section({"section": "inference", "title": "Inference", "order": 60, "command": "python x.py",
                            "columns": ["what", "s"], "rows": [["new row", 2]], "notes": [], "environment": env,
                            "targets": [{"target": "batch 1 under 5 ms", "measured": "3 ms", "met": True}]}, tmp_path)
    output = tmp_path / "BENCHMARKS.md"
    output.write_text(EARLIER)
    assert report.main(["--bench-dir", str(tmp_path), "--output", str(output)]) == 0
    text = output.read_text()
    assert "| new row | 2 |" in text and "old row" not in text  # measured now: replaced
    assert "| mlp | 25,748 |" in text  # no JSON here: kept, said so, with the machine it came from
    kept = text[text.index("## Training speed"):text.index("## Inference")]
    assert "Kept from an earlier rendering" in kept and "measured on: Old CPU, 2 cores;" in kept
    targets = text[text.index("## Targets"):text.index("## Training speed")]
    assert "| Training speed | fast | slow | **missed** |" in targets
    assert "| Inference | batch 1 under 5 ms | 3 ms | met |" in targets and "4 ms" not in targets
    assert text.count("## suite") == 1 and "## training" not in text  # a kept section is not also "not measured"
    assert report.main(["--bench-dir", str(tmp_path), "--output", str(output)]) == 0
    assert output.read_text() == text  # rendering again changes nothing


def test_other_work_is_the_machines_busy_cpu_time_less_this_processs_own(tmp_path):
    tick, stat = os.sysconf("SC_CLK_TCK"), tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice: busy 100+50+10 = 160 ticks, later 530 ticks
    stat.write_text("cpu  100 0 50 1000 20 0 0 10 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
    clock, own = iter([10.0, 12.0]), iter([0.5, 2.5])
    other = benchlib.OtherWork(str(stat), clock=lambda: next(clock), own=lambda: next(own))
    stat.write_text("cpu  400 0 100 1500 30 5 5 20 0 0\n")
    assert other.cores() == round((370 / tick - 2.0) / 2.0, 2)  # 3.7 s busy, 2 s of it ours, over 2 s: 0.85 at 100 Hz
    clock, own = iter([10.0, 12.0]), iter([0.0, 50.0])  # more than the machine's busy time: never below zero
    assert benchlib.OtherWork(str(stat), clock=lambda: next(clock), own=lambda: next(own)).cores() == 0.0
    assert benchlib.OtherWork(str(tmp_path / "no stat")).cores() is None


def test_other_work_counts_a_process_that_is_not_this_one():
    other = benchlib.OtherWork()
    burner = subprocess.Popen([sys.executable, "-c", "import time\nend = time.process_time() + 0.6\n"
                               "while time.process_time() < end: pass"])
    while burner.poll() is None:
        time.sleep(0.05)  # polled, not waited for: the child's CPU time is not yet counted as this process's own
    assert other.cores() >= 0.3  # 0.6 s of its CPU over about 0.7 s of wall time, whatever else the machine does


def test_a_section_of_kept_runs_is_dated_by_its_newest_run_and_keeps_its_other_work():
    old = {"sitting": "2026-11-01T10:00:00Z", "environment": {"cpu": {"model": "Old CPU"}}}  # before either was recorded
    new = {"measured": "2026-12-01T09:00:00Z", "sitting": "2026-12-01T08:00:00Z", "other_cores": 0.4,
           "environment": {"cpu": {"model": "New CPU"}, "tensorflow": "9.9"}}
    quiet = {"measured": "2026-11-20T00:00:00Z", "other_cores": 0.1, "environment": {}}
    found = benchlib.kept_runs_provenance([old, new, quiet])
    assert found["measured_at"] == "2026-12-01T09:00:00Z" and found["environment"]["cpu_model"] == "New CPU"
    assert found["environment"]["tensorflow"] == "9.9" and found["environment"]["other_cores"] == 0.4
    assert found["environment"]["load_average"] is None  # the moment the table was written says nothing of the runs
    assert benchlib.kept_runs_provenance([old])["measured_at"] == "2026-11-01T10:00:00Z"
    assert benchlib.kept_runs_provenance([old])["environment"]["other_cores"] is None
    assert benchlib.kept_runs_provenance([]) == {}
