"""Numba SE kernels: squeeze, scale and the fused backward passes, one pass over memory each.

Read ``kernels/numpy/se.py`` first for the math; this file explains how the
loops are made fast. Each kernel is a row loop (``rows.py``: one job per
(n, c) channel map) directly above its wrapper. Three tricks do the work
(numbers in ``docs/kernels.md``; the slower drafts are in ``naive.py``):

* **Row sums use the fast-math flags ``reassoc`` and ``contract`` only.** A
  sum ``t += v`` is a chain of dependent additions; IEEE order forbids LLVM to
  split it over SIMD lanes, and the loop runs at one addition per ~4 cycles.
  Re-association lets it keep 8-16 partial sums and stream at memory speed.
* **float32 rows are summed in float64.** A float32 running sum of 50 176
  numbers (224²) loses ~4 digits; a float64 one is exact to ~1e-12 and costs
  nothing here because the loop waits on memory, not on arithmetic.
* **Scalars keep the array's dtype.** Numba follows NumPy's scalar rules:
  ``float32 / int`` becomes float64, silently turning a float32 loop into
  convert-multiply-convert. Per-row constants (dz/(HW)) are computed once, in
  the map's dtype, before the loop; the squeeze divides its float64 sum by
  the float64 ``float(H·W)`` and rounds once on the store.
"""
import numpy as np
from numba import prange

from .rows import per_row, row_dot, row_first_argmax, row_sum, rows_of, serial_and_parallel


# ============================================================================ squeeze
@serial_and_parallel
def squeeze_forward_loop(rows, out, area):
    for r in prange(rows.shape[0]):
        out[r] = row_sum(rows[r]) / area
    return out


def squeeze_forward(x):
    """Global average pooling, z[n,c] = 1/(HW) Σ_ij x[n,c,i,j]: one read of x.  (N,C,H,W) -> (N,C)."""
    rows = rows_of(x)
    z = np.empty(rows.shape[0], dtype=rows.dtype)
    return squeeze_forward_loop(rows, z, float(rows.shape[1])).reshape(x.shape[0], x.shape[1])


@serial_and_parallel
def squeeze_backward_loop(out, shares):
    for r in prange(out.shape[0]):
        out[r, :] = shares[r]
    return out


def squeeze_backward(dz, x_shape):
    """dx[n,c,i,j] = dz[n,c] / (HW): one write of dx.  (N,C) -> x_shape."""
    n, c, height, width = x_shape
    dz = np.ascontiguousarray(dz)
    shares = (dz / dz.dtype.type(height * width)).reshape(-1)   # tiny (N·C,), exact as reference
    dx = np.empty((n * c, height * width), dtype=dz.dtype)
    return squeeze_backward_loop(dx, shares).reshape(x_shape)


@serial_and_parallel
def max_squeeze_forward_loop(rows, values, indices):
    for r in prange(rows.shape[0]):
        k = row_first_argmax(rows[r])
        indices[r] = k
        values[r] = rows[r, k]
    return values, indices


def max_squeeze_forward(x):
    """Global max pooling: ``(z, argmax)``, argmax the flat i·W + j of the first maximum (int64)."""
    rows = rows_of(x)
    values = np.empty(rows.shape[0], dtype=rows.dtype)
    indices = np.empty(rows.shape[0], dtype=np.int64)
    max_squeeze_forward_loop(rows, values, indices)
    shape = (x.shape[0], x.shape[1])
    return values.reshape(shape), indices.reshape(shape)


@serial_and_parallel
def max_squeeze_backward_loop(out, values, indices):
    for r in prange(out.shape[0]):
        out[r, :] = 0
        out[r, indices[r]] = values[r]
    return out


def max_squeeze_backward(dz, argmax, x_shape):
    """dx[n,c,argmax[n,c]] = dz[n,c]; zero elsewhere."""
    n, c, height, width = x_shape
    dx = np.empty((n * c, height * width), dtype=dz.dtype)
    indices = np.ascontiguousarray(argmax, dtype=np.int64).reshape(-1)
    return max_squeeze_backward_loop(dx, per_row(dz, dz.dtype), indices).reshape(x_shape)


