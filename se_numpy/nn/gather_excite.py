"""``GatherExcite``: the Gather-Excite block as a module (Hu et al., NeurIPS 2018), timm's keys.

    ge = GatherExcite(64, extent=4, use_mlp=False)                     # GE-θ⁻
    ge = GatherExcite(64, extent=4, extra_params=True, use_mlp=False)  # GE-θ
    ge = GatherExcite(64, extent=4, extra_params=True)                 # GE-θ+
    y = ge(x)                # y = x ⊙ U(σ(mlp(gather(x))))
    dx = ge.backward(dy)

The paper's three variants (Sec. 3-4) are two switches: the gather is an
average (GE-θ⁻, no parameters) or strided depthwise convolutions
(``extra_params``, GE-θ); the excite is σ of the gathered map, or σ of an MLP
on it (``use_mlp``, GE-θ+ with the parametric gather). timm's default is the
average with the MLP, which with the global extent is an SE block with biases.

State-dict keys and shapes are timm's ``GatherExcite``:

    gather.conv1.weight (C, 1, 3, 3), gather.norm1.*, gather.conv2.weight, ...   GE-θ only
    mlp.fc1.weight (C/r, C, 1, 1), mlp.fc1.bias, mlp.fc2.weight (C, C/r, 1, 1), mlp.fc2.bias

GE-θ with extent e has log2(e) stride-2 depthwise 3x3 convolutions (no bias),
each followed by a BatchNorm and all but the last by a ReLU; with e = 0 it is
one depthwise convolution whose kernel is ``feat_size``, padded by
(k − 1) // 2 as timm pads it (so an odd map keeps its size). The math is in
``functional/gather_excite.py``.
"""
import math

import numpy as np

from .._validation import check_nchw
from ..functional.gather_excite import (check_extent, excite_backward, excite_forward,
                                        gather_backward, gather_forward, gather_output_shape)
from ..functional.se import make_divisible
from .activation import ReLU
from .chain import NamedSequential
from .container import Identity
from .conv import Conv2d
from .module import Module, _require_cache
from .norm import BatchNorm2d


class ExtentGather(Module):
    """GE-θ⁻'s gather as a module without parameters: window means of extent e (0: global)."""

    def __init__(self, extent):
        super().__init__()
        self.extent = check_extent(extent)

    def forward(self, x):
        g, self._cache = gather_forward(x, self.extent)
        return g

    def backward(self, dg):
        return gather_backward(dg, _require_cache(self))

    def output_shape(self, input_shape):
        return gather_output_shape(input_shape, self.extent)

    def flops(self, input_shape):
        """One add per pixel per window holding it: Σ_pq |W_pq| per channel (C·H·W for e = 0)."""
        n, c, height, width = input_shape
        if self.extent == 0:
            return int(n * c * height * width)
        return int(n * c * _covered(height, self.extent) * _covered(width, self.extent))

    def extra_repr(self):
        return f"extent={self.extent}"


def _covered(size, extent):
    """Σ over the windows along one axis of the pixels each holds (the windows overlap)."""
    cells = -(-size // extent)
    return sum(min(p * extent + extent, size) - max(p * extent - extent + 1, 0)
               for p in range(cells))


def depthwise_gather(channels, extent, feat_size=None, dtype=np.float32, rng=None):
    """GE-θ's gather: conv1, norm1, act1, conv2, norm2, ... (timm's keys and order)."""
    if extent == 0:
        if feat_size is None:
            raise ValueError("feat_size: GE-θ with the global extent (extent=0, "
                             "extra_params=True) needs the map size (H, W)")
        kernel = tuple(feat_size) if isinstance(feat_size, (tuple, list)) else (feat_size,) * 2
        padding = tuple((k - 1) // 2 for k in kernel)
        return NamedSequential.of(
            conv1=Conv2d(channels, channels, kernel, padding=padding, groups=channels,
                         bias=False, dtype=dtype, rng=rng),
            norm1=BatchNorm2d(channels, dtype=dtype))
    layers, count = {}, int(math.log2(extent))
    for index in range(1, count + 1):
        layers[f"conv{index}"] = Conv2d(channels, channels, 3, stride=2, padding=1,
                                        groups=channels, bias=False, dtype=dtype, rng=rng)
        layers[f"norm{index}"] = BatchNorm2d(channels, dtype=dtype)
        if index != count:
            layers[f"act{index}"] = ReLU()
    return NamedSequential.of(**layers)


def cell_mlp(channels, hidden, dtype=np.float32, rng=None):
    """timm's ``ConvMlp``: fc1 (1x1, C -> hidden, bias), ReLU, fc2 (1x1, hidden -> C, bias)."""
    return NamedSequential.of(fc1=Conv2d(channels, hidden, 1, dtype=dtype, rng=rng), act=ReLU(),
                              fc2=Conv2d(hidden, channels, 1, dtype=dtype, rng=rng))


class GatherExcite(Module):
    """Gather-Excite block, y = x ⊙ U(σ(mlp(gather(x)))).

    Args (timm's names):
        channels: C.
        extent: e, the gather's extent: 0 (global: the whole map) or an even e >= 2.
        extra_params: False for GE-θ⁻ (average pooling), True for GE-θ (depthwise
            strided convolutions with BatchNorm).
        use_mlp: the 1x1-convolution MLP on the gathered map (False: the gate is σ(g)).
        rd_ratio, rd_channels, rd_divisor: hidden width of the MLP, rd_channels or
            make_divisible(C · rd_ratio, rd_divisor) (timm: divisor 1, no round limit).
        feat_size: (H, W), needed only by GE-θ with extent 0.
        dtype, rng: parameter dtype and seed/generator.

    Shapes: x (N, C, H, W) -> y (N, C, H, W).
    """

    def __init__(self, channels, extent=0, extra_params=False, use_mlp=True, rd_ratio=1. / 16,
                 rd_channels=None, rd_divisor=1, feat_size=None, dtype=np.float32, rng=None):
        super().__init__()
        self.channels, self.extent = int(channels), check_extent(extent)
        self.extra_params, self.use_mlp = bool(extra_params), bool(use_mlp)
        self.gather = depthwise_gather(self.channels, extent, feat_size, dtype, rng) \
            if extra_params else ExtentGather(extent)
        self.hidden = int(rd_channels or make_divisible(self.channels * rd_ratio, rd_divisor,
                                                        round_limit=0.0))
        self.mlp = cell_mlp(self.channels, self.hidden, dtype, rng) if use_mlp else Identity()

    def forward(self, x):
        check_nchw(x, channels=self.channels)
        logits = self.mlp(self.gather(x))
        y, self._cache = excite_forward(x, logits)
        return y

    def backward(self, dy):
        """dx = dy ⊙ U(s) + gatherᵀ(mlpᵀ(dlogits)): x reaches y directly and through the gate."""
        dx, dlogits = excite_backward(dy, _require_cache(self))
        return dx + self.gather.backward(self.mlp.backward(dlogits))

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def flops(self, input_shape):
        """The gather's and the MLP's multiply-accumulates plus C·H·W for the excite."""
        gathered = self.gather.output_shape(input_shape)
        n, c, height, width = input_shape
        return int(self.gather.flops(input_shape) + self.mlp.flops(gathered)
                   + n * c * height * width)

    def extra_repr(self):
        kind = "GE-θ" if self.extra_params else "GE-θ⁻"
        return (f"channels={self.channels}, extent={self.extent}, {kind}, "
                f"hidden={self.hidden if self.use_mlp else None}")
