"""The report index on hand-made executed notebooks and result files: the headline and every entry, compared with
the page written out by hand (the slow tests in test_reports.py build it from real runs)."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from io import BytesIO
from pathlib import Path

import nbformat
import pytest
from PIL import Image

from mnist_lib import reports


def png_base64(colour: str) -> str:
    """A real 2x2 PNG of one colour, base64-encoded as a notebook output holds it."""
    buffer = BytesIO()
    Image.new("RGB", (2, 2), colour).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def figure_cell(png: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell("plot()", outputs=[nbformat.v4.new_output(
        "display_data", data={"image/png": png, "text/plain": "<Figure>"})])


def executed(path: Path, cells: list, parameters: dict | None = None, duration: float | None = None) -> Path:
    """An executed notebook as papermill leaves it: its parameters and run time in the metadata."""
    notebook = nbformat.v4.new_notebook(cells=cells)
    if parameters is not None:
        notebook.metadata["papermill"] = {"parameters": parameters, "duration": duration}
    nbformat.write(notebook, path)
    return path


def test_index_shows_each_reports_first_figure_not_a_later_one(tmp_path):
    first, second = png_base64("red"), png_base64("blue")
    notebook = executed(tmp_path / "two.ipynb", [nbformat.v4.new_markdown_cell("# Two figures"), figure_cell(first),
                                                 figure_cell(second)])
    page = reports.build([notebook], tmp_path / "reports").read_text()
    assert f'<img src="data:image/png;base64,{first}"' in page and second not in page


def test_the_index_page_written_out_by_hand(tmp_path):
    eda, split, train, evaluate = (tmp_path / name for name in ("eda", "split", "train", "evaluate"))
    for folder in (eda, split, train, evaluate):
        folder.mkdir()
    (eda / "summary.json").write_text(json.dumps({"train_images": 7}))  # counts images too, but is not the split's
    (split / "summary.json").write_text(json.dumps({
        "data_format": "idx", "train_images": 1000, "val_images": 200, "test_images": 500, "classes": 10,
        "image_shape": "28x28x1", "class_counts": [100] * 10}))
    config = {"model": "cnn_strong", "epochs": 1, "batch_size": 128, "optimizer": "adam", "learning_rate": 0.003,
              "lr_schedule": "one_cycle", "label_smoothing": 0.1, "rotation": 10.0, "zoom": 0.0, "shift": 0.1,
              "ensemble_size": 3, "tta": True}
    (train / "summary.json").write_text(json.dumps({
        "fit_seconds": 1234.4, "train_images_per_second": 1500.2, "best_val_accuracy": 0.98765, "resumed": False,
        "config": config, "members": [{"batch_size": 34}]}))
    (evaluate / "metrics.json").write_text(json.dumps({
        "test_accuracy": 0.9876, "test_accuracy_ci95_low": 0.98, "test_accuracy_ci95_high": 0.99, "n_errors": 1234,
        "n_test": 100000, "macro_f1": 0.98711, "ece": 0.0123, "model": "a<b>"}))
    (evaluate / "summary.json").write_text(json.dumps({"fit_seconds": 1.0}))  # metrics.json is read first
    red, blue = png_base64("red"), png_base64("blue")
    notebooks = [
        executed(tmp_path / "01_eda.ipynb", [nbformat.v4.new_markdown_cell("# EDA")], {"out_dir": str(eda)}),
        executed(tmp_path / "02_split.ipynb", [nbformat.v4.new_markdown_cell("Some text\n# Split the data ")],
                 {"out_dir": str(split), "seed": 3}, 1.26),
        executed(tmp_path / "03_train.ipynb", [nbformat.v4.new_code_cell("x = 1"), figure_cell(red), figure_cell(blue),
                                               nbformat.v4.new_markdown_cell("## Learning curves\n# Training")],
                 {"out_dir": str(train), "learning_rate": 0.00300, "tta": True}, 12),
        executed(tmp_path / "04_evaluate.ipynb", [nbformat.v4.new_markdown_cell("# Evaluation")], {"out_dir": str(evaluate)}),
        executed(tmp_path / "09_plain.ipynb", [nbformat.v4.new_code_cell("print(1)")], {}),
        executed(tmp_path / "10_bare.ipynb", [nbformat.v4.new_markdown_cell("#Not a heading")]),
    ]
    page = reports.build(notebooks, tmp_path / "reports").read_text()
    for notebook in notebooks:
        assert (tmp_path / "reports" / f"{notebook.stem}.html").is_file()
    recipe = ("cnn_strong, 1 epoch of batch 34 (batch_size 128, lowered for small data), adam 0.003 (one_cycle), "
              "label smoothing 0.1, augmentation: rotation 10, shift 0.1, ensemble of 3 with test-time shifts")
    expected = (
        '<div id="headline"><h2>Result</h2><dl>'
        f"<dt>model and recipe</dt><dd>{recipe}</dd>"
        "<dt>test accuracy</dt><dd>98.76% (95% CI 98.00% to 99.00%)</dd>"
        "<dt>errors</dt><dd>1,234 of 100,000 test images</dd>"
        "<dt>macro F1 / calibration error (ECE)</dt><dd>98.71% / 1.23%</dd>"
        "<dt>training</dt><dd>1,234 s, 1,500 images/s</dd>"
        "<dt>data</dt><dd>idx: 1,000 train / 200 validation / 500 test images, 10 classes (28x28x1)</dd></dl>"
        '<p><a href="03_train.html#Learning-curves">learning curves</a> &middot; '
        '<a href="04_evaluate.html#Confusion-matrix">confusion matrix</a> &middot; '
        '<a href="04_evaluate.html#Misclassified-test-images">error gallery</a></p></div>'
        '<section><h2><a href="01_eda.html">EDA</a></h2><p class="meta">01_eda.ipynb</p>'
        f"<h3>Key figures</h3><dl><dt>train_images</dt><dd>7</dd></dl><h3>Parameters</h3><dl><dt>out_dir</dt><dd>{eda}</dd></dl></section>"
        '<section><h2><a href="02_split.html">Split the data</a></h2><p class="meta">02_split.ipynb &middot; ran in 1.3 s</p>'
        "<h3>Key figures</h3><dl><dt>data_format</dt><dd>idx</dd><dt>train_images</dt><dd>1000</dd>"
        "<dt>val_images</dt><dd>200</dd><dt>test_images</dt><dd>500</dd><dt>classes</dt><dd>10</dd>"
        "<dt>image_shape</dt><dd>28x28x1</dd></dl>"
        f"<h3>Parameters</h3><dl><dt>out_dir</dt><dd>{split}</dd><dt>seed</dt><dd>3</dd></dl></section>"
        '<section><h2><a href="03_train.html">Training</a></h2><p class="meta">03_train.ipynb &middot; ran in 12.0 s</p>'
        f'<figure><a href="03_train.html"><img src="data:image/png;base64,{red}" alt="first figure of Training"></a></figure>'
        "<h3>Key figures</h3><dl><dt>fit_seconds</dt><dd>1234.4</dd><dt>train_images_per_second</dt><dd>1500.2</dd>"
        "<dt>best_val_accuracy</dt><dd>0.9877</dd></dl>"
        f"<h3>Parameters</h3><dl><dt>learning_rate</dt><dd>0.003</dd><dt>out_dir</dt><dd>{train}</dd>"
        "<dt>tta</dt><dd>True</dd></dl></section>"  # in the notebook file's (sorted) order
        '<section><h2><a href="04_evaluate.html">Evaluation</a></h2><p class="meta">04_evaluate.ipynb</p>'
        "<h3>Key figures</h3><dl><dt>test_accuracy</dt><dd>0.9876</dd><dt>test_accuracy_ci95_low</dt><dd>0.98</dd>"
        "<dt>test_accuracy_ci95_high</dt><dd>0.99</dd><dt>n_errors</dt><dd>1234</dd><dt>n_test</dt><dd>100000</dd>"
        "<dt>macro_f1</dt><dd>0.9871</dd><dt>ece</dt><dd>0.0123</dd><dt>model</dt><dd>a&lt;b&gt;</dd></dl>"
        f"<h3>Parameters</h3><dl><dt>out_dir</dt><dd>{evaluate}</dd></dl></section>"
        '<section><h2><a href="09_plain.html">09_plain</a></h2><p class="meta">09_plain.ipynb</p>'
        "<h3>Key figures</h3><dl><dd>none</dd></dl><h3>Parameters</h3><dl><dd>defaults</dd></dl></section>"
        '<section><h2><a href="10_bare.html">10_bare</a></h2><p class="meta">10_bare.ipynb</p>'
        "<h3>Key figures</h3><dl><dd>none</dd></dl><h3>Parameters</h3><dl><dd>defaults</dd></dl></section>"
        "</body></html>\n"
    )
    assert page[page.index('<div id="headline">'):] == expected
    style = reports.INDEX_STYLE
    assert page[:page.index('<div id="headline">')] == (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>MNIST pipeline reports</title>'
        f"<style>{style}</style></head><body><h1>MNIST pipeline reports</h1>"
        "<p>One report per executed notebook, in pipeline order.</p>")
    hidden = reports.build(notebooks[4:5], tmp_path / "hidden", hide_code=True).read_text()
    assert "in pipeline order, code hidden.</p><section>" in hidden  # no results: no headline


def test_the_headline_without_a_training_summary_or_interval_has_what_there_is(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({
        "test_accuracy": 0.5, "n_errors": 5, "n_test": 10, "macro_f1": 0.5, "ece": 0.25}))
    notebook = executed(tmp_path / "04_evaluate.ipynb", [nbformat.v4.new_markdown_cell("# E")], {"out_dir": str(tmp_path)})
    page = reports.build([notebook], tmp_path / "reports").read_text()
    assert page[page.index('<div id="headline">'):page.index("<section>")] == (
        '<div id="headline"><h2>Result</h2><dl><dt>test accuracy</dt><dd>50.00%</dd>'
        "<dt>errors</dt><dd>5 of 10 test images</dd><dt>macro F1 / calibration error (ECE)</dt><dd>50.00% / 25.00%</dd>"
        '</dl><p><a href="04_evaluate.html#Confusion-matrix">confusion matrix</a> &middot; '
        '<a href="04_evaluate.html#Misclassified-test-images">error gallery</a></p></div>')


PLAIN = {"model": "mlp", "epochs": 2, "batch_size": 64, "optimizer": "sgd", "learning_rate": 0.1, "lr_schedule": "constant"}


@pytest.mark.parametrize(("config", "members", "words"), [
    (PLAIN, [], "mlp, 2 epochs of batch 64, sgd 0.1 (constant)"),  # no members recorded: the configured batch
    (PLAIN, [{"seconds": 1}], "mlp, 2 epochs of batch 64, sgd 0.1 (constant)"),  # a member without its batch
    (PLAIN, [{"batch_size": 64}], "mlp, 2 epochs of batch 64, sgd 0.1 (constant)"),
    ({**PLAIN, "epochs": 18}, [{"batch_size": 64, "epochs": 9}],
     "mlp, 9 epochs (epochs 18, cut by max_images_seen) of batch 64, sgd 0.1 (constant)"),
    ({**PLAIN, "epochs": 3}, [{"epochs": 1}], "mlp, 1 epoch (epochs 3, cut by max_images_seen) of batch 64, sgd 0.1 (constant)"),
    ({**PLAIN, "epochs": 1, "zoom": 0.15, "rotation": 0.0, "label_smoothing": 0.0, "ensemble_size": 2, "tta": False}, [],
     "mlp, 1 epoch of batch 64, sgd 0.1 (constant), augmentation: zoom 0.15, ensemble of 2"),
    ({**PLAIN, "ensemble_size": 1, "tta": True}, [], "mlp, 2 epochs of batch 64, sgd 0.1 (constant), ensemble of 1 with test-time shifts"),
    ({**PLAIN, "ensemble_size": 1, "tta": False, "shift": 0.0}, [], "mlp, 2 epochs of batch 64, sgd 0.1 (constant)"),
    # a summary written before ensembles were recorded: one network
    ({**PLAIN, "tta": True}, [], "mlp, 2 epochs of batch 64, sgd 0.1 (constant), ensemble of 1 with test-time shifts"),
])
def test_the_headline_says_the_recipe_in_words(config, members, words):
    page = reports.headline({"03_train.html": {"fit_seconds": 3.0, "config": config, "members": members}})
    assert re.search(r"<dt>model and recipe</dt><dd>(.*?)</dd>", page).group(1) == words
    assert "<dt>training</dt><dd>3 s</dd>" in page  # no speed recorded: none shown


def test_a_split_summary_alone_gives_the_data_row_with_unknowns_marked_and_no_links(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"train_images": 10, "val_images": 2, "test_images": 3, "classes": 2}))
    notebook = executed(tmp_path / "02_split.ipynb", [nbformat.v4.new_markdown_cell("# S")], {"out_dir": str(tmp_path)})
    page = reports.build([notebook], tmp_path / "reports").read_text()
    assert page[page.index('<div id="headline">'):page.index("<section>")] == (
        '<div id="headline"><h2>Result</h2><dl><dt>data</dt><dd>?: 10 train / 2 validation / 3 test images, 2 classes '
        "(?)</dd></dl></div>")


def test_an_interval_with_one_bound_missing_is_not_shown():
    metrics = {"test_accuracy": 0.5, "test_accuracy_ci95_low": 0.4, "n_errors": 1, "n_test": 2, "macro_f1": 0.5, "ece": 0.1}
    assert "<dt>test accuracy</dt><dd>50.00%</dd>" in reports.headline({"04_evaluate.html": metrics})
    assert "<dt>test accuracy</dt><dd>50.00%</dd>" in reports.headline(
        {"04_evaluate.html": {**metrics, "test_accuracy_ci95_high": 0.6, "test_accuracy_ci95_low": None}})


def test_whole_floats_printed_output_and_a_figure_split_over_lines(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"seconds": 2.0, "ratio": 100.0, "small": 0.00004}))
    red = png_base64("red")
    cells = [nbformat.v4.new_code_cell("print('hi')", outputs=[nbformat.v4.new_output("stream", name="stdout", text="hi\n")]),
             figure_cell(red[:10] + "\n" + red[10:])]  # a notebook may keep its base64 in lines
    notebook = executed(tmp_path / "03_train.ipynb", cells, {"out_dir": str(tmp_path)})
    index = reports.build([notebook], tmp_path / "reports")
    assert index == tmp_path / "reports" / "index.html"
    page = index.read_text()
    assert "<dt>seconds</dt><dd>2</dd><dt>ratio</dt><dd>100</dd><dt>small</dt><dd>0</dd>" in page
    assert f'<img src="data:image/png;base64,{red}"' in page


def test_hidden_code_reaches_each_report_and_the_index_is_utf8_whatever_the_locale(tmp_path):
    notebook = executed(tmp_path / "01_eval.ipynb", [nbformat.v4.new_markdown_cell("# Évaluation ✓"),
                                                  nbformat.v4.new_code_cell("secret_name = 1")], {})
    script = f"from mnist_lib import reports; reports.build([{str(notebook)!r}], {str(tmp_path / 'reports')!r}, hide_code=True)"
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}  # with -X utf8=0: an ASCII locale, as on some servers
    done = subprocess.run([sys.executable, "-X", "utf8=0", "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    page = (tmp_path / "reports" / "index.html").read_bytes().decode("utf-8")
    assert "Évaluation ✓" in page and "code hidden" in page
    assert "secret_name" not in (tmp_path / "reports" / "01_eval.html").read_text(encoding="utf-8")
