"""NoSqueeze (paper Table 16): forward against independent computations, backward against
central finite differences in float64, the module's parameters and costs, the model option.

Kinks are avoided by construction: the hidden pre-activations a = W1 x get biases
that put every unit's zero in the widest gap of its values (margin >= 0.05 from
the ReLU kink, while the finite-difference step moves a by about 1e-6), as in
test_se_gradients.py. Tolerances: central differences in float64 with step 1e-6
have truncation error ~1e-12·|f'''| and rounding error ~1e-16/1e-6 = 1e-10 per
entry; 1e-7 relative leaves a margin of 1000 over that, while a wrong term of
the backward (a missing path, a transposed weight) is off by O(1).
"""
import numpy as np
import pytest

import se_numpy as sn
from se_numpy import functional as F
from se_numpy.gradcheck import check_module

from finite_differences import numerical_vjp
from test_se_gradients import bias_away_from_kink

RELATIVE_TOLERANCE = 1e-7


def _problem(rng, n=2, c=6, h=3, w=2, hidden=3, bias=True):
    x = rng.normal(size=(n, c, h, w))
    w1 = rng.normal(0, 0.6, (hidden, c))
    w2 = rng.normal(0, 0.6, (c, hidden))
    pre = np.einsum("kc,ncp->npk", w1, x.reshape(n, c, h * w)).reshape(-1, hidden)
    b1 = bias_away_from_kink(pre, rng)
    if not bias:
        # no bias to move the kink: draw x again until every pre-activation is clear of 0
        while np.min(np.abs(pre)) < 0.05:
            x = rng.normal(size=(n, c, h, w))
            pre = np.einsum("kc,ncp->npk", w1, x.reshape(n, c, h * w)).reshape(-1, hidden)
        return x, w1, None, w2, None
    return x, w1, b1, w2, rng.normal(0, 0.3, c)


@pytest.mark.parametrize("gate", ["sigmoid", "tanh"])
@pytest.mark.parametrize("bias", [True, False])
def test_gradients_match_central_differences(gate, bias):
    rng = np.random.default_rng(3)
    x, w1, b1, w2, b2 = _problem(rng, bias=bias)
    dy = rng.normal(size=x.shape)
    _, cache = F.nosqueeze_forward(x, w1, b1, w2, b2, gate=gate)
    analytic = F.nosqueeze_backward(dy, cache)
    inputs = {"x": x, "w1": w1, "b1": b1, "w2": w2, "b2": b2}
    for position, name in enumerate(("x", "w1", "b1", "w2", "b2")):
        if inputs[name] is None:
            assert analytic[position] is None, f"{name}: expected no gradient without a bias"
            continue
        numerical = numerical_vjp(lambda: F.nosqueeze_forward(x, w1, b1, w2, b2, gate=gate)[0],
                                  inputs[name], dy)
        scale = np.abs(numerical).max()
        error = np.abs(analytic[position] - numerical).max()
        assert error <= RELATIVE_TOLERANCE * scale, f"{name}: error {error:.3g}, scale {scale:.3g}"


def test_the_mask_is_exercised_both_ways():
    # the construction must leave some hidden units active and some not, else the
    # ReLU's backward (the 1[a > 0] factor) would go untested
    rng = np.random.default_rng(3)
    x, w1, b1, w2, b2 = _problem(rng)
    _, cache = F.nosqueeze_forward(x, w1, b1, w2, b2)
    active = cache["hidden"] > 0
    assert active.any() and (~active).any()


