"""Time every kernel and the whole SE block on the CPU backends, against the bandwidth limit.

For each kernel we count the bytes it *must* move: every input array read
once and every output written once (``contract.minimum_bytes``, from the
roles in ``kernels/contract.py``; the CUDA benchmark counts the same way).
Dividing by the best time gives the achieved GB/s; dividing that by the
measured copy bandwidth gives the fraction of the limit, the number to look
at: 1.0 means the loop is as fast as memory lets any loop be.

The SE block (paper Fig. 1 / Eq. 2-4) is the library's own
``functional.se_block_forward`` / ``se_block_backward``, timed forward +
backward under ``use_backend``, so the benchmark measures what a model runs:

    forward:  z = squeeze(x)                       read x            (1 pass)
              s = σ(W2·relu(W1·z + b1) + b2)        (N, C): tiny, NumPy matmuls
              y = scale(x, s)                       read x, write y   (2 passes)
    backward: ds = Σ_ij dy·x                        read dy and x     (2 passes)
              dz = excitation backward of ds        tiny
              dx = dy·s + dz/(HW)                   read dy, write dx (2 passes)

7 passes over an x-sized array in all: the lower bound is
7 · bytes(x) / copy bandwidth.
"""
import numpy as np

from .. import functional as F
from ..kernels import backend, contract
from .memory import GB, best_time

SE_BLOCK_PASSES = 7

# a 3×3 im2col writes 9 copies of x: timed only where that stays modest in memory
UNFOLD_LIMIT_BYTES = 512 * 2 ** 20


def timed_kernel_names():
    """The contract rows this benchmark times (the convolution has its own benchmark)."""
    return [op.name for op in contract.CONTRACT if not (op.file == "conv" and op.kind == "core")]


def kernel_cases(shape, dtype, seed=0, names=None):
    """[(name, arguments)] for one feature-map shape: every contract kernel (or those in
    ``names``), built once. Both backends get identical arguments (``contract.example_arguments``)."""
    cases = []
    for op in contract.CONTRACT:
        if names is not None and op.name not in names:
            continue
        if op.file == "conv" and op.kind == "core":
            continue              # the convolution has its own benchmark (bench_train_step.py)
        if op.file == "conv" and 9 * np.prod(shape) * np.dtype(dtype).itemsize > UNFOLD_LIMIT_BYTES:
            continue
        cases.append((op.name, contract.example_arguments(op.name, shape, dtype, seed)))
    return cases


def time_kernels(shape, dtype, backends, repeats, torch_timer=None, names=None):
    """One row per kernel (every one, or those in ``names``): minimum bytes, and per backend
    seconds and GB/s."""
    modules = {name: backend.load_backend(name) for name in backends}
    moved_per_kernel = {}
    rows = []
    for name, arguments in kernel_cases(shape, dtype, names=names):
        moved = moved_per_kernel.setdefault(
            name, contract.minimum_bytes(name, shape, np.dtype(dtype).itemsize))
        row = {"kernel": name, "min_bytes": moved, "results": {}}
        for backend_name in backends:
            kernel = getattr(modules[backend_name], name)
            seconds = best_time(lambda: kernel(*arguments), repeats)
            row["results"][backend_name] = _rates(seconds, moved)
        if torch_timer is not None:
            seconds = torch_timer(name, shape, dtype, repeats)
            if seconds is not None:
                row["results"]["torch"] = _rates(seconds, moved)
        rows.append(row)
    return rows


def _rates(seconds, moved):
    return {"seconds": seconds, "GBps": moved / seconds / GB}


def add_fractions(entry, bandwidth_GBps):
    """Fill in every "fraction_of_bandwidth" and the SE block's bound once the limit is known."""
    for row in entry["kernels"]:
        for rates in row["results"].values():
            rates["fraction_of_bandwidth"] = rates["GBps"] / bandwidth_GBps
    for step in entry.get("progression", []):
        step["fraction_of_bandwidth"] = step["GBps"] / bandwidth_GBps
    block = entry.get("se_block")
    if block is None:                 # not timed: the run was limited to some kernels
        return entry
    block["bound_seconds"] = block["bytes"] / (bandwidth_GBps * GB)
    for timing in block["results"].values():
        timing["times_bound"] = timing["seconds"] / block["bound_seconds"]
    return entry


