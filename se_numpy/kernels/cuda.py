"""numba.cuda GPU kernels: the functions of ``numpy_ref.py``, same names, same signatures.

Read ``numpy_ref.py`` for the math of each function; this file explains how the
work is laid out on a GPU. It is the only module of the project that imports
``numba.cuda``; ``backend.py`` imports it when the ``cuda`` backend is chosen.

Host or device: the rule for moving data
----------------------------------------
Every public function accepts NumPy arrays *or* numba device arrays and returns
the same kind as its first array argument:

* NumPy in  -> copied to the GPU, computed, copied back: NumPy out. Convenient
  (the whole library runs unchanged on ``sn.use_backend("cuda")``) but every
  call pays two trips over PCIe, so it is slower than the CPU for one call.
* device in -> computed in place on the GPU: device out, nothing copied back,
  nothing synchronised. Small per-channel arguments (s, dz: N·C numbers) given
  as NumPy are copied up; the feature map never crosses the bus.
  ``cuda_device.CudaSEBlock`` keeps a whole SE block on the device this way.

A feature map is always viewed as ``rows = N·C`` rows of ``H·W`` numbers (free
for a C-contiguous array): every SE kernel is one independent job per row.

How the threads are laid out
----------------------------
A block has ``THREADS_PER_BLOCK = 256`` threads arranged as
``(lanes, rows_per_block)``: ``threadIdx.x`` is the lane within a row,
``threadIdx.y`` picks which of the block's rows. ``row_geometry(H·W)`` chooses

* ``(32, 8)`` when ``H·W <= 1024`` -- one *warp* per row, 8 rows per block.
  A 7×7 or 14×14 map would leave most of a 256-thread block idle;
* ``(256, 1)`` otherwise -- one *block* per row (56×56 = 3136 numbers:
  ~12 per thread).

Lane ``l`` reads elements ``l, l + lanes, l + 2·lanes, ...`` of its row, so
the 32 lanes of a warp read 32 neighbouring numbers at once: one 128-byte
transaction for float32 ("coalesced"). Every kernel walks the rows with a
*grid-stride loop* (``for row in range(first, rows, rows_per_grid)``), so
the result never depends on the grid size: the launch caps the grid at a few
blocks per multiprocessor and each block takes several rows.

Reductions (squeeze, ds) keep one partial sum per lane in a register, store
it in shared memory and add the ``lanes`` partials in a tree of ``log2(lanes)``
halving steps with ``syncthreads()`` between them.

Accumulation precision (deliberate)
-----------------------------------
float32 kernels accumulate in **float32**: each lane adds ``H·W / lanes``
numbers (12 for 56×56, 196 for 224²), then the tree adds the partials pairwise,
so the rounding error grows like ``(H·W/lanes + log2 lanes)·ε`` rather than
``H·W·ε``: about 1e-6 relative at 224², well inside what a float32 network
notices. (The NumPy and CPU backends sum float32 in float64; that costs nothing
on a CPU, but on many GPUs float64 runs at 1/32-1/64 of the float32 rate.) The
accumulator is created as ``x.dtype.type(0)``: a literal ``0.0`` is float64 in
Numba and would silently make a float32 kernel do float64 arithmetic.
``tests/test_cuda_ptx.py`` compiles every kernel for compute capability 9.0 and
checks that no float32 kernel contains a float64 instruction.

Functions without a GPU version (explicit host fallback)
--------------------------------------------------------
``im2col``, ``col2im``, ``conv2d_forward``, ``conv2d_backward``, the
``batch_norm_*`` functions and the pooling functions run NumPy's reference on the host (device inputs are copied down and
the result copied back), so every layer of the library still works on this
backend. Convolutions are not what an
SE block adds; a GPU convolution is out of scope here.
"""
import contextlib
import functools
import os

import numba
import numpy as np
from numba import cuda

from . import numpy_ref

NAME = "cuda"

SIMULATOR = bool(numba.config.ENABLE_CUDASIM)

