"""What is bit-identical where: the split is the same bytes when rerun from the same raw bytes and seed, and the
environment record names the CPU and the ISA flags oneDNN picks kernels by (trained weights depend on them)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from mnist_lib import runtime

# Shortened from an Intel Xeon with AMX (the flags line cut to a few dozen); the second processor differs on purpose.
XEON_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8 avx_vnni

processor\t: 1
model name\t: Something Else
flags\t\t: fpu sse
"""


def test_cpu_record_reads_the_model_and_the_onednn_isa_flags_from_cpuinfo(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(XEON_CPUINFO)
    record = runtime.cpu(path)
    assert record["model"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert sorted(record["isa_flags"]) == sorted([
        "sse4_1", "sse4_2", "avx", "f16c", "fma", "avx2", "avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl",
        "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile", "amx_int8", "avx_vnni"])


def test_cpu_record_assumes_no_flag_a_cpu_does_not_report(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nmodel name\t: Old CPU\nflags\t\t: fpu sse sse2 sse4_1\n")
    assert runtime.cpu(path) == {"model": "Old CPU", "isa_flags": ["sse4_1"], "source": str(path)}
    assert runtime.cpu(tmp_path / "absent")["isa_flags"] is None  # no file: unknown, not guessed


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="no /proc/cpuinfo on this system (not Linux)")
def test_environment_json_records_this_machines_cpu_and_isa_flags(tmp_path):
    text = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", text, re.MULTILINE)
    flags = set(re.search(r"^(?:flags|Features)\s*:\s*(.*)$", text, re.MULTILINE)[1].split())
    runtime.write_environment(tmp_path / "environment.json")
    written = json.loads((tmp_path / "environment.json").read_text())
    if model:
        assert written["cpu"]["model"] == model[1].strip()
    assert set(written["cpu"]["isa_flags"]) == flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile",
                                                       "sse4_1", "sse4_2", "avx", "fma", "f16c", "avx512bw",
                                                       "avx512vl", "avx512dq", "avx512cd", "avx512_vnni",
                                                       "avx512_fp16", "amx_int8", "amx_fp16", "avx_vnni",
                                                       "avx_vnni_int8", "avx_ne_convert", "asimd", "sve", "sve2",
                                                       "bf16", "i8mm"}
    assert set(written["onednn_variables"]) == {"TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"}


@pytest.mark.slow
def test_a_second_split_run_from_the_same_raw_bytes_and_seed_writes_the_same_bytes(tiny_mnist, tmp_path):
    data_dir, _ = tiny_mnist
    written = []
    for run in ("first", "second"):  # two processes, two kernels, as two machines would run the stage
        out = tmp_path / run
        done = subprocess.run(
            [sys.executable, "-m", "mnist_lib.cli", "run", "notebooks/02_split.py", "-f", "params/split.yaml",
             "-p", "data_format", "idx", "-p", "data_dir", str(data_dir), "-p", "out_dir", str(out / "split"),
             "-o", str(out / "02_split.ipynb"), "--no-html"],
            cwd=REPO, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        written.append({path.name: path.read_bytes() for path in sorted((out / "split").iterdir())})
    assert {"train.npz", "val.npz", "test.npz", "summary.json", "class_counts.csv"} <= set(written[0])
    assert written[0].keys() == written[1].keys()
    differ = [name for name in written[0] if written[0][name] != written[1][name]]
    assert not differ, f"the split is not bit-identical across runs: {differ}"