# --------------------------------------------------------------------------- the SE block
def se_parameters(channels, reduction=16, dtype=np.float32, seed=0):
    """fc1 (C/r, C) and fc2 (C, C/r) weights and biases, PyTorch's Linear layout."""
    rng = np.random.default_rng(seed)
    hidden = F.hidden_width(channels, reduction)
    return {"fc1_weight": (rng.standard_normal((hidden, channels)) / np.sqrt(channels)).astype(dtype),
            "fc1_bias": np.zeros(hidden, dtype=dtype),
            "fc2_weight": (rng.standard_normal((channels, hidden)) / np.sqrt(hidden)).astype(dtype),
            "fc2_bias": np.zeros(channels, dtype=dtype)}


def se_block_forward_backward(backend_name, x, dy, params):
    """One SE block forward and backward, the library's functions on ``backend_name``.

    Returns ``(y, (dx, dw1, db1, dw2, db2))``."""
    with backend.use_backend(backend_name):
        y, cache = F.se_block_forward(x, params["fc1_weight"], params["fc1_bias"],
                                      params["fc2_weight"], params["fc2_bias"])
        return y, F.se_block_backward(dy, cache)


def time_se_block(shape, dtype, backends, repeats, torch_timer=None):
    """Forward + backward of one SE block per backend, against the 7-pass bound."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
    dy = rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
    params = se_parameters(shape[1], dtype=dtype)
    result = {"passes": SE_BLOCK_PASSES, "bytes": SE_BLOCK_PASSES * x.nbytes, "results": {}}
    timings = {}
    for backend_name in backends:
        timings[backend_name] = best_time(
            lambda: se_block_forward_backward(backend_name, x, dy, params), repeats)
    if torch_timer is not None:
        seconds = torch_timer("se_block", shape, dtype, repeats, params=params)
        if seconds is not None:
            timings["torch"] = seconds
    for backend_name, seconds in timings.items():
        result["results"][backend_name] = {"seconds": seconds}
    return result


# --------------------------------------------------------------------------- teaching progression
def time_progression(shape, dtype, repeats):
    """The drafts of kernels/numba/naive.py next to the final kernels (docs/kernels.md's table)."""
    from ..kernels import numba as numba_kernels
    from ..kernels.numba import naive, se
    dy, s, dz = contract.example_arguments("se_backward_dx", shape, dtype)
    x = dy
    rows_of_x = x.reshape(x.shape[0] * x.shape[1], -1)
    sums = np.empty(rows_of_x.shape[0], dtype=x.dtype)
    area = float(rows_of_x.shape[1])
    steps = [
        ("squeeze 1: pixel-outer loop order", lambda: naive.squeeze_forward_pixel_outer(x), 1),
        ("squeeze 2: same-dtype sum, IEEE order", lambda: naive.squeeze_forward_same_dtype(x), 1),
        ("squeeze 3: float64 sum, IEEE order", lambda: naive.squeeze_forward_float64(x), 1),
        ("squeeze 4: + reassoc (serial)",
         lambda: se.squeeze_forward_loop.serial(rows_of_x, sums, area), 1),
        ("squeeze 5: + prange (parallel)",
         lambda: se.squeeze_forward_loop.parallel(rows_of_x, sums, area), 1),
        ("se_backward_dx: int divisor in loop (float64 promotion)",
         lambda: naive.se_backward_dx_promoting(dy, s, dz), 2),
        ("se_backward_dx: per-row shift in map dtype",
         lambda: numba_kernels.se_backward_dx(dy, s, dz), 2),
    ]
    table = []
    for label, function, passes in steps:
        seconds = best_time(function, repeats)
        rates = _rates(seconds, passes * x.nbytes)
        table.append({"step": label, **rates})
    return table
