"""Gather-Excite (Hu, Shen, Albanie, Sun and Vedaldi, "Gather-Excite: Exploiting Feature
Context in Convolutional Neural Networks", NeurIPS 2018, arXiv 1810.12348).

SE gathers one number per channel from the whole map; GE gathers one per
channel and *neighbourhood* of extent e, then hands each pixel the gate of
its neighbourhood (paper Sec. 3, Eqs. 1-2):

    gather   g = ξ_G(x)                    (N, C, H, W) -> (N, C, h, w)
    excite   y = x ⊙ U(σ(m(g)))            U: nearest upsampling to (H, W)

with m the optional MLP (timm's ``ConvMlp``: 1x1 convolutions C -> C/r -> C
with a ReLU between, applied at every cell of g) or the identity.

The parameter-free gather (GE-θ⁻) is an average over windows of extent e,
written as timm writes it: kernel 2e−1, stride e, padding e−1, the padding not
counted, so every window is centred on its cell and h = ⌈H/e⌉::

    g[n,c,p,q] = 1/|W_pq| Σ_{(i,j) ∈ W_pq} x[n,c,i,j]
    W_pq = rows [p·e − (e−1), p·e + e − 1] × columns [q·e − (e−1), q·e + e − 1], clipped to the map

e = 0 is the global extent: g is the SE squeeze, (N, C, 1, 1), and GE-θ⁻ with
the MLP is exactly an SE block with biases (paper Sec. 3). GE-θ replaces the
average by depthwise strided convolutions (``nn.GatherExcite``).

Nearest upsampling is PyTorch's ``F.interpolate(mode="nearest")``: output row i
reads row r(i) = min(⌊i · h/H⌋, h − 1) (computed in float32 as PyTorch does,
``kernels/numpy/gather.py``), columns likewise.

Backward. The gather is linear, so its backward is its transpose: each cell's
gradient is shared equally by the pixels of its window,

    dx[n,c,i,j] = Σ_{(p,q): (i,j) ∈ W_pq} dg[n,c,p,q] / |W_pq|

The excite y = x ⊙ U(s) with s = σ(a) has two inputs:

    dx[n,c,i,j] = dy[n,c,i,j] · s[n,c,r(i),r(j)]
    ds[n,c,p,q] = Σ_{(i,j): r(i)=p, r(j)=q} dy[n,c,i,j] · x[n,c,i,j]   (Uᵀ: sum the pixels a cell covers)
    da = ds · s (1 − s)

and x reaches y by both paths, so the block's dx is the sum of the excite's
direct dx and the gather's backward of dg (through m when there is one).
The loops over the whole map are the kernels ``ge_gather_*`` and
``ge_excite_*`` of the active backend.
"""
from .._validation import check_float_array, check_nchw, check_same_dtype, check_shape
from ..kernels.backend import current as _kernels
from .activation import relu_backward, relu_forward, sigmoid_backward, sigmoid_forward
from .conv import conv2d_backward, conv2d_forward


def check_extent(extent):
    """``extent`` as an int: 0 (global) or an even e >= 2 (timm's rule), else ValueError."""
    if isinstance(extent, bool) or not isinstance(extent, int) or extent < 0 \
            or extent % 2 == 1:
        raise ValueError(f"extent: expected 0 (global) or an even int >= 2, got {extent!r}")
    return extent


