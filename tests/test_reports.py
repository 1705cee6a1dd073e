"""Reports: executed notebooks rendered to HTML (figures inline, nothing loaded from the network, code optionally
hidden) and the index page; then both opened in a real headless Chromium to see what a reader sees."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from evaluate_cases import digits, run_evaluate, write_case
from mnist_lib import cli, notebooks, reports, stats

pytestmark = pytest.mark.slow

TINY = '''# %% [markdown]
# # A tiny notebook
# It writes to stderr twice: one real warning, one TensorFlow start-up log line.

# %% tags=["parameters"]
out_dir = "unused"  # a folder without metrics.json or summary.json

# %%
import sys
print("I0000 00:00:1795253312.963809   22382 port" + ".cc:153] oneDNN custom operations are on.", file=sys.stderr)
print("UserWarning: a warning a reader should see", file=sys.stderr)
print("tiny output")
'''
FIGURES = 5  # in the evaluate report: confusion counts and shares, gallery, reliability diagram, confidence histogram
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """The evaluate notebook run on 80 drawn digits, a tiny notebook, and the reports of both."""
    folder = tmp_path_factory.mktemp("reports")
    case = write_case(folder, digits(80, seed=6), "mlp")
    evaluated = run_evaluate(case, folder / "notebooks" / "04_evaluate.ipynb")
    (folder / "tiny.py").write_text(TINY)
    tiny = notebooks.run(folder / "tiny.py", folder / "notebooks" / "00_tiny.ipynb", html=False)
    index = reports.build([tiny, evaluated], folder / "reports")
    metrics = json.loads((Path(case["out_dir"]) / "metrics.json").read_text())
    return {"folder": folder, "index": index, "evaluate": evaluated, "tiny": tiny, "metrics": metrics}


def text(page: str) -> str:
    """The page's text without tags (highlighted code is split into many spans)."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def shown(value: float) -> str:
    """How the index writes a float: at most 4 decimals, no trailing zeros."""
    return f"{value:.4f}".rstrip("0").rstrip(".")


def test_a_report_has_its_figures_inline_and_loads_nothing_from_the_network(run):
    page = (run["folder"] / "reports" / "04_evaluate.html").read_text()
    assert page.count('src="data:image/png;base64,') == FIGURES
    assert not re.findall(r"<script[^>]+src=", page) and "cdnjs" not in page
    assert "evaluation.load_model(paths.resolve(model_path))" in text(page)  # the code is shown by default
    assert page.count('class="jp-CodeMirrorEditor') == 12  # every code cell: imports, parameters (2), 9 sections
    assert "Most confused pairs" in page


def test_hide_code_leaves_text_and_outputs_only(run, tmp_path):
    page = reports.to_html(run["evaluate"], tmp_path / "hidden.html", hide_code=True).read_text()
    assert "evaluation.load_model" not in text(page) and 'class="jp-CodeMirrorEditor' not in page
    assert "Most confused pairs" in page and page.count('src="data:image/png;base64,') == FIGURES


def test_tensorflow_start_up_lines_are_left_out_and_real_warnings_kept(run):
    executed = nbformat.read(run["tiny"], as_version=4)
    assert "port.cc:153]" in json.dumps(executed.cells[-1].outputs)  # the executed notebook keeps everything
    page = (run["folder"] / "reports" / "00_tiny.html").read_text()
    assert "port.cc:153]" not in page
    assert "a warning a reader should see" in page and "tiny output" in page


def test_index_lists_each_report_with_key_figures_parameters_and_first_figure(run):
    page = run["index"].read_text()
    assert page.index('href="00_tiny.html"') < page.index('href="04_evaluate.html"')
    metrics = run["metrics"]
    section = page[page.index('href="04_evaluate.html"'):]
    assert f"<dt>test_accuracy</dt><dd>{shown(metrics['test_accuracy'])}</dd>" in section
    assert f"<dt>n_errors</dt><dd>{metrics['n_errors']}</dd>" in section
    assert "<dt>gallery_size</dt><dd>32</dd>" in section and "<dt>model</dt><dd>mlp</dd>" in section
    assert section.count("<img src=\"data:image/png;base64,") == 1
    assert "<h3>Key figures</h3><dl><dd>none</dd></dl>" in page[: page.index('href="04_evaluate.html"')]


def test_index_leads_with_the_result_and_links_into_the_evaluate_report(run):
    page, metrics = run["index"].read_text(), run["metrics"]
    top = page[page.index('<div id="headline">'):page.index("<section>")]
    low, high = stats.wilson_interval(metrics["n_test"] - metrics["n_errors"], metrics["n_test"])
    accuracy = (metrics["n_test"] - metrics["n_errors"]) / metrics["n_test"]
    assert f"<dt>test accuracy</dt><dd>{accuracy:.2%} (95% CI {low:.2%} to {high:.2%})</dd>" in top
    assert f"<dt>errors</dt><dd>{metrics['n_errors']} of {metrics['n_test']} test images</dd>" in top
    evaluate = (run["folder"] / "reports" / "04_evaluate.html").read_text()
    for anchor in ("Confusion-matrix", "Misclassified-test-images"):  # links land on the report's headings
        assert f'href="04_evaluate.html#{anchor}"' in top and f'id="{anchor}"' in evaluate


