"""Residual, Inception and VGG blocks: wiring of every SE placement, gradients, errors.

Gradients are checked in float64 against central differences with
``check_module`` (input and every parameter, batch norm in train mode). The
checker's tolerance comes from its own error estimate, so nothing is loosened
here. Kinks are kept out by construction: before checking, every ReLU input
met in the forward pass (block ReLUs and the SE hidden ReLU) must lie at least
``KINK_MARGIN`` = 1e-3 from 0, and examples that do not are redrawn. The
finite-difference steps are about 6e-6 (and twice that), and a step moves a
pre-activation by at most a few times that through batch norm, far below 1e-3.
SE gates are sigmoid or tanh (smooth) here; the gate and squeeze ablations
are tested with the SE block itself.
"""
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import se_numpy.nn.residual as residual_module
from se_numpy.functional import activation as activation_functions
from se_numpy.gradcheck import check_module
from se_numpy.nn.activation import ReLU
from se_numpy.nn.inception import InceptionModule
from se_numpy.nn.residual import (PLACEMENTS, BasicBlock, Bottleneck, check_placement,
                                  projection_shortcut)
from se_numpy.nn.se import SEBlock
from se_numpy.nn.vgg import VGGStage

KINK_MARGIN = 1e-3
# The finite-difference step h of ``strict_check``: central differences at 2h and h.
# eps^(1/3) ≈ 6e-6 is where the checker's own ladder starts for inputs of size ~1 in
# float64 (``gradcheck.differences.top_step``), and its first pair of rungs is where
# it settles for these smooth, O(1) blocks; giving it as the step skips the rest of
# the ladder (about half of the forward passes). The tolerance still comes from the
# checker's error estimate on the two rungs; a wrong gradient moves the difference by
# the same amount on both, so it is not hidden by the estimate.
STEP = 6e-6


# ---------------------------------------------------------------------------- helpers
@contextmanager
def relu_inputs_seen():
    """Collect min |input| of every ReLU evaluated while active (block, SE and ReLU modules)."""
    smallest = []
    original_block_relu = residual_module.relu_forward
    original_pair = activation_functions.ACTIVATIONS["relu"]

    def recording_relu(x):
        smallest.append(float(np.min(np.abs(x))) if x.size else np.inf)
        return original_pair[0](x)

    original_module_forward = ReLU.forward

    def recording_module_forward(self, x):
        smallest.append(float(np.min(np.abs(x))) if x.size else np.inf)
        return original_module_forward(self, x)

    residual_module.relu_forward = recording_relu
    activation_functions.ACTIVATIONS["relu"] = (recording_relu, original_pair[1])
    ReLU.forward = recording_module_forward
    try:
        yield smallest
    finally:
        residual_module.relu_forward = original_block_relu
        activation_functions.ACTIVATIONS["relu"] = original_pair
        ReLU.forward = original_module_forward


def kink_distance(module, x):
    """Smallest |ReLU input| in one float64 train-mode forward pass (what the checker evaluates)."""
    import copy
    probe = copy.deepcopy(module).astype(np.float64).train()
    with relu_inputs_seen() as smallest:
        probe(x.astype(np.float64))
    return min(smallest) if smallest else np.inf


def strict_check(module, x, mode="train"):
    """Every entry of dL/dx and of every parameter's gradient, no kink excused.

    ``elementwise=True`` compares each entry (all of them: every tensor here has
    fewer than ``max_entries``), ``kink_check=False`` counts a stencil that
    straddles a kink as a failure; the margin above makes that impossible.
    ``step=STEP``: the two rungs 2h and h instead of the whole ladder (see ``STEP``).
    """
    return check_module(module, x, mode=mode, elementwise=True, kink_check=False,
                        raise_on_fail=True, step=STEP)


def check_gradients(module, x):
    """Hypothesis form: examples whose ReLU inputs come near a kink are drawn again."""
    assume(kink_distance(module, x) > KINK_MARGIN)
    strict_check(module, x)


def random_input(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape)


def make_basic(in_channels, planes, stride, placement, with_se, gate="sigmoid", seed=0,
               dtype=np.float64):
    rng = np.random.default_rng(seed)
    downsample = None
    if stride != 1 or in_channels != planes:
        downsample = projection_shortcut(in_channels, planes, stride, dtype, rng)
    attention = None
    if with_se:
        channels = BasicBlock.attention_channels(in_channels, planes, placement)
        attention = SEBlock(channels, reduction=2, gate=gate, dtype=dtype, rng=rng)
    return BasicBlock(in_channels, planes, stride, downsample, attention, placement, dtype, rng)


