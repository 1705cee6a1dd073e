"""The real `dvc repro` on a copy of this repo with a tiny dataset: outputs, idempotence, exactly the right reruns,
run-cache restores, a second concurrent repro refused, a killed training resumed."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
from filelock import FileLock
import nbformat
import pytest
import yaml

from conftest import REPO, draw_digits, write_kaggle_csv, write_tiny_mnist
from mnist_lib import evaluation, resume

pytestmark = pytest.mark.slow
STAGES = ("fetch", "eda", "split", "train", "evaluate", "report")
FIRST_RUN: dict[str, str] = {}  # what the first full repro wrote, for the run-cache test at the end


def environment() -> dict[str, str]:
    """This environment's scripts (mnist, dvc) first on PATH, as `make` does."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def sh(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=environment(), capture_output=True, text=True, timeout=900)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


TRAIN_DEFAULTS = yaml.safe_load((REPO / "params" / "train.yaml").read_text())


def ran(output: str) -> list[str]:
    """Stages `dvc repro` ran, in order."""
    return re.findall(r"Running stage '(\w+)'", output)


def stale(repo: Path) -> set[str]:
    """Stages `dvc status` reports as changed (their own code, parameters, data or outputs differ from dvc.lock)."""
    return set(json.loads(sh(["dvc", "status", "--json"], repo).stdout))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def set_params(repo: Path, name: str, **values) -> None:
    path = repo / "params" / f"{name}.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(values)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def copy_project(repo: Path) -> Path:
    """A fresh git repo at `repo` holding this project's files, with a tiny dataset standing in for the fetched
    MNIST: tiny data is not the pinned MNIST, so it is read as a plain IDX folder and recorded as fetch's output."""
    for name in sh(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO).stdout.split():
        if (REPO / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, repo / name)
    sh(["git", "init", "-q"], repo)
    write_tiny_mnist(repo / "outputs" / "data" / "raw")
    set_params(repo, "data", data_format="idx")
    sh(["dvc", "commit", "--force", "fetch"], repo)
    return repo


STAND_INS = ("eda/summary.json", "train/model.keras", "train/model.keras.sha256", "train/summary.json",
             "evaluate/metrics.json", "reports/index.html")


def lock_on_stand_ins(repo: Path) -> Path:
    """Run the split stage for real and lock every other stage on small stand-in outputs (no training), so
    `dvc status` is clean and names any stage whose outputs a later command touches."""
    sh(["dvc", "repro", "--single-item", "split"], repo)
    out = repo / "outputs"
    for name in STAND_INS:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(json.dumps({"stand_in": name}) + "\n")
    for name in ("01_eda", "03_train", "04_evaluate"):
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {name}")]),
                       out / "notebooks" / f"{name}.ipynb")
    sh(["dvc", "commit", "--force", "eda", "train", "evaluate", "report"], repo)
    assert stale(repo) == set()
    return repo


def locked_project(tmp_path_factory, target: Path) -> Path:
    """A copy at `target` of one project locked on stand-ins (`copy_project`, then `lock_on_stand_ins`), built once
    per test session: pytest-xdist workers share it under a file lock, as the pytest-xdist docs show."""
    root = tmp_path_factory.getbasetemp()
    root = root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root
    template, built = root / "locked_project", root / "locked_project.built"
    with FileLock(str(root / "locked_project.lock")):
        if not built.exists():
            shutil.rmtree(template, ignore_errors=True)
            template.mkdir()
            lock_on_stand_ins(copy_project(template))
            built.touch()
    shutil.copytree(template, target, symlinks=True)
    assert stale(target) == set()
    return target


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A fresh git repo holding this project's files, with a tiny dataset standing in for the fetched MNIST."""
    repo = copy_project(tmp_path_factory.mktemp("pipeline") / "repo")
    set_params(repo, "eda", sample_size=200)
    set_params(repo, "train", epochs=1)
    sh(["git", "add", "-A"], repo)
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "tiny"], repo)
    return repo


