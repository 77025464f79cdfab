"""Squeeze, excitation and scale: the three steps of an SE block (Hu et al., Sec. 3).

Notation (paper Sec. 3): a feature map u of shape (N, C, H, W); n indexes the
batch, c the channel, (i, j) the position. Every function returns
``(output, cache)`` and its ``*_backward`` takes the upstream gradient and the
cache. The loops that touch the whole feature map run in the active kernel
backend (``se_numpy.kernels.current()``); this file holds the math.

    squeeze     z[n,c] = 1/(HW) Σ_ij u[n,c,i,j]                     (Eq. 2)
    excitation  s = gate(W2 · act(W1 · z + b1) + b2)                 (Eq. 3)
    scale       x̃[n,c,i,j] = s[n,c] · u[n,c,i,j]                     (Eq. 4)

The whole block, ``se_block_forward``, is their composition. Its backward has
to add the two paths by which u reaches the output: directly through the scale,
and through z -> s (see ``se_block_backward``).
"""
import numpy as np

from .._validation import check_float_array, check_nchw, check_same_dtype, check_shape
from ..kernels.backend import current as _kernels
from .activation import get_activation
from .linear import linear_backward, linear_forward

SQUEEZE_MODES = ("avg", "max")


# ============================================================================ squeeze
def squeeze_forward(x, mode="avg"):
    """Squeeze: global pooling of each channel to one number (paper Sec. 3.1, Eq. 2).

    avg:  z[n,c] = 1/(HW) Σ_{i,j} x[n,c,i,j]
    max:  z[n,c] = max_{i,j} x[n,c,i,j]      (the squeeze-operator ablation, Table 11)

    Shapes: x (N, C, H, W) -> z (N, C), same dtype. float32 sums accumulate in float64.
    """
    check_nchw(x)
    if mode == "avg":
        return _kernels().squeeze_forward(x), ("avg", x.shape, None)
    if mode == "max":
        z, argmax = _kernels().max_squeeze_forward(x)
        return z, ("max", x.shape, argmax)
    raise ValueError(f"squeeze mode: expected one of {SQUEEZE_MODES}, got {mode!r}")


def squeeze_backward(dz, cache):
    """Backward of the squeeze. dz (N, C) -> dx (N, C, H, W).

    avg:  ∂z[n,c]/∂x[n,c,i,j] = 1/(HW) for every (i, j), so
          dx[n,c,i,j] = dz[n,c] / (HW).
    max:  z[n,c] equals exactly one input entry, the arg-max, so its whole
          gradient goes there: dx[n,c,i*,j*] = dz[n,c], zero elsewhere.
          Tie rule: when several entries share the maximum, the first in
          row-major (i, j) order is the arg-max (NumPy's ``argmax`` rule). At a
          tie the max is not differentiable; a finite-difference check there is
          meaningless, which is why tests draw inputs with distinct values.
    """
    mode, x_shape, argmax = cache
    check_shape(dz, x_shape[:2], "dz")
    if mode == "avg":
        return _kernels().squeeze_backward(dz, x_shape)
    return _kernels().max_squeeze_backward(dz, argmax, x_shape)


# ============================================================================ excitation
def make_divisible(value, divisor=8, min_value=None, round_limit=0.9):
    """``value`` rounded to the nearest multiple of ``divisor``, at least ``min_value``.

        v' = max(min_value or divisor, floor((value + divisor/2) / divisor) · divisor)
        v' += divisor   if v' < round_limit · value   (never round down by more than 10 %)

    The rule timm (after the TensorFlow MobileNet code) uses for channel widths:
    its ``SEModule`` calls it with divisor 8 and round_limit 0 (so 64/16 = 4
    becomes 8), MobileNetV3 with divisor 8 and round_limit 0.9 (72/4 = 18 -> 24).
    """
    if divisor < 1 or value <= 0:
        raise ValueError(f"expected value > 0 and divisor >= 1, got {value} and {divisor}")
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < round_limit * value:
        rounded += divisor
    return int(rounded)


