"""Fetch the four raw MNIST IDX files from the first source whose bytes match the pinned SHA-256."""

from __future__ import annotations

import json
import os
from pathlib import Path

from mnist_lib import idx
from mnist_lib.checksums import sha256_file
from mnist_lib.sources import FetchError, Source

# The one table of pinned checksums: SHA-256 of each raw (uncompressed) IDX file.
MNIST_SHA256 = dict(zip(idx.MNIST_FILES, (  # train images, train labels, test images, test labels
    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
)))
PROVENANCE = "provenance.json"


def verify_files(folder: str | Path, checksums: dict[str, str] = MNIST_SHA256) -> list[str]:
    """Check each file named in `checksums` inside `folder`; return one problem per bad or missing file."""
    problems = []
    for name, expected in checksums.items():
        path = Path(folder) / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif (actual := sha256_file(path)) != expected:
            problems.append(f"{name} has sha256 {actual[:16]}..., not the pinned {expected[:16]}...")
    return problems


def _one_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def fetch(out_dir: str | Path, sources: list[Source], checksums: dict[str, str] = MNIST_SHA256) -> dict[str, dict]:
    """Put each file of `checksums` into `out_dir`, verified; atomic (temp file, verify, rename); returns provenance."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    provenance_path = out_dir / PROVENANCE
    previous = json.loads(provenance_path.read_text()) if provenance_path.is_file() else {}
    provenance: dict[str, dict] = {}
    tried: dict[str, list[str]] = {}
    try:
        for name, expected in checksums.items():
            target = out_dir / name
            if target.is_file() and sha256_file(target) == expected:
                known = previous.get(name)
                provenance[name] = known if known and known.get("sha256") == expected else {"source": "already present", "sha256": expected}
                continue
            tried[name] = []
            for source in sources:
                partial = out_dir / f".{name}.{os.getpid()}.part"
                try:
                    source.get(name, partial)
                    actual = sha256_file(partial)
                    if actual != expected:
                        raise FetchError(f"sha256 {actual[:16]}... does not match the pinned {expected[:16]}...")
                    os.replace(partial, target)
                    provenance[name] = {"source": source.describe(), "sha256": expected}
                    break
                except Exception as err:  # every failure is reported below, with its source
                    tried[name].append(f"{source.describe()}: {_one_line(err)}")
                finally:
                    partial.unlink(missing_ok=True)
            else:
                lines = "\n".join(f"  - {line}" for line in tried[name])
                raise FetchError(
                    f"could not get {name} with its pinned sha256 from any source:\n{lines}\n"
                    "Copy the four raw MNIST IDX files into a folder and run `mnist fetch --from DIR` "
                    "(or set MNIST_DATA_DIR)."
                )
    finally:
        for source in sources:
            source.close()
    partial = provenance_path.with_suffix(".json.part")
    partial.write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n")
    os.replace(partial, provenance_path)
    return provenance
