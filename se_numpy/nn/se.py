"""``SEBlock``: the Squeeze-and-Excitation block as a module (Hu et al., Sec. 3, Fig. 1).

    se = SEBlock(channels=64, reduction=16)
    y = se(x)               # y = s · x with s = σ(W2 ReLU(W1 mean_ij(x)))
    dx = se.backward(dy)    # adds dL/dW1, dL/db1, dL/dW2, dL/db2 into .grad

Parameters use the names of PyTorch SE modules: ``fc1.weight``, ``fc1.bias
(hidden,)``, ``fc2.weight``, ``fc2.bias (C,)`` (timm's EfficientNet and
MobileNetV3 call them ``conv_reduce`` and ``conv_expand``: ``layer_names``).
The layers compute with (hidden, C) and (C, hidden) matrices, but
``state_dict()`` writes the weights as timm, torchvision and the original
SENet ports store them, as 1x1 convolutions of shape (out, in, 1, 1), so the
file loads into those as it is; ``load_state_dict`` accepts both shapes.
The math is in ``functional/se.py``.
"""
import numpy as np

from ..functional.se import (SQUEEZE_MODES, hidden_width, se_block_add_backward,
                             se_block_add_forward, se_block_backward, se_block_forward)
from ..functional.activation import ACTIVATIONS
from .._validation import check_nchw
from .linear import Linear
from .module import Module, _require_cache


class SELinear(Linear):
    """A ``Linear`` that also loads the (out, in, 1, 1) weights of an equivalent 1x1 convolution.

    A 1x1 convolution on a (N, C, 1, 1) map is exactly a linear layer, so the
    weights are the same numbers with two trailing unit axes.
    """

    def _adapt_loaded(self, name, value, expected_shape):
        if name == "weight" and value.shape == tuple(expected_shape) + (1, 1):
            return value.reshape(expected_shape)
        return value

    def _export_state(self, name, value):
        return value.reshape(value.shape + (1, 1)) if name == "weight" else value


