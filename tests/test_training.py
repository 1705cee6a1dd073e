"""Training: parameters checked before work; the same seed gives bit-identical weights in fresh processes; a run
killed with SIGKILL resumes after its last finished epoch and ends exactly as an uninterrupted run."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from conftest import digit_dataset, same_weights
from mnist_lib import modelfile, models, resume, runtime, split, training
from mnist_lib.records import Dataset
from mnist_lib.params import ParameterError
from mnist_lib.recipe import TrainConfig

# A plain recipe (constant rate, no label smoothing, no augmentation, no test-time shifts); params/train.yaml's defaults are the full one.
GOOD = dict(model="cnn_small", epochs=1, batch_size=32, learning_rate=0.001, optimizer="adam", seed=1, lr_schedule="constant",
            label_smoothing=0.0, rotation=0.0, zoom=0.0, shift=0.0, tta=False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"epochs": -3}, r"epochs = -3 is outside \[1, 10000\]"),
        ({"epochs": 2.0}, "epochs must be an integer, got 2.0"),
        ({"epochs": True}, "epochs must be an integer, got True"),  # `epochs: yes` in YAML 1.1
        ({"seed": "42"}, "seed must be an integer, got '42'"),
        ({"learning_rate": "1e-3"}, "learning_rate must be a finite number, got '1e-3'.*1.0e-3"),
        ({"learning_rate": float("nan")}, "learning_rate must be a finite number, got nan"),
        ({"learning_rate": 0.0}, r"learning_rate = 0.0 is outside \(0.0, 10.0\]"),
        ({"optimizer": "adamw2"}, "optimizer must be one of adam, sgd, rmsprop"),
        ({"model": "resnet9"}, "unknown model 'resnet9'; known models:"),
        ({"restore_best_weights": "false"}, "restore_best_weights must be true or false, got 'false'"),
        ({"lr_schedule": "step"}, "lr_schedule must be one of constant, exponential, cosine, one_cycle"),
        ({"label_smoothing": 0.9}, r"label_smoothing = 0.9 is outside \[0.0, 0.5\]"),
        ({"rotation": -5.0}, r"rotation = -5.0 is outside \[0.0, 180.0\]"),
        ({"shift": "0.1"}, "shift must be a finite number, got '0.1'"),
        ({"ensemble_size": 0}, r"ensemble_size = 0 is outside \[1, 100\]"),
        ({"tta": "yes"}, "tta must be true or false, got 'yes'"),
        ({"hidden_activation": "softplus2"}, "hidden_activation must be one of relu, softmax"),
        ({"precision": "float16"}, "precision must be one of float32, mixed"),
    ],
)
def test_bad_training_parameters_are_refused_with_the_parameter_named(change, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{**GOOD, **change})


def test_parameter_errors_are_value_errors_a_notebook_user_can_catch():
    assert issubclass(ParameterError, ValueError)


SCRIPT = """
import json, hashlib, sys
import numpy as np
sys.path.insert(0, {tests!r})
from conftest import draw_digits
from mnist_lib import modelfile, models, recipe, resume, runtime, training
from mnist_lib.records import Dataset
out_dir, config, train_images = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
images, labels = draw_digits(400, seed=5)
images, labels = np.tile(images, (4, 1, 1))[..., None], np.tile(labels, 4).astype(np.int64)  # epochs long enough to kill
train = Dataset(images[:train_images], labels[:train_images], tuple("0123456789"))
val = Dataset(images[1400:], labels[1400:], tuple("0123456789"))
config = recipe.TrainConfig(**config)
net, history = training.train(train, val, config, out_dir, live_plot=False)
digest = hashlib.sha256(b"".join(np.ascontiguousarray(w).tobytes() for w in net.get_weights())).hexdigest()
modelfile.save_model(net, out_dir + "/model.keras")
np.savez(out_dir + "/weights.npz", *(np.asarray(w) for w in net.weights))  # trainable, batch-norm statistics, ...
names = [w.path for w in net.weights]
print("RESULT", json.dumps({{"weights": digest, "weight_names": names, **history.attrs}}))
"""
# the default model (batch-norm statistics recomputed before every validation, dropout) with a one-cycle schedule,
# label smoothing and augmentation draws: all of them must resume, on a short run of small data
CONFIG = {**GOOD, "model": "cnn_strong", "epochs": 3, "batch_size": 16, "lr_schedule": "one_cycle", "label_smoothing": 0.1,
          "rotation": 10.0, "zoom": 0.1, "shift": 0.1}
TRAIN_IMAGES = 160


def training_command(out_dir: Path, config: dict) -> list[str]:
    from conftest import REPO

    out_dir.mkdir(parents=True, exist_ok=True)
    return [sys.executable, "-c", SCRIPT.format(tests=str(REPO / "tests")), str(out_dir), json.dumps(config),
            str(TRAIN_IMAGES)]


def train_in_fresh_process(out_dir: Path, config: dict) -> dict:
    done = subprocess.run(training_command(out_dir, config), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))[len("RESULT"):])
    return {**result, "stdout": done.stdout}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[Path, dict]:
    """One training run of CONFIG in a fresh process, start to end: its folder and result."""
    out_dir = tmp_path_factory.mktemp("uninterrupted") / "train"
    return out_dir, train_in_fresh_process(out_dir, CONFIG)


def test_another_seed_gives_other_initial_weights():
    builds = [training.build(TrainConfig(**CONFIG), (28, 28, 1), 10, seed=seed).get_weights() for seed in (1, 1, 2)]
    assert same_weights(builds[0], builds[1])
    assert not same_weights(builds[0], builds[2])


def kill_after_the_first_epoch(out_dir: Path, config: dict) -> int:
    """Start training in a fresh process, SIGKILL it once it has saved a resume state; return the epochs it saved."""
    state = resume.resume_path(out_dir)
    process = subprocess.Popen(training_command(out_dir, config), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not state.is_file():  # written at the end of the first epoch
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-3000:]
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    with np.load(state) as saved:
        done = json.loads(str(saved["meta"]))["epochs_done"]
    assert 1 <= done < config["epochs"], "the kill came after the last epoch: nothing left to resume"
    assert not (out_dir / "model.keras").exists()
    return done


def differing_weights(first: Path, second: Path, names: list[str]) -> list[str]:
    """The names of the weights that differ between two runs' weights.npz (same model)."""
    with np.load(first / "weights.npz") as a, np.load(second / "weights.npz") as b:
        assert len(a.files) == len(b.files) == len(names)
        return [name for index, name in enumerate(names) if not np.array_equal(a[f"arr_{index}"], b[f"arr_{index}"])]


