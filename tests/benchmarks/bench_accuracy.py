"""Accuracy of each training recipe over several seeds on the real MNIST split: the reference models at their
reference settings, the default (params/train.yaml) and the best ensemble profile.

    python tests/benchmarks/bench_accuracy.py [--recipes default reference_cnn_small ...] [--seeds 1 2 3]

Each (recipe, seed) run trains on outputs/split's train split, watches its val split (early stopping and
best-weights restore only ever look at validation), then measures the test split once. Finished runs are kept in
tests/benchmarks/runs/accuracy/ (committed with the code) and skipped when the script runs again (--force reruns them), so a long benchmark can
be stopped and continued; a kept run whose parameters differ from its recipe's current ones is trained again, and
left out of the table until it is. The section table (mean +- sd over the seeds) goes to outputs/bench/accuracy.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import benchlib  # noqa: E402
from mnist_lib import split, training  # noqa: E402
from mnist_lib.recipe import TrainConfig  # noqa: E402
from mnist_lib.records import Dataset  # noqa: E402

# recipe -> parameter files over params/train.yaml, the figure it must reach and on which split, input channels
RECIPES = {
    "default": {"files": [], "target": 99.60, "on": "test", "rule": ">= 99.60% test (mean of the seeds)"},
    # A faster default tried (params/train.yaml's comment): all of MNIST trains 9 of the 18 epochs.
    "half_epochs": {"files": [], "overrides": {"max_images_seen": 500_000}, "target": 99.60, "on": "test",
                    "rule": ">= 99.60% test (mean of the seeds), the default's target"},
    "best": {"files": ["params/profiles/best.yaml"], "target": 99.75, "on": "test", "rule": ">= 99.75% test (mean)"},
    "fast": {"files": ["params/profiles/fast.yaml"], "target": 99.0, "on": "test", "rule": ">= 99.0% test (mean)"},
    "reference_cnn_small": {"files": ["params/profiles/reference_cnn_small.yaml"], "target": 99.17, "on": "test"},
    "reference_baseline": {"files": ["params/profiles/reference_baseline.yaml"], "target": 98.48, "on": "test"},
    "reference_cnn_kaggle": {"files": ["params/profiles/reference_cnn_kaggle.yaml"], "target": 99.0, "on": "test"},
    "reference_mlp": {"files": ["params/profiles/reference_mlp.yaml"], "target": 92.79, "on": "test"},
    "reference_cnn_wide": {"files": ["params/profiles/reference_cnn_wide.yaml"], "target": 98.3, "on": "val", "channels": 3},
}
TOLERANCE = 0.3  # reference models must land within this many points of their reference figure
SPEED = ("half_epochs", "default", 0.5)  # a faster default must train in at most this share of the default's fit time
SITTING = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # this invocation: fit times compare only within one


def recipe_config(recipe: str, seed: int) -> TrainConfig:
    """params/train.yaml with the recipe's profile over it, and `seed`."""
    return benchlib.train_config(RECIPES[recipe]["files"], **{**RECIPES[recipe].get("overrides", {}), "seed": seed})


def with_channels(data: Dataset, channels: int) -> Dataset:
    """`data` with its one gray channel repeated `channels` times (the RGB-folder models' input)."""
    return data if channels == 1 else Dataset(np.repeat(data.images, channels, axis=-1), data.labels, data.class_names)


def run_once(recipe: str, seed: int, split_dir: Path) -> dict:
    """Train one recipe with one seed; return its validation and test figures and timings."""
    config, other = recipe_config(recipe, seed), benchlib.OtherWork()
    channels = RECIPES[recipe].get("channels", 1)
    train, val, test = (with_channels(split.load_split(split_dir, name), channels) for name in ("train", "val", "test"))
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        model, history = training.train(train, val, config, out, live_plot=False, resume=False)
        wall = time.perf_counter() - started
    members = history.groupby("member") if "member" in history else [(0, history)]
    final_val = float(np.mean([rows["val_accuracy"].iloc[-1] for _, rows in members]))
    result = {
        "recipe": recipe, "seed": seed, "config": config.__dict__, "train_images": len(train),
        "epochs_trained": history.attrs["epochs"][0], "parameters": model.count_params(),
        "test_accuracy": benchlib.accuracy(model, test), "final_val_accuracy": final_val,
        "fit_seconds": history.attrs["fit_seconds"], "train_wall_seconds": wall,
        "images_per_second": history.attrs["images_seen"] / history.attrs["fit_seconds"],
        "epochs": config.epochs, **benchlib.run_provenance(other), "sitting": SITTING,
    }
    if config.ensemble_size == 1 and not config.tta:  # what test-time augmentation would add, judged on val
        result["with_tta"] = benchlib.tta_figures(model, val, test)
    return result


