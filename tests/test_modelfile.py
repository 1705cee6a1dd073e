"""Model files: the recorded SHA-256 must match, Keras safe mode only, and crafted files that would run code refused."""

from __future__ import annotations

import copy
import json
import re
import shutil
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import REPO
from mnist_lib import evaluation, modelfile, models
from mnist_lib.checksums import sha256_file
from mnist_lib.modelfile import ModelFileError, load_model, recorded_sha256, save_model, sidecar_path

IMAGES = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 1)).astype(np.uint8)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, str, keras.Model]:
    """A small registry model saved by `save_model` (a folder of its own), the digest it returned, and the model."""
    folder = tmp_path_factory.mktemp("model")
    model = models.build_model("mlp", (8, 8, 1), 3)
    return folder / "model.keras", save_model(model, folder / "model.keras"), model


@pytest.fixture
def model_copy(saved, tmp_path) -> Path:
    """A copy of the saved model and its record, free to damage."""
    path, _, _ = saved
    shutil.copy2(path, tmp_path / "model.keras")
    shutil.copy2(sidecar_path(path), sidecar_path(tmp_path / "model.keras"))
    return tmp_path / "model.keras"


def craft(source: Path, target: Path, change_config) -> Path:
    """Copy the .keras zip at `source` to `target` with its config.json edited by hand."""
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = change_config(copy.deepcopy(json.loads(members["config.json"])))
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, json.dumps(config) if name == "config.json" else data)
    return target


def test_save_records_the_sha256_of_the_exact_file_written(saved):
    path, digest, _ = saved
    assert digest == sha256_file(path) == recorded_sha256(path)
    assert sidecar_path(path).read_text() == f"{digest}  model.keras\n"  # `sha256sum -c` format
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.keras", "model.keras.sha256"]  # no partial files


def test_a_recorded_model_loads_and_predicts_like_the_original(saved):
    path, _, model = saved
    assert np.array_equal(evaluation.load_model(path).predict(IMAGES, verbose=0), model.predict(IMAGES, verbose=0))


def test_a_tampered_model_is_refused_naming_the_file_and_what_to_do(model_copy):
    data = bytearray(model_copy.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, inside the weights
    model_copy.write_bytes(bytes(data))
    with pytest.raises(ModelFileError) as caught:
        evaluation.load_model(model_copy)
    message = str(caught.value)
    assert str(model_copy) in message and "differs from" in message and "model.keras.sha256" in message
    assert "dvc repro train" in message


def test_a_swapped_model_is_refused(model_copy, tmp_path):
    other = tmp_path / "other" / "model.keras"
    other.parent.mkdir()
    save_model(models.build_model("mlp", (8, 8, 1), 3), other)  # a valid model with a record of its own
    shutil.copy2(other, model_copy)
    with pytest.raises(ModelFileError, match="changed or swapped after training"):
        load_model(model_copy)


def test_a_model_without_a_record_is_refused_unless_the_caller_gives_its_hash(model_copy):
    digest = recorded_sha256(model_copy)
    sidecar_path(model_copy).unlink()
    with pytest.raises(ModelFileError, match=r"no recorded SHA-256 \(model.keras.sha256 is missing\).*expected_sha256"):
        evaluation.load_model(model_copy)
    assert load_model(model_copy, expected_sha256=digest).output_shape == (None, 3)
    with pytest.raises(ModelFileError, match="differs from the 0{64} given"):
        load_model(model_copy, expected_sha256="0" * 64)


def test_a_malformed_record_is_refused(model_copy):
    sidecar_path(model_copy).write_text("not a hash\n")
    with pytest.raises(ModelFileError, match="not a SHA-256 record"):
        load_model(model_copy)


def test_a_missing_model_says_which_stage_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the train stage first"):
        load_model(tmp_path / "model.keras")


def test_a_file_that_is_not_a_keras_archive_is_refused_clearly(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"PK\x03\x04 truncated, not a zip")
    with pytest.raises(ModelFileError, match=re.escape(str(path)) + ": Keras refused to load it"):
        load_model(path, expected_sha256=sha256_file(path))


def test_a_lambda_layer_is_refused_even_with_the_right_hash(tmp_path):
    inputs = keras.Input((8, 8, 1))
    doubled = keras.layers.Lambda(lambda x: x * 2)(inputs)
    path = tmp_path / "lambda.keras"
    digest = save_model(keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(doubled))), path)
    with pytest.raises(ModelFileError) as caught:
        load_model(path, expected_sha256=digest)
    message = str(caught.value)
    assert str(path) in message and "Lambda" in message and "safe mode" in message
    assert "safe_mode=" not in message and "enable_unsafe" not in message  # Keras' advice to load unsafely is cut
    assert re.fullmatch(re.escape(f"{path}: Keras refused to load it in safe mode (ValueError: ") + r"[^\n]{1,300}"
                        + re.escape("). Models of this repo hold no code (no Lambda layers, only Keras objects): rebuild "
                                    "the model from mnist_lib.models and retrain (`dvc repro train`); never load it with "
                                    "unsafe deserialization"), message), message


