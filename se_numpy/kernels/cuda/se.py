"""The SE kernels on the GPU: squeeze, scale and the fused backward passes, one row per job.

Read ``kernels/numpy/se.py`` for the math and ``launch.py`` for the layout
(lanes × rows per block, grid-stride loops) and the host wrapper; here each
kernel sits directly above the one line that makes it the backend function.

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
"""
import numba
from numba import cuda

from ..contract import OPS
from .launch import THREADS_PER_BLOCK, WARP_SIZE, host_wrapper, launch_threads, launch_warp_rows


# ============================================================================ device helpers
@cuda.jit(device=True)
def _tree_sum(partials, slot, lane, lanes, partial):
    """Store this lane's ``partial`` at ``partials[slot + lane]``, sum the row's ``lanes``
    partials (lanes a power of two) and return the total to every lane.

    Every thread of the block must call this, the same number of times: it
    contains ``syncthreads()``. Level by level, lane l < step adds the partial
    ``step`` places to its right, halving the live partials each time::

        8 partials: [a b c d e f g h] -> [a+e b+f c+g d+h] -> [.. ..] -> [total]
    """
    partials[slot + lane] = partial
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
def _row_groups():
    """``(first, step)`` of the grid-stride loop over groups of ``blockDim.y`` rows.

    A block takes rows_per_block rows at a time, one per ``threadIdx.y``; every
    thread of the block runs the loop the same number of times, even past the
    last row, because ``_tree_sum`` synchronises the whole block."""
    return cuda.blockIdx.x * cuda.blockDim.y, cuda.gridDim.x * cuda.blockDim.y


@cuda.jit(device=True)
def _thread_rows():
    """``(first, step)`` of the grid-stride loop of this thread's rows (no reduction)."""
    return cuda.blockIdx.x * cuda.blockDim.y + cuda.threadIdx.y, cuda.gridDim.x * cuda.blockDim.y


@cuda.jit(device=True)
def _lane_sum(x_rows, row, lane, lanes):
    """This lane's share of Σ_k x_rows[row, k]: elements lane, lane + lanes, … (0 past the end)."""
    partial = x_rows.dtype.type(0)
    if row < x_rows.shape[0]:
        for k in range(lane, x_rows.shape[1], lanes):
            partial += x_rows[row, k]
    return partial


@cuda.jit(device=True)
def _lane_dot(a_rows, b_rows, row, lane, lanes):
    """This lane's share of Σ_k a_rows[row, k]·b_rows[row, k] (0 past the last row)."""
    partial = a_rows.dtype.type(0)
    if row < a_rows.shape[0]:
        for k in range(lane, a_rows.shape[1], lanes):
            partial += a_rows[row, k] * b_rows[row, k]
    return partial


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


# ============================================================================ squeeze
@cuda.jit(cache=True)
def squeeze_forward_kernel(x_rows, z):
    """z[row] = mean(x_rows[row]): coalesced per-lane partial sums, shared-memory tree.

    Launched as ``row_geometry(H·W)``: a warp or a whole block per row.
    """
    rows, row_length = x_rows.shape
    lane, lanes = cuda.threadIdx.x, cuda.blockDim.x
    slot = cuda.threadIdx.y * lanes                  # this row's stretch of the buffer
    partials = cuda.shared.array(THREADS_PER_BLOCK, dtype=x_rows.dtype)
    first, step = _row_groups()
    for group in range(first, rows, step):
        row = group + cuda.threadIdx.y
        total = _tree_sum(partials, slot, lane, lanes, _lane_sum(x_rows, row, lane, lanes))
        if row < rows and lane == 0:
            z[row] = total / x_rows.dtype.type(row_length)


squeeze_forward = host_wrapper(OPS["squeeze_forward"], squeeze_forward_kernel)


@cuda.jit(cache=True)
def squeeze_forward_naive_kernel(x_rows, z):
    """z[row] = mean(x_rows[row]), one thread per row: the first version anyone writes.

    Neighbouring threads read addresses H·W numbers apart, so every load of a
    warp touches 32 different memory segments (uncoalesced): this is the
    baseline the benchmark compares ``squeeze_forward_kernel`` against.
    """
    rows, row_length = x_rows.shape
    for row in range(cuda.grid(1), rows, cuda.gridsize(1)):
        total = x_rows.dtype.type(0)
        for k in range(row_length):
            total += x_rows[row, k]
        z[row] = total / x_rows.dtype.type(row_length)


# the same mean, as the first version anyone writes and as a warp-shuffle one (the benchmark's
# comparison); both implement the squeeze_forward row of the contract
squeeze_forward_naive = host_wrapper(OPS["squeeze_forward"], squeeze_forward_naive_kernel,
                                     launch_threads)


@cuda.jit(cache=True)
def squeeze_forward_shuffle_kernel(x_rows, z):
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


squeeze_forward_shuffle = host_wrapper(OPS["squeeze_forward"], squeeze_forward_shuffle_kernel,
                                       launch_warp_rows)


@cuda.jit(cache=True)
def squeeze_backward_kernel(dz, dx_rows):
    """dx_rows[row, k] = dz[row] / (H·W): one read of dz per row, one write per element."""
    rows, row_length = dx_rows.shape
    lane, lanes = cuda.threadIdx.x, cuda.blockDim.x
    first, step = _thread_rows()
    for row in range(first, rows, step):
        share = dz[row] / dz.dtype.type(row_length)
        for k in range(lane, row_length, lanes):
            dx_rows[row, k] = share


