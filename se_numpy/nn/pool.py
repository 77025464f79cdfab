"""Pooling modules as ``torch.nn.MaxPool2d`` / ``AvgPool2d``, and a global average pool.

Pooling has no parameters and costs no multiply-accumulates under the paper's
convention (``flops`` returns 0); the math is in functional/pool.py.
"""
from ..functional.pool import (avg_pool2d_backward, avg_pool2d_forward, global_avg_pool_backward,
                               global_avg_pool_forward, max_pool2d_backward, max_pool2d_forward,
                               pool2d_arguments, pool2d_output_shape)
from .module import Module, _require_cache


class _Pool2d(Module):
    """Shared arguments of the windowed pools: kernel, stride (default = kernel), padding, and
    ``ceil_mode`` (round the output size up, as the original SENets' max pool does)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        self.kernel_size, self.stride, self.padding = pool2d_arguments(kernel_size, stride, padding)
        self.ceil_mode = bool(ceil_mode)

    def output_shape(self, input_shape):
        return pool2d_output_shape(input_shape, self.kernel_size, self.stride, self.padding,
                                   self.ceil_mode)

    def flops(self, input_shape):
        """0: comparisons and additions, not multiply-accumulates (the paper's convention)."""
        return 0

    def extra_repr(self):
        text = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        return text + (", ceil_mode=True" if self.ceil_mode else "")


class MaxPool2d(_Pool2d):
    """out = max over each window; padding never wins (it is −∞)."""

    def forward(self, x):
        out, self._cache = max_pool2d_forward(x, self.kernel_size, self.stride, self.padding,
                                              self.ceil_mode)
        return out

    def backward(self, dy):
        return max_pool2d_backward(dy, _require_cache(self))


class AvgPool2d(_Pool2d):
    """out = mean over each window; padding counted as zeros unless ``count_include_pad=False``.

    timm's "d" ResNets shortcut through ``AvgPool2d(2, 2, ceil_mode=True,
    count_include_pad=False)``: on an odd-sized map the last window is cut
    by the edge and averages the entries it has.
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x):
        out, self._cache = avg_pool2d_forward(x, self.kernel_size, self.stride, self.padding,
                                              self.ceil_mode, self.count_include_pad)
        return out

    def backward(self, dy):
        return avg_pool2d_backward(dy, _require_cache(self))


class GlobalAvgPool(Module):
    """(N, C, H, W) -> (N, C): the mean of every channel, the classifier head's pooling.

    The same as PyTorch's ``AdaptiveAvgPool2d(1)`` followed by ``Flatten()``, and
    the same computation as the SE squeeze (paper Eq. 2). ``keepdim=True`` gives
    (N, C, 1, 1), for heads that run a 1x1 convolution after the pool (MobileNetV3).
    """

    def __init__(self, keepdim=False):
        super().__init__()
        self.keepdim = bool(keepdim)

    def forward(self, x):
        z, self._cache = global_avg_pool_forward(x)
        return z[:, :, None, None] if self.keepdim else z

    def backward(self, dy):
        if self.keepdim:
            if dy.ndim != 4 or dy.shape[2:] != (1, 1):
                raise ValueError(f"dy: expected shape (N, C, 1, 1), got {dy.shape}")
            dy = dy.reshape(dy.shape[:2])
        return global_avg_pool_backward(dy, _require_cache(self))

    def output_shape(self, input_shape):
        return tuple(input_shape[:2]) + ((1, 1) if self.keepdim else ())

    def flops(self, input_shape):
        """0: additions only (the paper's convention counts multiply-accumulates)."""
        return 0

    def extra_repr(self):
        return "keepdim=True" if self.keepdim else ""
