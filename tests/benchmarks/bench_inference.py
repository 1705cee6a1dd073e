"""Inference speed of every registry model: images per second over the 10,000 MNIST test images on this machine.

    python tests/benchmarks/bench_inference.py [--batch-size 1000 ...] [--models cnn_small ...] [--json FILE]

Weights are untrained (speed does not depend on them). The images are the test split from `outputs/split` when the
split stage has run, else 10,000 random 28x28 images of the same shape. Each figure is the best of `--repeats`
timed passes after one untimed warm-up batch; other load on the machine lowers it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from mnist_lib import evaluation, models, split, training  # noqa: E402

TEST_IMAGES = 10_000


def load_images(split_dir: Path) -> tuple[np.ndarray, str]:
    """The 10,000 test images of the split stage, or random images of MNIST's shape when there are none."""
    if (split_dir / "test.npz").is_file():
        images = split.load_split(split_dir, "test").images
        if images.shape[1:] == (28, 28, 1):
            return images[:TEST_IMAGES], f"{split_dir}/test.npz"
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (TEST_IMAGES, 28, 28, 1), dtype=np.uint8), "random uint8 images"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, action="append", help="repeatable (default: 1000, as evaluate)")
    parser.add_argument("--models", nargs="+", default=sorted(models.MODELS), help="registry names (default: all)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per figure, the best is kept")
    parser.add_argument("--split-dir", type=Path, default=Path("outputs/split"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    images, origin = load_images(args.split_dir)
    env = training.environment()
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
