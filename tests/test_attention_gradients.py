"""Effective SE, ECA, CBAM and scSE gradients against central finite differences, in float64.

Every function and module is checked for the input and every parameter, with
the checker's own tolerances (docs/gradcheck.md: 4 × its error estimate plus
rounding bounds; nothing is loosened here). Kinks are avoided by construction:

* maxima (CBAM's max over pixels and over channels) never tie: inputs are
  distinct values with a minimum gap (``se_numpy.testing``), and where a max is
  taken of gated values s·x, the gates are built close enough to one another
  that the order and a gap survive (``nearly_uniform_gates``);
* ReLU pre-activations stay >= 0.05 from 0 (``bias_away_from_kink``, or, for
  CBAM's bias-free MLP, the same shift folded into the weights);
* hard-sigmoid logits stay inside (-2.5, 2.5), away from its kinks at ±3.

Every check takes central differences at the two steps 2h and h, h = ``STEP``
= 6e-6 (test_blocks.py says why), instead of the checker's whole ladder: inputs
lie in [-1, 1) and the weights are O(1) float64 values, where the ladder starts
at about that step and settles on its first rungs. A step of 1.2e-5 moves a
pre-activation or a gated value by far less than the margins above (0.05, and
0.2·gap ≥ 1e-3 for the maxima). The tolerance is the checker's estimate from
the two rungs, which a wrong gradient does not move. Each module also has a
planted bug in its backward that the check, made the same way, must catch.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import se_numpy as sn
from se_numpy import functional as F
from se_numpy.functional import cbam as cbam_functional
from se_numpy.functional import eca as eca_functional
from se_numpy.functional import effective_se as ese_functional
from se_numpy.functional import scse as scse_functional
from se_numpy.gradcheck import check_module, check_vjp
from se_numpy.testing import distinct_nchw_arrays
from test_blocks import STEP
from test_se_gradients import MARGIN, bias_away_from_kink

EXAMPLES = 8          # per property: every example is a full finite-difference check


def shrink_logits(weight, bias, z, limit=2.5):
    """(weight, bias) centred and scaled so z Wᵀ + b lies in (-limit, limit): hsigmoid's slope."""
    pre = z @ weight.T
    bias = -pre.mean(axis=0)
    spread = np.abs(pre + bias).max()
    if spread > limit:
        weight, bias = weight * limit / spread, bias * limit / spread
    return weight, bias


def fold_bias_into_weights(z, weight, rng):
    """W' = W + b eᵀ with z e = 1 for every row of z: acts as the bias b of
    ``bias_away_from_kink`` for a layer that has none (needs rows(z) <= columns)."""
    e = np.linalg.lstsq(z, np.ones(z.shape[0]), rcond=None)[0]
    folded = weight + np.outer(bias_away_from_kink(z @ weight.T, rng), e)
    assert np.abs(z @ folded.T).min() >= MARGIN - 1e-9
    return folded


def vjp_pair(forward, backward, **options):
    def f(*arrays):
        return forward(*arrays, **options)[0]

    def vjp(dy, *arrays):
        return backward(dy, forward(*arrays, **options)[1])
    return f, vjp


# ============================================================================ Effective SE
def ese_parameters(x, rng):
    c = x.shape[1]
    weight, bias = shrink_logits(rng.normal(0, 1, (c, c)), None, F.squeeze_forward(x)[0])
    return weight, bias


@given(x=distinct_nchw_arrays(max_side=4, max_channels=6), seed=st.integers(0, 2**16))
@settings(max_examples=EXAMPLES)
def test_effective_se_functional_gradient(x, seed):
    weight, bias = ese_parameters(x, np.random.default_rng(seed))
    f, vjp = vjp_pair(F.effective_se_forward, F.effective_se_backward)
    report = check_vjp(f, vjp, (x, weight, bias), names=("x", "weight", "bias"), elementwise=True,
                       step=STEP)
    assert report.passed, report


@given(x=distinct_nchw_arrays(max_side=4, max_channels=6), seed=st.integers(0, 2**16))
@settings(max_examples=EXAMPLES)
def test_effective_se_module_gradient(x, seed):
    module = sn.nn.EffectiveSE(x.shape[1], rng=seed).astype(np.float64)
    module.fc.weight.data, module.fc.bias.data = ese_parameters(x, np.random.default_rng(seed))
    report = check_module(module, x, elementwise=True, step=STEP)
    assert report.passed, report
    assert set(report.tensors) == {"x", "fc.weight", "fc.bias"}


