"""Where and how TensorFlow runs: seeds and op determinism, precision policy, device strategy, threads, and the
environment record (versions, devices, the CPU and its ISA flags) kept with a result.

TensorFlow is imported by the functions that use it, so that a sweep's parent process, which only sets thread
variables, starts without it."""

from __future__ import annotations

import functools
import json
import os
import platform
from pathlib import Path

THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")  # set by `mnist sweep`
# Variables that change which oneDNN kernels TensorFlow runs on a CPU (on/off, and a cap on the ISA it may use).
ONEDNN_VARIABLES = ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
# The x86 ISA extensions oneDNN picks its kernels by (SSE4.1 up to AVX-512 and AMX), as /proc/cpuinfo names them.
# Two CPUs with different sets here can run different kernels, so trained weights can differ in the last bits.
ONEDNN_ISA_FLAGS = (
    "sse4_1", "sse4_2", "avx", "f16c", "fma", "avx2", "avx_vnni", "avx_vnni_int8", "avx_ne_convert",
    "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
    "amx_tile", "amx_int8", "amx_bf16", "amx_fp16", "asimd", "sve", "sve2", "bf16", "i8mm",
)
CPUINFO = Path("/proc/cpuinfo")


def set_determinism(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TF ops deterministic (call before building the model)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def set_precision(precision: str) -> str:
    """Set Keras's global dtype policy: float32, or for "mixed" float16 compute on a GPU, bfloat16 on a CPU.
    Returns the policy's name."""
    import keras
    import tensorflow as tf

    policy = "float32"
    if precision == "mixed":
        policy = "mixed_float16" if tf.config.list_logical_devices("GPU") else "mixed_bfloat16"
    keras.mixed_precision.set_global_policy(policy)
    return policy


@functools.cache
def strategy():
    """The `tf.distribute.Strategy` to build and train under: data-parallel over every visible GPU
    (`MirroredStrategy`), the default strategy on a CPU."""
    import tensorflow as tf

    return tf.distribute.MirroredStrategy() if tf.config.list_logical_devices("GPU") else tf.distribute.get_strategy()


def _op_determinism_enabled() -> bool | None:
    try:  # TensorFlow exposes the setter publicly, the getter only here
        from tensorflow.python.framework.config import is_op_determinism_enabled
    except ImportError:
        return None
    return bool(is_op_determinism_enabled())


def cpu(cpuinfo: str | Path = CPUINFO) -> dict:
    """The CPU's model name and the oneDNN-relevant ISA flags it reports, read from `cpuinfo` (never assumed);
    None for what the file does not say, or when there is no such file (not Linux)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return {"model": platform.processor() or None, "isa_flags": None, "source": f"{cpuinfo} not readable"}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:  # the first processor's entry; every core of a machine is the same kind
            fields[key.strip()] = value.strip()
    flags_text = fields.get("flags", fields.get("Features"))  # x86 says flags, ARM says Features
    flags = set(flags_text.split()) if flags_text is not None else None
    return {
        "model": fields.get("model name") or fields.get("Model") or fields.get("CPU part"),
        "isa_flags": None if flags is None else [flag for flag in ONEDNN_ISA_FLAGS if flag in flags],
        "source": str(cpuinfo),
    }


def environment() -> dict:
    """The settings that matter for reproducing a result: versions, determinism, threads, devices, CPU and ISA."""
    import keras
    import numpy as np
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "op_determinism": _op_determinism_enabled(),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "thread_variables": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "cpu": cpu(),
        "onednn_variables": {name: os.environ.get(name) for name in ONEDNN_VARIABLES},
        "devices": [device.name for device in tf.config.list_logical_devices()],
    }


def thread_variables(threads: int) -> dict[str, str]:
    """The THREAD_VARIABLES values that cap a process at `threads` CPU threads (at most 2 for ops run side by side)."""
    values = {"TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": min(threads, 2), "OMP_NUM_THREADS": threads}
    return {name: str(values[name]) for name in THREAD_VARIABLES}


def write_environment(path: str | Path) -> dict:
    """Write `environment()` as JSON beside a result and return it."""
    settings = environment()
    Path(path).write_text(json.dumps(settings, indent=2) + "\n")
    return settings
