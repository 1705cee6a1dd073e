"""The inference benchmark runs end to end: every requested model and batch size timed on 10,000 images."""

from __future__ import annotations

import json

import bench_inference


def test_benchmark_times_each_model_and_batch_size_on_ten_thousand_images(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench_inference.main(["--models", "mlp", "--batch-size", "500", "--batch-size", "2000", "--repeats", "1",
                                 "--split-dir", str(tmp_path / "no_split"), "--json", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["images"] == "random uint8 images"
    assert [(r["model"], r["batch_size"], r["images"]) for r in written["results"]] == [("mlp", 500, 10_000), ("mlp", 2000, 10_000)]
    assert all(r["images_per_second"] > 0 for r in written["results"])
    assert capsys.readouterr().out.count("images/s") == 2
