"""The reference per-pixel channel pooling of spatial attention (CBAM, Woo et al. 2018, Sec. 3.1).

Where the SE squeeze pools each channel over its pixels, spatial attention
pools each pixel over its channels: one mean and one max per (n, i, j).

    mean[n,0,i,j] = 1/C Σ_c x[n,c,i,j]
    max[n,0,i,j]  = max_c x[n,c,i,j],   argmax[n,0,i,j] = the first such c (NumPy's rule)

Backward: the mean shares its gradient equally over the C channels, the max
gives all of it to its one arg-max channel:

    dx[n,c,i,j] = dmean[n,0,i,j] / C + dmax[n,0,i,j] · 1[c = argmax[n,0,i,j]]
"""
import numpy as np


def channel_pool_forward(x):
    """``(mean, max, argmax)``, each (N, 1, H, W); float32 means accumulate in float64."""
    mean = x.mean(axis=1, keepdims=True, dtype=np.float64).astype(x.dtype, copy=False)
    argmax = x.argmax(axis=1)[:, None]
    maximum = np.take_along_axis(x, argmax, axis=1)
    return mean, maximum, argmax.astype(np.int64, copy=False)


def channel_pool_backward(dmean, dmax, argmax, x_shape):
    """dx = dmean / C at every channel, plus dmax at the arg-max channel.  -> x_shape."""
    channels = x_shape[1]
    share = dmean / dmean.dtype.type(channels)
    is_argmax = np.arange(channels)[None, :, None, None] == argmax
    return np.where(is_argmax, share + dmax, share).astype(dmean.dtype, copy=False)