def gather_output_shape(x_shape, extent):
    """(N, C, ⌈H/e⌉, ⌈W/e⌉), or (N, C, 1, 1) for the global extent e = 0."""
    n, c, height, width = x_shape
    if check_extent(extent) == 0:
        return (n, c, 1, 1)
    return (n, c, -(-height // extent), -(-width // extent))


# ============================================================================ gather
def gather_forward(x, extent):
    """GE-θ⁻'s gather: window means of extent e (e = 0: the global mean).

    Shapes: x (N, C, H, W) -> g (N, C, ⌈H/e⌉, ⌈W/e⌉) or (N, C, 1, 1); same dtype.
    """
    check_nchw(x)
    if check_extent(extent) == 0:
        g = _kernels().squeeze_forward(x).reshape(x.shape[0], x.shape[1], 1, 1)
    else:
        g = _kernels().ge_gather_forward(x, extent)
    return g, (x.shape, extent)


def gather_backward(dg, cache):
    """dx[n,c,i,j] = Σ over the windows holding (i, j) of dg / window size.  -> (N, C, H, W)."""
    x_shape, extent = cache
    check_shape(dg, gather_output_shape(x_shape, extent), "dg")
    if extent == 0:
        return _kernels().squeeze_backward(dg.reshape(dg.shape[:2]), x_shape)
    return _kernels().ge_gather_backward(dg, x_shape, extent)


# ============================================================================ excite
def excite_forward(x, logits):
    """y = x ⊙ U(σ(logits)): every pixel times the sigmoid gate of its nearest cell.

    Shapes: x (N, C, H, W); logits (N, C, h, w) with h <= H, w <= W -> y like x.
    The sigmoid runs on the small map, before upsampling (they commute).
    """
    check_nchw(x)
    check_float_array(logits, "logits", ndim=4)
    check_same_dtype(x, logits, "x", "logits")
    if logits.shape[:2] != x.shape[:2] or logits.shape[2] > x.shape[2] \
            or logits.shape[3] > x.shape[3]:
        raise ValueError(f"logits: expected (N, C, h, w) = ({x.shape[0]}, {x.shape[1]}, "
                         f"<= {x.shape[2]}, <= {x.shape[3]}) for x {x.shape}, got {logits.shape}")
    gate, gate_cache = sigmoid_forward(logits)
    return _kernels().ge_excite_forward(x, gate), (x, gate, gate_cache)


def excite_backward(dy, cache):
    """(dx, dlogits): dx = dy ⊙ U(s);  dlogits = Uᵀ(dy ⊙ x) · s (1 − s)."""
    x, gate, gate_cache = cache
    check_shape(dy, x.shape, "dy")
    dx, dgate = _kernels().ge_excite_backward(dy, x, gate)
    return dx, sigmoid_backward(dgate, gate_cache)


# ============================================================================ the block
def cell_mlp_forward(g, w1, b1, w2, b2):
    """m(g) = W2 ReLU(W1 g + b1) + b2 at every cell: 1x1 convolutions, w1 (C/r, C, 1, 1),
    w2 (C, C/r, 1, 1) (timm's ``ConvMlp``). Returns (logits, cache)."""
    hidden, fc1_cache = conv2d_forward(g, w1, b1)
    hidden, relu_cache = relu_forward(hidden)
    logits, fc2_cache = conv2d_forward(hidden, w2, b2)
    return logits, (fc1_cache, relu_cache, fc2_cache)


def cell_mlp_backward(dlogits, cache):
    """(dg, dw1, db1, dw2, db2), the two 1x1 convolutions' backward around the ReLU's."""
    fc1_cache, relu_cache, fc2_cache = cache
    dhidden, dw2, db2 = conv2d_backward(dlogits, fc2_cache)
    dg, dw1, db1 = conv2d_backward(relu_backward(dhidden, relu_cache), fc1_cache)
    return dg, dw1, db1, dw2, db2


def gather_excite_forward(x, extent, w1=None, b1=None, w2=None, b2=None):
    """GE-θ⁻ (with the MLP when w1 is given): y = x ⊙ U(σ(m(gather_e(x)))).

    Shapes: x (N, C, H, W) -> y (N, C, H, W); w1 (C/r, C, 1, 1), b1 (C/r,),
    w2 (C, C/r, 1, 1), b2 (C,). Without w1 and w2, m is the identity.
    """
    if (w1 is None) != (w2 is None):
        raise ValueError("w1, w2: expected both (the MLP) or neither (no MLP)")
    g, gather_cache = gather_forward(x, extent)
    logits, mlp_cache = (g, None) if w1 is None else cell_mlp_forward(g, w1, b1, w2, b2)
    y, excite_cache = excite_forward(x, logits)
    return y, (gather_cache, mlp_cache, excite_cache)


def gather_excite_backward(dy, cache):
    """(dx, dw1, db1, dw2, db2); x reaches y directly and through the gate, and the two add:

        dx = dy ⊙ U(s)  +  gatherᵀ( mᵀ( Uᵀ(dy ⊙ x) · s(1 − s) ) )

    The parameter gradients are None without the MLP (and a bias's without that bias).
    """
    gather_cache, mlp_cache, excite_cache = cache
    dx_direct, dlogits = excite_backward(dy, excite_cache)
    grads = (None,) * 4
    if mlp_cache is not None:
        dlogits, *grads = cell_mlp_backward(dlogits, mlp_cache)
    return (dx_direct + gather_backward(dlogits, gather_cache), *grads)
