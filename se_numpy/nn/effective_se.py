"""``EffectiveSE``: eSE, one C -> C layer and a hard sigmoid (Lee & Park, CenterMask, CVPR 2020).

    ese = EffectiveSE(channels=64)    # fc (64, 64, 1, 1), bias (64,): timm's EffectiveSEModule
    y = ese(x)                              # y = hsigmoid(W mean_ij(x) + b) · x
    dx = ese.backward(dy)

The math is in ``functional/effective_se.py``.
"""
import numpy as np

from .._validation import check_nchw
from ..functional.activation import ACTIVATIONS
from ..functional.effective_se import effective_se_backward, effective_se_forward
from .module import Module, _require_cache
from .se import SELinear


class EffectiveSE(Module):
    """Effective Squeeze-and-Excitation.

    Args:
        channels: C.
        gate: "hard_sigmoid" (the paper's and timm's) or any gate of ``SEBlock``.
        dtype, rng: parameter dtype and seed/generator (PyTorch's default initialisation).

    Shapes: x (N, C, H, W) -> y (N, C, H, W). State dict: ``fc.weight`` (C, C, 1, 1),
    ``fc.bias`` (C,), as timm's ``EffectiveSEModule``.
    """

    def __init__(self, channels, gate="hard_sigmoid", dtype=np.float32, rng=None):
        super().__init__()
        if gate not in ACTIVATIONS:
            raise ValueError(f"gate: expected one of {tuple(ACTIVATIONS)}, got {gate!r}")
        self.channels, self.gate = int(channels), gate
        self.fc = SELinear(self.channels, self.channels, bias=True, dtype=dtype, rng=rng)

    def forward(self, x):
        check_nchw(x, channels=self.channels)
        y, self._cache = effective_se_forward(x, self.fc.weight.data, self.fc.bias.data, self.gate)
        return y

    def backward(self, dy):
        dx, dweight, dbias = effective_se_backward(dy, _require_cache(self))
        self.fc.weight.accumulate(dweight)
        self.fc.bias.accumulate(dbias)
        return dx

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def flops(self, input_shape):
        """Multiply-accumulates as for SE (``SEBlock.flops``): squeeze C·H·W, fc C², scale C·H·W."""
        n, c, h, w = input_shape
        return int(n) * (2 * c * h * w + c * c)

    def extra_repr(self):
        return f"channels={self.channels}, gate={self.gate!r}"
