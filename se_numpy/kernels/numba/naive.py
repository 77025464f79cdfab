"""The first drafts of two Numba kernels, kept to show what each trick in ``se.py`` buys.

Read these side by side with ``se.py``; ``benchmarks/bench_kernels.py`` times
every step and ``docs/kernels.md`` lists the numbers. Each draft is correct
(tested against the ``numpy`` backend), only slower or less accurate:

squeeze forward, z[n,c] = 1/(HW) Σ_ij x[n,c,i,j]
    1. ``squeeze_forward_pixel_outer``  loop order (i, j) outside (n, c): every
       step jumps H·W elements ahead, so each cache line fetched from memory
       gives one useful number before it is evicted.
    2. ``squeeze_forward_same_dtype``   the textbook loop order, but the running
       sum is kept in x's dtype (float32 loses digits over 50 176 terms) and is
       one dependent chain of additions, so it is not vectorised.
    3. ``squeeze_forward_float64``      float64 running sum: accurate, still one
       chain, still not vectorised (IEEE order is kept).
    4. ``se.squeeze_forward_loop.serial``    + ``fastmath={"reassoc", "contract"}``
       in the row sum: LLVM splits it over SIMD lanes; memory speed on one core.
    5. ``se.squeeze_forward_loop.parallel``  + ``prange`` over the N·C rows.

second backward pass of an SE block, dx = dy·s + dz/(HW)
    ``se_backward_dx_promoting`` divides by the Python int ``H*W`` inside the
    loop. Numba types ``float32 / int64`` as float64 (NumPy's rule), so every
    element is converted to float64 and back; ``se.se_backward_dx`` computes
    the per-row shift once, in the map's dtype.
"""
import numpy as np
from numba import njit


@njit(cache=True)
def _squeeze_pixel_outer(x, z):
    n_images, channels, height, width = x.shape
    z[:, :] = 0
    for i in range(height):
        for j in range(width):
            for n in range(n_images):
                for c in range(channels):
                    z[n, c] += x[n, c, i, j]     # stride H·W between consecutive reads
    return z


@njit(cache=True)
def _squeeze_same_dtype_sum(x, z):
    n_images, channels, height, width = x.shape
    for n in range(n_images):
        for c in range(channels):
            total = x.dtype.type(0)              # float32 for a float32 map: loses digits
            for i in range(height):
                for j in range(width):
                    total += x[n, c, i, j]
            z[n, c] = total
    return z


@njit(cache=True)
def _squeeze_float64_sum(x, z):
    n_images, channels, height, width = x.shape
    for n in range(n_images):
        for c in range(channels):
            total = 0.0                          # float64 accumulator
            for i in range(height):
                for j in range(width):
                    total += np.float64(x[n, c, i, j])
            z[n, c] = total
    return z


def _squeeze_with(loop, x, accumulator_dtype):
    x = np.ascontiguousarray(x)
    sums = loop(x, np.empty(x.shape[:2], dtype=accumulator_dtype))
    return (sums / (x.shape[2] * x.shape[3])).astype(x.dtype)


def squeeze_forward_pixel_outer(x):
    """Step 1: right answer, cache-hostile loop order (float64 sums so only speed differs)."""
    return _squeeze_with(_squeeze_pixel_outer, x, np.float64)


def squeeze_forward_same_dtype(x):
    """Step 2: natural loop order, running sum in x's dtype, serial, strict IEEE order."""
    return _squeeze_with(_squeeze_same_dtype_sum, x, x.dtype)


def squeeze_forward_float64(x):
    """Step 3: as step 2 with a float64 running sum (accurate, still not vectorised)."""
    return _squeeze_with(_squeeze_float64_sum, x, np.float64)


@njit(cache=True)
def _scale_shift_promoting(dy, s, dz, dx):
    n_images, channels, height, width = dy.shape
    for n in range(n_images):
        for c in range(channels):
            for i in range(height):
                for j in range(width):
                    # dz[n, c] / (height * width) is float32 / int64 -> float64:
                    # the whole expression is evaluated in float64, then rounded
                    dx[n, c, i, j] = dy[n, c, i, j] * s[n, c] + dz[n, c] / (height * width)
    return dx


def se_backward_dx_promoting(dy, s, dz):
    """dx = dy·s + dz/(HW) with an int divisor inside the loop (silent float64 promotion)."""
    dy = np.ascontiguousarray(dy)
    s = np.ascontiguousarray(s, dtype=dy.dtype)
    dz = np.ascontiguousarray(dz, dtype=dy.dtype)
    return _scale_shift_promoting(dy, s, dz, np.empty_like(dy))