def test_on_a_one_pixel_map_it_is_the_se_block():
    # with H = W = 1 the squeeze is the identity, so NoSqueeze and SE compute the same thing
    rng = np.random.default_rng(4)
    x, w1, b1, w2, b2 = _problem(rng, h=1, w=1)
    y, cache = F.nosqueeze_forward(x, w1, b1, w2, b2)
    y_se, cache_se = F.se_block_forward(x, w1, b1, w2, b2)
    np.testing.assert_allclose(y, y_se, rtol=1e-12, atol=1e-14)
    dy = rng.normal(size=x.shape)
    for ours, theirs in zip(F.nosqueeze_backward(dy, cache), F.se_block_backward(dy, cache_se)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def test_forward_equals_two_1x1_convolutions_and_a_product():
    rng = np.random.default_rng(5)
    x, w1, b1, w2, b2 = _problem(rng, h=4, w=5)
    hidden, _ = F.conv2d_forward(x, w1[:, :, None, None], b1)
    gates, _ = F.conv2d_forward(np.maximum(hidden, 0), w2[:, :, None, None], b2)
    expected = F.sigmoid(gates) * x
    y, cache = F.nosqueeze_forward(x, w1, b1, w2, b2)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-14)
    assert cache["s"].shape == x.shape


def test_bad_input_is_named():
    rng = np.random.default_rng(6)
    x, w1, b1, w2, b2 = _problem(rng)
    with pytest.raises(ValueError, match="w2"):
        F.nosqueeze_forward(x, w1, b1, w2[:, :2], b2)
    with pytest.raises(TypeError, match="w1"):
        F.nosqueeze_forward(x, w1.astype(np.float32), b1, w2, b2)
    with pytest.raises(ValueError, match="b2"):
        F.nosqueeze_forward(x, w1, b1, w2, b2[:3])
    _, cache = F.nosqueeze_forward(x, w1, b1, w2, b2)
    with pytest.raises(ValueError, match="dy"):
        F.nosqueeze_backward(np.ones((2, 6, 3, 3)), cache)


def test_module_gradients_and_parameters():
    block = sn.nn.NoSqueezeBlock(8, reduction=4, rng=1).astype(np.float64)
    x = np.random.default_rng(7).normal(size=(2, 8, 3, 3))
    assert check_module(block, x, elementwise=True).passed
    shapes = {name: p.shape for name, p in block.named_parameters()}
    assert shapes == {"fc1.weight": (2, 8, 1, 1), "fc1.bias": (2,),
                      "fc2.weight": (8, 2, 1, 1), "fc2.bias": (8,)}
    se = sn.nn.SEBlock(8, reduction=4)
    assert sum(p.size for p in block.parameters()) == sum(p.size for p in se.parameters())


def test_module_keeps_float32_and_checks_channels():
    block = sn.nn.NoSqueezeBlock(4, reduction=2, rng=2)
    x = np.random.default_rng(8).normal(size=(1, 4, 5, 5)).astype(np.float32)
    assert block(x).dtype == np.float32
    assert block.last_gates.shape == x.shape
    with pytest.raises(ValueError, match="4 channels"):
        block(np.zeros((1, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match="gate"):
        sn.nn.NoSqueezeBlock(4, gate="softmax")


def test_flops_count_both_convolutions_at_every_position():
    block = sn.nn.NoSqueezeBlock(64, reduction=16)          # hidden 4
    se = sn.nn.SEBlock(64, reduction=16)
    h = w = 14
    # 2·C·hidden per position for the two 1x1 convolutions, plus C·H·W for the product
    assert block.flops((2, 64, h, w)) == 2 * (2 * 64 * 4 * h * w + 64 * h * w)
    assert block.flops((1, 64, h, w)) > se.flops((1, 64, h, w))


def test_model_options_stages_and_nosqueeze():
    model = sn.models.create("se_tiny_resnet", squeeze="none", stages=(1,))
    blocks = {name: type(m).__name__ for name, m in model.named_modules()
              if type(m).__name__ in ("NoSqueezeBlock", "SEBlock")}
    assert blocks == {"layer2.0.se": "NoSqueezeBlock"}
    everywhere = sn.models.create("se_tiny_resnet")
    assert sum(type(m).__name__ == "SEBlock" for m in everywhere.modules()) == 3
    images = np.random.default_rng(9).normal(size=(2, 3, 8, 8)).astype(np.float32)
    logits = model(images)
    model.backward(np.ones_like(logits))
    with pytest.raises(ValueError, match="stages"):
        sn.models.create("se_tiny_resnet", stages=(3,))
    with pytest.raises(ValueError, match="stages"):
        sn.models.create("se_tiny_resnet", stages=())
