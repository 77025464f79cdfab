"""The cuda backend: its correctness tests in their own process, and the GPU benchmark's arithmetic.

Numba picks the real CUDA target or the simulator at its first import, so the
backend's tests (``tests/cuda_sim``) run in a subprocess started here:

* always under the simulator (``NUMBA_ENABLE_CUDASIM=1``), on small shapes;
* also on the real GPU, at realistic shapes, when one is present (``gpu`` mark).
"""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from se_numpy.bench import cuda as cuda_bench

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cuda_tests(extra_environment):
    environment = dict(os.environ, **extra_environment)
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/cuda_sim", "-v", "-p", "no:cacheprovider"],
        cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=900)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"tests/cuda_sim failed:\n{output}"
    assert " passed" in output and " failed" not in output, output
    return output


def skipped_tests(output):
    """The ids of the tests ``pytest -v`` reports as SKIPPED."""
    return sorted(set(re.findall(r"^(\S+::\S+) SKIPPED", output, re.M)))


def test_cuda_backend_agrees_with_numpy_under_the_simulator():
    output = run_cuda_tests({"NUMBA_ENABLE_CUDASIM": "1", "SE_NUMPY_CUDA_GPU_TESTS": ""})
    # the only skips allowed there are the warp-shuffle kernel's (no shuffles in the simulator)
    shuffle = "tests/cuda_sim/test_cuda_backend.py::test_squeeze_forward_shuffle_matches_reference"
    assert skipped_tests(output) == [f"{shuffle}[float32]", f"{shuffle}[float64]"], output
    assert "test_contract_cuda.py::test_agrees_with_the_reference_in_float64" in output


def _gpu_present():
    probe = subprocess.run(
        [sys.executable, "-c", "from numba import cuda; print(cuda.is_available())"],
        env=dict(os.environ, NUMBA_ENABLE_CUDASIM="0"), capture_output=True, text=True)
    return probe.stdout.strip().endswith("True")


@pytest.mark.gpu
def test_cuda_backend_agrees_with_numpy_on_the_gpu():
    # probed here, not in a skipif mark: a mark's probe (a Python importing numba.cuda)
    # would run in every worker at collection, on the way to every other test
    if not _gpu_present():
        pytest.skip("needs a CUDA GPU")
    output = run_cuda_tests({"NUMBA_ENABLE_CUDASIM": "0", "SE_NUMPY_CUDA_GPU_TESTS": "1"})
    assert skipped_tests(output) == [], output   # on a GPU even the shuffle kernel runs


def test_main_run_does_not_collect_the_simulator_tests_itself():
    # They need their own process; conftest.py ignores them without the variables.
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/cuda_sim", "-q", "-p", "no:cacheprovider",
         "--collect-only"],
        cwd=REPOSITORY, capture_output=True, text=True,
        env={k: v for k, v in os.environ.items()
             if k not in ("NUMBA_ENABLE_CUDASIM", "SE_NUMPY_CUDA_GPU_TESTS")})
    assert "no tests collected" in completed.stdout + completed.stderr, completed.stdout


# ============================================================================ benchmark arithmetic
def test_minimum_bytes_counts_every_map_and_vector_once():
    shape, itemsize = (2, 3, 4, 5), 4
    map_bytes, vector_bytes = 2 * 3 * 4 * 5 * 4, 2 * 3 * 4          # 480 and 24
    assert cuda_bench.minimum_bytes("device_copy", shape, itemsize) == 2 * map_bytes
    assert cuda_bench.minimum_bytes("squeeze_forward", shape, itemsize) == 480 + 24
    assert cuda_bench.minimum_bytes("squeeze_forward_naive", shape, itemsize) == 480 + 24
    assert cuda_bench.minimum_bytes("scale_forward", shape, itemsize) == 2 * 480 + 24
    assert cuda_bench.minimum_bytes("scale_backward", shape, itemsize) == 3 * 480 + 2 * 24
    assert cuda_bench.minimum_bytes("se_backward_dx", shape, itemsize) == 2 * 480 + 2 * 24
    assert cuda_bench.minimum_bytes("max_squeeze_forward", shape, itemsize) == 480 + 24 + 6 * 8
    assert cuda_bench.minimum_bytes("squeeze_forward", shape, 8) == 960 + 48


def test_minimum_bytes_rejects_a_kernel_the_gpu_benchmark_does_not_time():
    with pytest.raises(ValueError, match="got 'squash'"):
        cuda_bench.minimum_bytes("squash", (1, 1, 1, 1), 4)
    with pytest.raises(ValueError, match="got 'conv2d_forward'"):
        cuda_bench.minimum_bytes("conv2d_forward", (1, 1, 1, 1), 4)


