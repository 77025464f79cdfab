"""``Dropout`` as ``torch.nn.Dropout`` (Srivastava et al. 2014), with a seeded generator.

Train mode: each entry is kept with probability 1 − p and scaled by 1/(1 − p),
so the expected output equals the input ("inverted" dropout; nothing to
rescale at test time)::

    m ~ Bernoulli(1 − p) entry-wise,   y = x · m / (1 − p),   dx = dy · m / (1 − p)

Eval mode: y = x and dx = dy. The mask is drawn from the module's own
``numpy.random.Generator`` (``seed``), so a training run is reproducible. timm
applies dropout with rate ``drop_rate`` just before the classifier.
"""
import numpy as np

from .._validation import check_float_array
from .init import as_generator
from .module import Module, _require_cache


class Dropout(Module):
    """Zero each entry with probability ``p`` in train mode; identity in eval mode.

    Shapes: any float array -> the same shape and dtype.
    """

    def __init__(self, p=0.5, seed=0):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise ValueError(f"p: expected a probability in [0, 1), got {p!r}")
        self.p = float(p)
        self.generator = as_generator(seed)

    def forward(self, x):
        check_float_array(x, "x")
        if not self.training or self.p == 0:
            self._cache = "identity"
            return x
        keep = self.generator.random(x.shape) >= self.p
        scale = keep * x.dtype.type(1 / (1 - self.p))
        self._cache = scale
        return x * scale

    def backward(self, dy):
        scale = _require_cache(self)
        if isinstance(scale, str):
            return dy
        if dy.shape != scale.shape:
            raise ValueError(f"dy: expected shape {scale.shape} (the forward input's), "
                             f"got {dy.shape}")
        return dy * scale

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def flops(self, input_shape):
        return 0

    def extra_repr(self):
        return f"p={self.p}"
