"""Numba CPU kernels: the functions of ``numpy_ref.py``, same names, same signatures.

Read ``numpy_ref.py`` first for the math of each function; this file only
explains how the loops are made fast. Each public function is a thin Python
wrapper that

1. normalises the inputs: C-contiguous (``np.ascontiguousarray``) and the small
   per-channel arrays cast to the feature map's dtype. Numba compiles one
   machine-code specialisation per (dtype, layout) it sees, so a transposed
   view would otherwise trigger a fresh compile, and the contiguous layout is
   what lets LLVM vectorise the inner loops;
2. views an NCHW map as ``N·C`` rows of ``H·W`` numbers (free for a contiguous
   array): every SE kernel is "one independent job per (n, c) row";
3. picks the serial or the parallel loop by size (``_use_parallel``): starting
   the thread pool costs microseconds, more than a small map takes to stream.

Three tricks do the rest (measured numbers in ``docs/kernels.md``):

* **Row sums use the fast-math flags ``reassoc`` and ``contract`` only**
  (``_REDUCTION_FLAGS``). A sum ``t += v`` is a chain of dependent additions;
  IEEE order forbids LLVM to split it over SIMD lanes, and the loop runs at one
  addition per ~4 cycles. Allowing re-association lets it keep 8-16 partial
  sums and stream at memory speed. We do *not* pass ``fastmath=True``: that
  also assumes no NaN/inf (``nnan``/``ninf``), and a NaN in a feature map must
  still come out as NaN.
* **float32 rows are summed in float64.** A float32 running sum of 50 176
  numbers (224²) loses ~4 digits; a float64 one is exact to ~1e-12 and costs
  nothing here because the loop waits on memory, not on arithmetic.
* **Scalars keep the array's dtype.** Numba follows NumPy's scalar rules:
  ``float32 * 0.5`` or ``float32 / int`` becomes float64, silently turning a
  float32 loop into convert-multiply-convert. The wrappers pass the divisor
  ``H·W`` already as ``x.dtype.type(H*W)``.

``cache=True`` stores the compiled code next to the source, so a second
process starts in a fraction of a second instead of recompiling. Readonly
inputs (e.g. from ``np.broadcast_to``) are a different Numba type and compile
their own specialisation once.
"""
import os

# Numba's default OpenMP thread pool spins between parallel regions. On a small
# or shared machine (2 cores, other processes running) a spinning worker steals
# the core the next call needs, and a 30 µs launch became 10-20 ms in our
# measurements (docs/kernels.md). Sleeping workers cost ~30 µs more per launch
# on an idle machine and never that. Must be set before libgomp loads; a value
# the user chose is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numba  # noqa: E402  (after the environment default above)
import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from . import numpy_ref  # noqa: E402

NAME = "numba"

# Below this many elements (4 MB of float32) a map is streamed by one thread:
# it is mostly in cache, one core streams it in tens of µs, and waking the
# pool (~60 µs) would cost more than the second core saves (docs/kernels.md).
PARALLEL_MIN_ELEMENTS = 1 << 20

# Re-association (vectorised sums) and fused multiply-add; no nnan/ninf/nsz,
# so NaN and inf propagate exactly as in NumPy.
_REDUCTION_FLAGS = {"reassoc", "contract"}

conv_output_size = numpy_ref.conv_output_size


def check_available():
    """Raise ``RuntimeError`` with the reason if Numba cannot compile and run a kernel here."""
    try:
        _row_sums_serial(np.ones((1, 2)), np.empty(1), 2.0)
    except Exception as error:   # LLVM, threading-layer or cache-directory problems show up here
        raise RuntimeError(f"numba {numba.__version__} is installed but cannot run kernels: "
                           f"{error}") from error


def _use_parallel(array):
    return array.size >= PARALLEL_MIN_ELEMENTS


def _rows(x):
    """Contiguous (N, C, H, W) -> (N·C, H·W) view: one row per channel map."""
    x = np.ascontiguousarray(x)
    return x.reshape(x.shape[0] * x.shape[1], x.shape[2] * x.shape[3])


def _per_row(values, dtype):
    """(N, C) per-channel numbers -> contiguous (N·C,) vector in the map's dtype."""
    return np.ascontiguousarray(values, dtype=dtype).reshape(-1)


# ======================================================================= row loops
# Each "row" is one (n, c) channel map of H·W numbers. The row helpers are
# jitted on their own and inlined by LLVM into the serial and the parallel
# drivers, so both drivers run the very same inner loop.

@njit(fastmath=_REDUCTION_FLAGS, cache=True)
def _row_sum(row):
    """Σ_k row[k] in float64 (re-associated, so SIMD lanes keep partial sums)."""
    total = 0.0
    for k in range(row.shape[0]):
        total += np.float64(row[k])
    return total

@njit(fastmath=_REDUCTION_FLAGS, cache=True)
def _row_dot(a, b):
    """Σ_k a[k]·b[k] in float64. A float32·float32 product is exact in float64."""
    total = 0.0
    for k in range(a.shape[0]):
        total += np.float64(a[k]) * np.float64(b[k])
    return total

@njit(cache=True)
def _row_first_argmax(row):
    """Index of the first maximum; a NaN counts as the maximum (NumPy's argmax rule)."""
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

# ----------------------------------------------------------------- squeeze forward
@njit(cache=True)
def _row_sums_serial(rows, out, area):
    for r in range(rows.shape[0]):
        out[r] = _row_sum(rows[r]) / area
    return out

