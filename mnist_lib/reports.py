"""Reports: executed notebooks rendered to self-contained HTML, and an index page linking them."""

from __future__ import annotations

import copy
import html
import json
import re
from pathlib import Path

import nbformat

from mnist_lib.paths import resolve

KEY_FILES = ("metrics.json", "summary.json")
# The lab template without the scripts it loads from a CDN: require.js always, MathJax and Mermaid unless a
# notebook's text needs them. A report then opens complete and at once on a machine without internet.
OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- if resources.needs_mathjax -%}{{ super() }}{%- endif -%}{%- endblock -%}
{%- block html_head_js_mermaidjs -%}{%- if resources.needs_mermaid -%}{{ super() }}{%- endif -%}{%- endblock -%}
"""
# C++ runtime log lines (absl format) that TensorFlow writes to stderr at start-up in every kernel, e.g.
# "I0000 00:00:1795253312.963809   22382 port.cc:153] oneDNN custom operations are on...": not part of a report.
RUNTIME_LOG = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWEF]\d{4} \d\d:\d\d:[\d.]+ +\d+ [\w.-]+:\d+\] .*)$"
)
INDEX_STYLE = (
    "body{font-family:sans-serif;max-width:64em;margin:2em auto;padding:0 1em;color:#222}"
    "section{border-top:1px solid #ccc;padding:.5em 0;display:grid;grid-template-columns:minmax(0,1fr) auto;gap:0 2em}"
    "section>figure{grid-column:2;grid-row:1/span 6;margin:1em 0}section>figure img{max-width:22em;max-height:16em}"
    "dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em;margin:.3em 0}dt{font-weight:bold}dd{margin:0}"
    "h2,h3,p,dl{grid-column:1}h3{margin:.6em 0 .2em;font-size:1em}.meta{color:#666}"
    "#headline{background:#f4f7fb;border:1px solid #c9d6e8;border-radius:6px;padding:.2em 1em .6em;margin:1em 0}"
)


def _markdown_has(notebook: nbformat.NotebookNode, text: str) -> bool:
    return any(cell.cell_type == "markdown" and text in cell.source for cell in notebook.cells)


def without_runtime_logs(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of the notebook without TensorFlow's C++ start-up log lines in its stderr outputs."""
    notebook = copy.deepcopy(notebook)
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.outputs:
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                lines = [line for line in output.text.splitlines(keepends=True) if not RUNTIME_LOG.match(line.rstrip("\n"))]
                output.text = "".join(lines)
                if not output.text.strip():
                    continue
            kept.append(output)
        cell.outputs = kept
    return notebook


def to_html(notebook: nbformat.NotebookNode | str | Path, path: str | Path, hide_code: bool = False) -> Path:
    """Render a notebook to one HTML file with its figures inline; `hide_code` leaves only text and outputs.
    The page loads nothing from the network, and TensorFlow's start-up log lines are left out."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    if not isinstance(notebook, nbformat.NotebookNode):
        notebook = nbformat.read(notebook, as_version=4)
    notebook = without_runtime_logs(notebook)
    exporter = HTMLExporter(template_name="lab", template_file="offline.html.j2",
                            extra_loaders=[DictLoader({"offline.html.j2": OFFLINE_TEMPLATE})])
    exporter.exclude_input = exporter.exclude_input_prompt = exporter.exclude_output_prompt = hide_code
    needs = {"needs_mathjax": _markdown_has(notebook, "$"), "needs_mermaid": _markdown_has(notebook, "```mermaid")}
    body, _ = exporter.from_notebook_node(notebook, resources=needs)
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


def first_figure(notebook: nbformat.NotebookNode) -> str | None:
    """The base64 PNG of the notebook's first figure, if it has one."""
    for cell in notebook.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            png = output.get("data", {}).get("image/png")
            if png:
                return "".join(png).replace("\n", "")
    return None


def key_results(parameters: dict) -> dict:
    """The metrics.json or summary.json in the run's `out_dir` (empty when it has neither)."""
    out_dir = parameters.get("out_dir")
    for name in KEY_FILES:
        path = resolve(out_dir) / name if out_dir else None
        if path is not None and path.is_file():
            return json.loads(path.read_text())
    return {}


def key_figures(results: dict) -> dict:
    """The top-level scalar figures of a run's results (`key_results`)."""
    return {key: value for key, value in results.items() if isinstance(value, (int, float, str)) and not isinstance(value, bool)}


def _format(value) -> str:
    """Floats to at most 4 decimals without trailing zeros (0.9909, 33.32, 0.001); others as they are."""
    return f"{value:.4f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


def _definition_list(items: dict) -> str:
    return "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(_format(v))}</dd>" for k, v in items.items())


def _entry(path: Path, notebook: nbformat.NotebookNode, report: Path, results: dict) -> str:
    """The index section of one report: title link, run time, key figures (of its `key_results`), first figure,
    parameters."""
    meta = notebook.metadata.get("papermill", {})
    parameters = meta.get("parameters", {})
    duration = meta.get("duration")
    name = html.escape(title(notebook, path.stem))
    figure = first_figure(notebook)
    return (
        f"<section><h2><a href=\"{html.escape(report.name)}\">{name}</a></h2>"
        f"<p class=\"meta\">{html.escape(path.name)}"
        + (f" &middot; ran in {duration:.1f} s" if isinstance(duration, (int, float)) else "")
        + "</p>"
        + (f"<figure><a href=\"{html.escape(report.name)}\"><img src=\"data:image/png;base64,{figure}\" "
           f"alt=\"first figure of {name}\"></a></figure>" if figure else "")
        + f"<h3>Key figures</h3><dl>{_definition_list(key_figures(results)) or '<dd>none</dd>'}</dl>"
        f"<h3>Parameters</h3><dl>{_definition_list(parameters) or '<dd>defaults</dd>'}</dl></section>"
    )


