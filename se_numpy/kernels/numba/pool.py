"""Numba pooling: max and average over k×k windows, one parallel job per (n, c) plane.

Read ``kernels/numpy/pool.py`` for the math. Planes never overlap, so no two
threads ever write the same output element (no atomics needed). The
backward loops add in the reference's order, so they agree with it exactly.
"""
import numpy as np
from numba import njit, prange

from ..contract import conv_output_size


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
def max_pool2d_forward_loop(x, out, argmax, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w):
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
    return max_pool2d_forward_loop(x, out, argmax, kh, kw, sh, sw, ph, pw)


@njit(parallel=True, cache=True)
def max_pool2d_backward_loop(dout, argmax, dx_rows):
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


def max_pool2d_backward(dout, argmax, x_shape):
    """Route each dout to its window's arg-max; overlapping windows accumulate."""
    n, c, h, w = x_shape
    dout = np.ascontiguousarray(dout)
    argmax = np.ascontiguousarray(argmax, dtype=np.int64)
    dx = np.empty((n * c, h * w), dtype=dout.dtype)
    return max_pool2d_backward_loop(dout, argmax, dx).reshape(x_shape)


@njit(parallel=True, cache=True)
def avg_pool2d_forward_loop(x, out, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w):
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


def avg_pool2d_forward(x, kernel, stride, padding):
    """Window mean, padding counted as zeros (count_include_pad=True); float64 accumulation."""
    x = np.ascontiguousarray(x)
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, w = x.shape
    oh, ow = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    out = np.empty((n, c, oh, ow), dtype=x.dtype)
    return avg_pool2d_forward_loop(x, out, kh, kw, sh, sw, ph, pw)


@njit(parallel=True, cache=True)
def avg_pool2d_backward_loop(shares, dx, kernel_h, kernel_w, stride_h, stride_w,
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


def avg_pool2d_backward(dout, x_shape, kernel, stride, padding):
    """Each window spreads dout/(kh·kw) over its cells; overlapping windows accumulate."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    dout = np.ascontiguousarray(dout)
    shares = dout / dout.dtype.type(kh * kw)       # in dout's dtype, as the reference
    dx = np.empty(tuple(x_shape), dtype=dout.dtype)
    return avg_pool2d_backward_loop(shares, dx, kh, kw, sh, sw, ph, pw)
