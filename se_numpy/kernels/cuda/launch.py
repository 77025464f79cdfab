"""How the cuda backend lays out work on a GPU, and the one host wrapper every SE kernel uses.

Host or device: the rule for moving data
----------------------------------------
Every kernel accepts NumPy arrays *or* numba device arrays and returns the
same kind as its first array argument:

* NumPy in  -> copied to the GPU, computed, copied back: NumPy out. Convenient
  (the whole library runs unchanged on ``sn.use_backend("cuda")``) but every
  call pays two trips over PCIe, so it is slower than the CPU for one call.
* device in -> computed on the GPU: device out, nothing copied back, nothing
  synchronised. Small per-channel arguments (s, dz: N·C numbers) given as
  NumPy are copied up; the feature map never crosses the bus.
  ``se_numpy.nn.CudaSEBlock`` keeps a whole SE block on the device this way.

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
"""
import contextlib
import inspect
import os

import numpy as np
from numba import config, cuda

from ..contract import INDEX, MAP, SHAPE

SIMULATOR = bool(config.ENABLE_CUDASIM)

WARP_SIZE = 32
# The simulator runs every thread as a Python thread, so there the same code
# runs with smaller blocks (64 threads: still 2 warps per block, still a tree
# wider than a warp) and switches to a block per row at 64 numbers, so that
# small test shapes reach both layouts.
THREADS_PER_BLOCK = 64 if SIMULATOR else 256    # the size of every shared-memory buffer
WARP_ROW_MAX_LENGTH = 64 if SIMULATOR else 1024 # rows up to this long get a warp, longer a block
BLOCKS_PER_MULTIPROCESSOR = 32   # grid cap: enough resident warps to hide memory latency
SIMULATOR_MAX_BLOCKS = 2

# Set by tests (``poison_outputs``) or by SE_NUMPY_CUDA_POISON=1: fill every new
# output with NaN (integers: -1) before the launch, so an element a kernel
# forgot to write shows up instead of keeping whatever the allocator left.
_settings = {"poison": os.environ.get("SE_NUMPY_CUDA_POISON", "") == "1",
             "max_blocks": None}


# ============================================================================ launch geometry
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
def _setting(name, value):
    previous = _settings[name]
    _settings[name] = value
    try:
        yield
    finally:
        _settings[name] = previous


def limit_grid(blocks):
    """Launch at most ``blocks`` blocks inside the ``with``: results must not change,
    because every kernel walks its rows with a grid-stride loop."""
    return _setting("max_blocks", int(blocks))


def poison_outputs(enabled=True):
    """Fill new outputs with NaN (integer outputs with -1) inside the ``with``."""
    return _setting("poison", bool(enabled))


def _blocks_for(jobs, jobs_per_block):
    return max(1, min(-(-jobs // jobs_per_block), _max_blocks()))


def launch_rows(kernel, rows, row_length):
    """``kernel[grid, block]`` for a rows × lanes kernel (``row_geometry``)."""
    lanes, rows_per_block = row_geometry(row_length)
    return kernel[_blocks_for(rows, rows_per_block), (lanes, rows_per_block)]


def launch_warp_rows(kernel, rows, row_length=None):
    """One warp per row whatever the row length (the warp-shuffle kernel)."""
    rows_per_block = THREADS_PER_BLOCK // WARP_SIZE
    return kernel[_blocks_for(rows, rows_per_block), (WARP_SIZE, rows_per_block)]


def launch_threads(kernel, jobs, row_length=None):
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


def rows_view(device_map):
    """(N, C, H, W) device array -> (N·C, H·W) view of the same memory."""
    n, c, h, w = device_map.shape
    return device_map.reshape(n * c, h * w)


# ============================================================================ the host wrapper
def _device_argument(value, role, dtype, rows):
    if role == MAP:
        return rows_view(to_device(value))
    if role == INDEX:
        return to_device(value, dtype=np.int64).reshape(rows)
    return to_device(value, dtype=dtype).reshape(rows)          # VECTOR, in the map's dtype


def host_wrapper(op, kernel, launch=launch_rows):
    """The host function of contract row ``op`` around a row kernel.

    The kernel takes the row views of the row's array arguments, in the
    row's order, then its outputs (maps as (N·C, H·W) rows, (N, C) vectors as
    (N·C,)). The wrapper: (1) notes whether the first array came from the
    host; (2) copies host arrays up, per-channel ones in the map's dtype;
    (3) allocates the outputs; (4) launches ``launch(kernel, rows, H·W)``;
    (5) reshapes the outputs to NCHW / (N, C); (6) copies them down if the
    first array came from the host."""
    names = [name for name, _ in op.arguments]
    arrays = [(name, role) for name, role in op.arguments if role != SHAPE]
    # the map that fixes shape and dtype: the first input map, else the x_shape
    # argument with the dtype of the first array (a gradient vector)
    shaping = [name for name, role in op.arguments if role == MAP] or [
        name for name, role in op.arguments if role == SHAPE]
    shaping = shaping[0]

    def run(*values):
        given = dict(zip(names, values))
        first = given[arrays[0][0]]
        returns_to_host = not is_device_array(first)
        if isinstance(given[shaping], tuple):
            shape, dtype = tuple(given[shaping]), np.dtype(first.dtype)
        else:
            shape, dtype = tuple(given[shaping].shape), np.dtype(given[shaping].dtype)
        n, c, h, w = shape
        rows = n * c
        inputs = [_device_argument(given[name], role, dtype, rows) for name, role in arrays]
        outputs = [new_output(shape if role == MAP else rows, np.int64 if role == INDEX else dtype)
                   for _, role in op.outputs]
        launch(kernel, rows, h * w)(*inputs, *(rows_view(out) if role == MAP else out
                                               for out, (_, role) in zip(outputs, op.outputs)))
        results = [out if role == MAP else out.reshape(n, c)
                   for out, (_, role) in zip(outputs, op.outputs)]
        if returns_to_host:
            results = [out.copy_to_host() for out in results]
        return results[0] if len(results) == 1 else tuple(results)

    run.__name__ = run.__qualname__ = op.name
    run.__doc__ = kernel.__doc__
    run.__signature__ = inspect.Signature(
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in names])
    run.kernel, run.launch = kernel, launch
    return run
