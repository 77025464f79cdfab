"""Element-wise activations and the gates of the excitation step, forward and backward.

Each ``*_forward(x)`` returns ``(out, cache)``; each ``*_backward(dout, cache)``
returns ``dx``. For y = f(x) element-wise, the chain rule is simply
dx = dout · f'(x), and f' is written in terms of whatever is cheapest to keep:

    relu          y = max(0, x)                 f'(x) = 1[x > 0]
    sigmoid       y = 1 / (1 + e^{-x})          f'(x) = y (1 - y)
    tanh          y = tanh x                    f'(x) = 1 - y²
    hard_sigmoid  y = min(1, max(0, x/6 + 1/2)) f'(x) = 1/6 on (-3, 3), else 0
    relu6         y = min(6, max(0, x))          f'(x) = 1[0 < x < 6]
    hard_swish    y = x · hard_sigmoid(x)        f'(x) = 0 below -3, 1 above 3, (2x + 3)/6 between
    silu          y = x · σ(x)  ("swish")        f'(x) = σ(x) (1 + x (1 - σ(x)))

ReLU6, hard swish and SiLU are the activations of the mobile networks that
carry SE blocks (MobileNet v1/v2 in timm: ReLU6; MobileNetV3: hard swish,
Howard et al. 2019, Sec. 5.2; EfficientNet: SiLU, Tan & Le 2019). Hard
swish is continuous with a continuous derivative except at x = ±3, where the
derivative jumps (from 0 to -1/2 at -3, from 3/2 to 1 at 3); ReLU6 has kinks
at 0 and 6.

The gates are the excitation operators of the paper's ablation (Table 12:
sigmoid, tanh, ReLU) plus the hard sigmoid of MobileNetV3. ReLU and hard
sigmoid have kinks (x = 0; x = ±3); there the derivative used is that of the
flat side (0), as in PyTorch.
"""
import numpy as np

from .._validation import check_float_array


def relu_forward(x):
    check_float_array(x, "x")
    return np.maximum(x, x.dtype.type(0)), x > 0


def relu_backward(dout, cache):
    positive = cache
    return dout * positive


def sigmoid(x):
    """Numerically stable logistic function: never evaluates e^{+large}.

    For x >= 0 use 1/(1+e^{-x}); for x < 0 use e^{x}/(1+e^{x}). Both only ever
    exponentiate -|x| <= 0, so x = ±1000 gives 1 and 0 with no overflow warning.
    """
    decay = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + decay), decay / (1 + decay)).astype(x.dtype, copy=False)


def sigmoid_forward(x):
    check_float_array(x, "x")
    y = sigmoid(x)
    return y, y


def sigmoid_backward(dout, cache):
    y = cache
    return dout * y * (1 - y)


def tanh_forward(x):
    check_float_array(x, "x")
    y = np.tanh(x)
    return y, y


def tanh_backward(dout, cache):
    y = cache
    return dout * (1 - y * y)


def hard_sigmoid_forward(x):
    check_float_array(x, "x")
    six, half = x.dtype.type(6), x.dtype.type(0.5)
    y = np.clip(x / six + half, 0, 1).astype(x.dtype, copy=False)
    return y, x


def hard_sigmoid_backward(dout, cache):
    x = cache
    inside = (x > -3) & (x < 3)
    return dout * inside / dout.dtype.type(6)


def relu6_forward(x):
    check_float_array(x, "x")
    return np.clip(x, 0, 6).astype(x.dtype, copy=False), (x > 0) & (x < 6)


def relu6_backward(dout, cache):
    inside = cache
    return dout * inside


def hard_swish_forward(x):
    check_float_array(x, "x")
    gate, _ = hard_sigmoid_forward(x)
    return x * gate, x


def hard_swish_backward(dout, cache):
    """d/dx [x · hs(x)] = hs(x) + x · hs'(x), hs'(x) = 1/6 on (-3, 3): 0, (2x + 3)/6, 1."""
    x = cache
    gate, _ = hard_sigmoid_forward(x)
    inside = (x > -3) & (x < 3)
    return dout * (gate + x * inside / x.dtype.type(6))


def silu_forward(x):
    check_float_array(x, "x")
    s = sigmoid(x)
    return x * s, (x, s)


def silu_backward(dout, cache):
    """d/dx [x σ(x)] = σ + x σ (1 - σ)."""
    x, s = cache
    return dout * (s * (1 + x * (1 - s)))


# name -> (forward, backward): how SEBlock's ``gate`` option and the nn modules pick one.
ACTIVATIONS = {
    "relu": (relu_forward, relu_backward),
    "sigmoid": (sigmoid_forward, sigmoid_backward),
    "tanh": (tanh_forward, tanh_backward),
    "hard_sigmoid": (hard_sigmoid_forward, hard_sigmoid_backward),
    "relu6": (relu6_forward, relu6_backward),
    "hard_swish": (hard_swish_forward, hard_swish_backward),
    "silu": (silu_forward, silu_backward),
}


def get_activation(name):
    """(forward, backward) pair of an activation, with an error listing the choices."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown activation {name!r}: expected one of "
                         f"{', '.join(ACTIVATIONS)}") from None
