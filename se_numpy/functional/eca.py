"""Efficient Channel Attention (ECA): a 1-D convolution across channels instead of SE's MLP.

Wang et al., "ECA-Net: Efficient Channel Attention for Deep Convolutional
Neural Networks", CVPR 2020, Sec. 3.3 (arXiv 1910.03151). Each gate looks only
at its k neighbouring channels, with one shared kernel of k weights:

    z[n,c]  = 1/(HW) Σ_ij x[n,c,i,j]                         squeeze (SE Eq. 2)
    a[n,c]  = Σ_{j=0}^{k-1} w[j] · z_pad[n, c + j]            z_pad: z with p = (k-1)/2
                                                              zeros on each side (PyTorch Conv1d)
    s       = σ(a)
    y       = s · x

k grows with C (paper Eq. 12): k = ψ(C) = | log2(C)/γ + b/γ |_odd, γ = 2, b = 1,
computed as timm and the authors' code do: t = int(|log2(C) + b| / γ), k = t
if t is odd else t + 1, and at least 3 (``eca_kernel_size``).

Backward, with da = ds · s(1 - s) (N, C):

    dz_pad[n, c + j] += w[j] · da[n,c]     for every c, j   (the adjoint of the sliding window)
    dz    = dz_pad[:, p : p + C]           the padding is a constant: its gradient is dropped
    dw[j] = Σ_{n,c} da[n,c] · z_pad[n, c + j]
    dx    = dy · s + dz / (HW)             (channel_gate.py)

Shapes: x (N, C, H, W), weight (k,) or timm's (1, 1, k) -> y (N, C, H, W).
Parameters: k (3 for C <= 32 ... 7 for C = 2048 at γ = 2, b = 1).
"""
import math

import numpy as np

from .._validation import check_float_array, check_same_dtype
from .activation import sigmoid_backward, sigmoid_forward
from .channel_gate import channel_gate_backward, channel_gate_forward


def eca_kernel_size(channels, gamma=2, beta=1):
    """k = the odd number at or above int(|log2(C) + β| / γ), at least 3 (paper Eq. 12)."""
    if channels < 1:
        raise ValueError(f"channels: expected >= 1, got {channels}")
    t = int(abs(math.log2(channels) + beta) / gamma)
    return max(t if t % 2 else t + 1, 3)


def _kernel_vector(weight):
    check_float_array(weight, "weight")
    if weight.ndim == 3 and weight.shape[:2] == (1, 1):
        weight = weight.reshape(-1)
    if weight.ndim != 1 or weight.shape[0] % 2 == 0:
        raise ValueError(f"weight: expected an odd-length kernel, shape (k,) or (1, 1, k), "
                         f"got shape {weight.shape}")
    return weight


def channel_conv1d_forward(z, weight):
    """a[n,c] = Σ_j w[j] · z_pad[n, c + j], zero padding (k-1)/2.  z (N, C) -> a (N, C)."""
    check_float_array(z, "z", ndim=2)
    weight = _kernel_vector(weight)
    check_same_dtype(z, weight, "z", "weight")
    pad = weight.shape[0] // 2
    z_pad = np.pad(z, ((0, 0), (pad, pad)))
    windows = np.lib.stride_tricks.sliding_window_view(z_pad, weight.shape[0], axis=1)
    return windows @ weight, (windows, weight)


def channel_conv1d_backward(da, cache):
    """Returns (dz, dweight (k,)): the adjoint of the sliding window, and Σ_{n,c} da · window."""
    windows, weight = cache
    k, channels = weight.shape[0], da.shape[1]
    dz_pad = np.zeros((da.shape[0], channels + k - 1), dtype=da.dtype)
    for j in range(k):                  # k <= 9: a short loop over the kernel's taps
        dz_pad[:, j:j + channels] += weight[j] * da
    dweight = np.einsum("nc,nck->k", da, windows)
    return dz_pad[:, k // 2:k // 2 + channels], dweight


def eca_excitation_forward(z, weight):
    """s = σ(conv1d(z, w)).  z (N, C) -> s (N, C)."""
    a, conv_cache = channel_conv1d_forward(z, weight)
    s, gate_cache = sigmoid_forward(a)
    return s, (conv_cache, gate_cache)


def eca_excitation_backward(ds, cache):
    conv_cache, gate_cache = cache
    return channel_conv1d_backward(sigmoid_backward(ds, gate_cache), conv_cache)


def eca_forward(x, weight):
    """The ECA block: y = σ(conv1d(mean_ij(x), w)) · x.  Returns ``(y, cache)``."""
    weight = _kernel_vector(weight)
    return channel_gate_forward(x, lambda z: eca_excitation_forward(z, weight))


def eca_backward(dy, cache):
    """Backward of the ECA block: (dx, dweight), dweight of shape (k,)."""
    return channel_gate_backward(dy, cache, eca_excitation_backward)
