# %% [markdown]
# # Solutions to the exercises of tutorial 5 (GPU kernels with numba.cuda)
#
# Like the tutorial, this picks the simulator before numba is imported when
# no CUDA driver can be loaded.

# %% [markdown]
# **Setup (notebooks only).** The next cell runs `tutorials/_setup.py`,
# which installs `se_numpy` from this clone when the kernel does not have it
# yet (a fresh environment) and otherwise does nothing. In the `.py` file
# the line is a comment, so a script skips it.

# %%
# %run ../_setup.py

# %%
import ctypes
import os
import sys


def cuda_driver_present():
    for library in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            ctypes.CDLL(library)
            return True
        except OSError:
            continue
    return False


if "NUMBA_ENABLE_CUDASIM" not in os.environ and not cuda_driver_present():
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
if "numba" in sys.modules:        # imported earlier in this kernel: a re-run, or another cell
    import numba
    if bool(numba.config.ENABLE_CUDASIM) != (os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"):
        raise RuntimeError("numba was imported before NUMBA_ENABLE_CUDASIM was set, so it "
                           "cannot switch to the simulator now: restart the kernel and run "
                           "this notebook from the top")

import numpy as np  # noqa: E402
from numba import cuda  # noqa: E402

import se_numpy as sn  # noqa: E402

NAME = "05_gpu_kernels_solutions"
FIGURES = []
SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
LANES = 32
rng = np.random.default_rng(0)
shape = (2, 4, 8, 8) if SIMULATOR else (32, 256, 56, 56)
x = rng.standard_normal(shape).astype(np.float32)
row_count = shape[0] * shape[1]
x_rows = cuda.to_device(x.reshape(row_count, -1))
expected = x.mean(axis=(2, 3), dtype=np.float64).reshape(-1)

# %% [markdown]
# ## 1. The missing barrier
#
# Without the barriers nothing orders one lane's writes before another
# lane's reads. Two races: at the first step (16) lane 0 may read
# `partials[16]` before lane 16 has stored its own partial sum in it; and
# at step 8 lane 0 reads `partials[8]`, which lane 8 updates at step 16
# (`partials[8] += partials[24]`): if lane 0 gets there first, the
# contribution of `partials[24]` is lost. Whether the wrong order actually
# happens depends on scheduling. On
# a GPU the 32 lanes of one warp often run in lock-step, so a warp-sized
# tree can *appear* to work — until a block has more than one warp, or a
# newer GPU schedules lanes independently (Volta and later). The simulator
# runs threads as Python threads and may or may not show it on a given run;
# a passing run proves nothing about a race.


# %%
@cuda.jit
def squeeze_tree_without_barrier(x_rows, z):
    rows, row_length = x_rows.shape
    lane = cuda.threadIdx.x
    partials = cuda.shared.array(LANES, dtype=x_rows.dtype)
    for row in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        partial = x_rows.dtype.type(0)
        for k in range(lane, row_length, LANES):
            partial += x_rows[row, k]
        partials[lane] = partial
        step = LANES // 2
        while step > 0:                       # no syncthreads(): a race
            if lane < step:
                partials[lane] += partials[lane + step]
            step //= 2
        if lane == 0:
            z[row] = partials[0] / x_rows.dtype.type(row_length)


worst = 0.0
for attempt in range(3):
    z = cuda.device_array(row_count, dtype=np.float32)
    squeeze_tree_without_barrier[2, LANES](x_rows, z)
    worst = max(worst, float(np.abs(z.copy_to_host() - expected).max()))
# what float32 rounding alone gives: the library's tree, which has its barriers
rounding = float(np.abs(sn.kernels.cuda.squeeze_forward(x).reshape(-1) - expected).max())
print(f"without barriers, worst error over 3 runs: {worst:.1e}; with them (the library's "
      f"kernel), rounding alone: {rounding:.1e}")
print("the race showed: a partial sum was read before it was written" if worst > 10 * rounding
      + 1e-7 else "no wrong result in these 3 runs, which proves nothing about the race")

# %% [markdown]
# ## 2. The scale with one thread per element


# %%
@cuda.jit
def scale_per_element(x_rows, gates, y_rows):
    rows, row_length = x_rows.shape
    for index in range(cuda.grid(1), rows * row_length, cuda.gridsize(1)):
        row, k = index // row_length, index % row_length
        y_rows[row, k] = x_rows[row, k] * gates[row]


gates = rng.uniform(0.1, 1.0, shape[:2]).astype(np.float32)
y_rows = cuda.device_array((row_count, shape[2] * shape[3]), dtype=np.float32)
blocks = 4 if SIMULATOR else 1024
scale_per_element[blocks, 64](x_rows, cuda.to_device(gates.reshape(-1)), y_rows)
y = y_rows.copy_to_host().reshape(shape)
reference = sn.kernels.numpy.scale_forward(x, gates)
print("scale kernel equals kernels.numpy.scale_forward:", np.array_equal(y, reference))
assert np.array_equal(y, reference)     # one float32 multiply per element: exactly equal

# %% [markdown]
# ## 3. The grid size does not change the result
#
# The grid-stride loop only decides *which block* handles a row; the order
# of additions inside a row (lane partials, then the fixed tree) is the
# same whichever block does it. Same operations in the same order: the same
# bits.


# %%
@cuda.jit
def squeeze_tree(x_rows, z):
    rows, row_length = x_rows.shape
    lane = cuda.threadIdx.x
    partials = cuda.shared.array(LANES, dtype=x_rows.dtype)
    for row in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        partial = x_rows.dtype.type(0)
        for k in range(lane, row_length, LANES):
            partial += x_rows[row, k]
        partials[lane] = partial
        cuda.syncthreads()
        step = LANES // 2
        while step > 0:
            if lane < step:
                partials[lane] += partials[lane + step]
            cuda.syncthreads()
            step //= 2
        if lane == 0:
            z[row] = partials[0] / x_rows.dtype.type(row_length)
        cuda.syncthreads()


results = []
for blocks in (1, 2, 5):
    z = cuda.device_array(row_count, dtype=np.float32)
    squeeze_tree[blocks, LANES](x_rows, z)
    results.append(z.copy_to_host())
print("1, 2 and 5 blocks give identical bits:",
      all(np.array_equal(results[0], other) for other in results[1:]))
assert all(np.array_equal(results[0], other) for other in results[1:])
assert np.abs(results[0] - expected).max() < 1e-5
