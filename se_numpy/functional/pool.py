"""Pooling over NCHW feature maps: max, average and global average, forward and backward.

Shapes: x (N, C, H, W) -> out (N, C, OH, OW) with OH = floor((H + 2p − k) / s) + 1
(floor mode, PyTorch's default ``ceil_mode=False``); global pooling gives (N, C).

``ceil_mode=True`` (the max pool of the original Caffe SENets and the
average-pool shortcuts of timm's "d" ResNets) rounds up instead,
OH = ceil((H + 2p − k) / s) + 1, dropping the last window if it would start
beyond the input and the left padding (PyTorch's rule). The extra windows run
past the bottom/right edge; only the entries inside them count.
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

In general the divisor is the number of counted positions of the window,
count[p,q]: the positions inside the padded input (``count_include_pad=True``)
or inside the input itself (False), never those a ceil-mode window adds past
the edge. Then out = Σ / count[p,q] and dx gets dout[n,c,p,q] / count[p,q].

Global average pooling is the squeeze of the SE block (paper Eq. 2)::

    z[n,c] = 1/(HW) Σ_{i,j} x[n,c,i,j]        dx[n,c,i,j] = dz[n,c] / (HW)

The loops live in the kernels (``se_numpy.kernels``), so a faster backend can
replace them; this file normalises and checks the arguments. Ceil mode and
``count_include_pad=False`` are done here, with the same kernels: the input is
padded explicitly (−∞ for max, 0 for average) to cover every window, the
kernel pools without padding, and the backward crops the padding off again.
"""
from typing import NamedTuple

import numpy as np

from .._validation import check_float_array, check_nchw, check_shape
from ..kernels import backend
from .conv import as_pair, output_size


class Pool2dCache(NamedTuple):
    """What the pooling backwards need. ``argmax`` is None for average pooling.

    ``extra`` (rows, columns) added past the bottom/right edge in ceil mode and
    ``count`` (OH, OW) window sizes of average pooling are None on the plain
    path (floor mode, padding counted), where the kernel does everything.
    """
    x_shape: tuple
    kernel: tuple
    stride: tuple
    padding: tuple
    argmax: object          # (N, C, OH, OW) int64 flat input index h·W + w, max pooling only
    dtype: object
    ceil_mode: bool = False
    extra: tuple = None
    count: object = None


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


