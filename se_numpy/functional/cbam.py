"""CBAM: channel attention, then spatial attention (Woo et al., "CBAM: Convolutional Block
Attention Module", ECCV 2018, Sec. 3, Fig. 2; arXiv 1807.06521).

Channel attention (Sec. 3.1, Eq. 2): SE's bottleneck MLP, *shared* by the average-
and the max-pooled vector, the two outputs added before the sigmoid:

    z_avg[n,c] = 1/(HW) Σ_ij x[n,c,i,j]        z_max[n,c] = max_ij x[n,c,i,j]
    MLP(z)     = W2 ReLU(W1 z)                 W1 (C/r, C), W2 (C, C/r)   (no biases in timm)
    s          = σ( MLP(z_avg) + MLP(z_max) )  (N, C)
    x'         = s · x

Spatial attention (Sec. 3.1, Eq. 3): pool over the *channels* at every pixel, a
7x7 convolution (2 -> 1 channels; timm follows it with a BatchNorm2d) and a sigmoid:

    p[n,0,i,j] = 1/C Σ_c x'[n,c,i,j]          p[n,1,i,j] = max_c x'[n,c,i,j]     (N, 2, H, W)
    g          = σ( BN( conv7x7(p) ) )         (N, 1, H, W), padding 3
    y[n,c,i,j] = g[n,0,i,j] · x'[n,c,i,j]      one gate per pixel, shared by every channel

Backward, spatial part (dy -> dx'):

    dg[n,0,i,j] = Σ_c dy·x'                    (N, 1, H, W)
    dr = dg · g (1 - g);   dq = BN'ᵀ dr;   dp, dW_conv = conv'ᵀ dq
    dx' = dy · g + dp[:,0] / C  + dp[:,1] at c* = argmax_c x'[n,:,i,j], zero elsewhere

Channel part (dx' -> dx): both pooled vectors pass through the *same* MLP, so
the weight gradients are the sums over both uses:

    ds = Σ_ij dx'·x;   da = ds · s (1 - s)
    (dz_avg, dz_max), dW1, dW2 = MLP backward of da, once per pooled vector, summed
    dx = dx' · s + dz_avg / (HW) + dz_max at (i*, j*) = argmax_ij x[n,c]

The per-pixel channel mean/max and its backward are the kernels
``channel_pool_forward`` / ``channel_pool_backward`` of the active backend, the
gate product y = g·x' and its backward (dx' = dy·g, dg = Σ_c dy·x') the kernels
``spatial_scale_forward`` / ``spatial_scale_backward``.
At a tie the max is not differentiable; gradient tests draw distinct values.
"""
import numpy as np

from .._validation import check_nchw, check_shape
from ..kernels.backend import current as _kernels
from .activation import relu_backward, relu_forward, sigmoid_backward, sigmoid_forward
from .conv import conv2d_backward, conv2d_forward
from .linear import linear_backward, linear_forward
from .norm import batch_norm2d_backward, batch_norm2d_forward
from .se import scale_forward, squeeze_backward, squeeze_forward


# ============================================================================ channel attention
def channel_attention_forward(x, fc1_weight, fc2_weight, fc1_bias=None, fc2_bias=None):
    """x' = σ(MLP(avg_ij x) + MLP(max_ij x)) · x.  Returns ``(x', cache)``; gates ``cache["s"]``.

    The two pooled vectors go through the MLP as one (2N, C) batch: the same
    weights, one pair of matrix products."""
    check_nchw(x)
    n = x.shape[0]
    z_avg, avg_cache = squeeze_forward(x, "avg")
    z_max, max_cache = squeeze_forward(x, "max")
    z = np.concatenate([z_avg, z_max], axis=0)
    pre_hidden, fc1_cache = linear_forward(z, fc1_weight, fc1_bias)
    hidden, relu_cache = relu_forward(pre_hidden)
    out, fc2_cache = linear_forward(hidden, fc2_weight, fc2_bias)
    s, gate_cache = sigmoid_forward(out[:n] + out[n:])
    y, _ = scale_forward(x, s)
    return y, {"x": x, "s": s, "pools": (avg_cache, max_cache),
               "mlp": (fc1_cache, relu_cache, fc2_cache), "gate": gate_cache}


def channel_attention_backward(dy, cache):
    """Returns (dx, dfc1_weight, dfc1_bias, dfc2_weight, dfc2_bias); biases None if absent."""
    x, s = cache["x"], cache["s"]
    check_shape(dy, x.shape, "dy")
    fc1_cache, relu_cache, fc2_cache = cache["mlp"]
    ds = _kernels().se_backward_ds(dy, x)
    da = sigmoid_backward(ds, cache["gate"])
    d_out = np.concatenate([da, da], axis=0)         # a = out[:n] + out[n:]: both halves get da
    d_hidden, dw2, db2 = linear_backward(d_out, fc2_cache)
    dz, dw1, db1 = linear_backward(relu_backward(d_hidden, relu_cache), fc1_cache)
    n = x.shape[0]
    _, max_cache = cache["pools"]
    dx = _kernels().se_backward_dx(dy, s, dz[:n]) + squeeze_backward(dz[n:], max_cache)
    return dx, dw1, db1, dw2, db2


