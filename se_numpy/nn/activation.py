"""Element-wise activation modules: ``ReLU``, ``Sigmoid``, ``Tanh``, ``HardSigmoid``,
``ReLU6``, ``HardSwish``, ``SiLU``.

Math in functional/activation.py. They have no parameters and cost no
multiply-accumulates under the paper's FLOP convention.
"""
from ..functional.activation import get_activation
from .module import Module, _require_cache


class _Elementwise(Module):
    name = None

    def __init__(self):
        super().__init__()
        self._forward, self._backward = get_activation(self.name)

    def forward(self, x):
        y, self._cache = self._forward(x)
        return y

    def backward(self, dy):
        cache = _require_cache(self)
        return self._backward(dy, cache)

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def flops(self, input_shape):
        return 0


class ReLU(_Elementwise):
    """y = max(0, x); dx = dy · 1[x > 0]."""
    name = "relu"


class Sigmoid(_Elementwise):
    """y = 1/(1 + e^{-x}), computed without overflow; dx = dy · y(1 - y)."""
    name = "sigmoid"


class Tanh(_Elementwise):
    """y = tanh x; dx = dy · (1 - y²)."""
    name = "tanh"


class HardSigmoid(_Elementwise):
    """y = clip(x/6 + 1/2, 0, 1) (MobileNetV3); dx = dy/6 on (-3, 3)."""
    name = "hard_sigmoid"


class ReLU6(_Elementwise):
    """y = min(6, max(0, x)) (MobileNet v1/v2); dx = dy · 1[0 < x < 6]."""
    name = "relu6"


class HardSwish(_Elementwise):
    """y = x · clip(x/6 + 1/2, 0, 1) (MobileNetV3); dx = dy · (0 | (2x + 3)/6 | 1)."""
    name = "hard_swish"


class SiLU(_Elementwise):
    """y = x · σ(x) (EfficientNet's "swish"); dx = dy · σ(x)(1 + x(1 − σ(x)))."""
    name = "silu"
