"""Numba batch normalisation: the four passes of BatchNorm2d, one parallel job per channel.

Read ``kernels/numpy/norm.py`` for the math. The map is viewed as (N, C, H·W),
so each job walks N contiguous rows of H·W numbers (a channel of a CIFAR batch
is 128 × 1024 float32 = 512 kB: it stays in cache between the passes over it).
Each loop exists serial and parallel (``rows.serial_and_parallel``): below
``rows.PARALLEL_MIN_ELEMENTS`` one thread does it, because waking the pool
costs more than a small map's pass (on a loaded machine, milliseconds per
launch; an SE-ResNet-20 step makes 84 of them in its batch norms).
The sums are float64 and re-associated (``REDUCTION_FLAGS``); the element-wise
passes do the reference's operations in its order, without fused
multiply-adds, so they agree with it exactly.
"""
import numpy as np
from numba import prange

from .rows import REDUCTION_FLAGS, row_dot, row_sum, serial_and_parallel


def _channels(x):
    """Contiguous (N, C, H, W) -> (N, C, H·W) view."""
    x = np.ascontiguousarray(x)
    return x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3])


@serial_and_parallel(fastmath=REDUCTION_FLAGS)
def batch_norm_statistics_loop(x, mean, variance):
    n_images, channels, area = x.shape
    count = n_images * area
    for c in prange(channels):
        total = 0.0
        for n in range(n_images):
            total += row_sum(x[n, c])
        channel_mean = total / count
        squares = 0.0                  # second pass over the (cached) channel: no cancellation
        for n in range(n_images):
            for k in range(area):
                centred = np.float64(x[n, c, k]) - channel_mean
                squares += centred * centred
        mean[c] = channel_mean
        variance[c] = squares / count
    return mean, variance


def batch_norm_statistics(x):
    """Per-channel mean and biased variance, two float64 passes over each (cached) channel."""
    rows = _channels(x)
    mean, variance = np.empty(rows.shape[1]), np.empty(rows.shape[1])
    batch_norm_statistics_loop(rows, mean, variance)
    return mean.astype(x.dtype), variance.astype(x.dtype)


@serial_and_parallel
def batch_norm_normalize_loop(x, mean, inverse_std, weight, bias, y, normalized):
    """Same operations in the same order as the reference, no fused multiply-add: exact."""
    n_images, channels, area = x.shape
    for c in prange(channels):
        for n in range(n_images):
            for k in range(area):
                value = (x[n, c, k] - mean[c]) * inverse_std[c]
                normalized[n, c, k] = value
                y[n, c, k] = value * weight[c] + bias[c]
    return y, normalized


def batch_norm_normalize(x, mean, inverse_std, weight, bias):
    """``(y, normalized)`` in one pass: read x, write both."""
    rows = _channels(x)
    dtype = rows.dtype
    y, normalized = np.empty_like(rows), np.empty_like(rows)
    batch_norm_normalize_loop(rows, *(np.ascontiguousarray(v, dtype=dtype)
                                           for v in (mean, inverse_std, weight, bias)),
                                   y, normalized)
    return y.reshape(x.shape), normalized.reshape(x.shape)


@serial_and_parallel(fastmath=REDUCTION_FLAGS)
def batch_norm_backward_sums_loop(dy, normalized, sum_dy, sum_dy_normalized):
    n_images, channels, area = dy.shape
    for c in prange(channels):
        total, total_product = 0.0, 0.0
        for n in range(n_images):
            total += row_sum(dy[n, c])
            total_product += row_dot(dy[n, c], normalized[n, c])
        sum_dy[c] = total
        sum_dy_normalized[c] = total_product
    return sum_dy, sum_dy_normalized


def batch_norm_backward_sums(dy, normalized):
    """``(Σ dy, Σ dy·x̂)`` per channel in one pass, float64 accumulation."""
    dy_rows, normalized_rows = _channels(dy), _channels(normalized)
    sum_dy, sum_dy_normalized = np.empty(dy_rows.shape[1]), np.empty(dy_rows.shape[1])
    batch_norm_backward_sums_loop(dy_rows, normalized_rows, sum_dy, sum_dy_normalized)
    return sum_dy.astype(dy.dtype), sum_dy_normalized.astype(dy.dtype)


@serial_and_parallel
def batch_norm_backward_dx_loop(dy, normalized, coefficient, count, sum_dy,
                                     sum_dy_normalized, dx):
    """dx = coefficient_c · ((M·dy − Σdy) − x̂·Σdy·x̂), the reference's order, no FMA: exact."""
    n_images, channels, area = dy.shape
    for c in prange(channels):
        for n in range(n_images):
            for k in range(area):
                dx[n, c, k] = coefficient[c] * ((count * dy[n, c, k] - sum_dy[c])
                                                - normalized[n, c, k] * sum_dy_normalized[c])
    return dx


def batch_norm_backward_dx(dy, normalized, scale, sum_dy, sum_dy_normalized):
    """Training-mode dx in one pass: read dy and x̂, write dx."""
    dy_rows, normalized_rows = _channels(dy), _channels(normalized)
    dtype = dy_rows.dtype
    count = dy.shape[0] * dy.shape[2] * dy.shape[3]
    # scale/M per channel, computed as the reference does (in the map's dtype)
    coefficient = np.ascontiguousarray(scale, dtype=dtype) / dtype.type(count)
    dx = np.empty_like(dy_rows)
    batch_norm_backward_dx_loop(dy_rows, normalized_rows, coefficient, dtype.type(count),
                                     np.ascontiguousarray(sum_dy, dtype=dtype),
                                     np.ascontiguousarray(sum_dy_normalized, dtype=dtype), dx)
    return dx.reshape(dy.shape)
