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
# **Setup (notebooks only).** The next cell runs `tutorials/_setup.py`,
# which installs `se_numpy` from this clone when the kernel does not have it
# yet (a fresh environment) and otherwise does nothing. In the `.py` file
# the line is a comment, so a script skips it.

# %%
# %run _setup.py

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
MiB = 2 ** 20


def last_level_cache_bytes():
    """Size of the CPU's largest cache in bytes (Linux sysfs), or None where it cannot be read."""
    sizes = []
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = entry.read_text().strip()
        unit = {"K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30}.get(text[-1:], 1)
        sizes.append(int(text.rstrip("KMG")) * unit)
    return max(sizes, default=None)


CACHE_BYTES = last_level_cache_bytes()
print("last-level cache:", f"{CACHE_BYTES / MiB:.0f} MiB" if CACHE_BYTES else "unknown")


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
# A copy reads `source` once and writes `destination` once: `2 × size`
# bytes. The array is made at least twice the size of the CPU's last-level
# cache (where it can be read; 256 MiB at least, 768 MiB at most), so the
# bytes really come from and go to memory. `np.copyto` copies on one thread; the parallel
# kernels below run on all of Numba's threads, and several cores can move
# more bytes than one, so the copy is also timed as a parallel `@njit` loop
# and the faster of the two is the limit. Both are timed again after the
# kernels: the difference between the two measurements shows how much
# these timings move on this machine right now.

# %%
@njit(parallel=True, cache=True)
def copy_parallel(destination, source):
    for k in prange(source.shape[0]):
        destination[k] = source[k]


copy_bytes = 64 * MiB if FAST else min(max(256 * MiB, 2 * (CACHE_BYTES or 0)), 768 * MiB)
source = np.random.default_rng(0).random(copy_bytes // 4, dtype=np.float32)
destination = np.ones_like(source)        # touched once, so no page faults are timed


def measure_copy():
    """Copy bandwidth in GB/s: (one thread with np.copyto, all threads with prange)."""
    return (2 * source.nbytes / best_time(lambda: np.copyto(destination, source)) / GB,
            2 * source.nbytes / best_time(lambda: copy_parallel(destination, source)) / GB)


copy_before = measure_copy()
COPY_GBPS = max(copy_before)
print(f"copy bandwidth: {copy_before[0]:.1f} GB/s on one thread (np.copyto), "
      f"{copy_before[1]:.1f} GB/s on {numba.get_num_threads()} threads (prange); "
      f"limit used: {COPY_GBPS:.1f} GB/s  ({source.nbytes / 2**20:.0f} MiB copied)")

# %% [markdown]
# ## The feature map
#
# A stage-1 map of a ResNet-50 (`C = 64`, `56 x 56`), float32, at batch 32:
# 25 MiB per map, and the scale touches three of them: more than most
# desktop CPUs' caches hold, as in a real network (in fast mode the batch is
# 8, 6 MiB per map). Some server CPUs have last-level caches of hundreds of
# MiB; there the maps stay in the cache between repeats, and a kernel can
# beat the copy, which was measured on an array that does not fit. The
# cell prints which case this machine is.

# %%
shape = (8, 64, 56, 56) if FAST else (32, 64, 56, 56)
rng = np.random.default_rng(0)
x = rng.standard_normal(shape, dtype=np.float32)
shortcut = rng.standard_normal(shape, dtype=np.float32)
gates = rng.uniform(0.1, 1.0, size=shape[:2]).astype(np.float32)
reference_z = x.mean(axis=(2, 3), dtype=np.float64)         # float64 truth for the squeeze
MAPS_IN_CACHE = CACHE_BYTES is not None and 3 * x.nbytes <= CACHE_BYTES
print(f"x: {shape}, {x.nbytes / MiB:.1f} MiB per map; the scale + add touches three: "
      + ("they fit in this CPU's last-level cache, so repeated passes over them are served "
         "from the cache, not from memory" if MAPS_IN_CACHE else
         "more than the last-level cache holds" if CACHE_BYTES else "cache size unknown"))
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
# float, far slower per number than compiled code (the cell prints the time
# per number). We time it on a *small* map and report bytes per second all
# the same.

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
python_seconds = best_time(lambda: squeeze_python(small), 1)
record("squeeze: Python loop (small map)", "squeeze", python_seconds, small.nbytes)
print(f"the Python loop: {python_seconds / small.size * 1e9:.0f} ns per number")

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
best_squeeze = max(value for value, kind in results.values() if kind == "squeeze")
best_scale = max(value for value, kind in results.values() if kind == "scale")
axis.set_title("Squeeze (blue) and scale + residual add (orange) against the copy bandwidth "
               "of this run:\n"
               f"the fastest squeeze reaches {best_squeeze / COPY_GBPS:.0%} of it, the fastest "
               f"scale + add {best_scale / COPY_GBPS:.0%}" + busy, fontsize=10)
axis.legend(fontsize=8, loc="lower right")
fig.tight_layout()
show(fig, OUT / "bandwidth_bars.png", dpi=90)

# %% [markdown]
# Reading the chart. What to expect, and why:
#
# * the Python loop is slower than everything else by orders of magnitude
#   (every number is a Python object);
# * the strict `@njit` squeeze is limited by its chain of dependent
#   additions, not by memory, so re-association makes it faster;
# * `prange` spreads the channels over the threads: faster than one thread
#   where more than one core is free;
# * NumPy is compiled code but makes a temporary for `x * s` (an extra write
#   and read of a whole map), and fusing the scale with the residual
#   addition saves two of five passes: on a memory-bound loop, up to 5/3
#   faster than the same work in two passes, which no clever arithmetic
#   could give.
#
# Timings are the one thing in these tutorials that depend on the machine
# and on what else runs on it. The next cell checks each expectation against
# what was measured above, prints the numbers, and says what it means where
# the measurement disagrees. It also times the copy again.

# %%
copy_after = measure_copy()
spread = abs(max(copy_after) - max(copy_before)) / max(copy_before)
print(f"copy bandwidth again: {copy_after[0]:.1f} GB/s on one thread, {copy_after[1]:.1f} GB/s "
      f"on {numba.get_num_threads()} threads ({spread:.0%} from the first measurement)")
del source, destination
gbps = {label: value for label, (value, _) in results.items()}
threads = numba.get_num_threads()
busy_machine = load > (os.cpu_count() or 1) * 0.5


def expect(claim, holds, measured, otherwise):
    """Print an expectation, what was measured, and what it means if it did not hold."""
    print(f"{'as expected' if holds else 'NOT here   '}: {claim} ({measured})")
    if not holds:
        print(f"             {otherwise}")


python_loop = gbps["squeeze: Python loop (small map)"]
expect("the Python loop is at least 100x slower than NumPy",
       gbps["squeeze: NumPy mean"] / python_loop >= 100,
       f"{gbps['squeeze: NumPy mean'] / python_loop:.0f}x slower, "
       f"{np.log10(gbps['squeeze: NumPy mean'] / python_loop):.1f} orders of magnitude",
       "the NumPy timing was disturbed (or the interpreter is unusually fast): rerun")
ratio = gbps["squeeze: @njit + reassoc"] / gbps["squeeze: @njit, strict order"]
expect("re-association speeds up the @njit squeeze", ratio > 1.1, f"{ratio:.2f}x",
       "the strict loop already reached the memory limit here (a slow memory bus), or "
       "the timings were disturbed")
ratio = gbps["squeeze: @njit parallel + reassoc"] / gbps["squeeze: @njit + reassoc"]
expect(f"the parallel squeeze on {threads} threads beats one thread", ratio > 1.1,
       f"{ratio:.2f}x",
       "with one thread there is nothing to gain" if threads == 1 else
       "other processes hold the cores (a thread that waits for a descheduled sibling stalls "
       "the whole loop)" if busy_machine else
       "one core already saturates the memory bus on this machine")
ratio = gbps["scale + add: @njit parallel, fused"] / gbps["scale + add: @njit parallel, 2 passes"]
expect("fusing scale and add beats two passes", ratio > 1.1, f"{ratio:.2f}x",
       "the maps stayed in the cache, where the extra passes cost little, or the timings were "
       "disturbed")
expect("... by about the traffic it saves, 5/3 = 1.67x (up to 2x allowed for noise)", ratio <= 2,
       f"{ratio:.2f}x",
       "more than the bytes explain: the two-pass version allocates one more map per call "
       "than the fused one (fresh pages, which the operating system zeroes on first touch), "
       "and each of its two parallel loops pays for waking the threads" +
       (", which a busy machine makes worse" if busy_machine else ""))
ratio = gbps["scale + add: @njit parallel, fused"] / gbps["scale + add: NumPy (2 ops, temporaries)"]
expect("the fused parallel kernel beats NumPy", ratio > 1.1, f"{ratio:.2f}x",
       "a single-threaded loop (NumPy's) suffers less from a busy machine than a parallel one, "
       "whose threads wait for each other" if busy_machine else
       "one NumPy thread already saturates the memory bus on this machine")
above = [label for label, value in gbps.items() if value > 1.05 * COPY_GBPS]
expect("no bar above the copy bandwidth", not above,
       f"{len(above)} above: {', '.join(above) or 'none'}",
       "a bar above 100 % is not faster than memory: " +
       ("its data fit in this CPU's last-level cache and were read from there"
        if MAPS_IN_CACHE else "the copy was timed while the machine was busier")
       + f" (the two copy measurements differ by {spread:.0%})")
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
lanes = {name: variants[name]["vector width"] for name in names}
errors = {name: variants[name]["relative error"] for name in names}
fig.suptitle(f"float32 row sum: {lanes[names[0]]} SIMD lane(s) per add in strict order, "
             f"{lanes[names[1]]} with reassoc; relative error {errors[names[1]]:.0e} with a "
             f"float32 accumulator, {errors[names[3]]:.0e} with float64", fontsize=10)
fig.tight_layout()
show(fig, OUT / "reassociation.png", dpi=90)

# %% [markdown]
# What to expect: strict order gives scalar adds (1 lane) whatever the
# accumulator; with `reassoc` the float32 sum uses vector adds (8 or 16
# lanes, depending on the CPU's SIMD width) and runs several times faster in
# cache. A float64 accumulator is slower per number in cache (it converts
# each float32 and has half the lanes), but on a map in *memory* it should
# cost about nothing — the loop waits for memory anyway — and it is far more
# accurate. That is why `sn.kernels.numba` sums float32 maps in float64 with
# `reassoc` (and `contract`, for fused multiply-adds in the dot products).
# The lane counts are read from the compiled code and the errors are exact
# arithmetic; the speeds depend on the machine, so the next cell checks them
# as above, timing the two `reassoc` sums once more on the whole feature
# map (in memory, unless this CPU's last-level cache holds it: the cell on
# the feature map printed which).

# %%
float32_name, float64_name = names[1], names[3]          # the two reassoc variants
in_cache = variants[float32_name]["GB/s"] / variants[names[0]]["GB/s"]
assert lanes[names[0]] == 1 and lanes[names[2]] == 1, lanes
assert variants[float64_name]["relative error"] < variants[float32_name]["relative error"]
expect("reassoc gives the float32 sum vector adds", lanes[float32_name] > 1,
       f"{lanes[float32_name]} lanes", "this CPU or LLVM build has no SIMD float adds")
expect("... and makes it at least 2x faster in cache", in_cache >= 2, f"{in_cache:.1f}x",
       "the timings were disturbed, or the loop is limited by something else here (loads)")
in_cache = variants[float64_name]["GB/s"] / variants[float32_name]["GB/s"]
expect("a float64 accumulator is slower in cache", in_cache < 0.9, f"{in_cache:.2f}x the speed",
       "the conversion is hidden behind the loads on this CPU")
whole_map = x.reshape(-1)                                 # the feature map: in memory
in_memory = {name: whole_map.nbytes / best_time(lambda: kernel(whole_map)) / GB
             for name, kernel in ((float32_name, row_sum_kernel(False, True)),
                                  (float64_name, row_sum_kernel(True, True)))}
ratio = in_memory[float64_name] / in_memory[float32_name]
expect("... but costs about nothing on a map in memory (within 20 %)", abs(ratio - 1) <= 0.2,
       f"{in_memory[float32_name]:.1f} against {in_memory[float64_name]:.1f} GB/s, {ratio:.2f}x",
       f"the {whole_map.nbytes / MiB:.0f} MiB map fits in this CPU's last-level cache, so the "
       "loop does not wait for memory and the conversion shows" if MAPS_IN_CACHE else
       "the timings were disturbed, or this CPU does not hide the conversion behind the loads")
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
