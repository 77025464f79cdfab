"""Batch normalisation over NCHW feature maps (Ioffe & Szegedy 2015), forward and backward.

Every channel c is normalised over its M = N·H·W values, then scaled and shifted::

    μ_c  = 1/M Σ_{n,h,w} x[n,c,h,w]                 (batch mean)
    σ²_c = 1/M Σ_{n,h,w} (x[n,c,h,w] − μ_c)²        (batch variance, biased: divides by M)
    x̂    = (x − μ_c) / sqrt(σ²_c + eps)
    y    = γ_c · x̂ + β_c                            (γ = weight, β = bias; both (C,))

Training mode uses the batch statistics μ, σ² (and keeps running averages of
them for later); evaluation mode uses the running averages instead, so the
output of one sample no longer depends on the rest of the batch.

Backward, with dy = dL/dy and sums Σ over the M positions (n, h, w) of a channel:

    dβ = Σ dy
    dγ = Σ dy · x̂

*Evaluation mode*: μ and σ are constants, so x̂ is an affine function of x and

    dx = dy · γ / sqrt(σ²_running + eps).

*Training mode*: μ and σ² depend on every x of the channel. Write s = sqrt(σ² + eps)
and g = dy·γ (= dL/dx̂). Through the three paths x → x̂ directly, x → μ, x → σ²:

    dL/dσ² = Σ g · (x − μ) · (−1/2) s⁻³          = −1/(2 s²) · Σ g·x̂
    dL/dμ  = Σ g · (−1/s)  + dL/dσ² · (−2/M) Σ (x − μ)  = −1/s · Σ g      (the second sum is 0)
    dx     = g/s + dL/dσ² · 2(x − μ)/M + dL/dμ / M

Substituting, with x − μ = s·x̂:

    dx = 1/(M·s) · (M·g − Σ g − x̂ · Σ g·x̂)
       = 1/M · γ · s⁻¹ · (M·dy − Σ dy − x̂ · Σ dy·x̂)

which is the compact formula computed here (γ is a per-channel constant, so it
moves outside the sums). The last two terms remove from M·dy its mean and its
component along x̂: a batch-normalised output cannot change by shifting or
rescaling the whole channel, so those directions carry no gradient.

*BatchNorm2d followed by ReLU* (ResNet's BN → ReLU), ``batch_norm2d_relu_forward``:
out = max(y, 0) in the same pass, and backward first applies ReLU's
derivative, g = dy · 1[y > 0], then the formulas above with g for dy. The
mask is recomputed from x̂ (y = γ·x̂ + β), so no mask and no pre-ReLU map is
stored, and neither direction spends a pass on the ReLU.

The passes over the map run in the active backend's kernels: in training mode
one call per direction, ``batch_norm_train_forward`` (statistics, 1/sqrt(σ² + eps),
normalisation) and ``batch_norm_train_backward`` (Σ dy and Σ dy·x̂, then dx), or
their ``batch_norm_relu_*`` twins; in evaluation mode ``batch_norm_affine``. The
plain NumPy version, each of those the composition of the single passes
(``batch_norm_statistics``, ``batch_norm_normalize``, ...), is in
``kernels/numpy/norm.py``.

Running statistics follow PyTorch exactly (see ``update_running_stats``).
"""
from typing import NamedTuple, Optional

import numpy as np

from .._validation import check_float_array, check_nchw, check_same_dtype, check_shape
from ..kernels import backend
from ..kernels.numpy.norm import inverse_standard_deviation


def _per_channel(values):
    """(C,) -> (1, C, 1, 1), so a per-channel value lines up with an NCHW map."""
    return values[None, :, None, None]


