# %% [markdown]
# # Solutions to the exercises of tutorial 4 (CPU kernels with Numba)

# %% [markdown]
# **Setup (notebooks only).** The next cell runs `tutorials/_setup.py`,
# which installs `se_numpy` from this clone when the kernel does not have it
# yet (a fresh environment) and otherwise does nothing. In the `.py` file
# the line is a comment, so a script skips it.

# %%
# %run ../_setup.py

# %%
import os
import time

import numba
import numpy as np
from numba import njit, prange

import se_numpy as sn

NAME = "04_cpu_kernels_solutions"
FIGURES = []
FAST = os.environ.get("SE_NUMPY_FAST", "0") not in ("", "0")
REPEATS = 3 if FAST else 10
GB = 1e9


def best_time(function, repeats=REPEATS):
    function()
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


source = np.random.default_rng(0).random((64 if FAST else 256) * 2 ** 18, dtype=np.float32)
destination = np.ones_like(source)
COPY_GBPS = 2 * source.nbytes / best_time(lambda: np.copyto(destination, source)) / GB
print(f"copy bandwidth: {COPY_GBPS:.1f} GB/s")

shape = (8, 64, 56, 56) if FAST else (32, 64, 56, 56)
rng = np.random.default_rng(0)
dy = rng.standard_normal(shape, dtype=np.float32)
gates = rng.uniform(0.1, 1.0, shape[:2]).astype(np.float32)
dz = rng.standard_normal(shape[:2]).astype(np.float32)

# %% [markdown]
# ## 1. The second backward pass, dx = dy·s + dz/(HW)
#
# The shift `dz[n,c]/(HW)` is the same for the whole channel: compute it
# once per channel, *in the map's dtype*. Minimum traffic: read `dy`, write
# `dx`, i.e. the same as a copy.


# %%
@njit(parallel=True, cache=True)
def se_backward_dx(dy, gates, dz):
    n_images, channels, height, width = dy.shape
    area = dy.dtype.type(height * width)       # float32 for a float32 map
    dx = np.empty_like(dy)
    for n in prange(n_images):
        for c in range(channels):
            gate, shift = gates[n, c], dz[n, c] / area
            for i in range(height):
                for j in range(width):
                    dx[n, c, i, j] = dy[n, c, i, j] * gate + shift
    return dx


@njit(parallel=True, cache=True)
def se_backward_dx_promoting(dy, gates, dz):
    n_images, channels, height, width = dy.shape
    dx = np.empty_like(dy)
    for n in prange(n_images):
        for c in range(channels):
            for i in range(height):
                for j in range(width):
                    # float32 / int64 is float64 (NumPy's rule): every element is
                    # converted to double, computed, and rounded back
                    dx[n, c, i, j] = dy[n, c, i, j] * gates[n, c] + dz[n, c] / (height * width)
    return dx


expected = sn.kernels.numpy.se_backward_dx(dy, gates, dz)
for kernel in (se_backward_dx, se_backward_dx_promoting):
    result = kernel(dy, gates, dz)
    assert result.dtype == np.float32
    assert np.allclose(result, expected, rtol=1e-6, atol=1e-7)
    seconds = best_time(lambda: kernel(dy, gates, dz))
    ir = "\n".join(kernel.inspect_llvm().values())
    print(f"{kernel.__name__:28s} {2 * dy.nbytes / seconds / GB:6.2f} GB/s "
          f"({2 * dy.nbytes / seconds / GB / COPY_GBPS:.0%} of copy); "
          f"float->double conversions in the IR: {ir.count('fpext')}")

# %% [markdown]
# The promoting version converts every element to double (`fpext`) and
# computes at half the SIMD width. Whether that costs time depends on
# whether the loop is memory bound (large maps: hardly) or not (maps in cache:
# clearly); the library avoids the question by writing the loop in the map's
# dtype.
#
# ## 2. The wrong loop order


# %%
@njit(cache=True)
def squeeze_pixel_outer(x):
    n_images, channels, height, width = x.shape
    z = np.zeros((n_images, channels))
    for i in range(height):
        for j in range(width):
            for n in range(n_images):
                for c in range(channels):
                    z[n, c] += x[n, c, i, j]       # consecutive reads are H·W apart
    return z / (height * width)


@njit(cache=True)
def squeeze_channel_outer(x):
    n_images, channels, height, width = x.shape
    z = np.zeros((n_images, channels))
    for n in range(n_images):
        for c in range(channels):
            total = 0.0
            for i in range(height):
                for j in range(width):
                    total += x[n, c, i, j]         # consecutive reads are neighbours
            z[n, c] = total
    return z / (height * width)


x = dy
assert np.allclose(squeeze_pixel_outer(x), squeeze_channel_outer(x), rtol=1e-10)
order_speed = {}
for kernel in (squeeze_channel_outer, squeeze_pixel_outer):
    order_speed[kernel.__name__] = x.nbytes / best_time(lambda: kernel(x)) / GB
    print(f"{kernel.__name__:24s} {order_speed[kernel.__name__]:6.2f} GB/s")
ratio = order_speed["squeeze_pixel_outer"] / order_speed["squeeze_channel_outer"]
print(f"(i, j) outside runs at {ratio:.2f}x the speed of (n, c) outside here, with "
      f"N·C = {x.shape[0] * x.shape[1]} cache lines touched per pixel "
      f"({x.shape[0] * x.shape[1] * 64 // 1024} KiB)")

# %% [markdown]
# Memory is fetched in 64-byte cache lines (16 float32). With `(n, c)`
# outside the reads are consecutive: every byte fetched is used at once and
# the prefetcher streams ahead. With `(i, j)` outside, each step jumps
# `H·W·4` bytes ahead, touching `N·C` different lines per pixel. If those
# `N·C` lines (here 512 lines = 32 KiB) stay in cache until the next pixel,
# each line is still used 16 times and the damage is small; the inner loop
# over `c` even updates independent sums (no dependent chain), which can make
# the "wrong" order the faster one — the cell prints which it was here. Make
# `N·C` large (e.g. `C = 2048`, `N = 64`: 8 MiB of lines per pixel) and every
# access misses: that is the case to avoid. Measure before you believe a
# rule of thumb.
#
# ## 3. One thread or two


# %%
@njit(parallel=True, fastmath={"reassoc", "contract"}, cache=True)
def squeeze_parallel(x):
    rows = x.reshape(x.shape[0] * x.shape[1], x.shape[2] * x.shape[3])
    z = np.empty(rows.shape[0])
    for r in prange(rows.shape[0]):
        total = 0.0
        for k in range(rows.shape[1]):
            total += np.float64(rows[r, k])
        z[r] = total / rows.shape[1]
    return z


timings = {}
for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
    numba.set_num_threads(threads)
    timings[threads] = best_time(lambda: squeeze_parallel(x))
    print(f"{threads} thread(s): {x.nbytes / timings[threads] / GB:6.2f} GB/s")
numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
assert all(np.isfinite(list(timings.values())))
if len(timings) > 1:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    gain = timings[1] / timings[max(timings)]
    print(f"{max(timings)} threads: {gain:.2f}x the speed of one (load average {load:.1f} on "
          f"{os.cpu_count()} CPUs); one thread reached {x.nbytes / timings[1] / GB / COPY_GBPS:.0%}"
          " of the copy bandwidth")

# %% [markdown]
# One core can have only so many cache-line requests in flight, so a single
# thread usually cannot saturate the memory bus; a second core adds its own
# requests. The gain is large when one core is far below the copy bandwidth
# and small when it already is close — and nil or negative on a machine
# busy with other work.