def make_bottleneck(in_channels, planes, stride, placement, with_se, groups=1, base_width=64,
                    stride_in_1x1=False, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    downsample = None
    if stride != 1 or in_channels != planes * 4:
        downsample = projection_shortcut(in_channels, planes * 4, stride, dtype, rng)
    attention = None
    if with_se:
        channels = Bottleneck.attention_channels(in_channels, planes, placement, groups,
                                                 base_width)
        attention = SEBlock(channels, reduction=2, dtype=dtype, rng=rng)
    return Bottleneck(in_channels, planes, stride, downsample, groups, base_width, stride_in_1x1,
                      attention, placement, dtype, rng)


# ---------------------------------------------------------------------------- gradients
@settings(max_examples=6)
@given(placement=st.sampled_from(PLACEMENTS), with_se=st.booleans(),
       stride=st.sampled_from([1, 2]), in_channels=st.integers(1, 3), planes=st.integers(2, 3),
       gate=st.sampled_from(["sigmoid", "tanh"]), seed=st.integers(0, 2**16))
def test_basic_block_gradients(placement, with_se, stride, in_channels, planes, gate, seed):
    block = make_basic(in_channels, planes, stride, placement, with_se, gate, seed)
    x = random_input(seed + 1, (2, in_channels, 4, 4))
    check_gradients(block, x)


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_basic_block_gradients_every_placement(placement):
    # Every placement at least once, whatever Hypothesis draws above; seeds picked so the
    # kink margin holds (the assume would otherwise skip the example silently).
    for seed in range(20):
        block = make_basic(2, 3, 2, placement, True, seed=seed)
        x = random_input(seed + 100, (2, 2, 4, 4))
        if kink_distance(block, x) > KINK_MARGIN:
            strict_check(block, x)
            return
    pytest.fail("no seed in 0..19 kept every ReLU input 1e-3 away from 0")


@pytest.mark.parametrize("placement, stride_in_1x1",
                         [(placement, False) for placement in PLACEMENTS] + [("standard", True)])
def test_bottleneck_gradients_every_placement(placement, stride_in_1x1):
    for seed in range(20):
        block = make_bottleneck(3, 2, 2, placement, True, groups=2, stride_in_1x1=stride_in_1x1,
                                seed=seed)
        x = random_input(seed + 100, (2, 3, 4, 4))
        if kink_distance(block, x) > KINK_MARGIN:
            strict_check(block, x)
            return
    pytest.fail("no seed in 0..19 kept every ReLU input 1e-3 away from 0")


@settings(max_examples=3)
@given(with_se=st.booleans(), seed=st.integers(0, 2**16))
def test_bottleneck_identity_shortcut_gradients(with_se, seed):
    # in_channels == 4·planes and stride 1: no projection, the identity path alone
    block = make_bottleneck(8, 2, 1, "standard", with_se, seed=seed)
    assert block.downsample is None
    check_gradients(block, random_input(seed + 1, (2, 8, 3, 3)))


def test_block_gradients_in_eval_mode():
    # running statistics instead of batch statistics: BN is affine, the rest the same
    block = make_basic(2, 3, 2, "standard", True, seed=3)
    block.bn1.running_mean[...] = 0.1
    block.bn1.running_var[...] = 2.0
    x = random_input(7, (2, 2, 4, 4))
    strict_check(block, x, mode="eval")


def distinct_input(seed, shape, gap=0.01):
    """Values spaced by ``gap`` in random order: max-pool windows never hold near-ties."""
    values = (np.arange(np.prod(shape)) - np.prod(shape) / 2) * gap
    return np.random.default_rng(seed).permutation(values).reshape(shape)


@pytest.mark.parametrize("with_se", [False, True])
def test_inception_module_gradients(with_se):
    for seed in range(20):
        rng = np.random.default_rng(seed)
        attention = SEBlock(9, reduction=3, dtype=np.float64, rng=rng) if with_se else None
        module = InceptionModule(2, 2, 2, 3, 1, 2, 2, attention=attention, dtype=np.float64,
                                 rng=rng)
        # spacing 0.01 between input values: the max-pool branch's windows have no
        # near-ties, and a 6e-6 step never changes which entry is the maximum
        x = distinct_input(seed, (2, 2, 4, 4))
        if kink_distance(module, x) > KINK_MARGIN:
            strict_check(module, x)
            return
    pytest.fail("no seed in 0..19 kept every ReLU input 1e-3 away from 0")


@pytest.mark.parametrize("with_se", [False, True])
def test_vgg_stage_gradients(with_se):
    for seed in range(20):
        rng = np.random.default_rng(seed)
        attention = SEBlock(3, reduction=1, dtype=np.float64, rng=rng) if with_se else None
        stage = VGGStage(2, 3, 2, attention=attention, dtype=np.float64, rng=rng)
        x = random_input(seed, (2, 2, 3, 3))
        if kink_distance(stage, x) > KINK_MARGIN:
            strict_check(stage, x)
            return
    pytest.fail("no seed in 0..19 kept every ReLU input 1e-3 away from 0")


# ---------------------------------------------------------------------------- wiring
def relu(v):
    return np.maximum(v, 0)


def expected_basic_output(block, x):
    """The placement formulas of the paper's Fig. 5, composed from the block's own children."""
    placement, se = block.placement, block.se
    shortcut = x if block.downsample is None else block.downsample(x)

    def branch(v):
        h = relu(block.bn1(block.conv1(v)))
        if placement == "after_3x3":
            h = se(h)
        return block.bn2(block.conv2(h))

    if placement == "standard":
        return relu(se(branch(x)) + shortcut)
    if placement == "pre":
        return relu(branch(se(x)) + shortcut)
    if placement == "post":
        return se(relu(branch(x) + shortcut))
    if placement == "identity":
        return relu(branch(x) + se(shortcut))
    return relu(branch(x) + shortcut)      # after_3x3: SE inside the branch


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_each_placement_computes_its_formula(placement):
    block = make_basic(3, 4, 2, placement, True, seed=5).eval()
    block.bn1.running_mean[...] = np.linspace(-0.2, 0.2, 4)   # BN not the identity
    x = random_input(1, (2, 3, 6, 6))
    np.testing.assert_allclose(block(x), expected_basic_output(block, x), rtol=1e-12, atol=1e-12)


def test_placements_differ_from_each_other():
    # Same weights, different positions: the outputs must not coincide (else the switch is dead).
    x = random_input(2, (2, 4, 5, 5))
    outputs = {}
    for placement in ("standard", "post", "identity", "after_3x3"):
        outputs[placement] = make_basic(4, 4, 1, placement, True, seed=9).eval()(x)
    names = list(outputs)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            assert not np.allclose(outputs[first], outputs[second]), (first, second)


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_without_attention_every_placement_is_the_plain_block(placement):
    x = random_input(3, (2, 3, 5, 5))
    plain = make_bottleneck(3, 2, 2, "standard", False, seed=4).eval()
    placed = make_bottleneck(3, 2, 2, placement, False, seed=4).eval()
    np.testing.assert_array_equal(plain(x), placed(x))


def test_bottleneck_stride_position():
    torchvision_style = make_bottleneck(4, 2, 2, "standard", False, stride_in_1x1=False)
    caffe_style = make_bottleneck(4, 2, 2, "standard", False, stride_in_1x1=True)
    assert torchvision_style.conv1.stride == (1, 1) and torchvision_style.conv2.stride == (2, 2)
    assert caffe_style.conv1.stride == (2, 2) and caffe_style.conv2.stride == (1, 1)
    x = random_input(0, (1, 4, 6, 6))
    assert torchvision_style(x).shape == caffe_style(x).shape == (1, 8, 3, 3)


def test_resnext_width_and_groups():
    block = make_bottleneck(64, 64, 1, "standard", False, groups=32, base_width=4)
    # torchvision: width = int(planes * base_width / 64) * groups = 4 * 32 = 128
    assert block.conv2.weight.shape == (128, 4, 3, 3)
    assert block.conv3.weight.shape == (256, 128, 1, 1)


def test_inception_concatenates_branches_then_applies_se():
    rng = np.random.default_rng(0)
    se = SEBlock(9, reduction=3, dtype=np.float64, rng=rng)
    module = InceptionModule(2, 2, 2, 3, 1, 2, 2, attention=se, dtype=np.float64, rng=rng).eval()
    x = random_input(0, (2, 2, 4, 4))
    branches = np.concatenate([module.branch1x1(x), module.branch3x3(x), module.branch5x5(x),
                               module.branch_pool(x)], axis=1)
    np.testing.assert_allclose(module(x), se(branches), rtol=1e-12, atol=1e-12)
    assert module(x).shape == (2, 9, 4, 4)


def test_vgg_stage_layout_and_torchvision_indices():
    stage = VGGStage(3, 8, 2, attention=SEBlock(8, reduction=4))
    assert [type(m).__name__ for m in stage] == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d",
                                                  "BatchNorm2d", "ReLU", "SEBlock"]
    assert "3.weight" in stage.state_dict() and "6.fc1.weight" in stage.state_dict()


