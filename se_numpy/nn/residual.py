"""Residual units with an optional SE block placed in any of the paper's positions.

A residual unit computes (He et al. 2016; SE paper Sec. 4, Fig. 3)

    out = ReLU( F(x) + shortcut(x) )

where F is the *residual branch* (two 3x3 convolutions in ``BasicBlock``;
1x1 -> 3x3 -> 1x1 in ``Bottleneck``) and ``shortcut`` is the identity, or a
projection ``downsample = Sequential(Conv2d 1x1 stride s, BatchNorm2d)``
(children ``downsample.0`` and ``downsample.1``) when the shape changes.

Where the SE block goes (``placement``; paper Sec. 6.4 "Integration
strategy", Fig. 5, Tables 14 and 15), with SE(v) = s(v) · v:

    "standard"   out = ReLU( SE(F(x)) + shortcut(x) )          Fig. 5(b), Fig. 3
    "pre"        out = ReLU( F(SE(x)) + shortcut(x) )          Fig. 5(c) SE-PRE
    "post"       out = SE( ReLU( F(x) + shortcut(x) ) )        Fig. 5(d) SE-POST
    "identity"   out = ReLU( F(x) + SE(shortcut(x)) )          Fig. 5(e) SE-Identity
    "after_3x3"  SE right after the 3x3 convolution's BN+ReLU,
                 inside F                                       Table 15 (SE_3x3)

In "standard" the scale and the addition are fused into one pass with the SE
block's ``forward_add`` (Caffe SENet's "Axpy" layer): s·u + shortcut. Any other
shape-preserving attention block (``nn/attention.py``: ECA, CBAM, ...) sits in
the same places; one without ``forward_add`` runs as attention(u) + shortcut.

Backward (written out once in ``ResidualBlock.backward``). With
pre = F(x) + shortcut(x) and out = ReLU(pre), the addition copies the gradient
to both branches, and x feeds both, so the two contributions add:

    d_pre      = d_out · 1[pre > 0]
    dx         = F'(x)ᵀ d_pre + shortcut'(x)ᵀ d_pre

Each placement only inserts SE's own backward at the point where SE sits.
"""
import numpy as np

from ..functional.activation import relu_forward
from ..functional.residual import add_relu_forward, relu_output_backward
from .._validation import check_nchw
from .composed import ComposedCounting
from .container import Identity, Sequential
from .conv import Conv2d
from .module import Module, _require_cache
from .norm import BatchNorm2d
from .pool import AvgPool2d

PLACEMENTS = ("standard", "pre", "post", "identity", "after_3x3")


def check_placement(placement):
    """Raise ValueError unless ``placement`` is one of ``PLACEMENTS``."""
    if placement not in PLACEMENTS:
        raise ValueError(f"placement: expected one of {PLACEMENTS}, got {placement!r}")
    return placement


def projection_shortcut(in_channels, out_channels, stride, dtype=np.float32, rng=None,
                        kernel_size=1):
    """The shortcut used when the shape changes (He et al.'s option B): 1x1 conv + BN.

    ``kernel_size=3`` (padding 1) is SENet-154's: its stages 2-4 project with a
    3x3 convolution of stride 2, so the shortcut sees every pixel, not one in four.
    """
    return Sequential(Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                             padding=kernel_size // 2, bias=False, dtype=dtype, rng=rng),
                      BatchNorm2d(out_channels, dtype=dtype))


def avg_pool_shortcut(in_channels, out_channels, stride, dtype=np.float32, rng=None):
    """The "d" ResNets' shortcut (He et al. 2019, "Bag of Tricks", ResNet-D):

        downsample.0  AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)
                      (Identity when stride is 1)
        downsample.1  Conv2d 1x1, stride 1
        downsample.2  BatchNorm2d

    A strided 1x1 convolution reads one pixel in four and drops the rest; averaging
    first lets every pixel reach the shortcut. Keys as timm's ``resnet50d``.
    """
    pool = Identity() if stride == 1 else AvgPool2d(2, stride, ceil_mode=True,
                                                    count_include_pad=False)
    return Sequential(pool, Conv2d(in_channels, out_channels, 1, bias=False, dtype=dtype, rng=rng),
                      BatchNorm2d(out_channels, dtype=dtype))


