# %% [markdown]
# # 4. CPU kernels with Numba
#
# The SE block's expensive parts are not its two small FC layers but the two
# passes over the feature map: the **squeeze** (a mean per channel, reads
# the whole map) and the **scale** (multiplies every entry by its channel's
# gate, reads and writes the whole map). Each does one or two arithmetic
# operations per number it loads, so the question is never "how many FLOPs"
# but "how close to the memory bandwidth".
#
# We write the same two operations six ways — a Python loop, NumPy, `@njit`,
# `@njit` with re-association, in parallel, and fused with the residual
# addition — and measure each against the **copy bandwidth measured in the
# same run**: copying an array is the fastest any "read it once, write it
# once" loop can be.
#
# The library's versions are in `se_numpy/kernels/numba/` (with their first
# drafts in `numba/naive.py`); `benchmarks/bench_kernels.py` measures all of
# them on large maps.

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
import os
import re
import sys
import time
from pathlib import Path

import matplotlib
if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")          # write PNGs; no screen needed
import matplotlib.pyplot as plt
import numba
import numpy as np
from numba import njit, prange

import se_numpy as sn
from se_numpy.analysis.figures import show

NAME = "04_cpu_kernels"
FIGURES = ["bandwidth_bars.png", "reassociation.png"]
FAST = os.environ.get("SE_NUMPY_FAST", "0") not in ("", "0")
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("SE_NUMPY_TUTORIAL_OUT", HERE / "out")) / NAME
OUT.mkdir(parents=True, exist_ok=True)
print(f"figures go to {OUT}  (fast mode: {FAST})")
print(f"numba {numba.__version__}, {numba.config.NUMBA_NUM_THREADS} threads")

REPEATS = 3 if FAST else 10
# Timings mean little on a busy machine, parallel ones least of all (a thread
# that waits for a descheduled sibling stalls the whole loop): say so.
load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
if load > (os.cpu_count() or 1) * 0.5:
    print(f"warning: load average {load:.1f} on {os.cpu_count()} CPUs: "
          "other processes are running, the timings below will be noisy")
GB = 1e9


def best_time(function, repeats=REPEATS):
    """Best of ``repeats`` calls, after one untimed call (which also compiles).

    The minimum, not the mean: noise from other processes only ever adds time."""
    function()
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


# %% [markdown]
# ## The speed limit: copy bandwidth
#
# `np.copyto(destination, source)` reads `source` once and writes
# `destination` once: `2 × size` bytes. The array is larger than the L3
# cache, so the bytes really come from and go to memory.

