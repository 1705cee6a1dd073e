"""Dependencies: pip-audit over the pinned requirements (skipped, saying why, when its database is out of reach),
and Keras above the releases whose model files could run code."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.metadata import version

import pytest

from conftest import REPO

REQUIREMENTS = REPO / "requirements.txt"
# Exact pins, so no resolver is needed (--no-deps --disable-pip): the audit checks exactly the versions listed.
AUDIT = ["pip-audit", "--requirement", "requirements.txt", "--no-deps", "--disable-pip",
         "--vulnerability-service", "osv", "--progress-spinner", "off", "--timeout", "20"]
UNREACHABLE = re.compile(r"ConnectionError|NameResolutionError|Max retries exceeded|Temporary failure in name resolution|timed out")
KERAS_ADVISORIES_FIXED = (3, 15, 1)  # CVE-2025-1550, CVE-2025-8747, CVE-2025-9905 and later fixes: model files ran code


def pinned() -> dict[str, str]:
    lines = REQUIREMENTS.read_text().splitlines()
    return dict(line.split("==") for line in lines if line and not line.startswith("#"))


def release(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.match(r"\d+(\.\d+)*", text)[0].split("."))


def audit(*options: str, timeout: int) -> subprocess.CompletedProcess:
    """pip-audit of requirements.txt, run from the project root with this environment's Python."""
    command = [sys.executable, "-m", "pip_audit", *AUDIT[1:], *options]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_pip_audit_reads_every_pin_of_requirements_txt():
    done = audit("--dry-run", timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"would have audited {len(pinned())} packages" in done.stderr


def test_no_pinned_requirement_has_a_known_vulnerability():
    done = audit("--format", "json", timeout=600)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        report = None
    if report is None and UNREACHABLE.search(done.stderr):
        reason = UNREACHABLE.search(done.stderr)[0]
        pytest.skip(f"pip-audit could not reach the OSV vulnerability database ({reason}); "
                    f"run `{' '.join(AUDIT)}` where the network allows")
    assert report is not None, f"pip-audit exited {done.returncode} without a report:\n{done.stderr[-3000:]}"
    entries = report["dependencies"]
    not_audited = [f"{entry['name']}: {entry['skip_reason']}" for entry in entries if "skip_reason" in entry]
    found = [f"{entry['name']}=={entry['version']}: {', '.join(v['id'] for v in entry['vulns'])}"
             for entry in entries if entry.get("vulns")]
    assert not found, "known vulnerabilities in pinned requirements (upgrade, then `make freeze`):\n" + "\n".join(found)
    assert not not_audited and len(entries) == len(pinned()), not_audited


def test_keras_is_above_the_advisories_where_model_files_ran_code():
    assert release(version("keras")) >= KERAS_ADVISORIES_FIXED  # what is installed
    assert release(pinned()["keras"]) >= KERAS_ADVISORIES_FIXED  # what requirements.txt installs
    floor = re.search(r'"keras>=([\d.]+)"', (REPO / "pyproject.toml").read_text())
    assert floor and release(floor[1]) >= KERAS_ADVISORIES_FIXED  # what `pip install -e .` accepts
