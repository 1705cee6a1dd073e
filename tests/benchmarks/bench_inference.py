"""Inference speed: images per second of every registry model over the 10,000 MNIST test images on this machine,
and the latency of `mnist predict` on one PNG file.

    python tests/benchmarks/bench_inference.py [--batch-size 1000 ...] [--models cnn_small ...] [--json FILE]

Weights are untrained (speed does not depend on them). The images are the test split from `outputs/split` when the
split stage has run, else 10,000 random 28x28 images of the same shape. Each figure is the best of `--repeats`
timed passes after one untimed warm-up batch; other load on the machine lowers it. The prediction latency uses
outputs/train/model.keras when training has run (else an untrained cnn_small saved with its SHA-256 record) and the
first test image saved as PNG: the whole `mnist predict` command (best of --predict-repeats) against
`predict.predict_files` in a process that already holds the model. The section goes to outputs/bench/inference.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import benchlib  # noqa: E402
from mnist_lib import evaluation, modelfile, models, predict, runtime, split, timing  # noqa: E402

SECTION = {"section": "inference", "title": "Inference", "order": 60}
TEST_IMAGES = 10_000
TRAINED_MODEL = benchlib.REPO / "outputs" / "train" / "model.keras"


def load_images(split_dir: Path) -> tuple[np.ndarray, str]:
    """The 10,000 test images of the split stage, or random images of MNIST's shape when there are none."""
    if (split_dir / "test.npz").is_file():
        images = split.load_split(split_dir, "test").images
        if images.shape[1:] == (28, 28, 1):
            return images[:TEST_IMAGES], f"{split_dir}/test.npz"
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (TEST_IMAGES, 28, 28, 1), dtype=np.uint8), "random uint8 images"


def predict_latency(image: np.ndarray, work: Path, model_file: Path | None, repeats: int) -> tuple[list[list], list[str]]:
    """Rows for one PNG file: the whole `mnist predict` command, the checked model load, predict_files and a direct
    model call in a process that holds the model; and notes saying which model and image."""
    if model_file is None:
        model_file = work / "model.keras"
        modelfile.save_model(models.build_model("cnn_small", (28, 28, 1), 10), model_file)
        which = "an untrained cnn_small saved with modelfile.save_model (outputs/train/model.keras does not exist)"
    else:
        which = f"{model_file.name} from {model_file.parent.name}/"
    png = work / "digit.png"
    Image.fromarray(image[:, :, 0]).save(png)
    command = benchlib.timed_command(["mnist", "predict", str(model_file), str(png)], repeats, timeout=300)
    load = timing.timed(lambda: evaluation.load_model(model_file), repeats)
    model = load.result
    predict.predict_files(model, [png])  # the first call traces the predict function
    in_process = timing.timed(lambda: predict.predict_files(model, [png]), max(10, repeats))
    prepared = predict.load_image(png, tuple(model.input_shape[1:]))[0][np.newaxis].astype(np.float32)
    model(prepared, training=False)
    direct = timing.timed(lambda: model(prepared, training=False), max(10, repeats))
    print(f"mnist predict on one PNG: {command.seconds:.2f} s whole command; in-process {in_process.best * 1000:.1f} ms",
          flush=True)
    rows = [
        ["`mnist predict MODEL digit.png`, the whole command (start, imports, checked load, predict)", command.seconds, None],
        ["model load with its SHA-256 check (evaluation.load_model), in-process", load.best, None],
        ["predict.predict_files on one PNG, model already loaded", in_process.best, 1 / in_process.best],
        ["the same prepared image through model(x) (a direct call, no Keras predict loop)", direct.best, 1 / direct.best],
    ]
    notes = [f"Prediction latency: {which}; the image is the first test image written as a 28x28 PNG. The whole "
             f"command is the best of {repeats} runs (peak RSS {command.peak_rss_mib:,.0f} MiB); in-process figures are "
             f"the best of {max(10, repeats)} calls after one untimed call."]
    return rows, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, action="append", help="repeatable (default: 1000, as evaluate)")
    parser.add_argument("--models", nargs="+", default=sorted(models.MODELS), help="registry names (default: all)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per figure, the best is kept")
    parser.add_argument("--split-dir", type=Path, default=Path("outputs/split"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--model-file", type=Path, help="model for the latency (default: outputs/train/model.keras if any)")
    parser.add_argument("--predict-repeats", type=int, default=3, help="runs of `mnist predict`, the best is kept")
    parser.add_argument("--no-predict", action="store_true", help="skip the one-image prediction latency")
    parser.add_argument("--out", type=Path, help="where the section's JSON goes (default: outputs/bench)")
    args = parser.parse_args(argv)

    images, origin = load_images(args.split_dir)
    env = runtime.environment()
    print(f"{len(images):,} images from {origin}; TensorFlow {env['tensorflow']}, {env['cpu_count']} CPU(s), "
          f"devices {', '.join(env['devices'])}")
    results = []
    for name in args.models:
        net = models.build_model(name, images.shape[1:], 10)
        for batch_size in args.batch_size or [1000]:
            figures = evaluation.throughput(net, images, batch_size, args.repeats)
            results.append({"model": name, "parameters": net.count_params(), **figures})
            print(f"{name:>11}  {net.count_params():>9,} parameters  batch {batch_size:>5}  "
                  f"{figures['images_per_second']:>10,.0f} images/s  ({figures['seconds']:.2f} s)", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"images": origin, "environment": env, "results": results}, indent=2) + "\n")

    rows = [[f"{r['model']} ({r['parameters']:,} parameters), batch {r['batch_size']:,}, {r['images']:,} images",
             r["seconds"], r["images_per_second"]] for r in results]
    notes = [f"Throughput: model.predict over {len(images):,} images from {origin}, untrained weights, best of "
             f"{args.repeats} passes after one untimed warm-up batch (evaluation.throughput)."]
    if not args.no_predict:
        model_file = args.model_file or (TRAINED_MODEL if modelfile.sidecar_path(TRAINED_MODEL).is_file() else None)
        with tempfile.TemporaryDirectory(prefix="bench-predict-") as work:
            more_rows, more_notes = predict_latency(images[0], Path(work), model_file, args.predict_repeats)
        rows, notes = rows + more_rows, notes + more_notes
    benchlib.write_section({
        **SECTION, "command": benchlib.command_line(__file__, argv), "columns": ["what", "seconds", "images/s"],
        "rows": [[label, round(seconds, 4), None if rate is None else round(rate, 1)] for label, seconds, rate in rows],
        "notes": notes, "targets": [],
    }, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