def changed(run: dict) -> list[str]:
    """Why a kept run must be trained again (`benchlib.stale_parameters` against its recipe now; parameters the
    run's version did not have yet are not compared)."""
    return benchlib.stale_parameters(run, recipe_config(run["recipe"], run["seed"]))


def speed_target(runs: list[dict]) -> list[dict]:
    """SPEED's target: the total fit time of the first recipe's runs over the second's, counting only seeds that
    both trained in one sitting (one invocation of this script, on one machine); [] when neither ran."""
    fast, slow, share = SPEED
    if not any(run["recipe"] in (fast, slow) for run in runs):
        return []
    pairs = [(mine, theirs) for mine in runs if mine["recipe"] == fast for theirs in runs
             if theirs["recipe"] == slow and theirs["seed"] == mine["seed"] and mine.get("sitting")
             and theirs.get("sitting") == mine["sitting"]]
    rule = f"{fast}: fit time <= {share}x {slow}'s (the same seeds, trained in one sitting)"
    if not pairs:
        return [{"target": rule, "measured": "not trained in one sitting yet", "met": False}]
    fast_seconds, slow_seconds = (sum(pair[side]["fit_seconds"] for pair in pairs) for side in (0, 1))
    ratio = fast_seconds / slow_seconds
    seeds = ", ".join(str(mine["seed"]) for mine, _ in pairs)
    measured = (f"{ratio:.2f}x ({fast_seconds:.0f} s / {slow_seconds:.0f} s of fit; seeds {seeds}; "
                f"{pairs[0][0]['sitting']})")
    return [{"target": rule, "measured": measured, "met": bool(ratio <= share and len(pairs) >= 3)}]


def section(runs: list[dict]) -> dict:
    """The accuracy section: one row per recipe with its seeds' mean +- sd, and the targets."""
    rows, targets, tta_notes = [], [], []
    for recipe, spec in RECIPES.items():
        tta = recipe_config(recipe, 0).tta
        mine = [benchlib.as_configured(run, tta) for run in runs if run["recipe"] == recipe]
        if not mine:
            continue
        key = "test_accuracy" if spec["on"] == "test" else "final_val_accuracy"
        measured = float(np.mean([run[key] for run in mine])) * 100
        fit = [run["fit_seconds"] for run in mine]
        first = mine[0]["config"]
        command = f"python tests/benchmarks/bench_accuracy.py --recipes {recipe}"
        rows.append([
            recipe, first["model"], mine[0].get("epochs_trained", first["epochs"]) * first["ensemble_size"], len(mine),
            benchlib.mean_sd([run["test_accuracy"] for run in mine]), benchlib.mean_sd([run["final_val_accuracy"] for run in mine]),
            f"{spec['target']:.2f} ({spec['on']})", f"{np.mean(fit):.0f} +- {np.std(fit, ddof=1) if len(fit) > 1 else 0:.0f}",
            f"{np.mean([run['images_per_second'] for run in mine]):,.0f}", command,
        ])
        if recipe.startswith("reference_"):
            rule = f"{recipe}: within {TOLERANCE} points of {spec['target']}% {spec['on']}"
            met = abs(measured - spec["target"]) <= TOLERANCE
        else:
            rule = f"{recipe}: {spec['rule']}"
            met = measured >= spec["target"]
        note = benchlib.tta_note(recipe, [run for run in runs if run["recipe"] == recipe])
        tta_notes += [note] if note else []
        seeds = ", ".join(str(run["seed"]) for run in mine)
        targets.append({"target": rule, "measured": f"{measured:.2f}% (seeds {seeds}; fit {max(fit):.0f} s at most)",
                        "met": bool(met and len(mine) >= 3)})
    return {
        **benchlib.kept_runs_provenance(runs),
        "section": "accuracy", "title": "Accuracy of each recipe over seeds (real MNIST)", "order": 30,
        "command": "python tests/benchmarks/bench_accuracy.py",
        "columns": ["recipe", "model", "epochs (all members)", "seeds", "test accuracy % (mean +- sd)",
                    "val accuracy % (the model tested)", "reference / target %", "fit s (mean +- sd)", "train images/s", "command"],
        "rows": rows,
        "notes": [
            "Training uses the split stage's train split; early stopping and best-weights restore look only at its "
            "val split. The test split is predicted once, after training, and never selects anything.",
            "Recipes are params/train.yaml (the default) with a profile from params/profiles/ over it"
            + ("; reference_cnn_wide sees the gray images repeated to 3 channels, as its RGB JPG project did."
               if any(row[0] == "reference_cnn_wide" for row in rows) else "."),
            "A target counts as met only with at least 3 seeds. fit s is model.fit wall time on this machine, with "
            "whatever else ran beside it (each run's file in tests/benchmarks/runs/accuracy/ holds its load average "
            "and, where it measured it, the other work beside it); "
            "the default's training time on a quiet machine is the time-to-accuracy section's whole-run figure.",
            *tta_notes,
        ],
        "targets": targets,
    }