class ResidualBlock(ComposedCounting, Module):
    """The wiring shared by every residual unit: shortcut, addition, final ReLU, SE placement.

    A subclass builds its convolutions and implements ``_branch_forward(x)``,
    ``_branch_backward(du)`` (the residual branch F; it applies the SE block
    itself when placement is "after_3x3") and ``_branch_input_shapes``.
    """

    expansion = 1
    attention_name = "se"      # the SE block's state-dict name; the original SENets: se_module

    def _attach_attention(self, attention, placement, expected_channels):
        """Store the SE block (or None) after checking it fits where it goes."""
        check_placement(placement)
        self.placement = placement
        if attention is None:
            object.__setattr__(self, "se", None)
            return
        if not (hasattr(attention, "forward") and hasattr(attention, "backward")):
            raise TypeError(f"attention: expected an SEBlock or None (or another attention "
                            f"module of nn/attention.py), got {type(attention).__name__}")
        channels = getattr(attention, "channels", expected_channels)
        if channels != expected_channels:
            raise ValueError(f"attention: placement {placement!r} needs an SE block over "
                             f"{expected_channels} channels, got one over {channels}")
        setattr(self, self.attention_name, attention)      # registered under its key name
        object.__setattr__(self, "se", attention)          # the name the code reads

    @classmethod
    def attention_channels(cls, in_channels, planes, placement, groups=1, base_width=64):
        """Channels the SE block sees at ``placement`` (to build it before the block)."""
        check_placement(placement)
        if placement == "pre":
            return in_channels
        if placement == "after_3x3":
            return cls.branch_width(planes, groups, base_width)
        return planes * cls.expansion

    # ---------------------------------------------------------------- forward
    def forward(self, x):
        check_nchw(x, channels=self.in_channels)
        placement, se = self.placement, self.se
        shortcut = x if self.downsample is None else self.downsample(x)

        branch_input = se(x) if (se is not None and placement == "pre") else x
        u = self._branch_forward(branch_input)

        # out = ReLU(pre-activation), the addition and the ReLU in one pass; the backward
        # reads ReLU's mask off ``out`` (functional/residual.py), so no mask is stored
        # (the block runs its forward hooks in every variant: observers see each call)
        if se is not None and placement == "standard" and hasattr(se, "forward_add_relu"):
            out = se.forward_add_relu(u, shortcut)          # max(s·u + shortcut, 0)
        elif se is not None and placement == "standard" and hasattr(se, "forward_add"):
            out = relu_forward(se.forward_add(u, shortcut))[0]
        elif se is not None and placement == "standard":
            out = add_relu_forward(se(u), shortcut)[0]
        elif se is not None and placement == "identity":
            out = add_relu_forward(u, se(shortcut))[0]
        else:
            out = add_relu_forward(u, shortcut)[0]
        self._cache = out

        if se is not None and placement == "post":
            out = se(out)
        return out

    # ---------------------------------------------------------------- backward
    def backward(self, dout):
        """dL/dx, accumulating every parameter's gradient; the steps of forward, reversed.

        d_pre      = d_out · 1[pre > 0]     (through SE first when placement is "post")
        du         = d_pre                  (or SE's backward_add in "standard")
        d_shortcut = d_pre                  (or through SE in "identity")
        dx         = F'ᵀ du (through SE last in "pre") + downsample'ᵀ d_shortcut
        """
        relu_output = _require_cache(self)
        placement, se = self.placement, self.se

        if se is not None and placement == "post":
            dout = se.backward(dout)
        d_pre = relu_output_backward(dout, relu_output)

        if se is not None and placement == "standard" and hasattr(se, "backward_add"):
            du, d_shortcut = se.backward_add(d_pre)
        elif se is not None and placement == "standard":
            du, d_shortcut = se.backward(d_pre), d_pre
        elif se is not None and placement == "identity":
            du, d_shortcut = d_pre, se.backward(d_pre)
        else:
            du, d_shortcut = d_pre, d_pre

        dx = self._branch_backward(du)
        if se is not None and placement == "pre":
            dx = se.backward(dx)
        if self.downsample is not None:
            d_shortcut = self.downsample.backward(d_shortcut)
        if dx is d_shortcut or not dx.flags.writeable:
            return dx + d_shortcut
        return np.add(dx, d_shortcut, out=dx)      # dx is the branch's fresh array: no new one

    # ---------------------------------------------------------------- counting
    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) != 4 or shape[1] != self.in_channels:
            raise ValueError(f"input_shape: expected (N, {self.in_channels}, H, W), got {shape}")
        for name, child_shape in self._branch_input_shapes(shape):
            shape = getattr(self, name).output_shape(child_shape)
        return tuple(shape)

    def child_input_shapes(self, input_shape):
        """(child name, input shape) for every child, in execution order."""
        input_shape = tuple(input_shape)
        out_shape = self.output_shape(input_shape)
        entries = []
        if self.downsample is not None:
            entries.append(("downsample", input_shape))
        if self.se is not None and self.placement == "pre":
            entries.append(("se", input_shape))
        entries.extend(self._branch_input_shapes(input_shape))
        if self.se is not None and self.placement in ("standard", "identity", "post"):
            entries.append(("se", out_shape))
        return entries

    def extra_repr(self):
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"stride={self.stride}, placement={self.placement!r}")


