"""The layers the zoo added, by hand and against central differences in float64.

ReLU6, hard swish and SiLU; ceil-mode and count_include_pad=False pooling;
global pooling that keeps its 1x1 axes; dropout; make_divisible; SE with
SiLU inside and hard-sigmoid gates under timm's names; the mobile blocks
(depthwise-separable, inverted residual), RegNet's Y block, the original
SENets' blocks and the "d" ResNets' average-pool shortcut.

Inputs of kinked functions are placed at least MARGIN from every kink by
construction (ReLU6 at 0 and 6, hard swish at ±3), far beyond the
finite-difference steps, so the checks compare true derivatives.
Whole blocks are checked with smooth activations (SiLU, sigmoid) or with
ReLUs on random data at a fixed seed, as the existing block tests are; the
checker's own tolerances (docs/gradcheck.md) are used, never loosened.

Every check takes central differences at the two steps 2h and h, h = ``STEP``
= 6e-6 (test_blocks.py says why), instead of the checker's whole ladder: the
inputs and weights here are O(1) float64 values, where the ladder starts at
about that step and settles on its first rungs. A step of 1.2e-5 stays far
inside MARGIN; for the fixed-seed ReLU blocks it is no larger than the ladder's
first rung (6e-6·max|x|, max|x| ~ 3), and a stencil across a kink is still
flagged by the checker's kink test. The tolerance is the checker's estimate
from the two rungs, which a wrong gradient does not move.
"""
import numpy as np
import pytest

import se_numpy as sn
from se_numpy import functional as F
from se_numpy.functional.se import make_divisible
from se_numpy.gradcheck import check_module, check_vjp
from se_numpy.nn.chain import ResidualChain
from se_numpy.nn.mbconv import depthwise_separable, inverted_residual
from se_numpy.nn.residual import BasicBlock, avg_pool_shortcut, projection_shortcut

from finite_differences import numerical_vjp
from test_blocks import STEP

MARGIN = 0.05


def away_from(kinks, count, low, high, seed=0):
    """``count`` distinct values in [low, high], none within MARGIN of a kink."""
    rng = np.random.default_rng(seed)
    values = []
    while len(values) < count:
        value = rng.uniform(low, high)
        if all(abs(value - kink) > MARGIN for kink in kinks):
            values.append(value)
    return np.array(values)


# ---------------------------------------------------------------------------- activations
def test_activation_values_by_hand():
    x = np.array([-4.0, -3.0, -1.5, 0.0, 1.5, 3.0, 4.0, 7.0])
    relu6, _ = F.relu6_forward(x)
    np.testing.assert_array_equal(relu6, [0, 0, 0, 0, 1.5, 3, 4, 6])
    hard_swish, _ = F.hard_swish_forward(x)
    # x · clip(x/6 + 1/2, 0, 1): -1.5 · 0.25, 1.5 · 0.75, and x itself from 3 on
    np.testing.assert_allclose(hard_swish, [0, 0, -0.375, 0, 1.125, 3, 4, 7])
    silu, _ = F.silu_forward(np.array([0.0, 1.0, -1.0]))
    np.testing.assert_allclose(silu, [0, 1 / (1 + np.exp(-1)), -1 / (1 + np.exp(1))])


@pytest.mark.parametrize("name, kinks, low, high", [("relu6", (0, 6), -2, 8),
                                                    ("hard_swish", (-3, 3), -5, 5),
                                                    ("silu", (), -6, 6)])
def test_activation_gradients(name, kinks, low, high):
    forward, backward = F.activation.get_activation(name)
    x = away_from(kinks, 24, low, high).reshape(2, 3, 2, 2)
    report = check_vjp(lambda x: forward(x)[0], lambda dy, x: backward(dy, forward(x)[1]),
                       (x,), names=("x",), elementwise=True, step=STEP)
    assert report.passed, report
    assert sn.nn.ReLU6()(x).dtype == x.dtype


def test_activations_keep_float32():
    x = np.linspace(-5, 8, 12, dtype=np.float32)
    for module in (sn.nn.ReLU6(), sn.nn.HardSwish(), sn.nn.SiLU()):
        y = module(x)
        assert y.dtype == np.float32 and module.backward(np.ones_like(y)).dtype == np.float32


