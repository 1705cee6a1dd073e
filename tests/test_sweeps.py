"""Sweeps: grid expansion and validation before anything runs; real parallel runs of the real notebooks, a failing
combination recorded, Ctrl-C then resume without redoing finished runs, a Dask cluster, one summary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pandas as pd
import pytest
import yaml

from conftest import REPO, draw_digits
from mnist_lib import executors, notebooks, split, sweeps
from mnist_lib.params import ParameterError
from mnist_lib.records import DIGITS, Dataset

CHAIN = [
    {"notebook": "notebooks/03_train.py", "parameter_files": ["params/train.yaml"],
     "paths": {"split_dir": "SPLIT", "out_dir": "{run}/train"}},
    {"notebook": "notebooks/04_evaluate.py", "parameter_files": ["params/evaluate.yaml"],
     "paths": {"split_dir": "SPLIT", "model_path": "{run}/train/model.keras",
               "train_summary": "{run}/train/summary.json", "out_dir": "{run}/evaluate"}},
]


def write_sweep(folder: Path, name: str, split_dir: Path | str = "outputs/split", steps: int = 2, **spec) -> Path:
    chain = json.loads(json.dumps(CHAIN[:steps]).replace("SPLIT", str(split_dir)))
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"chain": chain, **spec}, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory) -> Path:
    """train/val/test split files of drawn digits (200/60/60), as the split stage writes them."""
    folder = tmp_path_factory.mktemp("split")
    images, labels = draw_digits(320, seed=21)
    parts = {name: Dataset(images[start:stop, ..., None], labels[start:stop].astype("int64"), DIGITS)
             for name, start, stop in (("train", 0, 200), ("val", 200, 260), ("test", 260, 320))}
    split.write_splits(folder, parts, {"seed": 0})
    return folder


def mnist(*args: str, cwd: Path = REPO, **options) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mnist_lib.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, **options)


# --- expansion and validation (nothing runs) -----------------------------------------------------------------


def test_grid_is_a_cartesian_product_zip_advances_together_and_runs_are_added():
    spec = {"grid": {"learning_rate": [0.1, 0.2], "seed": [1, 2, 3]},
            "zip": {"model": ["mlp", "cnn_small"], "batch_size": [128, 64]}, "runs": [{"model": "baseline"}]}
    combos = sweeps.combinations(spec, "s.yaml")
    assert len(combos) == 2 * 3 * 2 + 1
    assert {"learning_rate": 0.2, "seed": 3, "model": "cnn_small", "batch_size": 64} in combos
    assert not any(c.get("model") == "mlp" and c.get("batch_size") == 64 for c in combos)
    assert combos[-1] == {"model": "baseline"}


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"zip": {"model": ["mlp", "cnn_small"], "seed": [1]}}, "zip lists must have equal lengths"),
        ({"grid": {"seed": [1]}, "zip": {"seed": [2]}}, "seed is in both grid and zip"),
        ({"grid": {"seed": []}}, "grid.seed must be a non-empty list"),
        ({"grid": {"seed": 3}}, "grid.seed must be a non-empty list"),
        ({}, "no runs; give a grid"),
    ],
)
def test_bad_grids_are_refused(spec, message):
    with pytest.raises(ParameterError, match=message):
        sweeps.combinations(spec, "s.yaml")


def test_an_undeclared_parameter_fails_early_listing_the_declared_ones(tmp_path):
    path = write_sweep(tmp_path, "typo", grid={"epoch": [1, 2]})
    with pytest.raises(ParameterError) as caught:
        sweeps.load(path, REPO)
    message = str(caught.value)
    assert "run 1 sets epoch, which no notebook of the chain declares" in message
    assert "batch_size" in message and "learning_rate" in message and "model_path" in message


def test_a_wrong_type_names_the_parameter_the_run_and_the_file(tmp_path):
    path = write_sweep(tmp_path, "types", grid={"seed": [1, "2"]})
    with pytest.raises(ParameterError, match=r"seed from .*types\.yaml \(run 2\): expected an integer, got '2'"):
        sweeps.load(path, REPO)
    path = write_sweep(tmp_path, "yaml11", runs=[{"learning_rate": "1e-3"}])
    with pytest.raises(ParameterError, match="YAML 1.1"):
        sweeps.load(path, REPO)


def test_unknown_keys_missing_notebooks_and_repeated_runs_are_refused(tmp_path):
    with pytest.raises(ParameterError, match="unknown key.*grids"):
        sweeps.load(write_sweep(tmp_path, "a", grids={"seed": [1]}), REPO)
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"chain": [{"notebook": "notebooks/nope.py"}], "runs": [{}]}))
    with pytest.raises(ParameterError, match="notebook notebooks/nope.py does not exist"):
        sweeps.load(tmp_path / "b.yaml", REPO)
    with pytest.raises(ParameterError, match="runs 1 and 2 are the same combination"):
        sweeps.load(write_sweep(tmp_path, "c", runs=[{"seed": 1}, {"seed": 1}]), REPO)


def test_run_ids_are_readable_stable_and_follow_every_value(tmp_path):
    path = write_sweep(tmp_path, "ids", fixed={"epochs": 1}, grid={"learning_rate": [0.001, 0.01], "seed": [1, 2]})
    first, again = sweeps.load(path, REPO), sweeps.load(path, REPO)
    ids = [run.run_id for run in first.runs]
    assert ids == [run.run_id for run in again.runs] and len(set(ids)) == 4
    assert ids[0].startswith("learning_rate-0.001_seed-1_")
    changed = sweeps.load(write_sweep(tmp_path, "ids", fixed={"epochs": 2}, grid={"learning_rate": [0.001, 0.01],
                                                                                  "seed": [1, 2]}), REPO)
    assert not set(ids) & {run.run_id for run in changed.runs}  # another base value: other runs
    assert first.runs[0].values[0]["epochs"] == 1 and first.runs[0].values[0]["model"] == "cnn_strong"
    assert "epochs" not in first.runs[0].values[1]  # evaluate does not declare epochs


def test_threads_per_run_share_the_cores():
    cores = os.cpu_count() or 1
    assert executors.threads_per_run(1) == cores and executors.threads_per_run(cores * 4) == 1


# --- real runs ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_grid_and_added_runs_run_in_parallel_with_a_failing_run_reported_and_one_summary(tmp_path, tiny_split):
    # two learning rates, the first with a second seed, and a run whose optimizer the notebook refuses
    path = write_sweep(tmp_path, "grid", tiny_split, fixed={"epochs": 1, "model": "mlp"},
                       grid={"learning_rate": [0.001, 0.003], "seed": [1]},
                       runs=[{"learning_rate": 0.001, "seed": 2}, {"optimizer": "adamw"}])
    out = tmp_path / "out"
    done = mnist("sweep", str(path), "--jobs", "2", "--out", str(out))
    assert done.returncode == 1, done.stderr[-3000:]
    assert "1 run(s) failed: optimizer-adamw_" in done.stderr

    table = pd.read_csv(out / "summary.csv")
    assert len(table) == 4 and set(table["status"]) == {"done", "failed"}
    good = table[table["status"] == "done"]
    assert sorted(zip(good["learning_rate"], good["seed"])) == [(0.001, 1), (0.001, 2), (0.003, 1)]
    for _, row in good.iterrows():
        metrics = json.loads((out / row["run_id"] / "evaluate" / "metrics.json").read_text())
        assert row["evaluate.test_accuracy"] == pytest.approx(metrics["test_accuracy"])
        used = yaml.safe_load((out / row["run_id"] / "03_train.yaml").read_text())
        assert (used["learning_rate"], used["seed"], used["epochs"]) == (row["learning_rate"], row["seed"], 1)
        assert (out / row["run_id"] / "notebooks" / "03_train.html").is_file()
        train = json.loads((out / row["run_id"] / "train" / "summary.json").read_text())
        assert train["environment"]["thread_variables"]["TF_NUM_INTRAOP_THREADS"] == str(executors.threads_per_run(2))
    failed = table[table["status"] == "failed"].iloc[0]
    assert "optimizer" in failed["error"] and "03_train" in failed["error"]
    sweep_info = json.loads((out / "sweep.json").read_text())
    assert sweep_info["swept"] == ["learning_rate", "seed", "optimizer"]
    report = (out / "report.html").read_text()
    assert "Sweep report" in report and "sweep-" in report and "<img" in report
    assert "right_only_in_runner_up" in report and "mcnemar_p" in report  # best vs runner-up, seed by seed
    by_configuration = pd.read_csv(out / "by_configuration.csv")
    first = by_configuration[by_configuration["learning_rate"] == 0.001].iloc[0]
    seeds = good[good["learning_rate"] == 0.001]["evaluate.test_accuracy"]
    assert first["evaluate.test_accuracy count"] == 2
    assert first["evaluate.test_accuracy mean"] == pytest.approx(seeds.mean())
    assert first["evaluate.test_accuracy std"] == pytest.approx(abs(seeds.iloc[0] - seeds.iloc[1]) / 2 ** 0.5)


def default_sigint() -> None:
    """SIGINT as a terminal's foreground job has it: a suite run in the background (`make test &`, nohup) starts
    with SIGINT ignored, which its children inherit, and an ignored Ctrl-C could not be tested."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_a_rerun_skips_the_finished_runs(tmp_path):
    project = probe_project(tmp_path / "project")
    meeting, out = tmp_path / "meeting", tmp_path / "out"
    meeting.mkdir()  # runs 2 and 3 wait there (a minute each) until 9 runs have signed in
    waiting = {"meeting": str(meeting), "runs": 9}
    path = probe_sweep(project, runs=[{"value": 1}, {"value": 2, **waiting}, {"value": 3, **waiting}])
    env = {**os.environ, "PYTHONPATH": repo_on_path()}
    sweep = subprocess.Popen([sys.executable, "-m", "mnist_lib.cli", "sweep", str(path), "--out", str(out),
                              "--no-report"], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True, preexec_fn=default_sigint)
    deadline = time.monotonic() + 300
    while not (meeting / "2").exists() and time.monotonic() < deadline:  # run 1 finished; run 2 is waiting
        time.sleep(0.2)
    assert (meeting / "2").exists(), "run 2 did not start in time"
    os.killpg(sweep.pid, signal.SIGINT)  # what Ctrl-C sends to the whole foreground group
    _, stderr = sweep.communicate(timeout=120)
    assert sweep.returncode == 130, stderr[-2000:]
    first = sweeps.load(path, project).runs[0]
    finished = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/status.json")}
    assert list(finished) == [first.run_id] and executors.status(out / first.run_id)["status"] == "done"

    for name in range(1, 10):  # nine sign in: the waiting runs go straight through when retried
        (meeting / str(name)).touch()
    again = sweep_in(project, str(path), "--out", str(out))
    assert again.returncode == 0, again.stderr[-2000:]
    assert "3 run(s), 1 already done" in again.stdout
    assert {run: (out / run / "status.json").stat().st_mtime_ns for run in finished} == finished  # not redone
    assert (pd.read_csv(out / "summary.csv")["status"] == "done").all()