@njit(parallel=True, cache=True)
def _row_sums_parallel(rows, out, area):
    for r in prange(rows.shape[0]):
        out[r] = _row_sum(rows[r]) / area
    return out

# ----------------------------------------------------------------- dot per row
@njit(cache=True)
def _row_dots_serial(a, b, out):
    for r in range(a.shape[0]):
        out[r] = _row_dot(a[r], b[r])
    return out

@njit(parallel=True, cache=True)
def _row_dots_parallel(a, b, out):
    for r in prange(a.shape[0]):
        out[r] = _row_dot(a[r], b[r])
    return out

# ----------------------------------------------------------------- fill a row
@njit(cache=True)
def _fill_rows_serial(values, out):
    for r in range(out.shape[0]):
        out[r, :] = values[r]
    return out

@njit(parallel=True, cache=True)
def _fill_rows_parallel(values, out):
    for r in prange(out.shape[0]):
        out[r, :] = values[r]
    return out

# ----------------------------------------------------------------- y = s·x (+ shift)
# Three formulas, three loops: s·x (scale_forward), s·dy + shift (se_backward_dx)
# and s·u + shortcut (scale_add_forward). No reduction, so no fast-math is needed:
# LLVM vectorises an element-wise loop over contiguous rows on its own.
@njit(cache=True)
def _scale_rows_serial(rows, scales, out):
    for r in range(rows.shape[0]):
        scale = scales[r]
        for k in range(rows.shape[1]):
            out[r, k] = rows[r, k] * scale
    return out

@njit(parallel=True, cache=True)
def _scale_rows_parallel(rows, scales, out):
    for r in prange(rows.shape[0]):
        scale = scales[r]
        for k in range(rows.shape[1]):
            out[r, k] = rows[r, k] * scale
    return out

@njit(cache=True)
def _scale_shift_rows_serial(rows, scales, shifts, out):
    for r in range(rows.shape[0]):
        scale, shift = scales[r], shifts[r]
        for k in range(rows.shape[1]):
            out[r, k] = rows[r, k] * scale + shift
    return out

@njit(parallel=True, cache=True)
def _scale_shift_rows_parallel(rows, scales, shifts, out):
    for r in prange(rows.shape[0]):
        scale, shift = scales[r], shifts[r]
        for k in range(rows.shape[1]):
            out[r, k] = rows[r, k] * scale + shift
    return out

@njit(cache=True)
def _scale_add_rows_serial(rows, scales, shortcut, out):
    for r in range(rows.shape[0]):
        scale = scales[r]
        for k in range(rows.shape[1]):
            out[r, k] = rows[r, k] * scale + shortcut[r, k]
    return out

@njit(parallel=True, cache=True)
def _scale_add_rows_parallel(rows, scales, shortcut, out):
    for r in prange(rows.shape[0]):
        scale = scales[r]
        for k in range(rows.shape[1]):
            out[r, k] = rows[r, k] * scale + shortcut[r, k]
    return out

# ----------------------------------------------------------------- fused scale backward
@njit(cache=True)
def _scale_backward_rows_serial(dy, x, scales, dx, ds):
    for r in range(dy.shape[0]):
        scale = scales[r]
        for k in range(dy.shape[1]):
            dx[r, k] = dy[r, k] * scale
        ds[r] = _row_dot(dy[r], x[r])
    return dx, ds

@njit(parallel=True, cache=True)
def _scale_backward_rows_parallel(dy, x, scales, dx, ds):
    for r in prange(dy.shape[0]):
        scale = scales[r]
        for k in range(dy.shape[1]):
            dx[r, k] = dy[r, k] * scale
        # the row of dy is still in L1/L2 from the line above: the second
        # read is nearly free, so dx and ds cost one pass over memory
        ds[r] = _row_dot(dy[r], x[r])
    return dx, ds

# ----------------------------------------------------------------- max squeeze
@njit(parallel=True, cache=True)
def _row_argmax_parallel(rows, values, indices):
    for r in prange(rows.shape[0]):
        k = _row_first_argmax(rows[r])
        indices[r] = k
        values[r] = rows[r, k]
    return values, indices

@njit(cache=True)
def _row_argmax_serial(rows, values, indices):
    for r in range(rows.shape[0]):
        k = _row_first_argmax(rows[r])
        indices[r] = k
        values[r] = rows[r, k]
    return values, indices

@njit(parallel=True, cache=True)
def _scatter_rows(values, indices, out):
    """out[r, :] = 0 except out[r, indices[r]] = values[r]."""
    for r in prange(out.shape[0]):
        out[r, :] = 0
        out[r, indices[r]] = values[r]
    return out

# ======================================================================= 4-d loops
# im2col/col2im/pooling keep the (N, C, H, W) indexing of the reference and run
# one (n, c) plane per parallel iteration: planes never overlap, so no two
# threads ever write the same output element (no atomics needed).