def test_report_command_takes_hide_code_from_a_settings_file(run, tmp_path):
    settings = tmp_path / "report.yaml"
    settings.write_text("hide_code: true\n")
    assert cli.main(["report", str(run["evaluate"]), "-f", str(settings), "--out", str(tmp_path / "out")]) == 0
    page = (tmp_path / "out" / "04_evaluate.html").read_text()
    assert "evaluation.load_model" not in text(page) and "code hidden" in (tmp_path / "out" / "index.html").read_text()


@pytest.mark.parametrize(("text", "message"), [("hide_cod: true\n", "does not know hide_cod"),
                                               ("hide_code: 'false'\n", "hide_code must be true or false")])
def test_report_command_refuses_unknown_or_mistyped_settings(run, tmp_path, capsys, text, message):
    settings = tmp_path / "report.yaml"
    settings.write_text(text)
    assert cli.main(["report", str(run["evaluate"]), "-f", str(settings), "--out", str(tmp_path / "out")]) == 1
    assert message in capsys.readouterr().err and not (tmp_path / "out").exists()


# A real browser: Chromium headless, driven over the DevTools protocol.

PAGE_STATE = """(async () => {
  await Promise.all([...document.images].map(image => image.decode().catch(() => null)));
  const headline = document.getElementById("headline");
  return {
    headline_bottom: headline ? headline.getBoundingClientRect().bottom : null,
    text: document.body.innerText,
    images: [...document.images].map(image => ({
      complete: image.complete, width: image.naturalWidth, shown: image.getBoundingClientRect().width, alt: image.alt,
    })),
  };
})()"""


@pytest.fixture(scope="module")
def chromium() -> str:
    """A Chromium binary, or a skip (before any notebook runs) that says how to get one."""
    for name in BROWSERS:
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("no headless Chromium on this machine (`make browser` installs it with apt-get as root): "
                "the reports were not checked in a browser")


def open_in_browser(chromium: str, url: str, profile: Path, timeout: float = 60, size: str = "1280,1000",
                    screenshot: Path | None = None) -> dict:
    """Load `url` in headless Chromium (window `size`); return its visible text, its images' load state, where the
    headline ends and every URL it requested; with `screenshot`, save what the window shows there as PNG."""
    import websocket

    process = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0",
         f"--user-data-dir={profile}", f"--window-size={size}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    try:
        active = profile / "DevToolsActivePort"
        while not (active.is_file() and active.read_text().strip()):
            assert time.monotonic() < deadline and process.poll() is None, "Chromium did not start its DevTools port"
            time.sleep(0.1)
        port = int(active.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            target = next(t for t in json.load(response) if t["type"] == "page")
        socket = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=timeout, suppress_origin=True)
        requested, loaded, replies = [], False, {}

        def send(method: str, **params) -> dict:
            ident = len(replies) + 1
            socket.send(json.dumps({"id": ident, "method": method, "params": params}))
            while ident not in replies:
                message = json.loads(socket.recv())
                if "id" in message:
                    replies[message["id"]] = message
                elif message["method"] == "Network.requestWillBeSent":
                    requested.append(message["params"]["request"]["url"])
            assert "error" not in replies[ident], replies[ident]
            return replies[ident]["result"]

        send("Network.enable")
        send("Page.enable")
        send("Page.navigate", url=url)
        while not loaded:
            assert time.monotonic() < deadline, f"{url} did not finish loading in {timeout} s"
            message = json.loads(socket.recv())
            loaded = message.get("method") == "Page.loadEventFired"
            if message.get("method") == "Network.requestWillBeSent":
                requested.append(message["params"]["request"]["url"])
        state = send("Runtime.evaluate", expression=PAGE_STATE, awaitPromise=True, returnByValue=True)["result"]["value"]
        if screenshot:
            screenshot.write_bytes(base64.b64decode(send("Page.captureScreenshot", format="png")["data"]))
        socket.close()
        return {**state, "requested": requested}
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_index_and_evaluate_report_show_the_accuracy_and_every_image_in_chromium(chromium, run, tmp_path):
    metrics = run["metrics"]
    index = open_in_browser(chromium, run["index"].as_uri(), tmp_path / "profile-index", size="1280,800",
                            screenshot=tmp_path / "index.png")
    assert re.search(rf"test_accuracy\s+{re.escape(shown(metrics['test_accuracy']))}\s", index["text"]), index["text"][:3000]
    assert re.search(rf"test accuracy\s+{metrics['test_accuracy']:.2%} \(95% CI ", index["text"])
    assert 0 < index["headline_bottom"] <= 800 - 80  # the whole result above the fold (window chrome aside)
    assert (tmp_path / "index.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert re.search(rf"n_errors\s+{metrics['n_errors']}\s", index["text"])
    assert len(index["images"]) == 1  # the first figure of each report that has one: the tiny notebook has none
    assert all(image["complete"] and image["width"] > 0 and image["shown"] > 0 for image in index["images"]), index["images"]

    report = open_in_browser(chromium, (run["folder"] / "reports" / "04_evaluate.html").as_uri(), tmp_path / "profile-report")
    assert f"{metrics['test_accuracy']:.2%} (95% CI {metrics['test_accuracy_ci95_low']:.2%}" in report["text"]
    assert "Most confused pairs" in report["text"]
    assert len(report["images"]) == FIGURES
    assert all(image["complete"] and image["width"] > 100 and image["shown"] > 100 for image in report["images"])
    assert all(url.startswith(("file:", "data:")) for url in report["requested"] + index["requested"]), report["requested"]
