"""GPU benchmark of the ``cuda`` kernels against the memory bandwidth measured in the same run.

    se-numpy bench --backend cuda                 # or:
    from se_numpy.bench.cuda import run_benchmark, format_table
    print(format_table(run_benchmark()))

Every SE kernel is memory-bound: it does a multiply or an add per number it
reads. So the yardstick is the device-to-device copy, which reads and writes
each byte once at the best speed this GPU reaches (``copy_GBps``), next to the
datasheet peak the device reports (memory clock × bus width × 2 for double
data rate). For each kernel we count the bytes it must move at least
(``minimum_bytes``: every input read once, every output written once) and
report ``bytes / time`` as GB/s and as a fraction of the copy bandwidth.

Timing: CUDA events around a batch of ``BATCH`` launches on device arrays
with preallocated outputs, after a warm-up launch (which compiles); the best
of ``repeats`` batches is kept. Launch overhead is measured separately as
the wall time per call of the host functions on a small map, synchronising
after each call. With no GPU, ``run_benchmark`` raises ``RuntimeError``
saying so before importing anything that needs one.

Targets on an H100 (``docs/cuda.md``): optimised squeeze and scale forward at
>= 80 % of the copy bandwidth; the SE block forward + backward at <= 1.3 × its
7-pass bound (7 · bytes(x) / copy bandwidth).
"""
import math
import os
import platform
import time

import numpy as np

GB = 1e9
BATCH = 10                     # launches between two events: averages the event resolution
SE_BLOCK_PASSES = 7            # squeeze 1 + scale 2 + ds 2 + dx 2 passes over the map
DEFAULT_SHAPES = ((64, 256, 56, 56), (8, 64, 32, 32))
QUICK_SHAPES = ((16, 64, 56, 56), (8, 64, 32, 32))
OVERHEAD_SHAPES = ((1, 64, 7, 7), (8, 64, 8, 8))

# The kernels timed: every row of the contract with a GPU kernel (the SE rows and
# the channel pooling, ``contract.GPU_FILES``; the Gather-Excite rows,
# ``GPU_FILES_WITH_GEOMETRY``, whose index arrays ``_gather_cases`` builds), and the
# two other squeeze kernels, which move what squeeze_forward moves.
VARIANTS = {"squeeze_forward_naive": "squeeze_forward", "squeeze_forward_shuffle": "squeeze_forward"}


# ============================================================================ plain arithmetic
def timed_kernels():
    """Names of the timed kernels, in the table's order: the copy, then the contract's GPU rows."""
    from ..kernels import contract
    names = [op.name for op in contract.CONTRACT if op.file in _timed_files(contract)]
    return ["device_copy", "squeeze_forward_naive", *names[:1], "squeeze_forward_shuffle",
            *names[1:]]


def _timed_files(contract):
    return contract.GPU_FILES + contract.GPU_FILES_WITH_GEOMETRY


def minimum_bytes(kernel, shape, itemsize):
    """Bytes ``kernel`` moves at least on an NCHW map of ``shape`` with ``itemsize``-byte floats:
    ``contract.minimum_bytes`` of the row it implements; the copy reads and writes the map."""
    from ..kernels import contract
    if kernel == "device_copy":
        return 2 * math.prod(shape) * itemsize
    name = VARIANTS.get(kernel, kernel)
    if name not in contract.OPS or contract.OPS[name].file not in _timed_files(contract):
        raise ValueError(f"kernel: expected one of {timed_kernels()}, got {kernel!r}")
    return contract.minimum_bytes(name, shape, itemsize)


def se_block_bound_seconds(shape, itemsize, copy_GBps):
    """The 7-pass lower bound of an SE block forward + backward: 7 · bytes(x) / bandwidth."""
    return SE_BLOCK_PASSES * math.prod(shape) * itemsize / (copy_GBps * GB)


def rates(seconds, moved_bytes, copy_GBps):
    """seconds -> {seconds, GBps, fraction_of_bandwidth} (the CPU benchmark's row format)."""
    achieved = moved_bytes / seconds / GB
    return {"seconds": seconds, "GBps": achieved, "fraction_of_bandwidth": achieved / copy_GBps}


def datasheet_bandwidth_GBps(memory_clock_khz, bus_width_bits):
    """Peak DRAM bandwidth from device attributes: clock × 2 (double data rate) × bus bytes.

    An H100 SXM reports 2 619 000 kHz and 5120 bits: 2.619e9 · 2 · 640 B = 3352 GB/s.
    """
    return memory_clock_khz * 1e3 * 2 * (bus_width_bits / 8) / GB


