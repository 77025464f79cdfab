"""Numba batch normalisation: the passes of BatchNorm2d, and BatchNorm2d + ReLU fused.

Read ``kernels/numpy/norm.py`` for the math. The map is viewed as (N, C, H·W)
and every loop walks it in memory order, one parallel job per (n, c) row of
H·W contiguous numbers, channel c = row mod C. Walking it channel by channel
instead (all N rows of channel 0, then channel 1, ...) jumps C·H·W numbers
between rows; on a 16-channel CIFAR map that is a new 4 kB page every row,
and the hardware prefetcher, which does not cross pages, restarts each time.
In memory order both cores stream, for 16 channels as for 2048.

* Statistics: each row's mean m_r and centred sum of squares q_r = Σ (x − m_r)²
  in one float64 pass over the row (sums shifted by the row's first value, so
  they do not cancel), then per channel, from the N rows of H·W values
  (Chan et al.'s pairwise combination with equal counts)::

      μ_c  = 1/N Σ_n m_(n,c)
      M·σ²_c = Σ_n q_(n,c) + H·W · Σ_n (m_(n,c) − μ_c)²

  One read of the map; the (N, C) partials are combined by NumPy.
* Backward sums: Σ dy and Σ dy·x̂ per row in one loop, float64, then Σ over n.
* Element-wise passes (normalize, dx) do the reference's operations in its
  order, without fused multiply-adds, so they agree with it exactly. The
  per-channel numbers are loaded into locals before the row loop: read from
  their arrays inside it, LLVM must assume a store to the output may change
  them, and the loop does not vectorise (2x slower, ``naive.py`` keeps none of it).
* BatchNorm2d + ReLU (``batch_norm_relu_*``): the ReLU is applied as the value
  is stored, and its mask 1[x̂·γ + β > 0] is recomputed in the backward from x̂,
  γ and β with the same operations, so the forward writes no mask and the ReLU
  costs no pass of its own in either direction.

* One parallel region per direction (``batch_norm_train_forward``,
  ``batch_norm_train_backward`` and their ``relu`` twins, the rows
  functional/norm.py calls in training mode): one job per channel does its
  statistics (backward: its two sums) and then its element-wise pass, while
  the channel is in L2. The passes above, one after the other (the numpy
  reference's composition), are four parallel regions per layer, each waiting
  for its slowest thread; in a training step on a shared machine that, not
  the bytes, is what they cost. Same operations in the same order: the same
  numbers.

Each loop exists serial and parallel (``rows.serial_and_parallel``): below
``rows.PARALLEL_MIN_ELEMENTS`` one thread does it, because waking the pool
costs more than a small map's pass.
"""
import numpy as np
from numba import get_num_threads, prange

from ..numpy.norm import inverse_standard_deviation
from . import rows as row_loops   # its PARALLEL_MIN_ELEMENTS, read at call time (tests change it)
from .norm_channels import (batch_norm_channel_backward_loop, batch_norm_channel_forward_loop,
                            normalize_row)
from .rows import REDUCTION_FLAGS, serial_and_parallel


def _channels(x):
    """Contiguous (N, C, H, W) -> (N, C, H·W) view."""
    x = np.ascontiguousarray(x)
    return x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3])


def _vectors(dtype, *values):
    """Per-channel vectors, contiguous and in the map's dtype (one Numba specialisation)."""
    return tuple(np.ascontiguousarray(value, dtype=dtype) for value in values)


@serial_and_parallel(fastmath=REDUCTION_FLAGS)
def batch_norm_row_moments_loop(x, row_mean, row_squares):
    """Per (n, c) row: its mean and Σ (x − row mean)², in one float64 pass over the row.

    The sums are of d = x − x₀, shifted by the row's first value x₀:
    Σ (x − m)² = Σ d² − (Σ d)²/H·W. Unshifted, Σ x² − (Σ x)²/H·W cancels when
    the mean is large against the spread; x₀ is one of the row's values, so
    the shift removes that, and float64 leaves 29 bits to spare over float32."""
    n_images, channels, area = x.shape
    for r in prange(n_images * channels):
        n, c = r // channels, r % channels
        first = np.float64(x[n, c, 0])
        total, squares = 0.0, 0.0
        for k in range(area):
            shifted = np.float64(x[n, c, k]) - first
            total += shifted
            squares += shifted * shifted
        row_mean[n, c] = first + total / area
        row_squares[n, c] = max(squares - total * total / area, 0.0)
    return row_mean, row_squares


