"""The end of a residual unit: out = ReLU(pre-activation), forward and backward (He et al. 2016).

    out  = max(u + shortcut, 0)                     (``add_relu_forward``)
    out  = max(s·u + shortcut, 0)                   (SE in the standard position, paper
                                                     Fig. 3: ``se.se_block_add_forward``)
    d_pre = d_out · 1[pre > 0] = d_out · 1[out > 0]  (``relu_output_backward``)

The mask of ReLU's derivative is read off the output: out equals pre where
pre > 0 and is 0 (or NaN, with pre NaN) where not, so 1[out > 0] = 1[pre > 0]
and the forward keeps no mask of its own. d_pre then goes unchanged to both
branches, u and the shortcut (the derivative of a sum).
"""
from .._validation import check_nchw, check_same_dtype, check_shape
from ..kernels.backend import current as _kernels


def add_relu_forward(u, shortcut):
    """out = max(u + shortcut, 0) in one pass. u, shortcut (N, C, H, W). Returns ``(out, out)``:
    the cache is the output itself (the backward's mask)."""
    check_nchw(u, "u")
    check_shape(shortcut, u.shape, "shortcut")
    check_same_dtype(u, shortcut, "u", "shortcut")
    out = _kernels().add_relu_forward(u, shortcut)
    return out, out


def relu_output_backward(dout, out):
    """d_pre = dout · 1[out > 0], with ``out`` the ReLU's output (N, C, H, W)."""
    check_shape(dout, out.shape, "dout")
    check_same_dtype(out, dout, "out", "dout")
    return _kernels().relu_backward(dout, out)