def test_the_reason_is_the_first_sentence_of_the_nested_error_cut_at_300_characters():
    assert modelfile._reason(ValueError("Outer. Exception encountered: Inner part. Then advice to load unsafely\nmore")) == "Inner part"
    assert modelfile._reason(ValueError("Just this. And that")) == "Just this"
    assert modelfile._reason(ValueError("x" * 400)) == "x" * 300
    assert modelfile._reason(ValueError("")) == "no message"


def test_the_refusal_messages_say_what_to_do(tmp_path):
    with pytest.raises(ValueError) as caught:
        save_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), tmp_path / "model.h5")
    assert str(caught.value) == f"{tmp_path / 'model.h5'}: a model file must end in .keras"
    (tmp_path / "m.keras").write_bytes(b"x")
    with pytest.raises(ModelFileError) as caught:
        recorded_sha256(tmp_path / "m.keras")
    assert str(caught.value) == (
        f"{tmp_path / 'm.keras'}: no recorded SHA-256 (m.keras.sha256 is missing), so the file cannot be checked and is "
        "refused. Models written by the train stage carry one: retrain it (`dvc repro train`) or restore the tracked one "
        "(`dvc checkout outputs/train`). If you know where this file came from, pass its hash explicitly: "
        "modelfile.load_model(path, expected_sha256=...)")


def test_a_layer_that_loads_a_savedmodel_from_outside_the_file_is_refused_and_its_graph_never_runs(tmp_path):
    # A TFSMLayer runs the TensorFlow graph of a SavedModel elsewhere on disk: any op, here one that writes `marker`.
    # Keras' own checks let it through (it is a Keras layer); only safe mode refuses it (the hash is the right one).
    import tensorflow as tf

    marker = tmp_path / "marker"

    class Writer(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((None, 3), tf.float32)])
        def serve(self, x):
            tf.io.write_file(str(marker), "ran")
            return x

    tf.saved_model.save(Writer(), str(tmp_path / "outside"))
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.TFSMLayer(str(tmp_path / "outside"), call_endpoint="serve")(inputs))
    model.predict(np.zeros((1, 3)), verbose=0)
    assert marker.exists()  # the graph is live code
    marker.unlink()
    path = tmp_path / "outside.keras"
    digest = save_model(model, path)
    with pytest.raises(ModelFileError, match=re.escape(str(path)) + ": Keras refused to load it in safe mode.*TFSMLayer"):
        load_model(path, expected_sha256=digest)
    assert not marker.exists()


def popen_layer(marker: Path):
    def change(config: dict) -> dict:
        config["config"]["layers"][2].update(
            module="subprocess", class_name="Popen", registered_name=None, config={"args": ["touch", str(marker)]})
        return config
    return change


def os_system_activation(marker: Path):
    def change(config: dict) -> dict:
        dense = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense")
        dense["config"]["activation"] = {"module": "os", "class_name": "function", "config": "system", "registered_name": "function"}
        return config
    return change


def builtins_eval_model(marker: Path):
    def change(config: dict) -> dict:
        return {"module": "builtins", "class_name": "eval", "config": f"open({str(marker)!r}, 'w')", "registered_name": None}
    return change


def keras_get_file_layer(marker: Path):  # the shape of CVE-2025-8747: a Keras utility that writes files
    def change(config: dict) -> dict:
        config["config"]["layers"][2].update(module="keras.utils", class_name="get_file", registered_name=None, config={
            "fname": marker.name, "origin": f"file://{REPO / 'README.md'}", "cache_dir": str(marker.parent), "cache_subdir": "."})
        return config
    return change


@pytest.mark.parametrize("change", [popen_layer, os_system_activation, builtins_eval_model, keras_get_file_layer],
                         ids=lambda change: change.__name__)
def test_a_config_naming_code_outside_keras_is_refused_and_nothing_runs(saved, tmp_path, change):
    path, _, _ = saved
    marker = tmp_path / "marker"
    crafted = craft(path, tmp_path / "crafted.keras", change(marker))
    with pytest.raises(ModelFileError, match=re.escape(str(crafted)) + ": Keras refused to load it in safe mode"):
        load_model(crafted, expected_sha256=sha256_file(crafted))  # the hash is right: only safe mode stands in the way
    assert not marker.exists()


def test_no_code_loads_a_model_unsafely_or_around_the_hash_check():
    unsafe = re.compile(r"safe_mode\s*=\s*False|enable_unsafe_deserializ(ation)")
    direct_load = re.compile(r"keras\.(saving|models)\.load_model\b|from keras\.(saving|models) import[^\n]*\bload_model\b")
    sources = [p for p in REPO.rglob("*.py") if not {".venv", "outputs", "build"} & set(p.relative_to(REPO).parts)]
    assert len(sources) > 20
    for source in sources:
        text = source.read_text()
        assert not unsafe.search(text), f"{source.relative_to(REPO)} loads models unsafely"
        if source != REPO / "mnist_lib" / "modelfile.py":
            assert not direct_load.search(text), f"{source.relative_to(REPO)}: load models with mnist_lib.modelfile.load_model"