class BatchNorm2dCache(NamedTuple):
    """What ``batch_norm2d_backward`` needs, and the batch statistics for the running update."""
    normalized: Optional[np.ndarray]  # x̂ (N, C, H, W); None in evaluation mode (see ``input``)
    inverse_std: np.ndarray         # 1 / sqrt(σ² + eps), (C,)
    weight: Optional[np.ndarray]    # γ (C,), or None for γ = 1 (affine=False)
    has_bias: bool
    training: bool                  # True: batch statistics were used
    batch_mean: Optional[np.ndarray]      # μ (C,), training mode only
    batch_variance: Optional[np.ndarray]  # σ² (C,), biased, training mode only
    relu: bool = False                    # True: the output went through ReLU (fused)
    bias: Optional[np.ndarray] = None     # β (C,) when ``relu``: the mask is 1[γ·x̂ + β > 0]
    # evaluation mode: the forward wrote y only; x̂ = (x − μ)·inverse_std is recomputed from these
    input: Optional[np.ndarray] = None    # x (N, C, H, W)
    mean: Optional[np.ndarray] = None     # μ (C,), the running mean used
    affine: Optional[tuple] = None        # (a, b) of y = a·x + b, (C,) each: the ReLU's mask

    def normalized_map(self):
        """x̂, stored (training mode) or recomputed from the input (evaluation mode)."""
        if self.normalized is not None:
            return self.normalized
        return (self.input - _per_channel(self.mean)) * _per_channel(self.inverse_std)


def _check_per_channel(value, name, x):
    if value is not None:
        check_float_array(value, name, ndim=1)
        check_same_dtype(x, value, "x", name)
        check_shape(value, (x.shape[1],), name)


def batch_norm2d_forward(x, weight=None, bias=None, running_mean=None, running_var=None,
                         training=True, eps=1e-5):
    """y = γ·(x − μ)/sqrt(σ² + eps) + β per channel.  Returns ``(y, cache)``.

    x (N, C, H, W); weight γ, bias β, running_mean, running_var all (C,) or None.
    ``training=True`` normalises with the batch statistics (``cache.batch_mean``,
    ``cache.batch_variance`` hold them for ``update_running_stats``);
    ``training=False`` normalises with ``running_mean`` and ``running_var``, which
    are then required. Nothing is updated in place.
    """
    return _batch_norm2d(x, weight, bias, running_mean, running_var, training, eps, relu=False)


def batch_norm2d_relu_forward(x, weight=None, bias=None, running_mean=None, running_var=None,
                              training=True, eps=1e-5):
    """out = max(0, γ·(x − μ)/sqrt(σ² + eps) + β): ``batch_norm2d_forward`` then ReLU, one pass.

    Arguments and shapes as ``batch_norm2d_forward``; returns ``(out, cache)``.
    ``batch_norm2d_backward(dout, cache)`` goes back through both.
    """
    return _batch_norm2d(x, weight, bias, running_mean, running_var, training, eps, relu=True)


def _batch_norm2d(x, weight, bias, running_mean, running_var, training, eps, relu):
    check_nchw(x, "x")
    for value, name in ((weight, "weight"), (bias, "bias"), (running_mean, "running_mean"),
                        (running_var, "running_var")):
        _check_per_channel(value, name, x)
    if not eps > 0:
        raise ValueError(f"eps: expected a positive number, got {eps!r}")

    # γ = 1 and β = 0 when absent: x̂·1 + 0 is x̂ exactly
    gamma = weight if weight is not None else np.ones(x.shape[1], x.dtype)
    beta = bias if bias is not None else np.zeros(x.shape[1], x.dtype)
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm2d_forward: evaluation mode (training=False) needs "
                             "running_mean and running_var, got None")
        inverse_std = inverse_standard_deviation(running_var, eps)   # running_var has x's dtype
        return _batch_norm2d_evaluation(x, running_mean, inverse_std, weight, gamma, bias, beta,
                                        relu)

    count = x.shape[0] * x.shape[2] * x.shape[3]
    if count < 2:
        # One value per channel gives σ² = 0 and x̂ = 0: nothing is learned (PyTorch refuses too).
        raise ValueError(f"x: batch norm in training mode needs more than 1 value per channel, "
                         f"got shape {x.shape}")
    # statistics (accumulated in float64: a float32 sum over a large batch loses digits),
    # inverse_std = 1/sqrt(σ² + eps) and the normalisation, one kernel call
    if relu:
        mean, variance, inverse_std, y, normalized = \
            backend.current().batch_norm_relu_train_forward(x, eps, gamma, beta)
    else:
        mean, variance, inverse_std, y, normalized = \
            backend.current().batch_norm_train_forward(x, eps, gamma, beta)
    cache = BatchNorm2dCache(normalized, inverse_std, weight, bias is not None, True, mean,
                             variance, relu, beta if relu else None)
    return y, cache