# ---------------------------------------------------------------------------- dtype and errors
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_output_dtype_is_input_dtype(dtype, placement):
    block = make_bottleneck(4, 2, 2, placement, True, dtype=dtype)
    x = random_input(0, (2, 4, 4, 4)).astype(dtype)
    y = block(x)
    assert y.dtype == dtype and block.backward(np.ones_like(y)).dtype == dtype


def test_bad_placement_is_rejected():
    with pytest.raises(ValueError, match="placement"):
        check_placement("middle")
    with pytest.raises(ValueError, match="placement"):
        BasicBlock(2, 2, placement="middle")


def test_attention_with_wrong_channels_is_rejected():
    with pytest.raises(ValueError, match="needs an SE block over 4 channels, got one over 2"):
        BasicBlock(2, 4, downsample=projection_shortcut(2, 4, 1), attention=SEBlock(2, 1),
                   placement="standard")
    # SE-PRE sees the block's input, 2 channels here, so 4 is wrong
    with pytest.raises(ValueError, match="'pre'"):
        BasicBlock(2, 4, downsample=projection_shortcut(2, 4, 1), attention=SEBlock(4, 1),
                   placement="pre")


def test_attention_that_is_not_a_module_is_rejected():
    with pytest.raises(TypeError, match="SEBlock or None"):
        BasicBlock(2, 2, attention="se")