# ---------------------------------------------------------------------------- make_divisible
@pytest.mark.parametrize("value, divisor, round_limit, expected", [
    (4, 8, 0.0, 8),          # SE-ResNet-18's 64 / 16: at least the divisor
    (16, 8, 0.0, 16), (32.5, 8, 0.0, 32), (36, 8, 0.0, 40),      # nearest multiple, half up
    (18, 8, 0.9, 24),        # MobileNetV3's 72 / 4: 16 would lose more than 10 %, so 24
    (88.08, 8, 0.9, 88),     # MobileNetV3-Small's 24 · 3.67
    (30, 8, 0.9, 32)])
def test_make_divisible_by_hand(value, divisor, round_limit, expected):
    assert make_divisible(value, divisor, round_limit=round_limit) == expected


def test_hidden_width_rules():
    assert F.hidden_width(64, 16) == 4                 # the paper: C // r
    assert F.hidden_width(64, 16, divisor=8) == 8      # timm's SE-ResNets
    assert F.hidden_width(2048, 16, divisor=8) == 128 == F.hidden_width(2048, 16)
    with pytest.raises(ValueError):
        make_divisible(0, 8)


# ---------------------------------------------------------------------------- pooling
def test_ceil_mode_max_pool_by_hand():
    """6x6, kernel 3, stride 2, no padding: (6 - 3)/2 = 1.5, so floor mode gives 2x2 and ceil
    mode 3x3 (PyTorch's rule; the original SENets' stem pool). The extra windows start at 4
    and hold rows/columns 4-5 only. x[r, c] = 6r + c grows along both axes, so each window's
    maximum is its bottom-right entry."""
    x = np.arange(36, dtype=np.float64).reshape(1, 1, 6, 6)
    floor = sn.nn.MaxPool2d(3, stride=2)(x)
    ceil = sn.nn.MaxPool2d(3, stride=2, ceil_mode=True)(x)
    np.testing.assert_array_equal(floor[0, 0], [[14, 16], [26, 28]])
    np.testing.assert_array_equal(ceil[0, 0], [[14, 16, 17], [26, 28, 29], [32, 34, 35]])
    # 5x5: (5 - 3)/2 = 1 exactly, the same in both modes
    assert sn.nn.MaxPool2d(3, 2, ceil_mode=True).output_shape((1, 1, 5, 5)) == (1, 1, 2, 2)
    # 112 -> 56 exactly, the Caffe SENets' stem (floor mode without padding would give 55)
    assert sn.nn.MaxPool2d(3, 2, ceil_mode=True).output_shape((1, 64, 112, 112))[2:] == (56, 56)
    assert sn.nn.MaxPool2d(3, 2).output_shape((1, 64, 112, 112))[2:] == (55, 55)


def test_avg_pool_ceil_mode_without_padding_counts_by_hand():
    """3x3 map, 2x2 windows, stride 2, ceil mode, count_include_pad=False (timm's avg_down):
    windows [0:2, 0:2], [0:2, 2], [2, 0:2] and [2, 2] average 4, 2, 2 and 1 entries."""
    x = np.arange(9, dtype=np.float64).reshape(1, 1, 3, 3)
    y = sn.nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)(x)
    np.testing.assert_allclose(y[0, 0], [[(0 + 1 + 3 + 4) / 4, (2 + 5) / 2],
                                         [(6 + 7) / 2, 8]])
    padded = sn.nn.AvgPool2d(3, 2, padding=1, count_include_pad=False)(x)
    np.testing.assert_allclose(padded[0, 0, 0, 0], (0 + 1 + 3 + 4) / 4)    # padding not counted
    counted = sn.nn.AvgPool2d(3, 2, padding=1)(x)
    np.testing.assert_allclose(counted[0, 0, 0, 0], (0 + 1 + 3 + 4) / 9)


@pytest.mark.parametrize("build", [
    lambda: sn.nn.MaxPool2d(3, stride=2, ceil_mode=True),
    lambda: sn.nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False),
    lambda: sn.nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=False),
    lambda: sn.nn.AvgPool2d(3, 2, padding=1, ceil_mode=True),
    lambda: sn.nn.GlobalAvgPool(keepdim=True)])
def test_pool_gradients(build):
    # distinct values: no ties in any max window
    x = np.random.default_rng(0).permutation(np.linspace(-1, 1, 2 * 3 * 7 * 7)).reshape(2, 3, 7, 7)
    module = build()
    assert module(x).shape == module.output_shape(x.shape)
    report = check_module(module, x, elementwise=True, step=STEP)
    assert report.passed, report