def test_effective_se_planted_bug_missing_gate_derivative_is_caught(monkeypatch):
    x = np.random.default_rng(3).permutation(np.linspace(-1, 1, 2 * 4 * 9)).reshape(2, 4, 3, 3)
    module = sn.nn.EffectiveSE(4, rng=0).astype(np.float64)
    module.fc.weight.data, module.fc.bias.data = ese_parameters(x, np.random.default_rng(0))
    assert check_module(module, x, step=STEP).passed

    def without_gate_derivative(ds, cache):     # the bug: hsigmoid' (1/6) left out
        gate, fc_cache, _ = cache
        return F.linear_backward(ds, fc_cache)
    monkeypatch.setattr(ese_functional, "effective_se_excitation_backward", without_gate_derivative)
    report = check_module(module, x, step=STEP)
    assert not report.passed
    assert not report.tensors["fc.weight"]["passed"]


# ============================================================================ ECA
@given(x=distinct_nchw_arrays(max_side=4, max_channels=8), k=st.sampled_from([1, 3, 5]),
       seed=st.integers(0, 2**16))
@settings(max_examples=EXAMPLES)
def test_eca_functional_gradient(x, k, seed):
    weight = np.random.default_rng(seed).normal(0, 1, k)
    report = check_vjp(*vjp_pair(F.eca_forward, F.eca_backward), (x, weight),
                       names=("x", "weight"), elementwise=True, step=STEP)
    assert report.passed, report


@given(x=distinct_nchw_arrays(max_side=3, min_channels=2, max_channels=8),
       seed=st.integers(0, 2**16))
@settings(max_examples=EXAMPLES)
def test_eca_module_gradient(x, seed):
    module = sn.nn.ECA(kernel_size=3, rng=seed).astype(np.float64)
    report = check_module(module, x, elementwise=True, step=STEP)
    assert report.passed, report
    assert set(report.tensors) == {"x", "conv.weight"}


def test_eca_planted_bug_flipped_kernel_is_caught(monkeypatch):
    """Convolution instead of correlation in the backward (the kernel reversed): caught."""
    x = np.random.default_rng(4).permutation(np.linspace(-1, 1, 2 * 6 * 4)).reshape(2, 6, 2, 2)
    module = sn.nn.ECA(kernel_size=3, rng=0).astype(np.float64)
    module.conv.weight.data = np.array([[[0.9, -0.4, 0.2]]])
    assert check_module(module, x, step=STEP).passed
    correct = eca_functional.channel_conv1d_backward

    def flipped(da, cache):
        windows, weight = cache
        return correct(da, (windows, weight[::-1]))
    monkeypatch.setattr(eca_functional, "channel_conv1d_backward", flipped)
    report = check_module(module, x, step=STEP)
    assert not report.passed
    assert not report.tensors["x"]["passed"]


# ============================================================================ CBAM
def channel_mlp(x, hidden, rng, bias):
    """fc1, fc2 (and biases) whose hidden pre-activations on z_avg and z_max avoid 0."""
    z = np.concatenate([F.squeeze_forward(x, "avg")[0], F.squeeze_forward(x, "max")[0]])
    w1 = rng.normal(0, 1, (hidden, x.shape[1]))
    w2 = rng.normal(0, 1, (x.shape[1], hidden))
    if bias:
        b1 = bias_away_from_kink(z @ w1.T, rng)
        return w1, w2, b1, rng.normal(0, 0.5, x.shape[1])
    return fold_bias_into_weights(z, w1, rng), w2


@given(x=distinct_nchw_arrays(max_side=4, min_channels=2, max_channels=6),
       seed=st.integers(0, 2**16))