def _batch_norm2d_evaluation(x, mean, inverse_std, weight, gamma, bias, beta, relu):
    """Evaluation mode: y = a·x + b per channel, a = γ/sqrt(σ² + eps), b = β − μ·a.

    The constants are those of BN folded into the preceding convolution
    (W' = a·W, bias' = b); here they are applied in one pass that reads x and
    writes y, and x̂ is not written at all (the backward recomputes it)."""
    scale64 = gamma.astype(np.float64) * inverse_std
    shift64 = beta.astype(np.float64) - mean.astype(np.float64) * scale64
    scale, shift = scale64.astype(x.dtype), shift64.astype(x.dtype)
    if relu:
        y = backend.current().batch_norm_affine_relu(x, scale, shift)
    else:
        y = backend.current().batch_norm_affine(x, scale, shift)
    cache = BatchNorm2dCache(None, inverse_std, weight, bias is not None, False, None, None,
                             relu, beta if relu else None, x, mean, (scale, shift))
    return y, cache


def batch_norm2d_backward(dy, cache):
    """Returns ``(dx, dweight, dbias)``; dweight/dbias are None where the forward had none.

    dy (N, C, H, W). Training mode uses the compact formula of the module
    docstring, evaluation mode dx = dy·γ/sqrt(σ²_running + eps). After
    ``batch_norm2d_relu_forward`` dy is dL/d(out) and passes through ReLU's
    derivative first (g = dy·1[γ·x̂ + β > 0] takes dy's place in every formula).
    """
    _, inverse_std, weight, has_bias, training = cache[:5]
    normalized = cache.normalized_map()
    check_float_array(dy, "dy", ndim=4)
    check_same_dtype(normalized, dy, "the forward input", "dy")
    check_shape(dy, normalized.shape, "dy")

    gamma = weight if weight is not None else np.ones_like(inverse_std)
    if not training:
        return _batch_norm2d_evaluation_backward(dy, cache, normalized, gamma * inverse_std)
    if cache.relu:
        sum_dy, sum_dy_normalized, dx = backend.current().batch_norm_relu_train_backward(
            dy, normalized, gamma, cache.bias, inverse_std)
    else:
        sum_dy, sum_dy_normalized, dx = backend.current().batch_norm_train_backward(
            dy, normalized, gamma, inverse_std)
    dbias = sum_dy if has_bias else None                          # dβ = Σ dy
    dweight = sum_dy_normalized if weight is not None else None   # dγ = Σ dy·x̂
    return dx, dweight, dbias


def _batch_norm2d_evaluation_backward(dy, cache, normalized, scale):
    """dx = g·γ/sqrt(σ² + eps), dγ = Σ g·x̂, dβ = Σ g, with g = dy (·1[a·x + b > 0] after ReLU)."""
    if cache.relu:
        factor, offset = cache.affine        # the forward's mask, by the forward's operations
        dy = dy * (cache.input * _per_channel(factor) + _per_channel(offset) > 0)
    sum_dy, sum_dy_normalized = backend.current().batch_norm_backward_sums(dy, normalized)
    dweight = sum_dy_normalized if cache.weight is not None else None
    dbias = sum_dy if cache.has_bias else None
    return dy * _per_channel(scale), dweight, dbias


def update_running_stats(running_mean, running_var, batch_mean, batch_variance, count, momentum):
    """New running statistics after one training batch, as PyTorch computes them.

        running_mean ← (1 − m)·running_mean + m·μ
        running_var  ← (1 − m)·running_var  + m·σ²·M/(M − 1)

    μ, σ² are the batch statistics of ``batch_norm2d_forward`` (σ² biased, over
    M = ``count`` = N·H·W values); the running variance stores the *unbiased*
    estimate σ²·M/(M − 1), because it estimates the population variance used at
    test time. ``momentum`` m is the weight of the new batch: PyTorch's default
    is 0.1; ``BatchNorm2d(momentum=None)`` passes m = 1/num_batches_tracked,
    which makes the running values the plain average of all batches so far
    (cumulative moving average). Returns ``(new_mean, new_var)``; inputs are not changed.
    """
    unbiased_variance = batch_variance * (count / (count - 1))
    keep = 1.0 - momentum
    new_mean = keep * running_mean + momentum * batch_mean
    new_var = keep * running_var + momentum * unbiased_variance
    return (new_mean.astype(running_mean.dtype, copy=False),
            new_var.astype(running_var.dtype, copy=False))