@pytest.mark.slow
def test_the_default_model_killed_with_sigkill_resumes_after_its_last_epoch_and_ends_as_if_never_killed(uninterrupted, tmp_path):
    """Killed, resumed, and bit for bit the run trained start to end in another process: the same seed gives the
    same weights in fresh processes, and a kill changes nothing."""
    reference_dir, reference = uninterrupted
    out_dir = tmp_path / "train"
    state = resume.resume_path(out_dir)
    done = kill_after_the_first_epoch(out_dir, CONFIG)

    resumed = train_in_fresh_process(out_dir, CONFIG)
    assert f"Resuming after epoch {done} from {state}" in resumed["stdout"]
    assert resumed["resumed_from_epoch"] == done and resumed["epochs_this_run"] == CONFIG["epochs"] - done
    history = pd.read_csv(out_dir / "history.csv")
    assert history["epoch"].tolist() == list(range(CONFIG["epochs"]))  # every epoch exactly once
    assert (out_dir / "history.csv").read_bytes() == (reference_dir / "history.csv").read_bytes()
    # weight by weight: same batches, optimizer, dropout and best-epoch state, and the batch-norm statistics
    names = reference["weight_names"]
    assert resumed["weight_names"] == names and sum("moving_mean" in name for name in names) == 5
    assert differing_weights(reference_dir, out_dir, names) == []
    assert resumed["weights"] == reference["weights"]
    assert not state.exists() and not state.with_name(state.name + ".partial").exists()
    assert modelfile.load_model(out_dir / "model.keras").predict(np.zeros((1, 28, 28, 1)), verbose=0).shape == (1, 10)


