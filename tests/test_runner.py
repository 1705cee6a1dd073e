"""The runner (`mnist run`): strict parameters, real papermill runs in a real kernel, every failure named."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from mnist_lib import notebooks
from mnist_lib.notebooks import NotebookError
from mnist_lib.params import ParameterError

TEMPLATE = '''# %% [markdown]
# # A tiny notebook

# %% tags=["parameters"]
count = 2  # an integer
name = "digits"  # a string
flag = False  # a boolean
rate = 0.5  # a number

# %%
print(f"count={{count!r}} name={{name!r}} flag={{flag!r}} rate={{rate!r}}")

# %%
{body}

# %%
print("last cell ran")
'''


def make_notebook(folder: Path, body: str = "pass") -> Path:
    path = folder / "tiny.py"
    path.write_text(TEMPLATE.format(body=body))
    return path


def outputs_text(path: Path) -> str:
    notebook = nbformat.read(path, as_version=4)
    return "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_run_executes_with_parameters_and_writes_notebook_and_html(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("count: 5\nrate: 1.0e-3\n")
    out = notebooks.run(make_notebook(tmp_path), tmp_path / "out" / "tiny.ipynb", [params], {"flag": "true", "name": "x"})
    text = outputs_text(out)
    assert "count=5 name='x' flag=True rate=0.001" in text
    assert "last cell ran" in text
    html = out.with_suffix(".html").read_text()
    assert "last cell ran" in html and "<html" in html


def test_raised_error_names_notebook_cell_and_error(tmp_path):
    with pytest.raises(NotebookError) as caught:
        notebooks.run(make_notebook(tmp_path, "1 / 0"), tmp_path / "out.ipynb", html=False)
    message = str(caught.value)
    assert "tiny.py" in message and "ZeroDivisionError" in message and "cell" in message


def test_a_raised_error_names_the_failing_cell_by_its_index_in_the_executed_notebook(tmp_path):
    notebook = tmp_path / "numbered.py"
    notebook.write_text(
        '# %% [markdown]\n# # Numbered\n\n'                                # cell 0
        '# %% tags=["parameters"]\ncount = 2  # an integer\n\n'            # cell 1 (papermill injects cell 2)
        '# %%\nprint(count)\n\n'                                            # cell 3
        '# %% [markdown]\n# ## The failing section\n\n'                     # cell 4
        '# %%\nraise ValueError("cell five")\n\n'                           # cell 5, the fourth code cell to run
        '# %%\nprint("never")\n'                                             # cell 6
    )
    output = tmp_path / "out.ipynb"
    with pytest.raises(NotebookError) as caught:
        notebooks.run(notebook, output, overrides={"count": "3"}, html=False)
    assert "numbered.py: cell 5 (execution count 4) raised ValueError: cell five" in str(caught.value)
    # The output notebook holds the same cells plus the two papermill adds for the error (a banner and an anchor).
    cells = [cell for cell in nbformat.read(output, as_version=4).cells
             if "papermill-error-cell-tag" not in cell.metadata.get("tags", [])]
    assert cells[5].source == 'raise ValueError("cell five")' and cells[5].execution_count == 4


def test_sys_exit_zero_midway_is_a_failure_naming_the_cell(tmp_path):
    with pytest.raises(NotebookError) as caught:
        notebooks.run(make_notebook(tmp_path, "import sys\nsys.exit(0)"), tmp_path / "out.ipynb", html=False)
    message = str(caught.value)
    assert "tiny.py" in message and "sys.exit" in message and "never ran" in message
    assert "import sys" in message  # the cell that stopped execution


def test_killed_kernel_is_a_failure_naming_the_cell(tmp_path):
    body = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"
    with pytest.raises(NotebookError) as caught:
        notebooks.run(make_notebook(tmp_path, body), tmp_path / "out.ipynb", html=False)
    assert str(caught.value) == (f"{tmp_path / 'tiny.py'}: the kernel died while running cell 3 ('import os, signal') "
                                 "(killed, or out of memory: try a smaller batch_size)")


def test_cell_timeout_is_a_failure_naming_the_cell(tmp_path):
    with pytest.raises(NotebookError) as caught:
        notebooks.run(make_notebook(tmp_path, "import time\ntime.sleep(60)"), tmp_path / "out.ipynb", html=False, timeout=3)
    message = str(caught.value)
    assert "tiny.py" in message and "timeout" in message and "import time" in message


def test_a_kernel_is_asked_to_stop_and_interrupted_only_when_still_busy(tmp_path):
    """jupyter_client sends SIGINT before the shutdown request: a kernel caught between messages then logs
    "KeyboardInterrupt caught in kernel" into the run's log. An idle kernel is only asked; a busy one (a timeout)
    is still interrupted."""
    flag = tmp_path / "sigint"
    watch = ("import signal, ipykernel.kernelbase\n"
             "ipykernel.kernelbase.signal = lambda *args: None  # the kernel no longer resets SIGINT around cells\n"
             f"def caught(*args):\n    open({str(flag)!r}, 'w').close()\n    raise KeyboardInterrupt\n"
             "signal.signal(signal.SIGINT, caught)")
    notebooks.run(make_notebook(tmp_path, watch), tmp_path / "out.ipynb", html=False)
    assert not flag.exists()
    with pytest.raises(NotebookError, match="timeout"):
        notebooks.run(make_notebook(tmp_path, watch + "\nimport time\ntime.sleep(60)"), tmp_path / "out.ipynb",
                      html=False, timeout=3)
    assert flag.exists()


def test_unknown_parameter_in_file_is_refused_before_running(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("count: 3\ncuont: 4\n")
    output = tmp_path / "out.ipynb"
    with pytest.raises(ParameterError) as caught:
        notebooks.run(make_notebook(tmp_path), output, [params])
    message = str(caught.value)
    assert "cuont" in message and str(params) in message and "count, name, flag, rate" in message
    assert not output.exists()


def test_unknown_parameters_are_refused_in_words_naming_notebook_parameter_and_where_it_came_from(tmp_path):
    notebook, params = make_notebook(tmp_path), tmp_path / "p.yaml"
    params.write_text("cuont: 4\n")
    for files, overrides, origin in (([params], {}, str(params)), ([], {"epochs": "3"}, "the command line")):
        with pytest.raises(ParameterError) as caught:
            notebooks.prepare(notebook, files, overrides)
        name = "cuont" if files else "epochs"
        assert str(caught.value) == f"{notebook} does not declare {name} (from {origin}); its parameters are: count, name, flag, rate"


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("rate: 1e-3\n", "rate .*expected a number, got '1e-3'.*1.0e-3"),  # YAML 1.1 reads 1e-3 as a string
        ("name: no\n", "name .*expected a string, got False.*quote"),  # YAML 1.1 reads no as a boolean
        ("count: 42.0\n", "count .*expected an integer, got 42.0"),
        ("count: '42'\n", "count .*expected an integer, got '42'"),
        ("flag: 'false'\n", "flag .*expected a boolean"),
        ("rate: .nan\n", "rate .*expected a number, got nan"),
    ],
)
def test_wrong_types_in_a_parameter_file_name_parameter_file_and_type(tmp_path, yaml_text, expected):
    params = tmp_path / "p.yaml"
    params.write_text(yaml_text)
    with pytest.raises(ParameterError, match=expected) as caught:
        notebooks.prepare(make_notebook(tmp_path), [params])
    assert str(params) in str(caught.value)


def test_an_unquoted_yaml_date_in_a_list_is_refused_before_any_kernel_starts_naming_file_and_fix(tmp_path):
    notebook = tmp_path / "dates.py"
    notebook.write_text('# %% tags=["parameters"]\ntags = ["a"]  # labels\n\n# %%\nprint(tags)\n')
    (tmp_path / "p.yaml").write_text("tags: [2024-01-01]\n")  # YAML reads it as a date, which papermill cannot write
    done = subprocess.run([sys.executable, "-m", "mnist_lib.cli", "run", str(notebook), "-f", "p.yaml", "--no-html"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "mnist run: error: tags from p.yaml: expected a list of plain values (text, numbers, booleans, null, lists, "
        "mappings), got [datetime.date(2024, 1, 1)] (list) (YAML reads an unquoted date such as 2024-01-01 as a date: "
        "quote it)")
    assert not (tmp_path / "outputs").exists()  # refused before anything was written
    (tmp_path / "p.yaml").write_text("tags: ['2024-01-01']\n")  # quoted, as the message says
    done = subprocess.run([sys.executable, "-m", "mnist_lib.cli", "run", str(notebook), "-f", "p.yaml", "--no-html"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "['2024-01-01']" in outputs_text(tmp_path / "outputs" / "scratch" / "dates" / "dates.ipynb")


def test_a_yaml_boolean_is_not_taken_for_an_integer(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("count: yes\n")  # YAML 1.1 reads yes as True, and Python's True passes for 1
    with pytest.raises(ParameterError, match=r"count from .*p\.yaml: expected an integer, got True \(bool\)"):
        notebooks.prepare(make_notebook(tmp_path), [params])


@pytest.mark.parametrize(("name", "raw", "value"), [("flag", "false", False), ("flag", "True", True), ("count", "7", 7), ("rate", "1e-3", 0.001)])
def test_command_line_values_are_read_as_the_declared_type(tmp_path, name, raw, value):
    _, values = notebooks.prepare(make_notebook(tmp_path), [], {name: raw})
    assert values[name] == value and type(values[name]) is type(value)


def test_command_line_value_of_the_wrong_type_is_refused(tmp_path):
    with pytest.raises(ParameterError, match="-p count abc: expected an integer"):
        notebooks.prepare(make_notebook(tmp_path), [], {"count": "abc"})


def test_the_same_key_in_two_parameter_files_is_refused(tmp_path):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("count: 1\n")
    second.write_text("count: 2\n")
    with pytest.raises(ParameterError, match="count is also set in"):
        notebooks.prepare(make_notebook(tmp_path), [first, second])


def test_cli_exits_non_zero_with_one_message_naming_notebook_and_cell(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mnist_lib.cli", "run", str(make_notebook(tmp_path, "raise ValueError('bad digit')")),
         "-o", str(tmp_path / "out.ipynb"), "--no-html"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1
    assert "mnist run: error:" in done.stderr and "tiny.py" in done.stderr and "ValueError: bad digit" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_run_without_output_writes_to_scratch_and_names_it_in_its_last_line(tmp_path):
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "dvc.yaml").write_text("stages: {}\n")
    notebook = project / "notebooks" / "tiny.py"
    notebook.write_text(TEMPLATE.format(body="pass").replace(
        "rate = 0.5  # a number\n", 'rate = 0.5  # a number\nout_dir = "outputs/scratch/tiny"  # where results go\n'))
    done = subprocess.run([sys.executable, "-m", "mnist_lib.cli", "run", str(notebook), "--no-html"],
                          cwd=project / "notebooks", capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    executed = project / "outputs" / "scratch" / "tiny" / "tiny.ipynb"  # from the project root, not the working folder
    assert executed.is_file() and "last cell ran" in outputs_text(executed)
    assert sorted(path.relative_to(project).as_posix() for path in project.rglob("*") if path.is_file()) == [
        "dvc.yaml", "notebooks/tiny.py", "outputs/scratch/tiny/tiny.ipynb"]
    assert done.stdout.strip().splitlines()[-1] == f"{notebook}: executed -> {executed}; its outputs -> outputs/scratch/tiny"


# --- the exact words of each failure, and what a run prints ----------------------------------------------------


def test_a_sys_exit_names_the_last_cell_that_ran_by_index_and_first_line_and_counts_the_cells_left(tmp_path):
    with pytest.raises(NotebookError) as caught:
        notebooks.run(make_notebook(tmp_path, "import sys\nsys.exit(0)"), tmp_path / "out.ipynb", html=False)
    # 0 title, 1 parameters, 2 print, 3 the exit, 4 the last print (no parameter given: papermill injects no cell)
    assert str(caught.value) == (f"{tmp_path / 'tiny.py'}: execution stopped after cell 3 ('import sys'); 1 later "
                                 "code cell(s) never ran (did a cell call sys.exit() or exit()?)")


def test_a_notebook_where_no_code_cell_ran_says_it_stopped_after_the_first_cell():
    cells = [nbformat.v4.new_markdown_cell("# title"), nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("  \n"),
             nbformat.v4.new_code_cell("y = 2")]
    with pytest.raises(NotebookError) as caught:
        notebooks.check_complete(nbformat.v4.new_notebook(cells=cells), "n.py")
    assert str(caught.value) == ("n.py: execution stopped after the first cell; 2 later code cell(s) never ran "
                                 "(did a cell call sys.exit() or exit()?)")  # the blank cell is not counted


def test_a_timeout_names_the_running_cell_exactly_with_its_first_line_cut_at_60_characters(tmp_path):
    first = "import time  # " + "a comment long enough to be cut " * 3
    with pytest.raises(NotebookError) as caught:
        notebooks.run(make_notebook(tmp_path, f"{first}\ntime.sleep(60)"), tmp_path / "out.ipynb", html=False, timeout=3)
    assert str(caught.value) == f"{tmp_path / 'tiny.py'}: cell 3 ({first[:60]!r}) ran past the 3 s timeout"
    assert len(first) > 61


def started_notebook(path: Path, start_times: list[str | None], title: bool = True) -> Path:
    """An executed-notebook file: a markdown title (or none), then a code cell per entry with papermill's start time
    in its metadata (None: never started, no papermill metadata at all)."""
    cells = [nbformat.v4.new_markdown_cell("# title")] if title else []
    for index, started in enumerate(start_times, start=1):
        cell = nbformat.v4.new_code_cell(f"step_{index} = {index}\nprint(step_{index})")
        if started is not None:
            cell.metadata["papermill"] = {"start_time": started}
        cells.append(cell)
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def test_the_running_cell_is_the_one_papermill_started_last(tmp_path):
    times = ["2026-01-01T10:00:00.000001Z", "2026-01-01T10:00:05.000000Z", None]
    assert notebooks._running_cell(started_notebook(tmp_path / "a.ipynb", times)) == "cell 2 ('step_2 = 2')"
    # cell 0 alone started: a start time, not an index, makes a cell started
    assert notebooks._running_cell(started_notebook(tmp_path / "b.ipynb", [times[0], None], title=False)) == "cell 0 ('step_1 = 1')"
    assert notebooks._running_cell(started_notebook(tmp_path / "c.ipynb", [None, None])) == "the kernel start"
    assert notebooks._running_cell(tmp_path / "missing.ipynb") == "an unknown cell"


def test_a_run_prints_nothing_unless_asked_to_stream_its_outputs_and_a_progress_bar(tmp_path, capfd, caplog):
    notebooks.run(make_notebook(tmp_path), tmp_path / "quiet" / "deeper" / "tiny.ipynb", html=False)
    out, err = capfd.readouterr()
    assert "last cell ran" not in out + err and "Executing" not in err
    assert not [record for record in caplog.records if record.name.startswith("papermill")]
    notebooks.run(make_notebook(tmp_path), tmp_path / "loud.ipynb", html=False, log_output=True)
    _, err = capfd.readouterr()
    assert "Executing: 100%" in err  # the progress bar
    assert "last cell ran" in caplog.text  # the cells' outputs, streamed through papermill's log


def test_the_kernel_runs_with_its_own_log_at_errors_only(tmp_path):
    """Its start-up warnings would be noise in every stage's log."""
    out = notebooks.run(make_notebook(tmp_path, "import sys\nprint(sys.argv)"), tmp_path / "out.ipynb", html=False)
    assert "'--IPKernelApp.log_level=ERROR'" in outputs_text(out)


