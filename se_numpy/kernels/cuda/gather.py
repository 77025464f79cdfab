"""The Gather-Excite kernels on the GPU: one thread per element written, grid-stride loops.

Read ``kernels/numpy/gather.py`` for the math and ``launch.py`` for the host
or device rule. Every kernel here gives each thread one output element (a
gather cell, a pixel of dx, a gate cell) and walks them with a grid-stride
loop, so consecutive threads write consecutive addresses:

* ``ge_gather_forward``: a cell's thread sums its window, at most (2e−1)²
  reads; neighbouring windows overlap, so most of those reads hit the cache
  and the map comes from memory about once.
* ``ge_gather_backward``: a pixel's thread adds dg/|W| of the at most 2×2
  windows holding it (rows ⌊i/e⌋ .. ⌊(i+e−1)/e⌋).
* ``ge_excite_forward`` and the dx half of its backward: one multiply per
  pixel, the gate cell found through ``nearest_sources`` (computed on the
  host, H + W int64 numbers).
* the dgate half of the backward: a gate cell's thread sums dy·x over the
  rectangle of pixels it covers (the sources are non-decreasing, so the
  rectangle is ``source_runs``' run p by run q), no atomics, the same
  order every run.

float32 kernels accumulate in float32 (``kernels/cuda/se.py`` says why).
"""
import numpy as np
from numba import cuda

from ..numpy.gather import extent_windows, nearest_sources, source_runs
from .launch import is_device_array, launch_threads, new_output, to_device


@cuda.jit(device=True)
def _position(flat, height, width):
    """(plane, row, column) of element ``flat`` of (planes, height, width) C-ordered."""
    plane, inside = flat // (height * width), flat % (height * width)
    return plane, inside // width, inside % width


# ============================================================================ gather
@cuda.jit(cache=True)
def ge_gather_forward_kernel(x, out, row_windows, column_windows):
    """out[r, p, q] = mean of x[r] over rows row_windows[p] × columns column_windows[q]."""
    cells_h, cells_w = out.shape[1], out.shape[2]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for flat in range(start, out.shape[0] * cells_h * cells_w, step):
        r, p, q = _position(flat, cells_h, cells_w)
        total = x.dtype.type(0)
        for i in range(row_windows[p, 0], row_windows[p, 1]):
            for j in range(column_windows[q, 0], column_windows[q, 1]):
                total += x[r, i, j]
        count = ((row_windows[p, 1] - row_windows[p, 0])
                 * (column_windows[q, 1] - column_windows[q, 0]))
        out[r, p, q] = total / x.dtype.type(count)