def format_table(result):
    """Plain-text report: bandwidths, per-kernel time and fraction, SE block, launch overhead."""
    memory = result["memory"]
    lines = [f"{result['machine']['device']}: copy {memory['copy_GBps']:.0f} GB/s measured, "
             f"{memory['datasheet_GBps']:.0f} GB/s datasheet "
             f"(copy = {memory['copy_GBps'] / memory['datasheet_GBps']:.0%} of it)"]
    for entry in result["shapes"]:
        backends = sorted({b for row in entry["kernels"] for b in row["results"]},
                          key=lambda b: (b != "cuda", b))
        lines += ["", f"shape {tuple(entry['shape'])} {entry['dtype']}   "
                      "µs (fraction of copy bandwidth)"]
        header = f"{'kernel':<26}{'MB':>9}" + "".join(f"{b:>20}" for b in backends)
        lines += [header, "-" * len(header)]
        for row in entry["kernels"]:
            cells = "".join(
                f"{row['results'][b]['seconds'] * 1e6:>12.1f} ({row['results'][b]['fraction_of_bandwidth']:.2f})"
                if b in row["results"] else f"{'-':>20}" for b in backends)
            lines.append(f"{row['kernel']:<26}{row['min_bytes'] / 1e6:>9.1f}{cells}")
        block = entry.get("se_block")
        if block is None:             # a run limited to some kernels
            continue
        lines.append(f"SE block forward+backward: 7-pass bound {block['bound_seconds'] * 1e6:.1f} µs")
        for name, timing in block["results"].items():
            lines.append(f"  {name:<28}{timing['seconds'] * 1e6:>10.1f} µs "
                         f"= {timing['times_bound']:.2f} x bound")
    if result.get("launch_overhead"):
        lines += ["", "wall time per call, host function on device arrays (launch overhead)"]
        for row in result["launch_overhead"]:
            lines.append(f"  {row['kernel']:<24}{str(tuple(row['shape'])):<18}"
                         f"{row['wall_seconds'] * 1e6:>8.1f} µs")
    return "\n".join(lines)


# ============================================================================ on the GPU
def check_gpu():
    """Raise ``RuntimeError`` with the reason unless a CUDA GPU can be used."""
    try:
        from numba import config
    except ImportError as error:
        raise RuntimeError(f"the CUDA benchmark needs numba: {error}") from error
    if config.ENABLE_CUDASIM:
        raise RuntimeError("the CUDA benchmark needs a real GPU: NUMBA_ENABLE_CUDASIM=1 runs the "
                           "simulator, whose timings mean nothing")
    try:
        from numba import cuda
    except ImportError as error:
        raise RuntimeError("the CUDA benchmark needs numba-cuda: pip install "
                           f"'se_numpy[cuda13]' (or [cuda12]): {error}") from error
    if not cuda.is_available():
        raise RuntimeError("the CUDA benchmark needs an NVIDIA GPU with a working driver; none "
                           "was found on this machine (the CPU benchmark: se-numpy bench "
                           "--backend numba)")


def _time_batches(cuda, launch, repeats):
    """Best seconds per launch over ``repeats`` batches of ``BATCH`` launches (events)."""
    launch()                                  # warm-up: compiles on first use
    cuda.synchronize()
    start, end = cuda.event(timing=True), cuda.event(timing=True)
    best = math.inf
    for _ in range(repeats):
        start.record()
        for _ in range(BATCH):
            launch()
        end.record()
        end.synchronize()
        best = min(best, cuda.event_elapsed_time(start, end) / 1e3 / BATCH)
    return best


