"""Kernel benchmark: how close each backend's SE kernels get to this machine's memory bandwidth.

    from se_numpy.bench import run_benchmark, format_table
    result = run_benchmark("numba", quick=True)      # also writes JSON + PNG to out_dir
    print(format_table(result))

One run measures the copy bandwidth (``memory.py``), then for every kernel and
backend the best-of-``repeats`` time, the bytes the kernel must move at least,
the achieved GB/s and its fraction of the bandwidth (``cpu.py``); PyTorch's
CPU time for the same operation when torch is importable (``torch_ops.py``);
and the whole SE block forward + backward against its 7-pass bound. The
``cuda`` backend has its own module (``se_numpy.bench.cuda``).
"""
import os
import platform

import numpy as np

from . import report
from .report import write_chart, write_json

__all__ = ["run_benchmark", "format_table", "DEFAULT_SHAPES", "QUICK_SHAPES"]

# a ResNet-50 stage-1 map (64, 256, 56, 56): 205 MB in float32, far beyond any
# cache; and a CIFAR-sized map (8, 64, 32, 32): 2 MB, fits in L2/L3
DEFAULT_SHAPES = ((64, 256, 56, 56), (8, 64, 32, 32))
QUICK_SHAPES = ((16, 64, 56, 56), (8, 64, 32, 32))


def run_benchmark(backend="numba", shapes=None, dtype="float32", repeats=5, out_dir="bench_out",
                  include_torch=True, quick=False, kernels=None):
    """Measure, write ``kernels_<backend>.json`` and ``.png`` into ``out_dir``, return the dict.

    backend: "numpy" (reference alone), "numba" (numba vs the numpy reference),
             or "cuda" (handed to ``se_numpy.bench.cuda.run_benchmark``).
    shapes:  NCHW tuples; default ``DEFAULT_SHAPES`` (``QUICK_SHAPES`` if quick).
    dtype:   "float32" or "float64".
    repeats: timed calls per measurement; the best is kept.
    include_torch: add PyTorch CPU timings when torch is importable.
    quick:   smaller shapes and bandwidth array, for a check in seconds.
    kernels: names of the kernels to time (``contract.CONTRACT`` rows; for cuda also
             ``squeeze_forward_naive``, ...); None times all of them and the SE block,
             a list times only those (no SE block, no progression).
    """
    backend = str(backend).strip().lower()
    if backend == "cuda":
        from . import cuda     # numba.cuda is imported only when asked for
        return cuda.run_benchmark(shapes=shapes, dtype=dtype, repeats=repeats, out_dir=out_dir,
                                  include_torch=include_torch, quick=quick, kernels=kernels)
    if backend not in ("numpy", "numba"):
        raise ValueError(f"backend: expected 'numpy', 'numba' or 'cuda', got {backend!r}")
    dtype = np.dtype(dtype)
    if dtype.type not in (np.float32, np.float64):
        raise ValueError(f"dtype: expected float32 or float64, got {dtype}")
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats: expected a positive int, got {repeats!r}")
    shapes = _check_shapes(shapes if shapes is not None else (QUICK_SHAPES if quick else DEFAULT_SHAPES))
    from .cpu import timed_kernel_names
    kernels = check_kernel_names(kernels, timed_kernel_names())
    backends = ["numpy"] if backend == "numpy" else ["numpy", "numba"]
    result = _measure(backends, shapes, dtype, repeats, include_torch, quick, kernels)
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, f"kernels_{backend}")
    write_json(result, stem + ".json")
    write_chart(result, stem + ".png")
    result["files"] = [stem + ".json", stem + ".png"]
    return result


def format_table(result):
    """The result of ``run_benchmark`` as a plain-text table (CPU or CUDA layout)."""
    if result.get("backend") == "cuda":
        from . import cuda
        return cuda.format_table(result)
    return report.format_table(result)


def check_kernel_names(kernels, valid):
    """None, or the list of names after checking each is one of ``valid`` (``ValueError``)."""
    if kernels is None:
        return None
    names = [kernels] if isinstance(kernels, str) else list(kernels)
    unknown = [name for name in names if name not in valid]
    if unknown or not names:
        raise ValueError(f"kernels: expected names from {valid}, got {names!r}")
    return names


def _check_shapes(shapes):
    checked = []
    for shape in shapes:
        shape = tuple(shape)
        if len(shape) != 4 or not all(isinstance(d, (int, np.integer)) and d >= 1 for d in shape):
            raise ValueError(f"shapes: expected NCHW tuples of 4 positive ints, got {shape!r}")
        if shape[2] < 2 or shape[3] < 2:
            raise ValueError(f"shapes: the 2×2 pooling kernels need H, W >= 2, got {shape!r}")
        checked.append(tuple(int(d) for d in shape))
    return checked


def _measure(backends, shapes, dtype, repeats, include_torch, quick, kernels=None):
    # heavy imports (numba compiles) only when a benchmark actually runs
    import numba

    from . import cpu, memory

    torch_timer, torch_note = (None, "not requested")
    if include_torch:
        from .torch_ops import make_torch_timer
        torch_timer, torch_note = make_torch_timer()
    bandwidth_bytes = (64 if quick else 256) * 2 ** 20
    first_touch = memory.measure_first_touch(bandwidth_bytes)
    with memory.keep_freed_memory() as allocator_note:
        # the limit is measured before and after every shape and the best is
        # kept: on a shared machine a single measurement may catch a busy moment
        bandwidths = [memory.measure_bandwidth(bandwidth_bytes, repeats=max(repeats, 10))]
        entries = []
        for shape in shapes:
            entry = {"shape": list(shape), "dtype": dtype.name,
                     "kernels": cpu.time_kernels(shape, dtype, backends, repeats, torch_timer,
                                                 names=kernels)}
            if kernels is not None:           # some kernels only: no SE block, no progression
                entries.append(entry)
                bandwidths.append(memory.measure_bandwidth(bandwidth_bytes,
                                                           repeats=max(repeats, 10)))
                continue
            entry["se_block"] = cpu.time_se_block(shape, dtype, backends, repeats, torch_timer)
            timings = entry["se_block"]["results"]
            if "numba" in timings:
                entry["se_block"]["numba_speedup"] = {
                    other: timings[other]["seconds"] / timings["numba"]["seconds"]
                    for other in timings if other != "numba"}
                entry["progression"] = cpu.time_progression(shape, dtype, min(repeats, 3))
            entries.append(entry)
            bandwidths.append(memory.measure_bandwidth(bandwidth_bytes, repeats=max(repeats, 10)))
    bandwidth = max(bandwidths, key=lambda measured: measured["copy_GBps"])
    bandwidth.update(first_touch)
    bandwidth["copy_GBps_each_measurement"] = [measured["copy_GBps"] for measured in bandwidths]
    for entry in entries:
        cpu.add_fractions(entry, bandwidth["copy_GBps"])
    return {"backend": backends[-1], "memory": bandwidth, "shapes": entries,
            "settings": {"backends": backends, "repeats": repeats, "quick": quick,
                         "kernels": kernels or "all",
                         "timing": "best of repeats after one warm-up call",
                         "allocator": allocator_note, "torch": torch_note},
            "machine": {"platform": platform.platform(), "processor": platform.processor(),
                        "cpu_count": os.cpu_count(), "numba": numba.__version__,
                        "numba_threads": numba.get_num_threads(),
                        "numba_threading_layer": _threading_layer(numba),
                        "numpy": np.__version__}}


def _threading_layer(numba):
    try:
        return numba.threading_layer()
    except ValueError:      # no parallel region has run yet
        return "not initialised"
