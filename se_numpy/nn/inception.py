"""An Inception module (Szegedy et al. 2015) with SE after the concatenation (SE-Inception, Fig. 2).

Four branches see the same input x and their outputs are stacked along channels:

    branch1x1   1x1 conv                                  -> c1 channels
    branch3x3   1x1 conv (reduce) -> 3x3 conv             -> c3 channels
    branch5x5   1x1 conv (reduce) -> 5x5 conv             -> c5 channels
    branch_pool 3x3 max pool (stride 1, pad 1) -> 1x1 conv -> cp channels
    u = concat(branches)                                   (N, c1+c3+c5+cp, H, W)
    out = SE(u)   (or u without attention)

every conv followed by BN and ReLU. In SE-Inception the Inception module is the
transformation F_tr of the SE block (paper Sec. 4): SE recalibrates the
concatenated channels, so it sees which branch's features matter for this image.

Backward: concatenation stacks channels, so its adjoint splits the gradient
back into the branches' channel ranges; x feeds all four branches, so the four
input gradients add:

    du = SE'ᵀ d_out,   du = [du_1 | du_3 | du_5 | du_p] (split along C)
    dx = Σ_b branch_b'ᵀ du_b
"""
import numpy as np

from .._validation import check_nchw
from .activation import ReLU
from .composed import ComposedCounting
from .container import Sequential
from .conv import Conv2d
from .module import Module, _require_cache
from .norm import BatchNorm2d
from .pool import MaxPool2d

BRANCHES = ("branch1x1", "branch3x3", "branch5x5", "branch_pool")


def conv_bn_relu(in_channels, out_channels, kernel_size, dtype=np.float32, rng=None):
    """Conv2d (same padding, no bias: BN has one) -> BatchNorm2d -> ReLU."""
    return Sequential(Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                             bias=False, dtype=dtype, rng=rng),
                      BatchNorm2d(out_channels, dtype=dtype), ReLU())


class InceptionModule(ComposedCounting, Module):
    """GoogLeNet-style Inception module with an optional SE block after the concatenation.

    Args:
        in_channels: channels of x.
        ch1x1: output channels of the 1x1 branch.
        ch3x3_reduce, ch3x3: the 3x3 branch's reduction and output channels.
        ch5x5_reduce, ch5x5: the 5x5 branch's reduction and output channels.
        pool_proj: output channels of the pooling branch's 1x1 projection.
        attention: an ``SEBlock`` over ch1x1+ch3x3+ch5x5+pool_proj channels, or None.
        dtype, rng: parameter dtype and initialisation seed/generator.

    Shapes: x (N, in_channels, H, W) -> (N, ch1x1+ch3x3+ch5x5+pool_proj, H, W).
    """

    def __init__(self, in_channels, ch1x1, ch3x3_reduce, ch3x3, ch5x5_reduce, ch5x5, pool_proj,
                 attention=None, dtype=np.float32, rng=None):
        super().__init__()
        self.in_channels = int(in_channels)
        self.branch_channels = (ch1x1, ch3x3, ch5x5, pool_proj)
        self.out_channels = int(sum(self.branch_channels))
        self.branch1x1 = conv_bn_relu(in_channels, ch1x1, 1, dtype, rng)
        self.branch3x3 = Sequential(*conv_bn_relu(in_channels, ch3x3_reduce, 1, dtype, rng),
                                    *conv_bn_relu(ch3x3_reduce, ch3x3, 3, dtype, rng))
        self.branch5x5 = Sequential(*conv_bn_relu(in_channels, ch5x5_reduce, 1, dtype, rng),
                                    *conv_bn_relu(ch5x5_reduce, ch5x5, 5, dtype, rng))
        self.branch_pool = Sequential(MaxPool2d(3, stride=1, padding=1),
                                      *conv_bn_relu(in_channels, pool_proj, 1, dtype, rng))
        if attention is not None and getattr(attention, "channels", self.out_channels) \
                != self.out_channels:
            raise ValueError(f"attention: expected an SE block over {self.out_channels} "
                             f"channels, got one over {attention.channels}")
        self.se = attention

    def forward(self, x):
        check_nchw(x, "x", channels=self.in_channels)
        u = np.concatenate([getattr(self, name)(x) for name in BRANCHES], axis=1)
        self._cache = True   # marks that forward ran; the children keep what they need
        return self.se(u) if self.se is not None else u

    def backward(self, dout):
        _require_cache(self)
        du = self.se.backward(dout) if self.se is not None else dout
        boundaries = np.cumsum(self.branch_channels)[:-1]
        pieces = np.split(du, boundaries, axis=1)
        dx = None
        for name, piece in zip(BRANCHES, pieces):
            d_branch = getattr(self, name).backward(np.ascontiguousarray(piece))
            dx = d_branch if dx is None else dx + d_branch
        return dx

    def output_shape(self, input_shape):
        n, channels, height, width = input_shape
        if channels != self.in_channels:
            raise ValueError(f"input_shape: expected (N, {self.in_channels}, H, W), "
                             f"got {tuple(input_shape)}")
        return (n, self.out_channels, height, width)

    def child_input_shapes(self, input_shape):
        entries = [(name, tuple(input_shape)) for name in BRANCHES]
        if self.se is not None:
            entries.append(("se", self.output_shape(input_shape)))
        return entries

    def extra_repr(self):
        return f"in_channels={self.in_channels}, branch_channels={self.branch_channels}"
