"""The readable reference for every hot loop: plain NumPy, one idea per function.

Every backend (``cpu.py``, ``cuda.py``) implements these same functions with
these same signatures and is tested against this file. Conventions:

* feature maps are NCHW, float32 or float64; outputs keep the input dtype;
* reductions of float32 inputs accumulate in float64, then round once, so a
  mean over H·W = 224² agrees with the float64 result to ~1e-7 relative;
* ``stride``, ``padding``, ``dilation`` and ``kernel`` are ``(int, int)`` pairs
  (rows, columns); the caller (``functional/``) normalises ints to pairs;
* arguments arrive already validated by ``functional/`` (shapes, dtypes), so
  kernels do not re-check them.
"""
import numpy as np

NAME = "numpy"


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


def scale_add_backward(dout, u, s):
    """Gradients of out = s·u + shortcut: (du, ds). d(shortcut) is dout itself (not copied)."""
    return scale_backward(dout, u, s)


# --------------------------------------------------------------------------- conv helpers
def conv_output_size(size, kernel, stride, padding, dilation=1):
    """Output length of a convolution/pooling along one axis (floor mode, as PyTorch)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def im2col(x, kernel, stride, padding, dilation):
    """Unfold every receptive field into a column.

    x (N,C,H,W) -> cols (N, C·kh·kw, OH·OW) with row index c·kh·kw + a·kw + b, so
    that a convolution is ``weight.reshape(O, -1) @ cols`` (per group).
    cols[n, (c,a,b), (p,q)] = x_pad[n, c, p·sh + a·dh, q·sw + b·dw].
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    n, c, h, w = x.shape
    oh = conv_output_size(h, kh, sh, ph, dh)
    ow = conv_output_size(w, kw, sw, pw, dw)
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = np.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for a in range(kh):
        for b in range(kw):
            rows = slice(a * dh, a * dh + sh * (oh - 1) + 1, sh)
            columns = slice(b * dw, b * dw + sw * (ow - 1) + 1, sw)
            cols[:, :, a, b] = x_pad[:, :, rows, columns]
    return cols.reshape(n, c * kh * kw, oh * ow)


