"""Numba per-pixel channel pooling: one parallel job per (image, stretch of pixels).

Read ``kernels/numpy/channel_pool.py`` for the math. An NCHW map is the
(N, C, H·W) array of C contiguous planes per image; pooling over c at a fixed
pixel reads one number from each plane, H·W apart. Looping over the pixel
innermost (``for c: for k in stretch``) reads every plane contiguously and
keeps the stretch's running sums and maxima in cache, so the map is read
once, in order, instead of jumping H·W numbers per step (how far this is from
memory speed: docs/kernels.md, "A kernel added").

Serial below ``rows.PARALLEL_MIN_ELEMENTS``, parallel above, from one loop
body (``rows.serial_and_parallel``, as the SE kernels). A job is
``PIXELS_PER_JOB`` pixels of one image: enough work to amortise a thread's
start, and its three running arrays (float64 sums, maxima, channel indices)
stay in L1/L2. Ties keep the first channel (strict ``>``). A NaN is the
maximum, as in NumPy's argmax: the sum finds the pixels that hold one (their
sum is NaN), and only those are scanned again.
"""
import numpy as np
from numba import njit, prange

from .rows import serial_and_parallel

PIXELS_PER_JOB = 2048


@njit(cache=True)
def _pool_stretch(planes, n, start, stop, sums, best, best_channel):
    channels = planes.shape[1]
    total, top, winner = sums[n, start:stop], best[n, start:stop], best_channel[n, start:stop]
    first = planes[n, 0, start:stop]
    for k in range(first.shape[0]):
        total[k] = np.float64(first[k])
        top[k] = first[k]
        winner[k] = 0
    for c in range(1, channels):
        plane = planes[n, c, start:stop]
        # selects, not branches, so LLVM can vectorise the loop over the pixels
        for k in range(plane.shape[0]):
            value = plane[k]
            total[k] += np.float64(value)
            take = value > top[k]
            top[k] = value if take else top[k]
            winner[k] = c if take else winner[k]
    # NumPy's rule makes a NaN the maximum. A NaN anywhere in a pixel's column makes
    # its sum NaN, so only those pixels are scanned again, for their first NaN.
    for k in range(total.shape[0]):
        if total[k] != total[k]:
            for c in range(channels):
                value = planes[n, c, start + k]
                if value != value:
                    top[k], winner[k] = value, c
                    break


@njit(cache=True)
def _jobs(n_images, pixels):
    """Jobs of a map: every image cut into stretches of ``PIXELS_PER_JOB`` pixels."""
    return n_images * ((pixels + PIXELS_PER_JOB - 1) // PIXELS_PER_JOB)


@njit(cache=True)
def _stretch(job, pixels):
    """(image, first pixel, end pixel) of job number ``job``."""
    stretches = (pixels + PIXELS_PER_JOB - 1) // PIXELS_PER_JOB
    first = (job % stretches) * PIXELS_PER_JOB
    return job // stretches, first, min(first + PIXELS_PER_JOB, pixels)


@serial_and_parallel
def channel_pool_forward_loop(planes, sums, best, best_channel):
    for job in prange(_jobs(planes.shape[0], planes.shape[2])):
        n, start, stop = _stretch(job, planes.shape[2])
        _pool_stretch(planes, n, start, stop, sums, best, best_channel)
    return sums


def channel_pool_forward(x):
    """``(mean, max, argmax)`` over the channels, each (N, 1, H, W): one read of x."""
    x = np.ascontiguousarray(x)
    n, c, h, w = x.shape
    planes = x.reshape(n, c, h * w)
    sums = np.empty((n, h * w), dtype=np.float64)
    best = np.empty((n, h * w), dtype=x.dtype)
    best_channel = np.empty((n, h * w), dtype=np.int64)
    channel_pool_forward_loop(planes, sums, best, best_channel)
    mean = (sums / float(c)).astype(x.dtype)
    return (mean.reshape(n, 1, h, w), best.reshape(n, 1, h, w),
            best_channel.reshape(n, 1, h, w))


@njit(cache=True)
def _spread_stretch(shares, dmax, argmax, n, start, stop, out):
    share, gradient, winner = shares[n, start:stop], dmax[n, start:stop], argmax[n, start:stop]
    for c in range(out.shape[1]):
        plane = out[n, c, start:stop]
        for k in range(plane.shape[0]):
            plane[k] = share[k] + gradient[k] if winner[k] == c else share[k]


@serial_and_parallel
def channel_pool_backward_loop(out, shares, dmax, argmax):
    for job in prange(_jobs(out.shape[0], out.shape[2])):
        n, start, stop = _stretch(job, out.shape[2])
        _spread_stretch(shares, dmax, argmax, n, start, stop, out)
    return out


def channel_pool_backward(dmean, dmax, argmax, x_shape):
    """dx = dmean / C everywhere, plus dmax at the arg-max channel: one write of dx."""
    n, c, h, w = x_shape
    dtype = dmean.dtype
    shares = np.ascontiguousarray(dmean, dtype=dtype).reshape(n, h * w) / dtype.type(c)
    dmax = np.ascontiguousarray(dmax, dtype=dtype).reshape(n, h * w)
    argmax = np.ascontiguousarray(argmax, dtype=np.int64).reshape(n, h * w)
    out = np.empty((n, c, h * w), dtype=dtype)
    return channel_pool_backward_loop(out, shares, dmax, argmax).reshape(x_shape)