@settings(max_examples=EXAMPLES)
def test_channel_attention_gradient(x, seed):
    w1, w2, b1, b2 = channel_mlp(x, 2, np.random.default_rng(seed), bias=True)

    def backward(dy, cache):
        dx, dw1, db1, dw2, db2 = F.channel_attention_backward(dy, cache)
        return dx, dw1, dw2, db1, db2
    report = check_vjp(*vjp_pair(F.channel_attention_forward, backward), (x, w1, w2, b1, b2),
                       names=("x", "fc1_weight", "fc2_weight", "fc1_bias", "fc2_bias"),
                       elementwise=True, step=STEP)
    assert report.passed, report


@given(x=distinct_nchw_arrays(max_side=4, min_side=2, max_channels=5),
       training=st.booleans(), seed=st.integers(0, 2**16))
@settings(max_examples=EXAMPLES)
def test_spatial_attention_gradient(x, training, seed):
    rng = np.random.default_rng(seed)
    conv = rng.normal(0, 0.3, (1, 2, 3, 3))
    bn = (rng.uniform(0.5, 1.5, 1), rng.normal(0, 0.5, 1))
    running = (rng.normal(0, 0.1, 1), rng.uniform(0.5, 1.5, 1))
    f, vjp = vjp_pair(F.spatial_attention_forward, F.spatial_attention_backward,
                      running_mean=running[0], running_var=running[1], training=training)
    report = check_vjp(f, vjp, (x, conv, *bn), names=("x", "conv_weight", "bn_weight", "bn_bias"),
                       elementwise=True, step=STEP)
    assert report.passed, report


def nearly_uniform_gates(module, x, rng):
    """Set CBAM's MLP so that s[n,c] = σ(a[n] + δ[n,c]) with |a| <= 1 and |δ| < gap/8.

    The spatial max is then taken over s·x, whose values at a pixel keep the
    order of x's and a gap of at least 0.27·gap - 2·gap/32 > 0.2·gap (σ' <= 1/4,
    |x| < 1): ties stay impossible by construction, not by chance."""
    gap = 1.0 / x.size                                      # distinct_nchw_arrays on [-1, 1)
    w1 = fold_bias_into_weights(np.concatenate([F.squeeze_forward(x, "avg")[0],
                                                F.squeeze_forward(x, "max")[0]]),
                                rng.normal(0, 1, module.channel.fc1.weight.shape), rng)
    hidden = np.maximum(np.concatenate([F.squeeze_forward(x, "avg")[0],
                                        F.squeeze_forward(x, "max")[0]]) @ w1.T, 0)
    h_sum = hidden[:x.shape[0]] + hidden[x.shape[0]:]        # (N, hidden)
    common = rng.normal(0, 1, w1.shape[0])
    common /= max(1.0, np.abs(h_sum @ common).max())          # |a| <= 1
    noise = rng.normal(0, 1, module.channel.fc2.weight.shape)
    noise *= gap / 8 / max(1e-12, np.abs(h_sum @ noise.T).max())
    module.channel.fc1.weight.data = w1
    module.channel.fc2.weight.data = common[None, :] + noise


@given(x=distinct_nchw_arrays(max_side=4, min_side=2, max_batch=2, min_channels=4,
                              max_channels=6), seed=st.integers(0, 2**16))
@settings(max_examples=EXAMPLES)
def test_cbam_module_gradient(x, seed):
    module = sn.nn.CBAM(x.shape[1], rd_ratio=0.5, spatial_kernel_size=3, rng=seed).astype(
        np.float64)
    nearly_uniform_gates(module, x, np.random.default_rng(seed))
    report = check_module(module, x, elementwise=True, step=STEP)
    assert report.passed, report
    assert set(report.tensors) == {"x", "channel.fc1.weight", "channel.fc2.weight",
                                   "spatial.conv.conv.weight", "spatial.conv.bn.weight",
                                   "spatial.conv.bn.bias"}


def test_cbam_functional_equals_the_module():
    rng = np.random.default_rng(5)
    x = rng.permutation(np.linspace(-1, 1, 2 * 4 * 16)).reshape(2, 4, 4, 4)
    module = sn.nn.CBAM(4, rd_ratio=0.5, spatial_kernel_size=3, rng=1).astype(np.float64)
    dy = rng.normal(size=x.shape)
    y = module(x)
    dx = module.backward(dy)
    weights = [p.data for p in module.parameters()]
    y_functional, cache = F.cbam_forward(x, *weights)
    np.testing.assert_allclose(y_functional, y, rtol=1e-13, atol=1e-15)
    grads = F.cbam_backward(dy, cache)
    for got, want in zip(grads, [dx] + [p.grad for p in module.parameters()]):
        np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-12, atol=1e-14)


