"""``ECA``: Efficient Channel Attention, a k-tap 1-D convolution across the pooled channels
(Wang et al., ECA-Net, CVPR 2020).

    eca = ECA(channels=256)        # k = 5 for C = 256; conv.weight (1, 1, 5): timm's EcaModule
    y = eca(x)                     # y = σ(conv1d(mean_ij(x))) · x
    dx = eca.backward(dy)

The math is in ``functional/eca.py``.
"""
import numpy as np

from .._validation import check_nchw
from ..functional.eca import eca_backward, eca_forward, eca_kernel_size
from .init import uniform_fan_in
from .module import Module, _require_cache
from .parameter import Parameter


class ChannelConv1d(Module):
    """The parameter holder of ECA's ``conv``: PyTorch's ``Conv1d(1, 1, k, bias=False)``,
    weight (1, 1, k), initialised as PyTorch does, U(±1/sqrt(k)). ``ECA`` computes with it."""

    def __init__(self, kernel_size, dtype=np.float32, rng=None):
        super().__init__()
        self.kernel_size = int(kernel_size)
        self.weight = Parameter(uniform_fan_in((1, 1, self.kernel_size), self.kernel_size, rng,
                                               dtype))

    def extra_repr(self):
        return f"1, 1, kernel_size={self.kernel_size}, padding={self.kernel_size // 2}, bias=False"


class ECA(Module):
    """Efficient Channel Attention.

    Args:
        channels: C; when given, k = ``eca_kernel_size(C, gamma, beta)`` (paper Eq. 12) and
            ``kernel_size`` is ignored, as in timm. None: use ``kernel_size``.
        kernel_size: k (odd), used only without ``channels``.
        gamma, beta: γ and b of the adaptive kernel size.
        dtype, rng: parameter dtype and seed/generator.

    Shapes: x (N, C, H, W) -> y (N, C, H, W). State dict: ``conv.weight`` (1, 1, k).
    """

    def __init__(self, channels=None, kernel_size=3, gamma=2, beta=1, dtype=np.float32, rng=None):
        super().__init__()
        if channels is not None:
            kernel_size = eca_kernel_size(int(channels), gamma, beta)
        odd = isinstance(kernel_size, (int, np.integer)) and kernel_size % 2 == 1
        if not odd or kernel_size < 1:
            raise ValueError(f"kernel_size: expected an odd positive int, got {kernel_size!r}")
        self.channels = None if channels is None else int(channels)
        self.conv = ChannelConv1d(kernel_size, dtype=dtype, rng=rng)

    def forward(self, x):
        check_nchw(x, channels=self.channels)
        y, self._cache = eca_forward(x, self.conv.weight.data)
        return y

    def backward(self, dy):
        dx, dweight = eca_backward(dy, _require_cache(self))
        self.conv.weight.accumulate(dweight.reshape(self.conv.weight.shape))
        return dx

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def flops(self, input_shape):
        """Multiply-accumulates: squeeze C·H·W, the 1-D convolution k·C, scale C·H·W."""
        n, c, h, w = input_shape
        return int(n) * (2 * c * h * w + self.conv.kernel_size * c)

    def extra_repr(self):
        return f"channels={self.channels}, kernel_size={self.conv.kernel_size}"
