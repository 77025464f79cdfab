"""Numba batch normalisation, one parallel region per direction: the per-channel loops.

The jitted loops under ``norm.py``'s training rows (``batch_norm_train_forward``,
``batch_norm_train_backward`` and their ``relu`` twins), as ``unfold.py`` holds the
loops under ``conv.py``: each job takes one channel, does its statistics (backward:
its two sums), then its element-wise pass while the channel is in L2. The row
helpers are the bodies of ``norm.py``'s single passes, shared so that both routes
do the same operations in the same order and give the same numbers.
"""
import numpy as np
from numba import njit, prange

from .rows import REDUCTION_FLAGS, serial_and_parallel


@njit(cache=True)
def normalize_row(x, shift, factor, gamma, beta, relu, zero, y, normalized):
    """One row's x̂ = (x − μ)·s and y = x̂·γ + β (clipped at 0 when ``relu``); the
    per-channel numbers arrive as scalars, so the loop vectorises (norm.py's docstring)."""
    for k in range(x.shape[0]):
        value = (x[k] - shift) * factor
        normalized[k] = value
        pre_activation = value * gamma + beta
        # only a value below 0 becomes 0: NaN stays NaN, as with np.maximum
        y[k] = zero if relu and pre_activation < zero else pre_activation


# One job per channel: the channel's statistics (or backward sums), then its
# element-wise pass while the channel (N·H·W numbers: 512 kB for a CIFAR map of
# batch 128) is still in L2. Same arithmetic as norm.py's single passes, in the
# same order, so the same numbers bit for bit (tests/test_kernels_numba.py).

@njit(fastmath=REDUCTION_FLAGS, cache=True)
def _row_moments(row):
    """(mean, Σ (x − mean)²) of one row: ``batch_norm_row_moments_loop``'s body."""
    area = row.shape[0]
    first = np.float64(row[0])
    total, squares = 0.0, 0.0
    for k in range(area):
        shifted = np.float64(row[k]) - first
        total += shifted
        squares += shifted * shifted
    return first + total / area, max(squares - total * total / area, 0.0)


@njit(cache=True)
def _combine_rows(row_mean, row_squares, area):
    """μ and σ² of a channel from its rows, summed in n order as NumPy's ``sum(axis=0)`` does
    (no re-association flag here: these sums must keep that order)."""
    n_images = row_mean.shape[0]
    total = 0.0
    for n in range(n_images):
        total += row_mean[n]
    mean = total / n_images
    squares, spread = 0.0, 0.0
    for n in range(n_images):
        squares += row_squares[n]
    for n in range(n_images):
        spread += (row_mean[n] - mean) ** 2
    return mean, (squares + area * spread) / (n_images * area)


@njit(fastmath=REDUCTION_FLAGS, cache=True)
def _row_gradient_sums(dy, normalized, gamma, beta, relu, one):
    """(Σ g, Σ g·x̂) of one row in float64, g = dy (·1[x̂·γ + β > 0] when ``relu``)."""
    zero = one - one
    total, total_product = 0.0, 0.0
    for k in range(dy.shape[0]):
        value = normalized[k]
        gradient = dy[k]
        if relu:
            gradient = gradient * (one if value * gamma + beta > zero else zero)
        total += np.float64(gradient)
        total_product += np.float64(gradient) * np.float64(value)
    return total, total_product


@serial_and_parallel
def batch_norm_channel_forward_loop(x, eps, weight, bias, relu, zero, mean, variance,
                                    inverse_std, y, normalized):
    """Per channel, one job: its statistics, 1/sqrt(σ² + eps), then x̂ and y (ReLU when ``relu``)."""
    n_images, channels, area = x.shape
    for c in prange(channels):
        row_mean, row_squares = np.empty(n_images), np.empty(n_images)
        for n in range(n_images):
            row_mean[n], row_squares[n] = _row_moments(x[n, c])
        mean[c], variance[c] = _combine_rows(row_mean, row_squares, area)
        # as functional/norm.py computes it: from σ² in the map's dtype, in float64
        inverse_std[c] = 1.0 / np.sqrt(np.float64(variance[c]) + eps)
        for n in range(n_images):
            normalize_row(x[n, c], mean[c], inverse_std[c], weight[c], bias[c], relu, zero,
                           y[n, c], normalized[n, c])
    return y, normalized


@serial_and_parallel
def batch_norm_channel_backward_loop(dy, normalized, weight, bias, inverse_std, relu, one,
                                     count, sum_dy, sum_dy_normalized, dx):
    """Per channel, one job: Σ g and Σ g·x̂ over its rows, then dx (``batch_norm_backward_dx``)."""
    n_images, channels, area = dy.shape
    zero = one - one
    for c in prange(channels):
        gamma, beta = weight[c], bias[c]
        partials = np.empty((2, n_images))
        for n in range(n_images):
            partials[0, n], partials[1, n] = _row_gradient_sums(dy[n, c], normalized[n, c],
                                                                gamma, beta, relu, one)
        total, total_product = 0.0, 0.0
        for n in range(n_images):
            total += partials[0, n]
        for n in range(n_images):
            total_product += partials[1, n]
        sum_dy[c] = total                      # stored in the map's dtype, and read back so
        sum_dy_normalized[c] = total_product   # dx uses the very numbers the contract's dx gets
        factor = gamma * inverse_std[c] / count   # (γ/s)/M in the map's dtype, as _dx_arguments
        shift, slope = sum_dy[c], sum_dy_normalized[c]
        for n in range(n_images):
            for k in range(area):
                value = normalized[n, c, k]
                gradient = dy[n, c, k]
                if relu:
                    gradient = gradient * (one if value * gamma + beta > zero else zero)
                dx[n, c, k] = factor * ((count * gradient - shift) - value * slope)
    return dx
