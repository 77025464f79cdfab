"""Numba Gather-Excite kernels: the extent-e gather and the upsampled gate, a block of planes per job.

Read ``kernels/numpy/gather.py`` for the math. Each (n, c) plane is
independent, so a job is a block of ``PLANES_PER_JOB`` planes and no two
threads write the same element. A 56x56 float32 plane is 12.5 KB and stays
in L1 while its job works on it, so every kernel reads each input number
from memory once and writes each output number once. What makes the loops
stream (numbers and the versions tried: docs/kernels.md):

* **Nothing per plane but loops.** A job allocates its scratch rows and
  makes its reshaped views once, before its first plane: an allocation or a
  ``reshape`` (a call into Numba's runtime) per plane cost more than the
  plane's arithmetic in our measurements.
* **An inner loop indexes with its bare loop counter.** ``a[i, j]`` with j
  the counter of the innermost ``range`` compiles to contiguous vector loads;
  ``a[k + j]`` with k a run-time offset does not (Numba's negative-index
  check defeats LLVM's proof that the index is in range, and the loop turns
  into vector gathers and scatters, or stays scalar). Offsets therefore
  live in views made once per job (``padded[e − 1:]``).
* **The extent is a compile-time constant** where a loop steps by it. The
  gather's windows start every e columns: written over a (cells, e) view of
  the padded row, ``blocks[q, t]`` with t in ``range(e)``, LLVM unrolls the t
  loop and vectorises over q with shuffles once e is a constant, and emits
  gathers when it is not (about twice slower). ``_gather_loops(e)`` compiles
  the two gather loops once per extent (Numba's disk cache keys them by e).
* **float32 windows are summed in float32**: a window holds at most
  (2e − 1)² = 225 numbers (e = 8), so the float32 sum is within ~1e-5 of
  the float64 one, and it keeps every vector lane a float32. The excite's
  dgate sums a whole cell, up to the whole map for the global gate, in a
  float64 row (as the SE kernels sum a row).
* **The gate is upsampled once per gate row**: the PyTorch rule (the
  reference's ``nearest_sources``, computed on the host) never decreases, so
  the pixel rows of one gate row form a run; the gate row is expanded to W
  numbers once, and every pixel row of the run is one contiguous multiply.
* **The parallel choice looks at the map.** ``serial_and_parallel`` judges a
  loop by its first argument, so every loop takes a full-size map first.
"""
import numpy as np
from numba import njit, prange

from ..numpy.gather import extent_windows, nearest_sources, source_runs
from .rows import serial_and_parallel

# 8 planes of 56x56 float32 = 100 KB: a job amortises its scratch rows over
# them, and 64x256 maps still give 2048 jobs to share between the threads
PLANES_PER_JOB = 8


@njit(cache=True)
def job_count(planes):
    """The number of blocks of ``PLANES_PER_JOB`` planes (the last one may be short)."""
    return (planes + PLANES_PER_JOB - 1) // PLANES_PER_JOB


@njit(cache=True)
def job_planes(job, planes):
    """range of the planes of block ``job``."""
    return range(job * PLANES_PER_JOB, min((job + 1) * PLANES_PER_JOB, planes))


def _planes(array):
    """Contiguous (N, C, H, W) -> (N·C, H, W) view: one plane per channel map."""
    array = np.ascontiguousarray(array)
    return array.reshape(array.shape[0] * array.shape[1], array.shape[2], array.shape[3])


def _window_weights(row_windows, column_windows, dtype):
    """1/|W_pq| for every cell, (oh, ow) in the map's dtype: one multiply per cell in the loops."""
    counts = np.outer(row_windows[:, 1] - row_windows[:, 0],
                      column_windows[:, 1] - column_windows[:, 0])
    return (1.0 / counts).astype(dtype)


