"""Numba spatial gate product: y = x · g with one gate per pixel, and its backward.

Read ``kernels/numpy/spatial_gate.py`` for the math. The forward is SE's
scale with the roles of pixel and channel swapped: every (n, c) row of the
(N·C, H·W) view is multiplied element-wise by the gate row of its image,
which stays in L1 for the C rows that read it; one read of x, one write of y.

The backward writes dx = dy·g the same way, but dg = Σ_c dy·x sums over the
channels, so two rows of one image would add into the same dg numbers. It
therefore runs as the channel pooling does (``channel_pool.py``): a job is a
stretch of pixels of one image, the channels walked outermost, a float64
running sum per pixel of the stretch kept in L1; dy and x are read once and
dx written once, in order. Products of two float32 numbers are exact in
float64, as in the reference.
"""
import numpy as np
from numba import njit, prange

from .channel_pool import job_stretch, stretch_jobs
from .rows import rows_of, serial_and_parallel


@serial_and_parallel
def spatial_scale_forward_loop(rows, gates, channels, out):
    for r in prange(rows.shape[0]):
        gate = gates[r // channels]
        for k in range(rows.shape[1]):
            out[r, k] = rows[r, k] * gate[k]
    return out


def spatial_scale_forward(x, g):
    """y[n,c,i,j] = x[n,c,i,j] · g[n,0,i,j]: one read of x, one write of y."""
    rows = rows_of(x)
    gates = np.ascontiguousarray(g, dtype=rows.dtype).reshape(x.shape[0], -1)
    out = np.empty_like(rows)
    return spatial_scale_forward_loop(rows, gates, x.shape[1], out).reshape(x.shape)


@njit(cache=True)
def _gate_stretch(dy, x, gates, n, start, stop, dx, dg):
    gate = gates[n, start:stop]
    total = np.zeros(stop - start)
    for c in range(dy.shape[1]):
        gradient, values, out = dy[n, c, start:stop], x[n, c, start:stop], dx[n, c, start:stop]
        for k in range(gate.shape[0]):
            out[k] = gradient[k] * gate[k]
            total[k] += np.float64(gradient[k]) * np.float64(values[k])
    summed = dg[n, start:stop]
    for k in range(total.shape[0]):
        summed[k] = total[k]


@serial_and_parallel
def spatial_scale_backward_loop(dy, x, gates, dx, dg):
    for job in prange(stretch_jobs(dy.shape[0], dy.shape[2])):
        n, start, stop = job_stretch(job, dy.shape[2])
        _gate_stretch(dy, x, gates, n, start, stop, dx, dg)
    return dx, dg


def spatial_scale_backward(dy, x, g):
    """``(dx, dg)``: dx = dy·g, dg = Σ_c dy·x, fused: one read of dy and x, one write of dx."""
    n, c, h, w = dy.shape
    dy_planes = np.ascontiguousarray(dy).reshape(n, c, h * w)
    x_planes = np.ascontiguousarray(x, dtype=dy.dtype).reshape(n, c, h * w)
    gates = np.ascontiguousarray(g, dtype=dy.dtype).reshape(n, h * w)
    dx = np.empty_like(dy_planes)
    dg = np.empty((n, h * w), dtype=dy.dtype)
    spatial_scale_backward_loop(dy_planes, x_planes, gates, dx, dg)
    return dx.reshape(dy.shape), dg.reshape(n, 1, h, w)
