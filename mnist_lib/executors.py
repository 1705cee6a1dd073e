"""Running a sweep's runs: each run's chain of notebooks, one child process a notebook, executed by the runner;
in parallel on this machine or on a Dask cluster; resumable from each run's recorded status."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import yaml

from mnist_lib import notebooks, runtime
from mnist_lib.sweeps import Run, Step, Sweep

STATUS_FILE = "status.json"


def status(run_dir: Path) -> dict:
    """A run's recorded status ({} when it never finished)."""
    try:
        return json.loads((run_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return {}


class Processes:
    """The notebook processes running now, so that Ctrl-C can stop them all."""

    def __init__(self) -> None:
        self.lock, self.running, self.stopping = threading.Lock(), set(), False

    def start(self, args: list[str], **options: Any) -> subprocess.Popen:
        with self.lock:
            if self.stopping:
                raise KeyboardInterrupt
            process = subprocess.Popen(args, **options)
            self.running.add(process)
            return process

    def done(self, process: subprocess.Popen) -> None:
        with self.lock:
            self.running.discard(process)

    def stop_all(self) -> None:
        with self.lock:
            self.stopping = True
            for process in self.running:
                process.terminate()


def run_step(notebook: str, parameter_file: str, output: str, overrides: dict[str, str]) -> str:
    """Execute one notebook of a run as `mnist run NOTEBOOK -f PARAMETER_FILE -o OUTPUT -p NAME VALUE ...` does: HTML
    beside the executed notebook, its closing line printed; "" on success, else the runner's error message (also
    printed): a parameter refused, a file missing, data refused, a cell failed."""
    try:
        notebooks.run(notebook, output, [parameter_file], overrides)
    except (ValueError, FileNotFoundError, notebooks.NotebookError) as err:  # ParameterError, DatasetError: ValueError
        print(f"error: {err}", file=sys.stderr)
        return str(err)
    print(notebooks.executed_line(notebook, output))
    return ""


def _ended(code: int) -> str:
    """How a child process ended, from its return code (negative: the signal that killed it)."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


def _step_outcome(notebook: str, result: Path, code: int) -> dict:
    """The outcome one step's process wrote to `result`; a process that died before writing it is a failure too."""
    try:
        written = json.loads(result.read_text())
        return {"status": written["status"], "error": written["error"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {"status": "failed",
                "error": f"{notebook}: its process {_ended(code)} without writing a result; see {Path(notebook).stem}.log"}


def execute_run(chain: tuple[Step, ...], run: Run, run_dir: str, root: str, threads: int,
                processes: Processes | None = None) -> dict:
    """Run every notebook of the chain for one run, each in a process of its own (working directory `root`, the
    project root; output in NAME.log, outcome in NAME.result.json); record and return the run's status."""
    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "parameters.json").write_text(json.dumps({"swept": run.swept, "notebooks": dict(
        zip((step.notebook for step in chain), run.values))}, indent=2, default=str) + "\n")
    env = {**os.environ, **runtime.thread_variables(threads)}
    started, record = time.perf_counter(), {"status": "done", "error": ""}
    for step, values in zip(chain, run.values):
        stem = Path(step.notebook).stem
        (folder / f"{stem}.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
        result = folder / f"{stem}.result.json"
        result.unlink(missing_ok=True)  # a previous attempt's outcome is not this one's
        request = {"notebook": step.notebook, "parameter_file": str(folder / f"{stem}.yaml"),
                   "output": str(folder / "notebooks" / f"{stem}.ipynb"), "result": str(result),
                   "overrides": {name: value.replace("{run}", str(folder)) for name, value in step.paths.items()}}
        args = [sys.executable, "-m", "mnist_lib.executors", json.dumps(request)]
        with open(folder / f"{stem}.log", "w") as log:
            if processes is None:
                code = subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root).returncode
            else:
                process = processes.start(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
                code = process.wait()
                processes.done(process)
        if code != 0 and processes is not None and processes.stopping:
            return {"status": "interrupted", "error": "", "seconds": 0.0}  # no status file: retried next time
        outcome = _step_outcome(step.notebook, result, code)
        if outcome["status"] != "done":
            record = outcome
            break
    record["seconds"] = round(time.perf_counter() - started, 1)
    (folder / STATUS_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return record


def threads_per_run(jobs: int) -> int:
    """CPU threads each of `jobs` parallel runs may use, so that together they do not oversubscribe the machine."""
    return max(1, (os.cpu_count() or 1) // jobs)


def pending(sweep: Sweep, out_dir: Path) -> list[Run]:
    """Runs without a `done` status: never run, failed or interrupted."""
    return [run for run in sweep.runs if status(out_dir / run.run_id).get("status") != "done"]


def run_local(sweep: Sweep, out_dir: Path, root: Path, jobs: int, report: Callable[[Run, dict], None]) -> None:
    """Execute the pending runs, `jobs` at a time; Ctrl-C terminates the running notebooks and re-raises."""
    processes, todo = Processes(), iter(pending(sweep, out_dir))
    threads = threads_per_run(jobs)
    with ThreadPoolExecutor(jobs) as pool:
        active: dict[Future, Run] = {}
        try:
            while True:
                for run in itertools.islice(todo, jobs - len(active)):
                    active[pool.submit(execute_run, sweep.chain, run, str(out_dir / run.run_id), str(root), threads,
                                         processes)] = run
                if not active:
                    return
                finished, _ = wait(active, return_when=FIRST_COMPLETED)
                for future in finished:
                    report(active.pop(future), future.result())
        except KeyboardInterrupt:
            processes.stop_all()
            raise


def run_dask(sweep: Sweep, out_dir: Path, root: Path, scheduler: str, report: Callable[[Run, dict], None]) -> None:
    """Execute the pending runs on a Dask cluster; each worker needs this repo at the same path and its environment."""
    from dask.distributed import Client, as_completed

    with Client(scheduler) as client:
        workers = client.scheduler_info()["workers"].values()
        threads = max(1, min(worker["nthreads"] for worker in workers)) if workers else 1
        futures = {client.submit(execute_run, sweep.chain, run, str(out_dir.resolve() / run.run_id), str(root.resolve()), threads,
                                 key=f"{sweep.name}-{run.run_id}", pure=False): run for run in pending(sweep, out_dir)}
        for future in as_completed(futures):
            report(futures[future], future.result())


def main(argv: list[str]) -> int:
    """The process of one step: `python -m mnist_lib.executors REQUEST`, REQUEST a JSON object of `run_step`'s
    arguments plus `result`, the file that gets {"status": "done" | "failed", "error": ...}."""
    request = json.loads(argv[0])
    result = Path(request.pop("result"))
    interrupted = []

    def on_sigint(signum, frame):  # Ctrl-C reaches this process and its kernel at once: the kernel's cell may
        interrupted.append(signum)  # fail first, and that failure must not be recorded as the run's own
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    try:
        error = run_step(**request)
    except KeyboardInterrupt:
        interrupted.append(signal.SIGINT)
    if interrupted:
        print("interrupted", file=sys.stderr)
        return 130  # no result file: the sweep records an interrupted run, retried next time
    result.write_text(json.dumps({"status": "failed" if error else "done", "error": error}, indent=2) + "\n")
    return 1 if error else 0


if __name__ == "__main__":  # run through the module's own name, not as a second copy named __main__
    from mnist_lib import executors

    sys.exit(executors.main(sys.argv[1:]))
