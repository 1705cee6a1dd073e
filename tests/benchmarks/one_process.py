"""The pipeline's notebook stages as plain Python in one process: the same cells, the same parameters, no DVC,
papermill or kernel. bench_pipeline.py runs it in a copy of the repo to measure what the pipeline machinery costs.

    python tests/benchmarks/one_process.py --json times.json [--stages eda split train evaluate] [--prefix outputs/oneprocess/]

Each stage's code cells run in order in a fresh namespace, with its parameter files and dvc.yaml `-p` values applied
after the parameters cell as papermill does; paths under outputs/ are moved under --prefix so the pipeline's own
outputs stay untouched. Matplotlib draws with Agg, as in a kernel without a display.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import yaml  # noqa: E402

from mnist_lib import notebooks, paths  # noqa: E402


def stage_call(command: str) -> tuple[str, list[str], dict[str, str]]:
    """Notebook, parameter files and `-p` values of a `mnist run` stage command."""
    words = shlex.split(command)
    notebook = words[words.index("run") + 1]
    files = [words[i + 1] for i, word in enumerate(words) if word == "-f"]
    values = {words[i + 1]: words[i + 2] for i, word in enumerate(words) if word == "-p"}
    return notebook, files, values


def stage_code(root: Path, command: str, prefix: str) -> tuple[str, str]:
    """(notebook path, its code as one script) with the stage's parameters set after the parameters cell."""
    notebook, files, values = stage_call(command)
    moved = {name: value.replace("outputs/", prefix, 1) if value.startswith("outputs/") else value for name, value in values.items()}
    parsed, merged = notebooks.prepare(root / notebook, [root / name for name in files], moved)
    chunks = []
    for cell in parsed.cells:
        if cell.cell_type != "code":
            continue
        chunks.append(cell.source)
        if "parameters" in cell.metadata.get("tags", []):
            chunks.append("\n".join(f"{name} = {value!r}" for name, value in merged.items()))
    return notebook, "\n\n".join(chunks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="write {stage: seconds} here")
    parser.add_argument("--stages", nargs="+", help="notebook stages of dvc.yaml, in order (default: all)")
    parser.add_argument("--prefix", default="outputs/oneprocess/", help="replaces outputs/ in path parameters")
    args = parser.parse_args(argv)

    os.environ["MPLBACKEND"] = "Agg"  # here, not at import: a kernel started by an importer must keep its inline backend
    import matplotlib.pyplot as plt

    root = paths.project_root()
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    chosen = args.stages or [name for name, stage in stages.items() if "mnist run" in stage["cmd"]]
    seconds = {}
    for name in chosen:
        notebook, code = stage_code(root, stages[name]["cmd"], args.prefix)
        started = time.perf_counter()
        exec(compile(code, notebook, "exec"), {"__name__": "__main__"})  # noqa: S102 (this repo's own notebooks)
        seconds[name] = time.perf_counter() - started
        plt.close("all")
        print(f"{name}: {seconds[name]:.2f} s", flush=True)
    args.json.write_text(json.dumps(seconds, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