def _results(results: dict[str, dict]) -> dict[str, tuple[str, dict]]:
    """The results the headline needs, found by what they hold: 'metrics' (evaluate's metrics.json), 'train' and
    'split' (their summary.json), each with the report name of the notebook that wrote it."""
    found = {}
    for report, data in results.items():
        kind = "metrics" if "test_accuracy" in data else "train" if "fit_seconds" in data else \
            "split" if "val_images" in data else None  # the eda summary counts train images too
        if kind:
            found.setdefault(kind, (report, data))
    return found


def _recipe(config: dict, members: list[dict]) -> str:
    """A training configuration in a few words (with the epochs and batch size the first network trained with)."""
    used = members[0].get("batch_size", config["batch_size"]) if members else config["batch_size"]
    batch = f"batch {used}" + (f" (batch_size {config['batch_size']}, lowered for small data)" if used != config["batch_size"] else "")
    ran = members[0].get("epochs", config["epochs"]) if members else config["epochs"]
    epochs = f"{ran} epoch{'s' * (ran != 1)}" + (f" (epochs {config['epochs']}, cut by max_images_seen)" if ran != config["epochs"] else "")
    words = [f"{config['model']}", f"{epochs} of {batch}",
             f"{config['optimizer']} {config['learning_rate']:g} ({config['lr_schedule']})"]
    if config.get("label_smoothing"):
        words.append(f"label smoothing {config['label_smoothing']:g}")
    moves = [f"{name} {config[name]:g}" for name in ("rotation", "zoom", "shift") if config.get(name)]
    words += [f"augmentation: {', '.join(moves)}"] if moves else []
    if config.get("ensemble_size", 1) > 1 or config.get("tta"):
        words.append(f"ensemble of {config.get('ensemble_size', 1)}" + (" with test-time shifts" if config.get("tta") else ""))
    return ", ".join(words)


def headline(results: dict[str, dict]) -> str:
    """The block a reader sees first (from each report's `key_results`): model and recipe, test accuracy with its
    interval, errors, macro F1, ECE, training time and speed, the data, and links to the learning curves, confusion
    matrix and error gallery."""
    found = _results(results)
    rows = {}
    if "train" in found:
        train = found["train"][1]
        rows["model and recipe"] = _recipe(train["config"], train.get("members", []))
    if "metrics" in found:
        metrics = found["metrics"][1]
        low, high = metrics.get("test_accuracy_ci95_low"), metrics.get("test_accuracy_ci95_high")
        rows["test accuracy"] = f"{metrics['test_accuracy']:.2%}" + (
            f" (95% CI {low:.2%} to {high:.2%})" if low is not None and high is not None else "")
        rows["errors"] = f"{metrics['n_errors']:,} of {metrics['n_test']:,} test images"
        rows["macro F1 / calibration error (ECE)"] = f"{metrics['macro_f1']:.2%} / {metrics['ece']:.2%}"
    if "train" in found:
        speed = train.get("train_images_per_second")
        rows["training"] = f"{train['fit_seconds']:,.0f} s" + (f", {speed:,.0f} images/s" if speed else "")
    if "split" in found:
        data = found["split"][1]
        rows["data"] = (f"{data.get('data_format', '?')}: {data['train_images']:,} train / {data['val_images']:,} "
                        f"validation / {data['test_images']:,} test images, {data['classes']} classes "
                        f"({data.get('image_shape', '?')})")
    links = [(found[kind][0], anchor, label) for kind, anchor, label in (
        ("train", "Learning-curves", "learning curves"), ("metrics", "Confusion-matrix", "confusion matrix"),
        ("metrics", "Misclassified-test-images", "error gallery")) if kind in found]
    if not rows:
        return ""
    link_html = " &middot; ".join(f'<a href="{html.escape(report)}#{anchor}">{label}</a>' for report, anchor, label in links)
    return (f'<div id="headline"><h2>Result</h2><dl>{_definition_list(rows)}</dl>'
            + (f"<p>{link_html}</p>" if link_html else "") + "</div>")


def build(notebook_paths: list[str | Path], out_dir: str | Path, hide_code: bool = False) -> Path:
    """Render each executed notebook to `out_dir`/NAME.html and write `out_dir`/index.html: the headline (the
    result in one block), then one entry per report."""
    out_dir = Path(out_dir)
    entries, results = [], {}
    for path in map(Path, notebook_paths):
        notebook = nbformat.read(path, as_version=4)
        report = to_html(notebook, out_dir / f"{path.stem}.html", hide_code)
        results[report.name] = key_results(notebook.metadata.get("papermill", {}).get("parameters", {}))
        entries.append(_entry(path, notebook, report, results[report.name]))
    index = out_dir / "index.html"
    index.write_text(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>MNIST pipeline reports</title>"
        f"<style>{INDEX_STYLE}</style></head><body>"
        "<h1>MNIST pipeline reports</h1><p>One report per executed notebook, in pipeline order"
        + (", code hidden" if hide_code else "") + ".</p>"
        + headline(results) + "".join(entries) + "</body></html>\n",
        encoding="utf-8",
    )
    return index
