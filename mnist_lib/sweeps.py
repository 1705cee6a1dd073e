"""Parameter sweeps: a sweep file's grid expanded into runs with stable ids, each run a chain of notebooks executed
by the runner in its own process, in parallel locally or on a Dask cluster; resumable; one summary table."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mnist_lib import notebooks, params, runtime
from mnist_lib.params import ParameterError

SPEC_KEYS = {"description", "chain", "fixed", "grid", "zip", "runs"}
STEP_KEYS = {"notebook", "parameter_files", "paths"}
STATUS_FILE = "status.json"
MAX_ID_LENGTH = 80
SEED_METRICS = ("train.best_val_accuracy", "evaluate.test_accuracy")  # summarized over seeds in by_configuration.csv


@dataclass(frozen=True)
class Step:
    """One notebook of a run's chain: its base parameter files and its path parameters ({run} is the run folder)."""

    notebook: str
    parameter_files: tuple[str, ...]
    paths: dict[str, str]


@dataclass(frozen=True)
class Run:
    """One combination: the swept values, and per step the complete parameters the notebook gets."""

    run_id: str
    swept: dict[str, Any]
    values: tuple[dict[str, Any], ...]


@dataclass
class Sweep:
    """A validated sweep file: its name, chain of notebooks and expanded runs."""

    name: str
    path: Path
    chain: tuple[Step, ...]
    runs: list[Run]
    swept_names: list[str] = field(default_factory=list)


def _mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ParameterError(f"{where} must be a mapping of name: value, got {type(value).__name__}")
    return value


def _lists(value: Any, where: str) -> dict[str, list]:
    mapping = _mapping(value, where)
    for name, choices in mapping.items():
        if not isinstance(choices, list) or not choices:
            raise ParameterError(f"{where}.{name} must be a non-empty list of values, got {choices!r}")
    return mapping


def combinations(spec: dict, where: str) -> list[dict[str, Any]]:
    """The runs a sweep spec asks for: the cartesian product of `grid` times the rows of `zip`, then `runs`."""
    grid, zipped = _lists(spec.get("grid"), f"{where}: grid"), _lists(spec.get("zip"), f"{where}: zip")
    lengths = {name: len(choices) for name, choices in zipped.items()}
    if len(set(lengths.values())) > 1:
        raise ParameterError(f"{where}: zip lists must have equal lengths, got {lengths}")
    both = set(grid) & set(zipped)
    if both:
        raise ParameterError(f"{where}: {', '.join(sorted(both))} is in both grid and zip")
    combos = []
    if grid or zipped:
        zip_rows = [dict(zip(zipped, row)) for row in zip(*zipped.values())] or [{}]
        for values in itertools.product(*grid.values()):
            combos += [{**dict(zip(grid, values)), **row} for row in zip_rows]
    explicit = spec.get("runs") or []
    if not isinstance(explicit, list):
        raise ParameterError(f"{where}: runs must be a list of name: value mappings")
    combos += [_mapping(run, f"{where}: runs[{index}]") for index, run in enumerate(explicit)]
    if not combos:
        raise ParameterError(f"{where}: no runs; give a grid, zip lists or a list of runs")
    return combos


def _format(value: Any) -> str:
    text = format(value, "g") if isinstance(value, float) else str(value).lower() if isinstance(value, bool) else str(value)
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text)


def run_id(swept: dict[str, Any], values: tuple[dict[str, Any], ...]) -> str:
    """A readable id from the swept values plus a short hash of every value the notebooks get (stable across calls)."""
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:6]
    readable = "_".join(f"{name}-{_format(value)}" for name, value in swept.items())[:MAX_ID_LENGTH]
    return f"{readable}_{digest}" if readable else digest