def tiny_run(tmp_path: Path, **change) -> tuple[keras.Model, Dataset, TrainConfig, Path]:
    """A small model, data and configuration for in-process training tests."""
    data = digit_dataset(64, seed=3)
    config = TrainConfig(**{**GOOD, "model": "mlp", "epochs": 2, **change})
    runtime.set_determinism(config.seed)
    return models.build_model("mlp", data.image_shape, 10), data, config, tmp_path / "train"


def compiled_tiny_run(tmp_path: Path) -> tuple[keras.Model, Dataset, TrainConfig, Path]:
    """`tiny_run`'s, with the model compiled, its optimizer's variables made and the output folder created: what a
    resume state saves at an epoch's end."""
    model, data, config, out_dir = tiny_run(tmp_path)
    out_dir.mkdir()
    training.compile_model(model, config, 2)
    model.optimizer.build(model.trainable_variables)
    return model, data, config, out_dir


def test_the_resume_state_restores_variables_early_stopping_progress_best_weights_and_history(tmp_path):
    model, data, config, out_dir = compiled_tiny_run(tmp_path)
    model.optimizer.iterations.assign(7)
    stopper = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=3, restore_best_weights=True)
    stopper.wait, stopper.best, stopper.best_epoch, stopper.stopped_epoch = 1, 0.5, 2, 4  # none at its reset value
    stopper.best_weights = [w * 0 for w in model.get_weights()]
    fingerprint = resume.resume_fingerprint(model, data, data, config)
    (out_dir / "history.csv").write_bytes(b"epoch,accuracy\r\n0,0.5\r\n")
    saving = resume.ResumeState(resume.resume_path(out_dir), fingerprint, out_dir / "history.csv", stopper)
    saving.set_model(model)
    saving.on_epoch_end(0)

    fresh, _, _, _ = tiny_run(tmp_path, seed=9)  # other initial weights
    training.compile_model(fresh, config, 2)
    (out_dir / "history.csv").write_bytes(b"epoch,accuracy\r\n0,0.5\r\n1,0.6\r\n")  # a row the state never saw
    fresh_stopper = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=3, restore_best_weights=True)
    restoring = resume.ResumeState(resume.resume_path(out_dir), fingerprint, out_dir / "history.csv", fresh_stopper)
    assert restoring.restore(fresh) == 1
    fresh_stopper.on_train_begin()
    restoring.on_train_begin()
    assert same_weights(fresh.get_weights(), model.get_weights())
    assert int(fresh.optimizer.iterations.numpy()) == 7
    assert (fresh_stopper.wait, fresh_stopper.best, fresh_stopper.best_epoch, fresh_stopper.stopped_epoch) == (1, 0.5, 2, 4)
    assert same_weights(fresh_stopper.best_weights, stopper.best_weights)
    assert (out_dir / "history.csv").read_bytes() == b"epoch,accuracy\r\n0,0.5\r\n"


@pytest.mark.parametrize("leftover", ["corrupt", "other parameters"])
def test_a_corrupt_or_foreign_resume_state_is_ignored_and_training_starts_from_epoch_one(tmp_path, capsys, leftover):
    model, data, config, out_dir = tiny_run(tmp_path)
    out_dir.mkdir()
    state = resume.resume_path(out_dir)
    if leftover == "corrupt":
        state.write_bytes(b"PK\x03\x04 cut short by a full disk")
    else:
        other, _, other_config, _ = tiny_run(tmp_path, learning_rate=0.01)
        training.compile_model(other, other_config, 2)
        other.optimizer.build(other.trainable_variables)
        (out_dir / "history.csv").write_text("epoch,accuracy\n0,0.9\n")
        saving = resume.ResumeState(state, resume.resume_fingerprint(other, data, data, other_config),
                                      out_dir / "history.csv", None)
        saving.set_model(other)
        saving.on_epoch_end(0)
    history = training.fit(model, data, data, config, out_dir, live_plot=False)
    assert f"Ignoring {state}" in capsys.readouterr().out
    assert history["epoch"].tolist() == [0, 1] and history.attrs["resumed_from_epoch"] == 0
    assert not state.exists()