def _kernel_launches(gpu, cuda, shape, dtype, seed=0):
    """{name: zero-argument function launching that kernel on preallocated device arrays}.

    The arrays follow the contract row's roles: for the SE kernels maps as
    (N·C, H·W) rows, vectors as (N·C,), indices int64; for the channel pooling
    and the spatial gate maps as (N, C, H·W) and planes as (N, H·W) (one thread
    per pixel, or per element for the gate's forward); inputs first, then
    outputs. The Gather-Excite rows come from ``_gather_cases``."""
    from ..kernels import contract
    rng = np.random.default_rng(seed)
    n, c, h, w = shape
    rows, row_length = n * c, h * w

    def device_array(role):
        if role == contract.MAP:
            return cuda.to_device(rng.standard_normal((rows, row_length)).astype(dtype))
        if role == contract.INDEX:
            return cuda.to_device(rng.integers(0, row_length, rows).astype(np.int64))
        if role == contract.PLANE:
            return cuda.to_device(rng.standard_normal((n, row_length)).astype(dtype))
        if role == contract.PLANE_INDEX:
            return cuda.to_device(rng.integers(0, c, (n, row_length)).astype(np.int64))
        return cuda.to_device(rng.uniform(0.1, 1, rows).astype(dtype))

    def pooling_array(role):            # channel_pool, spatial_gate: maps as (N, C, H·W)
        array = device_array(role)
        return array.reshape(n, c, row_length) if role == contract.MAP else array

    x, out = device_array(contract.MAP), device_array(contract.MAP)
    launches = {"device_copy": lambda: out.copy_to_device(x)}
    gather_cases = _gather_cases(gpu, cuda, shape, dtype, seed)
    for name in timed_kernels()[1:]:
        if name in gather_cases:
            launches[name] = gather_cases[name][0]
            continue
        op = contract.OPS[VARIANTS.get(name, name)]
        wrapper = getattr(getattr(gpu, op.file), name)   # the host function, with its kernel
        per_pixel = op.file in ("channel_pool", "spatial_gate")
        make = pooling_array if per_pixel else device_array
        arrays = [make(role) for _, role in op.arguments + op.outputs if role != contract.SHAPE]
        if name == "spatial_scale_forward":
            launch = wrapper.launch(wrapper.kernel, rows * row_length)  # a thread per element
        elif per_pixel:
            launch = wrapper.launch(wrapper.kernel, n * row_length)    # a thread per pixel
        else:
            launch = wrapper.launch(wrapper.kernel, rows, row_length)
        launches[name] = lambda launch=launch, arrays=arrays: launch(*arrays)
    return launches


def _gather_cases(gpu, cuda, shape, dtype, seed=0):
    """{name: (launch, inputs, outputs)} for the Gather-Excite rows (host arrays in ``inputs``).

    Their host functions compute index arrays from the shapes (window bounds,
    nearest sources, source runs: ``kernels/numpy/gather.py``) and copy them up
    on every call; here they are built and copied once, at the contract's example
    extent, so a launch times the kernels alone, as for every other row. Planes
    are (N·C, H, W), as ``kernels/cuda/gather.py`` launches them."""
    from ..kernels import contract
    from ..kernels.numpy.gather import extent_windows, nearest_sources, source_runs
    kernels, launch = gpu.gather, gpu.launch_threads
    rng = np.random.default_rng(seed + 1)
    n, c, h, w = shape
    extent = contract.EXAMPLE_OPTIONS["gather"]["extent"]
    row_windows, column_windows = extent_windows(h, extent), extent_windows(w, extent)
    cells = (n * c, len(row_windows), len(column_windows))

    def planes(plane_shape):
        return rng.uniform(-1, 1, plane_shape).astype(dtype)

    x, dy, g = planes((n * c, h, w)), planes((n * c, h, w)), planes(cells)
    gate = rng.uniform(0.1, 1, cells).astype(dtype)
    device = {name: cuda.to_device(array) for name, array in (
        ("x", x), ("dy", dy), ("g", g), ("gate", gate),
        ("row_windows", row_windows), ("column_windows", column_windows),
        ("source_rows", nearest_sources(h, cells[1])),
        ("source_columns", nearest_sources(w, cells[2])),
        ("first_rows", source_runs(h, cells[1])), ("first_columns", source_runs(w, cells[2])))}
    outputs = {name: cuda.device_array(plane_shape, dtype) for name, plane_shape in (
        ("g", cells), ("dx", (n * c, h, w)), ("y", (n * c, h, w)), ("dgate", cells))}
    d, o = device, outputs
    gather = launch(kernels.ge_gather_forward_kernel, outputs["g"].size)
    scatter = launch(kernels.ge_gather_backward_kernel, outputs["dx"].size)
    excite = launch(kernels.ge_excite_forward_kernel, outputs["y"].size)
    dgate = launch(kernels.ge_excite_dgate_kernel, outputs["dgate"].size)

    def excite_backward():
        excite(d["dy"], d["gate"], o["dx"], d["source_rows"], d["source_columns"])
        dgate(d["dy"], d["x"], o["dgate"], d["first_rows"], d["first_columns"])

    def as_maps(*arrays):             # the reference's arguments: (N·C, 1, H, W) maps
        return tuple(array[:, None] for array in arrays)

    return {
        "ge_gather_forward": (lambda: gather(d["x"], o["g"], d["row_windows"],
                                             d["column_windows"]),
                              (*as_maps(x), extent), (o["g"],)),
        "ge_gather_backward": (lambda: scatter(d["g"], o["dx"], d["row_windows"],
                                               d["column_windows"], extent),
                               (*as_maps(g), (n * c, 1, h, w), extent), (o["dx"],)),
        "ge_excite_forward": (lambda: excite(d["x"], d["gate"], o["y"], d["source_rows"],
                                             d["source_columns"]),
                              as_maps(x, gate), (o["y"],)),
        "ge_excite_backward": (excite_backward, as_maps(dy, x, gate), (o["dx"], o["dgate"])),
    }


