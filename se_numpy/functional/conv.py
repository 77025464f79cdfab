"""2-d convolution (PyTorch's ``conv2d``: cross-correlation, NCHW), forward and backward.

Shapes
    x       (N, C, H, W)                input feature map
    weight  (O, C/g, kh, kw)            O filters; each sees only its group's C/g channels
    bias    (O,) or None
    out     (N, O, OH, OW)              OH = floor((H + 2·ph − dh·(kh − 1) − 1) / sh) + 1, same for OW

Forward (g = groups; filter o belongs to group γ = o // (O/g) and reads channels
γ·C/g ... (γ+1)·C/g − 1)::

    out[n,o,p,q] = b[o] + Σ_{c,a,b} w[o,c,a,b] · x_pad[n, γ·C/g + c, p·sh + a·dh, q·sw + b·dw]

Computed as "im2col + matrix product": im2col unfolds every receptive field
into a column, and the columns of the whole batch are laid side by side, so
each group is *one* large matrix product (one BLAS call, not N small ones)::

    cols_γ  (C/g·kh·kw, N·OH·OW)       the receptive fields of group γ, every sample
    out_γ   = W_γ (O/g, C/g·kh·kw) @ cols_γ  ->  (O/g, N·OH·OW), reshaped to NCHW

Backward, with dout = dL/dout (N, O, OH, OW) laid out the same way as dout_γ
(O/g, N·OH·OW), from the matrix product Y = W·X (dW = dY·Xᵀ, dX = Wᵀ·dY)::

    dW_γ    = dout_γ @ cols_γᵀ          (O/g, C/g·kh·kw)  the sum over the batch is inside
    dcols_γ = W_γᵀ @ dout_γ             (C/g·kh·kw, N·OH·OW)
    db[o]   = Σ_{n,p,q} dout[n,o,p,q]
    dx      = col2im(dcols)

col2im is the adjoint of im2col: every entry of dcols is *added* back to the
input pixel it was copied from. A pixel that lies in several receptive fields
(overlapping windows, stride < kernel) was copied several times in the forward
pass, so it receives the sum of all those gradients; pixels in the padding are
dropped at the end, because the padding is a constant, not an input.
"""
from typing import NamedTuple

import numpy as np

from .._validation import check_float_array, check_nchw, check_same_dtype, check_shape
from ..kernels import backend


def as_pair(value, name, minimum):
    """Normalise an int or a pair of ints (rows, columns) to a tuple, checking each >= minimum."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)):
        pair = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{name}: expected an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name}: expected values >= {minimum}, got {value!r}")
    return pair


def output_size(size, kernel, stride, padding, dilation=1):
    """Output length along one axis (floor mode, as PyTorch): (size + 2p − d(k − 1) − 1) // s + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv2d_output_shape(input_shape, weight_shape, stride=1, padding=0, dilation=1):
    """(N, C, H, W) and (O, C/g, kh, kw) -> (N, O, OH, OW); ValueError if the output would be empty."""
    stride = as_pair(stride, "stride", 1)
    padding = as_pair(padding, "padding", 0)
    dilation = as_pair(dilation, "dilation", 1)
    n, _, height, width = input_shape
    out_channels, _, kernel_height, kernel_width = weight_shape
    out_height = output_size(height, kernel_height, stride[0], padding[0], dilation[0])
    out_width = output_size(width, kernel_width, stride[1], padding[1], dilation[1])
    if out_height < 1 or out_width < 1:
        raise ValueError(f"conv2d: the (dilated) kernel {(kernel_height, kernel_width)} with "
                         f"dilation {dilation} does not fit the padded input of size "
                         f"{(height + 2 * padding[0], width + 2 * padding[1])}")
    return (n, out_channels, out_height, out_width)


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


class Conv2dCache(NamedTuple):
    """What ``conv2d_backward`` needs from the forward pass."""
    cols_by_group: np.ndarray      # (g, C/g·kh·kw, N·OH·OW), the unfolded input
    weight: np.ndarray             # (O, C/g, kh, kw)
    has_bias: bool
    x_shape: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int