class Planted:
    """An object whose unpickling creates a file: what a booby-trapped resume state would hold."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_a_resume_state_holding_a_pickled_object_is_ignored_without_unpickling_it(tmp_path, capsys):
    model, data, config, out_dir = tiny_run(tmp_path)
    out_dir.mkdir()
    state, marker = resume.resume_path(out_dir), tmp_path / "unpickled"
    np.savez(state, meta=np.array("{}"), model_0=np.array([Planted(marker)], dtype=object))
    restoring = resume.ResumeState(state, resume.resume_fingerprint(model, data, data, config), out_dir / "history.csv",
                                   None)
    assert restoring.restore(model) == 0
    assert not marker.exists()
    assert capsys.readouterr().out == (f"Ignoring {state}: unreadable (Object arrays cannot be loaded when "
                                       "allow_pickle=False); training starts from epoch 1\n")


def test_a_run_killed_after_it_stopped_early_trains_no_more_and_keeps_its_best_weights(tmp_path):
    # batch 8: 64 images make the 8 steps an epoch needs, so `fit` trains with this very configuration (a lowered
    # batch size would be another configuration, and its resume state would be ignored as saved for other parameters)
    model, data, config, out_dir = tiny_run(tmp_path, epochs=5, patience=1, batch_size=8)
    out_dir.mkdir()
    training.compile_model(model, config, 2)
    model.optimizer.build(model.trainable_variables)
    stopper = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=1, restore_best_weights=True)
    stopper.wait, stopper.best, stopper.best_epoch, stopper.stopped_epoch = 1, 0.5, 1, 2
    stopper.best_weights = [np.full_like(w, 0.25) for w in model.get_weights()]
    model.stop_training = True  # EarlyStopping ended the run at epoch 3 of 5; the kill came before training returned
    rows = "epoch,accuracy,loss,val_accuracy,val_loss\r\n" + "".join(f"{e},0.5,1.0,0.5,1.0\r\n" for e in range(3))
    (out_dir / "history.csv").write_text(rows, newline="")
    saving = resume.ResumeState(resume.resume_path(out_dir), resume.resume_fingerprint(model, data, data, config),
                                  out_dir / "history.csv", stopper)
    saving.set_model(model)
    saving.on_epoch_end(2)

    fresh, _, _, _ = tiny_run(tmp_path, epochs=5, patience=1, batch_size=8)
    history = training.fit(fresh, data, data, config, out_dir, live_plot=False)
    assert history["epoch"].tolist() == [0, 1, 2] and history.attrs["epochs_this_run"] == 0
    assert all(np.all(w == 0.25) for w in fresh.get_weights())  # the best weights, not the last ones
    assert not resume.resume_path(out_dir).exists()


def test_patience_stops_training_once_validation_accuracy_has_not_improved_for_that_many_epochs(tmp_path):
    # A learning rate of 1e-12 leaves the weights as they were, so validation accuracy never improves on epoch 1's:
    # patience 2 stops after epochs 2 and 3 brought nothing, 3 epochs of the 6 asked for.
    model, data, config, out_dir = tiny_run(tmp_path, epochs=6, patience=2, optimizer="sgd", learning_rate=1e-12)
    out_dir.mkdir()
    history = training.fit(model, data, data, config, out_dir, live_plot=False)
    assert history["epoch"].tolist() == [0, 1, 2]
    assert history["val_accuracy"].nunique() == 1


class Killed(Exception):
    """Stands for a kill inside the process: raised after an epoch's resume state was saved."""


class KillAfterEpoch(keras.callbacks.Callback):
    """Raise `Killed` at the end of epoch `epoch` (0-based) of the `in_fit`-th `fit` it is given to (an ensemble's
    member); `fit` runs it after the resume state has been saved."""

    def __init__(self, epoch: int, in_fit: int = 0):
        super().__init__()
        self.epoch, self.in_fit, self.fits = epoch, in_fit, -1

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.fits += 1

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if (self.fits, epoch) == (self.in_fit, self.epoch):
            raise Killed(f"after epoch {epoch + 1}")


