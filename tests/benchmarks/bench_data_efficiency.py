"""Data efficiency: test accuracy of the default recipe, the fast profile and the reference recipe against the number
of training images (real MNIST, the split stage's `train_size` subsets), and on a many-class RGB image folder built
from MNIST digits (15 classes of 150 pictures of varied sizes, PNG/RGBA/JPG, read at 32x32 RGB).

    python tests/benchmarks/bench_data_efficiency.py [--sizes 300 1000 3000 10000 all] [--seeds 1 2 3]
                                                     [--recipes default fast reference] [--no-folder] [--table-only]

Each (recipe, data, seed) run splits with the split stage's code (`split.make_splits`, seed = the run's seed, so
the subset, the validation split and the weights all vary with it; validation is the split stage's 10% and the test
split is MNIST's 10,000, whatever the training size), trains with early stopping and best-weights restore on
validation only, then measures the test split once. Each finished run's record (a few KB of JSON) is kept in
tests/benchmarks/runs/data_efficiency/, committed with the code, and skipped when the script runs again, in this or a
later session on a fresh machine; a kept run whose recipe parameters (those with an effect) changed since is trained
again. The image folder is written once to outputs/bench/ (not committed).
The section goes to outputs/bench/data_efficiency.json, its plot to outputs/bench/data_efficiency.png.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import benchlib  # noqa: E402
from mnist_lib import datasets, split, sweep_plots, training  # noqa: E402
from mnist_lib.recipe import TrainConfig  # noqa: E402

RECIPES = {  # name -> profiles over params/train.yaml
    "default": [],
    "fast": ["params/profiles/fast.yaml"],
    "reference": ["params/profiles/reference_cnn_small.yaml"],
}
SIZES = ("300", "1000", "3000", "10000", "all")
FOLDER = "folder15"  # the many-class image folder's name in the runs and the table
FOLDER_SHAPE = {"classes": 15, "per_class": 150, "image_size": 32, "channels": 3}
VAL_FRACTION, TEST_FRACTION = 0.1, 0.1  # params/split.yaml's defaults; the folder has no test set: 10% held out
TARGETS = {"1000": 97.0, "all": 99.6, FOLDER: 96.0}  # the default recipe's test accuracy (mean of the seeds) on these data


def recipe_config(recipe: str, seed: int) -> TrainConfig:
    """params/train.yaml with the recipe's profile over it, and `seed`."""
    return benchlib.train_config(RECIPES[recipe], seed=seed)


def mnist_splits(raw_dir: Path, size: str, seed: int) -> dict:
    """The split stage's train/val/test of real MNIST with `train_size` `size` ("all": every training image)."""
    data = datasets.load("idx", raw_dir)  # the fetch stage verified the checksums
    return split.make_splits(data, VAL_FRACTION, TEST_FRACTION, seed, 1.0 if size == "all" else int(size))


def folder_splits(raw_dir: Path, folder: Path, seed: int) -> dict:
    """train/val/test of the many-class RGB folder (written from MNIST's training digits once, then reused)."""
    if not (folder / "train").is_dir():
        digits = datasets.load("idx", raw_dir)["train"]
        partial = folder.with_name(folder.name + ".partial")
        benchlib.write_colour_digit_folder(partial, digits.images, digits.labels, FOLDER_SHAPE["classes"],
                                           FOLDER_SHAPE["per_class"], seed=0)
        partial.rename(folder)
    data = datasets.load("image_folder", folder, image_size=FOLDER_SHAPE["image_size"], channels=FOLDER_SHAPE["channels"])
    return split.make_splits(data, VAL_FRACTION, TEST_FRACTION, seed)


def run_once(recipe: str, parts: dict, seed: int) -> dict:
    """Train one recipe with one seed on `parts`; return its test accuracy (averaged over one-pixel shifts when the
    recipe sets `tta`), validation figures, timings, and both accuracies with and without the shifts (`with_tta`:
    training does not depend on `tta`, so the network is trained once, without it, and measured both ways)."""
    config, other = recipe_config(recipe, seed), benchlib.OtherWork()
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        model, history = training.train(parts["train"], parts["val"], replace(config, tta=False), out, live_plot=False,
                                        resume=False)
        wall = time.perf_counter() - started
    test = parts["test"]
    figures = benchlib.tta_figures(model, parts["val"], test)
    return {
        "recipe": recipe, "seed": seed, "config": config.__dict__, "train_images": len(parts["train"]),
        "val_images": len(parts["val"]), "test_images": len(test), "classes": test.num_classes,
        "test_accuracy": figures["test_accuracy" if config.tta else "test_accuracy_without"],
        "best_val_accuracy": float(history["val_accuracy"].max()), "with_tta": figures,
        "fit_seconds": history.attrs["fit_seconds"], "train_wall_seconds": wall, "warnings": history.attrs["warnings"],
        **benchlib.run_provenance(other),
    }