@pytest.mark.slow
def test_runs_go_to_a_dask_cluster(tmp_path):
    from dask.distributed import LocalCluster

    project = probe_project(tmp_path / "project")
    path, out = probe_sweep(project, grid={"value": [1, 2]}), tmp_path / "out"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        done = sweep_in(project, str(path), "--executor", "dask", "--scheduler", cluster.scheduler_address,
                        "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(out / "summary.csv")
    assert list(table["status"]) == ["done", "done"] and sorted(table["value"]) == [1, 2]


# --- scheduling, shown with a probe notebook that takes a kernel start and no training ---------------------------

PROBE = '''# %% [markdown]
# # Probe
# Records what its run saw; waits for other runs to start; fails on request.

# %% tags=["parameters"]
value = 1  # which run this is
out_dir = "outputs/scratch/probe"  # where the run writes
meeting = ""  # a folder where every run of the sweep signs in; "" for none
runs = 1  # how many runs sign in there
fail_flag = ""  # run 2 raises while this file exists; "" for never
die_value = 0  # the run with this value kills the process that runs its notebook, as the OOM killer would; 0: none

# %%
import json, os, pathlib, signal, time
pathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)
names = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
pathlib.Path(out_dir, "summary.json").write_text(json.dumps({name: os.environ.get(name) for name in names}))
if value == 2 and fail_flag and pathlib.Path(fail_flag).exists():
    raise RuntimeError("asked to fail")
if value == die_value:
    os.kill(os.getppid(), signal.SIGKILL)  # the kernel's parent: the process running this notebook for the sweep

# %%
# Wait (at most a minute) until every run has started: running side by side, all meet; run one at a time, the
# first gives up waiting and finishes before the next starts.
if meeting:
    pathlib.Path(meeting, str(value)).touch()
    deadline = time.monotonic() + 60
    while len(list(pathlib.Path(meeting).iterdir())) < runs and time.monotonic() < deadline:
        time.sleep(0.1)
'''


PROBE_DECLARES = "value, out_dir, meeting, runs, fail_flag, die_value"  # its parameters cell, in order


def probe_project(folder: Path) -> Path:
    """A project root (dvc.yaml) with the probe notebook and nothing else."""
    (folder / "notebooks").mkdir(parents=True)
    (folder / "dvc.yaml").write_text("stages: {}\n")
    (folder / "notebooks" / "probe.py").write_text(PROBE)
    return folder


def probe_sweep(project: Path, **spec) -> Path:
    path = project / "probe.yaml"
    chain = [{"notebook": "notebooks/probe.py", "paths": {"out_dir": "{run}/probe"}}]
    path.write_text(yaml.safe_dump({"chain": chain, **spec}, sort_keys=False))
    return path


def repo_on_path() -> str:
    """PYTHONPATH with this checkout first, so a process started in another project imports this mnist_lib."""
    return os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))


