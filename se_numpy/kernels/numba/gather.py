"""Numba Gather-Excite kernels: the extent-e gather and the upsampled gate, one job per plane.

Read ``kernels/numpy/gather.py`` for the math. Each (n, c) plane is an
independent job, so no two threads write the same element. What makes the
loops stream:

* **The gather is separable.** A window mean is a mean of column sums, so for
  each window row p the 2e−1 rows of x it holds are added into one float64
  row (contiguous, vectorised; an input row is read for at most two
  windows, the second time from L1), and the cells of that row are then sums
  of 2e−1 neighbours in it. The row is padded with e−1 zeros on the left and
  enough on the right that every window reads 2e−1 numbers (window q is
  ``padded[q·e : q·e + 2e − 1]``), so no cell needs a clipped range. The
  backward runs the same two steps transposed: each pixel lies in at most
  two windows per axis, rows ⌊i/e⌋ .. ⌊(i+e−1)/e⌋.
* **Three at a time.** The column sums add three window rows per sweep
  (``_add_rows``) and the row sums three window offsets per sweep
  (``_add_windows``, ``for q: sums[q] += padded[q·e + t] + …``), so each
  running sum is loaded and stored a third as often. The first version (one
  sweep per row, a running prefix sum along each row, a chain of dependent
  additions, and a loop per cell over its own few numbers) ran at 0.11 of the
  copy bandwidth; docs/kernels.md has the rows before and after, and what
  else was tried.
* **The upsampling is done once per gate row.** The PyTorch rule (the
  reference's ``nearest_sources``, computed once per call on the host) never
  decreases, so consecutive pixel rows read the same gate row: it is expanded
  to a full-width row once, and every pixel row of its run is then one
  contiguous multiply (vectorised). The backward adds dy·x of the rows of a
  run into one float64 row, and folds it into the gate cells (``source_runs``:
  the columns each cell covers) when the run ends.
* **Inner loops run along a row of the row view.** Maps are passed as the
  (N·C, H·W) rows of ``rows.py`` and indexed ``[r, i·W + j]``; with 3-d
  ``[r, i, j]`` indexing the same loops ran slower (a serial excite, timed
  alone on a loaded machine: about 2.4 times). Every loop that touches the map walks W contiguous numbers, so LLVM
  vectorises it; the per-window bookkeeping happens on the small arrays.
* **The parallel choice looks at the map.** ``serial_and_parallel`` judges a
  loop by its first argument, so every loop takes a full-size map first.
"""
import numpy as np
from numba import njit, prange

from ..numpy.gather import extent_windows, nearest_sources, source_runs
from .rows import rows_of, serial_and_parallel


# ============================================================================ gather
@njit(cache=True)
def _add_rows(column_sums, plane, first, stop, width):
    """column_sums[j] += Σ_{first <= i < stop} plane[i·W + j], three rows per sweep."""
    i = first
    while i + 3 <= stop:
        a = plane[i * width:(i + 1) * width]
        b = plane[(i + 1) * width:(i + 2) * width]
        c = plane[(i + 2) * width:(i + 3) * width]
        for j in range(width):
            column_sums[j] += (np.float64(a[j]) + np.float64(b[j])) + np.float64(c[j])
        i += 3
    for i in range(i, stop):
        a = plane[i * width:(i + 1) * width]
        for j in range(width):
            column_sums[j] += a[j]


@njit(cache=True)
def _add_windows(sums, padded, extent):
    """sums[q] += Σ_{0 <= t < 2e−1} padded[q·e + t], three offsets per sweep."""
    t, span = 0, 2 * extent - 1
    while t + 3 <= span:
        for q in range(sums.shape[0]):
            o = q * extent + t
            sums[q] += (padded[o] + padded[o + 1]) + padded[o + 2]
        t += 3
    for t in range(t, span):
        for q in range(sums.shape[0]):
            sums[q] += padded[q * extent + t]


@serial_and_parallel
def ge_gather_forward_loop(rows, out, width, row_windows, extent, inverse_counts):
    cells_h = row_windows.shape[0]
    cells_w = out.shape[1] // cells_h
    left = extent - 1                               # the zeros before column 0
    for r in prange(rows.shape[0]):
        # padded[left + j] = Σ over the window's rows of column j; window q is
        # padded[q·e .. q·e + 2e − 2] (zeros where it leaves the map)
        padded = np.zeros(cells_w * extent + extent)
        column_sums = padded[left:left + width]
        sums = np.empty(cells_w)
        plane, cells = rows[r], out[r]
        for p in range(cells_h):
            column_sums[:] = 0.0
            _add_rows(column_sums, plane, row_windows[p, 0], row_windows[p, 1], width)
            sums[:] = 0.0
            _add_windows(sums, padded, extent)
            base = p * cells_w
            for q in range(cells_w):
                cells[base + q] = sums[q] * inverse_counts[base + q]
    return out


def _inverse_counts(row_windows, column_windows):
    """1/|W_pq| for every cell, flat (oh·ow,) float64: one multiply per cell in the loops."""
    counts = np.outer(row_windows[:, 1] - row_windows[:, 0],
                      column_windows[:, 1] - column_windows[:, 0])
    return (1.0 / counts).reshape(-1)


