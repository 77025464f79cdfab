"""Time every kernel and the whole SE block on the CPU backends, against the bandwidth limit.

For each kernel we count the bytes it *must* move: every input array read
once and every output written once (``minimum_bytes``). Dividing by the best
time gives the achieved GB/s; dividing that by the measured copy bandwidth
gives the fraction of the limit, the number to look at: 1.0 means the loop is
as fast as memory lets any loop be.

The SE block (paper Fig. 1 / Eq. 2-4) is timed forward + backward, written
once against the kernel interface (``se_block_forward_backward``) so the NumPy
and Numba backends run the very same algorithm:

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

from ..kernels import cpu as numba_kernels
from ..kernels import cpu_naive
from ..kernels import numpy_ref
from .memory import GB, best_time

SE_BLOCK_PASSES = 7


def minimum_bytes(arrays):
    """Bytes moved if every array is read or written exactly once."""
    return int(sum(np.asarray(a).nbytes for a in arrays))


def _outputs(result):
    return result if isinstance(result, tuple) else (result,)


def kernel_cases(shape, dtype, seed=0):
    """[(name, function(kernels) -> outputs, inputs)] for one feature-map shape.

    Inputs are built once; ``function`` takes a kernel module (numpy_ref or
    cpu) and calls the kernel of that name, so both backends get identical
    arguments."""
    rng = np.random.default_rng(seed)
    n, c, h, w = shape
    x = rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
    dy = rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
    s = rng.uniform(0.1, 1, size=(n, c)).astype(dtype)
    dz = rng.standard_normal((n, c)).astype(dtype)
    _, squeeze_argmax = numpy_ref.max_squeeze_forward(x)
    pool = ((2, 2), (2, 2), (0, 0))
    pooled_shape = (n, c, h // 2, w // 2)
    dpool = rng.standard_normal(pooled_shape).astype(dtype)
    _, pool_argmax = numpy_ref.max_pool2d_forward(x, *pool)
    cases = [
        ("squeeze_forward", lambda k: k.squeeze_forward(x), [x]),
        ("squeeze_backward", lambda k: k.squeeze_backward(dz, shape), [dz]),
        ("max_squeeze_forward", lambda k: k.max_squeeze_forward(x), [x]),
        ("max_squeeze_backward", lambda k: k.max_squeeze_backward(dz, squeeze_argmax, shape),
         [dz, squeeze_argmax]),
        ("scale_forward", lambda k: k.scale_forward(x, s), [x, s]),
        ("scale_backward", lambda k: k.scale_backward(dy, x, s), [dy, x, s]),
        ("se_backward_ds", lambda k: k.se_backward_ds(dy, x), [dy, x]),
        ("se_backward_dx", lambda k: k.se_backward_dx(dy, s, dz), [dy, s, dz]),
        ("scale_add_forward", lambda k: k.scale_add_forward(x, s, dy), [x, s, dy]),
        ("max_pool2d_forward", lambda k: k.max_pool2d_forward(x, *pool), [x]),
        ("max_pool2d_backward", lambda k: k.max_pool2d_backward(dpool, pool_argmax, shape),
         [dpool, pool_argmax]),
        ("avg_pool2d_forward", lambda k: k.avg_pool2d_forward(x, *pool), [x]),
        ("avg_pool2d_backward", lambda k: k.avg_pool2d_backward(dpool, shape, *pool), [dpool]),
    ]
    # a 3×3 im2col writes 9 copies of x: only where that stays modest in memory
    if 9 * x.nbytes <= 512 * 2 ** 20:
        conv = ((3, 3), (1, 1), (1, 1), (1, 1))
        cols = numpy_ref.im2col(x, *conv)
        cases += [("im2col", lambda k: k.im2col(x, *conv), [x]),
                  ("col2im", lambda k: k.col2im(cols, shape, *conv), [cols])]
    return cases, {"x": x, "dy": dy, "s": s, "dz": dz}


def time_kernels(shape, dtype, backends, repeats, torch_timer=None):
    """One row per kernel: minimum bytes, and per backend seconds and GB/s."""
    modules = {"numpy": numpy_ref, "numba": numba_kernels}
    cases, _ = kernel_cases(shape, dtype)
    rows = []
    for name, call, inputs in cases:
        outputs = _outputs(call(numpy_ref))
        moved = minimum_bytes(list(inputs) + list(outputs))
        row = {"kernel": name, "min_bytes": moved, "results": {}}
        for backend in backends:
            seconds = best_time(lambda: call(modules[backend]), repeats)
            row["results"][backend] = _rates(seconds, moved)
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
    block = entry["se_block"]
    block["bound_seconds"] = block["bytes"] / (bandwidth_GBps * GB)
    for timing in block["results"].values():
        timing["times_bound"] = timing["seconds"] / block["bound_seconds"]
    return entry


# --------------------------------------------------------------------------- the SE block
def se_parameters(channels, reduction=16, dtype=np.float32, seed=0):
    """fc1 (C/r, C) and fc2 (C, C/r) weights and biases, PyTorch's Linear layout."""
    rng = np.random.default_rng(seed)
    hidden = max(channels // reduction, 1)
    return {"fc1_weight": (rng.standard_normal((hidden, channels)) / np.sqrt(channels)).astype(dtype),
            "fc1_bias": np.zeros(hidden, dtype=dtype),
            "fc2_weight": (rng.standard_normal((channels, hidden)) / np.sqrt(hidden)).astype(dtype),
            "fc2_bias": np.zeros(channels, dtype=dtype)}


def se_block_forward_backward(kernels, x, dy, params):
    """One SE block forward and backward through ``kernels``; returns (y, dx, grads)."""
    # forward: squeeze -> excitation (paper Eq. 3) -> scale (Eq. 4)
    z = kernels.squeeze_forward(x)
    hidden = np.maximum(z @ params["fc1_weight"].T + params["fc1_bias"], 0)
    s = 1 / (1 + np.exp(-(hidden @ params["fc2_weight"].T + params["fc2_bias"])))
    y = kernels.scale_forward(x, s)
    # backward: ds -> through sigmoid, fc2, relu, fc1 -> dz -> dx
    ds = kernels.se_backward_ds(dy, x)
    dgate = ds * s * (1 - s)
    dhidden = (dgate @ params["fc2_weight"]) * (hidden > 0)
    dz = dhidden @ params["fc1_weight"]
    dx = kernels.se_backward_dx(dy, s, dz)
    grads = {"fc2_weight": dgate.T @ hidden, "fc2_bias": dgate.sum(0),
             "fc1_weight": dhidden.T @ z, "fc1_bias": dhidden.sum(0)}
    return y, dx, grads


def time_se_block(shape, dtype, backends, repeats, torch_timer=None):
    """Forward + backward of one SE block per backend, against the 7-pass bound."""
    modules = {"numpy": numpy_ref, "numba": numba_kernels}
    _, arrays = kernel_cases(shape, dtype)
    params = se_parameters(shape[1], dtype=dtype)
    x, dy = arrays["x"], arrays["dy"]
    result = {"passes": SE_BLOCK_PASSES, "bytes": SE_BLOCK_PASSES * x.nbytes, "results": {}}
    timings = {}
    for backend in backends:
        timings[backend] = best_time(
            lambda: se_block_forward_backward(modules[backend], x, dy, params), repeats)
    if torch_timer is not None:
        seconds = torch_timer("se_block", shape, dtype, repeats, params=params)
        if seconds is not None:
            timings["torch"] = seconds
    for backend, seconds in timings.items():
        result["results"][backend] = {"seconds": seconds}
    return result


# --------------------------------------------------------------------------- teaching progression
def time_progression(shape, dtype, repeats):
    """The drafts of cpu_naive.py next to the final kernels (docs/kernels.md's table)."""
    _, arrays = kernel_cases(shape, dtype)
    x, dy, s, dz = arrays["x"], arrays["dy"], arrays["s"], arrays["dz"]
    rows_of_x = x.reshape(x.shape[0] * x.shape[1], -1)
    sums = np.empty(rows_of_x.shape[0], dtype=x.dtype)
    area = float(rows_of_x.shape[1])
    steps = [
        ("squeeze 1: pixel-outer loop order", lambda: cpu_naive.squeeze_forward_pixel_outer(x), 1),
        ("squeeze 2: same-dtype sum, IEEE order", lambda: cpu_naive.squeeze_forward_naive(x), 1),
        ("squeeze 3: float64 sum, IEEE order", lambda: cpu_naive.squeeze_forward_float64(x), 1),
        ("squeeze 4: + reassoc (serial)",
         lambda: numba_kernels._row_sums_serial(rows_of_x, sums, area), 1),
        ("squeeze 5: + prange (parallel)",
         lambda: numba_kernels._row_sums_parallel(rows_of_x, sums, area), 1),
        ("se_backward_dx: int divisor in loop (float64 promotion)",
         lambda: cpu_naive.se_backward_dx_promoting(dy, s, dz), 2),
        ("se_backward_dx: per-row shift in map dtype", lambda: numba_kernels.se_backward_dx(dy, s, dz), 2),
    ]
    table = []
    for label, function, passes in steps:
        seconds = best_time(function, repeats)
        rates = _rates(seconds, passes * x.nbytes)
        table.append({"step": label, **rates})
    return table