class SEBlock(Module):
    """Squeeze-and-Excitation block.

    Args:
        channels: C, channels of the feature map.
        reduction: r, the reduction ratio; hidden width is max(1, C // r) (Sec. 3.2, Table 10).
        squeeze: "avg" (global average pooling, the paper's choice) or "max" (Table 11).
        gate: "sigmoid" (the paper's choice), "tanh", "relu" (Table 12) or "hard_sigmoid".
        hidden: explicit hidden width, overriding C // r (EfficientNet and RegNetY size
            it from the block's input, not from C).
        bias: whether fc1 and fc2 have biases (the paper's ablations ran without).
        activation: the non-linearity δ between fc1 and fc2: "relu" (the paper) or
            "silu" (EfficientNet).
        divisor, round_limit: round C / r with ``make_divisible`` (timm's SE-ResNets:
            divisor 8) instead of flooring it.
        layer_names: the state-dict names of the two layers, ("fc1", "fc2") or timm's
            ("conv_reduce", "conv_expand").
        inplace: in evaluation mode, let ``forward_add_relu`` (a residual unit's end) write
            its output over x, which is not read again there; a backward after such a
            forward raises (as ``torch.nn.ReLU(inplace=True)``, an inference-only saving).
        dtype, rng: parameter dtype and seed/generator for PyTorch-default initialisation.

    Shapes: x (N, C, H, W) -> y (N, C, H, W). After each forward (``forward``,
    ``forward_add`` or ``forward_add_relu``) ``last_gates`` holds the gates s (N, C),
    and the forward hooks (``register_forward_hook``) have run, for analyses such
    as the paper's Fig. 6 (``analysis.record_gates``).
    """

    def __init__(self, channels, reduction=16, squeeze="avg", gate="sigmoid", hidden=None,
                 bias=True, dtype=np.float32, rng=None, activation="relu", divisor=None,
                 round_limit=0.0, layer_names=("fc1", "fc2"), inplace=False):
        super().__init__()
        if squeeze not in SQUEEZE_MODES:
            raise ValueError(f"squeeze: expected one of {SQUEEZE_MODES}, got {squeeze!r}")
        for option, value in (("gate", gate), ("activation", activation)):
            if value not in ACTIVATIONS:
                raise ValueError(f"{option}: expected one of {tuple(ACTIVATIONS)}, got {value!r}")
        self.channels = int(channels)
        self.reduction = reduction
        self.hidden = int(hidden) if hidden is not None else hidden_width(
            self.channels, reduction, divisor, round_limit)
        if self.hidden < 1:
            raise ValueError(f"hidden: expected a width >= 1, got {hidden}")
        self.squeeze, self.gate, self.activation = squeeze, gate, activation
        fc1 = SELinear(self.channels, self.hidden, bias=bias, dtype=dtype, rng=rng)
        fc2 = SELinear(self.hidden, self.channels, bias=bias, dtype=dtype, rng=rng)
        # registered under the state-dict names; fc1/fc2 stay the names the code reads
        setattr(self, layer_names[0], fc1)
        setattr(self, layer_names[1], fc2)
        object.__setattr__(self, "fc1", fc1)
        object.__setattr__(self, "fc2", fc2)
        self.last_gates = None
        self.inplace = bool(inplace)

    def _weights(self):
        bias1 = self.fc1.bias.data if self.fc1.bias is not None else None
        bias2 = self.fc2.bias.data if self.fc2.bias is not None else None
        return self.fc1.weight.data, bias1, self.fc2.weight.data, bias2

    def _accumulate(self, dw1, db1, dw2, db2):
        self.fc1.weight.accumulate(dw1)
        self.fc2.weight.accumulate(dw2)
        if self.fc1.bias is not None:
            self.fc1.bias.accumulate(db1)
        if self.fc2.bias is not None:
            self.fc2.bias.accumulate(db2)

    def forward(self, x):
        check_nchw(x, channels=self.channels)
        y, self._cache = se_block_forward(x, *self._weights(), self.squeeze, self.gate,
                                          self.activation)
        self.last_gates = self._cache["s"]
        return y

    def backward(self, dy):
        dx, dw1, db1, dw2, db2 = se_block_backward(dy, _require_cache(self))
        self._accumulate(dw1, db1, dw2, db2)
        return dx

    def forward_add(self, x, shortcut):
        """out = s·x + shortcut in one pass (Caffe SENet's "Axpy"), for residual units."""
        return self._forward_add(x, shortcut, relu=False)

    def forward_add_relu(self, x, shortcut):
        """out = max(s·x + shortcut, 0): ``forward_add`` and the residual unit's ReLU, one pass.

        ``backward_add`` then takes dL/d(pre-activation): the unit applies ReLU's derivative."""
        return self._forward_add(x, shortcut, relu=True)

    def _forward_add(self, x, shortcut, relu):
        check_nchw(x, channels=self.channels)
        in_place = relu and self.inplace and not self.training and x.flags.writeable
        out, self._cache = se_block_add_forward(x, shortcut, *self._weights(), self.squeeze,
                                                self.gate, self.activation, relu=relu,
                                                in_place=in_place)
        self.last_gates = self._cache["s"]
        # not reached through __call__, so the forward hooks (record_gates) are run here
        return self.run_forward_hooks((x, shortcut), out)

    def backward_add(self, dout):
        """Backward of ``forward_add``: returns (dx, dshortcut)."""
        dx, dshortcut, dw1, db1, dw2, db2 = se_block_add_backward(dout, _require_cache(self))
        self._accumulate(dw1, db1, dw2, db2)
        return dx, dshortcut

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def flops(self, input_shape):
        """Multiply-accumulates: squeeze (C·H·W adds), fc1 and fc2 (2·C·hidden), scale (C·H·W).

        This is the convention under which the paper's Table 2 puts SE-ResNet-50
        at 3.87 GFLOPs against ResNet-50's 3.86.
        """
        n, c, h, w = input_shape
        return int(n) * (2 * c * h * w + 2 * c * self.hidden)

    def extra_repr(self):
        text = (f"channels={self.channels}, hidden={self.hidden}, squeeze={self.squeeze!r}, "
                f"gate={self.gate!r}")
        return text + (f", activation={self.activation!r}" if self.activation != "relu" else "")
