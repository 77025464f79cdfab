"""The reference spatial gate product of spatial attention (CBAM Sec. 3.1, scSE Sec. 2.2).

Where SE's scale multiplies each channel map by one number, a spatial gate
multiplies each pixel by one number, the same for every channel:

    y[n,c,i,j] = x[n,c,i,j] · g[n,0,i,j]          x (N, C, H, W), g (N, 1, H, W)

Backward: y is linear in x (gradient dy·g), and g[n,0,i,j] touches the C
numbers of its pixel, so its gradient sums over the channels, as SE's ds sums
over the pixels:

    dx[n,c,i,j] = dy[n,c,i,j] · g[n,0,i,j]
    dg[n,0,i,j] = Σ_c dy[n,c,i,j] · x[n,c,i,j]     (float32 accumulates in float64)
"""
import numpy as np


def spatial_scale_forward(x, g):
    """y = x · g, g broadcast over the channels.  x (N, C, H, W), g (N, 1, H, W) -> y."""
    return (x * g).astype(x.dtype, copy=False)


def spatial_scale_backward(dy, x, g):
    """``(dx, dg)``: dx = dy · g;  dg = Σ_c dy·x, the products and their sum in float64."""
    dg = np.sum(dy.astype(np.float64) * x, axis=1, keepdims=True)
    return (dy * g).astype(dy.dtype, copy=False), dg.astype(dy.dtype)
