"""Ensemble curve: test accuracy of the `best` profile's ensemble against its number of members, 1 to N, over seeds
(real MNIST, the split stage's train/val/test).

    python tests/benchmarks/bench_ensemble.py [--members 5] [--seeds 1 2 3] [--table-only]

Member k of the ensemble with seed s is trained as `training.train` trains the profile's member k: seed s + k, its
own validation split (`training.member_data`), early stopping and best-weights restore on that split, calibrated on
it. Each finished member keeps its softmax over the test split, averaged over its one-pixel shifts as the saved
model predicts (float16, compressed, about 160 KB), and a JSON record in tests/benchmarks/runs/ensemble/ (committed
with the code); a rerun, in this or a later session on a fresh machine, trains only the members not kept yet (or
those whose recipe changed since), so the curve grows as time allows. The ensemble of the first k members predicts
the mean of their softmax outputs, what `models.combine` computes. The member count is the profile's choice; the
test split only measures the curve, nothing is chosen on it.
The section goes to outputs/bench/ensemble.json.
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
from mnist_lib import calibration, evaluation, models, split, training  # noqa: E402
from mnist_lib.recipe import TrainConfig  # noqa: E402

PROFILE = ["params/profiles/best.yaml"]
OVERRIDES: dict = {}  # parameters over the profile (the tests train one epoch); kept in each member's record
TARGET = 99.75  # the best profile's test accuracy (mean of the seeds), the accuracy section's target


def member_config(seed: int) -> TrainConfig:
    """params/train.yaml with the best profile over it, and `seed` (the ensemble's: member k trains with seed + k)."""
    return benchlib.train_config(PROFILE, **{**OVERRIDES, "seed": seed})


def train_member(data: dict, seed: int, member: int) -> tuple[dict, np.ndarray]:
    """Train member `member` of the ensemble with seed `seed`; return its record and its test softmax (with shifts)."""
    config, other = member_config(seed), benchlib.OtherWork()
    member_train, member_val = training.member_data(data["train"], data["val"], member, config.seed)
    net = training.build(config, member_train.image_shape, member_train.num_classes, config.seed + member)
    with tempfile.TemporaryDirectory() as out:
        history = training.fit(net, member_train, member_val, config, out, member, live_plot=False, resume=False)
    temperature = calibration.calibrate(net, member_val) if config.temperature_scaling else None
    shifted = models.combine([net], member_train.image_shape, tta=config.tta)
    probabilities = evaluation.predict_proba(shifted, data["test"].images).astype(np.float16)  # as kept
    record = {
        "seed": seed, "member": member, "config": config.__dict__, "train_images": len(member_train),
        "epochs_trained": history.attrs["epochs"], "best_val_accuracy": float(history["val_accuracy"].max()),
        "val_accuracy": benchlib.accuracy(shifted, member_val), "calibration": temperature,
        "test_accuracy": hits(probabilities.astype(np.float32), data["test"].labels),
        "fit_seconds": history.attrs["fit_seconds"], **benchlib.run_provenance(other),
    }
    return record, probabilities


def hits(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The share of rows of `probabilities` whose most likely class is the label."""
    return float((probabilities.argmax(axis=1) == labels).mean())


def curve(members: dict[int, list[np.ndarray]], labels: np.ndarray) -> dict[int, list[float]]:
    """Seed -> the test accuracy of its first 1, 2, ... members' mean softmax (a seed's members in order, none missing)."""
    out = {}
    for seed, outputs in members.items():
        total = np.zeros_like(outputs[0], dtype=np.float64)
        out[seed] = []
        for count, output in enumerate(outputs, 1):
            total += output
            out[seed].append(hits(total / count, labels))
    return out


def section(accuracies: dict[int, list[float]], ensemble_size: int, records: list[dict]) -> dict:
    """The section: a row per member count with the mean +- sd over the seeds that have that many members, the
    target row for the profile's own member count, and a chart of the mean against the count (`records`: the
    members counted, for their fit time, machine and date)."""
    fit = [record["fit_seconds"] for record in records]
    longest = max((len(values) for values in accuracies.values()), default=0)
    rows, means = [], []
    for count in range(1, longest + 1):
        values = [seed_values[count - 1] for seed_values in accuracies.values() if len(seed_values) >= count]
        seeds = [seed for seed, seed_values in accuracies.items() if len(seed_values) >= count]
        means.append(float(np.mean(values)) * 100)
        rows.append([count, benchlib.mean_sd(values), len(values), ", ".join(map(str, seeds))])
    full = [values[ensemble_size - 1] for values in accuracies.values() if len(values) >= ensemble_size]
    mean = float(np.mean(full)) * 100 if full else None
    targets = [{"target": f"best ({ensemble_size} members): >= {TARGET}% test (mean of the seeds)",
                "measured": f"{mean:.2f}% ({len(full)} seed{'s' * (len(full) != 1)})" if full else
                f"no seed has {ensemble_size} members yet (at most {longest})",
                "met": bool(mean is not None and mean >= TARGET and len(full) >= 3)}]
    chart = [] if longest < 2 else [
        "```mermaid", "xychart-beta", '    title "Test accuracy % against ensemble members"',
        f"    x-axis [{', '.join(str(count) for count in range(1, longest + 1))}]",
        f'    y-axis "test accuracy %" {min(means) - 0.05:.2f} --> {max(max(means), TARGET) + 0.05:.2f}',
        f"    line [{', '.join(f'{value:.3f}' for value in means)}]", "```"]
    return {
        **benchlib.kept_runs_provenance(records),
        "section": "ensemble", "title": "Ensemble members against test accuracy (the best profile)", "order": 31,
        "command": "python tests/benchmarks/bench_ensemble.py",
        "columns": ["members", "test accuracy % (mean +- sd)", "seeds", "which seeds"],
        "rows": rows, "chart": chart,
        "notes": [
            "params/profiles/best.yaml over params/train.yaml: member k of the ensemble with seed s trains with seed s + k "
            "on its own validation split, as `mnist run` trains it; each member predicts with its one-pixel shifts "
            "(tta) and is calibrated on its validation split; k members predict the mean of their softmax outputs.",
            "A row counts the seeds that have at least that many members; the members of a seed are the same networks "
            "in every row, so a row's change from the row above is the member added.",
            f"Members trained so far: {sum(len(values) for values in accuracies.values())}, "
            f"{np.mean(fit) if fit else 0:.0f} s of fit each on average (each member's machine and load average are in its "
            "record in tests/benchmarks/runs/ensemble/).",
        ],
        "targets": targets,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, help="members per seed (default: the profile's ensemble_size)")
    parser.add_argument("--split-dir", type=Path, default=Path("outputs/split"))
    benchlib.kept_run_options(parser, "ensemble", "members' records and test outputs")
    args = parser.parse_args(argv)
    size = member_config(0).ensemble_size  # the parameters are checked before any training starts
    members = args.members or size
    if members < 1:
        parser.error(f"--members {members}: train at least one member per seed")
    args.runs_dir.mkdir(parents=True, exist_ok=True)
    data = None
    for seed in [] if args.table_only else args.seeds:
        for member in range(members):
            record = args.runs_dir / f"seed{seed}-member{member}.json"
            stale = benchlib.stale_parameters(json.loads(record.read_text()), member_config(seed)) if record.is_file() else []
            if record.is_file() and not stale:
                print(f"seed {seed} member {member}: done before ({record})")
                continue
            if stale:
                print(f"seed {seed} member {member}: the recipe changed since {record} ({', '.join(stale)}); training it again")
            data = data or {name: split.load_split(args.split_dir, name) for name in ("train", "val", "test")}
            started = time.perf_counter()
            result, probabilities = train_member(data, seed, member)
            np.savez_compressed(record.with_suffix(".npz"), test_softmax=probabilities)
            record.write_text(json.dumps(result, indent=2) + "\n")  # last: a record means its outputs are complete
            print(f"seed {seed} member {member}: test {result['test_accuracy']:.4f} alone, fit {result['fit_seconds']:.0f} s "
                  f"({time.perf_counter() - started:.0f} s in all)", flush=True)
    outputs, kept_records, labels = {}, [], None
    for seed in sorted({int(path.name.split("-")[0].removeprefix("seed")) for path in args.runs_dir.glob("seed*-member*.json")}):
        for member in range(10_000):  # a seed's members in order, up to the first one missing or stale
            record = args.runs_dir / f"seed{seed}-member{member}.json"
            if not record.is_file() or benchlib.stale_parameters(kept := json.loads(record.read_text()), member_config(seed)):
                break
            outputs.setdefault(seed, []).append(np.load(record.with_suffix(".npz"))["test_softmax"].astype(np.float32))
            kept_records.append(kept)
    if outputs:
        labels = split.load_split(args.split_dir, "test").labels
    benchlib.write_section(section(curve(outputs, labels) if outputs else {}, size, kept_records), args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