def col2im(cols, x_shape, kernel, stride, padding, dilation):
    """Adjoint of im2col: scatter-add every column entry back to the pixel it came from.

    A pixel covered by several receptive fields receives the sum of their
    gradients, which is why this is ``+=`` and not ``=``.
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    n, c, h, w = x_shape
    oh = conv_output_size(h, kh, sh, ph, dh)
    ow = conv_output_size(w, kw, sw, pw, dw)
    cols = cols.reshape(n, c, kh, kw, oh, ow)
    dx_pad = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for a in range(kh):
        for b in range(kw):
            rows = slice(a * dh, a * dh + sh * (oh - 1) + 1, sh)
            columns = slice(b * dw, b * dw + sw * (ow - 1) + 1, sw)
            dx_pad[:, :, rows, columns] += cols[:, :, a, b]
    return np.ascontiguousarray(dx_pad[:, :, ph:ph + h, pw:pw + w])



def _batch_side_by_side(rows_per_sample, groups):
    """(N, g·R, L) -> (g, R, N·L): split the rows into groups, put the samples' columns side by side.

    im2col orders rows channel-major (c, a, b), so group γ's rows are one
    contiguous block; the transpose copies once so each group is one matrix.
    """
    n, rows, locations = rows_per_sample.shape
    by_group = rows_per_sample.reshape(n, groups, rows // groups, locations)
    return by_group.transpose(1, 2, 0, 3).reshape(groups, rows // groups, n * locations)


def _back_to_batch(side_by_side, n):
    """(g, R, N·L) -> (N, g·R, L): the inverse of ``_batch_side_by_side``."""
    groups, rows, total = side_by_side.shape
    by_sample = side_by_side.reshape(groups, rows, n, total // n).transpose(2, 0, 1, 3)
    return by_sample.reshape(n, groups * rows, total // n)


def conv2d_forward(x, weight, stride, padding, dilation, groups):
    """Convolution without bias as im2col + one matrix product per group.  -> (N, O, OH, OW).

    x (N, C, H, W), weight (O, C/g, kh, kw). The columns of the whole batch lie
    side by side, so each group is one large product (one BLAS call, not N)::

        cols_γ = im2col(x), rows of group γ       (C/g·kh·kw, N·OH·OW)
        out_γ  = W_γ (O/g, C/g·kh·kw) @ cols_γ    (O/g, N·OH·OW), then back to NCHW
    """
    n, _, height, width = x.shape
    out_channels, _, kernel_h, kernel_w = weight.shape
    out_h = conv_output_size(height, kernel_h, stride[0], padding[0], dilation[0])
    out_w = conv_output_size(width, kernel_w, stride[1], padding[1], dilation[1])
    cols = im2col(x, (kernel_h, kernel_w), stride, padding, dilation)    # (N, C·kh·kw, L)
    cols_by_group = _batch_side_by_side(cols, groups)                   # (g, C/g·kh·kw, N·L)
    weight_by_group = weight.reshape(groups, out_channels // groups, -1)  # (g, O/g, C/g·kh·kw)
    out = _back_to_batch(weight_by_group @ cols_by_group, n)            # (N, O, L)
    return out.reshape(n, out_channels, out_h, out_w)


def conv2d_backward(dout, x, weight, stride, padding, dilation, groups):
    """``(dx, dweight)`` of ``conv2d_forward``; dout (N, O, OH, OW).

    From the matrix product Y = W·X (dW = dY·Xᵀ, dX = Wᵀ·dY), per group::

        dW_γ    = dout_γ @ cols_γᵀ     (O/g, C/g·kh·kw)   the sum over the batch is inside
        dcols_γ = W_γᵀ @ dout_γ        (C/g·kh·kw, N·OH·OW)
        dx      = col2im(dcols)

    The columns are unfolded again from x rather than kept from the forward
    pass: they are kh·kw times the size of x, and unfolding is cheap.
    """
    n, out_channels = dout.shape[:2]
    kernel = weight.shape[2:]
    cols = im2col(x, kernel, stride, padding, dilation)
    cols_by_group = _batch_side_by_side(cols, groups)                   # (g, K, N·L)
    dout_by_group = _batch_side_by_side(dout.reshape(n, out_channels, -1), groups)
    weight_by_group = weight.reshape(groups, out_channels // groups, -1)   # (g, O/g, K)
    dweight = (dout_by_group @ cols_by_group.transpose(0, 2, 1)).reshape(weight.shape)
    dcols = _back_to_batch(weight_by_group.transpose(0, 2, 1) @ dout_by_group, n)
    dx = col2im(dcols, x.shape, kernel, stride, padding, dilation)
    return dx, dweight


# --------------------------------------------------------------------------- batch normalisation
# The four passes of BatchNorm2d (math and derivation: functional/norm.py).
# Every per-channel vector is (C,); M = N·H·W values per channel.
def _per_channel(values):
    return values[None, :, None, None]


def batch_norm_statistics(x):
    """Batch mean μ_c and biased variance σ²_c of x (N,C,H,W), accumulated in float64, in x's dtype."""
    mean = x.mean(axis=(0, 2, 3), dtype=np.float64)
    variance = ((x - _per_channel(mean)) ** 2).mean(axis=(0, 2, 3))   # float64: x − μ promotes
    return mean.astype(x.dtype), variance.astype(x.dtype)


def batch_norm_normalize(x, mean, inverse_std, weight, bias):
    """``(y, normalized)``: x̂ = (x − μ_c)·inverse_std_c, y = x̂·γ_c + β_c, all in x's dtype."""
    normalized = (x - _per_channel(mean)) * _per_channel(inverse_std)
    return normalized * _per_channel(weight) + _per_channel(bias), normalized


