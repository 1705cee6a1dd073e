"""Where a training step's time goes on a CPU: oneDNN's own log (ONEDNN_VERBOSE=1) of every primitive it runs during
20 steps of the default recipe's model, summed by kind and kernel, against the steps' wall time. What oneDNN does not
run (batch norm, activations, casts, the optimizer, the input pipeline, TensorFlow's own overhead) is the rest.

    python tests/benchmarks/profile_onednn.py [--precision float32|mixed] [--model cnn_strong] [--split-dir outputs/split]

The kernel names say which instructions oneDNN chose (avx512_core, or ..._amx when bfloat16 runs on AMX tiles).
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys

STEPS, BATCH = 20, 128

CHILD = """
import os, time
import numpy as np
import keras
from mnist_lib import batches, split, training
from mnist_lib.recipe import TrainConfig
train = split.load_split({split_dir!r}, "train")
part = split.subset(train, np.arange({images}))
config = TrainConfig(model={model!r}, seed=1, tta=False, precision={precision!r}, batch_size={batch})
model = training.build(config, part.image_shape, part.num_classes)
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1))
data = batches.training_batches(part, config, 0)
model.fit(data, steps_per_epoch={steps}, epochs=1, verbose=0)  # tracing and first-call set-up, not measured
print("PROFILE-START", flush=True)
started = time.perf_counter()
model.fit(data, steps_per_epoch={steps}, epochs=1, verbose=0)
print("PROFILE-END", time.perf_counter() - started, flush=True)
"""


def profile(model: str, precision: str, split_dir: str, steps: int = STEPS, batch: int = BATCH) -> tuple[float, collections.Counter]:
    """Wall seconds of `steps` training steps of `batch` images and oneDNN's milliseconds per (primitive,
    propagation, kernel) during them."""
    code = CHILD.format(split_dir=split_dir, images=steps * batch, model=model, precision=precision, batch=batch,
                        steps=steps)
    env = dict(os.environ, ONEDNN_VERBOSE="1", TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    lines = done.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("PROFILE-START"))
    end = next(i for i, line in enumerate(lines) if line.startswith("PROFILE-END"))
    times: collections.Counter = collections.Counter()
    for line in lines[start:end]:
        fields = line.split(",")
        # onednn_verbose,[timestamp,]primitive,exec,cpu,<kind>,<kernel>,<propagation>,...,<milliseconds>
        if line.startswith("onednn_verbose") and "exec" in fields:
            at = fields.index("exec")
            times[(fields[at + 2], fields[at + 4], fields[at + 3])] += float(fields[-1])
    return float(lines[end].split()[1]), times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed"])
    parser.add_argument("--model", default="cnn_strong")
    parser.add_argument("--split-dir", default="outputs/split")
    args = parser.parse_args(argv)
    wall, times = profile(args.model, args.precision, args.split_dir)
    inside = sum(times.values()) / 1000
    print(f"{args.model}, {args.precision}: {STEPS} steps of {BATCH} images in {wall:.2f} s ({STEPS * BATCH / wall:,.0f} "
          f"images/s, oneDNN's logging included); oneDNN primitives {inside:.2f} s ({100 * inside / wall:.0f}%), "
          f"the rest {wall - inside:.2f} s ({100 * (wall - inside) / wall:.0f}%)")
    for (kind, propagation, kernel), milliseconds in times.most_common(10):
        print(f"  {milliseconds / 1000:6.2f} s {100 * milliseconds / 1000 / wall:4.0f}%  {kind} {propagation} ({kernel})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