def test_cbam_planted_bug_max_path_dropped_is_caught(monkeypatch):
    """Spatial backward that forgets the channel-max path (only the mean's share): caught."""
    rng = np.random.default_rng(6)
    x = rng.permutation(np.linspace(-1, 1, 2 * 4 * 9)).reshape(2, 4, 3, 3)
    module = sn.nn.CBAM(4, rd_ratio=0.5, spatial_kernel_size=3, rng=2).astype(np.float64)
    nearly_uniform_gates(module, x, rng)
    assert check_module(module, x, step=STEP).passed
    correct = cbam_functional.channel_pool_backward

    def mean_path_only(dp, cache):
        dp = dp.copy()
        dp[:, 1] = 0
        return correct(dp, cache)
    monkeypatch.setattr(sn.nn.cbam, "channel_pool_backward", mean_path_only)
    report = check_module(module, x, step=STEP)
    assert not report.passed
    assert not report.tensors["x"]["passed"]


# ============================================================================ scSE
def scse_parameters(x, hidden, rng):
    z = F.squeeze_forward(x)[0]
    w1 = rng.normal(0, 1, (hidden, x.shape[1]))
    b1 = bias_away_from_kink(z @ w1.T, rng)
    return (w1, b1, rng.normal(0, 1, (x.shape[1], hidden)), rng.normal(0, 0.5, x.shape[1]),
            rng.normal(0, 1, x.shape[1]), rng.normal(0, 0.5, 1))


@given(x=distinct_nchw_arrays(max_side=4, max_channels=6), seed=st.integers(0, 2**16))
@settings(max_examples=EXAMPLES)
def test_scse_functional_gradient(x, seed):
    params = scse_parameters(x, max(1, x.shape[1] // 2), np.random.default_rng(seed))
    report = check_vjp(*vjp_pair(F.scse_forward, F.scse_backward), (x, *params),
                       names=("x", "w1", "b1", "w2", "b2", "spatial_weight", "spatial_bias"),
                       elementwise=True, step=STEP)
    assert report.passed, report


@given(x=distinct_nchw_arrays(max_side=4, min_channels=2, max_channels=6),
       seed=st.integers(0, 2**16))
@settings(max_examples=EXAMPLES)
def test_scse_module_gradient(x, seed):
    module = sn.nn.SCSE(x.shape[1], reduction=2, rng=seed).astype(np.float64)
    w1, b1, w2, b2, _, _ = scse_parameters(x, module.hidden, np.random.default_rng(seed))
    fc1, fc2, _ = module._layers()
    fc1.weight.data, fc1.bias.data, fc2.weight.data, fc2.bias.data = w1, b1, w2, b2
    report = check_module(module, x, elementwise=True, step=STEP)
    assert report.passed, report
    assert set(report.tensors) == {"x", "cSE.1.weight", "cSE.1.bias", "cSE.3.weight",
                                   "cSE.3.bias", "sSE.0.weight", "sSE.0.bias"}


def test_scse_planted_bug_spatial_squeeze_path_dropped_is_caught(monkeypatch):
    """dx without the w[c]·dq term (x's path through the spatial squeeze): caught."""
    rng = np.random.default_rng(8)
    x = rng.permutation(np.linspace(-1, 1, 2 * 4 * 9)).reshape(2, 4, 3, 3)
    module = sn.nn.SCSE(4, reduction=2, rng=3).astype(np.float64)
    fc1, fc2, spatial = module._layers()
    fc1.weight.data, fc1.bias.data, fc2.weight.data, fc2.bias.data, _, _ = scse_parameters(
        x, 2, rng)
    assert check_module(module, x, step=STEP).passed
    correct = scse_functional.spatial_se_backward

    def without_squeeze_path(dg, cache):
        dx, dweight, dbias = correct(dg, cache)
        return np.zeros_like(dx), dweight, dbias
    monkeypatch.setattr(scse_functional, "spatial_se_backward", without_squeeze_path)
    report = check_module(module, x, step=STEP)
    assert not report.passed
    assert not report.tensors["x"]["passed"]