def batch_norm_statistics(x):
    """Per-channel mean and biased variance: one read of x, the rows combined in float64."""
    rows = _channels(x)
    n_images, channels, area = rows.shape
    row_mean, row_squares = np.empty((n_images, channels)), np.empty((n_images, channels))
    batch_norm_row_moments_loop(rows, row_mean, row_squares)
    mean = row_mean.mean(axis=0)
    squares = row_squares.sum(axis=0) + area * ((row_mean - mean) ** 2).sum(axis=0)
    return mean.astype(x.dtype), (squares / (n_images * area)).astype(x.dtype)


@serial_and_parallel
def batch_norm_normalize_loop(x, mean, inverse_std, weight, bias, relu, zero, y, normalized):
    """x̂ and y = x̂·γ + β (clipped at 0 as it is stored when ``relu``), the reference's
    operations in its order, no fused multiply-add: exact."""
    n_images, channels = x.shape[:2]
    for r in prange(n_images * channels):
        n, c = r // channels, r % channels
        normalize_row(x[n, c], mean[c], inverse_std[c], weight[c], bias[c], relu, zero,
                       y[n, c], normalized[n, c])
    return y, normalized


def _normalize(x, mean, inverse_std, weight, bias, relu):
    rows = _channels(x)
    y, normalized = np.empty_like(rows), np.empty_like(rows)
    batch_norm_normalize_loop(rows, *_vectors(rows.dtype, mean, inverse_std, weight, bias),
                              relu, rows.dtype.type(0), y, normalized)
    return y.reshape(x.shape), normalized.reshape(x.shape)


def batch_norm_normalize(x, mean, inverse_std, weight, bias):
    """``(y, normalized)`` in one pass: read x, write both."""
    return _normalize(x, mean, inverse_std, weight, bias, False)


@serial_and_parallel(fastmath=REDUCTION_FLAGS)
def batch_norm_row_sums_loop(dy, normalized, row_sum_dy, row_sum_dy_normalized):
    """Per (n, c) row: Σ dy and Σ dy·x̂ in one float64 loop."""
    n_images, channels, area = dy.shape
    for r in prange(n_images * channels):
        n, c = r // channels, r % channels
        total, total_product = 0.0, 0.0
        for k in range(area):
            gradient = np.float64(dy[n, c, k])
            total += gradient
            total_product += gradient * np.float64(normalized[n, c, k])
        row_sum_dy[n, c] = total
        row_sum_dy_normalized[n, c] = total_product
    return row_sum_dy, row_sum_dy_normalized


def _channel_sums(loop, dy_rows, *rest):
    """Run a row-sums loop, then add its (N, C) float64 partials over the batch."""
    partials = np.empty((2,) + dy_rows.shape[:2])
    loop(dy_rows, *rest, partials[0], partials[1])
    sums = partials.sum(axis=1)
    return sums[0].astype(dy_rows.dtype), sums[1].astype(dy_rows.dtype)


def batch_norm_backward_sums(dy, normalized):
    """``(Σ dy, Σ dy·x̂)`` per channel in one pass, float64 accumulation."""
    return _channel_sums(batch_norm_row_sums_loop, _channels(dy), _channels(normalized))


@serial_and_parallel
def batch_norm_backward_dx_loop(dy, normalized, coefficient, count, sum_dy,
                                sum_dy_normalized, dx):
    """dx = coefficient_c · ((M·dy − Σdy) − x̂·Σdy·x̂), the reference's order, no FMA: exact."""
    n_images, channels, area = dy.shape
    for r in prange(n_images * channels):
        n, c = r // channels, r % channels
        factor, shift, slope = coefficient[c], sum_dy[c], sum_dy_normalized[c]
        for k in range(area):
            dx[n, c, k] = factor * ((count * dy[n, c, k] - shift) - normalized[n, c, k] * slope)
    return dx


def _dx_arguments(dy_rows, scale, sum_dy, sum_dy_normalized):
    dtype = dy_rows.dtype
    count = dy_rows.shape[0] * dy_rows.shape[2]
    # scale/M per channel, computed as the reference does (in the map's dtype)
    coefficient = np.ascontiguousarray(scale, dtype=dtype) / dtype.type(count)
    return (coefficient, dtype.type(count)) + _vectors(dtype, sum_dy, sum_dy_normalized)


def batch_norm_backward_dx(dy, normalized, scale, sum_dy, sum_dy_normalized):
    """Training-mode dx in one pass: read dy and x̂, write dx."""
    dy_rows = _channels(dy)
    dx = np.empty_like(dy_rows)
    batch_norm_backward_dx_loop(dy_rows, _channels(normalized),
                                *_dx_arguments(dy_rows, scale, sum_dy, sum_dy_normalized), dx)
    return dx.reshape(dy.shape)


