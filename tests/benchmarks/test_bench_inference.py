"""The inference benchmark runs end to end: every requested model and batch size timed on 10,000 images, and the
latency of `mnist predict` on one real PNG file; both land in the section's JSON."""

from __future__ import annotations

import json

import bench_inference


def test_benchmark_times_each_model_and_batch_size_on_ten_thousand_images(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench_inference.main(["--models", "mlp", "--batch-size", "500", "--batch-size", "2000", "--repeats", "1",
                                 "--split-dir", str(tmp_path / "no_split"), "--json", str(out), "--no-predict",
                                 "--out", str(tmp_path)]) == 0
    written = json.loads(out.read_text())
    assert written["images"] == "random uint8 images"
    assert [(r["model"], r["batch_size"], r["images"]) for r in written["results"]] == [("mlp", 500, 10_000), ("mlp", 2000, 10_000)]
    assert all(r["images_per_second"] > 0 for r in written["results"])
    assert capsys.readouterr().out.count("images/s") == 2
    section = json.loads((tmp_path / "inference.json").read_text())
    assert len(section["rows"]) == 2 and section["rows"][1][0].startswith("mlp (")
    assert section["rows"][1][0].endswith("parameters), batch 2,000, 10,000 images") and section["rows"][1][2] > 0


def test_prediction_latency_of_one_png_through_the_mnist_command_and_in_process(tmp_path):
    assert bench_inference.main(["--models", "mlp", "--batch-size", "1000", "--repeats", "1", "--predict-repeats", "1",
                                 "--split-dir", str(tmp_path / "no_split"), "--out", str(tmp_path)]) == 0
    section = json.loads((tmp_path / "inference.json").read_text())
    assert section["section"] == "inference" and section["columns"] == ["what", "seconds", "images/s"]
    latency = {row[0].split(",")[0]: row for row in section["rows"][1:]}
    assert len(latency) == 4 and all(row[1] > 0 for row in latency.values())
    assert latency["`mnist predict MODEL digit.png`"][1] > latency["predict.predict_files on one PNG"][1]
    assert "untrained cnn_small" in section["notes"][-1] or "model.keras from train/" in section["notes"][-1]
    assert section["command"].startswith("python tests/benchmarks/bench_inference.py --models mlp")