def _torch_launches(shape, dtype, seed=0):
    """The same operations in PyTorch on the GPU, or {} (and why) when torch cannot."""
    try:
        import torch
    except ImportError:
        return {}, "torch not installed"
    if not torch.cuda.is_available():
        return {}, "torch has no CUDA"
    generator = torch.Generator(device="cuda").manual_seed(seed)
    torch_dtype = getattr(torch, np.dtype(dtype).name)
    x, dy, shortcut = (torch.randn(shape, device="cuda", dtype=torch_dtype, generator=generator)
                       for _ in range(3))
    s, dz = (torch.rand(shape[:2], device="cuda", dtype=torch_dtype, generator=generator)
             for _ in range(2))
    out = torch.empty_like(x)
    gates, shares = s[:, :, None, None], (dz / (shape[2] * shape[3]))[:, :, None, None]
    pixel_gates = torch.rand((shape[0], 1, *shape[2:]), device="cuda", dtype=torch_dtype,
                             generator=generator)
    launches = {
        "device_copy": lambda: out.copy_(x),
        "squeeze_forward": lambda: x.mean(dim=(2, 3)),
        "max_squeeze_forward": lambda: x.flatten(2).max(dim=2),
        "scale_forward": lambda: torch.mul(x, gates, out=out),
        "se_backward_ds": lambda: (dy * x).sum(dim=(2, 3)),
        "se_backward_dx": lambda: torch.addcmul(shares, dy, gates, out=out),
        "scale_add_forward": lambda: torch.addcmul(shortcut, x, gates, out=out),
        "channel_pool_forward": lambda: (x.mean(dim=1, keepdim=True), x.max(dim=1, keepdim=True)),
        "spatial_scale_forward": lambda: torch.mul(x, pixel_gates, out=out),
        "spatial_scale_backward": lambda: (torch.mul(dy, pixel_gates, out=out),
                                           (dy * x).sum(dim=1, keepdim=True)),
    }
    return launches, f"torch {torch.__version__}"


def _time_torch(launch, repeats):
    import torch
    launch()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    best = math.inf
    for _ in range(repeats):
        start.record()
        for _ in range(BATCH):
            launch()
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / 1e3 / BATCH)
    return best


def _time_se_block(gpu, cuda, shape, dtype, repeats, copy_GBps):
    """SE block forward + backward: the four kernels alone, and CudaSEBlock with its host part."""
    from ..functional.se import hidden_width
    from ..nn.cuda_se import CudaSEBlock

    rng = np.random.default_rng(1)
    n, c, h, w = shape
    hidden = hidden_width(c, 16)
    block = CudaSEBlock((rng.standard_normal((hidden, c)) / np.sqrt(c)).astype(dtype),
                        np.zeros(hidden, dtype),
                        (rng.standard_normal((c, hidden)) / np.sqrt(hidden)).astype(dtype),
                        np.zeros(c, dtype))
    x = cuda.to_device(rng.standard_normal(shape).astype(dtype))
    dy = cuda.to_device(rng.standard_normal(shape).astype(dtype))
    launches = _kernel_launches(gpu, cuda, shape, dtype)
    four_kernels = ("squeeze_forward", "scale_forward", "se_backward_ds", "se_backward_dx")

    def kernels_only():
        for name in four_kernels:
            launches[name]()

    def whole_block():
        block.forward(x)
        block.backward(dy)

    bound = se_block_bound_seconds(shape, np.dtype(dtype).itemsize, copy_GBps)
    results = {}
    for name, run in (("cuda kernels only (4)", kernels_only),
                      ("cuda CudaSEBlock", whole_block)):
        seconds = _time_batches(cuda, run, repeats)
        results[name] = {"seconds": seconds, "times_bound": seconds / bound}
    return {"passes": SE_BLOCK_PASSES, "bytes": SE_BLOCK_PASSES * math.prod(shape)
            * np.dtype(dtype).itemsize, "bound_seconds": bound, "results": results}