def hidden_width(channels, reduction, divisor=None, round_limit=0.0):
    """Bottleneck width of the excitation (paper Sec. 3.2).

    Without ``divisor``: C // r, at least 1 (the paper, Caffe SENets, timm's
    ``legacy_*``). With ``divisor``: ``make_divisible(C / r, divisor, round_limit=...)``
    (timm's SE-ResNets: divisor 8, so SE-ResNet-18's 64-channel blocks get 8, not 4).
    """
    if channels < 1 or reduction <= 0:
        raise ValueError(f"expected channels >= 1 and reduction > 0, got {channels} and {reduction}")
    if divisor is None:
        return max(1, int(channels // reduction))
    return make_divisible(channels / reduction, divisor, round_limit=round_limit)


def excitation_forward(z, w1, b1, w2, b2, gate="sigmoid", activation="relu"):
    """Excitation: two fully connected layers around a bottleneck (paper Sec. 3.2, Eq. 3).

        h = act(W1 z + b1)       W1 (C/r, C): dimensionality reduction, act = ReLU (δ)
        s = gate(W2 h + b2)      W2 (C, C/r): back to C channels, gate = sigmoid (σ)

    Shapes: z (N, C); w1 (hidden, C); b1 (hidden,) or None; w2 (C, hidden);
    b2 (C,) or None; s (N, C) in the dtype of z. ``gate`` is one of sigmoid,
    tanh, relu (the excitation-operator ablation, Table 12) or hard_sigmoid.
    """
    check_float_array(z, "z", ndim=2)
    check_shape(w1, (w1.shape[0], z.shape[1]), "w1")
    check_shape(w2, (z.shape[1], w1.shape[0]), "w2")
    act_forward, _ = get_activation(activation)
    gate_forward, _ = get_activation(gate)
    pre_hidden, fc1_cache = linear_forward(z, w1, b1)
    hidden, act_cache = act_forward(pre_hidden)
    pre_gate, fc2_cache = linear_forward(hidden, w2, b2)
    s, gate_cache = gate_forward(pre_gate)
    return s, (gate, activation, fc1_cache, act_cache, fc2_cache, gate_cache)


def excitation_backward(ds, cache):
    """Backward of the excitation, by the chain rule through its four steps in reverse:

        d(pre_gate) = ds · gate'(pre_gate)           (sigmoid: s (1 - s))
        dh  = d(pre_gate) W2,    dW2 = d(pre_gate)ᵀ h,   db2 = Σ_n d(pre_gate)
        d(pre_hidden) = dh · act'(pre_hidden)        (ReLU: 1[pre_hidden > 0])
        dz  = d(pre_hidden) W1,  dW1 = d(pre_hidden)ᵀ z, db1 = Σ_n d(pre_hidden)

    Returns (dz, dw1, db1, dw2, db2); a bias gradient is None when that bias was None.
    """
    gate, activation, fc1_cache, act_cache, fc2_cache, gate_cache = cache
    check_shape(ds, (fc1_cache[0].shape[0], fc2_cache[1].shape[0]), "ds")
    _, act_backward = get_activation(activation)
    _, gate_backward = get_activation(gate)
    d_pre_gate = gate_backward(ds, gate_cache)
    d_hidden, dw2, db2 = linear_backward(d_pre_gate, fc2_cache)
    d_pre_hidden = act_backward(d_hidden, act_cache)
    dz, dw1, db1 = linear_backward(d_pre_hidden, fc1_cache)
    return dz, dw1, db1, dw2, db2


# ============================================================================ scale
def _check_gates(x, s):
    check_nchw(x)
    check_float_array(s, "s", ndim=2)
    check_shape(s, x.shape[:2], "s")
    check_same_dtype(x, s, "x", "s")


def scale_forward(x, s):
    """Scale: reweight each channel by its gate (paper Sec. 3.2, Eq. 4).

        y[n,c,i,j] = s[n,c] · x[n,c,i,j]

    Shapes: x (N, C, H, W), s (N, C) -> y (N, C, H, W). s must have exactly
    shape (N, C): it is never broadcast from another shape.
    """
    _check_gates(x, s)
    return _kernels().scale_forward(x, s), (x, s)


def scale_backward(dy, cache):
    """Backward of the scale, for the two inputs of a product:

        dx[n,c,i,j] = dy[n,c,i,j] · s[n,c]
        ds[n,c]     = Σ_{i,j} dy[n,c,i,j] · x[n,c,i,j]   (s[n,c] touched every (i, j))

    Returns (dx, ds). Inside an SE block s itself depends on x; that second path
    is added by ``se_block_backward``, not here.
    """
    x, s = cache
    check_shape(dy, x.shape, "dy")
    return _kernels().scale_backward(dy, x, s)


# ============================================================================ the block
def se_block_forward(x, w1, b1, w2, b2, squeeze="avg", gate="sigmoid", activation="relu"):
    """The SE block: y = scale(x, excitation(squeeze(x))).  x (N, C, H, W) -> y, s.

    Returns ``(y, cache)``; the gates s (N, C) are ``cache["s"]``.
    """
    z, squeeze_cache = squeeze_forward(x, squeeze)
    s, excitation_cache = excitation_forward(z, w1, b1, w2, b2, gate, activation)
    y, _ = scale_forward(x, s)
    return y, {"x": x, "s": s, "squeeze": squeeze_cache, "excitation": excitation_cache}


def se_block_backward(dy, cache):
    """Backward of the SE block. dy (N, C, H, W) -> (dx, dw1, db1, dw2, db2).

        ds[n,c] = Σ_ij dy[n,c,i,j] · x[n,c,i,j]        pass 1: reads dy and x
        dz, dW1, db1, dW2, db2 = excitation_backward(ds)   (N, C)-sized, BLAS
        dx = dy · s + dz / (HW)                          pass 2: reads dy, writes dx

    Together with the forward's three passes (squeeze reads x; scale reads x and
    writes y) that is 7 passes over the feature map, the minimum.

    x reaches the output along two paths, so its gradient is a sum: dy · s
    (through the scale) plus squeeze_backward(dz) (through z -> s). For the
    average squeeze the second term is dz/(HW) at every position, and the
    kernel ``se_backward_dx`` writes both terms in one pass over the map.
    """
    if cache["x"] is None:
        raise RuntimeError("se_block_backward: the forward scaled x in place (an SE block with "
                           "inplace=True in evaluation mode) and kept no x; call train() or set "
                           "inplace=False before a forward whose backward is needed")
    check_shape(dy, cache["x"].shape, "dy")
    ds = _kernels().se_backward_ds(dy, cache["x"])
    dz, dw1, db1, dw2, db2 = excitation_backward(ds, cache["excitation"])
    if cache["squeeze"][0] == "avg":
        dx = _kernels().se_backward_dx(dy, cache["s"], dz)
    else:
        dx = dy * cache["s"][:, :, None, None] + squeeze_backward(dz, cache["squeeze"])
    return dx, dw1, db1, dw2, db2


def se_block_add_forward(x, shortcut, w1, b1, w2, b2, squeeze="avg", gate="sigmoid",
                         activation="relu", relu=False, in_place=False):
    """SE block fused with the residual addition ("Axpy" of the official Caffe SENet):

        out = s · x + shortcut              (``relu=True``: out = max(s · x + shortcut, 0))

    One pass instead of two (scale, then add), used by residual units with SE in
    the standard position (paper Fig. 3); with ``relu`` the unit's final ReLU is
    applied in the same pass (its backward: ``residual.relu_output_backward``).
    ``in_place=True`` (with ``relu``; evaluation mode) writes out over x, which
    is then gone: the cache keeps no x and ``se_block_backward`` refuses it.
    Returns ``(out, cache)``.
    """
    check_shape(shortcut, x.shape, "shortcut")
    check_same_dtype(x, shortcut, "x", "shortcut")
    z, squeeze_cache = squeeze_forward(x, squeeze)
    s, excitation_cache = excitation_forward(z, w1, b1, w2, b2, gate, activation)
    if in_place and not relu:
        raise ValueError("se_block_add_forward: in_place=True needs relu=True (the in-place "
                         "kernel is max(s·x + shortcut, 0)), got relu=False")
    if in_place:
        out = _kernels().scale_add_relu_forward_in_place(x, s, shortcut)
        x = None                                  # overwritten: there is nothing to keep
    elif relu:
        out = _kernels().scale_add_relu_forward(x, s, shortcut)
    else:
        out = _kernels().scale_add_forward(x, s, shortcut)
    return out, {"x": x, "s": s, "squeeze": squeeze_cache, "excitation": excitation_cache}


def se_block_add_backward(dout, cache):
    """Backward of out = s·x + shortcut: (dx, dshortcut, dw1, db1, dw2, db2).

    d(shortcut) = dout (the addition passes the gradient through unchanged);
    the rest is exactly ``se_block_backward`` with dy = dout.
    """
    dx, dw1, db1, dw2, db2 = se_block_backward(dout, cache)
    return dx, dout, dw1, db1, dw2, db2
