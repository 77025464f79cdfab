"""The reference SE kernels: squeeze, scale and the two fused backward passes, plain NumPy.

Conventions shared by every backend (``kernels/contract.py`` lists the kernels):

* feature maps are NCHW, float32 or float64; outputs keep the input dtype;
* reductions of float32 inputs accumulate in float64, then round once, so a
  mean over H·W = 224² agrees with the float64 result to ~1e-7 relative;
* ``stride``, ``padding``, ``dilation`` and ``kernel`` are ``(int, int)`` pairs
  (rows, columns); the caller (``functional/``) normalises ints to pairs;
* arguments arrive validated by ``functional/`` (shapes, dtypes) and by the
  contract's one shared check (no empty maps), so kernels do not re-check them.
"""
import numpy as np


# --------------------------------------------------------------------------- squeeze
def squeeze_forward(x):
    """Global average pooling. z[n,c] = 1/(HW) Σ_ij x[n,c,i,j].  (N,C,H,W) -> (N,C)."""
    return x.mean(axis=(2, 3), dtype=np.float64).astype(x.dtype, copy=False)


def squeeze_backward(dz, x_shape):
    """dx[n,c,i,j] = dz[n,c] / (HW): every position shares the mean equally.  (N,C) -> x_shape."""
    height, width = x_shape[2], x_shape[3]
    dx = np.empty(x_shape, dtype=dz.dtype)
    dx[...] = (dz / dz.dtype.type(height * width))[:, :, None, None]
    return dx


def max_squeeze_forward(x):
    """Global max pooling. z[n,c] = max_ij x[n,c,i,j].

    Returns ``(z, argmax)``; ``argmax[n,c]`` (int64) is the flat index i·W + j of
    the *first* maximum in row-major order (NumPy's tie rule), and the whole
    gradient of z[n,c] goes to that one position.
    """
    rows = x.reshape(x.shape[0], x.shape[1], -1)
    argmax = rows.argmax(axis=2)
    z = np.take_along_axis(rows, argmax[:, :, None], axis=2)[:, :, 0]
    return z, argmax.astype(np.int64, copy=False)


def max_squeeze_backward(dz, argmax, x_shape):
    """dx[n,c,argmax[n,c]] = dz[n,c]; zero elsewhere."""
    n, c = x_shape[0], x_shape[1]
    dx = np.zeros((n, c, x_shape[2] * x_shape[3]), dtype=dz.dtype)
    np.put_along_axis(dx, argmax[:, :, None], dz[:, :, None], axis=2)
    return dx.reshape(x_shape)


# --------------------------------------------------------------------------- scale
def scale_forward(x, s):
    """Channel-wise rescale (paper Eq. 4). y[n,c,i,j] = s[n,c] · x[n,c,i,j]."""
    return x * s[:, :, None, None]


def scale_backward(dy, x, s):
    """Both gradients of y = s·x: dx = dy·s,  ds[n,c] = Σ_ij dy[n,c,i,j]·x[n,c,i,j]."""
    return dy * s[:, :, None, None], se_backward_ds(dy, x)


# --------------------------------------------------------------------------- fused SE
def se_backward_ds(dy, x):
    """First backward pass of an SE block: ds[n,c] = Σ_ij dy·x (reads dy and x once)."""
    return np.einsum("ncij,ncij->nc", dy, x, dtype=np.float64).astype(dy.dtype, copy=False)


def se_backward_dx(dy, s, dz):
    """Second backward pass of an SE block: x reaches y directly and through z = mean(x), so

        dx[n,c,i,j] = dy[n,c,i,j]·s[n,c] + dz[n,c]/(HW)

    in one pass (reads dy, writes dx)."""
    hw = dy.dtype.type(dy.shape[2] * dy.shape[3])
    return dy * s[:, :, None, None] + (dz / hw)[:, :, None, None]


def scale_add_forward(u, s, shortcut):
    """Caffe SENet's "Axpy": out = s·u + shortcut, the scale fused with the residual add."""
    return u * s[:, :, None, None] + shortcut