# %%
copy_bytes = (64 if FAST else 256) * 2 ** 20
source = np.random.default_rng(0).random(copy_bytes // 4, dtype=np.float32)
destination = np.ones_like(source)        # touched once, so no page faults are timed
copy_seconds = best_time(lambda: np.copyto(destination, source))
COPY_GBPS = 2 * source.nbytes / copy_seconds / GB
print(f"copy bandwidth: {COPY_GBPS:.1f} GB/s  ({source.nbytes / 2**20:.0f} MiB copied)")
del source, destination

# %% [markdown]
# ## The feature map
#
# A stage-1 map of a ResNet-50 (`C = 64`, `56 x 56`), float32, at batch 32:
# 25 MiB per map, and the scale touches three of them, more than the caches
# hold, as in a real network. (In fast mode the batch is 8 and the maps fit
# in a large L3 cache, so fractions above 100% of the copy bandwidth can
# appear: the copy was measured on an array that does not fit.)

# %%
shape = (8, 64, 56, 56) if FAST else (32, 64, 56, 56)
rng = np.random.default_rng(0)
x = rng.standard_normal(shape, dtype=np.float32)
shortcut = rng.standard_normal(shape, dtype=np.float32)
gates = rng.uniform(0.1, 1.0, size=shape[:2]).astype(np.float32)
reference_z = x.mean(axis=(2, 3), dtype=np.float64)         # float64 truth for the squeeze
print(f"x: {shape}, {x.nbytes / 2**20:.1f} MiB")
results = {}          # label -> (achieved GB/s, kind)


def record(label, kind, seconds, moved_bytes):
    results[label] = (moved_bytes / seconds / GB, kind)
    print(f"{label:42s} {seconds * 1e3:9.3f} ms  {moved_bytes / seconds / GB:7.2f} GB/s "
          f"= {moved_bytes / seconds / GB / COPY_GBPS:6.1%} of copy")


# %% [markdown]
# ## Squeeze, step by step
#
# The minimum the squeeze must move is one read of `x`. Dividing those bytes
# by the time gives the achieved bandwidth.
#
# **1. A Python loop.** Every `x[n, c, i, j]` is a Python call that boxes a
# float: hundreds of nanoseconds per number. We time it on a *small* map
# and report bytes per second all the same.

# %%
def squeeze_python(x):
    n_images, channels, height, width = x.shape
    z = np.zeros((n_images, channels))
    for n in range(n_images):
        for c in range(channels):
            total = 0.0
            for i in range(height):
                for j in range(width):
                    total += x[n, c, i, j]
            z[n, c] = total / (height * width)
    return z


small = x[:1, :8, :28, :28].copy()
assert np.allclose(squeeze_python(small), reference_z[:1, :8] * 0 + small.mean(axis=(2, 3)),
                   rtol=1e-5)
record("squeeze: Python loop (small map)", "squeeze", best_time(lambda: squeeze_python(small), 1),
       small.nbytes)

# %% [markdown]
# **2. NumPy.** `x.mean(axis=(2, 3), dtype=np.float64)` runs in C. The
# float64 accumulator matters: a float32 running sum over 3136 numbers
# loses digits (see the last section).

# %%
record("squeeze: NumPy mean", "squeeze",
       best_time(lambda: x.mean(axis=(2, 3), dtype=np.float64)), x.nbytes)


# %% [markdown]
# **3. `@njit`, the same loop as the Python one**, compiled by Numba to
# machine code. The running sum is float64 and the additions are done in
# strict IEEE order: one long chain where each addition waits for the
# previous one (~4 cycles each), so the loop cannot use SIMD lanes.

# %%
@njit(cache=True)
def squeeze_njit(x):
    n_images, channels, height, width = x.shape
    z = np.empty((n_images, channels), dtype=np.float64)
    for n in range(n_images):
        for c in range(channels):
            total = 0.0
            for i in range(height):
                for j in range(width):
                    total += x[n, c, i, j]
            z[n, c] = total / (height * width)
    return z


assert np.allclose(squeeze_njit(x), reference_z, rtol=1e-12)
record("squeeze: @njit, strict order", "squeeze", best_time(lambda: squeeze_njit(x)), x.nbytes)


# %% [markdown]
# **4. `@njit(fastmath={"reassoc"})`.** Allowing the compiler to
# *re-associate* `((a + b) + c) + d` as `(a + c) + (b + d)` lets it keep 8 or
# 16 partial sums in SIMD registers. The result changes in the last bits
# (a different order of additions), which for a mean is harmless. We do not
# use `fastmath=True`: that also assumes no NaN or inf, and a NaN in a
# feature map must still come out as NaN.

# %%
@njit(fastmath={"reassoc", "contract"}, cache=True)
def squeeze_reassociated(x):
    n_images, channels, height, width = x.shape
    z = np.empty((n_images, channels), dtype=np.float64)
    for n in range(n_images):
        for c in range(channels):
            total = 0.0
            for i in range(height):
                for j in range(width):
                    total += np.float64(x[n, c, i, j])
            z[n, c] = total / (height * width)
    return z


assert np.allclose(squeeze_reassociated(x), reference_z, rtol=1e-12)
record("squeeze: @njit + reassoc", "squeeze", best_time(lambda: squeeze_reassociated(x)),
       x.nbytes)


# %% [markdown]
# **5. In parallel.** The `N·C` channel sums are independent: `prange`
# hands them to the threads. One core rarely saturates the memory bus.

# %%
@njit(parallel=True, fastmath={"reassoc", "contract"}, cache=True)
def squeeze_parallel(x):
    n_images, channels, height, width = x.shape
    rows = x.reshape(n_images * channels, height * width)   # a free view: x is contiguous
    z = np.empty(n_images * channels, dtype=np.float64)
    for r in prange(rows.shape[0]):
        total = 0.0
        for k in range(rows.shape[1]):
            total += np.float64(rows[r, k])
        z[r] = total / rows.shape[1]
    return z.reshape(n_images, channels)


assert np.allclose(squeeze_parallel(x), reference_z, rtol=1e-12)
record("squeeze: @njit parallel + reassoc", "squeeze", best_time(lambda: squeeze_parallel(x)),
       x.nbytes)
record("squeeze: library (sn.kernels.numba)", "squeeze",
       best_time(lambda: sn.kernels.numba.squeeze_forward(x)), x.nbytes)

# %% [markdown]
# ## Scale, and the residual addition
#
# In an SE-ResNet unit the scaled map is added to the shortcut:
# `out = s·u + shortcut` (paper Fig. 3). The least this must move is: read
# `u`, read `shortcut`, write `out` — three map-sized arrays. Done as two
# operations (scale, then add) it moves five: read `u`, write `y`, read `y`
# and `shortcut`, write `out`. We count the *minimum* bytes for every variant,
# so the extra traffic of the unfused ones shows up as lower GB/s.

# %%
minimum_bytes = 3 * x.nbytes
expected = x * gates[:, :, None, None] + shortcut


def scale_then_add_numpy():
    return x * gates[:, :, None, None] + shortcut


@njit(parallel=True, cache=True)
def scale_parallel(x, gates):
    out = np.empty_like(x)
    for n in prange(x.shape[0]):
        for c in range(x.shape[1]):
            gate = gates[n, c]
            for i in range(x.shape[2]):
                for j in range(x.shape[3]):
                    out[n, c, i, j] = x[n, c, i, j] * gate
    return out


@njit(parallel=True, cache=True)
def add_parallel(a, b):
    out = np.empty_like(a)
    flat_a, flat_b, flat_out = a.reshape(-1), b.reshape(-1), out.reshape(-1)
    for k in prange(flat_a.shape[0]):
        flat_out[k] = flat_a[k] + flat_b[k]
    return out


@njit(parallel=True, cache=True)
def scale_add_fused(x, gates, shortcut):
    out = np.empty_like(x)
    for n in prange(x.shape[0]):
        for c in range(x.shape[1]):
            gate = gates[n, c]
            for i in range(x.shape[2]):
                for j in range(x.shape[3]):
                    out[n, c, i, j] = x[n, c, i, j] * gate + shortcut[n, c, i, j]
    return out


assert np.allclose(add_parallel(scale_parallel(x, gates), shortcut), expected, rtol=1e-6)
assert np.allclose(scale_add_fused(x, gates, shortcut), expected, rtol=1e-6)
assert np.allclose(sn.kernels.numba.scale_add_forward(x, gates, shortcut), expected, rtol=1e-6)

record("scale + add: NumPy (2 ops, temporaries)", "scale", best_time(scale_then_add_numpy),
       minimum_bytes)
record("scale + add: @njit parallel, 2 passes", "scale",
       best_time(lambda: add_parallel(scale_parallel(x, gates), shortcut)), minimum_bytes)
record("scale + add: @njit parallel, fused", "scale",
       best_time(lambda: scale_add_fused(x, gates, shortcut)), minimum_bytes)
record("scale + add: library scale_add_forward", "scale",
       best_time(lambda: sn.kernels.numba.scale_add_forward(x, gates, shortcut)), minimum_bytes)

# %%
fig, axis = plt.subplots(figsize=(9, 5.5))
labels = list(results)
values = np.array([results[label][0] for label in labels])
colours = ["tab:blue" if results[label][1] == "squeeze" else "tab:orange" for label in labels]
positions = np.arange(len(labels))[::-1]
axis.barh(positions, values, color=colours)
for position, value in zip(positions, values):
    axis.text(value * 1.08, position, f"{value / COPY_GBPS:.0%}", va="center", fontsize=8)
axis.axvline(COPY_GBPS, color="k", ls="--", lw=1, label=f"copy bandwidth {COPY_GBPS:.1f} GB/s")
axis.set_xscale("log")
axis.set_xlim(right=COPY_GBPS * 4)
axis.set_yticks(positions, labels, fontsize=8)
axis.set_xlabel("achieved bandwidth: minimum bytes the operation must move / time  (GB/s, log)")
busy = f"  [machine busy: load {load:.1f} on {os.cpu_count()} CPUs]" \
    if load > (os.cpu_count() or 1) * 0.5 else ""
axis.set_title("Squeeze (blue) and scale + residual add (orange) against the copy bandwidth:\n"
               "compiled + re-associated + parallel + fused approach the memory limit" + busy,
               fontsize=10)
axis.legend(fontsize=8, loc="lower right")
fig.tight_layout()
show(fig, OUT / "bandwidth_bars.png", dpi=90)

# %% [markdown]
# Reading the chart: the Python loop is four orders of magnitude away. NumPy
# is already compiled code but makes temporaries for `x * s` (an extra
# write and read of a whole map). The strict `@njit` squeeze is limited by
# the chain of dependent additions, not by memory; re-association removes
# that limit. Fusing the scale with the residual addition saves two of five
# passes, which on a memory-bound loop is a 5/3 speed-up that no amount of
# clever arithmetic could give.
#
# ## Why re-association decides whether a float32 sum vectorises
#
# A SIMD add processes 8 float32 numbers at once, but only if there are 8
# *independent* additions to do. `total += row[k]` in IEEE order is one
# dependent chain; the compiler may not reorder it, because floating-point
# addition is not associative: `(a + b) + c` and `a + (b + c)` can differ in
# the last bit. `fastmath={"reassoc"}` grants permission to reorder; then
# LLVM keeps several vector accumulators and sums them at the end.
#
# We measure four row sums over a float32 array that fits in the L2 cache
# (so memory is not the limit and the arithmetic shows), and look in the
# LLVM code for vector additions (`fadd ... <8 x float>`).


# %%
def row_sum_kernel(accumulate_in_float64, reassociate):
    flags = {"reassoc"} if reassociate else set()

    @njit(fastmath=flags, cache=False)
    def row_sum(row):
        total = np.float64(0.0) if accumulate_in_float64 else np.float32(0.0)
        for k in range(row.shape[0]):
            if accumulate_in_float64:
                total += np.float64(row[k])
            else:
                total += row[k]
        return total
    return row_sum


row = np.random.default_rng(1).random(2 ** 18, dtype=np.float32)      # 1 MiB: in L2
exact_sum = float(np.sum(row, dtype=np.float64))
variants = {}
for accumulate_in_float64 in (False, True):
    for reassociate in (False, True):
        kernel = row_sum_kernel(accumulate_in_float64, reassociate)
        seconds = best_time(lambda: kernel(row), 20 if FAST else 200)
        ir = "\n".join(kernel.inspect_llvm().values())
        widths = [int(w) for w in re.findall(r"fadd[^\n]*<(\d+) x (?:float|double)>", ir)]
        label = (f"{'float64' if accumulate_in_float64 else 'float32'} accumulator, "
                 f"{'reassoc' if reassociate else 'strict IEEE order'}")
        variants[label] = {"GB/s": row.nbytes / seconds / GB,
                           "vector width": max(widths, default=1),
                           "relative error": abs(float(kernel(row)) - exact_sum) / exact_sum}
        print(f"{label:42s} {variants[label]['GB/s']:7.2f} GB/s  SIMD lanes per add: "
              f"{variants[label]['vector width']:2d}  relative error "
              f"{variants[label]['relative error']:.1e}")

# %%
fig, (speed_axis, error_axis) = plt.subplots(1, 2, figsize=(11, 3.8))
names = list(variants)
positions = np.arange(len(names))[::-1]
speed = [variants[name]["GB/s"] for name in names]
colours = ["tab:green" if variants[name]["vector width"] > 1 else "tab:gray" for name in names]
speed_axis.barh(positions, speed, color=colours)
for position, name, value in zip(positions, names, speed):
    speed_axis.text(value, position, f" {variants[name]['vector width']} lanes", va="center",
                    fontsize=8)
speed_axis.set_yticks(positions, names, fontsize=8)
speed_axis.set_xlabel("row sum over 1 MiB in L2 cache (GB/s)")
speed_axis.set_title("Speed: green = vectorised (SIMD adds in the LLVM IR)", fontsize=9)
speed_axis.set_xlim(right=max(speed) * 1.3)
error_axis.barh(positions, [max(variants[name]["relative error"], 1e-17) for name in names],
                color=colours)
for position, name in zip(positions, names):
    if variants[name]["relative error"] == 0:
        error_axis.text(2e-17, position, " 0: exact to the last bit", va="center", fontsize=8)
error_axis.set_xscale("log")
error_axis.set_yticks(positions, [""] * len(names))
error_axis.set_xlabel("relative error of the sum of 262144 numbers (log)")
error_axis.set_title("Accuracy: a float32 running sum loses digits", fontsize=9)
fig.suptitle("Re-association is what lets a float32 row sum use SIMD lanes; "
             "a float64 accumulator keeps it accurate", fontsize=10)
fig.tight_layout()
show(fig, OUT / "reassociation.png", dpi=90)

# %% [markdown]
# Strict order gives scalar adds (1 lane) whatever the accumulator; with
# `reassoc` the float32 sum uses 8- or 16-lane adds and runs several times
# faster. The float64 accumulator is slower per number in cache (it converts
# each float32 and has half the lanes), but on a map in *memory* it makes no
# difference — the loop waits for memory anyway — and it is far more
# accurate. That is why `sn.kernels.numba` sums float32 maps in float64 with
# `reassoc` (and `contract`, for fused multiply-adds in the dot products).
#
# ## Exercises
#
# Solutions: `tutorials/solutions/04_cpu_kernels_solutions.py`.
#
# 1. Write the SE backward's second pass, `dx = dy·s + dz/(HW)`, as a
#    parallel `@njit` loop; check it against `sn.kernels.numpy.se_backward_dx`
#    and measure its fraction of the copy bandwidth (minimum bytes: read
#    `dy`, write `dx`). Then write `dz / (H*W)` with a Python int inside the
#    loop on float32 data and find out why it is slower (look at the LLVM IR
#    for `fpext`/`double`).
# 2. Swap the loop order of the squeeze: `(i, j)` outside, `(n, c)` inside.
#    The result is the same; measure the speed and explain it with cache lines.
# 3. Measure `squeeze_parallel` with 1 and with 2 threads
#    (`numba.set_num_threads`). How much of the gain is from the second core?
