"""What every Numba SE kernel shares: the row view, the row helpers, the serial/parallel pair.

An NCHW map is viewed as ``N·C`` rows of ``H·W`` numbers (free for a
contiguous array): every SE kernel is "one independent job per (n, c) row".
The wrappers make their inputs C-contiguous and cast the small per-channel
arrays to the map's dtype: Numba compiles one specialisation per (dtype,
layout) it sees, so a transposed view would otherwise compile anew, and the
contiguous layout is what lets LLVM vectorise the inner loops.
"""
import types

import numpy as np
from numba import njit

# Below this many elements (4 MB of float32) a map is streamed by one thread:
# it is mostly in cache, one core streams it in tens of µs, and waking the
# pool (~60 µs) would cost more than the second core saves (docs/kernels.md).
PARALLEL_MIN_ELEMENTS = 1 << 20

# Re-association (vectorised sums) and fused multiply-add only. Not
# ``fastmath=True``: that also assumes no NaN/inf (nnan/ninf), and a NaN in a
# feature map must still come out as NaN.
REDUCTION_FLAGS = {"reassoc", "contract"}


def rows_of(x):
    """Contiguous (N, C, H, W) -> (N·C, H·W) view: one row per channel map."""
    x = np.ascontiguousarray(x)
    return x.reshape(x.shape[0] * x.shape[1], x.shape[2] * x.shape[3])


def per_row(values, dtype):
    """(N, C) per-channel numbers -> contiguous (N·C,) vector in the map's dtype."""
    return np.ascontiguousarray(values, dtype=dtype).reshape(-1)


# ============================================================================ row helpers
# Jitted on their own and inlined by LLVM into every loop that calls them, so
# the serial and the parallel loop run the very same inner loop.

@njit(fastmath=REDUCTION_FLAGS, cache=True)
def row_sum(row):
    """Σ_k row[k] in float64 (re-associated, so SIMD lanes keep partial sums)."""
    total = 0.0
    for k in range(row.shape[0]):
        total += np.float64(row[k])
    return total


@njit(fastmath=REDUCTION_FLAGS, cache=True)
def row_dot(a, b):
    """Σ_k a[k]·b[k] in float64. A float32·float32 product is exact in float64."""
    total = 0.0
    for k in range(a.shape[0]):
        total += np.float64(a[k]) * np.float64(b[k])
    return total


@njit(cache=True)
def row_first_argmax(row):
    """Index of the first maximum; a NaN counts as the maximum (NumPy's argmax rule).

    The row must not be empty (the contract refuses H = W = 0 maps before any
    kernel runs): there is no index to return for an empty row."""
    best_index = 0
    best = row[0]
    if np.isnan(best):
        return 0
    for k in range(1, row.shape[0]):
        value = row[k]
        if np.isnan(value):
            return k
        if value > best:         # strict: a later equal value never replaces the first
            best, best_index = value, k
    return best_index


# ============================================================================ serial and parallel
# Why every row loop exists twice. One loop body compiled with and without
# ``parallel=True`` must be two Python functions with different qualified
# names: Numba's on-disk cache (``cache=True``) keys its entries by the
# function's qualified name and line, not by the ``parallel`` flag, so two
# dispatchers of one function share one cache entry, and whichever was
# compiled first is what both load in every later process (numba issue
# #6845): the "parallel" loop silently runs serial. ``serial_and_parallel``
# therefore copies the body under two names before compiling it.
# tests/test_kernels_numba.py fails if the two ever share a cache entry.

class SerialAndParallel:
    """One row loop compiled twice; a call picks the parallel one for maps of
    at least ``PARALLEL_MIN_ELEMENTS`` elements (judged by the first argument)."""

    def __init__(self, serial, parallel):
        self.serial, self.parallel = serial, parallel

    def __call__(self, rows, *rest):
        loop = self.parallel if rows.size >= PARALLEL_MIN_ELEMENTS else self.serial
        return loop(rows, *rest)


def _renamed(function, suffix):
    copy = types.FunctionType(function.__code__, function.__globals__,
                              f"{function.__name__}_{suffix}", function.__defaults__,
                              function.__closure__)
    copy.__qualname__ = f"{function.__qualname__}_{suffix}"
    copy.__doc__ = function.__doc__
    return copy


def serial_and_parallel(loop=None, **options):
    """Decorator: compile a loop written with ``prange`` as a serial and a parallel function.

    ``@serial_and_parallel(fastmath=...)`` passes Numba options to both."""
    if loop is None:
        return lambda function: serial_and_parallel(function, **options)
    serial = njit(cache=True, **options)(_renamed(loop, "serial"))
    parallel = njit(parallel=True, cache=True, **options)(_renamed(loop, "parallel"))
    return SerialAndParallel(serial, parallel)
