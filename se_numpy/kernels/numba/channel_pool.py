"""Numba per-pixel channel pooling: one parallel job per (image, stretch of pixels).

Read ``kernels/numpy/channel_pool.py`` for the math. An NCHW map is the
(N, C, H·W) array of C contiguous planes per image; pooling over c at a fixed
pixel reads one number from each plane, H·W apart. Looping over the pixel
innermost (``for c: for k in stretch``) reads every plane contiguously and
keeps the stretch's running sums and maxima in L1, so the map is read once,
in order, instead of jumping H·W numbers per step.

**Four channels per sweep of the stretch.** The running arrays (float64
sum, maximum, winning channel) are loaded and stored once per pixel and
sweep; with one channel per sweep that is six L1 accesses per number read
from memory, and the loop ran at 0.21 of the copy bandwidth where the
squeeze ran at 0.36 (docs/kernels.md). Four channels per sweep first pool
the four among themselves (registers only), then meet the running arrays
once, so the loop waits on memory again. Every step is a select, not a
branch, and no fast-math flag is set, so LLVM vectorises the sweep and the
comparisons keep IEEE semantics: ``v > best`` is False for a NaN.

Serial below ``rows.PARALLEL_MIN_ELEMENTS``, parallel above, from one loop
body (``rows.serial_and_parallel``, as the SE kernels). A job is
``PIXELS_PER_JOB`` pixels of one image: enough work to amortise a thread's
start, and its running arrays (16 KB) stay in L1. Ties keep the first
channel: inside a group and against the running maximum a later channel
wins only if strictly greater. A NaN is the maximum, as in NumPy's argmax:
the sum finds the pixels that hold one (their sum is NaN), and only those
are scanned again. The sum adds each group's four float64 values before
the running sum, an order that differs from the reference's sequential
float64 sum by ~1e-16 relative at most; for float32 maps that is far below
half a float32 ulp, so the float32 mean rounds as the reference's but for a
value within 1e-16 of a rounding boundary (``tests/test_attention_kernels.py``
compares them exactly on normal draws).
"""
import numpy as np
from numba import njit, prange

from .rows import serial_and_parallel

PIXELS_PER_JOB = 1024
CHANNELS_PER_SWEEP = 4


@njit(inline="always")
def _later_if_greater(later, later_channel, earlier, earlier_channel):
    """(maximum, its channel) of two candidates: the later only if strictly greater."""
    take = later > earlier
    return (later if take else earlier), (later_channel if take else earlier_channel)


@njit(cache=True)
def _pool_stretch(planes, n, start, stop, sums, best, best_channel):
    channels = planes.shape[1]
    total, top = sums[n, start:stop], best[n, start:stop]
    winner = np.zeros(stop - start, dtype=np.int32)   # int32: as wide as a float32 lane
    first = planes[n, 0, start:stop]
    for k in range(first.shape[0]):
        total[k] = np.float64(first[k])
        top[k] = first[k]
    c = 1
    while c + CHANNELS_PER_SWEEP <= channels:
        p0, p1 = planes[n, c, start:stop], planes[n, c + 1, start:stop]
        p2, p3 = planes[n, c + 2, start:stop], planes[n, c + 3, start:stop]
        c0, c1, c2, c3 = np.int32(c), np.int32(c + 1), np.int32(c + 2), np.int32(c + 3)
        for k in range(p0.shape[0]):
            v0, v1, v2, v3 = p0[k], p1[k], p2[k], p3[k]
            total[k] += (np.float64(v0) + np.float64(v1)) + (np.float64(v2) + np.float64(v3))
            m01, i01 = _later_if_greater(v1, c1, v0, c0)
            m23, i23 = _later_if_greater(v3, c3, v2, c2)
            m, i = _later_if_greater(m23, i23, m01, i01)
            top[k], winner[k] = _later_if_greater(m, i, top[k], winner[k])
        c += CHANNELS_PER_SWEEP
    for c in range(c, channels):                      # the last C − 1 mod 4 channels
        plane = planes[n, c, start:stop]
        for k in range(plane.shape[0]):
            total[k] += np.float64(plane[k])
            top[k], winner[k] = _later_if_greater(plane[k], np.int32(c), top[k], winner[k])
    out_channel = best_channel[n, start:stop]
    for k in range(total.shape[0]):
        out_channel[k] = winner[k]
    # NumPy's rule makes a NaN the maximum. A NaN anywhere in a pixel's column makes
    # its sum NaN, so only those pixels are scanned again, for their first NaN.
    for k in range(total.shape[0]):
        if total[k] != total[k]:
            for c in range(channels):
                value = planes[n, c, start + k]
                if value != value:
                    top[k], out_channel[k] = value, c
                    break


@njit(cache=True)
def stretch_jobs(n_images, pixels):
    """Jobs of a map: every image cut into stretches of ``PIXELS_PER_JOB`` pixels."""
    return n_images * ((pixels + PIXELS_PER_JOB - 1) // PIXELS_PER_JOB)


@njit(cache=True)
def job_stretch(job, pixels):
    """(image, first pixel, end pixel) of job number ``job``."""
    stretches = (pixels + PIXELS_PER_JOB - 1) // PIXELS_PER_JOB
    first = (job % stretches) * PIXELS_PER_JOB
    return job // stretches, first, min(first + PIXELS_PER_JOB, pixels)


@serial_and_parallel
def channel_pool_forward_loop(planes, sums, best, best_channel):
    for job in prange(stretch_jobs(planes.shape[0], planes.shape[2])):
        n, start, stop = job_stretch(job, planes.shape[2])
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
    for job in prange(stretch_jobs(out.shape[0], out.shape[2])):
        n, start, stop = job_stretch(job, out.shape[2])
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