class BasicBlock(ResidualBlock):
    """Two 3x3 convolutions (ResNet-18/34 and the CIFAR ResNets).

        F(x) = BN2( conv2( ReLU( BN1( conv1(x) ) ) ) )       conv1 3x3 stride s, conv2 3x3

    Args:
        in_channels: channels of x.
        planes: channels of both convolutions (and of the output; expansion 1).
        stride: stride of conv1 (2 where a stage halves the resolution).
        downsample: the projection shortcut, or None for the identity.
        attention: an ``SEBlock`` over ``attention_channels(...)`` channels, or None.
        placement: where SE goes (see the module docstring). "after_3x3" puts it
            after the first convolution's BN+ReLU, the only point between the two.
        relu_before_se: apply a ReLU to BN2's output, before SE and the addition, as
            the original SENets' basic block (SE-ResNet-18/34) does:
            F(x) = ReLU( BN2( conv2( ReLU( BN1( conv1(x) ) ) ) ) ).

    Shapes: x (N, in_channels, H, W) -> (N, planes, H/s, W/s).
    State-dict names follow torchvision: conv1, bn1, conv2, bn2, se, downsample.0/1.
    """

    expansion = 1

    def __init__(self, in_channels, planes, stride=1, downsample=None, attention=None,
                 placement="standard", dtype=np.float32, rng=None, relu_before_se=False):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, planes, stride
        self.relu_before_se = bool(relu_before_se)
        self.conv1 = Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=False,
                            dtype=dtype, rng=rng)
        self.bn1 = BatchNorm2d(planes, dtype=dtype)
        self.conv2 = Conv2d(planes, planes, 3, padding=1, bias=False, dtype=dtype, rng=rng)
        self.bn2 = BatchNorm2d(planes, dtype=dtype)
        self._attach_attention(attention, placement,
                               self.attention_channels(in_channels, planes, placement))
        self.downsample = downsample

    @classmethod
    def branch_width(cls, planes, groups=1, base_width=64):
        return planes

    # Every BN → ReLU pair runs as one pass (``forward_relu``); the BN's backward
    # goes back through its ReLU too.
    def _branch_forward(self, x):
        h = self.bn1.forward_relu(self.conv1(x))
        if self.se is not None and self.placement == "after_3x3":
            h = self.se(h)
        if self.relu_before_se:
            return self.bn2.forward_relu(self.conv2(h))
        return self.bn2(self.conv2(h))

    def _branch_backward(self, du):
        dh = self.conv2.backward(self.bn2.backward(du))
        if self.se is not None and self.placement == "after_3x3":
            dh = self.se.backward(dh)
        return self.conv1.backward(self.bn1.backward(dh))

    def _branch_input_shapes(self, input_shape):
        after_conv1 = self.conv1.output_shape(input_shape)
        entries = [("conv1", input_shape), ("bn1", after_conv1)]
        if self.se is not None and self.placement == "after_3x3":
            entries.append(("se", after_conv1))
        entries += [("conv2", after_conv1), ("bn2", self.conv2.output_shape(after_conv1))]
        return entries