def load(path: str | Path, root: str | Path = ".") -> Sweep:
    """Read and validate a sweep file: every step's notebook and files exist, every swept name is declared by a
    notebook of the chain, and every run's values have the declared types; nothing runs before this passes."""
    path, root = Path(path), Path(root)
    try:
        spec = yaml.safe_load(path.read_text())  # YAML 1.1, as papermill reads parameter files
    except (OSError, yaml.YAMLError) as err:
        raise ParameterError(f"{path}: cannot read the sweep file ({err})") from None
    spec = _mapping(spec, str(path))
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise ParameterError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; a sweep file has {', '.join(sorted(SPEC_KEYS))}")
    chain = []
    for index, step in enumerate(spec.get("chain") or []):
        step = _mapping(step, f"{path}: chain[{index}]")
        if set(step) - STEP_KEYS or "notebook" not in step:
            raise ParameterError(f"{path}: chain[{index}] needs `notebook` and may have `parameter_files`, `paths`")
        chain.append(Step(str(step["notebook"]), tuple(map(str, step.get("parameter_files") or [])),
                          {name: str(value) for name, value in _mapping(step.get("paths"), f"chain[{index}].paths").items()}))
    if not chain:
        raise ParameterError(f"{path}: chain must list at least one notebook")
    declared, base = [], []
    for step in chain:
        if not (root / step.notebook).is_file():
            raise ParameterError(f"{path}: notebook {step.notebook} does not exist")
        declared.append(params.declared_parameters(notebooks.read_notebook(root / step.notebook).cells))
        values, _ = params.load_files([root / name for name in step.parameter_files])
        base.append(values)
    fixed = _mapping(spec.get("fixed"), f"{path}: fixed")
    all_declared = sorted({name for names in declared for name in names})
    runs, seen = [], {}
    combos = combinations(spec, str(path))
    swept_names = list(dict.fromkeys(name for combo in combos for name in combo))
    for number, combo in enumerate(combos, start=1):
        wanted = {**fixed, **combo}
        orphans = [name for name in wanted if not any(name in names for names in declared)]
        if orphans:
            raise ParameterError(f"{path}: run {number} sets {', '.join(orphans)}, which no notebook of the chain "
                                 f"declares; the declared parameters are: {', '.join(all_declared)}")
        values = []
        for step, names, defaults in zip(chain, declared, base):
            merged = {**defaults, **{name: value for name, value in wanted.items() if name in names}}
            origins = {name: f"{path} (run {number})" if name in wanted else "its parameter files" for name in merged}
            params.check(names, merged, origins, step.notebook)
            values.append(merged)
        run = Run(run_id(combo, tuple(values)), combo, tuple(values))
        if run.run_id in seen:
            raise ParameterError(f"{path}: runs {seen[run.run_id]} and {number} are the same combination")
        seen[run.run_id] = number
        runs.append(run)
    return Sweep(path.stem, path, tuple(chain), runs, swept_names)


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


