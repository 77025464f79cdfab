"""BatchNorm2d + ReLU fused: the same numbers as the two layers one after the other.

``batch_norm2d_relu_forward`` and ``BatchNorm2d.forward_relu`` must give
max(BN(x), 0) and, backward, ReLU's derivative followed by BN's, on every CPU
backend, in float32 and float64; the gradients are checked by central
differences in float64 with every pre-activation kept away from ReLU's kink.
"""
import numpy as np
import pytest

import se_numpy as sn
from se_numpy.functional.activation import relu_backward, relu_forward
from se_numpy.functional.norm import (batch_norm2d_backward, batch_norm2d_forward,
                                      batch_norm2d_relu_forward)
from se_numpy.nn.norm import BatchNorm2d
from finite_differences import numerical_vjp

BACKENDS = ("numpy", "numba")
# float32: a few ulp of the O(10) sums of the backward, summed in another order;
# float64: the same in float64 (no real error is below 1e-4 here)
TOLERANCE = {np.float32: 2e-5, np.float64: 1e-12}
# central differences in float64, step 1e-6 (finite_differences.STEP): truncation ~1e-12,
# rounding ~1e-16·|f|/step ~1e-9 for the O(10) sums here; a wrong term would be O(0.1)
GRADIENT_TOLERANCE = 1e-6


def away_from_kink(rng, shape, margin=0.1):
    """(x, γ, β) whose pre-activations γ·x̂ + β all lie at least ``margin`` from 0.

    β_c is put in the middle of the widest gap between neighbouring values of −γ·x̂
    in channel c (kept to the central half of their range, so both sides of the
    ReLU occur); a finite-difference step of 1e-6 then never crosses the kink."""
    channels = shape[1]
    while True:
        x = rng.normal(size=shape) * 2 + 1
        weight = rng.uniform(0.5, 2.0, size=channels)
        normalized = batch_norm2d_forward(x, training=True)[1].normalized
        bias, smallest_gap = np.empty(channels), np.inf
        for c in range(channels):
            values = np.sort(-weight[c] * normalized[:, c].ravel())
            inner = values[len(values) // 4: len(values) - len(values) // 4]
            gaps = np.diff(inner)
            widest = int(np.argmax(gaps))
            bias[c] = (inner[widest] + inner[widest + 1]) / 2
            smallest_gap = min(smallest_gap, gaps[widest])
        if smallest_gap > 2 * margin:
            return x, weight, bias


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [True, False])
def test_forward_and_backward_are_the_composition(backend, dtype, training):
    rng = np.random.default_rng(3)
    shape = (4, 3, 5, 6)
    x = rng.normal(size=shape).astype(dtype)
    weight, bias = rng.uniform(0.5, 2, 3).astype(dtype), rng.uniform(-1, 1, 3).astype(dtype)
    running = rng.normal(size=3).astype(dtype), rng.uniform(0.5, 2, 3).astype(dtype)
    dout = rng.normal(size=shape).astype(dtype)
    with sn.use_backend(backend):
        out, cache = batch_norm2d_relu_forward(x, weight, bias, *running, training=training)
        dx, dweight, dbias = batch_norm2d_backward(dout, cache)
        y, bn_cache = batch_norm2d_forward(x, weight, bias, *running, training=training)
        expected_out, relu_cache = relu_forward(y)
        expected = batch_norm2d_backward(relu_backward(dout, relu_cache), bn_cache)
    assert 0 < (out > 0).mean() < 1                     # the mask cuts, and not everything
    assert out.dtype == dx.dtype == dweight.dtype == dtype
    np.testing.assert_array_equal(out, expected_out)    # the same operations: identical
    for actual, wanted in zip((dx, dweight, dbias), expected):
        scale = np.abs(wanted).max()
        np.testing.assert_allclose(actual, wanted, rtol=0, atol=TOLERANCE[dtype] * scale)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("training", [True, False])
