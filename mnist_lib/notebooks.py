"""The runner: jupytext `.py` -> papermill execution with strict parameters -> executed notebook and HTML."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

# nbformat imports jsonschema, which builds 39 IRI grammars when the optional rfc3987_syntax is installed: 1.2 s of
# every `mnist run`. Notebook validation never checks the "iri" format, so the runner's process goes without it.
sys.modules.setdefault("rfc3987_syntax", None)

import jupytext  # noqa: E402
import nbformat  # noqa: E402

from mnist_lib import params

KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]  # the kernel's own start-up warnings are noise in stage logs


def _kernel_manager_class():
    """jupyter_client's kernel manager, stopping a kernel as it does but asking first: it sends SIGINT before the
    shutdown request, and a kernel caught between messages logs "KeyboardInterrupt caught in kernel" into the run's
    log. Here an idle kernel gets the request alone and exits; one still busy after half a second is interrupted."""
    import asyncio

    from jupyter_client.manager import AsyncKernelManager, KernelManager

    class AskFirstKernelManager(AsyncKernelManager):
        async def _async_interrupt_kernel(self) -> None:
            if not self.shutting_down:  # timeouts and Ctrl-C still interrupt at once
                await KernelManager._async_interrupt_kernel(self)

        async def _async_finish_shutdown(self, waittime=None, pollinterval=0.1, restart=False) -> None:
            try:
                await asyncio.wait_for(self._async_wait(pollinterval=pollinterval), timeout=0.5)
            except asyncio.TimeoutError:
                await KernelManager._async_interrupt_kernel(self)
            await super()._async_finish_shutdown(waittime, pollinterval, restart)

    return AskFirstKernelManager


class NotebookError(RuntimeError):
    """A notebook that did not run to the end; the message names the notebook and the cell."""


def read_notebook(path: str | Path) -> nbformat.NotebookNode:
    """Read a jupytext `.py` (or an `.ipynb`) and name this environment's Python kernel in it."""
    notebook = jupytext.read(path)
    notebook.metadata["kernelspec"] = dict(KERNEL)
    notebook.metadata.setdefault("language_info", {})["name"] = "python"
    return notebook


def prepare(
    notebook_path: str | Path, parameter_files: list[str | Path] = (), overrides: dict[str, str] | None = None
) -> tuple[nbformat.NotebookNode, dict[str, Any]]:
    """Read a notebook and its parameters (files, then `-p` strings), refusing unknown names and wrong types."""
    notebook = read_notebook(notebook_path)
    declared = params.declared_parameters(notebook.cells)
    values, origins = params.load_files(list(parameter_files))
    params.check(declared, values, origins, str(notebook_path))
    for name, raw in (overrides or {}).items():
        if name not in declared:
            params.check(declared, {name: raw}, {}, str(notebook_path))
        values[name] = params.parse_value(declared[name], raw)
    return notebook, values


def _cell_label(cell: nbformat.NotebookNode, index: int) -> str:
    first = next((line for line in cell.source.splitlines() if line.strip()), "").strip()
    return f"cell {index} ({first[:60]!r})"


def _running_cell(output_path: Path) -> str:
    """The cell papermill last started, read from the partially saved output notebook."""
    try:
        notebook = nbformat.read(output_path, as_version=4)
    except (OSError, ValueError):
        return "an unknown cell"
    started = [
        (cell.metadata.get("papermill", {}).get("start_time") or "", index, cell)
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
    ]
    started = [entry for entry in started if entry[0]]
    if not started:
        return "the kernel start"
    _, index, cell = max(started, key=lambda entry: entry[0])
    return _cell_label(cell, index)


def check_complete(notebook: nbformat.NotebookNode, name: str) -> None:
    """Raise unless every code cell ran; catches a `sys.exit()` that makes papermill skip the rest silently."""
    code = [(index, cell) for index, cell in enumerate(notebook.cells) if cell.cell_type == "code" and cell.source.strip()]
    skipped = [index for index, cell in code if cell.get("execution_count") is None]
    if skipped:
        ran = [(index, cell) for index, cell in code if cell.get("execution_count") is not None]
        stopper = _cell_label(ran[-1][1], ran[-1][0]) if ran else "the first cell"
        raise NotebookError(
            f"{name}: execution stopped after {stopper}; {len(skipped)} later code cell(s) never ran "
            "(did a cell call sys.exit() or exit()?)"
        )


def execute(
    notebook: nbformat.NotebookNode,
    values: dict[str, Any],
    output_path: str | Path,
    name: str,
    timeout: float | None = None,
    log_output: bool = False,
) -> nbformat.NotebookNode:
    """Run a prepared notebook with papermill in this environment's kernel; any failure becomes a NotebookError."""
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("papermill").setLevel(logging.INFO if log_output else logging.WARNING)
    try:
        executed = papermill.execute_notebook(
            notebook, str(output_path), parameters=values, kernel_name=KERNEL["name"], language="python",
            progress_bar=log_output, log_output=log_output, execution_timeout=timeout,
            extra_arguments=KERNEL_ARGUMENTS, kernel_manager_class=_kernel_manager_class(),
        )
    except PapermillExecutionError as err:
        raise NotebookError(
            f"{name}: cell {err.cell_index} (execution count {err.exec_count}) raised {err.ename}: {err.evalue}\n"
            f"See the error banner in {output_path}"
        ) from None
    except CellTimeoutError:
        raise NotebookError(f"{name}: {_running_cell(output_path)} ran past the {timeout} s timeout") from None
    except DeadKernelError:
        raise NotebookError(
            f"{name}: the kernel died while running {_running_cell(output_path)} "
            "(killed, or out of memory: try a smaller batch_size)"
        ) from None
    check_complete(executed, name)
    return executed


def run(
    notebook_path: str | Path,
    output_path: str | Path,
    parameter_files: list[str | Path] = (),
    overrides: dict[str, str] | None = None,
    html: bool = True,
    timeout: float | None = None,
    log_output: bool = False,
) -> Path:
    """Check parameters, execute, write the executed notebook (and HTML beside it); return the notebook path."""
    from mnist_lib.reports import to_html

    notebook, values = prepare(notebook_path, parameter_files, overrides)
    executed = execute(notebook, values, output_path, str(notebook_path), timeout, log_output)
    if html:
        to_html(executed, Path(output_path).with_suffix(".html"))
    return Path(output_path)


def executed_line(notebook_path: str | Path, output_path: str | Path) -> str:
    """The line `mnist run` ends with: the executed notebook, and the folder its outputs went to (the `out_dir` it
    was given, else its declared default; left out for a notebook without one)."""
    injected = nbformat.read(output_path, as_version=4).metadata.get("papermill", {}).get("parameters", {})
    declared = params.declared_parameters(read_notebook(notebook_path).cells)
    out_dir = injected.get("out_dir", declared["out_dir"].default if "out_dir" in declared else None)
    return f"{notebook_path}: executed -> {output_path}" + (f"; its outputs -> {out_dir}" if out_dir else "")