# ============================================================================ scale
# Element-wise loops need no fast-math: LLVM vectorises them over contiguous rows.
@serial_and_parallel
def scale_forward_loop(rows, scales, out):
    for r in prange(rows.shape[0]):
        scale = scales[r]
        for k in range(rows.shape[1]):
            out[r, k] = rows[r, k] * scale
    return out


def scale_forward(x, s):
    """Channel-wise rescale (paper Eq. 4), y[n,c,i,j] = s[n,c]·x[n,c,i,j]: read x, write y."""
    rows = rows_of(x)
    return scale_forward_loop(rows, per_row(s, rows.dtype), np.empty_like(rows)).reshape(x.shape)


@serial_and_parallel
def scale_backward_loop(dy, x, scales, dx, ds):
    for r in prange(dy.shape[0]):
        scale = scales[r]
        for k in range(dy.shape[1]):
            dx[r, k] = dy[r, k] * scale
        # the row of dy is still in L1/L2 from the line above: the second
        # read is nearly free, so dx and ds cost one pass over memory
        ds[r] = row_dot(dy[r], x[r])
    return dx, ds


def scale_backward(dy, x, s):
    """dx = dy·s and ds[n,c] = Σ_ij dy·x, fused: one read of dy and x, one write of dx."""
    dy_rows, x_rows = rows_of(dy), rows_of(x)
    dx = np.empty_like(dy_rows)
    ds = np.empty(dy_rows.shape[0], dtype=dy_rows.dtype)
    scale_backward_loop(dy_rows, x_rows, per_row(s, dy_rows.dtype), dx, ds)
    return dx.reshape(dy.shape), ds.reshape(dy.shape[0], dy.shape[1])


# ============================================================================ fused SE
@serial_and_parallel
def se_backward_ds_loop(dy, x, out):
    for r in prange(dy.shape[0]):
        out[r] = row_dot(dy[r], x[r])
    return out


def se_backward_ds(dy, x):
    """ds[n,c] = Σ_ij dy[n,c,i,j]·x[n,c,i,j], float64 accumulation: one read of dy and x."""
    dy_rows = rows_of(dy)
    ds = np.empty(dy_rows.shape[0], dtype=dy_rows.dtype)
    return se_backward_ds_loop(dy_rows, rows_of(x), ds).reshape(dy.shape[0], dy.shape[1])


@serial_and_parallel
def se_backward_dx_loop(dy, scales, shifts, out):
    for r in prange(dy.shape[0]):
        scale, shift = scales[r], shifts[r]
        for k in range(dy.shape[1]):
            out[r, k] = dy[r, k] * scale + shift
    return out


def se_backward_dx(dy, s, dz):
    """dx = dy·s + dz/(HW) in one pass: read dy, write dx (derivation: kernels/numpy/se.py)."""
    dy_rows = rows_of(dy)
    dtype = dy_rows.dtype
    # dz/(HW) once per row, in the map's dtype (an int divisor inside the loop
    # would promote every element to float64: naive.se_backward_dx_promoting)
    shifts = per_row(dz, dtype) / dtype.type(dy_rows.shape[1])
    dx = np.empty_like(dy_rows)
    return se_backward_dx_loop(dy_rows, per_row(s, dtype), shifts, dx).reshape(dy.shape)


@serial_and_parallel
def scale_add_forward_loop(rows, scales, shortcut, out):
    for r in prange(rows.shape[0]):
        scale = scales[r]
        for k in range(rows.shape[1]):
            out[r, k] = rows[r, k] * scale + shortcut[r, k]
    return out


def scale_add_forward(u, s, shortcut):
    """Caffe SENet's "Axpy", out = s·u + shortcut: read u and shortcut, write out (one pass)."""
    rows = rows_of(u)
    shortcut_rows = rows_of(np.asarray(shortcut, dtype=rows.dtype))
    return scale_add_forward_loop(rows, per_row(s, rows.dtype), shortcut_rows,
                                  np.empty_like(rows)).reshape(u.shape)

