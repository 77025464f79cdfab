"""2-d convolution (PyTorch's ``conv2d``: cross-correlation, NCHW), forward and backward.

Shapes
    x       (N, C, H, W)                input feature map
    weight  (O, C/g, kh, kw)            O filters; each sees only its group's C/g channels
    bias    (O,) or None
    out     (N, O, OH, OW)              OH = floor((H + 2·ph − dh·(kh − 1) − 1) / sh) + 1, same for OW

Forward (g = groups; filter o belongs to group γ = o // (O/g) and reads channels
γ·C/g ... (γ+1)·C/g − 1)::

    out[n,o,p,q] = b[o] + Σ_{c,a,b} w[o,c,a,b] · x_pad[n, γ·C/g + c, p·sh + a·dh, q·sw + b·dw]

The NumPy reference (``kernels/numpy/conv.py``) computes it as "im2col +
matrix product": im2col unfolds every receptive field into a column, and the
columns of the whole batch are laid side by side, so each group is *one*
large matrix product (one BLAS call, not N small ones)::

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

The Numba backend computes the same sums a few samples at a time, unfolding
them into a small cache-resident buffer, and dx of a stride-1 convolution as
a convolution of dout with the flipped kernel (``kernels/numba/conv.py``).
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


class Conv2dCache(NamedTuple):
    """What ``conv2d_backward`` needs from the forward pass.

    The input itself, not its im2col columns: the columns are kh·kw times
    larger (9× for a 3×3 kernel), and the backward pass unfolds them again.
    """
    x: np.ndarray                  # (N, C, H, W)
    weight: np.ndarray             # (O, C/g, kh, kw)
    has_bias: bool
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
    conv2d_output_shape(x.shape, weight.shape, stride, padding, dilation)   # rejects empty outputs

    # im2col + matrix product (module docstring), computed by the active backend (numba
    # adds the bias to each block of the output while the block is in cache)
    if bias is not None:
        out = backend.current().conv2d_bias_forward(x, weight, bias, stride, padding, dilation,
                                                    int(groups))
    else:
        out = backend.current().conv2d_forward(x, weight, stride, padding, dilation, int(groups))
    cache = Conv2dCache(x, weight, bias is not None, stride, padding, dilation, int(groups))
    return out, cache


def conv2d_backward(dout, cache, input_grad=True):
    """Returns ``(dx, dweight, dbias)``; dbias is None when the forward had no bias.

    dout (N, O, OH, OW) -> dx (N, C, H, W), dweight (O, C/g, kh, kw), dbias (O,).
    ``input_grad=False``: dx is None and not computed (as PyTorch skips it for an
    input that needs no gradient, e.g. the data under a network's first convolution).
    """
    x, weight, has_bias, stride, padding, dilation, groups = cache
    expected_shape = conv2d_output_shape(x.shape, weight.shape, stride, padding, dilation)
    check_float_array(dout, "dout", ndim=4)
    check_same_dtype(weight, dout, "the forward input", "dout")
    if dout.shape != expected_shape:
        raise ValueError(f"dout: expected the shape of the forward output {expected_shape}, "
                         f"got {dout.shape}")

    if input_grad:
        dx, dweight = backend.current().conv2d_backward(dout, x, weight, stride, padding,
                                                        dilation, groups)
    else:
        dx, dweight = None, backend.current().conv2d_weight_backward(dout, x, weight, stride,
                                                                     padding, dilation, groups)
    dbias = dout.sum(axis=(0, 2, 3)) if has_bias else None
    return dx, dweight, dbias