def sweep_in(project: Path, *args: str) -> subprocess.CompletedProcess:
    """`mnist sweep` run from `project`, with this checkout's mnist_lib."""
    env = {**os.environ, "PYTHONPATH": repo_on_path()}
    return mnist("sweep", *args, "--no-report", cwd=project, env=env)


def run_times(out: Path) -> list[tuple[datetime, datetime]]:
    """Each run's start and end, as papermill recorded them in its executed notebook."""
    times = []
    for executed in sorted(out.glob("*/notebooks/probe.ipynb")):
        recorded = nbformat.read(executed, as_version=4).metadata["papermill"]
        times.append((datetime.fromisoformat(recorded["start_time"]), datetime.fromisoformat(recorded["end_time"])))
    return times


@pytest.mark.slow
def test_jobs_2_runs_two_runs_at_the_same_time(tmp_path):
    project = probe_project(tmp_path / "project")
    (tmp_path / "meeting").mkdir()
    path = probe_sweep(project, fixed={"meeting": str(tmp_path / "meeting"), "runs": 2}, grid={"value": [1, 2]})
    done = sweep_in(project, str(path), "--jobs", "2", "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-3000:]
    (first_start, first_end), (second_start, second_end) = run_times(tmp_path / "out")
    assert first_start < second_end and second_start < first_end  # the two runs overlapped


@pytest.mark.slow
def test_a_rerun_retries_the_failed_runs_and_keeps_the_done_ones(tmp_path):
    project = probe_project(tmp_path / "project")
    flag, out = tmp_path / "fail", tmp_path / "out"
    flag.touch()
    path = probe_sweep(project, fixed={"fail_flag": str(flag)}, grid={"value": [1, 2]})
    first = sweep_in(project, str(path), "--out", str(out))
    assert first.returncode == 1 and "1 run(s) failed: value-2_" in first.stderr, first.stderr[-3000:]
    done_at = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/status.json")
               if json.loads(p.read_text())["status"] == "done"}
    assert [name[:8] for name in done_at] == ["value-1_"]

    flag.unlink()  # whatever made run 2 fail is fixed
    again = sweep_in(project, str(path), "--out", str(out))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 run(s), 1 already done" in again.stdout
    assert list(pd.read_csv(out / "summary.csv")["status"]) == ["done", "done"]
    assert {name: (out / name / "status.json").stat().st_mtime_ns for name in done_at} == done_at  # not run again


