"""scSE: concurrent channel and spatial squeeze-and-excitation (Roy, Navab & Wachinger,
"Concurrent Spatial and Channel 'Squeeze & Excitation' in Fully Convolutional
Networks", MICCAI 2018, Sec. 2; arXiv 1803.02579).

Two gates computed side by side from the same x and combined by addition (Sec. 2.3):

    cSE   s = σ(W2 ReLU(W1 z + b1) + b2),  z = mean_ij x           (N, C)   SE itself
    sSE   q[n,i,j] = Σ_c w[c] · x[n,c,i,j] + b                     a 1x1 convolution C -> 1
          g = σ(q)                                                 (N, 1, H, W)
    y     = s · x + g · x                                           (Eq. in Sec. 2.3)

The spatial squeeze is a C -> **1** convolution: one number per pixel, shared
by every channel. A C -> C convolution there (a mistake once shipped by a
widely used implementation) gives every (channel, pixel) its own gate and is
no longer a spatial SE; ``tests/test_attention_scse.py`` checks the gate is
the same across channels.

Backward: x reaches y along four paths (two gates, each directly and through
its squeeze), so its gradient is a sum of four terms:

    ds[n,c] = Σ_ij dy·x  ->  dz, dW1, db1, dW2, db2 = excitation_backward(ds)
    dq      = (Σ_c dy·x) · g (1 - g)                      (N, 1, H, W)
    dw[c]   = Σ_{n,i,j} dq · x[n,c],   db = Σ dq
    dx      = dy · s + dz / (HW) + dy · g + w[c] · dq

The passes over the map run in the active kernel backend: ds and dx's SE
terms as SE's (``se_backward_ds``, ``se_backward_dx``), the gate products
g·x, dy·g and Σ_c dy·x as ``spatial_scale_forward`` / ``spatial_scale_backward``,
s·x + g·x as ``scale_add_forward``; the C -> 1 projection and its adjoint are
NumPy contractions here.

Shapes: x (N, C, H, W); W1 (C/r, C), W2 (C, C/r); spatial weight (C,) or
(1, C, 1, 1), spatial bias (1,) -> y (N, C, H, W).
"""
import numpy as np

from .._validation import check_float_array, check_nchw, check_shape
from ..kernels.backend import current as _kernels
from .activation import sigmoid_backward, sigmoid_forward
from .se import excitation_backward, excitation_forward, squeeze_forward


def _spatial_weight_vector(weight, channels):
    check_float_array(weight, "spatial_weight")
    if weight.size != channels or weight.shape not in ((channels,), (1, channels, 1, 1)):
        raise ValueError(f"spatial_weight: expected a C -> 1 projection, shape ({channels},) or "
                         f"(1, {channels}, 1, 1), got shape {weight.shape}")
    return weight.reshape(channels)


def spatial_se_forward(x, weight, bias):
    """g = σ(Σ_c w[c] x[n,c] + b).  x (N, C, H, W), weight (C,), bias (1,) -> g (N, 1, H, W)."""
    check_nchw(x)
    weight = _spatial_weight_vector(weight, x.shape[1])
    check_shape(bias, (1,), "spatial_bias")
    q = np.einsum("c,ncij->nij", weight, x)[:, None] + bias[0]
    g, gate_cache = sigmoid_forward(q)
    return g, (x, weight, gate_cache)


def spatial_se_backward(dg, cache):
    """(dx, dweight (C,), dbias (1,)) for g = σ(w·x + b): the C -> 1 projection's adjoint."""
    x, weight, gate_cache = cache
    dq = sigmoid_backward(dg, gate_cache)                   # (N, 1, H, W)
    dx = weight[None, :, None, None] * dq
    dweight = np.einsum("nij,ncij->c", dq[:, 0], x)
    return dx, dweight, dq.sum(keepdims=True).reshape(1)


def scse_forward(x, w1, b1, w2, b2, spatial_weight, spatial_bias):
    """y = s · x + g · x, s and g the cSE and sSE gates.  Returns ``(y, cache)``."""
    z, _ = squeeze_forward(x, "avg")
    s, excitation_cache = excitation_forward(z, w1, b1, w2, b2, "sigmoid", "relu")
    g, spatial_cache = spatial_se_forward(x, spatial_weight, spatial_bias)
    kernels = _kernels()
    y = kernels.scale_add_forward(x, s, kernels.spatial_scale_forward(x, g))   # s·x + g·x
    return y, {"x": x, "s": s, "g": g, "excitation": excitation_cache, "spatial": spatial_cache}


def scse_backward(dy, cache):
    """Returns (dx, dw1, db1, dw2, db2, dspatial_weight (C,), dspatial_bias (1,))."""
    x, s, g = cache["x"], cache["s"], cache["g"]
    check_shape(dy, x.shape, "dy")
    kernels = _kernels()
    ds = kernels.se_backward_ds(dy, x)
    dz, dw1, db1, dw2, db2 = excitation_backward(ds, cache["excitation"])
    dx_gate, dg = kernels.spatial_scale_backward(dy, x, g)      # dy·g and Σ_c dy·x
    dx_spatial, dweight, dbias = spatial_se_backward(dg, cache["spatial"])
    dx = kernels.se_backward_dx(dy, s, dz) + dx_gate + dx_spatial
    return dx, dw1, db1, dw2, db2, dweight, dbias
