"""Runs outside `dvc repro` never overwrite what DVC tracks: the README's ad-hoc commands and a notebook run as
Jupyter runs it read the pipeline's outputs, write to outputs/scratch/, and leave `dvc status` clean."""

from __future__ import annotations

import re
import shlex
import shutil

import jupytext
import pytest
from nbclient import NotebookClient

from conftest import REPO
from test_pipeline import environment, locked_project, sh, stale

pytestmark = pytest.mark.slow
README = (REPO / "README.md").read_text()
# every README command as written, with one epoch of the small MLP so the test stays short: where a run writes
# does not depend on the model
QUICK = ["-p", "epochs", "1", "-p", "model", "mlp"]


def readme_mnist_runs() -> list[list[str]]:
    """Every `mnist run` of an existing notebook that README.md shows, in code spans and bash blocks."""
    text = README.replace("\\\n", " ")
    found = re.findall(r"`(mnist run notebooks/[^`]+)`", text)
    for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
        found += [line.split("#")[0].strip() for line in block.splitlines() if line.startswith("mnist run ")]
    commands = [shlex.split(command) for command in dict.fromkeys(found)]
    return [words for words in commands if (REPO / words[2]).is_file()]


def readme_papermill_block() -> list[str]:
    """The README's plain-papermill example: the bash block that calls papermill."""
    block = next(block for block in re.findall(r"```bash\n(.*?)```", README, re.DOTALL) if "\npapermill " in block)
    return [line for line in block.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A copy of this repo with a tiny dataset, the split stage really run, and every other stage locked on
    stand-in outputs, so `dvc status` is clean and would name any stage whose outputs a run touches."""
    return locked_project(tmp_path_factory, tmp_path_factory.mktemp("scratch") / "repo")


def test_the_readme_shows_the_ad_hoc_commands_this_test_runs():
    commands = readme_mnist_runs()
    assert ["mnist", "run", "notebooks/03_train.py", "-f", "params/profiles/reference_cnn_small.yaml"] in commands
    assert any("-p" not in words for words in commands)  # one relies on the scratch defaults alone
    assert any(line.startswith("papermill ") for line in readme_papermill_block())


def test_readme_ad_hoc_runs_write_to_scratch_and_leave_dvc_status_clean(repo, tmp_path):
    tracked = {path: path.read_bytes() for path in (repo / "outputs").rglob("*")
               if path.is_file() and "scratch" not in path.parts and ".dvc" not in path.parts}
    for words in readme_mnist_runs():
        done = sh(words + QUICK, repo)
        last = done.stdout.strip().splitlines()[-1]
        assert "outputs/scratch/" in last, f"{' '.join(words)}: the last line does not name the scratch folder: {last}"
    for line in readme_papermill_block():
        quick = " -p model mlp" if line.startswith("papermill ") else ""
        sh(["bash", "-c", line.replace("/tmp/", f"{tmp_path}/") + quick], repo)
    sh(["mnist", "report"], repo)  # by hand: reads the pipeline's notebooks, writes scratch
    assert stale(repo) == set()
    assert {path: path.read_bytes() for path in tracked} == tracked  # not even rewritten with the same bytes
    scratch = repo / "outputs" / "scratch"
    assert (scratch / "03_train" / "model.keras").is_file() and (scratch / "03_train" / "03_train.ipynb").is_file()
    assert (scratch / "reports" / "index.html").is_file()
    sh(["git", "check-ignore", "-q", "outputs/scratch/03_train/model.keras"], repo)
    sh(["dvc", "check-ignore", "-q", "outputs/scratch/03_train/model.keras"], repo)


def test_a_notebook_run_top_to_bottom_as_in_jupyter_writes_to_scratch(repo):
    notebook = jupytext.read(repo / "notebooks" / "03_train.py")
    cell = next(cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", []))
    assert re.search(r"^epochs = \d+", cell.source, re.MULTILINE)
    cell.source = re.sub(r"^epochs = \d+", "epochs = 1", cell.source, flags=re.MULTILINE)  # as a user edits it
    shutil.rmtree(repo / "outputs" / "scratch" / "03_train", ignore_errors=True)
    # Jupyter starts the kernel in the notebook's own folder and injects nothing.
    NotebookClient(notebook, kernel_name="python3", timeout=600,
                   resources={"metadata": {"path": str(repo / "notebooks")}}).execute(env=environment())
    assert stale(repo) == set()
    assert (repo / "outputs" / "scratch" / "03_train" / "model.keras").is_file()
