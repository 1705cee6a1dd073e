"""Sharing results through a DVC remote, as README.md shows: push from one clone to a remote (a local folder, and
S3 served by a real S3-compatible server on 127.0.0.1), pull into a second clone, and there `dvc status` is clean and
`dvc repro` runs nothing."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from test_pipeline import locked_project, ran, sh, stale

pytestmark = pytest.mark.slow
GIT_USER = ["-c", "user.name=t", "-c", "user.email=t@example.com"]


def tracked_files(repo) -> dict[str, bytes]:
    """Every file under outputs/ (what DVC tracks here), by path relative to the repo."""
    return {path.relative_to(repo).as_posix(): path.read_bytes()
            for path in sorted((repo / "outputs").rglob("*")) if path.is_file()}


@pytest.fixture
def s3_server(tmp_path, monkeypatch):
    """A moto S3 server on 127.0.0.1 with an empty bucket `results`, and the credentials DVC reads (a skip naming
    the reason when moto cannot start)."""
    boto3 = pytest.importorskip("boto3", reason="boto3 (with dvc-s3) is not installed: `make setup` installs it")
    pytest.importorskip("moto.server", reason="moto[server] is not installed: `make setup` installs it")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(tmp_path / "moto.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.skip(f"the moto S3 server did not start: {(tmp_path / 'moto.log').read_text()[-500:]}")
            time.sleep(0.3)
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="results")
    yield endpoint, client
    server.terminate()
    server.wait(timeout=30)


def test_push_to_a_local_remote_then_pull_into_a_second_clone_gives_a_clean_up_to_date_pipeline(tmp_path, tmp_path_factory):
    remote = tmp_path / "remote"  # README: `dvc remote add -d shared /path/to/a/shared/folder`
    push_then_pull(tmp_path, tmp_path_factory, [["dvc", "remote", "add", "-d", "shared", str(remote)]])
    assert any(path.is_file() for path in remote.rglob("*"))


def test_push_to_s3_then_pull_into_a_second_clone_gives_a_clean_up_to_date_pipeline(tmp_path, tmp_path_factory, s3_server):
    endpoint, client = s3_server  # README: `dvc remote add -d shared s3://BUCKET/PATH`, `endpointurl` for non-AWS
    push_then_pull(tmp_path, tmp_path_factory, [["dvc", "remote", "add", "-d", "shared", "s3://results/mnist"],
                              ["dvc", "remote", "modify", "shared", "endpointurl", endpoint]])
    stored = client.list_objects_v2(Bucket="results", Prefix="mnist/")
    assert stored["KeyCount"] > 0  # the pushed files are really in the bucket


def push_then_pull(tmp_path, tmp_path_factory, add_remote: list[list[str]]) -> None:
    """A pipeline locked in one clone (the split stage really run), pushed with the remote `add_remote` sets up,
    pulled into a fresh git clone: the same files, `dvc status` clean, `dvc repro` runs nothing."""
    first = locked_project(tmp_path_factory, tmp_path / "first")

    for command in add_remote:
        sh(command, first)
    sh(["git", "add", "-A"], first)
    sh(["git", *GIT_USER, "commit", "-qm", "pipeline run, remote"], first)
    sh(["dvc", "push"], first)
    assert json.loads(sh(["dvc", "status", "--cloud", "--json"], first).stdout) == {}  # everything is on the remote

    second = tmp_path / "second"
    sh(["git", "clone", "-q", str(first), str(second)], tmp_path)
    assert not (second / "outputs").exists()
    sh(["dvc", "pull"], second)
    assert tracked_files(second) == tracked_files(first)
    assert stale(second) == set()
    done = sh(["dvc", "repro"], second)
    assert ran(done.stdout) == [] and "Data and pipelines are up to date" in done.stdout
