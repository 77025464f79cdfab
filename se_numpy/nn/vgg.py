"""A VGG-style stage: (3x3 conv -> BN -> ReLU) repeated, then an optional SE block.

    VGGStage(64, 128, num_convs=2, attention=SEBlock(128))
        = Sequential(Conv2d(64, 128, 3, padding=1), BatchNorm2d(128), ReLU(),
                     Conv2d(128, 128, 3, padding=1), BatchNorm2d(128), ReLU(),
                     SEBlock(128))

VGG has no shortcut, so SE simply rescales the stage's output channels
(paper Sec. 5.1, non-residual networks; Table 2's SE-VGG-16). The stage is a
``Sequential``: forward runs the children in order and backward runs their
backward passes in reverse, so no new derivation is needed. Its children are
numbered like torchvision's ``vgg16_bn.features`` ("0" conv, "1" bn, "2" relu, ...),
and a network splices them into one flat ``features`` Sequential with the
max-pooling layers in between, which keeps torchvision's state-dict names.
"""
import numpy as np

from .activation import ReLU
from .container import Sequential
from .conv import Conv2d
from .norm import BatchNorm2d


class VGGStage(Sequential):
    """``num_convs`` times (Conv2d 3x3 pad 1 -> BatchNorm2d -> ReLU), then ``attention`` if given.

    Args:
        in_channels, out_channels: channels in and out (every conv but the first
            maps out_channels -> out_channels).
        num_convs: convolutions in the stage (2 or 3 in VGG-16).
        attention: an ``SEBlock`` over ``out_channels`` channels, or None.
        dtype, rng: parameter dtype and initialisation seed/generator.

    Shapes: x (N, in_channels, H, W) -> (N, out_channels, H, W) (no pooling here).
    """

    def __init__(self, in_channels, out_channels, num_convs, attention=None, dtype=np.float32,
                 rng=None):
        if num_convs < 1:
            raise ValueError(f"num_convs: expected at least 1, got {num_convs}")
        layers = []
        for index in range(num_convs):
            layers += [Conv2d(in_channels if index == 0 else out_channels, out_channels, 3,
                              padding=1, dtype=dtype, rng=rng),
                       BatchNorm2d(out_channels, dtype=dtype), ReLU()]
        if attention is not None:
            channels = getattr(attention, "channels", out_channels)
            if channels != out_channels:
                raise ValueError(f"attention: expected an SE block over {out_channels} channels, "
                                 f"got one over {channels}")
            layers.append(attention)
        super().__init__(*layers)