# ============================================================================ gather
def _make_gather_loops(extent):
    """The gather's forward and backward loops with e = ``extent`` frozen as a constant.

    Both use one padded row per window row p: ``padded[e − 1 + j]`` is column
    j, with e − 1 zeros before column 0 and zeros after column W − 1, so that
    window q is ``padded[q·e : q·e + 2e − 1]``, never clipped. Viewed as
    ``blocks`` (⌈W/e⌉ + 1, e), window q is block q and the first e − 1 numbers
    of block q + 1.
    """
    span = extent - 1                               # the zeros before column 0

    @serial_and_parallel
    def forward(maps, out, row_windows, weights):
        planes, width = maps.shape[0], maps.shape[2]
        cells_h, cells_w = out.shape[1], out.shape[2]
        for job in prange(job_count(planes)):
            padded = np.zeros((cells_w + 1) * extent, dtype=maps.dtype)
            column_sums = padded[span:span + width]
            blocks = padded.reshape(cells_w + 1, extent)
            for r in job_planes(job, planes):
                for p in range(cells_h):
                    # vertical: column_sums[j] = Σ over the window's rows of x[i, j]
                    first, stop = row_windows[p, 0], row_windows[p, 1]
                    for j in range(width):
                        column_sums[j] = maps[r, first, j]
                    for i in range(first + 1, stop):
                        for j in range(width):
                            column_sums[j] += maps[r, i, j]
                    # horizontal: block q and the head of block q + 1 (t unrolled)
                    for q in range(cells_w):
                        total = blocks[q, 0]
                        for t in range(1, extent):
                            total += blocks[q, t]
                        for t in range(extent - 1):
                            total += blocks[q + 1, t]
                        out[r, p, q] = total * weights[p, q]
        return out

    @serial_and_parallel
    def backward(dx, dg, weights):
        planes, height, width = dx.shape
        cells_h, cells_w = dg.shape[1], dg.shape[2]
        for job in prange(job_count(planes)):
            # shares[1 + q] = dg/|W| of cell q of the current window row, 0 beyond both ends
            shares = np.zeros(cells_w + 2, dtype=dx.dtype)
            here, after = shares[1:cells_w + 1], shares[1:]
            # spread[p, e − 1 + j] = Σ over the (one or two) windows q of row p holding column j
            spread = np.empty((cells_h, (cells_w + 1) * extent), dtype=dx.dtype)
            blocks = spread.reshape(cells_h, cells_w + 1, extent)
            columns = spread.reshape(-1)[span:span + cells_h * (cells_w + 1) * extent - span]
            for r in job_planes(job, planes):
                for p in range(cells_h):
                    for q in range(cells_w):
                        here[q] = dg[r, p, q] * weights[p, q]
                    # block m's first e − 1 columns lie in windows m − 1 and m, its last in m only
                    for m in range(cells_w + 1):
                        for t in range(extent - 1):
                            blocks[p, m, t] = shares[m] + after[m]
                        blocks[p, m, extent - 1] = after[m]
                for i in range(height):
                    # the window rows holding pixel row i: i // e and (i + e − 1) // e, clipped
                    first = i // extent
                    last = min((i + extent - 1) // extent, cells_h - 1)
                    row_first = columns[first * (cells_w + 1) * extent:]
                    if last == first:
                        for j in range(width):
                            dx[r, i, j] = row_first[j]
                    else:
                        row_last = columns[last * (cells_w + 1) * extent:]
                        for j in range(width):
                            dx[r, i, j] = row_first[j] + row_last[j]
        return dx

    return forward, backward


_gather_loops_by_extent = {}


def _gather_loops(extent):
    """(forward, backward) compiled for this extent (built on first use, then kept)."""
    if extent not in _gather_loops_by_extent:
        _gather_loops_by_extent[extent] = _make_gather_loops(extent)
    return _gather_loops_by_extent[extent]


def ge_gather_forward(x, extent):
    """Window means (kernel 2e−1, stride e, padding e−1 not counted).  -> (N, C, ⌈H/e⌉, ⌈W/e⌉)."""
    n, c, height, width = x.shape
    rows, columns = extent_windows(height, extent), extent_windows(width, extent)
    out = np.empty((n * c, len(rows), len(columns)), dtype=x.dtype)
    forward, _ = _gather_loops(extent)
    forward(_planes(x), out, rows, _window_weights(rows, columns, x.dtype))
    return out.reshape(n, c, len(rows), len(columns))


def ge_gather_backward(dg, x_shape, extent):
    """dx[i,j] = Σ over the (at most 2×2) windows holding (i, j) of dg / window size."""
    n, c, height, width = x_shape
    rows, columns = extent_windows(height, extent), extent_windows(width, extent)
    dx = np.empty((n * c, height, width), dtype=dg.dtype)
    _, backward = _gather_loops(extent)
    backward(dx, _planes(dg), _window_weights(rows, columns, dg.dtype))
    return dx.reshape(x_shape)


# ============================================================================ excite
@njit(cache=True)
def _upsample_by_index(gate, r, p, source_columns, upsampled, blocks):
    """upsampled[j] = gate[r, p, source_columns[j]]: gate row p at full width (any sizes)."""
    for j in range(upsampled.shape[0]):
        upsampled[j] = gate[r, p, source_columns[j]]


@njit(cache=True)
def _fold_by_runs(products, blocks, column_runs, dgate, r, p):
    """dgate[r, p, q] = Σ of products over the columns that gate column q covers (any sizes)."""
    for q in range(dgate.shape[2]):
        total = 0.0
        for j in range(column_runs[q], column_runs[q + 1]):
            total += products[j]
        dgate[r, p, q] = total


def _make_excite_loops(run):
    """The excite's forward and backward loops; ``run`` > 0 when every gate column covers
    exactly ``run`` pixel columns (W = run · w: 56 -> 28 has run 2), frozen as a constant, so
    the upsampling is a broadcast per (w, run) block and the fold a sum per block; ``run`` = 0
    for any other sizes (through the reference's index arrays)."""
    if run:
        @njit(cache=True)
        def upsample(gate, r, p, source_columns, upsampled, blocks):
            for q in range(blocks.shape[0]):
                for t in range(run):
                    blocks[q, t] = gate[r, p, q]

        @njit(cache=True)
        def fold(products, blocks, column_runs, dgate, r, p):
            for q in range(blocks.shape[0]):
                total = blocks[q, 0]
                for t in range(1, run):
                    total += blocks[q, t]
                dgate[r, p, q] = total
    else:
        upsample, fold = _upsample_by_index, _fold_by_runs
    columns_per_block = max(run, 1)

    @serial_and_parallel
    def forward(maps, gate, out, row_runs, source_columns):
        planes, width = maps.shape[0], maps.shape[2]
        for job in prange(job_count(planes)):
            upsampled = np.empty(width, dtype=maps.dtype)
            blocks = upsampled.reshape(-1, columns_per_block)
            for r in job_planes(job, planes):
                for p in range(gate.shape[1]):
                    upsample(gate, r, p, source_columns, upsampled, blocks)
                    for i in range(row_runs[p], row_runs[p + 1]):
                        for j in range(width):
                            out[r, i, j] = maps[r, i, j] * upsampled[j]
        return out

    @serial_and_parallel
    def backward(dy, maps, gate, dx, dgate, row_runs, source_columns, column_runs):
        planes, width = maps.shape[0], maps.shape[2]
        for job in prange(job_count(planes)):
            upsampled = np.empty(width, dtype=maps.dtype)
            blocks = upsampled.reshape(-1, columns_per_block)
            products = np.empty(width)                  # Σ dy·x over the run's rows, per column
            product_blocks = products.reshape(-1, columns_per_block)
            for r in job_planes(job, planes):
                for p in range(gate.shape[1]):
                    upsample(gate, r, p, source_columns, upsampled, blocks)
                    products[:] = 0.0
                    for i in range(row_runs[p], row_runs[p + 1]):
                        for j in range(width):
                            dx[r, i, j] = dy[r, i, j] * upsampled[j]
                            products[j] += np.float64(dy[r, i, j]) * np.float64(maps[r, i, j])
                    fold(products, product_blocks, column_runs, dgate, r, p)
        return dx, dgate

    return forward, backward


# the run lengths with their own compiled loops; any other sizes take the index loops
UNIFORM_RUNS = (2, 4, 8)
_excite_loops_by_run = {}


def _excite_loops(width, gate_width):
    """(forward, backward, source_columns) for a W-wide map and a w-wide gate."""
    source_columns = nearest_sources(width, gate_width)
    run = width // gate_width
    if not (run in UNIFORM_RUNS and run * gate_width == width
            and np.array_equal(source_columns, np.arange(width) // run)):
        run = 0
    if run not in _excite_loops_by_run:
        _excite_loops_by_run[run] = _make_excite_loops(run)
    return (*_excite_loops_by_run[run], source_columns)


def ge_excite_forward(x, gate):
    """y[n,c,i,j] = x[n,c,i,j] · gate[n,c,r(i),r(j)] (nearest upsampling): one pass over x."""
    maps = _planes(x)
    out = np.empty_like(maps)
    forward, _, source_columns = _excite_loops(x.shape[3], gate.shape[3])
    forward(maps, _planes(np.asarray(gate, dtype=x.dtype)), out,
            source_runs(x.shape[2], gate.shape[2]), source_columns)
    return out.reshape(x.shape)


def ge_excite_backward(dy, x, gate):
    """``(dx, dgate)`` in one pass: dx = dy · U(gate); dgate[p,q] = Σ of dy·x over the cell's pixels."""
    gates = _planes(np.asarray(gate, dtype=x.dtype))
    maps = _planes(x)
    dx = np.empty_like(maps)
    dgate = np.empty(gates.shape, dtype=gate.dtype)
    _, backward, source_columns = _excite_loops(x.shape[3], gate.shape[3])
    backward(_planes(dy), maps, gates, dx, dgate, source_runs(x.shape[2], gate.shape[2]),
             source_columns, source_runs(x.shape[3], gate.shape[3]))
    return dx.reshape(x.shape), dgate.reshape(gate.shape)