def ge_gather_forward(x, extent):
    """Window means (kernel 2e−1, stride e, padding e−1 not counted).  -> (N, C, ⌈H/e⌉, ⌈W/e⌉)."""
    n, c, height, width = x.shape
    rows, columns = extent_windows(height, extent), extent_windows(width, extent)
    out = np.empty((n * c, len(rows) * len(columns)), dtype=x.dtype)
    ge_gather_forward_loop(rows_of(x), out, width, rows, extent,
                           _inverse_counts(rows, columns))
    return out.reshape(n, c, len(rows), len(columns))


@serial_and_parallel
def ge_gather_backward_loop(out, dg, width, cells_w, first_window, second_window,
                            inverse_counts, extent):
    for r in prange(out.shape[0]):
        cells_h = dg.shape[1] // cells_w
        # row_spread[p, j] = Σ over the (one or two) column windows q holding j of dg/|W_pq|
        row_spread = np.empty((cells_h, width))
        for p in range(cells_h):
            base = p * cells_w
            for j in range(width):
                first, second = base + first_window[j], base + second_window[j]
                row_spread[p, j] = dg[r, first] * inverse_counts[first]
                if second != first:
                    row_spread[p, j] += dg[r, second] * inverse_counts[second]
        for i in range(out.shape[1] // width):
            first, last = i // extent, min((i + extent - 1) // extent, cells_h - 1)
            base = i * width
            if last == first:                           # a pixel lies in one or two row windows
                for j in range(width):
                    out[r, base + j] = row_spread[first, j]
            else:
                for j in range(width):
                    out[r, base + j] = row_spread[first, j] + row_spread[last, j]
    return out


def ge_gather_backward(dg, x_shape, extent):
    """dx[i,j] = Σ over the (at most 2×2) windows holding (i, j) of dg / window size."""
    n, c, height, width = x_shape
    rows, columns = extent_windows(height, extent), extent_windows(width, extent)
    j = np.arange(width)
    first_window = j // extent                          # the windows holding column j
    second_window = np.minimum((j + extent - 1) // extent, len(columns) - 1)
    out = np.empty((n * c, height * width), dtype=dg.dtype)
    ge_gather_backward_loop(out, rows_of(dg), width, len(columns), first_window, second_window,
                            _inverse_counts(rows, columns), extent)
    return out.reshape(x_shape)


# ============================================================================ excite
@serial_and_parallel
def ge_excite_forward_loop(rows, gate, out, gate_width, source_rows, source_columns):
    for r in prange(rows.shape[0]):
        width = source_columns.shape[0]
        gate_row = np.empty(width, dtype=rows.dtype)    # the gate row, upsampled to W
        current = -1
        for i in range(source_rows.shape[0]):
            if source_rows[i] != current:
                current = source_rows[i]
                for j in range(width):
                    gate_row[j] = gate[r, current * gate_width + source_columns[j]]
            base = i * width
            for j in range(width):
                out[r, base + j] = rows[r, base + j] * gate_row[j]
    return out


def _gate_rows(gate, dtype):
    return rows_of(np.asarray(gate, dtype=dtype))


def ge_excite_forward(x, gate):
    """y[n,c,i,j] = x[n,c,i,j] · gate[n,c,r(i),r(j)] (nearest upsampling): one pass over x."""
    out = np.empty((x.shape[0] * x.shape[1], x.shape[2] * x.shape[3]), dtype=x.dtype)
    ge_excite_forward_loop(rows_of(x), _gate_rows(gate, x.dtype), out, gate.shape[3],
                           nearest_sources(x.shape[2], gate.shape[2]),
                           nearest_sources(x.shape[3], gate.shape[3]))
    return out.reshape(x.shape)


@serial_and_parallel
def ge_excite_backward_loop(dy, rows, gate, dx, dgate, source_rows, source_columns,
                            column_runs):
    for r in prange(rows.shape[0]):
        height, width = source_rows.shape[0], source_columns.shape[0]
        gate_width = column_runs.shape[0] - 1
        gate_row = np.empty(width, dtype=rows.dtype)
        products = np.zeros(width)                      # Σ dy·x over the run's rows, per column
        for i in range(height):
            p = source_rows[i]
            if i == 0 or source_rows[i - 1] != p:
                for j in range(width):
                    gate_row[j] = gate[r, p * gate_width + source_columns[j]]
            base = i * width
            for j in range(width):
                dx[r, base + j] = dy[r, base + j] * gate_row[j]
                products[j] += np.float64(dy[r, base + j]) * np.float64(rows[r, base + j])
            if i == height - 1 or source_rows[i + 1] != p:  # the run of gate row p ends here
                for q in range(gate_width):
                    total = 0.0
                    for j in range(column_runs[q], column_runs[q + 1]):
                        total += products[j]
                    dgate[r, p * gate_width + q] = total
                products[:] = 0.0
    return dx, dgate


def ge_excite_backward(dy, x, gate):
    """``(dx, dgate)`` in one pass: dx = dy · U(gate); dgate[p,q] = Σ of dy·x over the cell's pixels."""
    gate_rows = _gate_rows(gate, x.dtype)
    dx = np.empty((x.shape[0] * x.shape[1], x.shape[2] * x.shape[3]), dtype=x.dtype)
    dgate = np.empty(gate_rows.shape, dtype=gate.dtype)
    ge_excite_backward_loop(rows_of(dy), rows_of(x), gate_rows, dx, dgate,
                            nearest_sources(x.shape[2], gate.shape[2]),
                            nearest_sources(x.shape[3], gate.shape[3]),
                            source_runs(x.shape[3], gate.shape[3]))
    return dx.reshape(x.shape), dgate.reshape(gate.shape)