def test_datasheet_bandwidth_of_an_h100_sxm():
    # H100 SXM5: HBM3 at 2619 MHz on a 5120-bit bus: 2.619e9 · 2 · 640 B = 3352.3 GB/s
    assert cuda_bench.datasheet_bandwidth_GBps(2_619_000, 5120) == pytest.approx(3352.32, abs=0.01)


def test_se_block_bound_is_seven_passes_at_copy_speed():
    # (64, 256, 56, 56) float32 = 205.5 MB; 7 passes at 2000 GB/s = 719.2 µs
    bound = cuda_bench.se_block_bound_seconds((64, 256, 56, 56), 4, 2000.0)
    assert bound == pytest.approx(7 * 205_520_896 / 2000e9, rel=1e-12)


def test_rates_divide_bytes_by_time_and_by_the_copy_bandwidth():
    r = cuda_bench.rates(seconds=0.5e-3, moved_bytes=1_000_000_000, copy_GBps=2500.0)
    assert r["GBps"] == pytest.approx(2000.0) and r["fraction_of_bandwidth"] == pytest.approx(0.8)


def _fake_result():
    rows = [{"kernel": "squeeze_forward", "min_bytes": 205_586_432,
             "results": {"cuda": {"seconds": 80e-6, "GBps": 2569.8, "fraction_of_bandwidth": 0.856},
                         "torch": {"seconds": 90e-6, "GBps": 2284.3, "fraction_of_bandwidth": 0.761}}},
            {"kernel": "squeeze_forward_naive", "min_bytes": 205_586_432,
             "results": {"cuda": {"seconds": 900e-6, "GBps": 228.4, "fraction_of_bandwidth": 0.076}}}]
    return {"memory": {"copy_GBps": 3000.0, "datasheet_GBps": 3352.3},
            "machine": {"device": "NVIDIA H100 80GB HBM3"},
            "shapes": [{"shape": [64, 256, 56, 56], "dtype": "float32", "kernels": rows,
                        "se_block": {"bound_seconds": 480e-6, "results": {
                            "cuda CudaSEBlock": {"seconds": 600e-6, "times_bound": 1.25}}}}],
            "launch_overhead": [{"kernel": "scale_forward", "shape": [1, 64, 7, 7],
                                 "wall_seconds": 21.5e-6}]}


def test_format_table_shows_bandwidths_fractions_and_bound():
    table = cuda_bench.format_table(_fake_result())
    lines = table.splitlines()
    assert lines[0] == ("NVIDIA H100 80GB HBM3: copy 3000 GB/s measured, 3352 GB/s datasheet "
                        "(copy = 89% of it)")
    squeeze = next(line for line in lines if line.startswith("squeeze_forward "))
    assert "205.6" in squeeze and "80.0 (0.86)" in squeeze and "90.0 (0.76)" in squeeze
    naive = next(line for line in lines if line.startswith("squeeze_forward_naive"))
    assert "900.0 (0.08)" in naive and naive.rstrip().endswith("-")     # no torch timing
    assert any("600.0 µs = 1.25 x bound" in line for line in lines)
    assert any("scale_forward" in line and "21.5 µs" in line for line in lines)


def test_benchmark_refuses_cleanly_without_a_gpu(monkeypatch, tmp_path):
    from numba import cuda
    monkeypatch.setattr(cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="needs an NVIDIA GPU"):
        cuda_bench.run_benchmark(out_dir=str(tmp_path), quick=True)
    assert not any(tmp_path.iterdir())       # nothing half-written


@pytest.mark.parametrize("arguments, message", [({"dtype": "int8"}, "float32 or float64"),
                                                ({"repeats": 0}, "positive int"),
                                                ({"shapes": [(1, 2, 3)]}, "NCHW")])
def test_benchmark_rejects_bad_arguments_before_touching_a_gpu(arguments, message):
    with pytest.raises(ValueError, match=message):
        cuda_bench.run_benchmark(**arguments)


def test_result_layout_is_what_the_shared_report_writers_read(tmp_path):
    # run_benchmark hands its result to bench/report.py's JSON and chart writers.
    import json

    from se_numpy.bench.report import write_chart, write_json
    result = _fake_result()
    write_json(result, str(tmp_path / "kernels_cuda.json"))
    write_chart(result, str(tmp_path / "kernels_cuda.png"))
    assert json.loads((tmp_path / "kernels_cuda.json").read_text()) == result
    assert (tmp_path / "kernels_cuda.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_selecting_cuda_without_gpu_or_simulator_says_both_ways_out(monkeypatch):
    from numba import config, cuda

    from se_numpy.kernels import cuda as cuda_backend
    monkeypatch.setattr(config, "ENABLE_CUDASIM", 0, raising=False)
    monkeypatch.setattr(cuda_backend, "SIMULATOR", False)
    monkeypatch.setattr(cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="needs an NVIDIA GPU") as raised:
        cuda_backend.check_available()
    assert "NUMBA_ENABLE_CUDASIM=1" in str(raised.value) and "cuda13" in str(raised.value)