def batch_norm_backward_sums(dy, normalized):
    """``(Σ dy, Σ dy·x̂)`` per channel, over N, H and W (= dβ and dγ)."""
    return dy.sum(axis=(0, 2, 3)), (dy * normalized).sum(axis=(0, 2, 3))


def batch_norm_backward_dx(dy, normalized, scale, sum_dy, sum_dy_normalized):
    """Training-mode dx = scale_c/M · (M·dy − Σdy − x̂·Σ dy·x̂), with scale = γ/sqrt(σ² + eps)."""
    count = dy.shape[0] * dy.shape[2] * dy.shape[3]
    return (_per_channel(scale) / dy.dtype.type(count)
            * (count * dy - _per_channel(sum_dy) - normalized * _per_channel(sum_dy_normalized)))

# --------------------------------------------------------------------------- pooling
def _pool_windows(x, kernel, stride, padding, fill):
    """(N,C,H,W) -> (N,C,OH,OW,kh·kw): every pooling window, padded with ``fill``."""
    n, c = x.shape[:2]
    x_pad = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2), constant_values=fill)
    cols = im2col(x_pad, kernel, stride, (0, 0), (1, 1))          # (N, C·kh·kw, OH·OW)
    oh = conv_output_size(x.shape[2], kernel[0], stride[0], padding[0])
    ow = conv_output_size(x.shape[3], kernel[1], stride[1], padding[1])
    cols = cols.reshape(n, c, kernel[0] * kernel[1], oh, ow)
    return cols.transpose(0, 1, 3, 4, 2)


def max_pool2d_forward(x, kernel, stride, padding):
    """out[n,c,p,q] = max over the window; argmax (int64) is the flat input index h·W + w
    of the first maximum in the window. Padding is -inf, so it never wins against a
    real value (only a window whose real cells are all -inf could point at padding;
    padding <= kernel/2, as PyTorch requires, keeps a real cell in every window)."""
    windows = _pool_windows(x, kernel, stride, padding, -np.inf)
    which = windows.argmax(axis=4)                                   # index inside the window
    out = np.take_along_axis(windows, which[..., None], axis=4)[..., 0]
    oh, ow = out.shape[2:]
    a, b = np.divmod(which, kernel[1])
    rows = np.arange(oh)[:, None] * stride[0] - padding[0] + a
    columns = np.arange(ow)[None, :] * stride[1] - padding[1] + b
    return out, (rows * x.shape[3] + columns).astype(np.int64)


def max_pool2d_backward(dout, argmax, x_shape):
    """Route each dout to its window's arg-max; overlapping windows accumulate."""
    n, c, h, w = x_shape
    dx = np.zeros((n, c, h * w), dtype=dout.dtype)
    flat_index = argmax.reshape(n, c, -1)
    for i in range(n):
        for j in range(c):
            np.add.at(dx[i, j], flat_index[i, j], dout[i, j].ravel())
    return dx.reshape(x_shape)


def avg_pool2d_forward(x, kernel, stride, padding):
    """out = mean over the window, padding counted as zeros (PyTorch's count_include_pad=True)."""
    windows = _pool_windows(x, kernel, stride, padding, 0)
    return windows.mean(axis=4, dtype=np.float64).astype(x.dtype, copy=False)


def avg_pool2d_backward(dout, x_shape, kernel, stride, padding):
    """Each window spreads dout/(kh·kw) over its cells; col2im does the accumulation."""
    n, c = x_shape[:2]
    kk = kernel[0] * kernel[1]
    share = (dout / dout.dtype.type(kk)).reshape(n, c, 1, -1)
    cols = np.broadcast_to(share, (n, c, kk, share.shape[3])).reshape(n, c * kk, -1)
    return col2im(np.ascontiguousarray(cols), x_shape, kernel, stride, padding, (1, 1))