# ============================================================================ spatial attention
def channel_pool_forward(x):
    """p = [mean_c x, max_c x] at every pixel.  x (N, C, H, W) -> p (N, 2, H, W)."""
    check_nchw(x)
    mean, maximum, argmax = _kernels().channel_pool_forward(x)
    return np.concatenate([mean, maximum], axis=1), (x.shape, argmax)


def channel_pool_backward(dp, cache):
    """dx[n,c,i,j] = dp[n,0,i,j] / C + dp[n,1,i,j] · 1[c = argmax_c].  dp (N, 2, H, W) -> dx."""
    x_shape, argmax = cache
    check_shape(dp, (x_shape[0], 2) + tuple(x_shape[2:]), "dp")
    dp = np.ascontiguousarray(dp)
    return _kernels().channel_pool_backward(dp[:, 0:1], dp[:, 1:2], argmax, x_shape)


def spatial_gate_forward(x, logits):
    """y = σ(logits) · x, one gate per pixel.  x (N, C, H, W), logits (N, 1, H, W) -> y."""
    check_nchw(x)
    check_shape(logits, (x.shape[0], 1) + x.shape[2:], "logits")
    g, gate_cache = sigmoid_forward(logits)
    return _kernels().spatial_scale_forward(x, g), (x, g, gate_cache)


def spatial_gate_backward(dy, cache):
    """(dx, dlogits): dx = dy · g; dlogits = (Σ_c dy·x) · g (1 - g)."""
    x, g, gate_cache = cache
    check_shape(dy, x.shape, "dy")
    dx, dg = _kernels().spatial_scale_backward(dy, x, g)
    return dx, sigmoid_backward(dg, gate_cache)


def spatial_attention_forward(x, conv_weight, bn_weight, bn_bias, running_mean=None,
                              running_var=None, training=True, eps=1e-5):
    """y = σ(BN(conv(channel_pool(x)))) · x.  conv_weight (1, 2, k, k), BN params (1,).

    Batch norm as ``batch_norm2d_forward`` (``training=True``: batch statistics;
    the running ones are not updated here, ``nn.CBAM`` does that). Returns ``(y, cache)``."""
    p, pool_cache = channel_pool_forward(x)
    q, conv_cache = conv2d_forward(p, conv_weight, None, padding=conv_weight.shape[-1] // 2)
    r, bn_cache = batch_norm2d_forward(q, bn_weight, bn_bias, running_mean, running_var,
                                       training, eps)
    y, gate_cache = spatial_gate_forward(x, r)
    return y, (pool_cache, conv_cache, bn_cache, gate_cache)


def spatial_attention_backward(dy, cache):
    """Returns (dx, dconv_weight, dbn_weight, dbn_bias)."""
    pool_cache, conv_cache, bn_cache, gate_cache = cache
    dx, dr = spatial_gate_backward(dy, gate_cache)
    dq, dbn_weight, dbn_bias = batch_norm2d_backward(dr, bn_cache)
    dp, dconv_weight, _ = conv2d_backward(dq, conv_cache)
    return dx + channel_pool_backward(dp, pool_cache), dconv_weight, dbn_weight, dbn_bias


# ============================================================================ the module
def cbam_forward(x, fc1_weight, fc2_weight, conv_weight, bn_weight, bn_bias, running_mean=None,
                 running_var=None, training=True, eps=1e-5):
    """CBAM: spatial_attention(channel_attention(x)) (Sec. 3.1, "sequential, channel first")."""
    x_channel, channel_cache = channel_attention_forward(x, fc1_weight, fc2_weight)
    y, spatial_cache = spatial_attention_forward(x_channel, conv_weight, bn_weight, bn_bias,
                                                 running_mean, running_var, training, eps)
    return y, (channel_cache, spatial_cache)


def cbam_backward(dy, cache):
    """Returns (dx, dfc1_weight, dfc2_weight, dconv_weight, dbn_weight, dbn_bias)."""
    channel_cache, spatial_cache = cache
    d_channel, dconv, dbn_weight, dbn_bias = spatial_attention_backward(dy, spatial_cache)
    dx, dw1, _, dw2, _ = channel_attention_backward(d_channel, channel_cache)
    return dx, dw1, dw2, dconv, dbn_weight, dbn_bias
