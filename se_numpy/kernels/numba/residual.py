"""Numba: the end of a residual unit in one pass, ReLU applied as the value is stored.

Read ``kernels/numpy/residual.py`` for the math. Rows of the (N·C, H·W) view
(``rows.py``), one parallel job per row; the reference's operations in its
order, no fused multiply-add, so the results are identical. Each forward
reads u and the shortcut and writes out: the pass that adds them is the pass
that clips them, and no mask is stored for the backward.
"""
import numpy as np
from numba import prange

from .rows import per_row, rows_of, serial_and_parallel


@serial_and_parallel
def add_relu_forward_loop(rows, shortcut, zero, out):
    for r in prange(rows.shape[0]):
        for k in range(rows.shape[1]):
            value = rows[r, k] + shortcut[r, k]
            out[r, k] = zero if value < zero else value     # NaN stays NaN (np.maximum)
    return out


def add_relu_forward(u, shortcut):
    """out = max(u + shortcut, 0) in one pass: read u and shortcut, write out."""
    rows = rows_of(u)
    return add_relu_forward_loop(rows, rows_of(np.asarray(shortcut, dtype=rows.dtype)),
                                 rows.dtype.type(0), np.empty_like(rows)).reshape(u.shape)


@serial_and_parallel
def scale_add_relu_forward_loop(rows, scales, shortcut, zero, out):
    for r in prange(rows.shape[0]):
        scale = scales[r]
        for k in range(rows.shape[1]):
            value = rows[r, k] * scale + shortcut[r, k]
            out[r, k] = zero if value < zero else value
    return out


def scale_add_relu_forward(u, s, shortcut):
    """out = max(s·u + shortcut, 0) in one pass (SE's "Axpy" and the unit's ReLU together)."""
    rows = rows_of(u)
    return scale_add_relu_forward_loop(rows, per_row(s, rows.dtype),
                                       rows_of(np.asarray(shortcut, dtype=rows.dtype)),
                                       rows.dtype.type(0), np.empty_like(rows)).reshape(u.shape)


@serial_and_parallel
def relu_backward_loop(dout, out, one, dx):
    zero = one - one
    for r in prange(dout.shape[0]):
        for k in range(dout.shape[1]):
            # dout·1 or dout·0, as the reference multiplies (so inf·0 is NaN in both)
            dx[r, k] = dout[r, k] * (one if out[r, k] > zero else zero)
    return dx


def relu_backward(dout, out):
    """d_pre = dout · 1[out > 0] in one pass: read dout and out, write d_pre."""
    dout_rows = rows_of(dout)
    return relu_backward_loop(dout_rows, rows_of(np.asarray(out, dtype=dout_rows.dtype)),
                              dout_rows.dtype.type(1), np.empty_like(dout_rows)).reshape(dout.shape)


def scale_add_relu_forward_in_place(u, s, shortcut):
    """max(s·u + shortcut, 0) stored over u: read u and shortcut, write u, no new map.

    An out-of-place store first reads the destination line it is about to
    overwrite (write-allocate), so out = f(u, shortcut) moves 4 map-sized
    streams; over u, whose line is already in cache, it moves 3 (docs/kernels.md,
    "Scale: what limits each store pattern"). A u that is not C-contiguous (a
    view) gets the out-of-place result copied into it: in place still, not faster."""
    if not u.flags.writeable:
        raise ValueError("scale_add_relu_forward_in_place: u must be writeable, got a "
                         "read-only array")
    if not u.flags.c_contiguous:
        u[...] = scale_add_relu_forward(u, s, shortcut)
        return u
    rows = rows_of(u)
    scale_add_relu_forward_loop(rows, per_row(s, rows.dtype),
                                rows_of(np.asarray(shortcut, dtype=rows.dtype)),
                                rows.dtype.type(0), rows)
    return u
