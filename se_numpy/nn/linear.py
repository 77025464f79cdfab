"""``Linear``: y = x Wᵀ + b, as ``torch.nn.Linear`` (math in functional/linear.py)."""
import numpy as np

from ..functional.linear import linear_backward, linear_forward
from .init import as_generator, uniform_fan_in
from .module import Module, _require_cache
from .parameter import Parameter


class Linear(Module):
    """Fully connected layer. weight (out_features, in_features), bias (out_features,).

    Initialised as PyTorch does: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32, rng=None):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        rng = as_generator(rng)          # one generator, so bias numbers differ from weight numbers
        self.weight = Parameter(uniform_fan_in((out_features, in_features), in_features, rng, dtype))
        self.bias = Parameter(uniform_fan_in((out_features,), in_features, rng, dtype)) if bias else None

    def forward(self, x):
        bias = self.bias.data if self.bias is not None else None
        y, self._cache = linear_forward(x, self.weight.data, bias)
        return y

    def backward(self, dy):
        dx, dweight, dbias = linear_backward(dy, _require_cache(self))
        self.weight.accumulate(dweight)
        if self.bias is not None:
            self.bias.accumulate(dbias)
        return dx

    def output_shape(self, input_shape):
        return (input_shape[0], self.out_features)

    def flops(self, input_shape):
        """Multiply-accumulates: one per weight per sample."""
        return int(input_shape[0]) * self.in_features * self.out_features

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, " \
               f"bias={self.bias is not None}"
