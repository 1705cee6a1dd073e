"""Jupyter opens notebooks/*.py as notebooks (jupytext), with the parameters cell tagged."""

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


def test_jupyter_serves_the_train_py_as_a_notebook(jupyter_server):
    base, process, log = jupyter_server
    url = f"{base}/api/contents/notebooks/03_train.py?type=notebook&content=1"
    deadline = time.monotonic() + 60
    while True:
        try:
            model = get(url)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"jupyter server did not answer:\n{log.read_text()[-2000:]}") from None
            time.sleep(0.5)
    assert model["type"] == "notebook"
    cells = model["content"]["cells"]
    assert cells[0]["cell_type"] == "markdown" and cells[0]["source"].startswith("# Train a model")
    tagged = [cell for cell in cells if "parameters" in cell["metadata"].get("tags", [])]
    epochs = yaml.safe_load((REPO / "params" / "train.yaml").read_text())["epochs"]
    assert len(tagged) == 1 and f"epochs = {epochs}  #" in tagged[0]["source"]


def test_jupyterlab_opens_py_files_with_the_jupytext_notebook_viewer():
    overrides = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    settings = json.loads(overrides.read_text())
    assert settings["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]["python"] == "Jupytext Notebook"
