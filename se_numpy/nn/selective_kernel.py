"""``SelectiveKernel``: the Selective Kernel convolution (Li et al., CVPR 2019), timm's keys.

    sk = SelectiveKernel(64, 128, stride=2)     # two 3x3 branches, dilations 1 and 2
    v = sk(x)                                   # Σ_p a_p ⊙ U_p, a = softmax over branches
    dx = sk.backward(dv)

State-dict keys and shapes are timm's ``SelectiveKernel``:

    paths.{p}.conv.weight (out, in/P/groups, 3, 3)   (in/P with split_input)
    paths.{p}.bn.*                                   BN after each branch, then ReLU
    attn.fc_reduce.weight (A, out, 1, 1)             no bias
    attn.bn.*                                        BN on the (N, A, 1, 1) descriptor
    attn.fc_select.weight (P·out, A, 1, 1)           no bias

timm's changes to the paper, kept so its weights load: ``keep_3x3`` turns a
k×k branch into a 3x3 with dilation (k − 1)/2 (the paper's Table 1 does the
same for its 5x5); ``split_input`` feeds each branch its own 1/P of the input
channels, which keeps the parameters near a plain 3x3 convolution's. The math
is in ``functional/selective_kernel.py``.
"""
import numpy as np

from .._validation import check_nchw
from ..functional.se import make_divisible
from ..functional.selective_kernel import (path_softmax_backward, path_softmax_forward,
                                           path_squeeze_backward, path_squeeze_forward,
                                           select_backward, select_forward)
from .activation import ReLU
from .chain import NamedSequential
from .conv import Conv2d
from .container import Sequential
from .module import Module, _require_cache
from .norm import BatchNorm2d


def branch_kernels(kernel_size, dilation=1, keep_3x3=True):
    """([kernel per branch], [dilation per branch]) by timm's rule; default one 3x3, one 5x5."""
    kernels = kernel_size or [3, 5]
    kernels = list(kernels) if isinstance(kernels, (list, tuple)) else [kernels] * 2
    if any(isinstance(k, bool) or not isinstance(k, int) or k < 3 or k % 2 == 0 for k in kernels):
        raise ValueError(f"kernel_size: expected odd kernel sizes >= 3, got {kernel_size!r}")
    if keep_3x3:
        return [3] * len(kernels), [dilation * (k - 1) // 2 for k in kernels]
    return kernels, [dilation] * len(kernels)


def conv_norm_act(in_channels, out_channels, kernel, stride=1, dilation=1, groups=1,
                  act=True, dtype=np.float32, rng=None):
    """timm's ``ConvNormAct``: conv (no bias, "same" padding) -> bn -> ReLU (keys conv, bn)."""
    padding = ((stride - 1) + dilation * (kernel - 1)) // 2
    layers = {"conv": Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding,
                             dilation=dilation, groups=groups, bias=False, dtype=dtype, rng=rng),
              "bn": BatchNorm2d(out_channels, dtype=dtype)}
    if act:
        layers["act"] = ReLU()
    return NamedSequential.of(**layers)


class SelectiveKernelAttn(Module):
    """The attention of the paper's Fuse and Select steps: P maps -> a (N, P, C).

    z = path-summed squeeze, t = ReLU(BN(fc_reduce z)), a = softmax_p(fc_select t).
    Its backward returns the one gradient map that every path receives through z.
    """

    def __init__(self, channels, num_paths=2, attn_channels=32, dtype=np.float32, rng=None):
        super().__init__()
        self.channels, self.num_paths = int(channels), int(num_paths)
        self.fc_reduce = Conv2d(channels, attn_channels, 1, bias=False, dtype=dtype, rng=rng)
        self.bn = BatchNorm2d(attn_channels, dtype=dtype)
        self.act = ReLU()
        self.fc_select = Conv2d(attn_channels, channels * num_paths, 1, bias=False, dtype=dtype,
                                rng=rng)

    def forward(self, paths):
        z, squeeze_cache = path_squeeze_forward(paths)
        t = self.act(self.bn(self.fc_reduce(z[:, :, None, None])))
        logits = self.fc_select(t)[:, :, 0, 0]
        attention, softmax_cache = path_softmax_forward(logits, self.num_paths)
        self._cache = (squeeze_cache, softmax_cache)
        return attention

    def backward(self, dattention):
        squeeze_cache, softmax_cache = _require_cache(self)
        dlogits = path_softmax_backward(dattention, softmax_cache)[:, :, None, None]
        dz = self.fc_reduce.backward(self.bn.backward(self.act.backward(
            self.fc_select.backward(dlogits))))
        return path_squeeze_backward(dz[:, :, 0, 0], squeeze_cache)

    def flops(self, map_shape):
        """P·C·H·W adds for the fuse, then the two FC layers on one vector per sample."""
        n, c, height, width = map_shape
        vector = (n, c, 1, 1)
        return int(self.num_paths * n * c * height * width + self.fc_reduce.flops(vector)
                   + self.fc_select.flops(self.fc_reduce.output_shape(vector)))


