"""Selective Kernel fusion (Li, Wang, Hu and Yang, "Selective Kernel Networks", CVPR 2019,
arXiv 1903.06586, Sec. 3.1): softmax attention *across* branches of different receptive fields.

A Selective Kernel unit runs P branches on its input (here, as in timm, 3x3
convolutions with dilations 1, 2, ..., each with BN and ReLU) and fuses their
maps U_1 … U_P (N, C, H, W) with per-channel weights that sum to 1 over the
branches (paper Eqs. 1-6):

    fuse      z[n,c]    = 1/(HW) Σ_p Σ_ij U_p[n,c,i,j]             (Eqs. 1-2: sum, then squeeze)
    compact   t         = ReLU(BN(W_r z))          W_r (A, C)       (Eq. 3; timm: fc_reduce, bn)
    select    l         = W_s t                    W_s (P·C, A)     (timm: fc_select)
              a[n,p,c]  = exp(l[n,p,c]) / Σ_q exp(l[n,q,c])         (Eq. 5: softmax over branches)
              V[n,c,i,j] = Σ_p a[n,p,c] · U_p[n,c,i,j]              (Eq. 6)

The functions here are the steps that are new: the path-summed squeeze, the
softmax over paths and the weighted sum; W_r, BN and W_s are 1x1 convolutions
and a batch norm on (N, ·, 1, 1) maps (``nn.SelectiveKernel``).

Backward, step by step in reverse:

    weighted sum   dU_p = dV ⊙ a_p (broadcast over i, j)
                   da[n,p,c] = Σ_ij dV[n,c,i,j] · U_p[n,c,i,j]        (the SE scale's pair)
    softmax        dl[n,p,c] = a[n,p,c] · (da[n,p,c] − Σ_q a[n,q,c] · da[n,q,c])
    squeeze        every U_p gets the same dz[n,c] / (HW) at every (i, j)

Each U_p reaches V twice, through its own weight and through z, so a
branch's gradient is dV ⊙ a_p + dz/(HW).
"""
import numpy as np

from .._validation import check_float_array, check_nchw, check_same_dtype, check_shape
from ..kernels.backend import current as _kernels


def _check_paths(paths):
    if not isinstance(paths, (list, tuple)) or len(paths) < 2:
        raise ValueError(f"paths: expected a list of at least 2 maps, got "
                         f"{type(paths).__name__} of length {len(paths) if hasattr(paths, '__len__') else '?'}")
    for index, path in enumerate(paths):
        check_nchw(path, f"paths[{index}]")
        check_shape(path, paths[0].shape, f"paths[{index}]")
        check_same_dtype(paths[0], path, "paths[0]", f"paths[{index}]")


# ============================================================================ fuse
def path_squeeze_forward(paths):
    """z[n,c] = 1/(HW) Σ_p Σ_ij U_p[n,c,i,j] (paper Eqs. 1-2).  P maps (N,C,H,W) -> (N,C)."""
    _check_paths(paths)
    total = paths[0].copy()
    for path in paths[1:]:
        total += path
    return _kernels().squeeze_forward(total), (paths[0].shape, len(paths))


def path_squeeze_backward(dz, cache):
    """dU_p[n,c,i,j] = dz[n,c] / (HW), the same map for every path (returned once)."""
    x_shape, _ = cache
    check_shape(dz, x_shape[:2], "dz")
    return _kernels().squeeze_backward(dz, x_shape)


# ============================================================================ softmax over paths
def path_softmax_forward(logits, num_paths):
    """a[n,p,c] = softmax over p of logits[n, p·C + c] (paper Eq. 5).  (N, P·C) -> (N, P, C).

    The logits are laid out path-major, as timm's ``view(B, P, C, 1, 1)``. The
    maximum over paths is subtracted first, so exp never overflows.
    """
    check_float_array(logits, "logits", ndim=2)
    if logits.shape[1] % num_paths:
        raise ValueError(f"logits: expected (N, P·C) with P = {num_paths}, got {logits.shape}")
    grouped = logits.reshape(logits.shape[0], num_paths, -1)
    exponentials = np.exp(grouped - grouped.max(axis=1, keepdims=True))
    attention = exponentials / exponentials.sum(axis=1, keepdims=True)
    return attention, attention


def path_softmax_backward(dattention, cache):
    """dl = a ⊙ (da − Σ_q a_q da_q), the softmax's Jacobian (diag(a) − a aᵀ) applied to da."""
    attention = cache
    check_shape(dattention, attention.shape, "dattention")
    inner = np.sum(attention * dattention, axis=1, keepdims=True)
    return (attention * (dattention - inner)).reshape(attention.shape[0], -1)


# ============================================================================ weighted sum
def select_forward(paths, attention):
    """V = Σ_p a_p ⊙ U_p (paper Eq. 6).  P maps (N,C,H,W), a (N,P,C) -> V (N,C,H,W)."""
    _check_paths(paths)
    n, c = paths[0].shape[:2]
    check_shape(attention, (n, len(paths), c), "attention")
    check_same_dtype(paths[0], attention, "paths[0]", "attention")
    out = _kernels().scale_forward(paths[0], np.ascontiguousarray(attention[:, 0]))
    for index in range(1, len(paths)):
        out += _kernels().scale_forward(paths[index], np.ascontiguousarray(attention[:, index]))
    return out, (paths, attention)


def select_backward(dout, cache):
    """(dpaths, dattention): dU_p = dV ⊙ a_p and da_p = Σ_ij dV ⊙ U_p, one pass per path."""
    paths, attention = cache
    check_shape(dout, paths[0].shape, "dout")
    dpaths, dattention = [], np.empty_like(attention)
    for index, path in enumerate(paths):
        dpath, dattention[:, index] = _kernels().scale_backward(
            dout, path, np.ascontiguousarray(attention[:, index]))
        dpaths.append(dpath)
    return dpaths, dattention
