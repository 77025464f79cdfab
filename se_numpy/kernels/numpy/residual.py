"""The end of a residual unit, out = ReLU(pre-activation), and ReLU's backward from its output.

A residual unit ends with out = max(u + shortcut, 0) (``nn/residual.py``), or
with SE in the standard position max(s·u + shortcut, 0). ReLU's derivative
1[pre > 0] equals 1[out > 0] (out = pre where pre > 0, and 0 or NaN where
not), so the backward reads the output it already has instead of a mask.
"""
import numpy as np


def add_relu_forward(u, shortcut):
    """out = max(u + shortcut, 0), both (N, C, H, W)."""
    return np.maximum(u + shortcut, u.dtype.type(0))


def scale_add_relu_forward(u, s, shortcut):
    """out = max(s·u + shortcut, 0): ``se.scale_add_forward`` then ReLU. s (N, C)."""
    return np.maximum(u * s[:, :, None, None] + shortcut, u.dtype.type(0))


def relu_backward(dout, out):
    """d_pre = dout · 1[out > 0], out the ReLU's output (the same mask as 1[pre > 0])."""
    return dout * (out > 0)


def scale_add_relu_forward_in_place(u, s, shortcut):
    """``scale_add_relu_forward`` written over u (evaluation mode, where u is not read again).

    Returns the result, which on the CPU backends is u itself: u's old values are gone."""
    np.multiply(u, s[:, :, None, None], out=u)
    np.add(u, shortcut, out=u)
    return np.maximum(u, u.dtype.type(0), out=u)
