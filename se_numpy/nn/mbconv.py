"""The blocks of the mobile SE networks (timm's names): depthwise-separable, inverted
residual (MBConv), conv-BN-activation, each a ``ResidualChain`` (``nn/chain.py``).

    DepthwiseSeparable   conv_dw k×k (groups = C) -> bn1 -> act -> [se] -> conv_pw 1x1 -> bn2 [-> act]
                         (MobileNet v1, the first block of MobileNetV3 and EfficientNet)
    InvertedResidual     conv_pw 1x1 (C -> mid) -> bn1 -> act -> conv_dw k×k (groups = mid)
                         -> bn2 -> act -> [se] -> conv_pwl 1x1 (mid -> out) -> bn3
                         (MobileNetV2/V3, EfficientNet: "MBConv", Sandler et al. 2018)
    ConvBnAct            conv k×k -> bn1 -> act   (MobileNetV3's last block; no skip)

A block adds its input back (``skip``) when stride is 1 and the channels do
not change, as timm's ``has_skip``; there is never a projection. The SE block
sits on the expanded (``mid``) channels, after the depthwise convolution,
where it reweights the channels the cheap depthwise step has just filtered
(Howard et al. 2019, Fig. 4; Tan & Le 2019). Its width is the model's rule:
MobileNetV3 ``make_divisible(mid / 4, 8)``, EfficientNet ``round(in / 4)``, from
the block's *input* width. The depthwise convolution is ``Conv2d`` with
groups = channels: each filter sees one channel, so its cost is k² · C per
pixel instead of k² · C².

Activations are separate children (``act1``, ``act2``) without parameters, so
the state-dict keys are exactly timm's (whose ``bn1`` holds its activation).
"""
import numpy as np

from .activation import HardSigmoid, HardSwish, ReLU, ReLU6, Sigmoid, SiLU
from .chain import ResidualChain
from .container import Identity
from .conv import Conv2d
from .norm import BatchNorm2d

ACTIVATION_MODULES = {"relu": ReLU, "relu6": ReLU6, "hard_swish": HardSwish, "silu": SiLU,
                      "sigmoid": Sigmoid, "hard_sigmoid": HardSigmoid, "identity": Identity}


def activation(name):
    """A fresh activation module by name (relu, relu6, hard_swish, silu, ...)."""
    if name not in ACTIVATION_MODULES:
        raise ValueError(f"activation: expected one of {tuple(ACTIVATION_MODULES)}, got {name!r}")
    return ACTIVATION_MODULES[name]()


def _depthwise(channels, kernel, stride, dtype, rng):
    return Conv2d(channels, channels, kernel, stride=stride, padding=kernel // 2, groups=channels,
                  bias=False, dtype=dtype, rng=rng)


def _pointwise(in_channels, out_channels, dtype, rng):
    return Conv2d(in_channels, out_channels, 1, bias=False, dtype=dtype, rng=rng)


def depthwise_separable(in_channels, out_channels, kernel=3, stride=1, act="relu", se=None,
                        pw_act=False, noskip=False, dtype=np.float32, rng=None):
    """DepthwiseSeparable (module docstring). ``se``: an SEBlock over in_channels, or None.

    ``pw_act``: an activation after bn2 too (MobileNet v1: yes; V3 and EfficientNet: no).
    Shapes: (N, in, H, W) -> (N, out, H/stride, W/stride).
    """
    branch = [("conv_dw", _depthwise(in_channels, kernel, stride, dtype, rng)),
              ("bn1", BatchNorm2d(in_channels, dtype=dtype)), ("act1", activation(act))]
    if se is not None:
        branch.append(("se", se))
    branch += [("conv_pw", _pointwise(in_channels, out_channels, dtype, rng)),
               ("bn2", BatchNorm2d(out_channels, dtype=dtype))]
    if pw_act:
        branch.append(("act2", activation(act)))
    skip = stride == 1 and in_channels == out_channels and not noskip
    return ResidualChain(branch, skip=skip)


def inverted_residual(in_channels, mid_channels, out_channels, kernel=3, stride=1, act="relu",
                      se=None, dtype=np.float32, rng=None):
    """InvertedResidual / MBConv (module docstring). ``se``: an SEBlock over mid_channels.

    Shapes: (N, in, H, W) -> (N, out, H/stride, W/stride).
    """
    branch = [("conv_pw", _pointwise(in_channels, mid_channels, dtype, rng)),
              ("bn1", BatchNorm2d(mid_channels, dtype=dtype)), ("act1", activation(act)),
              ("conv_dw", _depthwise(mid_channels, kernel, stride, dtype, rng)),
              ("bn2", BatchNorm2d(mid_channels, dtype=dtype)), ("act2", activation(act))]
    if se is not None:
        branch.append(("se", se))
    branch += [("conv_pwl", _pointwise(mid_channels, out_channels, dtype, rng)),
               ("bn3", BatchNorm2d(out_channels, dtype=dtype))]
    return ResidualChain(branch, skip=stride == 1 and in_channels == out_channels)


def conv_bn_act(in_channels, out_channels, kernel=1, stride=1, act="relu", dtype=np.float32,
                rng=None):
    """ConvBnAct: conv -> bn1 -> act, no skip (timm's default for this block)."""
    branch = [("conv", Conv2d(in_channels, out_channels, kernel, stride=stride,
                              padding=kernel // 2, bias=False, dtype=dtype, rng=rng)),
              ("bn1", BatchNorm2d(out_channels, dtype=dtype)), ("act1", activation(act))]
    return ResidualChain(branch, skip=False)
