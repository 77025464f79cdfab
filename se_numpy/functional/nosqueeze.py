"""NoSqueeze: the excitation without the squeeze (paper Sec. 7.1, Table 16).

The paper asks how much of the SE block's gain comes from the *global*
information the squeeze brings in. Its NoSqueeze variant drops the pooling and
replaces the two fully connected layers by 1x1 convolutions with the same
channel counts, applied at every position of the full map, so each pixel gets
its own gate computed from that pixel's channels alone:

    a[n,k,p] = Σ_c W1[k,c] x[n,c,p] + b1[k]        W1 (C/r, C): 1x1 conv, p = (i, j)
    h        = ReLU(a)
    g[n,c,p] = Σ_k W2[c,k] h[n,k,p] + b2[c]        W2 (C, C/r): 1x1 conv
    s        = gate(g)                             sigmoid in the paper
    y[n,c,p] = s[n,c,p] · x[n,c,p]

Same parameters as the SE block (28.1M for ResNet-50 in Table 16), but the
two layers now run H·W times per image (4.27 GFLOPs against SE's 3.87).

Backward, derived by the chain rule. x reaches y along two paths, directly
through the product and through the gates, so dx is a sum:

    ds[n,c,p]  = dy · x                            (product rule, gate path)
    dg         = ds · gate'(g)                     (sigmoid: s (1 - s))
    dW2[c,k]   = Σ_{n,p} dg[n,c,p] h[n,k,p],       db2[c] = Σ_{n,p} dg[n,c,p]
    dh[n,k,p]  = Σ_c W2[c,k] dg[n,c,p]
    da         = dh · 1[a > 0]
    dW1[k,c]   = Σ_{n,p} da[n,k,p] x[n,c,p],       db1[k] = Σ_{n,p} da[n,k,p]
    dx[n,c,p]  = dy · s  +  Σ_k W1[k,c] da[n,k,p]  (direct path + gate path)

Compared with SE's backward (functional/se.py), the sums over positions move
from the squeeze (dz/(HW) spread back evenly) into the weight gradients.

Shapes: x (N, C, H, W); w1 (hidden, C); b1 (hidden,) or None; w2 (C, hidden);
b2 (C,) or None; y and the gates s (N, C, H, W) in the dtype of x.
"""
import numpy as np

from .._validation import check_float_array, check_nchw, check_same_dtype, check_shape
from .activation import get_activation


def _check_parameters(x, w1, b1, w2, b2):
    channels = x.shape[1]
    check_float_array(w1, "w1", ndim=2)
    check_float_array(w2, "w2", ndim=2)
    hidden = w1.shape[0]
    check_shape(w1, (hidden, channels), "w1")
    check_shape(w2, (channels, hidden), "w2")
    check_same_dtype(x, w1, "x", "w1")
    check_same_dtype(x, w2, "x", "w2")
    for name, bias, size in (("b1", b1, hidden), ("b2", b2, channels)):
        if bias is not None:
            check_float_array(bias, name, ndim=1)
            check_shape(bias, (size,), name)


def _pointwise(weight, maps, bias):
    """A 1x1 convolution on maps (N, C_in, P):

        out[n,o,p] = Σ_i weight[o,i] maps[n,i,p] + bias[o]
    """
    out = np.matmul(weight, maps)
    if bias is not None:
        out += bias[:, None]
    return out


def nosqueeze_forward(x, w1, b1, w2, b2, gate="sigmoid", activation="relu"):
    """y = gate(W2 ReLU(W1 x + b1) + b2) · x, position by position. Returns ``(y, cache)``.

    The gates s (N, C, H, W) are ``cache["s"]``.
    """
    check_nchw(x)
    _check_parameters(x, w1, b1, w2, b2)
    act_forward, _ = get_activation(activation)
    gate_forward, _ = get_activation(gate)
    n, c, h, w = x.shape
    maps = x.reshape(n, c, h * w)
    pre_hidden = _pointwise(w1, maps, b1)
    hidden, act_cache = act_forward(pre_hidden)
    pre_gate = _pointwise(w2, hidden, b2)
    s, gate_cache = gate_forward(pre_gate)
    y = (s * maps).reshape(x.shape)
    cache = {"x": x, "s": s.reshape(x.shape), "maps": maps, "hidden": hidden, "w1": w1,
             "w2": w2, "biases": (b1 is not None, b2 is not None), "gate": gate,
             "activation": activation, "act_cache": act_cache, "gate_cache": gate_cache}
    return y, cache


def nosqueeze_backward(dy, cache):
    """Backward of ``nosqueeze_forward``: dy (N, C, H, W) -> (dx, dw1, db1, dw2, db2).

    A bias gradient is None when that bias was None.
    """
    x = cache["x"]
    check_shape(dy, x.shape, "dy")
    check_same_dtype(x, dy, "x", "dy")
    n, c, h, w = x.shape
    maps, hidden, w1, w2 = cache["maps"], cache["hidden"], cache["w1"], cache["w2"]
    _, act_backward = get_activation(cache["activation"])
    _, gate_backward = get_activation(cache["gate"])
    has_b1, has_b2 = cache["biases"]

    dy_maps = dy.reshape(n, c, h * w)
    s = cache["s"].reshape(n, c, h * w)
    d_pre_gate = gate_backward(dy_maps * maps, cache["gate_cache"])   # ds · gate'(g)
    dw2 = np.tensordot(d_pre_gate, hidden, axes=([0, 2], [0, 2]))      # (C, hidden)
    db2 = d_pre_gate.sum(axis=(0, 2)) if has_b2 else None
    d_hidden = np.matmul(w2.T, d_pre_gate)                              # (N, hidden, P)
    d_pre_hidden = act_backward(d_hidden, cache["act_cache"])
    dw1 = np.tensordot(d_pre_hidden, maps, axes=([0, 2], [0, 2]))       # (hidden, C)
    db1 = d_pre_hidden.sum(axis=(0, 2)) if has_b1 else None
    dx = dy_maps * s + np.matmul(w1.T, d_pre_hidden)
    return dx.reshape(x.shape), dw1, db1, dw2, db2
