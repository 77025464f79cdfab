"""MobileNet v1 (Howard et al. 2017), width 1.0, with and without SE (paper Table 3).

    features.0       3x3 conv stride 2 (32) -> BN -> ReLU
    features.1..13   depthwise-separable blocks (below), strides and widths
                     as in Howard et al.'s Table 1
    avgpool (global) -> fc

A depthwise-separable block factors a 3x3 convolution into a per-channel
("depthwise", groups = channels) 3x3 convolution and a 1x1 ("pointwise") one:

    dw_conv 3x3, groups=C_in -> dw_bn -> ReLU -> pw_conv 1x1 -> pw_bn -> ReLU [-> se]

SE-MobileNet puts an SE block on each block's output (after the pointwise
ReLU), r = 16: 13 SE blocks adding about 0.48M parameters (4.2M -> 4.7M, Table 3).
"""
import numpy as np

from ..nn.activation import ReLU
from ..nn.container import Sequential
from ..nn.conv import Conv2d
from ..nn.init import as_generator
from ..nn.linear import Linear
from ..nn.norm import BatchNorm2d
from ..nn.pool import GlobalAvgPool
from .network import Network
from .registry import register
from .se_config import SEConfig, split_se_options

# (output channels, stride) of the 13 depthwise-separable blocks. For a per-stage
# SE reduction, the stages are the five resolutions 112, 56, 28, 14 and 7.
MOBILENET_V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                       (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
NUM_STAGES = 5


class DepthwiseSeparable(Sequential):
    """dw_conv 3x3 (groups = in_channels) -> BN -> ReLU -> pw_conv 1x1 -> BN -> ReLU [-> SE].

    Children are numbered like any ``Sequential`` (0 dw conv, 1 BN, 2 ReLU,
    3 pw conv, 4 BN, 5 ReLU, 6 SE), and forward/backward are Sequential's.
    Shapes: (N, in_channels, H, W) -> (N, out_channels, H/stride, W/stride).
    """

    def __init__(self, in_channels, out_channels, stride, attention=None, dtype=np.float32,
                 rng=None):
        layers = [Conv2d(in_channels, in_channels, 3, stride=stride, padding=1,
                         groups=in_channels, bias=False, dtype=dtype, rng=rng),
                  BatchNorm2d(in_channels, dtype=dtype), ReLU(),
                  Conv2d(in_channels, out_channels, 1, bias=False, dtype=dtype, rng=rng),
                  BatchNorm2d(out_channels, dtype=dtype), ReLU()]
        if attention is not None:
            layers.append(attention)
        super().__init__(*layers)


class MobileNetV1(Network):
    """MobileNet v1 (width multiplier 1.0). Args as the ResNets.

    Shapes: x (N, in_channels, H, W) -> logits (N, num_classes).
    """

    def __init__(self, in_channels=3, num_classes=1000, se_config=None, dtype=np.float32,
                 seed=0):
        super().__init__()
        rng = as_generator(seed)
        self.in_channels, self.num_classes = int(in_channels), int(num_classes)
        layers = [Sequential(Conv2d(in_channels, 32, 3, stride=2, padding=1, bias=False,
                                    dtype=dtype, rng=rng),
                             BatchNorm2d(32, dtype=dtype), ReLU())]
        channels, stage_index = 32, 0
        for out_channels, stride in MOBILENET_V1_BLOCKS:
            stage_index += stride == 2      # a new stage starts at every halving
            attention = se_config.make(out_channels, stage_index, dtype, rng) \
                if se_config else None
            layers.append(DepthwiseSeparable(channels, out_channels, stride, attention, dtype, rng))
            channels = out_channels
        self.features = Sequential(*layers)
        self.avgpool = GlobalAvgPool()
        self.fc = Linear(channels, num_classes, dtype=dtype, rng=rng)
        self._finish()


def _mobilenet_builder(model_name, with_se):
    def build(in_channels=3, num_classes=1000, dtype=np.float32, seed=0, **options):
        se_options, rest = split_se_options(model_name, with_se, options)
        if rest:
            raise TypeError(f"{model_name}: unexpected options {sorted(rest)}")
        if se_options.get("placement", "standard") != "standard":
            raise ValueError(f"{model_name}: placement applies to residual units only; "
                             f"MobileNet has SE after each block, got {se_options['placement']!r}")
        se_config = SEConfig(NUM_STAGES, **se_options) if with_se else None
        return MobileNetV1(in_channels, num_classes, se_config, dtype, seed)
    build.__name__ = model_name
    return build


register("mobilenet_v1", _mobilenet_builder("mobilenet_v1", False), "MobileNet v1, width 1.0")
register("se_mobilenet_v1", _mobilenet_builder("se_mobilenet_v1", True),
         "MobileNet v1, width 1.0, SE after each depthwise-separable block")
