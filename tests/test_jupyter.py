"""Jupyter opens notebooks/*.py as notebooks (jupytext), with the parameters cell tagged, this environment's kernel
chosen (a real server starts it for the notebook's session) and no news prompt."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture
def jupyter_server(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "server", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         "--IdentityProvider.token=test-token", f"--ServerApp.root_dir={REPO}", "--allow-root"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "server.log", "w"),
        env={**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path)},
    )
    yield f"http://127.0.0.1:{port}", process, tmp_path / "server.log"
    process.terminate()
    process.wait(timeout=30)


def get(url: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": "token test-token"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_for(url: str, process: subprocess.Popen, log: Path) -> dict:
    """GET `url` once the server answers (a minute at most)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return get(url)
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"jupyter server did not answer:\n{log.read_text()[-2000:]}") from None
            time.sleep(0.5)


def test_jupyter_serves_the_train_py_as_a_notebook(jupyter_server):
    base, process, log = jupyter_server
    model = wait_for(f"{base}/api/contents/notebooks/03_train.py?type=notebook&content=1", process, log)
    assert model["type"] == "notebook"
    cells = model["content"]["cells"]
    assert cells[0]["cell_type"] == "markdown" and cells[0]["source"].startswith("# Train a model")
    tagged = [cell for cell in cells if "parameters" in cell["metadata"].get("tags", [])]
    epochs = yaml.safe_load((REPO / "params" / "train.yaml").read_text())["epochs"]
    assert len(tagged) == 1 and f"epochs = {epochs}  #" in tagged[0]["source"]


def test_jupyterlab_opens_py_files_with_the_jupytext_notebook_viewer_and_no_news_prompt():
    overrides = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    settings = json.loads(overrides.read_text())
    assert settings["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]["python"] == "Jupytext Notebook"
    assert settings["@jupyterlab/apputils-extension:notification"] == {"fetchNews": "false", "checkForUpdates": False}


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": "token test-token", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=180) as response:  # starting a kernel on a busy machine takes time
        return json.loads(response.read())


def test_an_opened_notebook_names_this_environments_kernel_and_its_session_runs_in_it(jupyter_server):
    from jupyter_client import BlockingKernelClient

    base, process, log = jupyter_server
    model = wait_for(f"{base}/api/contents/notebooks/04_evaluate.py?type=notebook&content=1", process, log)
    kernelspec = model["content"]["metadata"].get("kernelspec")
    assert kernelspec and kernelspec["name"] == "python3", model["content"]["metadata"]  # no kernel picker
    assert "kernelspec" not in (REPO / "notebooks" / "04_evaluate.py").read_text()  # nothing machine-specific committed
    session = post(f"{base}/api/sessions", {"path": "notebooks/04_evaluate.py", "type": "notebook",
                                            "name": "04_evaluate.py", "kernel": {"name": kernelspec["name"]}})
    connection = Path(log).parent / f"kernel-{session['kernel']['id']}.json"
    client = BlockingKernelClient(connection_file=str(connection))
    client.load_connection_file()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=180)
        seen = []
        client.execute_interactive("import sys; print(sys.prefix)", timeout=180,
                                   output_hook=lambda msg: seen.append(msg["content"].get("text", "")))
    finally:
        client.stop_channels()
    assert "".join(seen).strip() == sys.prefix  # the kernel runs in this environment, where mnist_lib is installed
