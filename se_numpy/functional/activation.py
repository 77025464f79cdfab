"""Element-wise activations and the gates of the excitation step, forward and backward.

Each ``*_forward(x)`` returns ``(out, cache)``; each ``*_backward(dout, cache)``
returns ``dx``. For y = f(x) element-wise, the chain rule is simply
dx = dout · f'(x), and f' is written in terms of whatever is cheapest to keep:

    relu          y = max(0, x)                 f'(x) = 1[x > 0]
    sigmoid       y = 1 / (1 + e^{-x})          f'(x) = y (1 - y)
    tanh          y = tanh x                    f'(x) = 1 - y²
    hard_sigmoid  y = min(1, max(0, x/6 + 1/2)) f'(x) = 1/6 on (-3, 3), else 0

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


# name -> (forward, backward): how SEBlock's ``gate`` option and the nn modules pick one.
ACTIVATIONS = {
    "relu": (relu_forward, relu_backward),
    "sigmoid": (sigmoid_forward, sigmoid_backward),
    "tanh": (tanh_forward, tanh_backward),
    "hard_sigmoid": (hard_sigmoid_forward, hard_sigmoid_backward),
}


def get_activation(name):
    """(forward, backward) pair of an activation, with an error listing the choices."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown activation {name!r}: expected one of "
                         f"{', '.join(ACTIVATIONS)}") from None
