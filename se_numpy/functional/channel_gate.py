"""The shape every channel-attention block shares: y = s(mean(x)) · x, with any excitation.

SE, Effective SE and ECA differ only in the map z -> s from the pooled vector
z[n,c] = 1/(HW) Σ_ij x[n,c,i,j] to the gates s (N, C). The rest, and its
backward, is the same three steps (Hu et al., Sec. 3; functional/se.py):

    forward    z = squeeze(x),   s, cache = excite(z),   y = s · x
    backward   ds[n,c] = Σ_ij dy·x                       one pass over dy and x
               dz, *dparams = excite_backward(ds)        (N, C)-sized
               dx = dy · s + dz / (HW)                   one pass: both paths x reaches y by

``channel_gate_forward(x, excite)`` takes the excitation as a function
``z -> (s, cache)`` and ``channel_gate_backward`` its backward
``(ds, cache) -> (dz, *dparams)``; the passes over the map run in the active
kernel backend (``se_backward_ds``, ``se_backward_dx``).
"""
from .._validation import check_shape
from ..kernels.backend import current as _kernels
from .se import scale_forward, squeeze_forward


def channel_gate_forward(x, excite):
    """y = excite(mean_ij(x)) · x.  x (N, C, H, W) -> y; the gates (N, C) in ``cache["s"]``."""
    z, _ = squeeze_forward(x, "avg")
    s, excitation_cache = excite(z)
    y, _ = scale_forward(x, s)
    return y, {"x": x, "s": s, "excitation": excitation_cache}


def channel_gate_backward(dy, cache, excite_backward):
    """Returns ``(dx, *dparams)``, the parameter gradients in ``excite_backward``'s order."""
    check_shape(dy, cache["x"].shape, "dy")
    ds = _kernels().se_backward_ds(dy, cache["x"])
    dz, *dparams = excite_backward(ds, cache["excitation"])
    dx = _kernels().se_backward_dx(dy, cache["s"], dz)
    return (dx, *dparams)
