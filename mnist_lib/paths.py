"""Project paths: relative paths mean the same from the repo root (papermill, DVC) and notebooks/ (Jupyter, nbval)."""

from __future__ import annotations

from pathlib import Path

ROOT_MARKER = "dvc.yaml"


def project_root(start: str | Path | None = None) -> Path:
    """The nearest folder at or above `start` (default: the working directory) that holds dvc.yaml."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ROOT_MARKER).is_file():
            return folder
    return here


def resolve(path: str | Path) -> Path:
    """An absolute path stays; a relative one is taken from the project root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else project_root() / path


def stage_dir(path: str | Path) -> Path:
    """Resolve a stage's output folder and create it."""
    folder = resolve(path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