WARP_SIZE = 32
# The simulator runs every thread as a Python thread, so there the same code
# runs with smaller blocks (64 threads: still 2 warps per block, still a tree
# wider than a warp) and switches to a block per row at 64 numbers, so that
# small test shapes reach both layouts.
THREADS_PER_BLOCK = 64 if SIMULATOR else 256    # the size of every shared-memory buffer
WARP_ROW_MAX_LENGTH = 64 if SIMULATOR else 1024 # rows up to this long get a warp, longer a block
BLOCKS_PER_MULTIPROCESSOR = 32   # grid cap: enough resident warps to hide memory latency
SIMULATOR_MAX_BLOCKS = 2

conv_output_size = numpy_ref.conv_output_size

# Set by tests (``poison_outputs``) or by SE_NUMPY_CUDA_POISON=1: fill every new
# output with NaN (integers: -1) before the launch, so an element a kernel
# forgot to write shows up instead of keeping whatever the allocator left.
_settings = {"poison": os.environ.get("SE_NUMPY_CUDA_POISON", "") == "1",
             "max_blocks": None}


def check_available():
    """Raise ``RuntimeError`` unless a CUDA GPU (or Numba's CUDA simulator) can run kernels."""
    if SIMULATOR:
        return
    if not cuda.is_available():
        raise RuntimeError(
            "the 'cuda' backend needs an NVIDIA GPU with a working driver, and none was found. "
            "Install the GPU extra (pip install 'se_numpy[cuda13]' or 'se_numpy[cuda12]') on a "
            "machine with a GPU, or set NUMBA_ENABLE_CUDASIM=1 before Python starts to run the "
            "kernels in Numba's (slow) CUDA simulator.")


# ============================================================================ launch helpers
def row_geometry(row_length):
    """Block shape ``(lanes, rows_per_block)`` for rows of ``row_length`` numbers."""
    if row_length <= WARP_ROW_MAX_LENGTH:
        return WARP_SIZE, THREADS_PER_BLOCK // WARP_SIZE
    return THREADS_PER_BLOCK, 1


def _max_blocks():
    """Grid cap: an explicit ``limit_grid``, the simulator's, or 32 blocks per multiprocessor."""
    if _settings["max_blocks"] is not None:
        return _settings["max_blocks"]
    if SIMULATOR:
        return SIMULATOR_MAX_BLOCKS
    return cuda.get_current_device().MULTIPROCESSOR_COUNT * BLOCKS_PER_MULTIPROCESSOR


@contextlib.contextmanager
def limit_grid(blocks):
    """Launch at most ``blocks`` blocks inside the ``with``: results must not change,
    because every kernel walks its rows with a grid-stride loop."""
    previous = _settings["max_blocks"]
    _settings["max_blocks"] = int(blocks)
    try:
        yield
    finally:
        _settings["max_blocks"] = previous


@contextlib.contextmanager
def poison_outputs(enabled=True):
    """Fill new outputs with NaN (integer outputs with -1) inside the ``with``."""
    previous = _settings["poison"]
    _settings["poison"] = bool(enabled)
    try:
        yield
    finally:
        _settings["poison"] = previous


