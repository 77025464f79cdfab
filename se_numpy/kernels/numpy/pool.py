"""Max and average pooling over k×k windows, plain NumPy (math: ``functional/pool.py``)."""
import numpy as np

from ..contract import conv_output_size
from .conv import col2im, im2col


def _pool_windows(x, kernel, stride, padding, fill):
    """(N,C,H,W) -> (N,C,OH,OW,kh·kw): every pooling window, padded with ``fill``."""
    n, c = x.shape[:2]
    x_pad = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2), constant_values=fill)
    cols = im2col(x_pad, kernel, stride, (0, 0), (1, 1))          # (N, C·kh·kw, OH·OW)
    oh = conv_output_size(x.shape[2], kernel[0], stride[0], padding[0])
    ow = conv_output_size(x.shape[3], kernel[1], stride[1], padding[1])
    cols = cols.reshape(n, c, kernel[0] * kernel[1], oh, ow)
    return cols.transpose(0, 1, 3, 4, 2)


def max_pool2d_forward(x, kernel, stride, padding):
    """out[n,c,p,q] = max over the window; argmax (int64) is the flat input index h·W + w
    of the first maximum in the window. Padding is -inf, so it never wins against a
    real value (only a window whose real cells are all -inf could point at padding;
    padding <= kernel/2, as PyTorch requires, keeps a real cell in every window)."""
    windows = _pool_windows(x, kernel, stride, padding, -np.inf)
    which = windows.argmax(axis=4)                                   # index inside the window
    out = np.take_along_axis(windows, which[..., None], axis=4)[..., 0]
    oh, ow = out.shape[2:]
    a, b = np.divmod(which, kernel[1])
    rows = np.arange(oh)[:, None] * stride[0] - padding[0] + a
    columns = np.arange(ow)[None, :] * stride[1] - padding[1] + b
    return out, (rows * x.shape[3] + columns).astype(np.int64)


def max_pool2d_backward(dout, argmax, x_shape):
    """Route each dout to its window's arg-max; overlapping windows accumulate."""
    n, c, h, w = x_shape
    dx = np.zeros((n, c, h * w), dtype=dout.dtype)
    flat_index = argmax.reshape(n, c, -1)
    for i in range(n):
        for j in range(c):
            np.add.at(dx[i, j], flat_index[i, j], dout[i, j].ravel())
    return dx.reshape(x_shape)


def avg_pool2d_forward(x, kernel, stride, padding):
    """out = mean over the window, padding counted as zeros (PyTorch's count_include_pad=True)."""
    windows = _pool_windows(x, kernel, stride, padding, 0)
    return windows.mean(axis=4, dtype=np.float64).astype(x.dtype, copy=False)


def avg_pool2d_backward(dout, x_shape, kernel, stride, padding):
    """Each window spreads dout/(kh·kw) over its cells; col2im does the accumulation."""
    n, c = x_shape[:2]
    kk = kernel[0] * kernel[1]
    share = (dout / dout.dtype.type(kk)).reshape(n, c, 1, -1)
    cols = np.broadcast_to(share, (n, c, kk, share.shape[3])).reshape(n, c * kk, -1)
    return col2im(np.ascontiguousarray(cols), x_shape, kernel, stride, padding, (1, 1))
