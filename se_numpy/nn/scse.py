"""``SCSE``: concurrent channel and spatial squeeze-and-excitation (Roy et al., MICCAI 2018).

    scse = SCSE(channels=64, reduction=16)
    y = scse(x)                 # y = cSE(x)·x + sSE(x)·x
    dx = scse.backward(dy)

scSE is not in timm's layers. The state-dict names are those of the PyTorch
implementation most used with segmentation models (``SCSEModule`` of
segmentation_models_pytorch), so its weights load as they are:

    cSE.1.weight (C/r, C, 1, 1), cSE.1.bias (C/r,)     the channel SE's two 1x1 convolutions
    cSE.3.weight (C, C/r, 1, 1), cSE.3.bias (C,)
    sSE.0.weight (1, C, 1, 1),   sSE.0.bias (1,)       the spatial SE: C -> 1

``cSE`` and ``sSE`` are the same layer sequences (pool, conv, ReLU, conv,
sigmoid; conv, sigmoid), so ``scse.cSE(x)`` gives the channel gates (N, C) and
``scse.sSE(x)`` the spatial gates (N, 1, H, W). The block itself computes with
``functional/scse.py``, which has the math.
"""
import numpy as np

from .._validation import check_nchw
from ..functional.scse import scse_backward, scse_forward
from ..functional.se import hidden_width
from .activation import ReLU, Sigmoid
from .container import Sequential
from .conv import Conv2d
from .module import Module, _require_cache
from .pool import GlobalAvgPool
from .se import SELinear


class SCSE(Module):
    """Concurrent spatial and channel squeeze-and-excitation, combined by addition.

    Args:
        channels: C.
        reduction: r of the channel SE; hidden width max(1, C // r).
        dtype, rng: parameter dtype and seed/generator.

    Shapes: x (N, C, H, W) -> y (N, C, H, W).
    """

    def __init__(self, channels, reduction=16, dtype=np.float32, rng=None):
        super().__init__()
        self.channels = int(channels)
        self.hidden = hidden_width(self.channels, reduction)
        self.cSE = Sequential(GlobalAvgPool(),
                              SELinear(self.channels, self.hidden, dtype=dtype, rng=rng), ReLU(),
                              SELinear(self.hidden, self.channels, dtype=dtype, rng=rng), Sigmoid())
        self.sSE = Sequential(Conv2d(self.channels, 1, 1, dtype=dtype, rng=rng), Sigmoid())

    def _layers(self):
        fc1, fc2, spatial = self.cSE[1], self.cSE[3], self.sSE[0]
        return fc1, fc2, spatial

    def forward(self, x):
        check_nchw(x, channels=self.channels)
        fc1, fc2, spatial = self._layers()
        y, self._cache = scse_forward(x, fc1.weight.data, fc1.bias.data, fc2.weight.data,
                                      fc2.bias.data, spatial.weight.data, spatial.bias.data)
        return y

    def backward(self, dy):
        dx, dw1, db1, dw2, db2, dspatial, dspatial_bias = scse_backward(dy, _require_cache(self))
        fc1, fc2, spatial = self._layers()
        for parameter, gradient in ((fc1.weight, dw1), (fc1.bias, db1), (fc2.weight, dw2),
                                    (fc2.bias, db2), (spatial.bias, dspatial_bias)):
            parameter.accumulate(gradient)
        spatial.weight.accumulate(dspatial.reshape(spatial.weight.shape))
        return dx

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def flops(self, input_shape):
        """cSE as SE (2·C·H·W + 2·C·hidden); sSE: the C -> 1 conv (C·H·W) and its scale (C·H·W)."""
        n, c, h, w = input_shape
        return int(n) * (4 * c * h * w + 2 * c * self.hidden)

    def extra_repr(self):
        return f"channels={self.channels}, hidden={self.hidden}"