def _launch_overhead(gpu, cuda, dtype, repeats):
    """Wall time per call of the host functions on tiny device maps (synchronised each call)."""
    rows = []
    rng = np.random.default_rng(2)
    for shape in OVERHEAD_SHAPES:
        x = cuda.to_device(rng.standard_normal(shape).astype(dtype))
        s = cuda.to_device(rng.uniform(0.1, 1, shape[:2]).astype(dtype))
        for name, call in (("squeeze_forward", lambda: gpu.squeeze_forward(x)),
                           ("scale_forward", lambda: gpu.scale_forward(x, s))):
            call()
            cuda.synchronize()
            calls = max(20, repeats * BATCH)
            started = time.perf_counter()
            for _ in range(calls):
                call()
                cuda.synchronize()
            rows.append({"kernel": name, "shape": list(shape),
                         "wall_seconds": (time.perf_counter() - started) / calls})
    return rows


def run_benchmark(shapes=None, dtype="float32", repeats=20, out_dir="bench_out",
                  include_torch=True, quick=False, kernels=None):
    """Measure on the GPU, write ``kernels_cuda.json`` and ``.png`` into ``out_dir``, return the dict.

    Same arguments and result layout as ``se_numpy.bench.run_benchmark``
    (``memory.copy_GBps``; per shape ``kernels`` rows with ``results[backend]``
    and ``se_block`` against its 7-pass bound), plus ``memory.datasheet_GBps``
    and ``launch_overhead``. ``kernels``: names from ``timed_kernels()`` to time
    (the copy is always measured); None times all and the SE block. Raises
    ``RuntimeError`` without a GPU.
    """
    dtype = np.dtype(dtype)
    if dtype.type not in (np.float32, np.float64):
        raise ValueError(f"dtype: expected float32 or float64, got {dtype}")
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats: expected a positive int, got {repeats!r}")
    shapes = [tuple(int(d) for d in shape) for shape in
              (shapes if shapes is not None else (QUICK_SHAPES if quick else DEFAULT_SHAPES))]
    for shape in shapes:
        if len(shape) != 4 or min(shape) < 1:
            raise ValueError(f"shapes: expected NCHW tuples of 4 positive ints, got {shape!r}")
    if kernels is not None:
        from . import check_kernel_names
        kernels = check_kernel_names(kernels, timed_kernels()[1:])
    check_gpu()

    from numba import cuda

    from ..kernels import cuda as gpu
    from .report import write_chart, write_json

    device = cuda.get_current_device()
    datasheet = datasheet_bandwidth_GBps(device.MEMORY_CLOCK_RATE, device.GLOBAL_MEMORY_BUS_WIDTH)
    copy_shape = max(shapes, key=math.prod)
    copy_seconds = _time_batches(cuda, _kernel_launches(gpu, cuda, copy_shape, dtype)["device_copy"],
                                 repeats)
    copy_GBps = minimum_bytes("device_copy", copy_shape, dtype.itemsize) / copy_seconds / GB
    torch_note = "not requested"
    entries = []
    for shape in shapes:
        launches = _kernel_launches(gpu, cuda, shape, dtype)
        torch_launches, torch_note = (_torch_launches(shape, dtype) if include_torch
                                      else ({}, "not requested"))
        rows = []
        for name, launch in launches.items():
            if kernels is not None and name not in kernels and name != "device_copy":
                continue
            moved = minimum_bytes(name, shape, dtype.itemsize)
            row = {"kernel": name, "min_bytes": moved,
                   "results": {"cuda": rates(_time_batches(cuda, launch, repeats), moved, copy_GBps)}}
            if name in torch_launches:
                row["results"]["torch"] = rates(_time_torch(torch_launches[name], repeats),
                                                moved, copy_GBps)
            rows.append(row)
        entry = {"shape": list(shape), "dtype": dtype.name, "kernels": rows}
        if kernels is None:
            entry["se_block"] = _time_se_block(gpu, cuda, shape, dtype, repeats, copy_GBps)
        entries.append(entry)
    result = {
        "backend": "cuda",
        "memory": {"copy_GBps": copy_GBps, "datasheet_GBps": datasheet,
                   "copy_shape": list(copy_shape)},
        "shapes": entries,
        "launch_overhead": _launch_overhead(gpu, cuda, dtype, repeats),
        "settings": {"backends": ["cuda"], "repeats": repeats, "quick": quick,
                     "timing": f"CUDA events, best of repeats batches of {BATCH} launches, "
                               "after a warm-up launch", "torch": torch_note},
        "machine": {"device": device.name.decode() if isinstance(device.name, bytes)
                    else str(device.name),
                    "compute_capability": list(device.compute_capability),
                    "multiprocessors": device.MULTIPROCESSOR_COUNT,
                    "platform": platform.platform()},
    }
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, "kernels_cuda")
    write_json(result, stem + ".json")
    write_chart(result, stem + ".png")
    result["files"] = [stem + ".json", stem + ".png"]
    return result