# The default model's layers (batch norm, dropout), augmentation and a one-cycle schedule: every kind of state a
# resumed run must carry over, on 48 drawn digits so that an in-process run takes a few seconds.
RESUMED = dict(GOOD, model="cnn_strong", epochs=3, batch_size=8, lr_schedule="one_cycle", rotation=10.0, zoom=0.1,
               shift=0.1, label_smoothing=0.1, restore_best_weights=True)


def resumable_data() -> tuple[Dataset, Dataset]:
    """48 training and 16 validation drawn digits."""
    data = digit_dataset(64, seed=5)
    return split.subset(data, np.arange(48)), split.subset(data, np.arange(48, 64))


def fit_fresh(out_dir: Path, train: Dataset, val: Dataset, config: TrainConfig, kill_after: int | None = None):
    """Build the configured model afresh (seeded) and fit it in `out_dir`; return (model, history)."""
    out_dir.mkdir(exist_ok=True)
    model = training.build(config, train.image_shape, train.num_classes)
    callbacks = [] if kill_after is None else [KillAfterEpoch(kill_after)]
    return model, training.fit(model, train, val, config, out_dir, live_plot=False, callbacks=callbacks)


def test_a_run_stopped_after_an_epoch_resumes_in_process_to_the_uninterrupted_weights_and_history(tmp_path):
    train, val = resumable_data()
    kill_after = 1  # after epoch 2 of 3
    config = TrainConfig(**RESUMED)
    reference, _ = fit_fresh(tmp_path / "reference", train, val, config)
    out_dir = tmp_path / "train"
    with pytest.raises(Killed):
        fit_fresh(out_dir, train, val, config, kill_after)
    state = resume.resume_path(out_dir)
    assert state.is_file() and (out_dir / "history.csv").is_file()
    resumed, history = fit_fresh(out_dir, train, val, config)
    assert history.attrs["resumed_from_epoch"] == kill_after + 1
    assert history.attrs["epochs_this_run"] == config.epochs - kill_after - 1
    assert history["epoch"].tolist() == list(range(config.epochs))
    assert (out_dir / "history.csv").read_bytes() == (tmp_path / "reference" / "history.csv").read_bytes()
    names = [weight.path for weight in reference.weights]  # layer names count up within a process: compare in order
    assert len(resumed.weights) == len(names) and sum("moving_mean" in n for n in names) == 5
    differ = [n for n, a, b in zip(names, reference.get_weights(), resumed.get_weights()) if not np.array_equal(a, b)]
    assert differ == []
    assert not state.exists() and not state.with_name(state.name + ".partial").exists()


MLP_RESUMED = {**RESUMED, "model": "mlp", "epochs": 2, "rotation": 0.0, "zoom": 0.0, "shift": 0.0}


@pytest.fixture(scope="module")
def mlp_killed(tmp_path_factory) -> Path:
    """The resume state an MLP run of MLP_RESUMED left when it was killed after its first epoch."""
    out_dir = tmp_path_factory.mktemp("killed") / "train"
    with pytest.raises(Killed):
        fit_fresh(out_dir, *resumable_data(), TrainConfig(**MLP_RESUMED), kill_after=0)
    return resume.resume_path(out_dir)


@pytest.mark.parametrize("change", ["seed", "learning_rate", "a training label", "a training pixel", "a validation label",
                                    "a validation pixel"])
def test_a_resume_state_saved_for_other_data_or_parameters_is_ignored(tmp_path, capsys, change, mlp_killed):
    train, val = resumable_data()
    config = TrainConfig(**MLP_RESUMED)
    out_dir = tmp_path / "train"
    shutil.copy(mlp_killed, resume.resume_path(out_dir))  # the state the same run left: restored as it is
    parts = {"train": train, "val": val}
    part = "val" if "validation" in change else "train"
    data = parts[part]
    if "label" in change:
        labels = data.labels.copy()
        labels[0] = (labels[0] + 1) % 10
        parts[part] = Dataset(data.images, labels, data.class_names)
    elif "pixel" in change:
        pixels = data.images.copy()
        pixels[0, 0, 0, 0] ^= 1
        parts[part] = Dataset(pixels, data.labels, data.class_names)
    other = {"seed": {"seed": 2}, "learning_rate": {"learning_rate": 0.002}}.get(change, {})
    capsys.readouterr()
    _, history = fit_fresh(out_dir, parts["train"], parts["val"], TrainConfig(**{**config.__dict__, **other}))
    assert f"Ignoring {resume.resume_path(out_dir)}: saved for other parameters, data or versions" in capsys.readouterr().out
    assert history.attrs["resumed_from_epoch"] == 0 and history["epoch"].tolist() == [0, 1]