def faster_default_section(runs: list[dict]) -> dict | None:
    """SPEED's own section: the faster default tried and the default, their rows (`section`), accuracy targets and
    the fit-time target (`speed_target`); None before the candidate has a run."""
    candidate, default, share = SPEED
    mine = [run for run in runs if run["recipe"] in (candidate, default)]
    if not any(run["recipe"] == candidate for run in mine):
        return None
    base = section(mine)
    return {**base, "section": "faster_default", "order": 32,
            "title": f"A faster default tried: {candidate} against the default",
            "command": f"python tests/benchmarks/bench_accuracy.py --recipes {default} {candidate}",
            "notes": base["notes"] + [
                f"{candidate} is params/train.yaml with {RECIPES[candidate]['overrides']} (all of MNIST trains 9 of the 18 "
                "epochs; smaller splits keep all 18). The seeds train one after another, each recipe in turn, so the "
                "two recipes share the machine's drift; the fit-time ratio counts only seeds both trained in one "
                f"sitting. A faster default must reach the default's target in at most {share}x its fit time."],
            "targets": base["targets"] + speed_target(mine)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--split-dir", type=Path, default=Path("outputs/split"))
    parser.add_argument("--force", action="store_true", help="rerun finished (recipe, seed) runs")
    benchlib.kept_run_options(parser, "accuracy")
    args = parser.parse_args(argv)
    args.runs_dir.mkdir(parents=True, exist_ok=True)
    for recipe in args.recipes:
        recipe_config(recipe, 0)  # every recipe's parameters are checked before any training starts
    for seed in [] if args.table_only else args.seeds:  # seed by seed: recipes compared in one sitting share its drift
        for recipe in args.recipes:
            path = args.runs_dir / f"{recipe}-seed{seed}.json"
            stale = changed(json.loads(path.read_text())) if path.is_file() else []
            if path.is_file() and not args.force and not stale:
                print(f"{recipe} seed {seed}: done before ({path})")
                continue
            if stale:
                print(f"{recipe} seed {seed}: the recipe changed since {path} ({', '.join(stale)}); training it again")
            result = run_once(recipe, seed, args.split_dir)
            path.write_text(json.dumps(result, indent=2) + "\n")
            print(f"{recipe} seed {seed}: test {result['test_accuracy']:.4f}, val {result['final_val_accuracy']:.4f}, "
                  f"fit {result['fit_seconds']:.0f} s", flush=True)
    runs = [json.loads(path.read_text()) for path in sorted(args.runs_dir.glob("*.json"))]
    current = []
    for run in runs:
        stale = changed(run)
        if stale:
            print(f"{run['recipe']} seed {run['seed']}: left out of the table, trained before the recipe changed "
                  f"({', '.join(stale)}); run --recipes {run['recipe']} to train it again")
        else:
            current.append(run)
    benchlib.write_section(section([run for run in current if run["recipe"] != SPEED[0]]), args.out_dir)
    faster = faster_default_section(current)
    if faster:
        benchlib.write_section(faster, args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
