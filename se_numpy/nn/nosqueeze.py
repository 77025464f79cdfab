"""``NoSqueezeBlock``: the SE block's excitation without the squeeze (paper Sec. 7.1, Table 16).

    block = NoSqueezeBlock(channels=64, reduction=16)
    y = block(x)              # y = gate(W2 ReLU(W1 x)) · x at every position
    dx = block.backward(dy)   # adds dL/dW1, dL/db1, dL/dW2, dL/db2 into .grad

The two layers are 1x1 convolutions, stored as PyTorch's ``nn.Conv2d(C, C/r, 1)``
would store them: ``fc1.weight (hidden, C, 1, 1)``, ``fc1.bias (hidden,)``,
``fc2.weight (C, hidden, 1, 1)``, ``fc2.bias (C,)``: the same numbers of
parameters as ``SEBlock``. The math is in ``functional/nosqueeze.py``.
"""
import numpy as np

from .._validation import check_nchw
from ..functional.activation import ACTIVATIONS
from ..functional.nosqueeze import nosqueeze_backward, nosqueeze_forward
from ..functional.se import hidden_width
from .conv import Conv2d
from .module import Module, _require_cache


class NoSqueezeBlock(Module):
    """Per-position gates from 1x1 convolutions, no global pooling.

    Args:
        channels: C; reduction: r, hidden width max(1, C // r) as in ``SEBlock``.
        gate: "sigmoid" (the paper's), "tanh", "relu" or "hard_sigmoid".
        bias: whether the two convolutions have biases.
        dtype, rng: parameter dtype and seed/generator (PyTorch's Conv2d initialisation).

    Shapes: x (N, C, H, W) -> y (N, C, H, W). ``last_gates`` holds the gates
    s (N, C, H, W) of the last forward (``forward`` or ``forward_add``; both run the
    forward hooks).
    """

    def __init__(self, channels, reduction=16, gate="sigmoid", bias=True, dtype=np.float32,
                 rng=None):
        super().__init__()
        if gate not in ACTIVATIONS:
            raise ValueError(f"gate: expected one of {tuple(ACTIVATIONS)}, got {gate!r}")
        self.channels, self.reduction, self.gate = int(channels), reduction, gate
        self.hidden = hidden_width(self.channels, reduction)
        self.fc1 = Conv2d(self.channels, self.hidden, 1, bias=bias, dtype=dtype, rng=rng)
        self.fc2 = Conv2d(self.hidden, self.channels, 1, bias=bias, dtype=dtype, rng=rng)
        self.last_gates = None

    def _weights(self):
        bias1 = self.fc1.bias.data if self.fc1.bias is not None else None
        bias2 = self.fc2.bias.data if self.fc2.bias is not None else None
        return (self.fc1.weight.data.reshape(self.hidden, self.channels), bias1,
                self.fc2.weight.data.reshape(self.channels, self.hidden), bias2)

    def forward(self, x):
        check_nchw(x, channels=self.channels)
        y, self._cache = nosqueeze_forward(x, *self._weights(), gate=self.gate)
        self.last_gates = self._cache["s"]
        return y

    def backward(self, dy):
        dx, dw1, db1, dw2, db2 = nosqueeze_backward(dy, _require_cache(self))
        self.fc1.weight.accumulate(dw1.reshape(self.fc1.weight.shape))
        self.fc2.weight.accumulate(dw2.reshape(self.fc2.weight.shape))
        if self.fc1.bias is not None:
            self.fc1.bias.accumulate(db1)
        if self.fc2.bias is not None:
            self.fc2.bias.accumulate(db2)
        return dx

    # A residual unit with SE in the standard position calls the fused pair; here the
    # addition is simply done after the block (no fused kernel for per-position gates).
    def forward_add(self, x, shortcut):
        """out = block(x) + shortcut; the forward hooks see (x, shortcut) and out."""
        return self.run_forward_hooks((x, shortcut), self.forward(x) + shortcut)

    def backward_add(self, dout):
        """Backward of ``forward_add``: (dx, dshortcut); the addition passes dout to both."""
        return self.backward(dout), dout

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def flops(self, input_shape):
        """Multiply-accumulates: both 1x1 convolutions at every position (2·C·hidden·H·W),
        plus the scale (C·H·W), the convention of ``SEBlock.flops`` without the squeeze."""
        n, c, h, w = input_shape
        return int(n) * (2 * c * self.hidden * h * w + c * h * w)

    def extra_repr(self):
        return f"channels={self.channels}, hidden={self.hidden}, gate={self.gate!r}"