def test_repro_runs_every_stage_and_writes_the_promised_outputs(repo):
    done = sh(["dvc", "repro"], repo)
    assert ran(done.stdout) == ["eda", "split", "train", "evaluate", "report"]
    out = repo / "outputs"
    for name in ("01_eda", "02_split", "03_train", "04_evaluate"):
        assert (out / "notebooks" / f"{name}.ipynb").is_file()
        assert (out / "reports" / f"{name}.html").stat().st_size > 10_000
    index = (out / "reports" / "index.html").read_text()
    assert all(f'href="{name}.html"' in index for name in ("01_eda", "02_split", "03_train", "04_evaluate"))
    assert "test_accuracy" in index
    assert "data:image/png;base64" in (out / "reports" / "04_evaluate.html").read_text()
    metrics = json.loads((out / "evaluate" / "metrics.json").read_text())
    assert metrics["n_test"] == 100 and 0.0 <= metrics["test_accuracy"] <= 1.0
    assert metrics["error_rate"] == pytest.approx(1 - metrics["test_accuracy"])
    assert metrics["model"] == "cnn_strong" and metrics["seed"] == 42 and 0.0 <= metrics["ece"] <= 1.0
    assert "<dt>n_errors</dt>" in index and "<dt>macro_f1</dt>" in index
    assert "<dt>train_size</dt><dd>1</dd>" in index and "<dt>train_images</dt><dd>270</dd>" in index  # the subset
    headline = index[index.index('<div id="headline">'):index.index("<section>")]  # the result, first
    assert ("<dt>model and recipe</dt><dd>cnn_strong, 1 epoch of batch 34 (batch_size 128, lowered for small data), "
            "adam 0.003 (one_cycle)") in headline
    assert "<dt>data</dt><dd>idx: 270 train / 30 validation / 100 test images, 10 classes (28x28x1)</dd>" in headline
    assert f"<dt>errors</dt><dd>{metrics['n_errors']} of 100 test images</dd>" in headline and "<dt>training</dt>" in headline
    assert 'href="03_train.html#Learning-curves"' in headline
    assert (out / "train" / "model.keras").is_file()
    FIRST_RUN.update(model=sha256(out / "train" / "model.keras"), metrics=sha256(out / "evaluate" / "metrics.json"))


def test_second_repro_runs_nothing(repo):
    done = sh(["dvc", "repro"], repo)
    assert ran(done.stdout) == []
    assert "Data and pipelines are up to date" in done.stdout
    assert "up to date" in sh(["dvc", "status"], repo).stdout


def test_dvc_metrics_and_plots_read_the_outputs(repo):
    shown = sh(["dvc", "metrics", "show"], repo).stdout
    assert "test_accuracy" in shown and "n_test" in shown
    sh(["dvc", "plots", "show", "-o", "plots_html"], repo)
    page = (repo / "plots_html" / "index.html").read_text()
    assert "Loss" in page and "Accuracy" in page and "Confusion matrix" in page
    assert "Confusion matrix, row-normalised" in page and "Calibration" in page and "gallery.png" in page


