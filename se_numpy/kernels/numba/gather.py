"""Numba Gather-Excite kernels: the extent-e gather and the upsampled gate, a block of planes per job.

Read ``kernels/numpy/gather.py`` for the math. Each (n, c) plane is
independent, so a job is a block of ``PLANES_PER_JOB`` planes and no two
threads write the same element. A 56x56 float32 plane is 12.5 KB and stays
in L1 while its job works on it, so every kernel reads each input number
from memory once and writes each output number once. What makes the loops
stream (numbers and the versions tried: docs/kernels.md):

* **Nothing per plane but loops.** A job allocates its scratch rows and
  makes its reshaped views once, before its first plane: ``reshape`` is a
  call into Numba's runtime, and a 56x56 plane has too little arithmetic to
  hide one per plane.
* **An inner loop indexes with its bare loop counter.** ``a[i, j]`` with j
  the counter of the innermost ``range`` compiles to contiguous vector loads;
  ``a[k + j]`` with k a run-time offset does not (Numba's negative-index
  check defeats LLVM's proof that the index is in range, and the loop turns
  into vector gathers and scatters, or stays scalar). Offsets therefore
  live in views made once per job (``padded[e − 1:]``).
* **Long loops.** A row of 28 or 56 float32 numbers hardly fills LLVM's
  unrolled vector body (32 numbers), so loops over one row run mostly in
  their scalar remainder. Wherever the cells of a plane are the unit (the
  window sums, the backward's spread, the gate's widening, dgate's fold) one
  flat loop walks all of them, and the one cell per row that a flat index
  gets wrong at a row's end is recomputed after it.
* **The extent is a compile-time constant** where a loop steps by it
  (``a[e·m + t]`` with t in ``range(e)``): LLVM unrolls the t loop and
  vectorises over m once e is a constant, not when it is a run-time number.
  ``_gather_loops(e)`` compiles the two gather loops once per extent, and
  ``_excite_loops`` the excite's once per uniform column run (Numba's disk
  cache keys the closures by the constants they capture; they capture ints
  only, since a captured jitted function changes that key in every process).
* **float32 windows are summed in float32**: a window holds at most
  (2e − 1)² = 225 numbers (e = 8), so the float32 sum is within ~1e-5 of
  the float64 one, and it keeps every vector lane a float32. The excite's
  dgate sums a whole cell, up to the whole map for the global gate, in a
  float64 buffer (as the SE kernels sum a row).
* **The gate is widened once per plane**: the PyTorch rule (the
  reference's ``nearest_sources``, computed on the host) never decreases, so
  the pixel rows of one gate row form a run; each gate row is expanded to W
  numbers once, and every pixel row of its run is one contiguous multiply.
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
    """1/|W_pq| for every cell, flat (oh·ow,) in the map's dtype: one multiply per cell."""
    counts = np.outer(row_windows[:, 1] - row_windows[:, 0],
                      column_windows[:, 1] - column_windows[:, 0])
    return (1.0 / counts).astype(dtype).reshape(-1)


