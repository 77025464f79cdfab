"""Pooling over NCHW feature maps: max, average and global average, forward and backward.

Shapes: x (N, C, H, W) -> out (N, C, OH, OW) with OH = floor((H + 2p − k) / s) + 1
(floor mode, as PyTorch's default ``ceil_mode=False``); global pooling gives (N, C).
Every channel is pooled on its own, so pooling has no parameters.

Max pooling::

    out[n,c,p,q] = max_{a,b} x_pad[n, c, p·sh + a, q·sw + b]      (padding is −∞)
    dx[n,c,i,j]  = Σ_{(p,q) whose arg-max is (i,j)} dout[n,c,p,q]

The max is locally the identity on its winning input and constant in the
others, so each dout goes to the one position that won its window (the first
one in row-major order if several tie, as NumPy's argmax); where windows
overlap (stride < kernel) a pixel that wins several windows collects all of them.

Average pooling (padding counted as zeros, PyTorch's ``count_include_pad=True``)::

    out[n,c,p,q] = 1/(kh·kw) Σ_{a,b} x_pad[n, c, p·sh + a, q·sw + b]
    dx[n,c,i,j]  = Σ_{windows (p,q) containing (i,j)} dout[n,c,p,q] / (kh·kw)

Global average pooling is the squeeze of the SE block (paper Eq. 2)::

    z[n,c] = 1/(HW) Σ_{i,j} x[n,c,i,j]        dx[n,c,i,j] = dz[n,c] / (HW)

The loops live in the kernels (``se_numpy.kernels``), so a faster backend can
replace them; this file normalises and checks the arguments.
"""
from typing import NamedTuple

from .._validation import check_float_array, check_nchw, check_shape
from ..kernels import backend
from .conv import as_pair, output_size


class Pool2dCache(NamedTuple):
    """What the pooling backwards need. ``argmax`` is None for average pooling."""
    x_shape: tuple
    kernel: tuple
    stride: tuple
    padding: tuple
    argmax: object          # (N, C, OH, OW) int64 flat input index h·W + w, max pooling only
    dtype: object


def pool2d_arguments(kernel_size, stride=None, padding=0):
    """Normalise (kernel, stride, padding) to pairs; stride defaults to the kernel (no overlap).

    Padding may be at most half the kernel (PyTorch's rule): a wider padding
    would create windows that hold only padding.
    """
    kernel = as_pair(kernel_size, "kernel_size", 1)
    stride = kernel if stride is None else as_pair(stride, "stride", 1)
    padding = as_pair(padding, "padding", 0)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"padding: expected at most half the kernel size {kernel}, got {padding}")
    return kernel, stride, padding


def pool2d_output_shape(input_shape, kernel_size, stride=None, padding=0):
    """(N, C, H, W) -> (N, C, OH, OW); ValueError if the window does not fit the padded input."""
    kernel, stride, padding = pool2d_arguments(kernel_size, stride, padding)
    n, channels, height, width = input_shape
    out_height = output_size(height, kernel[0], stride[0], padding[0])
    out_width = output_size(width, kernel[1], stride[1], padding[1])
    if out_height < 1 or out_width < 1:
        raise ValueError(f"pooling: kernel {kernel} does not fit the padded input of size "
                         f"{(height + 2 * padding[0], width + 2 * padding[1])}")
    return (n, channels, out_height, out_width)


def _check_dout(dout, cache, name="dout"):
    check_float_array(dout, name, ndim=4)
    if dout.dtype != cache.dtype:
        raise TypeError(f"{name}: expected dtype {cache.dtype} (same as the forward input), "
                        f"got {dout.dtype}")
    expected = pool2d_output_shape(cache.x_shape, cache.kernel, cache.stride, cache.padding)
    check_shape(dout, expected, name)


def max_pool2d_forward(x, kernel_size, stride=None, padding=0):
    """out = max over every (kh, kw) window.  Returns ``(out, cache)``; see the module docstring."""
    check_nchw(x, "x")
    kernel, stride, padding = pool2d_arguments(kernel_size, stride, padding)
    pool2d_output_shape(x.shape, kernel, stride, padding)      # raises if the window does not fit
    out, argmax = backend.current().max_pool2d_forward(x, kernel, stride, padding)
    return out, Pool2dCache(x.shape, kernel, stride, padding, argmax, x.dtype)


def max_pool2d_backward(dout, cache):
    """dx: each dout[n,c,p,q] added to the position that won window (p, q)."""
    _check_dout(dout, cache)
    return backend.current().max_pool2d_backward(dout, cache.argmax, cache.x_shape)


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0):
    """out = mean over every (kh, kw) window, padding counted as zeros.  Returns ``(out, cache)``."""
    check_nchw(x, "x")
    kernel, stride, padding = pool2d_arguments(kernel_size, stride, padding)
    pool2d_output_shape(x.shape, kernel, stride, padding)
    out = backend.current().avg_pool2d_forward(x, kernel, stride, padding)
    return out, Pool2dCache(x.shape, kernel, stride, padding, None, x.dtype)


def avg_pool2d_backward(dout, cache):
    """dx: each dout[n,c,p,q]/(kh·kw) added to every position of window (p, q)."""
    _check_dout(dout, cache)
    return backend.current().avg_pool2d_backward(dout, cache.x_shape, cache.kernel,
                                                 cache.stride, cache.padding)


def global_avg_pool_forward(x):
    """z[n,c] = mean of x[n,c] over H, W: (N, C, H, W) -> (N, C).  Returns ``(z, cache)``.

    The same operation as the SE squeeze (``functional.se.squeeze_forward``),
    computed by the same kernel; used here as the classifier head's pooling.
    """
    check_nchw(x, "x")
    return backend.current().squeeze_forward(x), (x.shape, x.dtype)


def global_avg_pool_backward(dz, cache):
    """dx[n,c,i,j] = dz[n,c] / (HW): every position shares the mean equally."""
    x_shape, dtype = cache
    check_float_array(dz, "dz", ndim=2)
    if dz.dtype != dtype:
        raise TypeError(f"dz: expected dtype {dtype} (same as the forward input), got {dz.dtype}")
    check_shape(dz, x_shape[:2], "dz")
    return backend.current().squeeze_backward(dz, x_shape)