@cuda.jit(cache=True)
def ge_gather_backward_kernel(dg, dx, row_windows, column_windows, extent):
    """dx[r, i, j] = Σ dg[r, p, q] / |W_pq| over the windows (p, q) that hold (i, j)."""
    height, width = dx.shape[1], dx.shape[2]
    cells_h, cells_w = dg.shape[1], dg.shape[2]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for flat in range(start, dx.shape[0] * height * width, step):
        r, i, j = _position(flat, height, width)
        total = dx.dtype.type(0)
        for p in range(i // extent, min((i + extent - 1) // extent, cells_h - 1) + 1):
            rows = row_windows[p, 1] - row_windows[p, 0]
            for q in range(j // extent, min((j + extent - 1) // extent, cells_w - 1) + 1):
                count = rows * (column_windows[q, 1] - column_windows[q, 0])
                total += dg[r, p, q] / dx.dtype.type(count)
        dx[r, i, j] = total


# ============================================================================ excite
@cuda.jit(cache=True)
def ge_excite_forward_kernel(x, gate, out, source_rows, source_columns):
    """out[r, i, j] = x[r, i, j] · gate[r, source_rows[i], source_columns[j]]."""
    height, width = x.shape[1], x.shape[2]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for flat in range(start, x.shape[0] * height * width, step):
        r, i, j = _position(flat, height, width)
        out[r, i, j] = x[r, i, j] * gate[r, source_rows[i], source_columns[j]]


@cuda.jit(cache=True)
def ge_excite_dgate_kernel(dy, x, dgate, first_rows, first_columns):
    """dgate[r, p, q] = Σ dy·x over rows first_rows[p] .. first_rows[p+1] (columns likewise)."""
    cells_h, cells_w = dgate.shape[1], dgate.shape[2]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for flat in range(start, dgate.shape[0] * cells_h * cells_w, step):
        r, p, q = _position(flat, cells_h, cells_w)
        total = x.dtype.type(0)
        for i in range(first_rows[p], first_rows[p + 1]):
            for j in range(first_columns[q], first_columns[q + 1]):
                total += dy[r, i, j] * x[r, i, j]
        dgate[r, p, q] = total


# ============================================================================ host functions
def _planes(device_map):
    n, c, h, w = device_map.shape
    return device_map.reshape(n * c, h, w)


def _returned(results, to_host):
    results = [out.copy_to_host() if to_host else out for out in results]
    return results[0] if len(results) == 1 else tuple(results)


def ge_gather_forward(x, extent):
    """Window means of extent e: (N, C, H, W) -> (N, C, ⌈H/e⌉, ⌈W/e⌉), one thread per cell."""
    n, c, height, width = x.shape
    rows, columns = extent_windows(height, extent), extent_windows(width, extent)
    out = new_output((n, c, len(rows), len(columns)), x.dtype)
    launch_threads(ge_gather_forward_kernel, out.size)(
        _planes(to_device(x)), _planes(out), to_device(rows), to_device(columns))
    return _returned([out], not is_device_array(x))


def ge_gather_backward(dg, x_shape, extent):
    """dx: each pixel's thread adds dg/|W| of the windows that hold it."""
    n, c, height, width = x_shape
    rows, columns = extent_windows(height, extent), extent_windows(width, extent)
    dx = new_output(tuple(x_shape), dg.dtype)
    launch_threads(ge_gather_backward_kernel, dx.size)(
        _planes(to_device(dg)), _planes(dx), to_device(rows), to_device(columns), extent)
    return _returned([dx], not is_device_array(dg))


def _sources(x_shape, gate_shape):
    return (to_device(nearest_sources(x_shape[2], gate_shape[2])),
            to_device(nearest_sources(x_shape[3], gate_shape[3])))


def ge_excite_forward(x, gate):
    """y = x · U(gate), one thread per pixel."""
    out = new_output(x.shape, x.dtype)
    launch_threads(ge_excite_forward_kernel, out.size)(
        _planes(to_device(x)), _planes(to_device(gate, dtype=x.dtype)), _planes(out),
        *_sources(x.shape, gate.shape))
    return _returned([out], not is_device_array(x))


def ge_excite_backward(dy, x, gate):
    """(dx, dgate): dx = dy · U(gate) per pixel; dgate per gate cell over the pixels it covers."""
    dy_planes, x_planes = _planes(to_device(dy)), _planes(to_device(x))
    gate_planes = _planes(to_device(gate, dtype=x.dtype))
    dx, dgate = new_output(x.shape, x.dtype), new_output(gate.shape, x.dtype)
    launch_threads(ge_excite_forward_kernel, dx.size)(dy_planes, gate_planes, _planes(dx),
                                                      *_sources(x.shape, gate.shape))
    launch_threads(ge_excite_dgate_kernel, dgate.size)(
        dy_planes, x_planes, _planes(dgate),
        to_device(source_runs(x.shape[2], gate.shape[2])),
        to_device(source_runs(x.shape[3], gate.shape[3])))
    return _returned([dx, dgate], not is_device_array(dy))


# every GPU kernel of this file, for the PTX test
KERNELS = (ge_gather_forward_kernel, ge_gather_backward_kernel, ge_excite_forward_kernel,
           ge_excite_dgate_kernel)
