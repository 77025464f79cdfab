"""``CBAM``: channel attention, then spatial attention (Woo et al., ECCV 2018).

    cbam = CBAM(channels=256)     # hidden 16, a 7x7 spatial conv with BatchNorm: timm's CbamModule
    y = cbam(x)
    dx = cbam.backward(dy)

State dict as timm's ``CbamModule``: ``channel.fc1.weight`` (hidden, C, 1, 1),
``channel.fc2.weight`` (C, hidden, 1, 1) (no biases), ``spatial.conv.conv.weight``
(1, 2, 7, 7), ``spatial.conv.bn.{weight, bias, running_mean, running_var,
num_batches_tracked}`` (1,). The math is in ``functional/cbam.py``.
"""
import numpy as np

from .._validation import check_nchw
from ..functional.cbam import (channel_attention_backward, channel_attention_forward,
                               channel_pool_backward, channel_pool_forward,
                               spatial_gate_backward, spatial_gate_forward)
from ..functional.se import make_divisible
from .conv import Conv2d
from .module import Module, _require_cache
from .norm import BatchNorm2d
from .se import SELinear


class ChannelAttention(Module):
    """x' = σ(MLP(avg_ij x) + MLP(max_ij x)) · x, one MLP (fc1, fc2, no biases) for both."""

    def __init__(self, channels, hidden, bias=False, dtype=np.float32, rng=None):
        super().__init__()
        self.channels, self.hidden = int(channels), int(hidden)
        self.fc1 = SELinear(self.channels, self.hidden, bias=bias, dtype=dtype, rng=rng)
        self.fc2 = SELinear(self.hidden, self.channels, bias=bias, dtype=dtype, rng=rng)

    def forward(self, x):
        check_nchw(x, channels=self.channels)
        biases = [layer.bias.data if layer.bias is not None else None
                  for layer in (self.fc1, self.fc2)]
        y, self._cache = channel_attention_forward(x, self.fc1.weight.data, self.fc2.weight.data,
                                                   *biases)
        return y

    def backward(self, dy):
        dx, dw1, db1, dw2, db2 = channel_attention_backward(dy, _require_cache(self))
        for layer, dweight, dbias in ((self.fc1, dw1, db1), (self.fc2, dw2, db2)):
            layer.weight.accumulate(dweight)
            if layer.bias is not None:
                layer.bias.accumulate(dbias)
        return dx

    def flops(self, input_shape):
        """Average and max squeeze (2·C·H·W), the MLP twice (4·C·hidden), the scale (C·H·W)."""
        n, c, h, w = input_shape
        return int(n) * (3 * c * h * w + 4 * c * self.hidden)


class ConvNorm(Module):
    """Convolution then batch norm, under timm's ``ConvNormAct`` names ``conv`` and ``bn``."""

    def __init__(self, in_channels, out_channels, kernel_size, dtype=np.float32, rng=None):
        super().__init__()
        self.conv = Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                           bias=False, dtype=dtype, rng=rng)
        self.bn = BatchNorm2d(out_channels, dtype=dtype)

    def forward(self, x):
        return self.bn(self.conv(x))

    def backward(self, dy):
        return self.conv.backward(self.bn.backward(dy))


class SpatialAttention(Module):
    """y = σ(BN(conv_k×k([mean_c x, max_c x]))) · x: one gate per pixel, shared by the channels."""

    def __init__(self, kernel_size=7, dtype=np.float32, rng=None):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"spatial_kernel_size: expected an odd positive int, "
                             f"got {kernel_size!r}")
        self.kernel_size = int(kernel_size)
        self.conv = ConvNorm(2, 1, self.kernel_size, dtype=dtype, rng=rng)

    def forward(self, x):
        pooled, pool_cache = channel_pool_forward(x)
        y, gate_cache = spatial_gate_forward(x, self.conv(pooled))
        self._cache = (pool_cache, gate_cache)
        return y

    def backward(self, dy):
        pool_cache, gate_cache = _require_cache(self)
        dx, dlogits = spatial_gate_backward(dy, gate_cache)
        return dx + channel_pool_backward(self.conv.backward(dlogits), pool_cache)

    def flops(self, input_shape):
        """Channel mean and max (2·C·H·W), the k×k conv (2·k²·H·W), the scale (C·H·W)."""
        n, c, h, w = input_shape
        return int(n) * (3 * c * h * w + 2 * self.kernel_size ** 2 * h * w)


class CBAM(Module):
    """Convolutional Block Attention Module: ``spatial(channel(x))``.

    Args:
        channels: C.
        rd_ratio, rd_divisor: hidden width make_divisible(C · rd_ratio, rd_divisor,
            round_limit=0), timm's rule (1/16 and 1: C // 16 where 16 divides C).
        spatial_kernel_size: k of the spatial convolution (7 in the paper).
        dtype, rng: parameter dtype and seed/generator.

    Shapes: x (N, C, H, W) -> y (N, C, H, W).
    """

    def __init__(self, channels, rd_ratio=1 / 16, rd_divisor=1, spatial_kernel_size=7,
                 dtype=np.float32, rng=None):
        super().__init__()
        self.channels = int(channels)
        hidden = make_divisible(self.channels * rd_ratio, rd_divisor, round_limit=0.0)
        self.channel = ChannelAttention(self.channels, hidden, dtype=dtype, rng=rng)
        self.spatial = SpatialAttention(spatial_kernel_size, dtype=dtype, rng=rng)

    def forward(self, x):
        return self.spatial(self.channel(x))

    def backward(self, dy):
        return self.channel.backward(self.spatial.backward(dy))

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def flops(self, input_shape):
        return self.channel.flops(input_shape) + self.spatial.flops(input_shape)

    def extra_repr(self):
        return (f"channels={self.channels}, hidden={self.channel.hidden}, "
                f"spatial_kernel_size={self.spatial.kernel_size}")
