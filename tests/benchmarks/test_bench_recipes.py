"""The training, accuracy and ensemble benchmarks run end to end on tiny real data: every requested model, recipe or
member trained, the section JSON written with its rows and targets, finished runs kept and skipped on a rerun."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import bench_accuracy
import bench_ensemble
import bench_training
import benchlib
import flops
from conftest import REPO, draw_digits, write_tiny_mnist
from mnist_lib import models, split
from mnist_lib.records import Dataset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """A split folder (train 200, val 60, test 60 drawn digits) and a raw folder of gzip IDX files."""
    root = tmp_path_factory.mktemp("bench")
    (root / "split").mkdir()
    for name, count, seed in (("train", 200, 1), ("val", 60, 2), ("test", 60, 3)):
        images, labels = draw_digits(count, seed)
        split.save_split(root / "split", name, Dataset(images[..., None], labels.astype(np.int64), tuple("0123456789")))
    write_tiny_mnist(root / "raw", n_train=200, n_test=60, gz=True)
    return root / "split", root / "raw"


def test_training_benchmark_states_flop_speed_and_share_of_peak_per_model_and_times_the_levers(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the recipes are read from params/
    split_dir, raw_dir = tiny
    assert bench_training.main(["--images", "128", "--models", "mlp", "--split-dir", str(split_dir),
                                "--raw-dir", str(raw_dir), "--out-dir", str(tmp_path), "--skip-time-to-accuracy",
                                "--skip-levers"]) == 0
    section = json.loads((tmp_path / "training.json").read_text())
    assert section["command"] == ("python tests/benchmarks/bench_training.py --images 128 --models mlp --split-dir "
                                  f"{split_dir} --raw-dir {raw_dir} --out-dir {tmp_path} --skip-time-to-accuracy "
                                  "--skip-levers")  # as run
    # training MFLOP per 28x28 image, by hand: 3 passes x 2 FLOP x multiply-adds.
    # mlp: 784*784 + 784*10 = 622,496; cnn_strong: 26*26*9*1*32 + 13*13*9*32*32 + 11*11*9*32*64 + 6*6*9*64*64
    # + 4*4*9*64*128 + 2048*10 = 6,509,696
    assert [row[:2] for row in section["rows"]] == [["mlp", "3.7"]]  # one model trained: the harness is the same
    strong = models.build_model("cnn_strong", (28, 28, 1), 10)
    assert f"{flops.training_flops(strong) / 1e6:,.1f}" == "39.1"
    for row in section["rows"]:
        for speed, gflops in ((row[2], row[3]), (row[6], row[7])):
            speed, gflops = float(speed.replace(",", "")), float(gflops.replace(",", ""))
            assert speed > 0 and gflops == pytest.approx(speed * float(row[1]) / 1000, rel=0.05, abs=0.06)
        assert all(share.endswith("%") for share in (row[4], row[5], row[8], row[9]))
    ceiling = re.search(r"reached ([\d,]+) GFLOP/s in float32 \((\d+)% of the computed peak\)", section["notes"][3])
    float32_share, gemm_share = (float(row[column].rstrip("%")) for column in (4, 5))  # the same achieved GFLOP/s
    # the share of the ceiling over the share of the peak is the peak over the ceiling (the note's own figures)
    assert gemm_share / float32_share == pytest.approx(100 / float(ceiling[2]), rel=0.03)
    assert "FLOP/cycle" in section["notes"][2] and "x the plain-Keras speed" in section["notes"][4]
    assert not (tmp_path / "training_levers.json").exists()
    # the levers' table, on two of them: the default step, and one whose option (a cached batch) the step honours
    levers = (bench_training.LEVERS[0], bench_training.LEVERS[2])
    assert levers[1][2] == {"cached": True}
    train = split.load_split(split_dir, "train")
    rows = bench_training.lever_rows(train, 128, levers)
    assert [row[0] for row in rows] == [levers[0][0], levers[1][0]] and rows[0][2] == "1.00x"
    speeds = [float(row[1].replace(",", "")) for row in rows]
    assert all(speed > 0 for speed in speeds)
    assert float(rows[1][2].removesuffix("x")) == pytest.approx(speeds[1] / speeds[0], abs=0.01)


def test_a_thread_lever_times_the_step_in_a_fresh_process_capped_at_that_many_threads(tiny):
    (label, changes, options) = bench_training.LEVERS[-2]
    assert options == {"threads": 1} and changes == {}
    part = split.subset(split.load_split(tiny[0], "train"), np.arange(128))
    config = benchlib.train_config([], seed=1, tta=False)
    child = bench_training.step_in_child(part, config, **options)
    assert child["images_per_second"] > 0
    assert child["thread_variables"] == {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
                                         "OMP_NUM_THREADS": "1"}
    with pytest.raises(RuntimeError, match="(?s)the 1-thread step process failed: .*no_such_option"):
        bench_training.step_in_child(part, config, threads=1, no_such_option=True)


def test_time_to_accuracy_runs_the_fast_profile_the_default_and_the_reference_recipe(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    split_dir, raw_dir = tiny
    train, val, test = (split.load_split(split_dir, name) for name in ("train", "val", "test"))
    # the default recipe cut to 3 of its epochs, and the test evaluated every 1,600 images: the harness is what is
    # tested here, and it still evaluates each recipe at least once (the fast profile: 2 epochs of 8 steps)
    (tmp_path / "short.yaml").write_text("epochs: 3\n")
    (fast, fast_files), (default, _) = bench_training.RECIPES
    monkeypatch.setattr(bench_training, "RECIPES", ((fast, fast_files), (default, [str(tmp_path / "short.yaml")])))
    rows, targets = bench_training.time_to_accuracy(train, val, test, raw_dir, every_images=1600)
    assert [row[0] for row in rows] == ["99.0%", "99.5%", "last evaluation (accuracy)", "whole run (s, evaluations excluded)"]
    assert all(len(row) == 6 for row in rows)  # milestone, fast, default, reference, and the two ratios
    assert all(float(seconds) > 0 for seconds in rows[3][1:4])
    assert [t["target"].split(":")[0] for t in targets] == ["time to 99.0% test", "time to 99.0% test",
                                                             "default recipe trains in <= 600 s on this CPU"]
    assert targets[0]["target"].endswith("fast profile <= 0.5x the reference recipe")
    assert targets[1]["target"].endswith("fast profile <= 0.1x the reference recipe (the aim)")
    assert targets[0]["measured"].startswith(("not reached (fast profile: ", f"{rows[0][4]}x ({rows[0][1]} s"))


def test_the_fast_profile_is_held_to_half_the_reference_time_and_aims_at_a_tenth():
    met = lambda fast, ref: [t["met"] for t in bench_training.fast_targets(fast, ref, "m")]  # noqa: E731
    assert met(8.0, 39.0) == [True, False] and met(3.9, 39.0) == [True, True] and met(20.0, 39.0) == [False, False]
    assert met(None, 39.0) == met(8.0, None) == [False, False]  # not reached, by either
    assert bench_training.fast_targets(8.0, 39.0, "0.21x")[1] == {
        "target": "time to 99.0% test: fast profile <= 0.1x the reference recipe (the aim)", "measured": "0.21x",
        "met": False}


def test_time_to_accuracy_reads_the_first_evaluation_at_or_above_each_threshold():
    clock = bench_training.TestAccuracyClock(np.zeros((1, 28, 28, 1)), np.zeros(1), every=1, started=0.0)
    clock.points = [(10.0, 0.97), (20.0, 0.991), (30.0, 0.989), (40.0, 0.996)]
    assert (clock.time_to(0.990), clock.time_to(0.995), clock.time_to(0.999)) == (20.0, 40.0, None)


WIDE = ["--recipes", "reference_cnn_wide", "--seeds", "1", "2"]


def accuracy_benchmark(tiny, folder: Path) -> list[str]:
    """The accuracy benchmark's arguments for reference_cnn_wide, seeds 1 and 2, on the tiny split, its runs in
    folder/runs and its section in folder."""
    return [*WIDE, "--split-dir", str(tiny[0]), "--runs-dir", str(folder / "runs"), "--out-dir", str(folder)]


@pytest.fixture(scope="module")
def wide_runs(tiny, tmp_path_factory) -> Path:
    """The accuracy benchmark run once for reference_cnn_wide, seeds 1 and 2: its folder (runs/, accuracy.json)."""
    folder = tmp_path_factory.mktemp("wide")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO)  # the recipes are read from params/
        assert bench_accuracy.main(accuracy_benchmark(tiny, folder)) == 0
    return folder


def copy_of(wide_runs: Path, tmp_path: Path, monkeypatch) -> Path:
    """A copy of the kept runs and section for one test to change, the working folder this repo."""
    shutil.copytree(wide_runs, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(REPO)
    return tmp_path


def test_accuracy_benchmark_keeps_finished_runs_and_reports_mean_and_sd(tiny, wide_runs, tmp_path, monkeypatch, capsys):
    argv = accuracy_benchmark(tiny, copy_of(wide_runs, tmp_path, monkeypatch))
    runs = sorted(path.name for path in (tmp_path / "runs").iterdir())
    assert runs == ["reference_cnn_wide-seed1.json", "reference_cnn_wide-seed2.json"]
    first = json.loads((tmp_path / "runs" / runs[0]).read_text())
    assert first["parameters"] == 2_006_762  # gray repeated to 3 channels, as the reference's RGB input
    assert first["config"]["epochs"] == 5 and first["config"]["seed"] == 1 and 0.0 <= first["test_accuracy"] <= 1.0
    section = json.loads((tmp_path / "accuracy.json").read_text())
    (row,) = section["rows"]
    assert row[0] == "reference_cnn_wide" and row[3] == 2 and " +- " in row[4]
    assert section["targets"][0]["met"] is False  # two seeds are not enough to claim a target
    assert any("reference_cnn_wide sees the gray images repeated" in note for note in section["notes"])
    assert not any("reference_cnn_wide" in note for note in bench_accuracy.section([])["notes"])  # only with its row
    assert not (tmp_path / "faster_default.json").exists()  # no faster default trained: no section for it
    capsys.readouterr()
    assert bench_accuracy.main(argv) == 0
    assert capsys.readouterr().out.count("done before") == 2
    (tmp_path / "accuracy.json").unlink()
    assert bench_accuracy.main(["--table-only", "--recipes", "default", *argv[5:]]) == 0  # trains nothing
    assert json.loads((tmp_path / "accuracy.json").read_text())["rows"] == section["rows"]


def test_accuracy_benchmark_trains_again_a_kept_run_whose_recipe_changed(tiny, wide_runs, tmp_path, monkeypatch, capsys):
    argv = accuracy_benchmark(tiny, copy_of(wide_runs, tmp_path, monkeypatch))
    kept = tmp_path / "runs" / "reference_cnn_wide-seed2.json"
    old = json.loads(kept.read_text())
    kept.write_text(json.dumps({**old, "config": {**old["config"], "epochs": 4, "learning_rate": 0.5}}))
    capsys.readouterr()
    assert bench_accuracy.main(["--table-only", *argv]) == 0
    assert "reference_cnn_wide seed 2: left out of the table, trained before the recipe changed (epochs, learning_rate)" \
        in capsys.readouterr().out
    assert json.loads((tmp_path / "accuracy.json").read_text())["rows"][0][3] == 1  # seed 1 alone
    assert bench_accuracy.main(argv) == 0
    out = capsys.readouterr().out
    assert "seed 1: done before" in out and "seed 2: the recipe changed since" in out and "left out" not in out
    assert json.loads(kept.read_text())["config"]["epochs"] == 5
    assert json.loads((tmp_path / "accuracy.json").read_text())["rows"][0][3] == 2


def test_the_faster_default_is_held_to_half_the_defaults_fit_time_over_seeds_trained_in_one_sitting():
    def run(recipe, seed, seconds, sitting="s1"):
        return {"recipe": recipe, "seed": seed, "fit_seconds": seconds, "sitting": sitting}

    runs = [run("default", 1, 500), run("half_epochs", 1, 240), run("default", 2, 520),
            run("half_epochs", 2, 270), run("default", 3, 480), run("half_epochs", 3, 230)]
    (target,) = bench_accuracy.speed_target(runs)
    assert target["target"] == "half_epochs: fit time <= 0.5x default's (the same seeds, trained in one sitting)"
    assert target["measured"].startswith("0.49x (740 s / 1500 s of fit; seeds 1, 2, 3; s1)")  # 740 / 1500, by hand
    assert target["met"] is True
    runs[5] = run("half_epochs", 3, 280)  # 790 / 1500 = 0.53
    assert bench_accuracy.speed_target(runs)[0]["met"] is False
    runs[5] = run("half_epochs", 3, 10, sitting="s2")  # another sitting: seed 3 does not count, two pairs are too few
    (target,) = bench_accuracy.speed_target(runs)
    assert target["measured"].startswith("0.50x (510 s / 1020 s of fit; seeds 1, 2;") and target["met"] is False
    assert bench_accuracy.speed_target([run("half_epochs", 1, 9, "s1"), run("default", 1, 9, "s2")])[0][
        "measured"] == "not trained in one sitting yet"
    assert bench_accuracy.speed_target([run("fast", 1, 9)]) == []


def test_every_recipe_names_a_profile_that_exists():
    for recipe, spec in bench_accuracy.RECIPES.items():
        assert all((REPO / name).is_file() for name in spec["files"]), recipe
        bench_accuracy.recipe_config(recipe, 1)


def test_the_ensemble_curve_averages_the_first_k_members_softmax():
    # 3 test images of classes 0, 1, 2; member 0 gets image 0 right, member 1 images 1 and 2, member 2 image 2.
    first = np.array([[0.6, 0.4, 0.0], [0.6, 0.4, 0.0], [0.6, 0.0, 0.4]])
    second = np.array([[0.3, 0.7, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    third = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    # means: 2 members [[.45,.55,0],[.3,.7,0],[.3,0,.7]] -> 1, 1, 2; 3 members [[.3,.7,0],[.53,.47,0],[.2,0,.8]] -> 1, 0, 2
    assert bench_ensemble.curve({7: [first, second, third]}, np.array([0, 1, 2])) == {7: [1 / 3, 2 / 3, 1 / 3]}
    section = bench_ensemble.section({1: [0.99, 0.995, 0.996], 2: [0.98, 0.985]}, 3, [{"fit_seconds": 10.0}, {"fit_seconds": 20.0}])
    assert section["rows"] == [[1, "98.50 +- 0.71", 2, "1, 2"], [2, "99.00 +- 0.71", 2, "1, 2"], [3, "99.60 +- -", 1, "1"]]
    assert section["targets"] == [{"target": "best (3 members): >= 99.75% test (mean of the seeds)",
                                   "measured": "99.60% (1 seed)", "met": False}]


def test_the_ensemble_benchmark_keeps_each_member_and_trains_only_those_missing(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)  # the profile is read from params/
    monkeypatch.setattr(bench_ensemble, "OVERRIDES", {"epochs": 1})
    argv = ["--seeds", "1", "--split-dir", str(tiny[0]), "--runs-dir", str(tmp_path / "runs"), "--out-dir", str(tmp_path)]
    assert bench_ensemble.main(["--members", "2", *argv]) == 0
    records = [json.loads((tmp_path / "runs" / f"seed1-member{k}.json").read_text()) for k in (0, 1)]
    assert [(r["member"], r["config"]["seed"], r["config"]["ensemble_size"], r["epochs_trained"]) for r in records] == [
        (0, 1, 5, 1), (1, 1, 5, 1)]
    outputs = [np.load(tmp_path / "runs" / f"seed1-member{k}.npz")["test_softmax"].astype(np.float32) for k in (0, 1)]
    labels = split.load_split(tiny[0], "test").labels
    alone = [float((output.argmax(axis=1) == labels).mean()) for output in outputs]
    both = float(((outputs[0] + outputs[1]).argmax(axis=1) == labels).mean())
    assert [r["test_accuracy"] for r in records] == pytest.approx(alone)
    section = json.loads((tmp_path / "ensemble.json").read_text())
    assert [row[:3] for row in section["rows"]] == [[1, f"{alone[0] * 100:.2f} +- -", 1], [2, f"{both * 100:.2f} +- -", 1]]
    assert "no seed has 5 members yet (at most 2)" in section["targets"][0]["measured"]
    capsys.readouterr()
    assert bench_ensemble.main(["--members", "3", *argv]) == 0
    out = capsys.readouterr().out
    assert out.count("done before") == 2 and "seed 1 member 2: test" in out
    assert len(json.loads((tmp_path / "ensemble.json").read_text())["rows"]) == 3
    changed = tmp_path / "runs" / "seed1-member1.json"
    changed.write_text(json.dumps({**records[1], "config": {**records[1]["config"], "learning_rate": 0.5}}))
    assert bench_ensemble.main(["--table-only", *argv]) == 0  # member 1 is stale: the seed's curve stops before it
    assert [row[0] for row in json.loads((tmp_path / "ensemble.json").read_text())["rows"]] == [1]
