"""The reference convolution: im2col, col2im and one matrix product per group, plain NumPy.

This is the readable version. The Numba backend computes the same sums one
sample at a time (``kernels/numba/conv.py``); the CUDA backend runs this file
on the host.
"""
import numpy as np

from ..contract import conv_output_size


def im2col(x, kernel, stride, padding, dilation):
    """Unfold every receptive field into a column.

    x (N,C,H,W) -> cols (N, C·kh·kw, OH·OW) with row index c·kh·kw + a·kw + b, so
    that a convolution is ``weight.reshape(O, -1) @ cols`` (per group).
    cols[n, (c,a,b), (p,q)] = x_pad[n, c, p·sh + a·dh, q·sw + b·dw].
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    n, c, h, w = x.shape
    oh = conv_output_size(h, kh, sh, ph, dh)
    ow = conv_output_size(w, kw, sw, pw, dw)
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = np.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for a in range(kh):
        for b in range(kw):
            rows = slice(a * dh, a * dh + sh * (oh - 1) + 1, sh)
            columns = slice(b * dw, b * dw + sw * (ow - 1) + 1, sw)
            cols[:, :, a, b] = x_pad[:, :, rows, columns]
    return cols.reshape(n, c * kh * kw, oh * ow)


def col2im(cols, x_shape, kernel, stride, padding, dilation):
    """Adjoint of im2col: scatter-add every column entry back to the pixel it came from.

    A pixel covered by several receptive fields receives the sum of their
    gradients, which is why this is ``+=`` and not ``=``.
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    n, c, h, w = x_shape
    oh = conv_output_size(h, kh, sh, ph, dh)
    ow = conv_output_size(w, kw, sw, pw, dw)
    cols = cols.reshape(n, c, kh, kw, oh, ow)
    dx_pad = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for a in range(kh):
        for b in range(kw):
            rows = slice(a * dh, a * dh + sh * (oh - 1) + 1, sh)
            columns = slice(b * dw, b * dw + sw * (ow - 1) + 1, sw)
            dx_pad[:, :, rows, columns] += cols[:, :, a, b]
    return np.ascontiguousarray(dx_pad[:, :, ph:ph + h, pw:pw + w])



def _batch_side_by_side(rows_per_sample, groups):
    """(N, g·R, L) -> (g, R, N·L): split the rows into groups, put the samples' columns side by side.

    im2col orders rows channel-major (c, a, b), so group γ's rows are one
    contiguous block; the transpose copies once so each group is one matrix.
    """
    n, rows, locations = rows_per_sample.shape
    by_group = rows_per_sample.reshape(n, groups, rows // groups, locations)
    return by_group.transpose(1, 2, 0, 3).reshape(groups, rows // groups, n * locations)


def _back_to_batch(side_by_side, n):
    """(g, R, N·L) -> (N, g·R, L): the inverse of ``_batch_side_by_side``."""
    groups, rows, total = side_by_side.shape
    by_sample = side_by_side.reshape(groups, rows, n, total // n).transpose(2, 0, 1, 3)
    return by_sample.reshape(n, groups * rows, total // n)


def conv2d_forward(x, weight, stride, padding, dilation, groups):
    """Convolution without bias as im2col + one matrix product per group.  -> (N, O, OH, OW).

    x (N, C, H, W), weight (O, C/g, kh, kw). The columns of the whole batch lie
    side by side, so each group is one large product (one BLAS call, not N)::

        cols_γ = im2col(x), rows of group γ       (C/g·kh·kw, N·OH·OW)
        out_γ  = W_γ (O/g, C/g·kh·kw) @ cols_γ    (O/g, N·OH·OW), then back to NCHW
    """
    n, _, height, width = x.shape
    out_channels, _, kernel_h, kernel_w = weight.shape
    out_h = conv_output_size(height, kernel_h, stride[0], padding[0], dilation[0])
    out_w = conv_output_size(width, kernel_w, stride[1], padding[1], dilation[1])
    cols = im2col(x, (kernel_h, kernel_w), stride, padding, dilation)    # (N, C·kh·kw, L)
    cols_by_group = _batch_side_by_side(cols, groups)                   # (g, C/g·kh·kw, N·L)
    weight_by_group = weight.reshape(groups, out_channels // groups, -1)  # (g, O/g, C/g·kh·kw)
    out = _back_to_batch(weight_by_group @ cols_by_group, n)            # (N, O, L)
    return out.reshape(n, out_channels, out_h, out_w)


def conv2d_bias_forward(x, weight, bias, stride, padding, dilation, groups):
    """``conv2d_forward`` plus one bias per filter: out[n, o, i, j] += bias[o].  bias (O,)."""
    out = conv2d_forward(x, weight, stride, padding, dilation, groups)
    out += bias[None, :, None, None]
    return out


def conv2d_weight_backward(dout, x, weight, stride, padding, dilation, groups):
    """dweight of ``conv2d_backward`` alone: dW_γ = dout_γ @ cols_γᵀ, no dcols, no col2im
    (the data under a network's first convolution needs no gradient)."""
    n, out_channels = dout.shape[:2]
    cols = im2col(x, weight.shape[2:], stride, padding, dilation)
    cols_by_group = _batch_side_by_side(cols, groups)                   # (g, K, N·L)
    dout_by_group = _batch_side_by_side(dout.reshape(n, out_channels, -1), groups)
    return (dout_by_group @ cols_by_group.transpose(0, 2, 1)).reshape(weight.shape)


def conv2d_backward(dout, x, weight, stride, padding, dilation, groups):
    """``(dx, dweight)`` of ``conv2d_forward``; dout (N, O, OH, OW).

    From the matrix product Y = W·X (dW = dY·Xᵀ, dX = Wᵀ·dY), per group::

        dW_γ    = dout_γ @ cols_γᵀ     (O/g, C/g·kh·kw)   the sum over the batch is inside
        dcols_γ = W_γᵀ @ dout_γ        (C/g·kh·kw, N·OH·OW)
        dx      = col2im(dcols)

    The columns are unfolded again from x rather than kept from the forward
    pass: they are kh·kw times the size of x, and unfolding is cheap.
    """
    n, out_channels = dout.shape[:2]
    kernel = weight.shape[2:]
    cols = im2col(x, kernel, stride, padding, dilation)
    cols_by_group = _batch_side_by_side(cols, groups)                   # (g, K, N·L)
    dout_by_group = _batch_side_by_side(dout.reshape(n, out_channels, -1), groups)
    weight_by_group = weight.reshape(groups, out_channels // groups, -1)   # (g, O/g, K)
    dweight = (dout_by_group @ cols_by_group.transpose(0, 2, 1)).reshape(weight.shape)
    dcols = _back_to_batch(weight_by_group.transpose(0, 2, 1) @ dout_by_group, n)
    dx = col2im(dcols, x.shape, kernel, stride, padding, dilation)
    return dx, dweight