def test_the_shared_killed_state_resumes_the_run_that_left_it(tmp_path, capsys, mlp_killed):
    """The state the test above changes one thing against: unchanged, the run resumes from it."""
    out_dir = tmp_path / "train"
    shutil.copy(mlp_killed, resume.resume_path(out_dir))
    _, history = fit_fresh(out_dir, *resumable_data(), TrainConfig(**MLP_RESUMED))
    assert f"Resuming after epoch 1 from {resume.resume_path(out_dir)}" in capsys.readouterr().out
    assert history.attrs["resumed_from_epoch"] == 1 and history["epoch"].tolist() == [0, 1]


def test_resume_states_sit_beside_the_output_folder_one_per_ensemble_member(tmp_path):
    out_dir = tmp_path / "outputs" / "train"
    assert resume.resume_path(out_dir) == tmp_path / "outputs" / "train.resume.npz"  # DVC empties train/ itself
    assert resume.resume_path(out_dir, 0) == tmp_path / "outputs" / "train.member0.resume.npz"
    assert resume.resume_path(str(out_dir), 2) == tmp_path / "outputs" / "train.member2.resume.npz"


def test_an_ensemble_members_state_records_the_members_own_seed():
    model, data, config, _ = tiny_run(Path("unused"))  # seed 1
    assert resume.resume_fingerprint(model, data, data, config)["seed"] == 1
    assert resume.resume_fingerprint(model, data, data, config, seed=3)["seed"] == 3  # member 2 trains with seed 1 + 2


def test_a_stopper_without_a_best_value_yet_is_saved_and_restored_as_such(tmp_path):
    model, data, config, out_dir = compiled_tiny_run(tmp_path)
    stopper = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=3)
    stopper.on_train_begin()  # no epoch has reported val_accuracy
    (out_dir / "history.csv").write_text("epoch\n")
    fingerprint = resume.resume_fingerprint(model, data, data, config)
    saving = resume.ResumeState(resume.resume_path(out_dir), fingerprint, out_dir / "history.csv", stopper)
    saving.set_model(model)
    saving.on_epoch_end(0)
    fresh_stopper = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=3)
    fresh_stopper.best = 0.9
    restoring = resume.ResumeState(resume.resume_path(out_dir), fingerprint, out_dir / "history.csv", fresh_stopper)
    assert restoring.restore(model) == 1
    restoring.on_train_begin()
    assert fresh_stopper.best is None


def test_a_state_is_written_beside_the_last_one_and_renamed_over_it(tmp_path):
    """Written whole to STATE.partial first: a failed rename (here a folder in the way; a kill, in life) leaves the
    last good state in place and the new one under the name `remove` cleans up."""
    model, data, config, out_dir = compiled_tiny_run(tmp_path)
    (out_dir / "history.csv").write_text("epoch\n")
    path = resume.resume_path(out_dir)
    path.mkdir()  # the rename over it fails
    saving = resume.ResumeState(path, {}, out_dir / "history.csv", None)
    saving.set_model(model)
    with pytest.raises(OSError):
        saving.on_epoch_end(0)
    partial = path.with_name(path.name + ".partial")
    with np.load(partial, allow_pickle=False) as written:
        assert json.loads(str(written["meta"]))["epochs_done"] == 1
    path.rmdir()
    saving.remove()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train"]


def test_removing_a_resume_state_removes_a_half_written_one_too_and_may_be_done_twice(tmp_path):
    path = resume.resume_path(tmp_path / "train")
    partial = path.with_name(path.name + ".partial")  # what a kill while saving leaves
    path.write_bytes(b"state")
    partial.write_bytes(b"half")
    state = resume.ResumeState(path, {}, tmp_path / "history.csv", None)
    state.remove()
    assert not path.exists() and not partial.exists()
    state.remove()  # nothing left: no error


