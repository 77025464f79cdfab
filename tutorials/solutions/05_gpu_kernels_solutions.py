# %% [markdown]
# # Solutions to the exercises of tutorial 5 (GPU kernels with numba.cuda)
#
# Like the tutorial, this picks the simulator before numba is imported when
# no CUDA driver can be loaded.

# %% [markdown]
# **Setup.** In a fresh notebook environment (a kernel without `se_numpy`)
# the next cell installs it, with its dependencies, from the clone this
# notebook sits in. Where `se_numpy` is already installed, and when the file
# runs as a script, it does nothing.

# %%
import importlib.util
import subprocess
import sys
from pathlib import Path

if importlib.util.find_spec("se_numpy") is None:
    clone = [folder for folder in (Path.cwd(), *Path.cwd().parents)
             if (folder / "pyproject.toml").is_file() and (folder / "se_numpy" / "__init__.py").is_file()]
    if not clone:
        raise RuntimeError("se_numpy is not installed and this folder is not inside a clone of "
                           "it: clone the repository and open the notebook there")
    subprocess.run([sys.executable, "-m", "pip", "install", "-e", str(clone[0])], check=True)
    sys.path.insert(0, str(clone[0]))      # importable in this kernel without a restart

# %%
import ctypes
import os


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
# Without `syncthreads()` between the levels, lane 0 may add
# `partials[16]` before lane 16 has finished adding `partials[24]` into it:
# a race. Whether the wrong order actually happens depends on scheduling. On
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
print(f"without barriers, worst error over 3 runs: {worst:.1e} "
      "(any value above ~1e-7 is the race showing)")

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