@njit(cache=True)
def _inside_range(offset, stride, size, count):
    """The outputs q in [first, stop) whose input position q·stride + offset lies in [0, size)."""
    first = min(max(0, -(offset // stride)), count)   # smallest q with q·stride + offset >= 0
    stop = min(count, (size - 1 - offset) // stride + 1) if size - 1 - offset >= 0 else 0
    return first, max(first, stop)


@njit(parallel=True, cache=True)
def _im2col_planes(x, cols, kernel_h, kernel_w, stride_h, stride_w,
                   pad_h, pad_w, dilation_h, dilation_w, out_h, out_w):
    n_images, channels, height, width = x.shape
    for plane in prange(n_images * channels):
        n, c = plane // channels, plane % channels
        image, unfolded = x[n, c], cols[n]       # 2-d views, made once per plane
        for a in range(kernel_h):
            for b in range(kernel_w):
                row = (c * kernel_h + a) * kernel_w + b
                column_offset = b * dilation_w - pad_w
                # the q range that reads real pixels is computed once, so the
                # copy loop below has no padding test per element
                first, stop = _inside_range(column_offset, stride_w, width, out_w)
                for p in range(out_h):
                    i = p * stride_h - pad_h + a * dilation_h
                    start = p * out_w
                    if i < 0 or i >= height:
                        for q in range(out_w):
                            unfolded[row, start + q] = 0          # a padding row
                        continue
                    for q in range(first):
                        unfolded[row, start + q] = 0              # left padding
                    for q in range(first, stop):
                        unfolded[row, start + q] = image[i, q * stride_w + column_offset]
                    for q in range(stop, out_w):
                        unfolded[row, start + q] = 0              # right padding
    return cols


@njit(parallel=True, cache=True)
def _col2im_planes(cols, dx, kernel_h, kernel_w, stride_h, stride_w,
                   pad_h, pad_w, dilation_h, dilation_w, out_h, out_w):
    n_images, channels, height, width = dx.shape
    for plane in prange(n_images * channels):
        n, c = plane // channels, plane % channels
        dx[n, c] = 0
        # (a, b) outermost, as in the reference, so every pixel sums its
        # contributions in the same order and the results match bit for bit
        for a in range(kernel_h):
            for b in range(kernel_w):
                row = (c * kernel_h + a) * kernel_w + b
                for p in range(out_h):
                    i = p * stride_h - pad_h + a * dilation_h
                    if i < 0 or i >= height:
                        continue
                    for q in range(out_w):
                        j = q * stride_w - pad_w + b * dilation_w
                        if 0 <= j < width:
                            dx[n, c, i, j] += cols[n, row, p * out_w + q]
    return dx

# ------------------------------------------------------------ convolution, one sample at a time
# The convolution does not unfold the whole batch (for SE-ResNet-20's first
# stage that is 128 × 144 × 1024 float32 = 75 MB, written to fresh memory, then
# read back by the matrix product). Each sample is unfolded into a small
# buffer owned by one worker thread (144 × 1024 float32 = 590 kB, which stays
# in that core's L2 cache) and multiplied there by a single-threaded BLAS call
# (see "convolution" below for the threads). These two loops release the GIL
# (``nogil``), so the workers run them side by side.

@njit(nogil=True, cache=True)
def _im2col_sample(image_stack, cols, kernel_h, kernel_w, stride_h, stride_w,
                   pad_h, pad_w, dilation_h, dilation_w, out_h, out_w):
    """One sample's columns: cols[(c·kh + a)·kw + b, p·OW + q] = x_pad[c, p·sh + a·dh, q·sw + b·dw]."""
    channels, height, width = image_stack.shape
    if stride_h == 1 and stride_w == 1 and out_w == width:
        _im2col_sample_whole_rows(image_stack.reshape(channels, height * width), cols,
                                  kernel_h, kernel_w, pad_h, pad_w, dilation_h, dilation_w,
                                  height, width, out_h)
        return
    for c in range(channels):
        for a in range(kernel_h):
            for b in range(kernel_w):
                row = (c * kernel_h + a) * kernel_w + b
                column_offset = b * dilation_w - pad_w
                # the q range that reads real pixels is computed once, so the
                # copies have no padding test per element
                first, stop = _inside_range(column_offset, stride_w, width, out_w)
                for p in range(out_h):
                    i = p * stride_h - pad_h + a * dilation_h
                    start = p * out_w
                    if i < 0 or i >= height:
                        cols[row, start:start + out_w] = 0        # a padding row
                        continue
                    cols[row, start:start + first] = 0            # left padding
                    cols[row, start + first:start + stop] = image_stack[
                        c, i, first * stride_w + column_offset:
                        (stop - 1) * stride_w + column_offset + 1:stride_w]
                    cols[row, start + stop:start + out_w] = 0     # right padding


@njit(nogil=True, cache=True)
def _im2col_sample_whole_rows(planes, cols, kernel_h, kernel_w, pad_h, pad_w,
                              dilation_h, dilation_w, height, width, out_h):
    """``_im2col_sample`` for stride 1 with OW = W (a "same" convolution, e.g. 3×3, padding 1).

    Then a row of cols is the image read from a shifted start: cols[row, p·W + q]
    = plane[(p + a·dh − ph)·W + q + b·dw − pw], one contiguous copy of all its
    inside rows at once instead of one short copy per image row. The copy
    also reads, at each row's ends, pixels of the neighbouring image row where
    the padding should be; those few entries are set to 0 afterwards."""
    for c in range(planes.shape[0]):
        for a in range(kernel_h):
            p_first, p_stop = _inside_range(a * dilation_h - pad_h, 1, height, out_h)
            for b in range(kernel_w):
                row = (c * kernel_h + a) * kernel_w + b
                column_offset = b * dilation_w - pad_w
                first, stop = _inside_range(column_offset, 1, width, width)
                cols[row, :p_first * width] = 0                   # padding rows above
                cols[row, p_stop * width:] = 0                    # and below
                if p_first >= p_stop or first >= stop:
                    cols[row, p_first * width:p_stop * width] = 0
                    continue
                begin, end = p_first * width + first, (p_stop - 1) * width + stop
                source = (p_first + a * dilation_h - pad_h) * width + first + column_offset
                cols[row, begin:end] = planes[c, source:source + end - begin]
                for p in range(p_first, p_stop):                  # left and right padding
                    for q in range(first):
                        cols[row, p * width + q] = 0
                    for q in range(stop, width):
                        cols[row, p * width + q] = 0


@njit(nogil=True, cache=True)
def _col2im_sample(cols, image_stack, kernel_h, kernel_w, stride_h, stride_w,
                   pad_h, pad_w, dilation_h, dilation_w, out_h, out_w):
    """Adjoint of ``_im2col_sample``: each pixel receives the sum of its entries in cols.

    (a, b) outermost, as in numpy_ref.col2im, so every pixel adds its
    contributions in the same order; entries that came from padding are
    dropped. ``cols`` is a scratch buffer: the whole-rows path zeroes its
    padding entries."""
    channels, height, width = image_stack.shape
    image_stack[:, :, :] = 0
    if stride_h == 1 and stride_w == 1 and out_w == width:
        _col2im_sample_whole_rows(cols, image_stack.reshape(channels, height * width),
                                  kernel_h, kernel_w, pad_h, pad_w, dilation_h, dilation_w,
                                  height, width, out_h)
        return
    for c in range(channels):
        for a in range(kernel_h):
            for b in range(kernel_w):
                row = (c * kernel_h + a) * kernel_w + b
                column_offset = b * dilation_w - pad_w
                first, stop = _inside_range(column_offset, stride_w, width, out_w)
                for p in range(out_h):
                    i = p * stride_h - pad_h + a * dilation_h
                    if i < 0 or i >= height or first >= stop:
                        continue
                    start = p * out_w
                    image_stack[c, i, first * stride_w + column_offset:
                                (stop - 1) * stride_w + column_offset + 1:stride_w] += (
                        cols[row, start + first:start + stop])


@njit(nogil=True, cache=True)
def _col2im_sample_whole_rows(cols, planes, kernel_h, kernel_w, pad_h, pad_w,
                              dilation_h, dilation_w, height, width, out_h):
    """``_col2im_sample`` for stride 1 with OW = W: the adjoint of ``_im2col_sample_whole_rows``.

    The padding entries of each cols row are zeroed first, so the one
    contiguous addition adds 0 to the pixels the copy read by mistake."""
    for c in range(planes.shape[0]):
        for a in range(kernel_h):
            p_first, p_stop = _inside_range(a * dilation_h - pad_h, 1, height, out_h)
            for b in range(kernel_w):
                row = (c * kernel_h + a) * kernel_w + b
                column_offset = b * dilation_w - pad_w
                first, stop = _inside_range(column_offset, 1, width, width)
                if p_first >= p_stop or first >= stop:
                    continue
                for p in range(p_first, p_stop):
                    for q in range(first):
                        cols[row, p * width + q] = 0
                    for q in range(stop, width):
                        cols[row, p * width + q] = 0
                begin, end = p_first * width + first, (p_stop - 1) * width + stop
                target = (p_first + a * dilation_h - pad_h) * width + first + column_offset
                planes[c, target:target + end - begin] += cols[row, begin:end]


# ---------------------------------------------------------------- batch normalisation
# One parallel job per channel c; the map is viewed as (N, C, H·W), so each
# job walks N contiguous rows of H·W numbers (a channel of a CIFAR batch is
# 128 × 1024 float32 = 512 kB: it stays in cache between the passes over it).

@njit(parallel=True, fastmath=_REDUCTION_FLAGS, cache=True)
def _batch_norm_statistics_channels(x, mean, variance):
    n_images, channels, area = x.shape
    count = n_images * area
    for c in prange(channels):
        total = 0.0
        for n in range(n_images):
            total += _row_sum(x[n, c])
        channel_mean = total / count
        squares = 0.0                  # second pass over the (cached) channel: no cancellation
        for n in range(n_images):
            for k in range(area):
                centred = np.float64(x[n, c, k]) - channel_mean
                squares += centred * centred
        mean[c] = channel_mean
        variance[c] = squares / count
    return mean, variance


@njit(parallel=True, cache=True)
def _batch_norm_normalize_channels(x, mean, inverse_std, weight, bias, y, normalized):
    """Same operations in the same order as the reference, no fused multiply-add: exact."""
    n_images, channels, area = x.shape
    for c in prange(channels):
        for n in range(n_images):
            for k in range(area):
                value = (x[n, c, k] - mean[c]) * inverse_std[c]
                normalized[n, c, k] = value
                y[n, c, k] = value * weight[c] + bias[c]
    return y, normalized


@njit(parallel=True, fastmath=_REDUCTION_FLAGS, cache=True)
def _batch_norm_backward_sums_channels(dy, normalized, sum_dy, sum_dy_normalized):
    n_images, channels, area = dy.shape
    for c in prange(channels):
        total, total_product = 0.0, 0.0
        for n in range(n_images):
            total += _row_sum(dy[n, c])
            total_product += _row_dot(dy[n, c], normalized[n, c])
        sum_dy[c] = total
        sum_dy_normalized[c] = total_product
    return sum_dy, sum_dy_normalized


@njit(parallel=True, cache=True)
def _batch_norm_backward_dx_channels(dy, normalized, coefficient, count, sum_dy,
                                     sum_dy_normalized, dx):
    """dx = coefficient_c · ((M·dy − Σdy) − x̂·Σdy·x̂), the reference's order, no FMA: exact."""
    n_images, channels, area = dy.shape
    for c in prange(channels):
        for n in range(n_images):
            for k in range(area):
                dx[n, c, k] = coefficient[c] * ((count * dy[n, c, k] - sum_dy[c])
                                                - normalized[n, c, k] * sum_dy_normalized[c])
    return dx


@njit(cache=True)
def _window_first_argmax(image, top, left, kernel_h, kernel_w):
    """(value, flat index i·W + j) of the first maximum of one window of one plane.

    Cells outside the plane are padding (-inf in the reference) and never win;
    a NaN wins at once, as in NumPy's argmax."""
    height, width = image.shape
    best, best_index = -np.inf, -1
    for i in range(max(top, 0), min(top + kernel_h, height)):
        for j in range(max(left, 0), min(left + kernel_w, width)):
            value = image[i, j]
            if np.isnan(value):
                return value, i * width + j
            if value > best or best_index < 0:   # strict '>': a later tie never wins
                best, best_index = value, i * width + j
    return best, best_index


@njit(parallel=True, cache=True)
def _max_pool_planes(x, out, argmax, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w):
    n_images, channels = x.shape[0], x.shape[1]
    out_h, out_w = out.shape[2], out.shape[3]
    for plane in prange(n_images * channels):
        n, c = plane // channels, plane % channels
        image = x[n, c]      # one view per plane, not one per window
        for p in range(out_h):
            for q in range(out_w):
                value, index = _window_first_argmax(image, p * stride_h - pad_h,
                                                    q * stride_w - pad_w, kernel_h, kernel_w)
                out[n, c, p, q] = value
                argmax[n, c, p, q] = index
    return out, argmax


@njit(parallel=True, cache=True)
def _max_pool_backward_planes(dout, argmax, dx_rows):
    n_images, channels = dout.shape[0], dout.shape[1]
    out_h, out_w = dout.shape[2], dout.shape[3]
    for plane in prange(n_images * channels):
        n, c = plane // channels, plane % channels
        row = dx_rows[plane]
        row[:] = 0
        for p in range(out_h):           # same order as np.add.at in the reference
            for q in range(out_w):
                row[argmax[n, c, p, q]] += dout[n, c, p, q]
    return dx_rows

@njit(parallel=True, cache=True)
def _avg_pool_planes(x, out, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w):
    n_images, channels, height, width = x.shape
    out_h, out_w = out.shape[2], out.shape[3]
    window_size = np.float64(kernel_h * kernel_w)
    for plane in prange(n_images * channels):
        n, c = plane // channels, plane % channels
        for p in range(out_h):
            for q in range(out_w):
                total = 0.0                      # float64 even for float32 maps
                for a in range(kernel_h):
                    i = p * stride_h - pad_h + a
                    if i < 0 or i >= height:
                        continue                 # padded cells add zero
                    for b in range(kernel_w):
                        j = q * stride_w - pad_w + b
                        if 0 <= j < width:
                            total += np.float64(x[n, c, i, j])
                out[n, c, p, q] = total / window_size   # count_include_pad=True
    return out

@njit(parallel=True, cache=True)
def _avg_pool_backward_planes(shares, dx, kernel_h, kernel_w, stride_h, stride_w,
                              pad_h, pad_w):
    n_images, channels, height, width = dx.shape
    out_h, out_w = shares.shape[2], shares.shape[3]
    for plane in prange(n_images * channels):
        n, c = plane // channels, plane % channels
        dx[n, c] = 0
        for a in range(kernel_h):                # (a, b) outermost, as col2im does
            for b in range(kernel_w):
                for p in range(out_h):
                    i = p * stride_h - pad_h + a
                    if i < 0 or i >= height:
                        continue
                    for q in range(out_w):
                        j = q * stride_w - pad_w + b
                        if 0 <= j < width:
                            dx[n, c, i, j] += shares[n, c, p, q]
    return dx


# =========================================================================== squeeze
def squeeze_forward(x):
    """Global average pooling, z[n,c] = 1/(HW) Σ_ij x[n,c,i,j]: one read of x.  (N,C,H,W) -> (N,C).

    float32 maps are summed in float64 and rounded once (see module docstring)."""
    rows = _rows(x)
    z = np.empty(rows.shape[0], dtype=rows.dtype)
    area = float(rows.shape[1])
    loop = _row_sums_parallel if _use_parallel(rows) else _row_sums_serial
    return loop(rows, z, area).reshape(x.shape[0], x.shape[1])


def squeeze_backward(dz, x_shape):
    """dx[n,c,i,j] = dz[n,c] / (HW): one write of dx.  (N,C) -> x_shape."""
    n, c, height, width = x_shape
    dz = np.ascontiguousarray(dz)
    shares = (dz / dz.dtype.type(height * width)).reshape(-1)   # tiny (N·C,), exact as reference
    dx = np.empty((n * c, height * width), dtype=dz.dtype)
    loop = _fill_rows_parallel if _use_parallel(dx) else _fill_rows_serial
    return loop(shares, dx).reshape(x_shape)


def max_squeeze_forward(x):
    """Global max pooling: ``(z, argmax)``, argmax the flat i·W + j of the first maximum (int64)."""
    rows = _rows(x)
    values = np.empty(rows.shape[0], dtype=rows.dtype)
    indices = np.empty(rows.shape[0], dtype=np.int64)
    loop = _row_argmax_parallel if _use_parallel(rows) else _row_argmax_serial
    loop(rows, values, indices)
    shape = (x.shape[0], x.shape[1])
    return values.reshape(shape), indices.reshape(shape)


def max_squeeze_backward(dz, argmax, x_shape):
    """dx[n,c,argmax[n,c]] = dz[n,c]; zero elsewhere."""
    n, c, height, width = x_shape
    dx = np.empty((n * c, height * width), dtype=dz.dtype)
    indices = np.ascontiguousarray(argmax, dtype=np.int64).reshape(-1)
    _scatter_rows(_per_row(dz, dz.dtype), indices, dx)
    return dx.reshape(x_shape)


# =========================================================================== scale
def scale_forward(x, s):
    """Channel-wise rescale (paper Eq. 4), y[n,c,i,j] = s[n,c]·x[n,c,i,j]: read x, write y."""
    rows = _rows(x)
    y = np.empty_like(rows)
    loop = _scale_rows_parallel if _use_parallel(rows) else _scale_rows_serial
    return loop(rows, _per_row(s, rows.dtype), y).reshape(x.shape)


def scale_backward(dy, x, s):
    """dx = dy·s and ds[n,c] = Σ_ij dy·x, fused: one read of dy and x, one write of dx."""
    dy_rows, x_rows = _rows(dy), _rows(x)
    dx = np.empty_like(dy_rows)
    ds = np.empty(dy_rows.shape[0], dtype=dy_rows.dtype)
    loop = _scale_backward_rows_parallel if _use_parallel(dy_rows) else _scale_backward_rows_serial
    loop(dy_rows, x_rows, _per_row(s, dy_rows.dtype), dx, ds)
    return dx.reshape(dy.shape), ds.reshape(dy.shape[0], dy.shape[1])


# =========================================================================== fused SE
def se_backward_ds(dy, x):
    """ds[n,c] = Σ_ij dy[n,c,i,j]·x[n,c,i,j], float64 accumulation: one read of dy and x."""
    dy_rows, x_rows = _rows(dy), _rows(x)
    ds = np.empty(dy_rows.shape[0], dtype=dy_rows.dtype)
    loop = _row_dots_parallel if _use_parallel(dy_rows) else _row_dots_serial
    return loop(dy_rows, x_rows, ds).reshape(dy.shape[0], dy.shape[1])


def se_backward_dx(dy, s, dz):
    """dx = dy·s + dz/(HW) in one pass: read dy, write dx (see numpy_ref for the derivation)."""
    dy_rows = _rows(dy)
    dtype = dy_rows.dtype
    # dz/(HW) is computed once per row, in the map's dtype (a Python int divisor
    # inside the loop would promote every element to float64)
    shifts = _per_row(dz, dtype) / dtype.type(dy_rows.shape[1])
    dx = np.empty_like(dy_rows)
    loop = _scale_shift_rows_parallel if _use_parallel(dy_rows) else _scale_shift_rows_serial
    return loop(dy_rows, _per_row(s, dtype), shifts, dx).reshape(dy.shape)


def scale_add_forward(u, s, shortcut):
    """Caffe SENet's "Axpy", out = s·u + shortcut: read u and shortcut, write out (one pass)."""
    rows = _rows(u)
    out = np.empty_like(rows)
    shortcut_rows = _rows(np.asarray(shortcut, dtype=rows.dtype))
    loop = _scale_add_rows_parallel if _use_parallel(rows) else _scale_add_rows_serial
    return loop(rows, _per_row(s, rows.dtype), shortcut_rows, out).reshape(u.shape)


def scale_add_backward(dout, u, s):
    """(du, ds) of out = s·u + shortcut; d(shortcut) is dout itself."""
    return scale_backward(dout, u, s)


# =========================================================================== conv helpers
def im2col(x, kernel, stride, padding, dilation):
    """x (N,C,H,W) -> cols (N, C·kh·kw, OH·OW); row c·kh·kw + a·kw + b, as numpy_ref.im2col."""
    x = np.ascontiguousarray(x)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    n, c, h, w = x.shape
    oh, ow = conv_output_size(h, kh, sh, ph, dh), conv_output_size(w, kw, sw, pw, dw)
    cols = np.empty((n, c * kh * kw, oh * ow), dtype=x.dtype)
    return _im2col_planes(x, cols, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)


def col2im(cols, x_shape, kernel, stride, padding, dilation):
    """Adjoint of im2col: scatter-add every column entry back to its pixel.  -> (N,C,H,W)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    n, c, h, w = x_shape
    oh, ow = conv_output_size(h, kh, sh, ph, dh), conv_output_size(w, kw, sw, pw, dw)
    cols = np.ascontiguousarray(cols).reshape(n, c * kh * kw, oh * ow)
    dx = np.empty((n, c, h, w), dtype=cols.dtype)
    return _col2im_planes(cols, dx, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)



# =========================================================================== convolution
# Threads. A convolution is split by samples over T worker threads (T = Numba's
# thread count), each with single-threaded BLAS calls. The obvious alternative,
# one big matrix product run by OpenBLAS's own thread pool, is what NumPy does
# by default; but OpenBLAS's threads spin while they wait, so next to Numba's
# pool, or on a machine where other programs run, every call waits for a
# thread that is not scheduled: we measured one 50 ms backward pass taking 2.8 s
# on a busy 2-core machine (docs/kernels.md, "Convolution"). Independent workers
# that never wait for each other do not have that problem.

def _find_openblas_thread_control():
    """(get, set) functions of the OpenBLAS library NumPy uses, or None (another BLAS)."""
    import ctypes
    import glob
    numpy_dir = os.path.dirname(np.__file__)
    libraries = (glob.glob(os.path.join(numpy_dir, os.pardir, "numpy.libs", "*openblas*"))   # Linux
                 + glob.glob(os.path.join(numpy_dir, ".dylibs", "*openblas*")))                # macOS
    for path in libraries:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for get_name, set_name in (
                ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
                ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
                ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
                ("openblas_get_num_threads", "openblas_set_num_threads")):
            if hasattr(library, get_name) and hasattr(library, set_name):
                get, set_ = getattr(library, get_name), getattr(library, set_name)
                get.restype, get.argtypes = ctypes.c_int, []
                set_.restype, set_.argtypes = None, [ctypes.c_int]
                return get, set_
    return None


_openblas_threads = _find_openblas_thread_control()
_conv_workers = {"pool": None, "size": 0}


def _run_on_workers(job, n_images):
    """Run ``job(worker, worker_count)`` on the workers; worker w takes samples w, w + T, ...

    With OpenBLAS found, BLAS is held to one thread meanwhile and the workers
    are Numba's thread count; without (another BLAS), one worker, and the BLAS
    uses its own threads. Returns the jobs' results in worker order."""
    import concurrent.futures
    count = min(numba.get_num_threads(), n_images) if _openblas_threads is not None else 1
    if count == 1:
        return [job(0, 1)]
    if _conv_workers["size"] != count:
        _conv_workers["pool"] = concurrent.futures.ThreadPoolExecutor(count, "se_numpy_conv")
        _conv_workers["size"] = count
    get_blas_threads, set_blas_threads = _openblas_threads
    saved = get_blas_threads()
    set_blas_threads(1)
    try:
        futures = [_conv_workers["pool"].submit(job, worker, count) for worker in range(count)]
        return [future.result() for future in futures]
    finally:
        set_blas_threads(saved)


def _window_arguments(weight, stride, padding, dilation, out_h, out_w):
    """The trailing (kernel, stride, padding, dilation, output size) arguments of the loops."""
    return (weight.shape[2], weight.shape[3], stride[0], stride[1], padding[0], padding[1],
            dilation[0], dilation[1], out_h, out_w)


def _output_size(x, weight, stride, padding, dilation):
    out_h = conv_output_size(x.shape[2], weight.shape[2], stride[0], padding[0], dilation[0])
    out_w = conv_output_size(x.shape[3], weight.shape[3], stride[1], padding[1], dilation[1])
    return out_h, out_w


def conv2d_forward(x, weight, stride, padding, dilation, groups):
    """Convolution without bias, numpy_ref.conv2d_forward computed one sample at a time.

    Per sample n: cols = im2col(x[n]) (C·kh·kw, L) in the worker's own buffer,
    then out[n, group γ's filters] = W_γ @ cols_γ, written in place.  -> (N, O, OH, OW)."""
    x, weight = np.ascontiguousarray(x), np.ascontiguousarray(weight)
    n, out_channels = x.shape[0], weight.shape[0]
    out_h, out_w = _output_size(x, weight, stride, padding, dilation)
    window = _window_arguments(weight, stride, padding, dilation, out_h, out_w)
    weight_by_group = weight.reshape(groups, out_channels // groups, -1)   # (g, O/g, K)
    filters, rows = weight_by_group.shape[1:]
    out = np.empty((n, out_channels, out_h * out_w), dtype=x.dtype)

    def job(worker, worker_count):
        cols = np.empty((groups * rows, out_h * out_w), dtype=x.dtype)
        for sample in range(worker, n, worker_count):
            _im2col_sample(x[sample], cols, *window)
            for group in range(groups):
                np.matmul(weight_by_group[group], cols[group * rows:(group + 1) * rows],
                          out=out[sample, group * filters:(group + 1) * filters])

    _run_on_workers(job, n)
    return out.reshape(n, out_channels, out_h, out_w)


def conv2d_backward(dout, x, weight, stride, padding, dilation, groups):
    """``(dx, dweight)`` as numpy_ref.conv2d_backward, one sample at a time.

    Per sample n: cols = im2col(x[n]) again, dW_γ += dout_γ @ cols_γᵀ,
    dcols_γ = W_γᵀ @ dout_γ, dx[n] = col2im(dcols). Each worker sums its
    samples' dW in float64; the partial sums are added in worker order, so the
    result does not depend on timing."""
    x, weight = np.ascontiguousarray(x), np.ascontiguousarray(weight)
    n, out_channels = x.shape[0], weight.shape[0]
    out_h, out_w = _output_size(x, weight, stride, padding, dilation)
    window = _window_arguments(weight, stride, padding, dilation, out_h, out_w)
    dout = np.ascontiguousarray(dout).reshape(n, out_channels, out_h * out_w)
    weight_by_group = weight.reshape(groups, out_channels // groups, -1)   # (g, O/g, K)
    filters, rows = weight_by_group.shape[1:]
    dx = np.empty(x.shape, dtype=x.dtype)

    def job(worker, worker_count):
        cols = np.empty((groups * rows, out_h * out_w), dtype=x.dtype)
        dcols = np.empty_like(cols)
        sample_dweight = np.empty((filters, rows), dtype=x.dtype)
        dweight = np.zeros(weight_by_group.shape)                    # float64 partial sum
        for sample in range(worker, n, worker_count):
            _im2col_sample(x[sample], cols, *window)
            for group in range(groups):
                group_rows = slice(group * rows, (group + 1) * rows)
                dout_group = dout[sample, group * filters:(group + 1) * filters]
                np.matmul(dout_group, cols[group_rows].T, out=sample_dweight)
                dweight[group] += sample_dweight
                np.matmul(weight_by_group[group].T, dout_group, out=dcols[group_rows])
            _col2im_sample(dcols, dx[sample], *window)
        return dweight

    dweight = sum(_run_on_workers(job, n)).astype(x.dtype)
    return dx, dweight.reshape(weight.shape)


# =========================================================================== batch normalisation
def _channels(x):
    """Contiguous (N, C, H, W) -> (N, C, H·W) view."""
    x = np.ascontiguousarray(x)
    return x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3])


def batch_norm_statistics(x):
    """Per-channel mean and biased variance, two float64 passes over each (cached) channel."""
    rows = _channels(x)
    mean, variance = np.empty(rows.shape[1]), np.empty(rows.shape[1])
    _batch_norm_statistics_channels(rows, mean, variance)
    return mean.astype(x.dtype), variance.astype(x.dtype)


def batch_norm_normalize(x, mean, inverse_std, weight, bias):
    """``(y, normalized)`` in one pass: read x, write both."""
    rows = _channels(x)
    dtype = rows.dtype
    y, normalized = np.empty_like(rows), np.empty_like(rows)
    _batch_norm_normalize_channels(rows, *(np.ascontiguousarray(v, dtype=dtype)
                                           for v in (mean, inverse_std, weight, bias)),
                                   y, normalized)
    return y.reshape(x.shape), normalized.reshape(x.shape)


def batch_norm_backward_sums(dy, normalized):
    """``(Σ dy, Σ dy·x̂)`` per channel in one pass, float64 accumulation."""
    dy_rows, normalized_rows = _channels(dy), _channels(normalized)
    sum_dy, sum_dy_normalized = np.empty(dy_rows.shape[1]), np.empty(dy_rows.shape[1])
    _batch_norm_backward_sums_channels(dy_rows, normalized_rows, sum_dy, sum_dy_normalized)
    return sum_dy.astype(dy.dtype), sum_dy_normalized.astype(dy.dtype)


def batch_norm_backward_dx(dy, normalized, scale, sum_dy, sum_dy_normalized):
    """Training-mode dx in one pass: read dy and x̂, write dx."""
    dy_rows, normalized_rows = _channels(dy), _channels(normalized)
    dtype = dy_rows.dtype
    count = dy.shape[0] * dy.shape[2] * dy.shape[3]
    # scale/M per channel, computed as the reference does (in the map's dtype)
    coefficient = np.ascontiguousarray(scale, dtype=dtype) / dtype.type(count)
    dx = np.empty_like(dy_rows)
    _batch_norm_backward_dx_channels(dy_rows, normalized_rows, coefficient, dtype.type(count),
                                     np.ascontiguousarray(sum_dy, dtype=dtype),
                                     np.ascontiguousarray(sum_dy_normalized, dtype=dtype), dx)
    return dx.reshape(dy.shape)

# =========================================================================== pooling
def max_pool2d_forward(x, kernel, stride, padding):
    """``(out, argmax)``: window maximum and the flat input index h·W + w of its first maximum.

    Padding never wins. A window must hold at least one input cell (padding ≤
    kernel/2, as PyTorch requires)."""
    x = np.ascontiguousarray(x)
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, w = x.shape
    oh, ow = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    out = np.empty((n, c, oh, ow), dtype=x.dtype)
    argmax = np.empty((n, c, oh, ow), dtype=np.int64)
    return _max_pool_planes(x, out, argmax, kh, kw, sh, sw, ph, pw)


def max_pool2d_backward(dout, argmax, x_shape):
    """Route each dout to its window's arg-max; overlapping windows accumulate."""
    n, c, h, w = x_shape
    dout = np.ascontiguousarray(dout)
    argmax = np.ascontiguousarray(argmax, dtype=np.int64)
    dx = np.empty((n * c, h * w), dtype=dout.dtype)
    return _max_pool_backward_planes(dout, argmax, dx).reshape(x_shape)


def avg_pool2d_forward(x, kernel, stride, padding):
    """Window mean, padding counted as zeros (count_include_pad=True); float64 accumulation."""
    x = np.ascontiguousarray(x)
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, w = x.shape
    oh, ow = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    out = np.empty((n, c, oh, ow), dtype=x.dtype)
    return _avg_pool_planes(x, out, kh, kw, sh, sw, ph, pw)


def avg_pool2d_backward(dout, x_shape, kernel, stride, padding):
    """Each window spreads dout/(kh·kw) over its cells; overlapping windows accumulate."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    dout = np.ascontiguousarray(dout)
    shares = dout / dout.dtype.type(kh * kw)       # in dout's dtype, as the reference
    dx = np.empty(tuple(x_shape), dtype=dout.dtype)
    return _avg_pool_backward_planes(shares, dx, kh, kw, sh, sw, ph, pw)