def execute_run(chain: tuple[Step, ...], run: Run, run_dir: str, root: str, threads: int,
                processes: Processes | None = None) -> dict:
    """Run every notebook of the chain for one run in its own `mnist run` process (working directory `root`, the
    project root); record and return its status."""
    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "parameters.json").write_text(json.dumps({"swept": run.swept, "notebooks": dict(
        zip((step.notebook for step in chain), run.values))}, indent=2, default=str) + "\n")
    env = {**os.environ, **runtime.thread_variables(threads)}
    started, record = time.perf_counter(), {"status": "done", "error": ""}
    for step, values in zip(chain, run.values):
        stem = Path(step.notebook).stem
        (folder / f"{stem}.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
        args = [sys.executable, "-m", "mnist_lib.cli", "run", step.notebook, "-f", str(folder / f"{stem}.yaml"),
                "-o", str(folder / "notebooks" / f"{stem}.ipynb")]
        for name, value in step.paths.items():
            args += ["-p", name, value.replace("{run}", str(folder))]
        with open(folder / f"{stem}.log", "w") as log:
            if processes is None:
                code = subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root).returncode
            else:
                process = processes.start(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
                code = process.wait()
                processes.done(process)
        if code != 0:
            lines = [line for line in (folder / f"{stem}.log").read_text().splitlines() if line.startswith("mnist run")]
            if processes is not None and processes.stopping:
                return {"status": "interrupted", "error": "", "seconds": 0.0}  # no status file: retried next time
            record = {"status": "failed", "error": lines[-1] if lines else f"{step.notebook} exited {code}"}
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


def _scalars(path: Path, prefix: str) -> Iterator[tuple[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    for key, value in data.items():
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            yield f"{prefix}.{key}", value


def summarize(sweep: Sweep, out_dir: Path) -> pd.DataFrame:
    """One row per run: id, status, seconds, error, the values it used for every swept parameter, and every scalar of
    each stage's JSON results (e.g. `train.best_val_accuracy`, `evaluate.test_accuracy`); written to summary.csv.
    When seeds were swept, by_configuration.csv holds each other combination's mean, sd and count over seeds."""
    rows = []
    for run in sweep.runs:
        folder = out_dir / run.run_id
        record = status(folder)
        used = {name: next((values[name] for values in run.values if name in values), None) for name in sweep.swept_names}
        row = {"run_id": run.run_id, "status": record.get("status", "pending"), "seconds": record.get("seconds"),
               "error": record.get("error", ""), **used}
        for stage in sorted(p for p in folder.glob("*/") if p.name != "notebooks"):
            for result in ("summary.json", "metrics.json"):
                row.update(_scalars(stage / result, stage.name))
        rows.append(row)
    table = pd.DataFrame(rows)
    table.to_csv(out_dir / "summary.csv", index=False)
    by_configuration = seed_statistics(table, sweep.swept_names, [name for name in SEED_METRICS if name in table])
    if not by_configuration.empty:  # mean, sd and count of seeds per combination of the other swept values
        by_configuration.columns = [f"{metric} {stat}" for metric, stat in by_configuration.columns]
        by_configuration.to_csv(out_dir / "by_configuration.csv")
    (out_dir / "sweep.json").write_text(json.dumps({"name": sweep.name, "file": str(sweep.path),
                                                    "swept": sweep.swept_names, "runs": len(sweep.runs)}, indent=2) + "\n")
    return table


def read_summary(sweep_dir: str | Path) -> tuple[pd.DataFrame, dict]:
    """The summary table of a finished sweep and its description (name, swept parameter names)."""
    sweep_dir = Path(sweep_dir)
    if not (sweep_dir / "summary.csv").is_file():
        raise FileNotFoundError(f"{sweep_dir / 'summary.csv'} does not exist: run `mnist sweep params/sweeps/NAME.yaml` first")
    return pd.read_csv(sweep_dir / "summary.csv", keep_default_na=False, na_values=[""]), json.loads(
        (sweep_dir / "sweep.json").read_text())


def histories(sweep_dir: str | Path, table: pd.DataFrame, rank_by: str, top: int) -> dict[str, pd.DataFrame]:
    """Training histories (history.csv) of the `top` finished runs by `rank_by` (a validation figure, never test)."""
    if rank_by not in table:
        raise ParameterError(f"rank_by {rank_by!r} is not a column of the summary; columns: {', '.join(table.columns)}")
    best = table[table["status"] == "done"].sort_values(rank_by, ascending=False).head(top)
    return {run: pd.read_csv(Path(sweep_dir) / run / "train" / "history.csv") for run in best["run_id"]
            if (Path(sweep_dir) / run / "train" / "history.csv").is_file()}


def seed_statistics(table: pd.DataFrame, swept: list[str], metrics: list[str]) -> pd.DataFrame:
    """Mean and standard deviation of `metrics` over seeds, per combination of the other swept parameters
    (empty when seed was not swept)."""
    done = table[table["status"] == "done"]
    if "seed" not in swept or done.empty:
        return pd.DataFrame()
    others = [name for name in swept if name != "seed"]
    present = [metric for metric in metrics if metric in done]
    grouped = done.groupby(others, dropna=False)[present] if others else done.assign(all="all").groupby("all")[present]
    stats = grouped.agg(["mean", "std", "count"])
    return stats.sort_values((present[0], "mean"), ascending=False) if present else stats


def sortable_html(table: pd.DataFrame) -> str:
    """The table as HTML whose column headers sort the rows when clicked (a few lines of inline script)."""
    table_id = "sweep-" + hashlib.sha256(table.to_csv().encode()).hexdigest()[:8]
    html = table.to_html(index=False, table_id=table_id, na_rep="", float_format=lambda value: f"{value:.4g}")
    script = (
        "<script>(function(){const t=document.getElementById('%s');t.querySelectorAll('th').forEach((th,i)=>{"
        "th.style.cursor='pointer';th.title='click to sort';th.onclick=()=>{const b=t.tBodies[0];"
        "const rows=[...b.rows];const up=th.dataset.up!=='1';th.dataset.up=up?'1':'0';"
        "const key=r=>{const v=r.cells[i].innerText;const n=parseFloat(v);return isNaN(n)?v:n;};"
        "rows.sort((a,c)=>{const x=key(a),y=key(c);return (x>y?1:x<y?-1:0)*(up?1:-1);});"
        "rows.forEach(r=>b.appendChild(r));};});})();</script>" % table_id
    )
    return html + script


def best_against_runner_up(sweep_dir: str | Path, table: pd.DataFrame, swept: list[str], rank_by: str) -> pd.DataFrame:
    """The best configuration (by its mean `rank_by` over seeds, a validation figure) against the runner-up, paired
    on the test images with McNemar's exact test, one row per seed both ran (one row when seeds were not swept)."""
    from mnist_lib import compare

    done = table[table["status"] == "done"]
    others = [name for name in swept if name != "seed"]
    if rank_by not in done or not others:
        return pd.DataFrame()
    configuration = done[others].astype(str).agg(", ".join, axis=1)  # one key per combination of the other values
    ranked = done.groupby(configuration)[rank_by].mean().sort_values(ascending=False, kind="stable")
    if len(ranked) < 2:
        return pd.DataFrame()
    picks = [done[configuration == key] for key in ranked.index[:2]]
    seeds = sorted(set(picks[0]["seed"]) & set(picks[1]["seed"])) if "seed" in swept else [None]
    rows = []
    for seed in seeds:
        runs = [pick if seed is None else pick[pick["seed"] == seed] for pick in picks]
        ids = [run["run_id"].iloc[0] for run in runs]
        result = compare.compare(*(compare.read_predictions(Path(sweep_dir) / run_id / "evaluate") for run_id in ids),
                                 names=tuple(ids))
        rows.append({"seed": seed, "best": ids[0], "runner_up": ids[1],
                     "best_test_accuracy": result.correct[0] / result.n_test,
                     "runner_up_test_accuracy": result.correct[1] / result.n_test,
                     "right_only_in_best": result.only_first, "right_only_in_runner_up": result.only_second,
                     "mcnemar_p": result.p_value})
    return pd.DataFrame(rows)
