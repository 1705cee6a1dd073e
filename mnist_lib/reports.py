"""Reports: executed notebooks rendered to self-contained HTML, and an index page linking them."""

from __future__ import annotations

import html
import json
from pathlib import Path

import nbformat

from mnist_lib.paths import resolve

KEY_FILES = ("metrics.json", "summary.json")


def to_html(notebook: nbformat.NotebookNode | str | Path, path: str | Path, hide_code: bool = False) -> Path:
    """Render a notebook to one HTML file with its figures inline; `hide_code` leaves only text and outputs."""
    from nbconvert import HTMLExporter

    if not isinstance(notebook, nbformat.NotebookNode):
        notebook = nbformat.read(notebook, as_version=4)
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = exporter.exclude_input_prompt = exporter.exclude_output_prompt = hide_code
    body, _ = exporter.from_notebook_node(notebook)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


def title(notebook: nbformat.NotebookNode, fallback: str) -> str:
    """The notebook's first H1 heading."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def key_figures(parameters: dict) -> dict:
    """Top-level scalar figures from the metrics.json or summary.json in the run's `out_dir`."""
    out_dir = parameters.get("out_dir")
    for name in KEY_FILES:
        path = resolve(out_dir) / name if out_dir else None
        if path is not None and path.is_file():
            data = json.loads(path.read_text())
            return {key: value for key, value in data.items() if isinstance(value, (int, float, str)) and not isinstance(value, bool)}
    return {}


def _format(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _definition_list(items: dict) -> str:
    return "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(_format(v))}</dd>" for k, v in items.items())


def build(notebook_paths: list[str | Path], out_dir: str | Path, hide_code: bool = False) -> Path:
    """Render each executed notebook to `out_dir`/NAME.html and write `out_dir`/index.html linking them."""
    out_dir = Path(out_dir)
    entries = []
    for path in map(Path, notebook_paths):
        notebook = nbformat.read(path, as_version=4)
        report = to_html(notebook, out_dir / f"{path.stem}.html", hide_code)
        meta = notebook.metadata.get("papermill", {})
        parameters = meta.get("parameters", {})
        duration = meta.get("duration")
        entries.append(
            f"<section><h2><a href=\"{html.escape(report.name)}\">{html.escape(title(notebook, path.stem))}</a></h2>"
            f"<p class=\"meta\">{html.escape(path.name)}"
            + (f" &middot; ran in {duration:.1f} s" if isinstance(duration, (int, float)) else "")
            + "</p>"
            f"<h3>Key figures</h3><dl>{_definition_list(key_figures(parameters)) or '<dd>none</dd>'}</dl>"
            f"<h3>Parameters</h3><dl>{_definition_list(parameters) or '<dd>defaults</dd>'}</dl></section>"
        )
    index = out_dir / "index.html"
    index.write_text(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>MNIST pipeline reports</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "section{border-top:1px solid #ccc;padding:.5em 0}dl{display:grid;grid-template-columns:max-content auto;"
        "gap:.2em 1em}dt{font-weight:bold}dd{margin:0}.meta{color:#666}</style></head><body>"
        "<h1>MNIST pipeline reports</h1><p>One report per executed notebook, in pipeline order.</p>"
        + "".join(entries) + "</body></html>\n",
        encoding="utf-8",
    )
    return index