# --- train: members, their seeds and what it adds up ------------------------------------------------------------
# Blank images with 6 of each class: a network sees one input, so it answers one class for all, and its validation
# accuracy is exactly chance (10%), which `train` warns about.
PLAIN_MLP = dict(GOOD, model="mlp", epochs=2, learning_rate=0.01, seed=3)


def blank(count: int) -> Dataset:
    return Dataset(np.zeros((count, 28, 28, 1), np.uint8), np.arange(count, dtype=np.int64) % 10, tuple("0123456789"))


class Recorder(keras.callbacks.Callback):
    """Each fit's initial weights, and the files in `folder` and the optimizer steps taken at its end."""

    def __init__(self, folder: Path):
        super().__init__()
        self.folder, self.initial, self.files, self.steps = folder, [], [], []

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.initial.append(self.model.get_weights())

    def on_train_end(self, logs: dict | None = None) -> None:
        self.files.append(sorted(path.name for path in self.folder.iterdir()))
        self.steps.append(int(self.model.optimizer.iterations.numpy()))


def test_an_ensemble_trains_each_member_from_its_seed_and_totals_their_time_images_and_warnings(tmp_path, capsys,
                                                                                                  monkeypatch):
    """Without resume states, too: none to clean up."""
    config = TrainConfig(**dict(PLAIN_MLP, ensemble_size=2))
    train, val, recorder = blank(60), blank(20), Recorder(tmp_path)
    clock = iter([10.0, 12.5, 20.0, 21.25])  # each member's fit starts and ends
    monkeypatch.setattr(training, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, history = training.train(train, val, config, tmp_path, live_plot=False, resume=False, callbacks=[recorder])
    for member, weights in enumerate(recorder.initial):  # seed + member, each
        expected = training.build(config, train.image_shape, 10, seed=3 + member).get_weights()
        assert same_weights(weights, expected)
    assert history.index.tolist() == [0, 1, 2, 3] and history["member"].tolist() == [0, 0, 1, 1]
    # each member logs to a file of its own while the ensemble trains; then one history.csv holds them all
    assert recorder.files == [["history.member0.csv"], ["history.member0.csv", "history.member1.csv"]]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["history.csv"]
    assert list(pd.read_csv(tmp_path / "history.csv").columns) == list(history.columns)  # no index column
    assert history.attrs["fit_seconds"] == 2.5 + 1.25  # the members' fit times, as the clock gave them
    assert history.attrs["images_seen"] == 2 * 60 * 2  # members x training images (60 each) x epochs
    assert history.attrs["batch_sizes"] == [8, 8]  # 60 images: batches of 8 make the 8 steps an epoch needs
    chance = ("validation accuracy never rose above 10.0%, near chance (10.0% for 10 classes): the model learned "
              "nothing that carries over.")
    assert [alert[:len(chance) + 10] for alert in history.attrs["warnings"]] == [f"member {k}: {chance}" for k in (0, 1)]
    mine = [warning for warning in caught if str(warning.message).startswith("member ")]
    assert [str(warning.message) for warning in mine] == history.attrs["warnings"]
    where = {warning.filename for warning in mine}  # pointed at the caller of train: never inside the library
    assert not any(Path(name).is_relative_to(Path(training.__file__).parent) for name in where), where
    if "mutmut" not in sys.modules:  # (mutation testing wraps train in a trampoline: a frame more)
        assert where == {__file__}
    assert [warning for warning in caught if issubclass(warning.category, UserWarning)] == mine  # and no other
    lowered, printed = "batch_size 32 -> 8: 60 training images, at least 8 steps an epoch", capsys.readouterr().out
    assert [line for line in printed.splitlines() if line.startswith("batch_size")] == [lowered] * 2
    epoch_lines = [line for line in printed.splitlines() if line.startswith("8/8")]  # one plain line an epoch
    assert len(epoch_lines) == 2 * 2 and all(line.startswith("8/8 - ") for line in epoch_lines), epoch_lines
    assert recorder.steps == [2 * 8, 2 * 8]  # 8 steps an epoch, as said


def test_train_by_default_resumes_a_killed_run_draws_live_plots_and_keeps_a_finished_member(tmp_path):
    single, out = TrainConfig(**PLAIN_MLP), tmp_path / "single"
    out.mkdir()
    with pytest.raises(Killed):
        training.train(blank(60), blank(20), single, out, live_plot=False, callbacks=[KillAfterEpoch(0)])
    plt.close("all")
    with warnings.catch_warnings(record=True):
        _, history = training.train(blank(60), blank(20), single, out)  # resume and live plots left to the defaults
    assert len(plt.get_fignums()) == 1  # the live plot of the one epoch left
    plt.close("all")
    assert (history.attrs["resumed_from_epoch"], history.attrs["epochs_this_run"]) == (1, 1)
    assert "member" not in history and history.index.tolist() == [0, 1]
    assert [alert.split(",")[0] for alert in history.attrs["warnings"]] == ["validation accuracy never rose above 10.0%"]

    ensemble, out = TrainConfig(**dict(PLAIN_MLP, ensemble_size=2)), tmp_path / "ensemble"
    out.mkdir()
    with pytest.raises(Killed):  # in member 1's first epoch: member 0 has finished
        training.train(blank(60), blank(20), ensemble, out, live_plot=False, callbacks=[KillAfterEpoch(0, in_fit=1)])
    for member in (0, 1):  # each member's state: its own seed, and the early-stopping state that restores best weights
        with np.load(resume.resume_path(out, member), allow_pickle=False) as state:
            meta = json.loads(str(state["meta"]))
            assert meta["fingerprint"]["seed"] == 3 + member and meta["early_stopping"]["best"] == pytest.approx(0.1)
            assert "best_0" in state.files
    with warnings.catch_warnings(record=True):
        _, history = training.train(blank(60), blank(20), ensemble, out, live_plot=False)
    assert (history.attrs["resumed_from_epoch"], history.attrs["epochs_this_run"]) == (2 + 1, 1)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ensemble", "single"]  # no state left beside


def test_fit_draws_a_live_plot_each_epoch_by_default(tmp_path):
    """Here without early stopping, too (no patience, no best weights to restore): no stopper."""
    model, data, config, out_dir = tiny_run(tmp_path, restore_best_weights=False)
    out_dir.mkdir()
    plt.close("all")
    training.fit(model, data, data, config, out_dir, resume=False)
    assert len(plt.get_fignums()) == config.epochs == 2
    plt.close("all")


def test_ensemble_member_k_trains_as_a_single_model_of_seed_plus_k_would(tmp_path):
    """Initial weights and batch order both from seed + k (on the member's own data); the member's resume
    fingerprint is checked in the killed-ensemble test above."""
    data = digit_dataset(64, seed=5)
    member = TrainConfig(**dict(PLAIN_MLP, ensemble_size=2))
    alone = TrainConfig(**dict(PLAIN_MLP, seed=4))
    weights = []
    for config, k, out in ((member, 1, tmp_path / "member"), (alone, None, tmp_path / "alone")):
        out.mkdir()
        model = training.build(config, data.image_shape, 10, seed=4)
        training.fit(model, data, data, config, out, member=k, live_plot=False, resume=False)
        weights.append(model.get_weights())
    assert same_weights(*weights)


def test_a_run_traces_its_training_and_validation_steps_once(tmp_path, monkeypatch):
    # TensorFlow traces a step again when the first trace made variables (a metric or optimizer slots built lazily)
    traced = {"train": 0, "test": 0}
    for step in traced:
        original = getattr(keras.Model, f"{step}_step")

        def counted(self, data, step=step, original=original):
            traced[step] += 1  # Python runs only while TensorFlow traces the step
            return original(self, data)

        monkeypatch.setattr(keras.Model, f"{step}_step", counted)
    data = digit_dataset(120, seed=3)
    train, val = split.subset(data, np.arange(90)), split.subset(data, np.arange(90, 120))
    history = training.fit(training.build(TrainConfig(**{**GOOD, "epochs": 2}), (28, 28, 1), 10), train, val,
                           TrainConfig(**{**GOOD, "epochs": 2}), tmp_path, live_plot=False, resume=False)
    assert traced == {"train": 1, "test": 1} and len(history) == 2
    assert {"accuracy", "val_accuracy"} <= set(history.columns)