class Bottleneck(ResidualBlock):
    """1x1 reduce -> 3x3 (grouped for ResNeXt) -> 1x1 expand (ResNet-50/101/152, ResNeXt).

        F(x) = BN3( conv3( ReLU( BN2( conv2( ReLU( BN1( conv1(x) ) ) ) ) ) ) )

    Widths: conv1 in_channels -> width, conv2 width -> width (``groups`` groups),
    conv3 width -> 4·planes, with width = floor(planes · base_width / 64) · groups
    (torchvision's rule; ResNeXt-50 32x4d is groups=32, base_width=4).
    ``widths=(w1, w3x3)`` sets the two directly: SENet-154's bottleneck widens
    inside the 3x3, conv1 -> 2·planes, conv2 2·planes -> 4·planes (64 groups).

    ``stride_in_1x1``: the original Caffe ResNet and the paper's SE-ResNet put
    the stride s on conv1 (1x1); torchvision and timm put it on conv2 (3x3). The
    stride on the 1x1 makes the 3x3 run at the lower resolution, which is why
    ResNet-50 costs 3.86 GFLOPs in the paper's Table 2 and 4.09 in torchvision.

    Shapes: x (N, in_channels, H, W) -> (N, 4·planes, H/s, W/s).
    State-dict names follow torchvision/timm: conv1..3, bn1..3, se, downsample.0/1.
    """

    expansion = 4

    def __init__(self, in_channels, planes, stride=1, downsample=None, groups=1, base_width=64,
                 stride_in_1x1=False, attention=None, placement="standard", dtype=np.float32,
                 rng=None, widths=None):
        super().__init__()
        width = self.branch_width(planes, groups, base_width)
        width, width_3x3 = (width, width) if widths is None else widths
        self.in_channels, self.out_channels, self.stride = in_channels, planes * 4, stride
        self.width, self.groups, self.stride_in_1x1 = width, groups, bool(stride_in_1x1)
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = Conv2d(in_channels, width, 1, stride=stride_1x1, bias=False, dtype=dtype,
                            rng=rng)
        self.bn1 = BatchNorm2d(width, dtype=dtype)
        self.conv2 = Conv2d(width, width_3x3, 3, stride=stride_3x3, padding=1, groups=groups,
                            bias=False, dtype=dtype, rng=rng)
        self.bn2 = BatchNorm2d(width_3x3, dtype=dtype)
        self.conv3 = Conv2d(width_3x3, planes * 4, 1, bias=False, dtype=dtype, rng=rng)
        self.bn3 = BatchNorm2d(planes * 4, dtype=dtype)
        self._attach_attention(attention, placement, self.attention_channels(
            in_channels, planes, placement, groups, base_width))
        self.downsample = downsample

    @classmethod
    def branch_width(cls, planes, groups=1, base_width=64):
        return int(planes * (base_width / 64.0)) * groups

    def _branch_forward(self, x):
        h1 = self.bn1.forward_relu(self.conv1(x))           # BN → ReLU fused, as in BasicBlock
        h2 = self.bn2.forward_relu(self.conv2(h1))
        if self.se is not None and self.placement == "after_3x3":
            h2 = self.se(h2)
        return self.bn3(self.conv3(h2))

    def _branch_backward(self, du):
        dh2 = self.conv3.backward(self.bn3.backward(du))
        if self.se is not None and self.placement == "after_3x3":
            dh2 = self.se.backward(dh2)
        dh1 = self.conv2.backward(self.bn2.backward(dh2))
        return self.conv1.backward(self.bn1.backward(dh1))

    def _branch_input_shapes(self, input_shape):
        after_conv1 = self.conv1.output_shape(input_shape)
        after_conv2 = self.conv2.output_shape(after_conv1)
        entries = [("conv1", input_shape), ("bn1", after_conv1),
                   ("conv2", after_conv1), ("bn2", after_conv2)]
        if self.se is not None and self.placement == "after_3x3":
            entries.append(("se", after_conv2))
        entries += [("conv3", after_conv2), ("bn3", self.conv3.output_shape(after_conv2))]
        return entries