# ============================================================================ BatchNorm2d + ReLU
def batch_norm_relu_normalize(x, mean, inverse_std, weight, bias):
    """``(max(y, 0), normalized)`` in one pass: read x, write both; no mask is stored."""
    return _normalize(x, mean, inverse_std, weight, bias, True)


@serial_and_parallel(fastmath=REDUCTION_FLAGS)
def batch_norm_relu_row_sums_loop(dy, normalized, weight, bias, one, row_sum_dy,
                                  row_sum_dy_normalized):
    """Per row: Σ g and Σ g·x̂ with g = dy·1[x̂·γ + β > 0], the mask recomputed as the forward did."""
    n_images, channels, area = dy.shape
    zero = one - one
    for r in prange(n_images * channels):
        n, c = r // channels, r % channels
        gamma, beta = weight[c], bias[c]
        total, total_product = 0.0, 0.0
        for k in range(area):
            value = normalized[n, c, k]
            mask = one if value * gamma + beta > zero else zero
            gradient = np.float64(dy[n, c, k] * mask)
            total += gradient
            total_product += gradient * np.float64(value)
        row_sum_dy[n, c] = total
        row_sum_dy_normalized[n, c] = total_product
    return row_sum_dy, row_sum_dy_normalized


def batch_norm_relu_backward_sums(dy, normalized, weight, bias):
    """``(Σ g, Σ g·x̂)`` per channel, g = dy·1[x̂·γ + β > 0]: one pass over dy and x̂."""
    dy_rows = _channels(dy)
    dtype = dy_rows.dtype
    return _channel_sums(batch_norm_relu_row_sums_loop, dy_rows, _channels(normalized),
                         *_vectors(dtype, weight, bias), dtype.type(1))


@serial_and_parallel
def batch_norm_relu_backward_dx_loop(dy, normalized, weight, bias, one, coefficient, count,
                                     sum_dy, sum_dy_normalized, dx):
    """dx of ``batch_norm_backward_dx`` with g = dy·1[x̂·γ + β > 0] in place of dy: exact."""
    n_images, channels, area = dy.shape
    zero = one - one
    for r in prange(n_images * channels):
        n, c = r // channels, r % channels
        gamma, beta = weight[c], bias[c]
        factor, shift, slope = coefficient[c], sum_dy[c], sum_dy_normalized[c]
        for k in range(area):
            value = normalized[n, c, k]
            mask = one if value * gamma + beta > zero else zero
            dx[n, c, k] = factor * ((count * (dy[n, c, k] * mask) - shift) - value * slope)
    return dx


def batch_norm_relu_backward_dx(dy, normalized, weight, bias, scale, sum_dy, sum_dy_normalized):
    """Training-mode dx through the ReLU and the batch norm in one pass: read dy and x̂, write dx."""
    dy_rows = _channels(dy)
    dtype = dy_rows.dtype
    dx = np.empty_like(dy_rows)
    batch_norm_relu_backward_dx_loop(dy_rows, _channels(normalized),
                                     *_vectors(dtype, weight, bias), dtype.type(1),
                                     *_dx_arguments(dy_rows, scale, sum_dy, sum_dy_normalized),
                                     dx)
    return dx.reshape(dy.shape)


# ============================================================================ evaluation mode
@serial_and_parallel
def batch_norm_affine_loop(x, scale, shift, relu, zero, y):
    """y = a_c·x + b_c, clipped at 0 when ``relu``; the reference's operations, no FMA: exact."""
    n_images, channels, area = x.shape
    for r in prange(n_images * channels):
        n, c = r // channels, r % channels
        factor, offset = scale[c], shift[c]
        if relu:
            for k in range(area):
                value = x[n, c, k] * factor + offset
                y[n, c, k] = zero if value < zero else value
        else:
            for k in range(area):
                y[n, c, k] = x[n, c, k] * factor + offset
    return y


def _affine(x, scale, shift, relu):
    rows = _channels(x)
    y = np.empty_like(rows)
    batch_norm_affine_loop(rows, *_vectors(rows.dtype, scale, shift), relu, rows.dtype.type(0), y)
    return y.reshape(x.shape)


def batch_norm_affine(x, scale, shift):
    """Evaluation-mode y = a_c·x + b_c in one pass: read x, write y (no x̂ is written)."""
    return _affine(x, scale, shift, False)


