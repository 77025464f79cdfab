"""Effective Squeeze-and-Excitation (eSE): one C -> C layer instead of SE's bottleneck.

Lee & Park, "CenterMask: Real-Time Anchor-Free Instance Segmentation", CVPR 2020,
Sec. 3.3 (arXiv 1911.06667). SE's two FC layers squeeze C to C/r and back; the
reduction loses channel information, so eSE keeps the full width with a single
layer and a hard sigmoid:

    z[n,c]  = 1/(HW) Σ_ij x[n,c,i,j]                     squeeze (SE Eq. 2)
    a       = z Wᵀ + b            W (C, C), b (C,)        one fully connected layer
    s       = hsigmoid(a) = min(1, max(0, a/6 + 1/2))     the gate (timm's default)
    y       = s · x                                       scale (SE Eq. 4)

Backward (channel_gate.py for the passes over the map):

    ds[n,c] = Σ_ij dy·x
    da      = ds · hsigmoid'(a)       hsigmoid' = 1/6 on (-3, 3), else 0
    dz      = da W,   dW = daᵀ z,   db = Σ_n da
    dx      = dy · s + dz / (HW)

Shapes: x (N, C, H, W), weight (C, C), bias (C,) or None -> y (N, C, H, W).
Parameters: C² + C, against SE's 2C²/r + C/r + C.
"""
from .._validation import check_shape
from .activation import get_activation
from .channel_gate import channel_gate_backward, channel_gate_forward
from .linear import linear_backward, linear_forward


def effective_se_excitation_forward(z, weight, bias=None, gate="hard_sigmoid"):
    """s = gate(z Wᵀ + b).  z (N, C), weight (C, C) -> s (N, C)."""
    check_shape(weight, (z.shape[1], z.shape[1]), "weight")
    gate_forward, _ = get_activation(gate)
    a, fc_cache = linear_forward(z, weight, bias)
    s, gate_cache = gate_forward(a)
    return s, (gate, fc_cache, gate_cache)


def effective_se_excitation_backward(ds, cache):
    """Returns (dz, dweight, dbias); dbias is None when the layer has no bias."""
    gate, fc_cache, gate_cache = cache
    _, gate_backward = get_activation(gate)
    return linear_backward(gate_backward(ds, gate_cache), fc_cache)


def effective_se_forward(x, weight, bias=None, gate="hard_sigmoid"):
    """The eSE block: y = gate(W mean_ij(x) + b) · x.  Returns ``(y, cache)``."""
    get_activation(gate)            # an unknown gate fails here, before any pass over x
    return channel_gate_forward(
        x, lambda z: effective_se_excitation_forward(z, weight, bias, gate))


def effective_se_backward(dy, cache):
    """Backward of the eSE block: (dx, dweight, dbias)."""
    return channel_gate_backward(dy, cache, effective_se_excitation_backward)
