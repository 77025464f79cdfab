"""``Conv2d``: 2-d convolution as ``torch.nn.Conv2d`` (math in functional/conv.py)."""
import numpy as np

from .._validation import check_nchw, check_same_dtype
from ..functional.conv import as_pair, conv2d_backward, conv2d_forward, conv2d_output_shape
from .init import as_generator, uniform_fan_in
from .module import Module, _require_cache
from .parameter import Parameter


class Conv2d(Module):
    """2-d convolution over NCHW maps. weight (out, in/groups, kh, kw), bias (out,).

    Initialised as PyTorch does (kaiming_uniform with a = sqrt(5)):
    U(−1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias, fan_in = in/groups·kh·kw.
    ``rng`` is a ``numpy.random.Generator``, an int seed, or None for the shared
    generator of ``se_numpy.nn.init`` (seeded with ``init.DEFAULT_SEED``).

    ``needs_input_grad`` (True): with False, ``backward`` accumulates the
    parameters' gradients and returns None, without computing dx (a network's
    first convolution, whose input is the data; PyTorch skips dx there too).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, dtype=np.float32, rng=None):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups: expected a divisor of in_channels ({in_channels}) and "
                             f"out_channels ({out_channels}), got {groups}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = as_pair(kernel_size, "kernel_size", 1)
        self.stride = as_pair(stride, "stride", 1)
        self.padding = as_pair(padding, "padding", 0)
        self.dilation = as_pair(dilation, "dilation", 1)
        self.groups = int(groups)

        fan_in = in_channels // groups * self.kernel_size[0] * self.kernel_size[1]
        generator = as_generator(rng)   # one stream, so weight and bias get different numbers
        weight_shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(uniform_fan_in(weight_shape, fan_in, generator, dtype))
        self.bias = Parameter(uniform_fan_in((out_channels,), fan_in, generator, dtype)) \
            if bias else None
        self.needs_input_grad = True

    def forward(self, x):
        check_nchw(x, "x", channels=self.in_channels)
        check_same_dtype(self.weight.data, x, "Conv2d.weight", "x")
        bias = self.bias.data if self.bias is not None else None
        out, self._cache = conv2d_forward(x, self.weight.data, bias, self.stride, self.padding,
                                          self.dilation, self.groups)
        return out

    def backward(self, dy):
        dx, dweight, dbias = conv2d_backward(dy, _require_cache(self), self.needs_input_grad)
        self.weight.accumulate(dweight)
        if self.bias is not None:
            self.bias.accumulate(dbias)
        return dx

    def output_shape(self, input_shape):
        return conv2d_output_shape(input_shape, self.weight.shape, self.stride, self.padding,
                                   self.dilation)

    def flops(self, input_shape):
        """Multiply-accumulates: N·OH·OW·out·(in/groups)·kh·kw (the bias adds are not counted)."""
        n, out_channels, out_height, out_width = self.output_shape(input_shape)
        per_output = self.in_channels // self.groups * self.kernel_size[0] * self.kernel_size[1]
        return int(n * out_height * out_width * out_channels * per_output)

    def extra_repr(self):
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text
