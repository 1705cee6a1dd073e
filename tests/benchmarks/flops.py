"""Training arithmetic against the machine's limit: FLOP per image counted from a Keras model's layers, and this CPU's
peak FLOP/s computed from its cores, clock and ISA flags as found at run time.

Counting rule: 2 FLOP per multiply-add of the convolutions and dense layers (the matrix work oneDNN runs at speed).
Bias adds, batch norm, activations, pooling and dropout are left out: a few per cent of the FLOP, and bound by
memory, not arithmetic. A training image costs 3x its forward pass (forward, then the gradients with respect to the
activations and to the weights, each about one forward pass): the usual estimate, exact for the dense layers.

Peak rule: cores x clock x FLOP per cycle per core, where FLOP per cycle comes from the widest arithmetic the ISA flags
allow (table below). The clock is /proc/cpuinfo's "cpu MHz": on a virtual machine that is the nominal frequency, and
a core may run faster under turbo, so a share of peak can read a little high. The cores are the logical CPUs this
process may use divided by the threads per core /proc/cpuinfo reports (siblings / cpu cores).

Measured ceiling: the rate of a large matrix product (`gemm_gflops`, tf.matmul through oneDNN on the threads the
benchmark uses) in the same run. Where the cores run above their nominal clock, or the table's FLOP per cycle is
wrong for a CPU, the computed peak is no ceiling (a share over 100%); the matrix product is what this machine does
reach, so a model's share of it says how far its training is from the arithmetic limit in practice.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras

from mnist_lib import runtime

TRAINING_PASSES = 3  # forward + input gradients + weight gradients, each about one forward pass

# FLOP per cycle per core = vector lanes x 2 (fused multiply-add) x FMA units, by the widest unit the flags allow.
# float32: AVX-512 on Intel Xeon: 16 lanes x 2 x 2 units = 64; AMD Zen 4 runs 512-bit operations on two 256-bit units
# (32); AVX2 + FMA: 8 x 2 x 2 = 32; SSE only: 4 lanes, a multiply and an add port = 8.
# bfloat16: AMX (Intel's tile unit): 1,024 per core; AVX512_BF16's dot-product instruction does twice the float32
# multiply-adds per instruction; without either, bfloat16 math runs as float32 (no gain possible).
AMX_BF16_PER_CYCLE = 1024


def forward_flops(model: keras.Model) -> int:
    """FLOP of one image's forward pass: 2 x the multiply-adds of every Conv2D and Dense layer (nested models
    included), from the layers' kernel shapes and output shapes."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += forward_flops(layer)
        elif isinstance(layer, keras.layers.Conv2D):
            height, width = layer.output.shape[1:3]
            kernel = layer.kernel.shape  # (rows, columns, input channels per group, filters)
            total += 2 * height * width * kernel[0] * kernel[1] * kernel[2] * kernel[3]
        elif isinstance(layer, keras.layers.Dense):
            positions = 1
            for size in layer.output.shape[1:-1]:  # a Dense on a rank > 2 input applies at every position
                positions *= size
            total += 2 * positions * layer.kernel.shape[0] * layer.kernel.shape[1]
    return total


def training_flops(model: keras.Model) -> int:
    """FLOP of one training image: TRAINING_PASSES x `forward_flops`."""
    return TRAINING_PASSES * forward_flops(model)


def gemm_gflops(precision: str = "float32", size: int = 2048, repeats: int = 8) -> float:
    """GFLOP/s of a `size` x `size` matrix product in `precision` (float32 or bfloat16), 2 x size^3 FLOP, timed
    alone: the best of `repeats` after one warm-up."""
    import time

    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a, b = (tf.cast(rng.standard_normal((size, size), dtype=np.float32), precision) for _ in range(2))
    tf.matmul(a, b).numpy()  # warm-up: oneDNN picks and caches its kernel
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        tf.matmul(a, b).numpy()  # eager on the CPU: done when it returns; .numpy() makes sure
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def cpuinfo_fields(cpuinfo: str | Path = runtime.CPUINFO) -> dict[str, str]:
    """The first processor's "key: value" fields of /proc/cpuinfo (empty when there is no such file)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the first processor's entry ends at the first blank line
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def flop_per_cycle(flags: set[str], vendor: str) -> dict[str, int | None]:
    """float32 and bfloat16 FLOP per cycle per core from the ISA `flags` and the `vendor` (see the table above)."""
    if "avx512f" in flags:
        fp32 = 32 if vendor == "AuthenticAMD" else 64
    elif "avx2" in flags and "fma" in flags:
        fp32 = 32
    else:
        fp32 = 8
    if "amx_bf16" in flags:
        bf16 = AMX_BF16_PER_CYCLE
    elif "avx512_bf16" in flags:
        bf16 = 2 * fp32
    else:
        bf16 = None
    return {"float32": fp32, "bfloat16": bf16}


def peak(cpuinfo: str | Path = runtime.CPUINFO, cores: int | None = None) -> dict:
    """This machine's peak GFLOP/s per precision, with what it was computed from."""
    fields = cpuinfo_fields(cpuinfo)
    flags = set(fields.get("flags", "").split())
    logical = len(os.sched_getaffinity(0)) if cores is None else cores
    siblings, physical = int(fields.get("siblings", 1) or 1), int(fields.get("cpu cores", 1) or 1)
    cores = max(1, logical * physical // max(siblings, physical))
    ghz = float(fields.get("cpu MHz", "nan")) / 1000
    per_cycle = flop_per_cycle(flags, fields.get("vendor_id", ""))
    return {
        "cores": cores, "ghz": ghz, "vendor": fields.get("vendor_id"), "flop_per_cycle": per_cycle,
        "gflops": {name: None if value is None else cores * ghz * value for name, value in per_cycle.items()},
        "flags": sorted(flags & {"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}),
    }


def describe(machine: dict) -> str:
    """One sentence: how the peak was computed on this machine."""
    per_cycle, gflops = machine["flop_per_cycle"], machine["gflops"]
    bf16 = ("no bfloat16 arithmetic (it runs as float32)" if per_cycle["bfloat16"] is None else
            f"bfloat16 {per_cycle['bfloat16']:,} FLOP/cycle ({'AMX' if 'amx_bf16' in machine['flags'] else 'AVX512_BF16'}) "
            f"= {gflops['bfloat16']:,.0f} GFLOP/s")
    return (f"Peak: {machine['cores']} cores x {machine['ghz']:.2f} GHz ({machine['vendor']}; flags "
            f"{', '.join(machine['flags'])}) x float32 {per_cycle['float32']} FLOP/cycle = {gflops['float32']:,.0f} "
            f"GFLOP/s; {bf16}.")