def _blocks_for(jobs, jobs_per_block):
    return max(1, min(-(-jobs // jobs_per_block), _max_blocks()))


def launch_rows(kernel, rows, row_length):
    """``kernel[grid, block]`` for a rows × lanes kernel."""
    lanes, rows_per_block = row_geometry(row_length)
    return kernel[_blocks_for(rows, rows_per_block), (lanes, rows_per_block)]


def launch_warp_rows(kernel, rows):
    """One warp per row whatever the row length (the warp-shuffle kernel)."""
    rows_per_block = THREADS_PER_BLOCK // WARP_SIZE
    return kernel[_blocks_for(rows, rows_per_block), (WARP_SIZE, rows_per_block)]


def launch_threads(kernel, jobs):
    """One thread per job, 1-D (the naive kernel)."""
    return kernel[_blocks_for(jobs, THREADS_PER_BLOCK), THREADS_PER_BLOCK]


# ============================================================================ host <-> device
def is_device_array(array):
    """True for a numba device array (``cuda.to_device``, ``cuda.device_array``)."""
    return not isinstance(array, np.ndarray) and hasattr(array, "copy_to_host")


def to_device(array, dtype=None):
    """A C-contiguous device array: copied from the host if needed, as it is otherwise."""
    if is_device_array(array):
        if not array.is_c_contiguous():
            raise ValueError(f"expected a C-contiguous device array, got strides {array.strides} "
                             f"for shape {array.shape}")
        return array
    return cuda.to_device(np.ascontiguousarray(array, dtype=dtype))


def new_output(shape, dtype):
    """An uninitialised device array (poisoned with NaN / -1 when poisoning is on)."""
    dtype = np.dtype(dtype)
    if _settings["poison"]:
        fill = np.nan if dtype.kind == "f" else -1
        return cuda.to_device(np.full(shape, fill, dtype=dtype))
    return cuda.device_array(shape, dtype=dtype)


def _like_input(result, returns_to_host):
    return result.copy_to_host() if returns_to_host else result


def rows_view(device_map):
    """(N, C, H, W) device array -> (N·C, H·W) view of the same memory."""
    n, c, h, w = device_map.shape
    return device_map.reshape(n * c, h * w)


def _is_empty(shape):
    return int(np.prod(shape)) == 0


def _reference_on_host(function, *arrays, returns_to_host):
    """Run the NumPy reference on host copies; return results of the caller's kind."""
    host = [a.copy_to_host() if is_device_array(a) else a for a in arrays]
    result = function(*host)
    if returns_to_host:
        return result
    if isinstance(result, tuple):
        return tuple(cuda.to_device(np.ascontiguousarray(r)) for r in result)
    return cuda.to_device(np.ascontiguousarray(result))


# ============================================================================ device helpers
@cuda.jit(device=True)
def _tree_sum(partials, slot, lane, lanes):
    """Sum ``partials[slot : slot + lanes]`` (lanes a power of two) and return it.

    Every thread of the block must call this, the same number of times: it
    contains ``syncthreads()``. Level by level, lane l < step adds the partial
    ``step`` places to its right, halving the live partials each time::

        8 partials: [a b c d e f g h] -> [a+e b+f c+g d+h] -> [.. ..] -> [total]
    """
    cuda.syncthreads()                    # every lane has stored its partial
    step = lanes // 2
    while step > 0:
        if lane < step:
            partials[slot + lane] += partials[slot + lane + step]
        cuda.syncthreads()                # this level is complete before the next reads it
        step //= 2
    total = partials[slot]
    cuda.syncthreads()                    # all have read the total before the buffer is reused
    return total


@cuda.jit(device=True)
def _beats(value, index, best_value, best_index):
    """Does ``(value, index)`` replace ``(best_value, best_index)`` as the arg-max?

    NumPy's rules: a NaN counts as the maximum, and on a tie the smaller
    (earlier, row-major) index wins. ``v != v`` is the NaN test.
    """
    if value != value:
        return best_value == best_value or index < best_index
    if best_value != best_value:
        return False
    return value > best_value or (value == best_value and index < best_index)


# ============================================================================ squeeze kernels
@cuda.jit(cache=True)
def squeeze_naive_kernel(x_rows, z):
    """z[row] = mean(x_rows[row]), one thread per row: the first version anyone writes.

    Neighbouring threads read addresses H·W numbers apart, so every load of a
    warp touches 32 different memory segments (uncoalesced): this is the
    baseline the benchmark compares ``squeeze_tree_kernel`` against.
    """
    rows, row_length = x_rows.shape
    for row in range(cuda.grid(1), rows, cuda.gridsize(1)):
        total = x_rows.dtype.type(0)
        for k in range(row_length):
            total += x_rows[row, k]
        z[row] = total / x_rows.dtype.type(row_length)


@cuda.jit(cache=True)
def squeeze_tree_kernel(x_rows, z):
    """z[row] = mean(x_rows[row]): coalesced per-lane partial sums, shared-memory tree.

    Launched as ``row_geometry(H·W)``: a warp or a whole block per row.
    """
    rows, row_length = x_rows.shape
    lane, lanes = cuda.threadIdx.x, cuda.blockDim.x
    partials = cuda.shared.array(THREADS_PER_BLOCK, dtype=x_rows.dtype)
    slot = cuda.threadIdx.y * lanes                  # this row's stretch of the buffer
    rows_per_block = cuda.blockDim.y
    # The loop runs over groups of rows, the same number of times in every
    # thread of the block, because _tree_sum synchronises the whole block.
    for first_row in range(cuda.blockIdx.x * rows_per_block, rows,
                           cuda.gridDim.x * rows_per_block):
        row = first_row + cuda.threadIdx.y
        partial = x_rows.dtype.type(0)
        if row < rows:
            for k in range(lane, row_length, lanes):
                partial += x_rows[row, k]
        partials[slot + lane] = partial
        total = _tree_sum(partials, slot, lane, lanes)
        if row < rows and lane == 0:
            z[row] = total / x_rows.dtype.type(row_length)


@cuda.jit(cache=True)
def squeeze_shuffle_kernel(x_rows, z):
    """z[row] = mean(x_rows[row]) with one warp per row and no shared memory (GPU only).

    After the per-lane sums, ``shfl_down_sync`` hands lane l the partial of
    lane l + offset for offset = 16, 8, 4, 2, 1: five register-to-register
    steps and no ``syncthreads``. Launched with 32 lanes whatever H·W is. The
    CUDA simulator has no warp shuffles, so this runs only on a real GPU.
    """
    rows, row_length = x_rows.shape
    lane = cuda.threadIdx.x
    rows_per_block = cuda.blockDim.y
    for row in range(cuda.blockIdx.x * rows_per_block + cuda.threadIdx.y, rows,
                     cuda.gridDim.x * rows_per_block):
        partial = x_rows.dtype.type(0)
        for k in range(lane, row_length, WARP_SIZE):
            partial += x_rows[row, k]
        offset = WARP_SIZE // 2
        while offset > 0:
            partial += cuda.shfl_down_sync(0xFFFFFFFF, partial, offset)
            offset //= 2
        if lane == 0:
            z[row] = partial / x_rows.dtype.type(row_length)


@cuda.jit(cache=True)
def squeeze_backward_kernel(dz, dx_rows):
    """dx_rows[row, k] = dz[row] / (H·W): one read of dz per row, one write per element."""
    rows, row_length = dx_rows.shape
    lane, lanes = cuda.threadIdx.x, cuda.blockDim.x
    for row in range(cuda.blockIdx.x * cuda.blockDim.y + cuda.threadIdx.y, rows,
                     cuda.gridDim.x * cuda.blockDim.y):
        share = dz[row] / dz.dtype.type(row_length)
        for k in range(lane, row_length, lanes):
            dx_rows[row, k] = share


@cuda.jit(cache=True)
def max_squeeze_kernel(x_rows, z, argmax):
    """z[row] = max of the row, argmax[row] = index of its first maximum (NaN wins).

    Same layout as ``squeeze_tree_kernel``, but the tree carries (value, index)
    pairs and keeps the better one by ``_beats`` instead of adding.
    """
    rows, row_length = x_rows.shape
    lane, lanes = cuda.threadIdx.x, cuda.blockDim.x
    best_values = cuda.shared.array(THREADS_PER_BLOCK, dtype=x_rows.dtype)
    best_indices = cuda.shared.array(THREADS_PER_BLOCK, dtype=numba.int64)
    slot = cuda.threadIdx.y * lanes
    rows_per_block = cuda.blockDim.y
    for first_row in range(cuda.blockIdx.x * rows_per_block, rows,
                           cuda.gridDim.x * rows_per_block):
        row = first_row + cuda.threadIdx.y
        # Each lane scans elements lane, lane + lanes, ... keeping the first
        # best. A lane past the end of a short row takes element 0 instead:
        # a copy of a real candidate can never change the winner.
        best_value = x_rows.dtype.type(0)
        best_index = 0
        if row < rows:
            start = lane if lane < row_length else 0
            best_value = x_rows[row, start]
            best_index = start
            for k in range(start + lanes, row_length, lanes):
                if _beats(x_rows[row, k], k, best_value, best_index):
                    best_value = x_rows[row, k]
                    best_index = k
        best_values[slot + lane] = best_value
        best_indices[slot + lane] = best_index
        cuda.syncthreads()
        step = lanes // 2
        while step > 0:
            if lane < step:
                other = slot + lane + step
                if _beats(best_values[other], best_indices[other],
                          best_values[slot + lane], best_indices[slot + lane]):
                    best_values[slot + lane] = best_values[other]
                    best_indices[slot + lane] = best_indices[other]
            cuda.syncthreads()
            step //= 2
        if row < rows and lane == 0:
            z[row] = best_values[slot]
            argmax[row] = best_indices[slot]
        cuda.syncthreads()                # lane 0 has read the winner before reuse


@cuda.jit(cache=True)
def max_squeeze_backward_kernel(dz, argmax, dx_rows):
    """dx_rows[row, k] = dz[row] if k == argmax[row] else 0 (writes every element once)."""
    rows, row_length = dx_rows.shape
    lane, lanes = cuda.threadIdx.x, cuda.blockDim.x
    zero = dz.dtype.type(0)
    for row in range(cuda.blockIdx.x * cuda.blockDim.y + cuda.threadIdx.y, rows,
                     cuda.gridDim.x * cuda.blockDim.y):
        winner = argmax[row]
        gradient = dz[row]
        for k in range(lane, row_length, lanes):
            dx_rows[row, k] = gradient if k == winner else zero


# ============================================================================ scale kernels
@cuda.jit(cache=True)
def scale_kernel(x_rows, s, y_rows):
    """y_rows[row, k] = x_rows[row, k] · s[row] (paper Eq. 4): read x once, write y once."""
    rows, row_length = x_rows.shape
    lane, lanes = cuda.threadIdx.x, cuda.blockDim.x
    for row in range(cuda.blockIdx.x * cuda.blockDim.y + cuda.threadIdx.y, rows,
                     cuda.gridDim.x * cuda.blockDim.y):
        gate = s[row]                     # one load per row, kept in a register
        for k in range(lane, row_length, lanes):
            y_rows[row, k] = x_rows[row, k] * gate


@cuda.jit(cache=True)
def row_dot_kernel(dy_rows, x_rows, ds):
    """ds[row] = Σ_k dy_rows[row, k] · x_rows[row, k]: the SE backward's first pass."""
    rows, row_length = x_rows.shape
    lane, lanes = cuda.threadIdx.x, cuda.blockDim.x
    partials = cuda.shared.array(THREADS_PER_BLOCK, dtype=x_rows.dtype)
    slot = cuda.threadIdx.y * lanes
    rows_per_block = cuda.blockDim.y
    for first_row in range(cuda.blockIdx.x * rows_per_block, rows,
                           cuda.gridDim.x * rows_per_block):
        row = first_row + cuda.threadIdx.y
        partial = x_rows.dtype.type(0)
        if row < rows:
            for k in range(lane, row_length, lanes):
                partial += dy_rows[row, k] * x_rows[row, k]
        partials[slot + lane] = partial
        total = _tree_sum(partials, slot, lane, lanes)
        if row < rows and lane == 0:
            ds[row] = total


@cuda.jit(cache=True)
def scale_backward_kernel(dy_rows, x_rows, s, dx_rows, ds):
    """Both gradients of y = s·x in one pass: dx = dy·s (elementwise), ds = Σ dy·x.

    Reads dy and x once, writes dx once; the unfused way (a dx kernel, then
    a ds kernel) would read dy twice.
    """
    rows, row_length = x_rows.shape
    lane, lanes = cuda.threadIdx.x, cuda.blockDim.x
    partials = cuda.shared.array(THREADS_PER_BLOCK, dtype=x_rows.dtype)
    slot = cuda.threadIdx.y * lanes
    rows_per_block = cuda.blockDim.y
    for first_row in range(cuda.blockIdx.x * rows_per_block, rows,
                           cuda.gridDim.x * rows_per_block):
        row = first_row + cuda.threadIdx.y
        partial = x_rows.dtype.type(0)
        if row < rows:
            gate = s[row]
            for k in range(lane, row_length, lanes):
                upstream = dy_rows[row, k]
                dx_rows[row, k] = upstream * gate
                partial += upstream * x_rows[row, k]
        partials[slot + lane] = partial
        total = _tree_sum(partials, slot, lane, lanes)
        if row < rows and lane == 0:
            ds[row] = total


@cuda.jit(cache=True)
def se_backward_dx_kernel(dy_rows, s, dz, dx_rows):
    """dx = dy·s + dz/(H·W): both paths from x to the loss in one pass (reads dy, writes dx)."""
    rows, row_length = dy_rows.shape
    lane, lanes = cuda.threadIdx.x, cuda.blockDim.x
    for row in range(cuda.blockIdx.x * cuda.blockDim.y + cuda.threadIdx.y, rows,
                     cuda.gridDim.x * cuda.blockDim.y):
        gate = s[row]
        share = dz[row] / dz.dtype.type(row_length)
        for k in range(lane, row_length, lanes):
            dx_rows[row, k] = dy_rows[row, k] * gate + share


@cuda.jit(cache=True)
def scale_add_kernel(u_rows, s, shortcut_rows, out_rows):
    """out = u·s + shortcut ("Axpy"): the residual add fused into the scale, one pass."""
    rows, row_length = u_rows.shape
    lane, lanes = cuda.threadIdx.x, cuda.blockDim.x
    for row in range(cuda.blockIdx.x * cuda.blockDim.y + cuda.threadIdx.y, rows,
                     cuda.gridDim.x * cuda.blockDim.y):
        gate = s[row]
        for k in range(lane, row_length, lanes):
            out_rows[row, k] = u_rows[row, k] * gate + shortcut_rows[row, k]


# Every kernel of this file, for the PTX test and the benchmark.
KERNELS = {kernel.py_func.__name__: kernel for kernel in (
    squeeze_naive_kernel, squeeze_tree_kernel, squeeze_shuffle_kernel, squeeze_backward_kernel,
    max_squeeze_kernel, max_squeeze_backward_kernel, scale_kernel, row_dot_kernel,
    scale_backward_kernel, se_backward_dx_kernel, scale_add_kernel)}


# ============================================================================ squeeze
def _squeeze_with(kernel, launch, x):
    returns_to_host = not is_device_array(x)
    if _is_empty(x.shape):
        return _reference_on_host(numpy_ref.squeeze_forward, x, returns_to_host=returns_to_host)
    x_rows = rows_view(to_device(x))
    z = new_output(x_rows.shape[0], x.dtype)
    launch(kernel, x_rows)(x_rows, z)
    return _like_input(z.reshape(x.shape[0], x.shape[1]), returns_to_host)


def squeeze_forward(x):
    """Global average pooling, z[n,c] = 1/(HW) Σ_ij x[n,c,i,j] (optimised tree kernel)."""
    return _squeeze_with(squeeze_tree_kernel,
                         lambda kernel, rows: launch_rows(kernel, *rows.shape), x)


def squeeze_forward_naive(x):
    """The same mean with one thread per row (uncoalesced; the benchmark's baseline)."""
    return _squeeze_with(squeeze_naive_kernel,
                         lambda kernel, rows: launch_threads(kernel, rows.shape[0]), x)


def squeeze_forward_shuffle(x):
    """The same mean with one warp per row and warp shuffles (real GPU only)."""
    return _squeeze_with(squeeze_shuffle_kernel,
                         lambda kernel, rows: launch_warp_rows(kernel, rows.shape[0]), x)


def squeeze_backward(dz, x_shape):
    """dx[n,c,i,j] = dz[n,c] / (HW).  (N,C) -> x_shape."""
    returns_to_host = not is_device_array(dz)
    if _is_empty(x_shape):
        return _reference_on_host(lambda d: numpy_ref.squeeze_backward(d, x_shape), dz,
                                  returns_to_host=returns_to_host)
    n, c, h, w = x_shape
    dz_rows = to_device(dz).reshape(n * c)
    dx = new_output(tuple(x_shape), dz.dtype)
    launch_rows(squeeze_backward_kernel, n * c, h * w)(dz_rows, rows_view(dx))
    return _like_input(dx, returns_to_host)


def max_squeeze_forward(x):
    """Global max pooling: returns ``(z, argmax)``, argmax int64 = first maximum's i·W + j."""
    returns_to_host = not is_device_array(x)
    if _is_empty(x.shape):
        return _reference_on_host(numpy_ref.max_squeeze_forward, x,
                                  returns_to_host=returns_to_host)
    x_rows = rows_view(to_device(x))
    rows, row_length = x_rows.shape
    z = new_output(rows, x.dtype)
    argmax = new_output(rows, np.int64)
    launch_rows(max_squeeze_kernel, rows, row_length)(x_rows, z, argmax)
    n, c = x.shape[:2]
    return (_like_input(z.reshape(n, c), returns_to_host),
            _like_input(argmax.reshape(n, c), returns_to_host))


def max_squeeze_backward(dz, argmax, x_shape):
    """dx[n,c,argmax[n,c]] = dz[n,c]; zero elsewhere."""
    returns_to_host = not is_device_array(dz)
    if _is_empty(x_shape):
        return _reference_on_host(
            lambda d, a: numpy_ref.max_squeeze_backward(d, a, x_shape), dz, argmax,
            returns_to_host=returns_to_host)
    n, c, h, w = x_shape
    dz_rows = to_device(dz).reshape(n * c)
    argmax_rows = to_device(argmax, dtype=np.int64).reshape(n * c)
    dx = new_output(tuple(x_shape), dz.dtype)
    launch_rows(max_squeeze_backward_kernel, n * c, h * w)(dz_rows, argmax_rows,
                                                               rows_view(dx))
    return _like_input(dx, returns_to_host)


# ============================================================================ scale
def _per_row(values, dtype, rows):
    """(N, C) per-channel numbers -> (N·C,) device vector (copied up if on the host)."""
    return to_device(values, dtype=dtype).reshape(rows)


def scale_forward(x, s):
    """Channel-wise rescale (paper Eq. 4). y[n,c,i,j] = s[n,c] · x[n,c,i,j]."""
    returns_to_host = not is_device_array(x)
    if _is_empty(x.shape):
        return _reference_on_host(numpy_ref.scale_forward, x, s, returns_to_host=returns_to_host)
    x_rows = rows_view(to_device(x))
    rows, row_length = x_rows.shape
    y = new_output(x.shape, x.dtype)
    launch_rows(scale_kernel, rows, row_length)(x_rows, _per_row(s, x.dtype, rows),
                                                 rows_view(y))
    return _like_input(y, returns_to_host)


def scale_backward(dy, x, s):
    """Both gradients of y = s·x, fused in one pass: ``(dx, ds)``."""
    returns_to_host = not is_device_array(dy)
    if _is_empty(dy.shape):
        return _reference_on_host(numpy_ref.scale_backward, dy, x, s,
                                  returns_to_host=returns_to_host)
    dy_rows = rows_view(to_device(dy))
    rows, row_length = dy_rows.shape
    dx = new_output(dy.shape, dy.dtype)
    ds = new_output(rows, dy.dtype)
    launch_rows(scale_backward_kernel, rows, row_length)(
        dy_rows, rows_view(to_device(x)), _per_row(s, dy.dtype, rows), rows_view(dx), ds)
    n, c = dy.shape[:2]
    return _like_input(dx, returns_to_host), _like_input(ds.reshape(n, c), returns_to_host)


# ============================================================================ fused SE
def se_backward_ds(dy, x):
    """First backward pass of an SE block: ds[n,c] = Σ_ij dy·x (reads dy and x once)."""
    returns_to_host = not is_device_array(dy)
    if _is_empty(dy.shape):
        return _reference_on_host(numpy_ref.se_backward_ds, dy, x,
                                  returns_to_host=returns_to_host)
    dy_rows = rows_view(to_device(dy))
    rows, row_length = dy_rows.shape
    ds = new_output(rows, dy.dtype)
    launch_rows(row_dot_kernel, rows, row_length)(dy_rows, rows_view(to_device(x)), ds)
    return _like_input(ds.reshape(dy.shape[0], dy.shape[1]), returns_to_host)


def se_backward_dx(dy, s, dz):
    """Second backward pass of an SE block: dx = dy·s + dz/(HW) in one pass."""
    returns_to_host = not is_device_array(dy)
    if _is_empty(dy.shape):
        return _reference_on_host(numpy_ref.se_backward_dx, dy, s, dz,
                                  returns_to_host=returns_to_host)
    dy_rows = rows_view(to_device(dy))
    rows, row_length = dy_rows.shape
    dx = new_output(dy.shape, dy.dtype)
    launch_rows(se_backward_dx_kernel, rows, row_length)(
        dy_rows, _per_row(s, dy.dtype, rows), _per_row(dz, dy.dtype, rows), rows_view(dx))
    return _like_input(dx, returns_to_host)


def scale_add_forward(u, s, shortcut):
    """Caffe SENet's "Axpy": out = s·u + shortcut, one pass (reads u and shortcut, writes out)."""
    returns_to_host = not is_device_array(u)
    if _is_empty(u.shape):
        return _reference_on_host(numpy_ref.scale_add_forward, u, s, shortcut,
                                  returns_to_host=returns_to_host)
    u_rows = rows_view(to_device(u))
    rows, row_length = u_rows.shape
    out = new_output(u.shape, u.dtype)
    launch_rows(scale_add_kernel, rows, row_length)(
        u_rows, _per_row(s, u.dtype, rows), rows_view(to_device(shortcut)), rows_view(out))
    return _like_input(out, returns_to_host)


def scale_add_backward(dout, u, s):
    """Gradients of out = s·u + shortcut: (du, ds); d(shortcut) is dout itself."""
    return scale_backward(dout, u, s)


# ============================================================================ host fallbacks
def _host_fallback(reference):
    """Wrap a NumPy reference function: run it on the host, return the caller's kind."""
    def run_on_host(*args):
        arrays_from_device = any(is_device_array(a) for a in args)
        host_args = [a.copy_to_host() if is_device_array(a) else a for a in args]
        result = reference(*host_args)
        if not arrays_from_device:
            return result
        if isinstance(result, tuple):
            return tuple(cuda.to_device(np.ascontiguousarray(r)) for r in result)
        return cuda.to_device(np.ascontiguousarray(result))

    functools.update_wrapper(run_on_host, reference)     # name and signature of the reference
    run_on_host.__doc__ = (f"Host fallback (no GPU version): NumPy's "
                           f"``numpy_ref.{reference.__name__}``.\n\n{reference.__doc__}")
    return run_on_host


im2col = _host_fallback(numpy_ref.im2col)
col2im = _host_fallback(numpy_ref.col2im)
conv2d_forward = _host_fallback(numpy_ref.conv2d_forward)
conv2d_backward = _host_fallback(numpy_ref.conv2d_backward)
batch_norm_statistics = _host_fallback(numpy_ref.batch_norm_statistics)
batch_norm_normalize = _host_fallback(numpy_ref.batch_norm_normalize)
batch_norm_backward_sums = _host_fallback(numpy_ref.batch_norm_backward_sums)
batch_norm_backward_dx = _host_fallback(numpy_ref.batch_norm_backward_dx)
max_pool2d_forward = _host_fallback(numpy_ref.max_pool2d_forward)
max_pool2d_backward = _host_fallback(numpy_ref.max_pool2d_backward)
avg_pool2d_forward = _host_fallback(numpy_ref.avg_pool2d_forward)
avg_pool2d_backward = _host_fallback(numpy_ref.avg_pool2d_backward)