def test_gradients_match_finite_differences(backend, training):
    rng = np.random.default_rng(11)
    x, weight, bias = away_from_kink(rng, (3, 2, 3, 3))
    running_mean, running_var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))

    def run():
        return batch_norm2d_relu_forward(x, weight, bias, running_mean, running_var,
                                         training=training)[0]

    with sn.use_backend(backend):
        out, cache = batch_norm2d_relu_forward(x, weight, bias, running_mean, running_var,
                                               training=training)
        dout = rng.normal(size=out.shape)
        dx, dweight, dbias = batch_norm2d_backward(dout, cache)
        assert 0 < (out > 0).mean() < 1
        for analytic, array in ((dx, x), (dweight, weight), (dbias, bias)):
            np.testing.assert_allclose(analytic, numerical_vjp(run, array, dout),
                                       rtol=GRADIENT_TOLERANCE, atol=GRADIENT_TOLERANCE)


@pytest.mark.parametrize("backend", BACKENDS)
def test_module_forward_relu_updates_running_statistics_as_forward_does(backend):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 3, 4, 4)).astype(np.float32)
    dout = rng.normal(size=x.shape).astype(np.float32)
    fused, plain = BatchNorm2d(3), BatchNorm2d(3)
    for norm in (fused, plain):
        norm.bias.data[:] = [-0.5, 0.0, 0.5]
    with sn.use_backend(backend):
        out = fused.forward_relu(x)
        y = plain(x)
        expected_out, relu_cache = relu_forward(y)
        np.testing.assert_array_equal(out, expected_out)
        np.testing.assert_allclose(fused.backward(dout),
                                   plain.backward(relu_backward(dout, relu_cache)),
                                   rtol=0, atol=1e-5)
    for name, value in plain.state_dict().items():
        np.testing.assert_array_equal(fused.state_dict()[name], value)
    np.testing.assert_allclose(fused.weight.grad, plain.weight.grad, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fused.bias.grad, plain.bias.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
def test_evaluation_mode_affine_pass_equals_the_normalisation_to_rounding(backend, dtype, relu):
    """Evaluation writes y = a·x + b (a = γ/sqrt(σ² + eps), b = β − μ·a) and no x̂; it must
    equal γ·(x − μ)/sqrt(σ² + eps) + β up to a few roundings of the map's dtype."""
    rng = np.random.default_rng(8)
    x = (rng.normal(size=(2, 3, 4, 5)) * 3 + 1).astype(dtype)
    weight, bias = rng.uniform(0.5, 2, 3).astype(dtype), rng.uniform(-1, 1, 3).astype(dtype)
    mean, var = rng.normal(size=3).astype(dtype), rng.uniform(0.5, 2, 3).astype(dtype)
    forward = batch_norm2d_relu_forward if relu else batch_norm2d_forward
    with sn.use_backend(backend):
        y, cache = forward(x, weight, bias, mean, var, training=False)
    assert cache.normalized is None                      # nothing but y was written
    expected = ((x.astype(np.float64) - mean[None, :, None, None])
                / np.sqrt(var.astype(np.float64) + 1e-5)[None, :, None, None]
                * weight[None, :, None, None] + bias[None, :, None, None])
    if relu:
        expected = np.maximum(expected, 0)
    eps = np.finfo(dtype).eps
    # |a·x| + |b| bounds the terms whose roundings (a few each) make the difference
    terms = np.abs(x * cache.affine[0][None, :, None, None]) + np.abs(cache.affine[1])[None, :, None, None]
    assert np.all(np.abs(y - expected) <= 4 * eps * terms)


def test_switching_between_train_and_eval_keeps_each_mode_right():
    """eval() output is the running-statistics formula; train() after eval() normalises with the
    batch again and updates the running statistics again."""
    rng = np.random.default_rng(9)
    norm = BatchNorm2d(3, dtype=np.float64)
    x = rng.normal(size=(4, 3, 3, 3)) * 2 + 1
    norm.forward_relu(x)
    norm.eval()
    frozen = norm.running_mean.copy()
    evaluated = norm.forward_relu(x)
    expected = np.maximum((x - frozen[None, :, None, None])
                          / np.sqrt(norm.running_var + 1e-5)[None, :, None, None], 0)
    np.testing.assert_allclose(evaluated, expected, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(norm.running_mean, frozen)     # eval does not update
    norm.train()
    trained = norm.forward_relu(x)
    batch = (x - x.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(
        x.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
    np.testing.assert_allclose(trained, np.maximum(batch, 0), rtol=1e-12, atol=1e-12)
    assert norm.num_batches_tracked == 2 and not np.array_equal(norm.running_mean, frozen)