@pytest.mark.slow
def test_each_of_n_parallel_runs_gets_the_cores_divided_by_n(tmp_path, monkeypatch):
    project = probe_project(tmp_path / "project")
    sweep = sweeps.load(probe_sweep(project, grid={"value": [1, 2]}), project)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setenv("PYTHONPATH", repo_on_path())
    records = []
    executors.run_local(sweep, tmp_path / "out", project, jobs=2, report=lambda run, record: records.append(record))
    assert [record["status"] for record in records] == ["done", "done"]
    for run in sweep.runs:  # 8 cores, 2 runs at a time: 4 threads each (and at most 2 between operations)
        seen = json.loads((tmp_path / "out" / run.run_id / "probe" / "summary.json").read_text())
        assert seen == {"OMP_NUM_THREADS": "4", "TF_NUM_INTRAOP_THREADS": "4", "TF_NUM_INTEROP_THREADS": "2"}


@pytest.mark.slow
def test_a_dask_cluster_gets_each_pending_run_once_under_its_name_with_the_smallest_workers_threads(tmp_path, monkeypatch):
    from distributed import Scheduler, SpecCluster, Worker
    from distributed.diagnostics.plugin import SchedulerPlugin

    class Keys(SchedulerPlugin):
        """The keys of the tasks the scheduler was given."""
        def __init__(self) -> None:
            self.keys: set[str] = set()

        def transition(self, key, start, finish, *args, **kwargs) -> None:
            self.keys.add(key)

    project = probe_project(tmp_path / "project")
    sweep = sweeps.load(probe_sweep(project, grid={"value": [1, 2, 3]}), project)
    done, *todo = sweep.runs
    (project / "out" / done.run_id).mkdir(parents=True)
    (project / "out" / done.run_id / "status.json").write_text('{"status": "done"}')  # finished before: not sent
    monkeypatch.setenv("PYTHONPATH", repo_on_path())
    monkeypatch.chdir(project)  # `mnist sweep` gives folders as typed: relative here
    workers = {name: {"cls": Worker, "options": {"nthreads": threads}} for name, threads in (("two", 2), ("three", 3))}
    keys, records = Keys(), {}
    with SpecCluster(workers=workers, scheduler={"cls": Scheduler, "options": {"dashboard_address": None}}) as cluster:
        cluster.scheduler.add_plugin(keys)
        executors.run_dask(sweep, Path("out"), Path("."), cluster.scheduler_address,
                           lambda run, record: records.update({run.run_id: record["status"]}))
    assert records == {run.run_id: "done" for run in todo}
    assert keys.keys == {f"probe-{run.run_id}" for run in todo}
    for run in todo:  # the least threads any worker has: 2
        seen = json.loads((project / "out" / run.run_id / "probe" / "summary.json").read_text())
        assert seen == {"OMP_NUM_THREADS": "2", "TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "2"}
    assert not (project / "out" / done.run_id / "probe").exists()


@pytest.mark.slow
def test_ctrl_c_in_a_local_sweep_stops_the_running_steps_at_once_and_starts_no_other(tmp_path, monkeypatch):
    project = probe_project(tmp_path / "project")
    meeting, out = tmp_path / "meeting", tmp_path / "out"
    meeting.mkdir()  # the waiting run waits there (a minute) for a partner that never comes
    runs = [{"value": 1}, {"value": 2, "meeting": str(meeting), "runs": 2}, {"value": 3}, {"value": 4}]
    sweep = sweeps.load(probe_sweep(project, runs=runs), project)
    first, waiting, third, last = sweep.runs
    monkeypatch.setenv("PYTHONPATH", repo_on_path())
    reported = []

    def report(run, record):  # Ctrl-C reaches the sweep when the second run is reported
        reported.append((run.run_id, record["status"]))
        if len(reported) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        executors.run_local(sweep, out, project, jobs=2, report=report)
    # two at a time: the first and the waiting one, then the third in the first one's place
    assert reported == [(first.run_id, "done"), (third.run_id, "done")]  # each reported when it ended
    assert executors.status(out / waiting.run_id) == {}  # stopped, not left to finish: retried next time
    assert not (out / last.run_id).exists()  # never started, not even its folder
    assert [run.run_id for run in executors.pending(sweep, out)] == [waiting.run_id, last.run_id]


def test_a_step_returns_the_runners_own_error_and_its_process_writes_it_as_the_result(tmp_path):
    project = probe_project(tmp_path / "project")
    (tmp_path / "typo.yaml").write_text("valeu: 2\n")
    notebook, output = str(project / "notebooks" / "probe.py"), str(tmp_path / "probe.ipynb")
    with pytest.raises(ParameterError) as caught:  # what `mnist run` reports for this parameter file
        notebooks.run(notebook, output, [tmp_path / "typo.yaml"])
    assert "valeu" in str(caught.value)
    assert executors.run_step(notebook, str(tmp_path / "typo.yaml"), output, {}) == str(caught.value)
    request = {"notebook": notebook, "parameter_file": str(tmp_path / "typo.yaml"), "output": output, "overrides": {},
               "result": str(tmp_path / "probe.result.json")}
    assert executors.main([json.dumps(request)]) == 1
    assert json.loads((tmp_path / "probe.result.json").read_text()) == {"status": "failed", "error": str(caught.value)}


@pytest.mark.slow
def test_a_step_process_exits_0_when_its_notebook_ran(tmp_path, monkeypatch):
    project = probe_project(tmp_path / "project")
    (tmp_path / "good.yaml").write_text("value: 1\n")
    monkeypatch.chdir(project)
    request = {"notebook": "notebooks/probe.py", "parameter_file": str(tmp_path / "good.yaml"),
               "output": str(tmp_path / "probe.ipynb"), "overrides": {"out_dir": str(tmp_path / "probe")},
               "result": str(tmp_path / "probe.result.json")}
    assert executors.main([json.dumps(request)]) == 0
    assert json.loads((tmp_path / "probe.result.json").read_text()) == {"status": "done", "error": ""}


@pytest.mark.slow
def test_a_run_on_a_cluster_worker_logs_its_steps_error_and_gets_its_threads(tmp_path, monkeypatch):
    """execute_run without a sweep's process registry, as a Dask worker calls it: the same log and status."""
    project = probe_project(tmp_path / "project")
    (step,) = sweeps.load(probe_sweep(project, grid={"value": [1]}), project).chain
    monkeypatch.setenv("PYTHONPATH", repo_on_path())
    monkeypatch.setenv("OMP_NUM_THREADS", "64")  # the worker's own setting: not what the run gets
    folder = tmp_path / "run"
    record = executors.execute_run((step,), sweeps.Run("typo", {"valeu": 2}, ({"valeu": 2},)), str(folder), str(project), 3)
    error = f"notebooks/probe.py does not declare valeu (from {folder / 'probe.yaml'}); its parameters are: {PROBE_DECLARES}"
    assert (record["status"], record["error"]) == ("failed", error)
    assert (folder / "probe.log").read_text() == f"error: {error}\n"
    record = executors.execute_run((step,), sweeps.Run("good", {"value": 1}, ({"value": 1},)), str(folder), str(project), 3)
    assert record["status"] == "done"
    seen = json.loads((folder / "probe" / "summary.json").read_text())
    assert seen == {"OMP_NUM_THREADS": "3", "TF_NUM_INTRAOP_THREADS": "3", "TF_NUM_INTEROP_THREADS": "2"}


@pytest.mark.slow
def test_a_failing_cell_and_a_killed_step_reach_status_and_summary_with_their_exact_cause(tmp_path):
    project = probe_project(tmp_path / "project")
    flag, out = tmp_path / "fail", tmp_path / "out"
    flag.touch()
    path = probe_sweep(project, fixed={"fail_flag": str(flag), "die_value": 3}, grid={"value": [2, 3]})
    done = sweep_in(project, str(path), "--out", str(out))
    assert done.returncode == 1 and "2 run(s) failed" in done.stderr, done.stderr[-3000:]
    failing, killed = sweeps.load(path, project).runs
    expected = {
        failing.run_id: "notebooks/probe.py: cell 3 (execution count 3) raised RuntimeError: asked to fail\n"
                        f"See the error banner in {out / failing.run_id / 'notebooks' / 'probe.ipynb'}",
        killed.run_id: "notebooks/probe.py: its process was killed by SIGKILL without writing a result; see probe.log",
    }
    for run_id, error in expected.items():
        assert json.loads((out / run_id / "status.json").read_text())["error"] == error
        assert f"{run_id}: failed: {error}" in done.stdout  # the progress bar's report of a failure
    assert (out / failing.run_id / "probe.log").read_text() == f"error: {expected[failing.run_id]}\n"  # all it says
    table = pd.read_csv(out / "summary.csv")
    assert dict(zip(table["run_id"], table["error"])) == expected and set(table["status"]) == {"failed"}
    assert json.loads((out / failing.run_id / "probe.result.json").read_text())["error"] == expected[failing.run_id]
    assert not (out / killed.run_id / "probe.result.json").exists()


@pytest.mark.slow
def test_a_step_stopped_by_ctrl_c_exits_130_saying_so_and_writes_no_result(tmp_path):
    """No result file: the sweep records the run as interrupted and retries it next time."""
    project = probe_project(tmp_path / "project")
    meeting, result = tmp_path / "meeting", tmp_path / "probe.result.json"
    meeting.mkdir()
    request = {"notebook": "notebooks/probe.py", "parameter_file": str(project / "none.yaml"),
               "output": str(tmp_path / "probe.ipynb"), "result": str(result),
               "overrides": {"meeting": str(meeting), "runs": "2", "out_dir": str(tmp_path / "probe")}}  # waits for a second run
    (project / "none.yaml").write_text("{}\n")
    env = {**os.environ, "PYTHONPATH": repo_on_path()}
    step = subprocess.Popen([sys.executable, "-m", "mnist_lib.executors", json.dumps(request)], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    deadline = time.monotonic() + 120
    while not (meeting / "1").exists():  # the waiting cell is running
        assert step.poll() is None and time.monotonic() < deadline, step.communicate()
        time.sleep(0.1)
    step.send_signal(signal.SIGINT)
    _, stderr = step.communicate(timeout=60)
    assert step.returncode == 130 and stderr.splitlines()[-1] == "interrupted"
    assert not result.exists()


def test_the_processes_of_a_sweep_are_stopped_together_and_none_start_after(tmp_path):
    processes = executors.Processes()
    first, second = (processes.start([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(2))
    processes.done(first)  # finished, as far as the sweep knows: not its to stop
    processes.stop_all()
    assert second.wait(timeout=30) == -signal.SIGTERM and first.poll() is None
    first.kill()
    first.wait()
    with pytest.raises(KeyboardInterrupt):
        processes.start([sys.executable, "-c", "pass"])


def test_how_a_step_process_ended_in_words():
    assert executors._ended(0) == "exited with code 0"  # ended normally, yet wrote no result
    assert executors._ended(2) == "exited with code 2"
    assert executors._ended(-9) == "was killed by SIGKILL"
    assert executors._ended(-200) == "was killed by signal 200"


def test_a_sweep_names_what_is_wrong_in_a_steps_parameter_file_and_every_undeclared_name(tmp_path, monkeypatch):
    project = probe_project(tmp_path / "project")
    path, step_file = project / "probe.yaml", project / "probe_params.yaml"
    chain = [{"notebook": "notebooks/probe.py", "parameter_files": ["probe_params.yaml"]}]
    path.write_text(yaml.safe_dump({"chain": chain, "grid": {"value": [1]}}))
    step_file.write_text("valeu: 2\n")
    with pytest.raises(ParameterError) as caught:
        sweeps.load(path, project)
    assert str(caught.value) == ("notebooks/probe.py does not declare valeu (from its parameter files); its parameters "
                                 f"are: {PROBE_DECLARES}")
    step_file.write_text("runs: many\n")
    with pytest.raises(ParameterError) as caught:
        sweeps.load(path, project)
    assert str(caught.value) == "runs from its parameter files: expected an integer, got 'many' (str)"
    step_file.write_text("runs: 2\n")
    path.write_text(yaml.safe_dump({"chain": chain, "grid": {"epoch": [1], "lr": [0.1]}}))
    with pytest.raises(ParameterError) as caught:
        sweeps.load(path, project)
    assert str(caught.value) == (f"{path}: run 1 sets epoch, lr, which no notebook of the chain declares; the declared "
                                 "parameters are: die_value, fail_flag, meeting, out_dir, runs, value")
    path.write_text(yaml.safe_dump({"chain": chain, "grid": {"value": [3]}}))
    monkeypatch.chdir(project)  # paths relative to the folder it runs in, as `mnist sweep` gives them
    sweep = sweeps.load("probe.yaml")
    assert (sweep.name, sweep.path, sweep.swept_names) == ("probe", Path("probe.yaml"), ["value"])
    assert sweep.runs[0].values == ({"runs": 2, "value": 3},)


def test_threads_per_run_on_a_machine_that_does_not_say_its_cores(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert executors.threads_per_run(1) == 1 and type(executors.threads_per_run(1)) is int
    monkeypatch.setattr(os, "cpu_count", lambda: 5)
    assert executors.threads_per_run(2) == 2 and type(executors.threads_per_run(2)) is int


@pytest.mark.slow
def test_a_run_folder_records_its_parameters_and_status_readably(tmp_path, monkeypatch):
    project = probe_project(tmp_path / "project")
    sweep = sweeps.load(probe_sweep(project, fixed={"value": 7}, grid={"runs": [1]}), project)
    (run,) = sweep.runs
    monkeypatch.setenv("PYTHONPATH", repo_on_path())
    record = executors.execute_run(sweep.chain, run, str(tmp_path / "out"), str(project), 1)
    folder = tmp_path / "out"
    assert record == {"status": "done", "error": "", "seconds": record["seconds"]} and record["seconds"] > 0
    assert (folder / "status.json").read_text() == json.dumps(record, indent=2) + "\n"
    assert (folder / "parameters.json").read_text() == json.dumps(  # in the order the sweep file gives them
        {"swept": {"runs": 1}, "notebooks": {"notebooks/probe.py": {"value": 7, "runs": 1}}}, indent=2) + "\n"
    assert (folder / "probe.yaml").read_text() == "value: 7\nruns: 1\n"  # what the step ran with
    assert (folder / "probe.result.json").read_text() == '{\n  "status": "done",\n  "error": ""\n}\n'
    assert (folder / "notebooks" / "probe.ipynb").is_file() and (folder / "notebooks" / "probe.html").is_file()
    assert (folder / "probe.log").read_text().splitlines()[-1] == (
        f"notebooks/probe.py: executed -> {folder / 'notebooks' / 'probe.ipynb'}; its outputs -> {folder / 'probe'}")


@pytest.mark.slow
def test_a_run_runs_its_steps_in_order_and_stops_at_the_first_that_fails(tmp_path, monkeypatch):
    """Two steps, the second refused: the first ran, the run is recorded failed with the second's error, its time
    is its clock's in tenths of a second, and no step process is left registered as running."""
    project = probe_project(tmp_path / "project")
    (project / "notebooks" / "probe_again.py").write_text(PROBE)
    chain = (sweeps.Step("notebooks/probe.py", (), {"out_dir": "{run}/probe"}),
             sweeps.Step("notebooks/probe_again.py", (), {"out_dir": "{run}/again"}))
    monkeypatch.setenv("PYTHONPATH", repo_on_path())
    folder, processes = tmp_path / "run", executors.Processes()
    clock = iter([100.0, 103.456])  # the run's start and end, as its clock reads them
    monkeypatch.setattr(executors, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    record = executors.execute_run(chain, sweeps.Run("two", {}, ({"value": 1}, {"valeu": 2})), str(folder),
                                   str(project), 1, processes)
    error = (f"notebooks/probe_again.py does not declare valeu (from {folder / 'probe_again.yaml'}); its parameters "
             f"are: {PROBE_DECLARES}")
    assert (record["status"], record["error"]) == ("failed", error)
    assert json.loads((folder / "probe" / "summary.json").read_text())["OMP_NUM_THREADS"] == "1"  # the first ran
    assert not (folder / "again").exists()
    assert processes.running == set()
    assert type(record["seconds"]) is float and record["seconds"] == 3.5  # 3.456 s in tenths
    assert executors.status(folder) == record


@pytest.mark.slow
def test_runs_sent_to_a_dask_cluster_before_any_worker_joined_get_one_thread(tmp_path, monkeypatch):
    import threading

    from distributed import Scheduler, SpecCluster, Worker

    project = probe_project(tmp_path / "project")
    sweep = sweeps.load(probe_sweep(project, grid={"value": [1]}), project)
    monkeypatch.setenv("PYTHONPATH", repo_on_path())
    records = {}
    with SpecCluster(workers={}, worker={"cls": Worker, "options": {"nthreads": 3}},
                     scheduler={"cls": Scheduler, "options": {"dashboard_address": None}}) as cluster:
        sweeping = threading.Thread(target=executors.run_dask, args=(
            sweep, tmp_path / "out", project, cluster.scheduler_address,
            lambda run, record: records.update({run.run_id: record["status"]})))
        sweeping.start()
        deadline = time.monotonic() + 60
        while not cluster.scheduler.tasks and time.monotonic() < deadline:  # the run is sent, with no worker
            time.sleep(0.05)
        assert cluster.scheduler.tasks and not cluster.scheduler.workers
        cluster.scale(1)  # then a worker of 3 threads joins and runs it
        sweeping.join(timeout=120)
    assert records == {sweep.runs[0].run_id: "done"}
    seen = json.loads((tmp_path / "out" / sweep.runs[0].run_id / "probe" / "summary.json").read_text())
    assert seen == {"OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