squeeze_backward = host_wrapper(OPS["squeeze_backward"], squeeze_backward_kernel)


@cuda.jit(cache=True)
def max_squeeze_forward_kernel(x_rows, z, argmax):
    """z[row] = max of the row, argmax[row] = index of its first maximum (NaN wins).

    Same layout as ``squeeze_forward_kernel``, but the tree carries (value, index)
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


max_squeeze_forward = host_wrapper(OPS["max_squeeze_forward"], max_squeeze_forward_kernel)


@cuda.jit(cache=True)
def max_squeeze_backward_kernel(dz, argmax, dx_rows):
    """dx_rows[row, k] = dz[row] if k == argmax[row] else 0 (writes every element once)."""
    rows, row_length = dx_rows.shape
    lane, lanes = cuda.threadIdx.x, cuda.blockDim.x
    zero = dz.dtype.type(0)
    first, step = _thread_rows()
    for row in range(first, rows, step):
        winner = argmax[row]
        gradient = dz[row]
        for k in range(lane, row_length, lanes):
            dx_rows[row, k] = gradient if k == winner else zero


max_squeeze_backward = host_wrapper(OPS["max_squeeze_backward"], max_squeeze_backward_kernel)


# ============================================================================ scale
@cuda.jit(cache=True)
def scale_forward_kernel(x_rows, s, y_rows):
    """y_rows[row, k] = x_rows[row, k] · s[row] (paper Eq. 4): read x once, write y once."""
    rows, row_length = x_rows.shape
    lane, lanes = cuda.threadIdx.x, cuda.blockDim.x
    first, step = _thread_rows()
    for row in range(first, rows, step):
        gate = s[row]                     # one load per row, kept in a register
        for k in range(lane, row_length, lanes):
            y_rows[row, k] = x_rows[row, k] * gate


scale_forward = host_wrapper(OPS["scale_forward"], scale_forward_kernel)


@cuda.jit(cache=True)
def scale_backward_kernel(dy_rows, x_rows, s, dx_rows, ds):
    """Both gradients of y = s·x in one pass: dx = dy·s (elementwise), ds = Σ dy·x.

    Reads dy and x once, writes dx once; the unfused way (a dx kernel, then
    a ds kernel) would read dy twice.
    """
    rows, row_length = x_rows.shape
    lane, lanes = cuda.threadIdx.x, cuda.blockDim.x
    partials = cuda.shared.array(THREADS_PER_BLOCK, dtype=x_rows.dtype)
    first, step = _row_groups()
    for group in range(first, rows, step):
        row = group + cuda.threadIdx.y
        partial = x_rows.dtype.type(0)
        if row < rows:
            gate = s[row]
            for k in range(lane, row_length, lanes):
                upstream = dy_rows[row, k]
                dx_rows[row, k] = upstream * gate
                partial += upstream * x_rows[row, k]
        total = _tree_sum(partials, cuda.threadIdx.y * lanes, lane, lanes, partial)
        if row < rows and lane == 0:
            ds[row] = total


scale_backward = host_wrapper(OPS["scale_backward"], scale_backward_kernel)


# ============================================================================ fused SE
@cuda.jit(cache=True)
def se_backward_ds_kernel(dy_rows, x_rows, ds):
    """ds[row] = Σ_k dy_rows[row, k] · x_rows[row, k]: the SE backward's first pass."""
    lane, lanes = cuda.threadIdx.x, cuda.blockDim.x
    partials = cuda.shared.array(THREADS_PER_BLOCK, dtype=x_rows.dtype)
    first, step = _row_groups()
    for group in range(first, x_rows.shape[0], step):
        row = group + cuda.threadIdx.y
        partial = _lane_dot(dy_rows, x_rows, row, lane, lanes)
        total = _tree_sum(partials, cuda.threadIdx.y * lanes, lane, lanes, partial)
        if row < x_rows.shape[0] and lane == 0:
            ds[row] = total


se_backward_ds = host_wrapper(OPS["se_backward_ds"], se_backward_ds_kernel)


@cuda.jit(cache=True)
def se_backward_dx_kernel(dy_rows, s, dz, dx_rows):
    """dx = dy·s + dz/(H·W): both paths from x to the loss in one pass (reads dy, writes dx)."""
    rows, row_length = dy_rows.shape
    lane, lanes = cuda.threadIdx.x, cuda.blockDim.x
    first, step = _thread_rows()
    for row in range(first, rows, step):
        gate = s[row]
        share = dz[row] / dz.dtype.type(row_length)
        for k in range(lane, row_length, lanes):
            dx_rows[row, k] = dy_rows[row, k] * gate + share


se_backward_dx = host_wrapper(OPS["se_backward_dx"], se_backward_dx_kernel)


@cuda.jit(cache=True)
def scale_add_forward_kernel(u_rows, s, shortcut_rows, out_rows):
    """out = u·s + shortcut ("Axpy"): the residual add fused into the scale, one pass."""
    rows, row_length = u_rows.shape
    lane, lanes = cuda.threadIdx.x, cuda.blockDim.x
    first, step = _thread_rows()
    for row in range(first, rows, step):
        gate = s[row]
        for k in range(lane, row_length, lanes):
            out_rows[row, k] = u_rows[row, k] * gate + shortcut_rows[row, k]


scale_add_forward = host_wrapper(OPS["scale_add_forward"], scale_add_forward_kernel)