def test_changed_train_params_rerun_train_evaluate_report_and_a_training_killed_mid_run_resumes(repo):
    sh(["git", "add", "dvc.lock"], repo)
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "first run"], repo)
    epochs = 4
    set_params(repo, "train", epochs=epochs, batch_size=16)
    state, out = resume.resume_path(repo / "outputs" / "train"), repo / "outputs" / "train"
    first = subprocess.Popen(["dvc", "repro"], cwd=repo, env=environment(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not state.is_file():  # written after the first epoch
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.02)
    kernel_of(first.pid).send_signal(signal.SIGKILL)
    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode != 0 and "kernel died" in stderr and ran(stdout) == ["train"]
    with np.load(state) as saved:
        done = json.loads(str(saved["meta"]))["epochs_done"]
    assert 1 <= done < epochs, "the kill came after the last epoch: nothing left to resume"
    rows_at_kill = (out / "history.csv").read_text().splitlines()
    assert len(rows_at_kill) == 1 + done

    resumed = sh(["dvc", "repro"], repo)
    assert ran(resumed.stdout) == ["train", "evaluate", "report"]  # the stages the change reaches, no others
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from_epoch"] == done and summary["epochs_run"] == epochs
    history = (out / "history.csv").read_text().splitlines()
    assert [int(row.split(",")[0]) for row in history[1:]] == list(range(epochs))  # every epoch once, none rerun
    assert history[: 1 + done] == rows_at_kill  # the epochs before the kill were not trained again
    assert not state.exists() and sorted(p.name for p in out.iterdir()) == [
        "curves.png", "history.csv", "model.keras", "model.keras.sha256", "summary.json"]
    assert summary["model_sha256"] == sha256(out / "model.keras")
    assert evaluation.load_model(out / "model.keras").output_shape == (None, 10)
    # `dvc metrics diff` shows what the change did against the committed run.
    diff = json.loads(sh(["dvc", "metrics", "diff", "--json"], repo).stdout)["outputs/evaluate/metrics.json"]
    assert diff["test_loss"]["old"] != diff["test_loss"]["new"]
    assert diff["test_loss"]["diff"] == pytest.approx(diff["test_loss"]["new"] - diff["test_loss"]["old"])


def test_a_failing_stage_keeps_its_lock_entry_and_the_fix_restores_the_last_good_outputs(repo):
    lock = lambda: yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["evaluate"]  # noqa: E731
    entry, metrics = lock(), (repo / "outputs" / "evaluate" / "metrics.json").read_bytes()
    notebook = repo / "notebooks" / "04_evaluate.py"
    good, marker = notebook.read_text(), "metrics = evaluation.metrics("
    assert marker in good
    notebook.write_text(good.replace(marker, f"raise RuntimeError('injected fault')\n{marker}", 1))
    failed = sh(["dvc", "repro"], repo, check=False)
    assert failed.returncode != 0
    assert ran(failed.stdout) == ["evaluate"] and "RuntimeError: injected fault" in failed.stderr
    assert lock() == entry
    notebook.write_text(good)
    fixed = sh(["dvc", "repro"], repo)
    assert "Stage 'evaluate' is cached - skipping run, checking out outputs" in fixed.stdout
    assert (repo / "outputs" / "evaluate" / "metrics.json").read_bytes() == metrics
    assert "up to date" in sh(["dvc", "status"], repo).stdout


def edit(path: Path, old: str, new: str) -> str:
    """Replace `old` (which must be there) by `new` in a file; return the original text."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))
    return text


def kernel_of(pid: int) -> psutil.Process:
    """The Jupyter kernel started (through dvc and mnist run) by process `pid`."""
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "ipykernel_launcher" in child.cmdline():
                return child
        except psutil.Error:  # a short-lived helper process that already ended
            continue
    raise AssertionError(f"no kernel among the children of {pid}")


def test_each_kind_of_change_makes_exactly_its_own_stages_stale(repo):
    assert stale(repo) == set()
    raw = repo / "outputs" / "data" / "raw" / "t10k-labels-idx1-ubyte"
    changes = {  # what changes -> the stages whose own dependencies it is (repro then reruns their descendants too)
        "notebook (markdown only)": (repo / "notebooks" / "03_train.py", "# ## Learning curves", "# ## Learning curves, per epoch", {"train"}),
        "library module": (repo / "mnist_lib" / "evaluation.py", "EPSILON = 1e-7", "EPSILON = 1e-7  # unchanged value", {"evaluate"}),
        "shared library module": (repo / "mnist_lib" / "plots.py", '"""', '"""Figures. ', {"eda", "split", "train", "evaluate"}),
        "eda parameter": (repo / "params" / "eda.yaml", "sample_size: 200", "sample_size: 150", {"eda"}),
        "train parameter": (repo / "params" / "train.yaml", "lr_decay: 0.9", "lr_decay: 0.8", {"train"}),
    }
    for what, (path, old, new, expected) in changes.items():
        original = edit(path, old, new)
        assert stale(repo) == expected, what
        path.write_text(original)
    original = raw.read_bytes()
    raw.write_bytes(original[:-1] + bytes([(original[-1] + 1) % 10]))  # one test label changed, still a valid IDX file
    assert stale(repo) == {"fetch", "eda", "split"}  # fetch's output differs from its record; eda and split read it
    raw.write_bytes(original)
    assert stale(repo) == set()


def test_reverting_train_params_restores_every_output_from_the_run_cache(repo):
    set_params(repo, "train", epochs=1, batch_size=TRAIN_DEFAULTS["batch_size"])  # the first repro's values
    done = sh(["dvc", "repro"], repo)
    assert ran(done.stdout) == []
    for stage in ("train", "evaluate", "report"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in done.stdout
    train = repo / "outputs" / "train"
    assert sha256(train / "model.keras") == FIRST_RUN["model"]  # the same file: a retrained one embeds a new save time
    assert (train / "model.keras.sha256").read_text().split()[0] == FIRST_RUN["model"]
    assert sha256(repo / "outputs" / "evaluate" / "metrics.json") == FIRST_RUN["metrics"]
    assert stale(repo) == set()


def test_a_second_concurrent_repro_is_refused_and_the_first_finishes_cleanly(repo, tmp_path):
    edit(repo / "mnist_lib" / "evaluation.py", "EPSILON = 1e-7", "EPSILON = 1e-7  # as Keras clips")
    assert stale(repo) == {"evaluate"}
    log = tmp_path / "first.log"
    with open(log, "w") as stream:
        first = subprocess.Popen(["dvc", "repro"], cwd=repo, env=environment(), stdout=stream, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "Running stage 'evaluate'" not in log.read_text():
            assert first.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        second = sh(["dvc", "repro"], repo, check=False)
        assert first.poll() is None, "the first repro ended before the second one started: no overlap was tested"
    finally:
        first.wait(timeout=600)
    assert second.returncode != 0
    assert re.search(r"Unable to acquire lock|is busy, it is being blocked by", second.stderr), second.stderr
    assert ran(second.stdout) == []
    assert first.returncode == 0, log.read_text()
    assert ran(log.read_text()) == ["evaluate", "report"]
    assert stale(repo) == set()
    assert not any(json.loads((repo / ".dvc" / "tmp" / "rwlock").read_text() or "{}").values())  # no lock left held
    assert json.loads((repo / "outputs" / "evaluate" / "metrics.json").read_text())["n_test"] == 100


def test_a_queued_dvc_experiment_runs_and_dvc_exp_show_lists_it(repo):
    sh(["git", "add", "-A"], repo)
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "baseline"], repo)
    # A report parameter, so the experiment reruns the report stage only (no kernel: the suite stays short).
    sh(["dvc", "exp", "run", "--queue", "-n", "codeless", "-S", "params/report.yaml:hide_code=true"], repo)
    sh(["dvc", "queue", "start", "-j", "1"], repo)
    deadline = time.monotonic() + 600
    while not re.search(r"codeless\s.*(Success|Failed)", status := sh(["dvc", "queue", "status"], repo).stdout):
        assert time.monotonic() < deadline, status
        time.sleep(2)
    assert re.search(r"codeless\s.*Success", status), sh(["dvc", "queue", "logs", "codeless"], repo, check=False).stdout[-3000:]
    rows = {row["Experiment"]: row for row in csv.DictReader(io.StringIO(sh(["dvc", "exp", "show", "--csv"], repo).stdout))}
    assert rows["codeless"]["hide_code"] == "True" and 0.0 <= float(rows["codeless"]["test_accuracy"]) <= 1.0
    workspace = json.loads((repo / "outputs" / "evaluate" / "metrics.json").read_text())
    assert float(rows["codeless"]["test_accuracy"]) == pytest.approx(workspace["test_accuracy"])  # same model, same data
    assert yaml.safe_load((repo / "params" / "report.yaml").read_text())["hide_code"] is False  # workspace untouched
    assert "code hidden" not in (repo / "outputs" / "reports" / "index.html").read_text()
    sh(["dvc", "exp", "apply", "codeless"], repo)  # the experiment's own outputs, from the cache
    assert "in pipeline order, code hidden.</p>" in (repo / "outputs" / "reports" / "index.html").read_text()


def test_a_bad_csv_row_stops_the_split_stage_naming_file_and_row_and_keeps_every_earlier_output(tmp_path):
    repo = copy_project(tmp_path / "repo")
    data = repo / "data" / "kaggle"
    data.mkdir(parents=True)
    pictures, labels = draw_digits(100, seed=7)
    write_kaggle_csv(data / "train.csv", pictures[:80], labels[:80])
    write_kaggle_csv(data / "test.csv", pictures[80:])
    set_params(repo, "data", data_format="kaggle_csv", data_dir="data/kaggle")
    lock_on_stand_ins(repo)  # the split stage ran on the good CSV; every stage is up to date
    outputs = {path: path.read_bytes() for path in (repo / "outputs").rglob("*") if path.is_file()}
    lock = (repo / "dvc.lock").read_text()

    rows = (data / "train.csv").read_text().splitlines()
    rows[7] = "-1" + rows[7][rows[7].index(","):]  # data row 7 gets the label -1
    (data / "train.csv").write_text("\n".join(rows) + "\n")
    failed = sh(["dvc", "repro", "split"], repo, check=False)
    assert failed.returncode != 0 and ran(failed.stdout) == ["split"]
    assert f"DatasetError: {data / 'train.csv'}: data row 7: label -1 is not a digit 0..9" in failed.stderr
    assert (repo / "dvc.lock").read_text() == lock
    executed = repo / "outputs" / "notebooks" / "02_split.ipynb"
    assert "label -1 is not a digit 0..9" in executed.read_text()  # the executed notebook shows the error
    for path, content in outputs.items():
        if path.is_relative_to(repo / "outputs" / "split"):
            assert not path.exists(), path  # DVC removes a stage's outputs before running it; the stage wrote none
        elif path != executed:
            assert path.read_bytes() == content, path  # every other stage's outputs are untouched
    sh(["dvc", "checkout", "--force", "split"], repo)  # the last good split comes back from the cache
    assert {path: path.read_bytes() for path in (repo / "outputs").rglob("*") if path.is_file()} == outputs
