"""Pipeline overhead: what DVC, papermill and a kernel per notebook cost on top of the same work in one Python process.

    python tests/benchmarks/bench_pipeline.py [--train-images N] [--test-images N] [--epochs 1] [--repeats 3]

(a) the no-op `dvc repro` in this repo (when `dvc status` says it is up to date; else in the benchmark's copy);
(b) the fixed cost of one notebook: `mnist run` of a notebook holding only a real notebook's import cell, against
`python -c` of the same imports; (c) each stage through `dvc repro -f -s STAGE` in a fresh copy of this repo on the real
raw data (training shortened to --epochs), against the same cells in one process (one_process.py), best of
--stage-repeats rounds; (d) the peak memory of each; (e) the test suite's wall time when `make bench-suite` has
measured it.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import yaml

import benchlib
from mnist_lib import fetch, idx, notebooks
from mnist_lib.datasets import load_idx_folder

SECTION = {"section": "pipeline", "title": "Pipeline overhead", "order": 40}
STAGES = ("eda", "split", "train", "evaluate", "report")
NOOP_TARGET_S, NOTEBOOK_TARGET_S, OVERHEAD_TARGET = 2.0, 3.0, 0.10
UP_TO_DATE = "Data and pipelines are up to date"
HERE = Path(__file__).resolve().parent


def ran(output: str) -> list[str]:
    """The stages a `dvc repro` ran."""
    return re.findall(r"Running stage '(\w+)'", output)


def dvc_noop(repo: Path, targets: list[str], repeats: int) -> benchlib.Measured | None:
    """The fastest of `repeats` `dvc repro` runs in `repo`, each checked to have run nothing; None when `dvc status`
    says something changed (a repro would then run stages, which is not what is timed here)."""
    status = benchlib.run_command(["dvc", "status", "--json", *targets], repo, timeout=300, check=False)
    if status.returncode != 0 or json.loads(status.stdout or "null") != {}:
        return None
    runs = [benchlib.run_command(["dvc", "repro", *targets], repo, timeout=300) for _ in range(repeats)]
    for done in runs:
        if ran(done.stdout) or UP_TO_DATE not in done.stdout:
            raise RuntimeError(f"`dvc repro` in {repo} was not a no-op:\n{done.stdout[-2000:]}")
    return min(runs, key=lambda done: done.seconds)


def import_cell(notebook: Path) -> str:
    """The first code cell of a notebook that is not its parameters cell: its imports."""
    for cell in notebooks.read_notebook(notebook).cells:
        if cell.cell_type == "code" and "parameters" not in cell.metadata.get("tags", []):
            return cell.source
    raise ValueError(f"{notebook}: no code cell")


def notebook_costs(work: Path, names: list[str], repeats: int) -> list[dict]:
    """Per notebook: `mnist run` of a notebook holding only its import cell (and the parameters cell the runner requires)
    vs `python -c` of the same imports."""
    cases = [("empty notebook (`pass`)", "pass")] + [(f"{name} imports", import_cell(benchlib.REPO / "notebooks" / f"{name}.py"))
                                                   for name in names]
    results = []
    runner_imports = "import mnist_lib.cli, mnist_lib.notebooks, papermill, nbclient"
    print("fixed cost: the runner's own imports ...", flush=True)
    results.append({"label": "the runner's own imports, no kernel (`python -c 'import mnist_lib.notebooks, papermill, ...'`)",
                    "code": runner_imports, "runner": benchlib.timed_command([sys.executable, "-c", runner_imports], repeats, work),
                    "plain": None})
    for label, code in cases:
        source = work / f"trivial_{len(results)}.py"
        source.write_text(f"# %%\n{code}\n\n# %% tags=[\"parameters\"]\nunused = 0  # the runner wants a parameters cell\n")
        print(f"fixed cost: {label} ...", flush=True)
        runner = benchlib.timed_command(["mnist", "run", str(source), "-o", str(source.with_suffix(".ipynb")), "--no-html"],
                                        repeats, work, timeout=600)
        plain = benchlib.timed_command([sys.executable, "-c", code], repeats, work, timeout=600)
        results.append({"label": label, "code": code, "runner": runner, "plain": plain})
        print(f"  mnist run {runner.seconds:.2f} s, python -c {plain.seconds:.2f} s", flush=True)
    return results


def make_copy(dest: Path, raw_dir: Path, train_images: int | None, test_images: int | None, epochs: int) -> str:
    """A fresh git repo with this project's files and the raw data (all of it, or the first N images as IDX files);
    fetch recorded as done, training set to `epochs`. Returns a description of the data."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=benchlib.REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        if (benchlib.REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(benchlib.REPO / name, dest / name)
    raw = dest / "outputs" / "data" / "raw"
    raw.mkdir(parents=True)
    pinned = not fetch.verify_files(raw_dir)
    data = yaml.safe_load((dest / "params" / "data.yaml").read_text())
    if pinned and train_images is None and test_images is None:
        for name in idx.MNIST_FILES:
            shutil.copy2(raw_dir / name, raw / name)
        described = "the real MNIST (60,000 + 10,000 images, sha256-verified)"
    else:
        splits = load_idx_folder(raw_dir)
        for split, count in (("train", train_images), ("test", test_images)):
            part, (images_name, labels_name) = splits[split], idx.MNIST_NAMES[split]
            (raw / images_name).write_bytes(idx.idx_bytes(part.images[:count, :, :, 0]))
            (raw / labels_name).write_bytes(idx.idx_bytes(part.labels[:count].astype("uint8")))
        data["data_format"] = "idx"
        counts = [len(splits[s].images[:c]) for s, c in (("train", train_images), ("test", test_images))]
        described = f"the first {counts[0]:,} training and {counts[1]:,} test images of {raw_dir.name}/ (IDX)"
    (dest / "params" / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    train = yaml.safe_load((dest / "params" / "train.yaml").read_text())
    (dest / "params" / "train.yaml").write_text(yaml.safe_dump({**train, "epochs": epochs}, sort_keys=False))
    for args in (["git", "init", "-q"], ["dvc", "commit", "--force", "fetch"], ["git", "add", "-A"],
                 ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-qm", "bench copy"]):
        benchlib.run_command(args, dest, timeout=300)
    return described


def cell_seconds(copy: Path, command: str) -> float:
    """Seconds the executed notebook's cells ran (papermill's per-cell durations) for a `mnist run ... -o NB` stage."""
    words = shlex.split(command)
    if "-o" not in words:
        return 0.0
    notebook = nbformat.read(copy / words[words.index("-o") + 1], as_version=4)
    return sum(cell.metadata.get("papermill", {}).get("duration") or 0.0 for cell in notebook.cells)


def stage_runs(copy: Path, stages: list[str], repeats: int) -> tuple[dict[str, dict], dict[str, float], benchlib.Measured]:
    """`repeats` rounds, each: every stage through `dvc repro -f -s STAGE` in pipeline order, then the notebook stages
    in one process. Per stage the fastest DVC run (its wall time, the part outside its notebook's cells, the largest
    peak RSS), the fastest one-process seconds, and the fastest whole one-process run."""
    commands = {name: stage["cmd"] for name, stage in yaml.safe_load((copy / "dvc.yaml").read_text())["stages"].items()}
    runs: dict[str, list] = {stage: [] for stage in stages}
    inside: list[dict[str, float]] = []
    wholes = []
    for round_ in range(1, repeats + 1):
        for stage in stages:
            done = benchlib.run_command(["dvc", "repro", "-f", "-s", stage], copy, timeout=1800)
            if ran(done.stdout) != [stage]:
                raise RuntimeError(f"dvc repro -s {stage} ran {ran(done.stdout)}:\n{done.stdout[-2000:]}")
            runs[stage].append((done, done.seconds - cell_seconds(copy, commands[stage])))
            print(f"round {round_}: dvc repro -f -s {stage}: {done.seconds:.1f} s, peak RSS {done.peak_rss_mib:,.0f} MiB", flush=True)
        times = copy / "one_process.json"
        notebook_stages = [stage for stage in stages if stage != "report"]
        whole = benchlib.run_command([sys.executable, str(HERE / "one_process.py"), "--json", str(times), "--stages",
                                      *notebook_stages], copy, timeout=1800)
        wholes.append(whole)
        inside.append(json.loads(times.read_text()))
        print(f"round {round_}: one process: {whole.seconds:.1f} s, peak RSS {whole.peak_rss_mib:,.0f} MiB", flush=True)
    best = {}
    for stage, measured in runs.items():
        done, outside = min(measured, key=lambda pair: pair[0].seconds)
        best[stage] = {"seconds": done.seconds, "outside": outside, "rss": max(m.peak_rss_mib for m, _ in measured)}
    per_stage = {stage: min(times[stage] for times in inside) for stage in inside[0]}
    fastest = min(wholes, key=lambda run: run.seconds)
    return best, per_stage, benchlib.Measured(fastest.seconds, max(run.peak_rss_mib for run in wholes), 0, "", "")


def real_fit_seconds() -> float:
    """The training time of the last real `dvc repro` (outputs/train/summary.json), which the stage runs here cut short."""
    summary = benchlib.REPO / "outputs" / "train" / "summary.json"
    if not summary.is_file():
        raise SystemExit(f"{summary} is missing: run `make pipeline` first, or pass --real-train-s SECONDS")
    return float(json.loads(summary.read_text())["fit_seconds"])


def suite_row(bench_dir: Path) -> list | None:
    """The test suite's wall time from test_suite.json (`make bench-suite`), when it was measured."""
    path = bench_dir / "test_suite.json"
    if not path.is_file():
        return None
    suite = json.loads(path.read_text())
    return [f"test suite, `make bench-suite` ({suite['measured_at'][:10]})", suite["seconds"], None, None, None, None, None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-dir", type=Path, default=benchlib.REPO / "outputs/data/raw", help="the four raw IDX files")
    parser.add_argument("--train-images", type=int, help="use only the first N training images (default: all)")
    parser.add_argument("--test-images", type=int, help="use only the first N test images (default: all)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of the train stage in the copy")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES, help="stages to time, in order")
    parser.add_argument("--notebooks", nargs="*", help="notebooks whose import cell is timed (default: 01..04)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each short command, the best is kept")
    parser.add_argument("--stage-repeats", type=int, default=2, help="rounds of stage runs (pipeline and one process)")
    parser.add_argument("--noop-in", choices=("repo", "copy"), default="repo",
                        help="where the no-op repro is timed (repo: this repo when it is up to date, else the copy)")
    parser.add_argument("--real-train-s", type=float, help="the train stage's compute in `make pipeline` (default: "
                        "fit_seconds in outputs/train/summary.json, the last real run's)")
    parser.add_argument("--work-dir", type=Path, help="where the copy goes (default: a temp folder, removed after)")
    parser.add_argument("--out", type=Path, help="where the section's JSON goes (default: outputs/bench)")
    args = parser.parse_args(argv)
    names = args.notebooks if args.notebooks is not None else sorted(p.stem for p in (benchlib.REPO / "notebooks").glob("0[1-4]_*.py"))

    noop, noop_where = None, "this repo"
    if args.noop_in == "repo":
        print("no-op dvc repro in this repo ...", flush=True)
        noop = dvc_noop(benchlib.REPO, [], args.repeats)
    work = Path(tempfile.mkdtemp(prefix="bench-pipeline-", dir=args.work_dir))
    try:
        fixed = notebook_costs(work, names, args.repeats)
        copy = work / "repo"
        described = make_copy(copy, args.raw_dir, args.train_images, args.test_images, args.epochs)
        stages, per_stage, whole = stage_runs(copy, args.stages, args.stage_repeats)
        if noop is None:
            noop_where = "the benchmark's copy" + ("" if args.noop_in == "copy" else ": this repo is not up to date")
            noop = dvc_noop(copy, [] if list(args.stages) == list(STAGES) else args.stages, args.repeats)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)

    rows = [[f"no-op `dvc repro` ({noop_where}; nothing ran)", noop.seconds, None, None, None, noop.peak_rss_mib, None]]
    for case in fixed:
        plain = case["plain"]
        rows.append([f"fixed cost per notebook: {case['label']}", case["runner"].seconds, plain and plain.seconds,
                     plain and case["runner"].seconds - plain.seconds, None, case["runner"].peak_rss_mib,
                     plain and plain.peak_rss_mib])
    overhead = {stage: best["seconds"] - per_stage.get(stage, 0.0) for stage, best in stages.items()}
    for stage, best in stages.items():
        label = f"stage {stage}" + (" (pipeline only: renders the executed notebooks)" if stage == "report" else "")
        rows.append([label, best["seconds"], per_stage.get(stage), overhead[stage], best["outside"], best["rss"], None])
    pipeline_s = sum(best["seconds"] for best in stages.values())
    outside_s = sum(best["outside"] for best in stages.values())
    rows.append(["all these stages (pipeline: their sum; one process: the whole process, start and imports included)",
                 pipeline_s, whole.seconds, pipeline_s - whole.seconds, outside_s,
                 max(best["rss"] for best in stages.values()), whole.peak_rss_mib])
    if (suite := suite_row(args.out or benchlib.OUT_DIR)) is not None:
        rows.append(suite)

    share = (pipeline_s - whole.seconds) / whole.seconds
    eda_split = sum(per_stage.get(stage, 0.0) for stage in ("eda", "split", "evaluate"))
    real_train_s = args.real_train_s or real_fit_seconds()
    real_compute = eda_split + real_train_s
    real_share = sum(overhead.values()) / real_compute
    notebooks_run = [case for case in fixed if case["plain"] is not None]
    worst = max(notebooks_run[1:] or notebooks_run, key=lambda case: case["runner"].seconds)
    targets = [
        {"target": f"no-op `dvc repro` <= {NOOP_TARGET_S:g} s", "measured": f"{noop.seconds:.2f} s ({noop_where})",
         "met": noop.seconds <= NOOP_TARGET_S},
        {"target": f"kernel start + imports <= {NOTEBOOK_TARGET_S:g} s per notebook",
         "measured": f"{worst['runner'].seconds:.2f} s (`mnist run`, {worst['label']}, the slowest)",
         "met": worst["runner"].seconds <= NOTEBOOK_TARGET_S},
        {"target": f"pipeline overhead <= {OVERHEAD_TARGET:.0%} of compute (this run, {args.epochs}-epoch training)",
         "measured": f"{share:.0%} ({pipeline_s - whole.seconds:.1f} s on {whole.seconds:.1f} s)", "met": share <= OVERHEAD_TARGET},
        {"target": f"pipeline overhead <= {OVERHEAD_TARGET:.0%} of compute (extrapolated to `make pipeline`)",
         "measured": f"{real_share:.0%} ({sum(overhead.values()):.1f} s on about {real_compute:.0f} s; "
                     f"{outside_s / real_compute:.0%} counting only the time outside the cells)",
         "met": real_share <= OVERHEAD_TARGET},
    ]
    benchlib.write_section({
        **SECTION, "command": benchlib.command_line(__file__, argv),
        "columns": ["what", "pipeline (s)", "one process (s)", "overhead (s)", "outside the cells (s)",
                    "peak RSS, pipeline (MiB)", "peak RSS, one process (MiB)"],
        "rows": [[row[0], *(None if v is None else round(v, 3) for v in row[1:5]),
                  *(None if v is None else round(v) for v in row[5:])] for row in rows],
        "notes": [
            f"No-op: best of {args.repeats} `dvc repro` runs right after `dvc status` said nothing changed; each run's "
            f"output said \"{UP_TO_DATE}\" and ran no stage.",
            f"Fixed cost per notebook: best of {args.repeats} `mnist run NOTEBOOK --no-html` of a notebook holding only "
            "that notebook's import cell (and the parameters cell the runner requires): CLI start, jupytext, papermill, "
            f"kernel start, the imports, kernel shutdown, writing the executed notebook; against best of {args.repeats} "
            "`python -c` of the same imports. The difference is the runner and the kernel; the runner's own imports "
            "(the `mnist` CLI, jupytext, nbformat, papermill) are timed alone in their row.",
            f"Stages: {args.stage_repeats} round(s), each running every stage through `dvc repro -f -s STAGE` in pipeline "
            f"order, then tests/benchmarks/one_process.py (the same notebooks' code cells with the same parameters in "
            "one Python process, Agg figures, outputs under outputs/oneprocess/); the fastest of each is kept. A fresh "
            f"git copy of this repo holding {described}, training set to {args.epochs} epoch(s). One-process seconds "
            "per stage exclude the interpreter start; the first stage to import a library pays for it.",
            "Outside the cells: a stage run's wall time minus the seconds its notebook's cells ran (papermill's "
            "per-cell durations in the executed notebook): DVC, the `mnist` CLI start, kernel start and shutdown, "
            "saving the notebook, DVC hashing and caching the outputs. It is measured within one run, so it suffers "
            "less from other load than the difference of two runs. The rest of the overhead is in the cells: each "
            "notebook imports its libraries again, and the inline backend renders every figure once more for the "
            "notebook.",
            "Overhead of this run: (sum of the stage runs - the whole one-process run) / the one-process run. Each "
            "stage run pays one DVC start (about the no-op time) that a single `dvc repro` pays once.",
            f"Extrapolated: the per-stage overheads ({sum(overhead.values()):.1f} s, report included) do not grow "
            f"with epochs, so they are set against `make pipeline`'s compute: eda, split and evaluate as measured here "
            f"in one process ({eda_split:.1f} s) + the full training, {real_train_s:.0f} s (fit_seconds of the last real "
            "`dvc repro` in outputs/train/summary.json, or --real-train-s).",
            "Peak RSS: ru_maxrss from wait4 of each command: the largest single process of its tree (for a stage, the "
            "kernel), not the sum of the processes alive at once; the largest over the rounds.",
            "Test suite: not measured; run `make bench-suite` (as long as the suite) and then this section again."
            if suite is None else "Test suite: from outputs/bench/test_suite.json (`make bench-suite`), dated in its row.",
        ],
        "targets": targets,
    }, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
