# %% [markdown]
# # 5. GPU kernels with numba.cuda
#
# The squeeze on a GPU: thousands of threads, each doing a little, and the
# question of how to split `N·C` channel means over them. We write two
# kernels — a naive one (one thread per channel) and a shared-memory tree
# reduction (a warp of 32 threads per channel) — run them anywhere (on a GPU
# if there is one, in Numba's CUDA *simulator* if not), and see how the
# library's kernels (`se_numpy/kernels/cuda/`) and benchmark are organised.

# %% [markdown]
# **Setup (notebooks only).** The next cell runs `tutorials/_setup.py`,
# which installs `se_numpy` from this clone when the kernel does not have it
# yet (a fresh environment) and otherwise does nothing. In the `.py` file
# the line is a comment, so a script skips it.

# %%
# %run _setup.py

# %% [markdown]
# ## Simulator or GPU: decided before numba is imported
#
# `NUMBA_ENABLE_CUDASIM=1` makes `numba.cuda` run kernels in Python threads
# on the CPU: slow, but exact in what each thread computes, so the same
# code can be tested and taught on any laptop. The variable must be set
# **before `numba` is first imported**: Numba reads its configuration from
# the environment once, at import (`numba.config`), and `numba.cuda` binds
# either to the CUDA driver or to the simulator at that moment. Setting it
# later, after anything has imported numba (`se_numpy.kernels.numba` does),
# changes nothing. So the next cell looks for a GPU driver *without*
# importing numba: it tries to load the CUDA driver library. Run again in
# the same kernel (numba already imported), it checks that the simulator
# setting numba started with is still the one wanted, and stops with a
# message to restart the kernel if it is not.

# %%
import ctypes
import os
import sys
from pathlib import Path


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

import matplotlib  # noqa: E402  (after the environment is set, on purpose)
if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")          # write PNGs; no screen needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from numba import cuda  # noqa: E402

import se_numpy as sn  # noqa: E402
from se_numpy.analysis.figures import show  # noqa: E402

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
print("running in the CUDA simulator" if SIMULATOR else
      f"running on the GPU: {cuda.get_current_device().name}")

NAME = "05_gpu_kernels"
FIGURES = ["grid_mapping.png", "tree_reduction.png"]
FAST = os.environ.get("SE_NUMPY_FAST", "0") not in ("", "0")
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("SE_NUMPY_TUTORIAL_OUT", HERE / "out")) / NAME
OUT.mkdir(parents=True, exist_ok=True)
print(f"figures go to {OUT}  (fast mode: {FAST})")

# %% [markdown]
# ## Threads, blocks and grids on an NCHW map
#
# A kernel is launched on a *grid* of *blocks* of *threads*:
# `kernel[blocks, threads_per_block](arguments)`. Every thread runs the same
# function and finds out who it is from `cuda.blockIdx`, `cuda.threadIdx`
# (and `cuda.grid(1) = blockIdx.x · blockDim.x + threadIdx.x`).
#
# A contiguous `(N, C, H, W)` map is `N·C` rows of `H·W` numbers (a free
# reshape): row `r = n·C + c` is one channel of one image, and the squeeze
# is one mean per row. Two ways to hand rows to threads:
#
# * **naive: one thread per row.** Thread `r` sums row `r` alone. At each step
#   the 32 threads of a warp read addresses `H·W` numbers apart: 32 separate
#   memory transactions per load (*uncoalesced*).
# * **one warp per row.** Lane `l` of the warp reads elements
#   `l, l + 32, l + 64, ...`; at each step the 32 lanes read 32 *neighbouring*
#   numbers: one 128-byte transaction (*coalesced*). The 32 partial sums are
#   then added in shared memory.

# %%
n_images, channels, height, width = 2, 3, 2, 8
rows, row_length, lanes = n_images * channels, height * width, 8     # 8 lanes to keep it legible
# light colours, one per thread or lane, so that the black digits on them stay readable
palette = plt.get_cmap("Set3", 12)
fig, (naive_axis, warp_axis) = plt.subplots(1, 2, figsize=(13, 4.2))
thread_of_naive = np.repeat(np.arange(rows)[:, None], row_length, axis=1)
lane_of_element = np.tile(np.arange(row_length) % lanes, (rows, 1))
for axis, owner, title in (
        (naive_axis, thread_of_naive,
         "naive: thread r (the digit) sums row r;\na warp's loads at one step are H·W apart"),
        (warp_axis, lane_of_element,
         f"warp per row: lane l (the digit) reads l, l+{lanes}, ...;\n"
         "a warp's loads at one step are neighbours")):
    axis.imshow(owner, cmap=palette, vmin=-0.5, vmax=11.5, aspect="auto")
    for r in range(rows):
        for k in range(row_length):
            axis.text(k, r, str(owner[r, k]), ha="center", va="center", fontsize=10,
                      color="black")
    axis.set_yticks(range(rows), [f"row {r}: n={r // channels}, c={r % channels}"
                                  for r in range(rows)], fontsize=8)
    axis.set_xlabel(f"position k = i·W + j within the channel (H·W = {row_length})")
    axis.set_title(title, fontsize=9)