def changed(run: dict) -> list[str]:
    """Why a kept run must be trained again (`benchlib.stale_parameters` against its recipe now)."""
    return benchlib.stale_parameters(run, recipe_config(run["recipe"], run["seed"]))


def label(data: str) -> str:
    """A data set's name in the table: "MNIST <size>", or the folder's."""
    return f"{FOLDER_SHAPE['classes']}-class RGB folder" if data == FOLDER else f"MNIST {data}"


def stats(runs: list[dict]) -> tuple[float, float, int]:
    """Mean and sd (ddof 1; 0 for one run) of the runs' test accuracy in %, and their count."""
    values = np.array([run["test_accuracy"] for run in runs]) * 100
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0, len(values)


def section(runs: list[dict], datasets_order: list[str]) -> dict:
    """The section: a row per data set (training images) with each recipe's mean +- sd, the targets, a chart."""
    by = {(run["recipe"], run["data"]): [] for run in runs}
    for run in runs:
        by[(run["recipe"], run["data"])].append(run)
    rows, means, targets, within, above = [], {}, [], [], []
    for data in datasets_order:
        mine = {recipe: stats(by[(recipe, data)]) for recipe in RECIPES if (recipe, data) in by}
        if not mine:
            continue
        images = int(np.mean([run["train_images"] for recipe in mine for run in by[(recipe, data)]]))
        rows.append([label(data), images] + [f"{mine[r][0]:.2f} +- {mine[r][1]:.2f} ({mine[r][2]})" if r in mine else ""
                                             for r in RECIPES])
        means[data] = {recipe: value[0] for recipe, value in mine.items()}
        if "default" in mine and len(mine) == len(RECIPES):
            best = max(mine, key=lambda recipe: mine[recipe][0])
            ok = best == "default" or mine["default"][0] + mine["default"][1] >= mine[best][0]
            within.append((label(data), ok, best, all(value[2] >= 3 for value in mine.values())))
            above.append((label(data), mine["default"][0] >= mine["reference"][0]))
    if within:
        compared = {name for name, *_ in within}
        missing = [label(data) for data in datasets_order if label(data) not in compared]
        pending = f"; not measured yet with every recipe: {', '.join(missing)}" if missing else ""
        targets.append({"target": "default recipe the best, or within one sd of the best, on every data set",
                        "measured": "; ".join(f"{name}: {'yes' if ok else f'no ({best} better)'}"
                                              for name, ok, best, _ in within) + pending,
                        "met": all(ok and enough for _, ok, _, enough in within) and not missing})
        targets.append({"target": "default recipe never below the reference recipe (mean test accuracy)",
                        "measured": "; ".join(f"{name}: {'yes' if ok else 'no'}" for name, ok in above) + pending,
                        "met": all(ok for _, ok in above) and not missing})
    for data, goal in TARGETS.items():
        if ("default", data) in by:
            mean, sd, count = stats(by[("default", data)])
            name = ("the 15-class RGB folder" if data == FOLDER else "all of MNIST's training images" if data == "all"
                    else f"MNIST with {data} training images")
            targets.append({"target": f"default recipe >= {goal:g}% test on {name}",
                            "measured": f"{mean:.2f} +- {sd:.2f}% ({count} seeds)", "met": mean >= goal and count >= 3})
    tta_notes = [note for data in datasets_order
                 if (note := benchlib.tta_note(f"default on {label(data)}", by.get(("default", data), [])))]
    return {
        **benchlib.kept_runs_provenance(runs),
        "section": "data_efficiency", "title": "Data efficiency: test accuracy against training images", "order": 35,
        "command": "python tests/benchmarks/bench_data_efficiency.py",
        "columns": ["data", "training images", *[f"{recipe} test % (seeds)" for recipe in RECIPES]],
        "rows": rows,
        "chart": chart(means, [d for d in datasets_order if d != FOLDER and d in means]),
        "notes": [
            "Recipes: default = params/train.yaml; fast = params/profiles/fast.yaml over it; reference = "
            "params/profiles/reference_cnn_small.yaml (the reference notebook's cnn_small, plain Adam 1e-3, 10 epochs).",
            "MNIST rows: the split stage's stratified `train_size` subset of the 54,000 training images (seeded by the "
            "run's seed); validation is the split stage's 6,000 images and the test split MNIST's 10,000 in every row.",
            f"The folder row: {FOLDER_SHAPE['classes']} classes (digits 0-4 x 3 ink colours) of {FOLDER_SHAPE['per_class']} "
            "pictures each, made from MNIST training digits at random sizes from 20 to 64 pixels on random light "
            "backgrounds, saved as RGB PNG, RGBA PNG and JPG, read as 32x32 RGB; 10% held out as test, 10% of the "
            "rest for validation.",
            "mean +- sd over seeds (ddof 1), with the count of seeds in brackets. Nothing is chosen on the test split.",
            "The chart's x axis is the MNIST training images; its steps (300, 1k, 3k, 10k, all 54k) are about evenly "
            "spaced on a log scale. outputs/bench/data_efficiency.png draws it on a true log axis.",
            *tta_notes,
        ],
        "targets": targets,
    }


