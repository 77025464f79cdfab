"""The passes of BatchNorm2d, plain NumPy (math and derivation: ``functional/norm.py``).

Every per-channel vector is (C,); M = N·H·W values per channel.
"""
import numpy as np


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


# BatchNorm2d followed by ReLU (ResNet's BN1 → ReLU): the plain composition of the two.
# ReLU's mask 1[x̂·γ + β > 0] is recomputed from x̂, so the forward keeps no mask.
def _relu_mask(normalized, weight, bias):
    return normalized * _per_channel(weight) + _per_channel(bias) > 0


def batch_norm_relu_normalize(x, mean, inverse_std, weight, bias):
    """``(max(y, 0), normalized)`` with ``y, normalized = batch_norm_normalize(...)``."""
    y, normalized = batch_norm_normalize(x, mean, inverse_std, weight, bias)
    return np.maximum(y, y.dtype.type(0)), normalized


def batch_norm_relu_backward_sums(dy, normalized, weight, bias):
    """``batch_norm_backward_sums(g, normalized)`` of g = dy·1[x̂·γ + β > 0], ReLU's backward."""
    return batch_norm_backward_sums(dy * _relu_mask(normalized, weight, bias), normalized)


def batch_norm_relu_backward_dx(dy, normalized, weight, bias, scale, sum_dy, sum_dy_normalized):
    """``batch_norm_backward_dx(g, ...)`` of g = dy·1[x̂·γ + β > 0] (sums from the line above)."""
    return batch_norm_backward_dx(dy * _relu_mask(normalized, weight, bias), normalized, scale,
                                  sum_dy, sum_dy_normalized)


# Evaluation mode: μ and σ² are the running constants, so BN is a per-channel affine map,
# y = a_c·x + b_c with a = γ/sqrt(σ² + eps) and b = β − μ·a (what folding BN into the
# preceding convolution computes); one pass that writes y and nothing else.
def batch_norm_affine(x, scale, shift):
    """y = scale_c · x + shift_c, x (N, C, H, W), scale and shift (C,)."""
    return x * _per_channel(scale) + _per_channel(shift)


def batch_norm_affine_relu(x, scale, shift):
    """max(scale_c · x + shift_c, 0): ``batch_norm_affine`` then ReLU."""
    return np.maximum(batch_norm_affine(x, scale, shift), x.dtype.type(0))


# A training step's batch norm, one call per direction: the plain composition of the
# passes above (what a backend may do in one sweep, kernels/numba/norm.py, must equal this).
def inverse_standard_deviation(variance, eps):
    """1 / sqrt(σ² + eps) per channel, computed in float64 and rounded to σ²'s dtype."""
    return (1.0 / np.sqrt(variance.astype(np.float64) + eps)).astype(variance.dtype)


def batch_norm_train_forward(x, eps, weight, bias):
    """``(mean, variance, inverse_std, y, normalized)``: ``batch_norm_statistics``, then
    inverse_std = 1/sqrt(σ² + eps), then ``batch_norm_normalize``."""
    mean, variance = batch_norm_statistics(x)
    inverse_std = inverse_standard_deviation(variance, eps)
    return (mean, variance, inverse_std) + batch_norm_normalize(x, mean, inverse_std, weight, bias)


def batch_norm_train_backward(dy, normalized, weight, inverse_std):
    """``(Σ dy, Σ dy·x̂, dx)``: ``batch_norm_backward_sums``, then ``batch_norm_backward_dx``
    with scale = γ·inverse_std."""
    sums = batch_norm_backward_sums(dy, normalized)
    return sums + (batch_norm_backward_dx(dy, normalized, weight * inverse_std, *sums),)


def batch_norm_relu_train_forward(x, eps, weight, bias):
    """``batch_norm_train_forward`` with ``batch_norm_relu_normalize``: y = max(x̂·γ + β, 0)."""
    mean, variance = batch_norm_statistics(x)
    inverse_std = inverse_standard_deviation(variance, eps)
    return (mean, variance, inverse_std) + batch_norm_relu_normalize(x, mean, inverse_std,
                                                                     weight, bias)


def batch_norm_relu_train_backward(dy, normalized, weight, bias, inverse_std):
    """``batch_norm_train_backward`` through ReLU: the ``batch_norm_relu_backward_*`` passes."""
    sums = batch_norm_relu_backward_sums(dy, normalized, weight, bias)
    return sums + (batch_norm_relu_backward_dx(dy, normalized, weight, bias,
                                               weight * inverse_std, *sums),)
