"""The `mnist` command: fetch, run, sweep, report, predict, compare."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPORT_SETTINGS = ("hide_code",)  # the keys a report parameter file (params/report.yaml) may set
SCRATCH = "outputs/scratch"  # where runs outside `dvc repro` write by default: git- and DVC-ignored


def _fetch(args: argparse.Namespace) -> None:
    from mnist_lib.fetch import fetch
    from mnist_lib.sources import default_sources

    provenance = fetch(args.out, default_sources(args.from_dir, show_progress=not args.quiet))
    for name, entry in provenance.items():
        print(f"{name}: sha256 ok, from {entry['source']}")


def _run(args: argparse.Namespace) -> None:
    from mnist_lib import paths
    from mnist_lib.notebooks import executed_line, run

    notebook = Path(args.notebook)
    # Without -o the executed notebook goes to the scratch folder, never to the pipeline's outputs/notebooks/.
    output = Path(args.output) if args.output else paths.resolve(f"{SCRATCH}/{notebook.stem}/{notebook.stem}.ipynb")
    overrides = dict(args.parameter)
    run(notebook, output, args.parameter_file, overrides, html=not args.no_html, timeout=args.timeout,
        log_output=args.log_output)
    print(executed_line(notebook, output))


def _report_settings(files: list[str]) -> dict:
    """Report settings from parameter files (params/report.yaml), unknown keys refused."""
    from mnist_lib import params

    values, origins = params.load_files(files)
    unknown = sorted(set(values) - set(REPORT_SETTINGS))
    if unknown:
        where = ", ".join(f"{name} (from {origins[name]})" for name in unknown)
        raise params.ParameterError(f"mnist report does not know {where}; its settings are: {', '.join(REPORT_SETTINGS)}")
    return {"hide_code": params.require_bool("hide_code", values.get("hide_code", False))}


def _report(args: argparse.Namespace) -> None:
    from mnist_lib.reports import build

    settings = _report_settings(args.parameter_file)
    notebooks = [nb for arg in map(Path, args.notebooks) for nb in (sorted(arg.glob("*.ipynb")) if arg.is_dir() else [arg])]
    missing = [str(nb) for nb in notebooks if not nb.is_file()]
    if missing or not notebooks:
        raise FileNotFoundError(f"no executed notebook at {', '.join(missing) or ' '.join(args.notebooks)}")
    index = build(notebooks, args.out, hide_code=args.hide_code or settings["hide_code"])
    print(f"{len(notebooks)} report(s) -> {index}")


def _sweep(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mnist_lib import executors, paths, sweep_summary, sweeps
    from mnist_lib.notebooks import run

    root = paths.project_root()
    sweep = sweeps.load(args.sweep_file, root)
    out_dir = paths.resolve(args.out or f"outputs/sweeps/{sweep.name}")
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = executors.pending(sweep, out_dir)
    print(f"{sweep.name}: {len(sweep.runs)} run(s), {len(sweep.runs) - len(todo)} already done -> {out_dir}")
    failed: list[str] = []
    with tqdm(total=len(sweep.runs), initial=len(sweep.runs) - len(todo), unit="run", desc=sweep.name) as bar:
        def report(one: sweeps.Run, record: dict) -> None:
            if record["status"] == "failed":
                failed.append(one.run_id)
                tqdm.write(f"{one.run_id}: failed: {record['error']}")
            bar.update(1)
            bar.set_postfix(failed=len(failed))

        try:
            if args.executor == "dask":
                executors.run_dask(sweep, out_dir, root, args.scheduler, report)
            else:
                executors.run_local(sweep, out_dir, root, args.jobs, report)
        finally:
            sweep_summary.summarize(sweep, out_dir)
    print(f"summary -> {out_dir / 'summary.csv'}")
    if (out_dir / "by_configuration.csv").is_file():
        print(f"mean, sd and count over seeds -> {out_dir / 'by_configuration.csv'}")
    if not args.no_report:
        report_path = out_dir / "report.ipynb"
        run(root / "notebooks" / "05_sweep_report.py", report_path, [], {"sweep_dir": str(out_dir)})
        print(f"report -> {report_path.with_suffix('.html')}")
    if failed:
        print(f"mnist sweep: {len(failed)} run(s) failed: {', '.join(failed)} (rerun the same command to retry them)",
              file=sys.stderr)
        return 1
    return 0


def _predict(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter is not a prediction
    from mnist_lib.evaluation import load_model
    from mnist_lib.predict import predict_files

    names = [name.strip() for name in args.classes.split(",")] if args.classes else None
    model = load_model(args.model, args.sha256)
    results = predict_files(model, args.images, names, top=args.top, invert=args.invert, center=not args.no_center,
                            batch_size=args.batch_size)
    if args.json:
        print(json.dumps([result.as_dict() for result in results], indent=2))
    for result in results:
        if result.error:
            print(f"mnist predict: error: {result.error}", file=sys.stderr)
        elif not args.json:
            shown = ", ".join(f"{name} ({p:.4f})" for name, p in result.top)
            print(f"{result.file}: {shown}" + (" [inverted]" if result.inverted else ""))
    failed = sum(result.error is not None for result in results)
    if failed:
        print(f"mnist predict: {failed} of {len(results)} file(s) could not be predicted", file=sys.stderr)
    return 1 if failed else 0


def _compare(args: argparse.Namespace) -> None:
    from mnist_lib import compare

    names = tuple(args.names or (args.first, args.second))
    first, second = compare.read_predictions(args.first), compare.read_predictions(args.second)
    result = compare.compare(first, second, names)
    print(json.dumps(result.as_dict(), indent=2) if args.json else result.as_text())
    if args.html:
        Path(args.html).write_text(compare.to_html(result, _disagreement_png(first, second, names, Path(args.split_dir))))
        print(f"report -> {args.html}", file=sys.stderr if args.json else sys.stdout)


def _disagreement_png(first, second, names: tuple[str, str], split_dir: Path) -> bytes | None:
    """The gallery of the images the two predict differently, as PNG bytes (None without the split's test images)."""
    import io

    from mnist_lib import compare, plots, split

    if not (split_dir / "test.npz").is_file():
        print(f"no {split_dir / 'test.npz'}: the report has no gallery (give --split-dir)", file=sys.stderr)
        return None
    test = split.load_split(split_dir, "test")
    if test.labels is None or [test.class_names[label] for label in test.labels] != first["label"].tolist():
        raise ValueError(f"{split_dir}'s test images are not the ones evaluated ({len(test):,} images, the predictions "
                         f"have {len(first):,}, or their labels differ): give the --split-dir the evaluations read")
    buffer = io.BytesIO()
    plots.disagreement_gallery(test.images, compare.disagreements(first, second), names).savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def parser() -> argparse.ArgumentParser:
    """The argument parser of the `mnist` command."""
    top = argparse.ArgumentParser(prog="mnist", description="MNIST research pipeline tools.")
    commands = top.add_subparsers(dest="command", required=True)

    fetch = commands.add_parser("fetch", help="get the four raw MNIST IDX files, verified against pinned SHA-256")
    fetch.add_argument("--out", default="outputs/data/raw", help="destination folder (default: %(default)s)")
    fetch.add_argument("--from", dest="from_dir", help="a local folder with the raw files (also: MNIST_DATA_DIR)")
    fetch.add_argument("--quiet", action="store_true", help="no progress bars")
    fetch.set_defaults(handler=_fetch)

    run = commands.add_parser("run", help="execute a notebook with papermill, strict parameters, HTML")
    run.add_argument("notebook", help="a jupytext .py (or .ipynb) notebook")
    run.add_argument("-f", "--parameter-file", action="append", default=[], help="YAML parameter file (repeatable)")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="set one parameter (repeatable); the value is read as the declared type")
    run.add_argument("-o", "--output", help=f"executed notebook path (default: {SCRATCH}/NAME/NAME.ipynb)")
    run.add_argument("--no-html", action="store_true", help="do not write NAME.html beside the executed notebook")
    run.add_argument("--timeout", type=float, help="seconds any one cell may run")
    run.add_argument("--log-output", action="store_true", help="stream cell outputs and a progress bar")
    run.set_defaults(handler=_run)

    report = commands.add_parser("report", help="render executed notebooks to HTML with an index page")
    report.add_argument("notebooks", nargs="*", default=["outputs/notebooks"], help="executed notebooks or folders of them")
    report.add_argument("--out", default=f"{SCRATCH}/reports", help="destination folder (default: %(default)s)")
    report.add_argument("-f", "--parameter-file", action="append", default=[],
                        help="YAML settings (params/report.yaml): hide_code: true|false")
    report.add_argument("--hide-code", action="store_true", help="show text and outputs only")
    report.set_defaults(handler=_report)
    sweep = commands.add_parser("sweep", help="run every combination of a sweep file; resumable; summary and report")
    sweep.add_argument("sweep_file", help="a sweep file, e.g. params/sweeps/example.yaml")
    sweep.add_argument("--jobs", type=int, default=1, help="runs at a time on this machine (default: %(default)s)")
    sweep.add_argument("--executor", choices=("local", "dask"), default="local", help="where runs execute")
    sweep.add_argument("--scheduler", help="Dask scheduler address (tcp://HOST:PORT) for --executor dask")
    sweep.add_argument("--out", help="output folder (default: outputs/sweeps/NAME)")
    sweep.add_argument("--no-report", action="store_true", help="do not render the sweep report notebook")
    sweep.set_defaults(handler=_sweep)


    predict = commands.add_parser("predict", help="predict the class of image files (PNG, JPG) with a trained model")
    predict.add_argument("model", help="a .keras model file (loaded in safe mode)")
    predict.add_argument("images", nargs="+", help="image files, any size; dark on light or light on dark")
    predict.add_argument("--top", type=int, default=1, help="show the K most probable classes (default: %(default)s)")
    predict.add_argument("--json", action="store_true", help="print one JSON list of results")
    predict.add_argument("--classes", help="class names in output order, comma-separated (default: 0, 1, 2, ...)")
    predict.add_argument("--invert", choices=("auto", "yes", "no"), default="auto",
                         help="make one-channel images light ink on dark as in MNIST: auto detects the background")
    predict.add_argument("--no-center", action="store_true",
                         help="only resize; by default a one-channel digit is cropped, fitted and centred as in MNIST")
    predict.add_argument("--batch-size", type=int, default=256, help="images per prediction batch")
    predict.add_argument("--sha256", help="the model file's SHA-256, for a model without the record training writes")
    predict.set_defaults(handler=_predict)

    pair = commands.add_parser("compare", help="pair two evaluations of one test split: intervals, disagreements, "
                                               "McNemar's exact test")
    pair.add_argument("first", help="an evaluate output folder (outputs/evaluate) or its predictions.csv")
    pair.add_argument("second", help="another evaluation of the same test split")
    pair.add_argument("--names", nargs=2, metavar=("A", "B"), help="what to call them (default: the paths)")
    pair.add_argument("--json", action="store_true", help="print the comparison as JSON")
    pair.add_argument("--html", help="also write a small HTML report with the images they disagree on")
    pair.add_argument("--split-dir", default="outputs/split", help="the split both evaluated (default: %(default)s)")
    pair.set_defaults(handler=_compare)
    return top


def _loaded_errors() -> tuple[type[Exception], ...]:
    """The user-error classes of the mnist_lib modules this command imported (only those can have raised one);
    importing the others just to catch their errors would add seconds to `mnist predict`."""
    found = []
    for module, name in (("mnist_lib.sources", "FetchError"), ("mnist_lib.notebooks", "NotebookError")):
        if module in sys.modules:
            found.append(getattr(sys.modules[module], name))
    return tuple(found)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run one sub-command; a user error prints one message and exits 1."""
    args = parser().parse_args(argv)
    if getattr(args, "jobs", 1) < 1:
        print("mnist sweep: error: --jobs must be at least 1", file=sys.stderr)
        return 2
    if getattr(args, "executor", None) == "dask" and not args.scheduler:
        print("mnist sweep: error: --executor dask needs --scheduler tcp://HOST:PORT", file=sys.stderr)
        return 2
    try:
        code = args.handler(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:  # DatasetError is a ValueError
        if not isinstance(err, (ValueError, FileNotFoundError, *_loaded_errors())):
            raise
        print(f"mnist {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"mnist {args.command}: interrupted", file=sys.stderr)
        return 130
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
