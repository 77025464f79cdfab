"""Numba Gather-Excite kernels: the extent-e gather and the upsampled gate, one job per plane.

Read ``kernels/numpy/gather.py`` for the math. Each (n, c) plane is an
independent job, so no two threads write the same element. Two things make
the loops stream:

* **The gather is separable.** A window mean is a mean of row sums, so each
  plane is summed down its columns first, into a small (oh, W) float64 buffer
  (each input row read once per window that holds it, at most twice, and from
  cache), then along the rows of that buffer. The backward runs the same two
  steps transposed: each pixel lies in at most two windows per axis,
  rows ⌊i/e⌋ .. ⌊(i+e−1)/e⌋.
* **The upsampling is an index lookup.** ``nearest_sources`` (the reference's
  PyTorch rule, computed once per call on the host) says which gate row and
  column each pixel reads; the excite loops are then one multiply per pixel,
  and the backward sums dy·x into a float64 (gh, gw) buffer per plane.
"""
import numpy as np
from numba import prange

from ..numpy.gather import extent_windows, nearest_sources
from .rows import serial_and_parallel


def _planes(x):
    """Contiguous (N, C, H, W) -> (N·C, H, W) view."""
    x = np.ascontiguousarray(x)
    return x.reshape(x.shape[0] * x.shape[1], x.shape[2], x.shape[3])


# ============================================================================ gather
@serial_and_parallel
def ge_gather_forward_loop(planes, out, row_windows, column_windows):
    for r in prange(planes.shape[0]):
        width = planes.shape[2]
        column_sums = np.zeros((out.shape[1], width))
        for p in range(out.shape[1]):
            for i in range(row_windows[p, 0], row_windows[p, 1]):
                for j in range(width):
                    column_sums[p, j] += planes[r, i, j]
        for p in range(out.shape[1]):
            rows = row_windows[p, 1] - row_windows[p, 0]
            for q in range(out.shape[2]):
                total = 0.0
                for j in range(column_windows[q, 0], column_windows[q, 1]):
                    total += column_sums[p, j]
                out[r, p, q] = total / (rows * (column_windows[q, 1] - column_windows[q, 0]))
    return out


def ge_gather_forward(x, extent):
    """Window means (kernel 2e−1, stride e, padding e−1 not counted).  -> (N, C, ⌈H/e⌉, ⌈W/e⌉)."""
    n, c, height, width = x.shape
    rows, columns = extent_windows(height, extent), extent_windows(width, extent)
    out = np.empty((n * c, len(rows), len(columns)), dtype=x.dtype)
    ge_gather_forward_loop(_planes(x), out, rows, columns)
    return out.reshape(n, c, len(rows), len(columns))


@serial_and_parallel
def ge_gather_backward_loop(shares, out, extent):
    for r in prange(out.shape[0]):
        cells_h, cells_w = shares.shape[1], shares.shape[2]
        row_spread = np.zeros((cells_h, out.shape[2]))
        for p in range(cells_h):
            for j in range(out.shape[2]):
                for q in range(j // extent, min((j + extent - 1) // extent, cells_w - 1) + 1):
                    row_spread[p, j] += shares[r, p, q]
        for i in range(out.shape[1]):
            for j in range(out.shape[2]):
                total = 0.0
                for p in range(i // extent, min((i + extent - 1) // extent, cells_h - 1) + 1):
                    total += row_spread[p, j]
                out[r, i, j] = total
    return out


def ge_gather_backward(dg, x_shape, extent):
    """dx[i,j] = Σ over the (at most 2×2) windows holding (i, j) of dg / window size."""
    n, c, height, width = x_shape
    rows, columns = extent_windows(height, extent), extent_windows(width, extent)
    counts = np.outer(rows[:, 1] - rows[:, 0], columns[:, 1] - columns[:, 0])
    shares = _planes(np.asarray(dg, dtype=np.float64) / counts)     # dg / |W_pq|, tiny
    out = np.empty((n * c, height, width), dtype=dg.dtype)
    ge_gather_backward_loop(shares, out, extent)
    return out.reshape(x_shape)


# ============================================================================ excite
@serial_and_parallel
def ge_excite_forward_loop(planes, gate, out, source_rows, source_columns):
    for r in prange(planes.shape[0]):
        for i in range(planes.shape[1]):
            p = source_rows[i]
            for j in range(planes.shape[2]):
                out[r, i, j] = planes[r, i, j] * gate[r, p, source_columns[j]]
    return out


def _sources(x_shape, gate_shape):
    return (nearest_sources(x_shape[2], gate_shape[2]),
            nearest_sources(x_shape[3], gate_shape[3]))


def ge_excite_forward(x, gate):
    """y[n,c,i,j] = x[n,c,i,j] · gate[n,c,r(i),r(j)] (nearest upsampling): one pass over x."""
    source_rows, source_columns = _sources(x.shape, gate.shape)
    gate_planes = _planes(np.asarray(gate, dtype=x.dtype))
    out = np.empty((x.shape[0] * x.shape[1],) + x.shape[2:], dtype=x.dtype)
    ge_excite_forward_loop(_planes(x), gate_planes, out, source_rows, source_columns)
    return out.reshape(x.shape)


@serial_and_parallel
def ge_excite_backward_loop(dy, planes, gate, dx, dgate, source_rows, source_columns):
    for r in prange(planes.shape[0]):
        sums = np.zeros((gate.shape[1], gate.shape[2]))
        for i in range(planes.shape[1]):
            p = source_rows[i]
            for j in range(planes.shape[2]):
                q = source_columns[j]
                dx[r, i, j] = dy[r, i, j] * gate[r, p, q]
                sums[p, q] += np.float64(dy[r, i, j]) * np.float64(planes[r, i, j])
        for p in range(gate.shape[1]):
            for q in range(gate.shape[2]):
                dgate[r, p, q] = sums[p, q]
    return dx, dgate


def ge_excite_backward(dy, x, gate):
    """``(dx, dgate)`` in one pass: dx = dy · U(gate); dgate[p,q] = Σ of dy·x over the cell's pixels."""
    source_rows, source_columns = _sources(x.shape, gate.shape)
    gate_planes = _planes(np.asarray(gate, dtype=x.dtype))
    dx = np.empty((x.shape[0] * x.shape[1],) + x.shape[2:], dtype=x.dtype)
    dgate = np.empty(gate_planes.shape, dtype=gate.dtype)
    ge_excite_backward_loop(_planes(dy), _planes(x), gate_planes, dx, dgate, source_rows,
                            source_columns)
    return dx.reshape(x.shape), dgate.reshape(gate.shape)