def test_the_executed_notebook_names_this_environments_kernel_and_language(tmp_path):
    """Jupyter opens an executed notebook with the kernel its metadata names."""
    metadata = nbformat.read(notebooks.run(make_notebook(tmp_path), tmp_path / "out.ipynb", html=False), as_version=4).metadata
    assert metadata["kernelspec"] == {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    assert metadata["language_info"]["name"] == "python"


def test_the_closing_line_names_the_outputs_folder_the_run_was_given_else_the_declared_one(tmp_path):
    declared = tmp_path / "declared.py"
    declared.write_text(TEMPLATE.format(body="pass").replace(
        "rate = 0.5  # a number\n", 'rate = 0.5  # a number\nout_dir = "outputs/scratch/tiny"  # where results go\n'))
    plain = make_notebook(tmp_path)  # declares no out_dir
    cases = [(declared, {"parameters": {"out_dir": "/elsewhere", "count": 3}}, "; its outputs -> /elsewhere"),
             (declared, {"parameters": {"count": 3}}, "; its outputs -> outputs/scratch/tiny"),
             (declared, {}, "; its outputs -> outputs/scratch/tiny"),  # papermill metadata without parameters
             (declared, None, "; its outputs -> outputs/scratch/tiny"),  # no papermill metadata at all
             (plain, {"parameters": {"count": 3}}, "")]
    for index, (notebook, papermill, tail) in enumerate(cases):
        output = tmp_path / f"out{index}.ipynb"
        executed = nbformat.v4.new_notebook()
        if papermill is not None:
            executed.metadata["papermill"] = papermill
        nbformat.write(executed, output)
        assert notebooks.executed_line(notebook, output) == f"{notebook}: executed -> {output}{tail}"


def test_streaming_a_runs_outputs_leaves_the_root_logger_as_it_was(tmp_path):
    root = logging.getLogger()
    before = root.level
    notebooks.run(make_notebook(tmp_path), tmp_path / "out.ipynb", html=False, log_output=True)
    assert root.level == before and logging.getLogger("papermill").level == logging.INFO