def chart(means: dict[str, dict[str, float]], sizes: list[str]) -> list[str]:
    """A Mermaid xychart (rendered by GitHub) of mean test accuracy per recipe against the MNIST training size."""
    if not sizes:
        return []
    values = [value for size in sizes for value in means[size].values()]
    lines = ["```mermaid", "xychart-beta", '    title "Test accuracy % against MNIST training images"',
             f"    x-axis [{', '.join(sizes)}]",
             f'    y-axis "test accuracy %" {max(0, int(min(values)) - 1)} --> 100']
    lines += [f"    line [{', '.join(f'{means[size].get(recipe, 0):.2f}' for size in sizes)}]" for recipe in RECIPES
              if all(recipe in means[size] for size in sizes)]
    return lines + ["```", "", f"Lines, top to bottom in the legend order: {', '.join(RECIPES)}."]


def plot(runs: list[dict], path: Path) -> None:
    """The sweep report's learning curve (`sweep_plots.accuracy_by_train_size`) of the MNIST runs, one line per recipe."""
    table = pd.DataFrame([{"recipe": run["recipe"], sweep_plots.SIZE_COLUMN: run["train_images"], "seed": run["seed"],
                           "test_accuracy": run["test_accuracy"]} for run in runs if run["data"] != FOLDER])
    if not table.empty:
        sweep_plots.accuracy_by_train_size(table, ["test_accuracy"], ["recipe", "seed"]).savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), help="MNIST training images per run, or all")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--no-folder", action="store_true", help="skip the many-class image folder")
    parser.add_argument("--raw-dir", type=Path, default=Path("outputs/data/raw"), help="the four MNIST IDX files")
    benchlib.kept_run_options(parser, "data_efficiency")
    args = parser.parse_args(argv)
    for size in args.sizes:
        if size != "all" and not (size.isdigit() and int(size) > 1):
            parser.error(f"--sizes: {size!r} is neither a count of images above 1 nor 'all'")
    for recipe in args.recipes:
        recipe_config(recipe, 0)  # every recipe's parameters are checked before any training starts
    args.runs_dir.mkdir(parents=True, exist_ok=True)
    order = list(args.sizes) + ([] if args.no_folder else [FOLDER])
    for data in [] if args.table_only else order:
        for seed in args.seeds:
            parts = None
            for recipe in args.recipes:
                path = args.runs_dir / f"{recipe}-{data}-seed{seed}.json"
                stale = changed(json.loads(path.read_text())) if path.is_file() else []
                if path.is_file() and not stale:
                    print(f"{recipe} {data} seed {seed}: done before ({path})")
                    continue
                if stale:
                    print(f"{recipe} {data} seed {seed}: the recipe changed since {path} ({', '.join(stale)}); training it again")
                if parts is None:
                    parts = (folder_splits(args.raw_dir, args.out_dir / FOLDER, seed) if data == FOLDER
                             else mnist_splits(args.raw_dir, data, seed))
                result = {"data": data, **run_once(recipe, parts, seed)}
                path.write_text(json.dumps(result, indent=2) + "\n")
                print(f"{recipe} {data} seed {seed}: test {result['test_accuracy']:.4f} ({result['train_images']} training "
                      f"images), fit {result['fit_seconds']:.0f} s", flush=True)
    runs = [json.loads(path.read_text()) for path in sorted(args.runs_dir.glob("*.json"))]
    current = []
    for run in runs:
        if changed(run):
            print(f"{run['recipe']} {run['data']} seed {run['seed']}: left out, trained before the recipe changed")
        elif run["data"] in order:
            current.append(benchlib.as_configured(run, recipe_config(run["recipe"], run["seed"]).tta))
    benchlib.write_section(section(current, order), args.out_dir)
    plot(current, Path(args.out_dir) / "data_efficiency.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