warp_axis.set_yticks(range(rows), [f"row {r}: block {r} (one warp)" for r in range(rows)],
                     fontsize=8)
step = 0
naive_axis.add_patch(plt.Rectangle((step - 0.5, -0.5), 1, rows, fill=False, edgecolor="red",
                                   lw=2))
warp_axis.add_patch(plt.Rectangle((-0.5, -0.5), lanes, 1, fill=False, edgecolor="red", lw=2))
fig.suptitle(f"An NCHW map ({n_images}x{channels}x{height}x{width}) as N·C rows; red: "
             "what one warp loads in one step", fontsize=10)
fig.tight_layout()
show(fig, OUT / "grid_mapping.png", dpi=90)

# %% [markdown]
# ## The naive kernel
#
# A *grid-stride loop* (`for row in range(first, rows, stride)`) lets any
# grid size cover any number of rows; the result must not depend on it.
# The accumulator is `x.dtype.type(0)`: a literal `0.0` is float64 in Numba
# and would turn a float32 kernel into float64 arithmetic (slow on most GPUs).


# %%
@cuda.jit
def squeeze_naive(x_rows, z):
    rows, row_length = x_rows.shape
    for row in range(cuda.grid(1), rows, cuda.gridsize(1)):
        total = x_rows.dtype.type(0)
        for k in range(row_length):
            total += x_rows[row, k]
        z[row] = total / x_rows.dtype.type(row_length)


# %% [markdown]
# ## The shared-memory tree reduction
#
# Each block is one warp (32 lanes) and takes one row at a time. Lane `l`
# sums its strided share of the row into a register, writes it to
# `partials[l]` in *shared memory* (visible to the whole block), and then
# the partials are added in `log2(32) = 5` halving steps:
#
#     step 16: lane l < 16 adds partials[l + 16]
#     step  8: lane l <  8 adds partials[l + 8]   ...   step 1: partials[0] = total
#
# `cuda.syncthreads()` between the steps makes every lane wait until the
# previous level is written; without it a lane could read a partial that is
# not there yet (a race), and the answer would change from run to run.

# %%
LANES = 32


@cuda.jit
def squeeze_tree(x_rows, z):
    rows, row_length = x_rows.shape
    lane = cuda.threadIdx.x
    partials = cuda.shared.array(LANES, dtype=x_rows.dtype)
    for row in range(cuda.blockIdx.x, rows, cuda.gridDim.x):      # same count in every lane
        partial = x_rows.dtype.type(0)
        for k in range(lane, row_length, LANES):                 # coalesced: lanes are neighbours
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
        cuda.syncthreads()          # everyone has finished with partials before the next row


# %% [markdown]
# Run both (and the library's kernel) on a small map and compare with NumPy.
# The simulator runs each thread as a Python thread, so it is kept small
# there; on a GPU the same code runs on a ResNet-sized map.

# %%
shape = (2, 4, 8, 8) if SIMULATOR else (32, 256, 56, 56)
x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
x_rows = cuda.to_device(x.reshape(shape[0] * shape[1], -1))      # copy host -> device once
z_naive = cuda.device_array(shape[0] * shape[1], dtype=np.float32)
z_tree = cuda.device_array(shape[0] * shape[1], dtype=np.float32)
expected = x.mean(axis=(2, 3), dtype=np.float64)

