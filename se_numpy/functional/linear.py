"""Fully connected layer (PyTorch layout: weight is (out_features, in_features)).

Forward:   y = x Wᵀ + b                    x (N, in), W (out, in), b (out,), y (N, out)
Backward:  with dy = dL/dy (N, out)
           dx = dy W                        (N, in)   since y_nk = Σ_j x_nj W_kj
           dW = dyᵀ x                       (out, in) summed over the batch
           db = Σ_n dy_n                    (out,)
"""
import numpy as np

from .._validation import check_float_array, check_same_dtype, check_shape


def linear_forward(x, weight, bias=None):
    check_float_array(x, "x", ndim=2)
    check_float_array(weight, "weight", ndim=2)
    check_same_dtype(x, weight, "x", "weight")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"x: expected {weight.shape[1]} features (shape (N, {weight.shape[1]})) "
                         f"to match weight {weight.shape}, got shape {x.shape}")
    y = x @ weight.T
    if bias is not None:
        check_shape(bias, (weight.shape[0],), "bias")
        y = y + bias
    return y, (x, weight, bias is not None)


def linear_backward(dy, cache):
    """Returns (dx, dweight, dbias); dbias is None when the layer has no bias."""
    x, weight, has_bias = cache
    check_shape(dy, (x.shape[0], weight.shape[0]), "dy")
    dbias = dy.sum(axis=0) if has_bias else None
    return dy @ weight, dy.T @ x, dbias
