"""Residual units whose 3x3 convolution is a Selective Kernel convolution (timm's ``sknet.py``).

SK does not sit beside a layer as SE does; it *replaces* the unit's 3x3
convolution (Li et al., CVPR 2019, Sec. 3.2: "SK units"), so the units are
the residual units of ``nn/residual.py`` with that one layer swapped:

    SelectiveKernelBasic       F(x) = conv2( SK(x) )                  (skresnet18/34)
                               conv1 = SK(in -> planes, stride s), conv2 = 3x3 conv + BN
    SelectiveKernelBottleneck  F(x) = conv3( SK( conv1(x) ) )         (skresnet50, skresnext50_32x4d)
                               conv1 = 1x1 + BN + ReLU, conv2 = SK(width, stride s, groups),
                               conv3 = 1x1 + BN

and out = ReLU(F(x) + shortcut(x)), the addition, shortcut and backward of
``ResidualBlock``. The SK layer carries its own BN and ReLU per branch. Keys
are timm's: ``conv1.paths.0.conv.weight``, ``conv2.conv.weight``, ``conv2.bn.*``,
``downsample.0/1``; an SE block (or another attention block) may still be
placed as in any residual unit (timm's ``attn_layer``).

``sk_options`` are timm's ``sk_kwargs`` (``rd_ratio``, ``rd_divisor``,
``split_input``, ``kernel_size``, ``keep_3x3``), passed to every SK layer.
"""
import numpy as np

from .residual import BasicBlock, Bottleneck, ResidualBlock
from .selective_kernel import SelectiveKernel, conv_norm_act


class SelectiveKernelBasic(ResidualBlock):
    """Basic unit with its first 3x3 replaced by SK: x (N, in, H, W) -> (N, planes, H/s, W/s)."""

    expansion = 1

    def __init__(self, in_channels, planes, stride=1, downsample=None, attention=None,
                 placement="standard", dtype=np.float32, rng=None, sk_options=None):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, planes, stride
        self.conv1 = SelectiveKernel(in_channels, planes, stride=stride, dtype=dtype, rng=rng,
                                     **(sk_options or {}))
        self.conv2 = conv_norm_act(planes, planes, 3, act=False, dtype=dtype, rng=rng)
        self._attach_attention(attention, placement,
                               self.attention_channels(in_channels, planes, placement))
        self.downsample = downsample

    branch_width = BasicBlock.__dict__["branch_width"]        # planes, as the basic unit's

    def _branch_forward(self, x):
        h = self.conv1(x)
        if self.se is not None and self.placement == "after_3x3":
            h = self.se(h)
        return self.conv2(h)

    def _branch_backward(self, du):
        dh = self.conv2.backward(du)
        if self.se is not None and self.placement == "after_3x3":
            dh = self.se.backward(dh)
        return self.conv1.backward(dh)

    def _branch_input_shapes(self, input_shape):
        after_sk = self.conv1.output_shape(input_shape)
        entries = [("conv1", input_shape)]
        if self.se is not None and self.placement == "after_3x3":
            entries.append(("se", after_sk))
        return entries + [("conv2", after_sk)]


class SelectiveKernelBottleneck(ResidualBlock):
    """Bottleneck with its 3x3 replaced by SK: x (N, in, H, W) -> (N, 4·planes, H/s, W/s).

    width = floor(planes · base_width / 64) · groups, as ``nn.residual.Bottleneck``;
    the stride sits on the SK layer (timm's rule), or on conv1 with ``stride_in_1x1``
    (the Caffe ResNets' rule, as ``Bottleneck`` allows).
    """

    expansion = 4

    def __init__(self, in_channels, planes, stride=1, downsample=None, groups=1, base_width=64,
                 stride_in_1x1=False, attention=None, placement="standard", dtype=np.float32,
                 rng=None, sk_options=None):
        super().__init__()
        width = self.branch_width(planes, groups, base_width)
        self.in_channels, self.out_channels, self.stride = in_channels, planes * 4, stride
        self.width, self.groups, self.stride_in_1x1 = width, groups, bool(stride_in_1x1)
        stride_1x1, stride_sk = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv_norm_act(in_channels, width, 1, stride=stride_1x1, dtype=dtype, rng=rng)
        self.conv2 = SelectiveKernel(width, width, stride=stride_sk, groups=groups, dtype=dtype,
                                     rng=rng, **(sk_options or {}))
        self.conv3 = conv_norm_act(width, planes * 4, 1, act=False, dtype=dtype, rng=rng)
        self._attach_attention(attention, placement, self.attention_channels(
            in_channels, planes, placement, groups, base_width))
        self.downsample = downsample

    branch_width = Bottleneck.__dict__["branch_width"]        # torchvision's width rule

    def _branch_forward(self, x):
        h = self.conv2(self.conv1(x))
        if self.se is not None and self.placement == "after_3x3":
            h = self.se(h)
        return self.conv3(h)

    def _branch_backward(self, du):
        dh = self.conv3.backward(du)
        if self.se is not None and self.placement == "after_3x3":
            dh = self.se.backward(dh)
        return self.conv1.backward(self.conv2.backward(dh))

    def _branch_input_shapes(self, input_shape):
        after_conv1 = self.conv1.output_shape(input_shape)
        after_sk = self.conv2.output_shape(after_conv1)
        entries = [("conv1", input_shape), ("conv2", after_conv1)]
        if self.se is not None and self.placement == "after_3x3":
            entries.append(("se", after_sk))
        return entries + [("conv3", after_sk)]


# the placement name of attention="sk" (``nn/attention.py``): SK takes the 3x3's place
REPLACE_3X3 = "replace_3x3"


def selective_kernel_unit(block):
    """The SK twin of a residual unit class: BasicBlock -> SelectiveKernelBasic, Bottleneck ->
    SelectiveKernelBottleneck (ValueError for a unit without a 3x3 to replace)."""
    twins = {BasicBlock: SelectiveKernelBasic, Bottleneck: SelectiveKernelBottleneck}
    if block not in twins:
        raise ValueError(f"attention 'sk' replaces the 3x3 of a BasicBlock or Bottleneck, "
                         f"got {block.__name__}")
    return twins[block]