def _check_conv_arguments(x, weight, bias, groups):
    check_nchw(x, "x")
    check_float_array(weight, "weight", ndim=4)
    check_same_dtype(x, weight, "x", "weight")
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"groups: expected a positive int, got {groups!r}")
    in_channels, out_channels = x.shape[1], weight.shape[0]
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"groups: expected a divisor of both the input channels ({in_channels}) "
                         f"and the output channels ({out_channels}), got {groups}")
    if weight.shape[1] != in_channels // groups:
        raise ValueError(f"weight: expected shape ({out_channels}, {in_channels // groups}, kh, kw) "
                         f"for {in_channels} input channels in {groups} group(s), "
                         f"got {weight.shape}")
    if bias is not None:
        check_float_array(bias, "bias", ndim=1)
        check_same_dtype(x, bias, "x", "bias")
        check_shape(bias, (out_channels,), "bias")


def conv2d_forward(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """out = conv2d(x, weight) + bias.  Returns ``(out, cache)``.

    x (N, C, H, W), weight (O, C/groups, kh, kw), bias (O,) or None; ``stride``,
    ``padding`` (zeros), ``dilation`` are ints or (rows, columns) pairs. Output
    (N, O, OH, OW) in x's dtype. See the module docstring for the math.
    """
    _check_conv_arguments(x, weight, bias, groups)
    stride = as_pair(stride, "stride", 1)
    padding = as_pair(padding, "padding", 0)
    dilation = as_pair(dilation, "dilation", 1)
    n, out_channels, out_height, out_width = conv2d_output_shape(
        x.shape, weight.shape, stride, padding, dilation)
    kernel = weight.shape[2:]

    cols = backend.current().im2col(x, kernel, stride, padding, dilation)   # (N, C·kh·kw, L)
    cols_by_group = _batch_side_by_side(cols, groups)                   # (g, C/g·kh·kw, N·L)
    weight_by_group = weight.reshape(groups, out_channels // groups, -1)  # (g, O/g, C/g·kh·kw)
    out = _back_to_batch(weight_by_group @ cols_by_group, n)            # (N, O, L)
    out = out.reshape(n, out_channels, out_height, out_width)
    if bias is not None:
        out = out + bias[None, :, None, None]
    cache = Conv2dCache(cols_by_group, weight, bias is not None, x.shape, stride, padding, dilation,
                        int(groups))
    return out, cache


def conv2d_backward(dout, cache):
    """Returns ``(dx, dweight, dbias)``; dbias is None when the forward had no bias.

    dout (N, O, OH, OW) -> dx (N, C, H, W), dweight (O, C/g, kh, kw), dbias (O,).
    """
    cols_by_group, weight, has_bias, x_shape, stride, padding, dilation, groups = cache
    n, out_channels = x_shape[0], weight.shape[0]
    locations = cols_by_group.shape[2] // n                             # L = OH·OW
    check_float_array(dout, "dout", ndim=4)
    check_same_dtype(weight, dout, "the forward input", "dout")
    if dout.shape[:2] != (n, out_channels) or dout.shape[2] * dout.shape[3] != locations:
        raise ValueError(f"dout: expected shape of the forward output (N={n}, O={out_channels}, "
                         f"OH·OW={locations}), got {dout.shape}")

    dout_by_group = _batch_side_by_side(dout.reshape(n, out_channels, locations), groups)
    weight_by_group = weight.reshape(groups, out_channels // groups, -1)   # (g, O/g, K)
    # dW_γ = dout_γ @ cols_γᵀ: the product runs over all N·L locations, summing the batch.
    dweight = (dout_by_group @ cols_by_group.transpose(0, 2, 1)).reshape(weight.shape)
    # dcols_γ = W_γᵀ @ dout_γ, then scatter-add every column back to the pixels it came from.
    dcols = _back_to_batch(weight_by_group.transpose(0, 2, 1) @ dout_by_group, n)
    dx = backend.current().col2im(dcols, x_shape, weight.shape[2:], stride, padding, dilation)
    dbias = dout.sum(axis=(0, 2, 3)) if has_bias else None
    return dx, dweight, dbias
