"""FLOP counted from a model's layers, and the machine's peak from a real cpuinfo file's cores, clock and flags:
every expected figure worked out by hand."""

from __future__ import annotations

import keras
import pytest

import flops


def test_forward_flop_count_of_convolutions_and_dense_layers_by_hand():
    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(3, 3)(inputs)  # 6x6x3 outputs, 3*3*2 weights each: 2 * 36 * 3 * 18 = 3,888
    x = keras.layers.Conv2D(4, (1, 2), strides=2, padding="same", use_bias=False)(x)  # 3x3x4, 1*2*3: 2*9*4*6 = 432
    x = keras.layers.BatchNormalization()(x)  # not counted
    x = keras.layers.Dense(5)(x)  # at each of 3x3 positions, 4 -> 5: 2 * 9 * 20 = 360
    inner = keras.Model(inputs, x)
    outer_in = keras.Input((8, 8, 2))
    y = keras.layers.Flatten()(inner(outer_in))
    outer = keras.Model(outer_in, keras.layers.Dense(7)(y))  # 45 -> 7: 2 * 315 = 630
    assert flops.forward_flops(inner) == 3888 + 432 + 360
    assert flops.forward_flops(outer) == 3888 + 432 + 360 + 630
    assert flops.training_flops(outer) == 3 * (3888 + 432 + 360 + 630)


CPUINFO = """processor\t: 0
vendor_id\t: {vendor}
model name\t: Some CPU
cpu MHz\t\t: 2500.000
siblings\t: {siblings}
cpu cores\t: 2
flags\t\t: fpu sse sse2 {flags}

processor\t: 1
vendor_id\t: OtherVendor
cpu MHz\t\t: 9999.000
"""


@pytest.mark.parametrize("vendor, flags, siblings, fp32, bf16", [
    ("GenuineIntel", "avx avx2 fma avx512f avx512_bf16 amx_tile amx_bf16", 2, 2 * 2.5 * 64, 2 * 2.5 * 1024),
    ("GenuineIntel", "avx avx2 fma avx512f avx512_bf16", 2, 2 * 2.5 * 64, 2 * 2.5 * 128),
    ("AuthenticAMD", "avx avx2 fma avx512f avx512_bf16", 2, 2 * 2.5 * 32, 2 * 2.5 * 64),
    ("AuthenticAMD", "avx avx2 fma", 2, 2 * 2.5 * 32, None),
    ("GenuineIntel", "sse4_2", 2, 2 * 2.5 * 8, None),
    ("GenuineIntel", "avx avx2 fma avx512f", 4, 1 * 2.5 * 64, None),  # 2 threads per core: 2 CPUs are 1 core
])
def test_peak_from_cores_clock_and_isa_flags_of_the_first_processor(tmp_path, vendor, flags, siblings, fp32, bf16):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO.format(vendor=vendor, flags=flags, siblings=siblings))
    machine = flops.peak(path, cores=2)
    assert machine["gflops"]["float32"] == pytest.approx(fp32)
    assert machine["gflops"]["bfloat16"] == (None if bf16 is None else pytest.approx(bf16))
    assert machine["ghz"] == 2.5 and machine["vendor"] == vendor
    sentence = flops.describe(machine)
    assert f"{fp32:,.0f} GFLOP/s" in sentence
    assert ("runs as float32" in sentence) == (bf16 is None)


def test_the_onednn_profile_sums_the_primitives_of_real_training_steps(tmp_path, monkeypatch):
    import numpy as np

    import profile_onednn
    from conftest import REPO, draw_digits
    from mnist_lib import split
    from mnist_lib.records import Dataset

    images, labels = draw_digits(64, seed=2)
    split.save_split(tmp_path, "train", Dataset(images[..., None], labels.astype(np.int64), tuple("0123456789")))
    monkeypatch.chdir(REPO)
    wall, times = profile_onednn.profile("cnn_small", "float32", str(tmp_path), steps=2, batch=32)
    kinds = {kind for kind, _, _ in times}
    assert "convolution" in kinds and wall > 0
    assert {propagation for kind, propagation, _ in times if kind == "convolution"} >= {"forward_training", "backward_weights"}
    assert 0 < sum(times.values()) / 1000 < wall  # oneDNN's part of the steps, in seconds


def test_the_matrix_product_ceiling_is_2_n_cubed_flop_over_the_best_timed_product(monkeypatch):
    import time

    ticks = iter([10.0, 10.9, 20.0, 20.5, 30.0, 30.7])  # three timed products: 0.9 s, 0.5 s, 0.7 s
    monkeypatch.setattr(time, "perf_counter", lambda: next(ticks))
    assert flops.gemm_gflops("float32", size=64, repeats=3) == pytest.approx(2 * 64**3 / 0.5 / 1e9)
    monkeypatch.undo()
    for precision in ("float32", "bfloat16"):  # both run for real, on this CPU's oneDNN
        assert flops.gemm_gflops(precision, size=128, repeats=2) > 0