def batch_norm_affine_relu(x, scale, shift):
    """Evaluation-mode max(a_c·x + b_c, 0) in one pass: read x, write y."""
    return _affine(x, scale, shift, True)


# ============================================================================ one region per direction
# The four single passes above, one after the other (the reference's composition),
# are four parallel regions per layer, and in a training step on a loaded machine
# each waits for its slowest thread. The rows below run a direction's passes in one
# region, one job per channel (the loops are in norm_channels.py).

def _one_region_pays(size, channels):
    """Channel jobs for a map the parallel loops would take, with a channel for every thread.

    Below ``PARALLEL_MIN_ELEMENTS`` one thread runs every pass and there is no
    region to save; there the contract's passes, in memory order, are faster
    (a small channel's rows are a few hundred bytes apart from the next n's).
    With fewer channels than threads, channel jobs would leave threads idle."""
    return size >= row_loops.PARALLEL_MIN_ELEMENTS and channels >= get_num_threads()


def _train_forward(x, eps, weight, bias, relu):
    """``(mean, variance, inverse_std, y, normalized)`` in one parallel region, or, where one
    region does not pay (``_one_region_pays``), by the passes above: the same numbers."""
    x_rows = _channels(x)
    dtype, channels = x_rows.dtype, x_rows.shape[1]
    weight, bias = _vectors(dtype, weight, bias)
    if not _one_region_pays(x_rows.size, channels):
        mean, variance = batch_norm_statistics(x)
        inverse_std = inverse_standard_deviation(variance, eps)
        y, normalized = _normalize(x, mean, inverse_std, weight, bias, relu)
        return mean, variance, inverse_std, y, normalized
    mean, variance, inverse_std = (np.empty(channels, dtype) for _ in range(3))
    y, normalized = np.empty_like(x_rows), np.empty_like(x_rows)
    batch_norm_channel_forward_loop(x_rows, float(eps), weight, bias, relu, dtype.type(0),
                                    mean, variance, inverse_std, y, normalized)
    return mean, variance, inverse_std, y.reshape(x.shape), normalized.reshape(x.shape)


def _train_backward(dy, normalized, weight, bias, inverse_std, relu):
    """``(sum_dy, sum_dy_normalized, dx)`` in one parallel region, or by the passes above."""
    dy_rows, normalized_rows = _channels(dy), _channels(normalized)
    dtype, channels = dy_rows.dtype, dy_rows.shape[1]
    weight, bias, inverse_std = _vectors(dtype, weight, bias, inverse_std)
    if not _one_region_pays(dy_rows.size, channels):
        scale = weight * inverse_std
        if relu:
            sums = batch_norm_relu_backward_sums(dy, normalized, weight, bias)
            dx = batch_norm_relu_backward_dx(dy, normalized, weight, bias, scale, *sums)
        else:
            sums = batch_norm_backward_sums(dy, normalized)
            dx = batch_norm_backward_dx(dy, normalized, scale, *sums)
        return sums[0], sums[1], dx
    sums = np.empty((2, channels), dtype)   # in the map's dtype, as dx's loop reads them
    dx = np.empty_like(dy_rows)
    count = dy_rows.shape[0] * dy_rows.shape[2]
    batch_norm_channel_backward_loop(dy_rows, normalized_rows, weight, bias, inverse_std, relu,
                                     dtype.type(1), dtype.type(count), sums[0], sums[1], dx)
    return sums[0], sums[1], dx.reshape(dy.shape)


def batch_norm_train_forward(x, eps, weight, bias):
    """Training-mode forward, one region: the numbers of ``batch_norm_statistics``, then
    inverse_std = 1/sqrt(σ² + eps), then ``batch_norm_normalize``."""
    return _train_forward(x, eps, weight, bias, False)


def batch_norm_train_backward(dy, normalized, weight, inverse_std):
    """Training-mode backward, one region: the numbers of ``batch_norm_backward_sums`` and
    ``batch_norm_backward_dx`` with scale = γ·inverse_std."""
    # β is read only by ReLU's mask: γ stands in for it (one compiled loop for both)
    return _train_backward(dy, normalized, weight, weight, inverse_std, False)


def batch_norm_relu_train_forward(x, eps, weight, bias):
    """``batch_norm_train_forward`` with ReLU as y is stored (``batch_norm_relu_normalize``)."""
    return _train_forward(x, eps, weight, bias, True)


def batch_norm_relu_train_backward(dy, normalized, weight, bias, inverse_std):
    """``batch_norm_train_backward`` through ReLU: the ``batch_norm_relu_backward_*`` numbers."""
    return _train_backward(dy, normalized, weight, bias, inverse_std, True)