row_count = shape[0] * shape[1]
squeeze_naive[max(1, (row_count + 63) // 64), 64](x_rows, z_naive)   # one thread per row
squeeze_tree[min(row_count, 2 if SIMULATOR else 4096), LANES](x_rows, z_tree)   # a warp per row
library = sn.kernels.cuda.squeeze_forward(x)                    # NumPy in -> NumPy out
for label, z in (("naive", z_naive.copy_to_host()), ("tree", z_tree.copy_to_host()),
                 ("library", library.reshape(-1))):
    error = np.abs(z.reshape(expected.shape) - expected).max()
    print(f"{label:8s} max |z − float64 mean| = {error:.1e}")
    assert error < 1e-5          # float32 sums of ≤ 3136 numbers of size ~1: well under 1e-5

# %% [markdown]
# ## The tree, level by level
#
# The same halving steps done by hand with NumPy on one row, to see what
# each level holds (8 lanes instead of 32 to keep it readable).

# %%
row = x.reshape(row_count, -1)[0].astype(np.float64)
levels = [np.array([row[lane::8].sum() for lane in range(8)])]    # per-lane partial sums
while len(levels[-1]) > 1:
    half = len(levels[-1]) // 2
    levels.append(levels[-1][:half] + levels[-1][half:])
fig, axis = plt.subplots(figsize=(9, 3.8))
for depth, values in enumerate(levels):
    spacing = 8 / len(values)
    for index, value in enumerate(values):
        centre = spacing * (index + 0.5)
        axis.add_patch(plt.Rectangle((centre - 0.4, -depth - 0.3), 0.8, 0.6, facecolor="#a8dadc",
                                     edgecolor="k"))
        axis.text(centre, -depth, f"{value:+.2f}", ha="center", va="center", fontsize=8)
        if depth + 1 < len(levels):
            target_spacing = 8 / len(levels[depth + 1])
            target = target_spacing * (index % len(levels[depth + 1]) + 0.5)
            axis.annotate("", xy=(target, -depth - 0.7), xytext=(centre, -depth - 0.3),
                          arrowprops=dict(arrowstyle="->", lw=0.7,
                                          color="tab:red" if index >= len(values) // 2
                                          else "k"))
    axis.text(8.2, -depth, ["lane partial sums", "step 4", "step 2", "step 1: total"][depth],
              va="center", fontsize=8)
axis.set_xlim(-0.2, 10)
axis.set_ylim(-len(levels) + 0.4, 0.6)
axis.axis("off")
axis.set_title(f"Tree reduction of one channel (H·W = {row.size}) over 8 lanes: "
               f"3 steps, total {levels[-1][0]:+.3f} = {row.size} × mean {row.mean():+.4f}\n"
               "red arrows: lane l < step adds partials[l + step]; syncthreads() between steps",
               fontsize=9)
fig.tight_layout()
show(fig, OUT / "tree_reduction.png", dpi=90)
assert np.isclose(levels[-1][0], row.sum())

# %% [markdown]
# ## The library's kernels and the benchmark
#
# `se_numpy/kernels/cuda/` has the same functions as the CPU backends, so
# a whole network runs on `sn.use_backend("cuda")`. It refines the tree
# kernel above: 256-thread blocks that take 8 short rows at once (a 7x7 map
# would leave most of a block idle) or one long row; a grid capped at a few
# blocks per multiprocessor with a grid-stride loop; a warp-shuffle variant
# (`shfl_down_sync`, registers instead of shared memory; GPU only, the
# simulator has no shuffles); and fused passes (`scale_add_forward`,
# `se_backward_dx`). With NumPy arrays every call copies to the GPU and
# back; with device arrays nothing crosses the PCIe bus.
#
# The benchmark runs on a machine with an NVIDIA GPU:
#
#     pip install -e '.[cuda12]'          # or [cuda13], matching the driver
#     python benchmarks/bench_kernels.py --backend cuda --quick
#     se-numpy bench --backend cuda       # the same, from the command line
#
# How to read its table: the first line is the device-to-device **copy
# bandwidth** measured in the same run (and the datasheet peak): the speed
# limit. For each shape and kernel it prints the time in µs and, in
# brackets, the fraction of the copy bandwidth reached, counting the bytes
# the kernel must move at least. What to expect: a memory-bound kernel with
# coalesced loads reaches 80 % or more of the copy on large maps, and the
# naive squeeze stays far below (uncoalesced loads). Where a coalesced
# kernel comes out far lower, the map is too small to fill the GPU (the
# launch overhead dominates) or another process shares the device; where
# the naive one comes out close, the map fits in the GPU's L2 cache, which
# hides the wasted transactions. The SE block line compares forward +
# backward with its 7-pass lower bound; the launch overhead line is what a
# call costs on a tiny map, where the GPU has nothing to do but wait. On
# this machine:

# %%
if SIMULATOR:
    print("no GPU here: the kernels ran in the simulator, which says nothing about speed.")
elif not FAST:
    from se_numpy.bench.cuda import format_table, run_benchmark
    print(format_table(run_benchmark(quick=True, out_dir=str(OUT / "bench"))))
else:
    print("GPU present; run the benchmark without SE_NUMPY_FAST to see its table here.")

# %% [markdown]
# ## Exercises
#
# Solutions: `tutorials/solutions/05_gpu_kernels_solutions.py`.
#
# 1. Remove the `cuda.syncthreads()` inside the tree loop of
#    `squeeze_tree` and run it in the simulator. What happens, and why is a
#    missing barrier dangerous even when a test passes on a GPU?
# 2. Write a kernel for the scale, `y[r, k] = x[r, k] · s[r]`, with one
#    thread per *element* (2-d grid, or a flat index `r = i // (H·W)`), and
#    check it against `sn.kernels.numpy.scale_forward`.
# 3. Launch `squeeze_tree` with 1, 2 and 5 blocks on the same input. Why
#    is the result the same, bit for bit?