def pooled_size(size, kernel, stride, padding, ceil_mode=False):
    """Output length along one axis, floor or ceil mode (PyTorch's ``pooling_output_shape``)."""
    if not ceil_mode:
        return output_size(size, kernel, stride, padding)
    out = -(-(size + 2 * padding - kernel) // stride) + 1
    if (out - 1) * stride >= size + padding:     # the last window would start in the right padding
        out -= 1
    return out


def pool2d_output_shape(input_shape, kernel_size, stride=None, padding=0, ceil_mode=False):
    """(N, C, H, W) -> (N, C, OH, OW); ValueError if the window does not fit the padded input."""
    kernel, stride, padding = pool2d_arguments(kernel_size, stride, padding)
    n, channels, height, width = input_shape
    out_height = pooled_size(height, kernel[0], stride[0], padding[0], ceil_mode)
    out_width = pooled_size(width, kernel[1], stride[1], padding[1], ceil_mode)
    if out_height < 1 or out_width < 1 or height + 2 * padding[0] < kernel[0] \
            or width + 2 * padding[1] < kernel[1]:
        raise ValueError(f"pooling: kernel {kernel} does not fit the padded input of size "
                         f"{(height + 2 * padding[0], width + 2 * padding[1])}")
    return (n, channels, out_height, out_width)


def _ceil_extra(x_shape, kernel, stride, padding, ceil_mode):
    """Rows and columns past the bottom/right padding that ceil-mode windows reach."""
    _, _, out_height, out_width = pool2d_output_shape(x_shape, kernel, stride, padding, ceil_mode)
    return (max(0, (out_height - 1) * stride[0] + kernel[0] - (x_shape[2] + 2 * padding[0])),
            max(0, (out_width - 1) * stride[1] + kernel[1] - (x_shape[3] + 2 * padding[1])))


def _pad(x, padding, extra, value):
    """x padded by ``padding`` on every side and ``extra`` more at the bottom/right."""
    widths = ((0, 0), (0, 0), (padding[0], padding[0] + extra[0]),
              (padding[1], padding[1] + extra[1]))
    return np.pad(x, widths, constant_values=value)


def _crop(dx_padded, x_shape, padding):
    return np.ascontiguousarray(dx_padded[:, :, padding[0]:padding[0] + x_shape[2],
                                          padding[1]:padding[1] + x_shape[3]])


def _check_dout(dout, cache, name="dout"):
    check_float_array(dout, name, ndim=4)
    if dout.dtype != cache.dtype:
        raise TypeError(f"{name}: expected dtype {cache.dtype} (same as the forward input), "
                        f"got {dout.dtype}")
    expected = pool2d_output_shape(cache.x_shape, cache.kernel, cache.stride, cache.padding,
                                   cache.ceil_mode)
    check_shape(dout, expected, name)


def max_pool2d_forward(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """out = max over every (kh, kw) window.  Returns ``(out, cache)``; see the module docstring."""
    check_nchw(x, "x")
    kernel, stride, padding = pool2d_arguments(kernel_size, stride, padding)
    pool2d_output_shape(x.shape, kernel, stride, padding, ceil_mode)   # raises if it does not fit
    extra = _ceil_extra(x.shape, kernel, stride, padding, ceil_mode)
    if extra == (0, 0):
        out, argmax = backend.current().max_pool2d_forward(x, kernel, stride, padding)
        return out, Pool2dCache(x.shape, kernel, stride, padding, argmax, x.dtype, ceil_mode)
    # padding is −∞, so it never wins; the argmax indexes the padded map
    padded = _pad(x, padding, extra, -np.inf)
    out, argmax = backend.current().max_pool2d_forward(padded, kernel, stride, (0, 0))
    return out, Pool2dCache(x.shape, kernel, stride, padding, argmax, x.dtype, ceil_mode, extra)


def max_pool2d_backward(dout, cache):
    """dx: each dout[n,c,p,q] added to the position that won window (p, q)."""
    _check_dout(dout, cache)
    if cache.extra is None:
        return backend.current().max_pool2d_backward(dout, cache.argmax, cache.x_shape)
    n, c, height, width = cache.x_shape
    padded_shape = (n, c, height + 2 * cache.padding[0] + cache.extra[0],
                    width + 2 * cache.padding[1] + cache.extra[1])
    dx_padded = backend.current().max_pool2d_backward(dout, cache.argmax, padded_shape)
    return _crop(dx_padded, cache.x_shape, cache.padding)


def _window_counts(x_shape, kernel, stride, padding, extra, count_include_pad, dtype):
    """count[p, q]: how many positions of window (p, q) the average divides by, (1, 1, OH, OW)."""
    counted = np.ones((1, 1) + tuple(x_shape[2:]), dtype)
    if count_include_pad:
        counted = _pad(counted, padding, (0, 0), 1)
        counted = _pad(counted, (0, 0), extra, 0)
    else:
        counted = _pad(counted, padding, extra, 0)
    area = kernel[0] * kernel[1]
    return backend.current().avg_pool2d_forward(counted, kernel, stride, (0, 0)) * area


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                       count_include_pad=True):
    """out = mean over every (kh, kw) window.  Returns ``(out, cache)``.

    Padding counts as zeros with ``count_include_pad`` (PyTorch's default);
    without it (and for the positions ceil mode adds) the mean is over the
    window's entries inside the input only.
    """
    check_nchw(x, "x")
    kernel, stride, padding = pool2d_arguments(kernel_size, stride, padding)
    pool2d_output_shape(x.shape, kernel, stride, padding, ceil_mode)
    extra = _ceil_extra(x.shape, kernel, stride, padding, ceil_mode)
    if extra == (0, 0) and (count_include_pad or padding == (0, 0)):
        out = backend.current().avg_pool2d_forward(x, kernel, stride, padding)
        return out, Pool2dCache(x.shape, kernel, stride, padding, None, x.dtype, ceil_mode)
    count = _window_counts(x.shape, kernel, stride, padding, extra, count_include_pad, x.dtype)
    area = kernel[0] * kernel[1]
    window_sums = backend.current().avg_pool2d_forward(_pad(x, padding, extra, 0), kernel,
                                                       stride, (0, 0)) * area
    out = (window_sums / count).astype(x.dtype, copy=False)
    return out, Pool2dCache(x.shape, kernel, stride, padding, None, x.dtype, ceil_mode, extra,
                            count)


def avg_pool2d_backward(dout, cache):
    """dx: each dout[n,c,p,q]/count[p,q] added to every counted position of window (p, q)."""
    _check_dout(dout, cache)
    if cache.count is None:
        return backend.current().avg_pool2d_backward(dout, cache.x_shape, cache.kernel,
                                                     cache.stride, cache.padding)
    n, c, height, width = cache.x_shape
    padded_shape = (n, c, height + 2 * cache.padding[0] + cache.extra[0],
                    width + 2 * cache.padding[1] + cache.extra[1])
    area = cache.kernel[0] * cache.kernel[1]
    # the kernel's backward divides by kh·kw; scaling by kh·kw/count makes it 1/count
    scaled = (dout * (area / cache.count)).astype(dout.dtype, copy=False)
    dx_padded = backend.current().avg_pool2d_backward(scaled, padded_shape, cache.kernel,
                                                      cache.stride, (0, 0))
    return _crop(dx_padded, cache.x_shape, cache.padding)


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