def test_wrong_input_channels_are_reported():
    block = make_basic(3, 3, 1, "standard", True)
    with pytest.raises(ValueError, match="3 channels"):
        block(np.zeros((1, 2, 4, 4)))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        block.output_shape((1, 2, 4, 4))


def test_backward_before_forward_is_an_error():
    with pytest.raises(RuntimeError, match="before forward"):
        make_basic(2, 2, 1, "standard", False).backward(np.zeros((1, 2, 2, 2)))


# ---------------------------------------------------------------------------- counting
def test_block_flops_by_hand():
    # BasicBlock 4 -> 8, stride 2, projection, SE r=2 standard, input (1, 4, 8, 8): output 4x4.
    rng = np.random.default_rng(0)
    block = BasicBlock(4, 8, 2, projection_shortcut(4, 8, 2, rng=rng),
                       attention=SEBlock(8, reduction=2, rng=rng), rng=rng)
    positions = 4 * 4
    conv1 = positions * 8 * 4 * 9          # 3x3, 4 -> 8
    conv2 = positions * 8 * 8 * 9          # 3x3, 8 -> 8
    projection = positions * 8 * 4         # 1x1, 4 -> 8
    se = 8 * positions + 2 * 8 * 4 + 8 * positions   # squeeze adds, two FCs, scale multiplies
    assert block.flops((1, 4, 8, 8)) == conv1 + conv2 + projection + se
    assert block.flops((3, 4, 8, 8)) == 3 * (conv1 + conv2 + projection + se)
    assert block.output_shape((3, 4, 8, 8)) == (3, 8, 4, 4)


def test_se_position_changes_its_cost():
    # SE-PRE runs on the 4-channel 8x8 input, standard on the 8-channel 4x4 output
    shape = (1, 4, 8, 8)
    pre = make_basic(4, 8, 2, "pre", True)
    standard = make_basic(4, 8, 2, "standard", True)
    plain = make_basic(4, 8, 2, "standard", False)
    assert pre.flops(shape) - plain.flops(shape) == 2 * 4 * 64 + 2 * 4 * 2
    assert standard.flops(shape) - plain.flops(shape) == 2 * 8 * 16 + 2 * 8 * 4


def test_inception_flops_by_hand():
    module = InceptionModule(2, 2, 2, 3, 1, 2, 2, attention=SEBlock(9, reduction=3))
    hw = 4 * 4
    convs = hw * (2 * 2 + 2 * 2 + 3 * 2 * 9 + 1 * 2 + 2 * 1 * 25 + 2 * 2)
    se = 2 * 9 * hw + 2 * 9 * 3
    assert module.flops((1, 2, 4, 4)) == convs + se