class SelectiveKernel(Module):
    """Selective Kernel convolution, V = Σ_p a_p ⊙ U_p with U_p = ReLU(BN(conv_p(x_p))).

    Args (timm's names):
        in_channels, out_channels: channels of x and of V (out defaults to in).
        kernel_size: kernel of each branch, an int (two branches) or a list; default [3, 5].
        stride, dilation, groups: of every branch's convolution (dilation multiplies
            each branch's own).
        rd_ratio, rd_channels, rd_divisor: width A of the attention,
            rd_channels or make_divisible(out · rd_ratio, rd_divisor).
        keep_3x3: k×k branches become 3x3 with dilation (k − 1)/2.
        split_input: branch p sees input channels p·in/P .. (p+1)·in/P only.
        dtype, rng: parameter dtype and seed/generator.

    Shapes: x (N, in, H, W) -> V (N, out, H/stride, W/stride).
    """

    def __init__(self, in_channels, out_channels=None, kernel_size=None, stride=1, dilation=1,
                 groups=1, rd_ratio=1. / 16, rd_channels=None, rd_divisor=8, keep_3x3=True,
                 split_input=True, dtype=np.float32, rng=None):
        super().__init__()
        out_channels = out_channels or in_channels
        kernels, dilations = branch_kernels(kernel_size, dilation, keep_3x3)
        self.num_paths = len(kernels)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.split_input = bool(split_input)
        if split_input and in_channels % self.num_paths:
            raise ValueError(f"in_channels: split_input needs a multiple of the {self.num_paths} "
                             f"branches, got {in_channels}")
        path_in = in_channels // self.num_paths if split_input else in_channels
        groups = min(out_channels, groups)
        self.paths = Sequential(*[conv_norm_act(path_in, out_channels, k, stride, d, groups,
                                                dtype=dtype, rng=rng)
                                  for k, d in zip(kernels, dilations)])
        attn_channels = rd_channels or make_divisible(out_channels * rd_ratio, rd_divisor)
        self.attn = SelectiveKernelAttn(out_channels, self.num_paths, attn_channels, dtype, rng)

    def _path_inputs(self, x):
        if not self.split_input:
            return [x] * self.num_paths
        width = self.in_channels // self.num_paths
        return [x[:, p * width:(p + 1) * width] for p in range(self.num_paths)]

    def forward(self, x):
        check_nchw(x, channels=self.in_channels)
        paths = [path(np.ascontiguousarray(part))
                 for path, part in zip(self.paths, self._path_inputs(x))]
        out, self._cache = select_forward(paths, self.attn(paths))
        return out

    def backward(self, dout):
        """Each branch gets dV ⊙ a_p plus the shared dz/(HW) from the attention; the input
        gradients of the branches are concatenated (split_input) or added (shared input)."""
        dpaths, dattention = select_backward(dout, _require_cache(self))
        through_attention = self.attn.backward(dattention)
        dinputs = [path.backward(dpath + through_attention)
                   for path, dpath in zip(self.paths, dpaths)]
        return np.concatenate(dinputs, axis=1) if self.split_input else sum(dinputs)

    def output_shape(self, input_shape):
        n, _, height, width = input_shape
        path_input = (n, self.in_channels // self.num_paths if self.split_input
                      else self.in_channels, height, width)
        return self.paths[0].output_shape(path_input)

    def flops(self, input_shape):
        """The branches' convolutions, the attention, and P·C·H·W for the weighted sum."""
        n, _, height, width = input_shape
        path_input = (n, self.in_channels // self.num_paths if self.split_input
                      else self.in_channels, height, width)
        out_shape = self.output_shape(input_shape)
        return int(sum(path.flops(path_input) for path in self.paths)
                   + self.attn.flops(out_shape) + self.num_paths * int(np.prod(out_shape)))

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, paths={self.num_paths}, "
                f"split_input={self.split_input}")