def test_ceil_mode_avg_pool_backward_against_plain_differences():
    x = np.random.default_rng(1).normal(size=(1, 2, 5, 5))
    module = sn.nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)
    dy = np.random.default_rng(2).normal(size=module.output_shape(x.shape))
    module(x)
    np.testing.assert_allclose(module.backward(dy), numerical_vjp(lambda: module(x), x, dy),
                               rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------------------- dropout
def test_dropout_train_eval_and_backward():
    x = np.random.default_rng(0).normal(size=(4, 50)) + 3.0          # no zeros in x
    dropout = sn.nn.Dropout(0.25, seed=7)
    y = dropout(x)
    kept = y != 0
    assert 0.6 < kept.mean() < 0.9                                    # about 1 - p
    np.testing.assert_allclose(y[kept], x[kept] / 0.75)               # inverted dropout
    dy = np.random.default_rng(1).normal(size=x.shape)
    np.testing.assert_allclose(dropout.backward(dy), dy * kept / 0.75)
    again = sn.nn.Dropout(0.25, seed=7)(x)
    np.testing.assert_array_equal(again, y)                           # seeded
    dropout.eval()
    np.testing.assert_array_equal(dropout(x), x)
    np.testing.assert_array_equal(dropout.backward(dy), dy)
    with pytest.raises(ValueError, match="probability"):
        sn.nn.Dropout(1.0)


# ---------------------------------------------------------------------------- SE variants
def test_se_with_silu_and_hard_sigmoid_under_timm_names():
    se = sn.nn.SEBlock(6, hidden=3, activation="silu", gate="hard_sigmoid",
                       layer_names=("conv_reduce", "conv_expand"), rng=0)
    assert list(se.state_dict()) == ["conv_reduce.weight", "conv_reduce.bias",
                                     "conv_expand.weight", "conv_expand.bias"]
    assert se.state_dict()["conv_reduce.weight"].shape == (3, 6, 1, 1)
    x = np.random.default_rng(0).normal(size=(2, 6, 3, 3))
    block = se.astype(np.float64)
    # small weights keep the hard-sigmoid logits inside (-3, 3), away from its kinks
    for parameter in block.parameters():
        parameter.data = parameter.data * 0.5
    report = check_module(block, x, elementwise=True, step=STEP)
    assert report.passed, report
    se(x)
    z = x.mean(axis=(2, 3))
    w1, b1 = se.fc1.weight.data, se.fc1.bias.data
    hidden = (z @ w1.T + b1) / (1 + np.exp(-(z @ w1.T + b1)))      # SiLU by hand
    logits = hidden @ se.fc2.weight.data.T + se.fc2.bias.data
    np.testing.assert_allclose(se.last_gates, np.clip(logits / 6 + 0.5, 0, 1), rtol=1e-12)


# ---------------------------------------------------------------------------- blocks
def test_inverted_residual_with_se_gradient_and_skip():
    se = sn.nn.SEBlock(12, hidden=2, activation="silu", layer_names=("conv_reduce", "conv_expand"),
                       rng=1)
    block = inverted_residual(4, 12, 4, kernel=3, stride=1, act="silu", se=se, rng=2)
    assert block.skip and list(block.state_dict())[:2] == ["conv_pw.weight", "bn1.weight"]
    x = np.random.default_rng(3).normal(size=(2, 4, 5, 5))
    report = check_module(block.astype(np.float64), x, elementwise=True, max_entries=60,
                          step=STEP)
    assert report.passed, report
    strided = inverted_residual(4, 12, 8, kernel=5, stride=2, act="silu", rng=4)
    assert not strided.skip and strided(x.astype(np.float32)).shape == (2, 8, 3, 3)


def test_depthwise_separable_relu6_gradient():
    block = depthwise_separable(4, 6, kernel=3, stride=2, act="relu6", pw_act=True, rng=5)
    x = np.random.default_rng(6).normal(size=(2, 4, 6, 6))
    report = check_module(block.astype(np.float64), x, elementwise=True, max_entries=60,
                          step=STEP)
    assert report.passed, report


def test_block_flops_by_hand():
    """MBConv on (1, 8, 6, 6), mid 16, out 8, 3x3 depthwise, SE hidden 2:
    conv_pw 36·8·16 + conv_dw 36·16·9 + SE (2·16·36 + 2·16·2) + conv_pwl 36·16·8."""
    se = sn.nn.SEBlock(16, hidden=2)
    block = inverted_residual(8, 16, 8, kernel=3, stride=1, se=se)
    expected = 36 * 8 * 16 + 36 * 16 * 9 + (2 * 16 * 36 + 2 * 16 * 2) + 36 * 16 * 8
    assert sn.analysis.count_flops(block, (1, 8, 6, 6)) == expected
    assert sn.analysis.count_params(block) == (8 * 16 + 16 * 9 + 16 * 8 + 2 * (16 + 16 + 8)
                                               + (16 * 2 + 2 + 2 * 16 + 16))


def test_regnet_block_gradient_with_projection():
    from se_numpy.models.regnet import regnet_bottleneck
    block = regnet_bottleneck(4, 8, stride=2, group_width=4, rng=7)
    assert block.se.hidden == 1                               # round(4 · 0.25): the block input
    keys = list(block.state_dict())
    assert keys[0] == "conv1.conv.weight" and keys[-1] == "downsample.bn.num_batches_tracked"
    x = np.random.default_rng(8).normal(size=(2, 4, 6, 6))
    report = check_module(block.astype(np.float64), x, elementwise=True, max_entries=60,
                          step=STEP)
    assert report.passed, report


def test_residual_chain_refuses_a_shape_change_without_projection():
    from se_numpy.nn.conv import Conv2d
    chain = ResidualChain([("conv", Conv2d(4, 8, 1))], skip=True)
    with pytest.raises(ValueError, match="needs a projection"):
        chain(np.zeros((1, 4, 3, 3), np.float32))


def test_legacy_basic_block_relu_before_se_gradient():
    from se_numpy.models.legacy_senet import LegacyBasicBlock
    block = LegacyBasicBlock(4, 4, attention=sn.nn.SEBlock(4, reduction=2, rng=9), rng=10)
    assert "se_module.fc1.weight" in block.state_dict() and block.relu_before_se
    x = np.random.default_rng(11).normal(size=(2, 4, 4, 4))
    report = check_module(block.astype(np.float64), x, elementwise=True, max_entries=60,
                          step=STEP)
    assert report.passed, report


def test_senet154_bottleneck_and_3x3_projection_gradient():
    from se_numpy.models.legacy_senet import SENet154Bottleneck
    block = SENet154Bottleneck(8, 4, stride=2, groups=4,
                               downsample=projection_shortcut(8, 16, 2, kernel_size=3, rng=12),
                               attention=sn.nn.SEBlock(16, reduction=4, rng=13), rng=14)
    assert block.conv1.weight.shape == (8, 8, 1, 1)           # 2 · planes
    assert block.conv2.weight.shape == (16, 2, 3, 3)          # 4 · planes, 4 groups
    assert block.downsample[0].weight.shape == (16, 8, 3, 3)
    x = np.random.default_rng(15).normal(size=(2, 8, 5, 5))
    report = check_module(block.astype(np.float64), x, elementwise=True, max_entries=60,
                          step=STEP)
    assert report.passed, report


def test_avg_pool_shortcut_on_odd_maps_gradient():
    shortcut = avg_pool_shortcut(4, 8, stride=2, rng=16)
    assert [type(m).__name__ for m in shortcut] == ["AvgPool2d", "Conv2d", "BatchNorm2d"]
    x = np.random.default_rng(17).normal(size=(2, 4, 5, 5))
    assert shortcut(x.astype(np.float32)).shape == (2, 8, 3, 3)       # ceil mode: 5 -> 3
    report = check_module(shortcut.astype(np.float64), x, elementwise=True, max_entries=60,
                          step=STEP)
    assert report.passed, report
    assert type(avg_pool_shortcut(4, 8, stride=1)[0]).__name__ == "Identity"


def test_basic_block_relu_before_se_changes_the_output():
    x = np.random.default_rng(18).normal(size=(1, 4, 4, 4)).astype(np.float32)
    plain = BasicBlock(4, 4, attention=sn.nn.SEBlock(4, reduction=2, rng=0), rng=1)
    legacy = BasicBlock(4, 4, attention=sn.nn.SEBlock(4, reduction=2, rng=0), rng=1,
                        relu_before_se=True)
    assert not np.allclose(plain(x), legacy(x))
