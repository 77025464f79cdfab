"""Numba per-pixel channel pooling: one parallel job per (image, stretch of pixels).

Read ``kernels/numpy/channel_pool.py`` for the math. An NCHW map is the
(N, C, H·W) array of C contiguous planes per image; pooling over c at a fixed
pixel reads one number from each plane, H·W apart. Looping over the pixel
innermost (``for c: for k in stretch``) reads every plane contiguously and
keeps the stretch's running sums and maxima in cache, so the map is streamed
once, at memory speed, instead of jumping H·W numbers per step.

A job is ``PIXELS_PER_JOB`` pixels of one image: enough work to amortise a
thread's start, and its three running arrays (float64 sums, maxima, channel
indices) stay in L1/L2. Ties keep the first channel (strict ``>``); a NaN
becomes the maximum at once and stays, as in NumPy's argmax.
"""
import numpy as np
from numba import njit, prange

from .rows import PARALLEL_MIN_ELEMENTS

PIXELS_PER_JOB = 2048


@njit(cache=True)
def _pool_stretch(planes, n, start, stop, sums, best, best_channel):
    channels = planes.shape[1]
    for k in range(start, stop):
        sums[n, k] = np.float64(planes[n, 0, k])
        best[n, k] = planes[n, 0, k]
        best_channel[n, k] = 0
    for c in range(1, channels):
        for k in range(start, stop):
            value = planes[n, c, k]
            sums[n, k] += np.float64(value)
            current = best[n, k]
            if value > current or (np.isnan(value) and not np.isnan(current)):
                best[n, k] = value
                best_channel[n, k] = c


@njit(parallel=True, cache=True)
def channel_pool_forward_parallel(planes, sums, best, best_channel):
    n_images, _, pixels = planes.shape
    stretches = (pixels + PIXELS_PER_JOB - 1) // PIXELS_PER_JOB
    for job in prange(n_images * stretches):
        n, first = job // stretches, (job % stretches) * PIXELS_PER_JOB
        _pool_stretch(planes, n, first, min(first + PIXELS_PER_JOB, pixels), sums, best,
                      best_channel)


@njit(cache=True)
def channel_pool_forward_serial(planes, sums, best, best_channel):
    for n in range(planes.shape[0]):
        _pool_stretch(planes, n, 0, planes.shape[2], sums, best, best_channel)


def channel_pool_forward(x):
    """``(mean, max, argmax)`` over the channels, each (N, 1, H, W): one read of x."""
    x = np.ascontiguousarray(x)
    n, c, h, w = x.shape
    planes = x.reshape(n, c, h * w)
    sums = np.empty((n, h * w), dtype=np.float64)
    best = np.empty((n, h * w), dtype=x.dtype)
    best_channel = np.empty((n, h * w), dtype=np.int64)
    loop = (channel_pool_forward_parallel if x.size >= PARALLEL_MIN_ELEMENTS
            else channel_pool_forward_serial)
    loop(planes, sums, best, best_channel)
    mean = (sums / float(c)).astype(x.dtype)
    return (mean.reshape(n, 1, h, w), best.reshape(n, 1, h, w),
            best_channel.reshape(n, 1, h, w))


@njit(cache=True)
def _spread_stretch(shares, dmax, argmax, n, start, stop, out):
    for c in range(out.shape[1]):
        for k in range(start, stop):
            if argmax[n, k] == c:
                out[n, c, k] = shares[n, k] + dmax[n, k]
            else:
                out[n, c, k] = shares[n, k]


@njit(parallel=True, cache=True)
def channel_pool_backward_parallel(shares, dmax, argmax, out):
    n_images, _, pixels = out.shape
    stretches = (pixels + PIXELS_PER_JOB - 1) // PIXELS_PER_JOB
    for job in prange(n_images * stretches):
        n, first = job // stretches, (job % stretches) * PIXELS_PER_JOB
        _spread_stretch(shares, dmax, argmax, n, first, min(first + PIXELS_PER_JOB, pixels), out)


@njit(cache=True)
def channel_pool_backward_serial(shares, dmax, argmax, out):
    for n in range(out.shape[0]):
        _spread_stretch(shares, dmax, argmax, n, 0, out.shape[2], out)


def channel_pool_backward(dmean, dmax, argmax, x_shape):
    """dx = dmean / C everywhere, plus dmax at the arg-max channel: one write of dx."""
    n, c, h, w = x_shape
    dtype = dmean.dtype
    shares = np.ascontiguousarray(dmean, dtype=dtype).reshape(n, h * w) / dtype.type(c)
    dmax = np.ascontiguousarray(dmax, dtype=dtype).reshape(n, h * w)
    argmax = np.ascontiguousarray(argmax, dtype=np.int64).reshape(n, h * w)
    out = np.empty((n, c, h * w), dtype=dtype)
    loop = (channel_pool_backward_parallel if out.size >= PARALLEL_MIN_ELEMENTS
            else channel_pool_backward_serial)
    loop(shares, dmax, argmax, out)
    return out.reshape(x_shape)