# ============================================================================ gather
def _make_gather_loops(extent):
    """The gather's forward and backward loops with e = ``extent`` frozen as a constant.

    Both keep a plane-local buffer of one row per window row p, L = ⌈W/e⌉·e numbers
    (columns W .. L − 1 are zero), so that cell m = p·⌈W/e⌉ + q of the flat
    (oh·ow) grid starts at column q·e of row p, number m·e of the flat rows:
    one loop over all cells of the plane, not one short loop per window row.
    The flat index runs across row ends, so one edge cell per row is
    recomputed after it (the first cell in the forward, the last one in the
    backward's spread).
    """
    span = extent - 1                               # the zeros before column 0

    @serial_and_parallel
    def forward(maps, out, row_windows, weights):
        planes, width = maps.shape[0], maps.shape[2]
        cells_h = row_windows.shape[0]
        cells_w = out.shape[1] // cells_h
        length = cells_w * extent
        for job in prange(job_count(planes)):
            # e − 1 zeros, then sums[p, j] = Σ over the rows of window row p of x[i, j]
            padded = np.zeros(span + cells_h * length, dtype=maps.dtype)
            sums = padded[span:].reshape(cells_h, length)
            for r in job_planes(job, planes):
                for p in range(cells_h):
                    first, stop = row_windows[p, 0], row_windows[p, 1]
                    if stop - first == 2 * extent - 1:      # a whole window: one sweep
                        for j in range(width):
                            total = maps[r, first, j]
                            for t in range(1, 2 * extent - 1):
                                total += maps[r, first + t, j]
                            sums[p, j] = total
                    else:                                   # clipped by the map's edge
                        for j in range(width):
                            sums[p, j] = maps[r, first, j]
                        for i in range(first + 1, stop):
                            for j in range(width):
                                sums[p, j] += maps[r, i, j]
                # cell m: columns q·e − (e − 1) .. q·e + e − 1 of its row = padded[m·e ...]
                for m in range(out.shape[1]):
                    total = padded[extent * m]
                    for t in range(1, 2 * extent - 1):
                        total += padded[extent * m + t]
                    out[r, m] = total * weights[m]
                # q = 0 read the e − 1 numbers before its row, the previous row's tail
                for p in range(cells_h):
                    total = sums[p, 0]
                    for t in range(1, extent):
                        total += sums[p, t]
                    out[r, p * cells_w] = total * weights[p * cells_w]
        return out

    @serial_and_parallel
    def backward(dx, dg, weights, cells_w):
        planes, height, width = dx.shape
        cells = dg.shape[1]
        cells_h = cells // cells_w
        length = cells_w * extent
        for job in prange(job_count(planes)):
            shares = np.zeros(cells + 1, dtype=dx.dtype)   # dg/|W| per cell, one 0 after
            after = shares[1:]
            # spread[p, j] = Σ over the (one or two) windows q of row p holding column j
            spread = np.empty(cells * extent, dtype=dx.dtype)
            rows = spread.reshape(cells_h, length)
            for r in job_planes(job, planes):
                for m in range(cells):
                    shares[m] = dg[r, m] * weights[m]
                # column q·e + t lies in window q, and for t >= 1 in window q + 1 too
                for m in range(cells):
                    spread[extent * m] = shares[m]
                    for t in range(1, extent):
                        spread[extent * m + t] = shares[m] + after[m]
                # ... except in the last cell of a row, where m + 1 is the next row's first
                for p in range(cells_h):
                    for t in range(1, extent):
                        rows[p, length - extent + t] = shares[p * cells_w + cells_w - 1]
                for i in range(height):
                    # the window rows holding pixel row i: i // e and (i + e − 1) // e, clipped
                    first = i // extent
                    last = min((i + extent - 1) // extent, cells_h - 1)
                    if last == first:
                        for j in range(width):
                            dx[r, i, j] = rows[first, j]
                    else:
                        for j in range(width):
                            dx[r, i, j] = rows[first, j] + rows[last, j]
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
    out = np.empty((n * c, len(rows) * len(columns)), dtype=x.dtype)
    forward, _ = _gather_loops(extent)
    forward(_planes(x), out, rows, _window_weights(rows, columns, x.dtype))
    return out.reshape(n, c, len(rows), len(columns))


def ge_gather_backward(dg, x_shape, extent):
    """dx[i,j] = Σ over the (at most 2×2) windows holding (i, j) of dg / window size."""
    n, c, height, width = x_shape
    rows, columns = extent_windows(height, extent), extent_windows(width, extent)
    dx = np.empty((n * c, height, width), dtype=dg.dtype)
    _, backward = _gather_loops(extent)
    backward(dx, _cells(dg, dg.dtype), _window_weights(rows, columns, dg.dtype), len(columns))
    return dx.reshape(x_shape)


# ============================================================================ excite
@njit(cache=True)
def _upsample_runs(gate_cells, r, run, wide):
    """wide[m·run + t] = gate[r, m] for t < run: every cell ``run`` times, flat over the plane."""
    for m in range(gate_cells.shape[1]):
        for t in range(run):
            wide[run * m + t] = gate_cells[r, m]


@njit(cache=True)
def _fold_runs(products, run, dgate, r):
    """dgate[r, m] = Σ_{t < run} products[m·run + t]: each cell's columns, flat over the plane."""
    for m in range(dgate.shape[1]):
        total = products[run * m]
        for t in range(1, run):
            total += products[run * m + t]
        dgate[r, m] = total


@njit(cache=True)
def _upsample_by_index(gate_cells, r, source_columns, rows):
    """rows[p, j] = gate[r, p, source_columns[j]]: every gate row at full width (any sizes)."""
    gate_width = gate_cells.shape[1] // rows.shape[0]
    for p in range(rows.shape[0]):
        for j in range(rows.shape[1]):
            rows[p, j] = gate_cells[r, p * gate_width + source_columns[j]]


@njit(cache=True)
def _fold_by_index(rows, column_runs, dgate, r):
    """dgate[r, p·w + q] = Σ of rows[p, j] over the columns j that gate column q covers."""
    gate_width = column_runs.shape[0] - 1
    for p in range(rows.shape[0]):
        for q in range(gate_width):
            total = 0.0
            for j in range(column_runs[q], column_runs[q + 1]):
                total += rows[p, j]
            dgate[r, p * gate_width + q] = total


@njit(cache=True)
def _widen(gate_cells, r, run, source_columns, wide, rows):
    """rows[p, j] (``wide`` flat) = gate row p of plane r at full width: by runs or by index."""
    if run:
        _upsample_runs(gate_cells, r, run, wide)
    else:
        _upsample_by_index(gate_cells, r, source_columns, rows)


@njit(cache=True)
def _times_gate_rows(maps, r, rows, row_runs, out):
    """out[r, i, j] = maps[r, i, j] · rows[p, j] for the pixel rows i of each gate row p's run."""
    for p in range(rows.shape[0]):
        for i in range(row_runs[p], row_runs[p + 1]):
            for j in range(rows.shape[1]):
                out[r, i, j] = maps[r, i, j] * rows[p, j]


def _make_excite_loops(run):
    """The excite's forward and backward loops; ``run`` > 0 when every gate column covers
    exactly ``run`` pixel columns (W = run · w, e.g. 56 -> 28: run 2), frozen as a constant;
    ``run`` = 0 for any other sizes (through the reference's index arrays).

    Both loops first widen the plane's gate along the rows, ``wide`` (h, W); the backward
    sums dy·x over each run of pixel rows into a float64 (h, W) and folds it into the cells
    at the end. With uniform runs the widening and the fold are each one loop over the
    plane's h·w cells (cell m covers flat numbers m·run .. m·run + run − 1)."""
    @serial_and_parallel
    def forward(maps, gate_cells, out, row_runs, source_columns):
        planes, width = maps.shape[0], maps.shape[2]
        gate_height = row_runs.shape[0] - 1
        for job in prange(job_count(planes)):
            wide = np.empty(gate_height * width, dtype=maps.dtype)
            rows = wide.reshape(gate_height, width)
            for r in job_planes(job, planes):
                _widen(gate_cells, r, run, source_columns, wide, rows)
                _times_gate_rows(maps, r, rows, row_runs, out)
        return out

    @serial_and_parallel
    def backward(dy, maps, gate_cells, dx, dgate, row_runs, source_columns, column_runs):
        planes, width = maps.shape[0], maps.shape[2]
        gate_height = row_runs.shape[0] - 1
        for job in prange(job_count(planes)):
            wide = np.empty(gate_height * width, dtype=maps.dtype)
            rows = wide.reshape(gate_height, width)
            products = np.zeros(gate_height * width)     # Σ dy·x over each run of rows
            sums = products.reshape(gate_height, width)
            for r in job_planes(job, planes):
                _widen(gate_cells, r, run, source_columns, wide, rows)
                for p in range(gate_height):
                    first, stop = row_runs[p], row_runs[p + 1]
                    for i in range(first, stop):
                        for j in range(width):
                            dx[r, i, j] = dy[r, i, j] * rows[p, j]
                    # dy·x apart from dx, while the run's rows of dy are in L1 (after the
                    # whole plane's dx measured slower on full-size maps): with five arrays
                    # in one loop LLVM gives up the run-time overlap checks it needs
                    if stop > first:
                        for j in range(width):
                            sums[p, j] = np.float64(dy[r, first, j]) * np.float64(maps[r, first, j])
                    for i in range(first + 1, stop):
                        for j in range(width):
                            sums[p, j] += np.float64(dy[r, i, j]) * np.float64(maps[r, i, j])
                if run:
                    _fold_runs(products, run, dgate, r)
                else:
                    _fold_by_index(sums, column_runs, dgate, r)
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


def _cells(gate, dtype):
    """(N, C, h, w) -> contiguous (N·C, h·w) in the map's dtype: one flat row of cells per plane."""
    gate = np.ascontiguousarray(gate, dtype=dtype)
    return gate.reshape(gate.shape[0] * gate.shape[1], gate.shape[2] * gate.shape[3])


def ge_excite_forward(x, gate):
    """y[n,c,i,j] = x[n,c,i,j] · gate[n,c,r(i),r(j)] (nearest upsampling): one pass over x."""
    maps = _planes(x)
    out = np.empty_like(maps)
    forward, _, source_columns = _excite_loops(x.shape[3], gate.shape[3])
    forward(maps, _cells(gate, x.dtype), out, source_runs(x.shape[2], gate.shape[2]),
            source_columns)
    return out.reshape(x.shape)


def ge_excite_backward(dy, x, gate):
    """``(dx, dgate)`` in one pass: dx = dy · U(gate); dgate[p,q] = Σ of dy·x over the cell's pixels."""
    maps = _planes(x)
    dx = np.empty_like(maps)
    cells = _cells(gate, x.dtype)
    dgate = np.empty(cells.shape, dtype=gate.dtype)
    _, backward, source_columns = _excite_loops(x.shape[3], gate.shape[3])
    backward(_planes(dy), maps, cells, dx, dgate, source_runs(x.shape[2], gate.shape[2]),
             source_columns, source_runs(x.shape[3], gate.shape[3]))
    return dx.reshape(x.shape), dgate.reshape(gate.shape)
