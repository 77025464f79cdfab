"""Selective Kernel: gradients against central differences in float64, timm's keys, bad input.

The module's ReLUs (one after each branch's BN, one after the attention's BN)
are kept off their kink by construction: each BN's shift β is moved so that 0
sits in the middle of the widest gap of that channel's values at the input
being checked (``bias_away_from_kink``: >= 0.05 from every value, while the
finite-difference step is ~6e-6). Moving β shifts a BN's output exactly, in
train mode too. The squeeze, the softmax and the weighted sum are smooth.
Tolerances are the checker's own estimates (docs/gradcheck.md).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import se_numpy as sn
from se_numpy import functional as F
from se_numpy.gradcheck import check_module, check_vjp
from test_se_gradients import bias_away_from_kink


def channel_columns(values):
    """(N, C, H, W) -> (N·H·W, C): one column of values per channel."""
    return values.transpose(0, 2, 3, 1).reshape(-1, values.shape[1])


def sk_without_kinks(module, x, rng):
    """Shift every BN before a ReLU so that its outputs at x avoid 0 by >= 0.05."""
    module.train()
    paths = []
    for path, part in zip(module.paths, module._path_inputs(x)):
        pre = path.bn(path.conv(np.ascontiguousarray(part)))
        path.bn.bias.data = path.bn.bias.data + bias_away_from_kink(channel_columns(pre), rng)
        paths.append(path(np.ascontiguousarray(part)))
    z = F.path_squeeze_forward(paths)[0][:, :, None, None]
    pre = module.attn.bn(module.attn.fc_reduce(z))
    module.attn.bn.bias.data = module.attn.bn.bias.data + bias_away_from_kink(
        channel_columns(pre), rng)
    return module


# ============================================================================ the functional steps
@settings(max_examples=4, deadline=None)
@given(num_paths=st.integers(2, 3), n=st.integers(1, 2), c=st.integers(1, 3),
       h=st.integers(1, 4), w=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_fuse_and_select_gradients(num_paths, n, c, h, w, seed):
    """V = Σ_p softmax_p(l)_p ⊙ U_p and z = mean_ij Σ_p U_p, checked together in every input."""
    rng = np.random.default_rng(seed)
    paths = tuple(rng.uniform(-1, 1, (n, c, h, w)) for _ in range(num_paths))
    logits = rng.normal(0, 1.5, (n, num_paths * c))

    def forward(logits, *paths):
        attention = F.path_softmax_forward(logits, num_paths)[0]
        out = F.select_forward(list(paths), attention)[0]
        return out + F.path_squeeze_forward(list(paths))[0][:, :, None, None]

    def backward(dy, logits, *paths):
        attention, softmax_cache = F.path_softmax_forward(logits, num_paths)
        dpaths, dattention = F.select_backward(dy, F.select_forward(list(paths), attention)[1])
        shared = F.path_squeeze_backward(dy.sum(axis=(2, 3)),
                                         F.path_squeeze_forward(list(paths))[1])
        return (F.path_softmax_backward(dattention, softmax_cache),
                *[dpath + shared for dpath in dpaths])

    report = check_vjp(forward, backward, (logits, *paths), seed=seed, elementwise=True,
                       names=("logits",) + tuple(f"U{p}" for p in range(num_paths)))
    assert report.passed, report


def test_softmax_over_paths_is_stable_and_sums_to_one():
    logits = np.array([[1000.0, 0.0, -1000.0, 3.0]])   # [l(p0,c0), l(p0,c1), l(p1,c0), l(p1,c1)]
    attention = F.path_softmax_forward(logits, 2)[0]
    np.testing.assert_allclose(attention.sum(axis=1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(attention[0, :, 0], [1.0, 0.0])
    np.testing.assert_allclose(attention[0, :, 1], [1 / (1 + np.exp(3.0)), 1 / (1 + np.exp(-3.0))])


# ============================================================================ the module
MODULES = {
    "default (3x3 + dilated 3x3, split input)":
        lambda: sn.nn.SelectiveKernel(4, 4, rd_channels=2, rng=1),
    "stride 2, three branches, groups 2, shared input":
        lambda: sn.nn.SelectiveKernel(2, 4, kernel_size=[3, 5, 7], stride=2, groups=2,
                                      split_input=False, rd_channels=2, rng=2),
}


@pytest.mark.parametrize("name", MODULES)
def test_module_gradients(name):
    rng = np.random.default_rng(len(name))
    module = MODULES[name]().astype(np.float64)
    x = rng.uniform(-1, 1, (2, module.in_channels, 4, 4))
    module = sk_without_kinks(module, x, rng)
    report = check_module(module, x, mode="train", elementwise=True, max_entries=24)
    assert report.passed, report
    assert not report.untested, report.untested


def test_planted_bug_a_softmax_backward_without_the_coupling_term_is_caught(monkeypatch):
    """dl = a ⊙ da (the diagonal of the softmax Jacobian only, the usual slip) instead of
    a ⊙ (da − Σ_q a_q da_q). The branch convolutions' own weights still get the right
    gradient through dV ⊙ a_p; fc_select and everything before it must fail."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (2, 4, 4, 4))
    module = sk_without_kinks(sn.nn.SelectiveKernel(4, 4, rd_channels=2, rng=4)
                              .astype(np.float64), x, rng)
    import se_numpy.nn.selective_kernel as sk_module
    monkeypatch.setattr(sk_module, "path_softmax_backward",
                        lambda da, a: (a * da).reshape(a.shape[0], -1))
    report = check_module(module, x, mode="train", elementwise=False, invariants=False,
                          only=["x", "attn.fc_select.weight"])
    assert not report.passed
    assert not report.tensors["attn.fc_select.weight"].passed
    assert not report.tensors["x"].passed


def test_state_dict_keys_and_shapes_are_timms():
    """timm's SelectiveKernel(8, 16): two 3x3 branches on 4 input channels each, A =
    make_divisible(16/16, 8) = 8, fc_select to 2·16."""
    state = sn.nn.SelectiveKernel(8, 16).state_dict()
    bn = lambda c: {"weight": (c,), "bias": (c,), "running_mean": (c,), "running_var": (c,),
                    "num_batches_tracked": ()}
    expected = {}
    for p in range(2):
        expected[f"paths.{p}.conv.weight"] = (16, 4, 3, 3)
        expected.update({f"paths.{p}.bn.{k}": v for k, v in bn(16).items()})
    expected["attn.fc_reduce.weight"] = (8, 16, 1, 1)
    expected.update({f"attn.bn.{k}": v for k, v in bn(8).items()})
    expected["attn.fc_select.weight"] = (32, 8, 1, 1)
    assert {key: value.shape for key, value in state.items()} == expected
    module = sn.nn.SelectiveKernel(8, 16)
    assert [path.conv.dilation for path in module.paths] == [(1, 1), (2, 2)]
    assert [path.conv.padding for path in module.paths] == [(1, 1), (2, 2)]


def test_output_shape_and_counting():
    module = sn.nn.SelectiveKernel(8, 16, stride=2, rd_channels=4).eval()
    x = np.zeros((1, 8, 6, 5), dtype=np.float32)
    assert module(x).shape == module.output_shape(x.shape) == (1, 16, 3, 3)
    # each branch: 16 filters over 4 channels, 3x3, at 3x3 outputs; the attention: 16·4 + 4·32
    # multiply-accumulates; fuse and weighted sum: 2·16·9 each
    macs = 2 * (9 * 16 * 4 * 9) + (16 * 4 + 4 * 32) + 2 * 16 * 9 + 2 * 16 * 9
    assert sn.analysis.count_flops(module, x.shape) == macs
    assert sn.analysis.count_params(module) == 2 * (16 * 4 * 9 + 32) + 16 * 4 + 8 + 4 * 32


@pytest.mark.parametrize("options, message", [
    ({"kernel_size": 4}, "kernel_size: expected odd"),
    ({"kernel_size": [3, 1]}, "kernel_size: expected odd"),
    ({"in_channels": 7}, "split_input needs a multiple"),
])
def test_bad_options_are_refused(options, message):
    options = {"in_channels": 8, **options}
    with pytest.raises(ValueError, match=message):
        sn.nn.SelectiveKernel(**options)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="expected 8 channels"):
        sn.nn.SelectiveKernel(8)(np.zeros((1, 4, 4, 4), dtype=np.float32))
    paths = [np.zeros((1, 2, 3, 3)), np.zeros((1, 2, 3, 4))]
    with pytest.raises(ValueError, match=r"paths\[1\]"):
        F.path_squeeze_forward(paths)
    with pytest.raises(ValueError, match="attention"):
        F.select_forward([paths[0], paths[0]], np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match="at least 2"):
        F.select_forward([paths[0]], np.zeros((1, 1, 2)))


def test_sk_residual_unit_gradients():
    """SelectiveKernelBasic (SK in place of the first 3x3, stride 2, projection shortcut), train
    mode. Besides the SK layer's ReLUs, the unit's final ReLU(F(x) + shortcut) is kept off its
    kink by shifting conv2's BN, which shifts F(x) and so the sum exactly."""
    from se_numpy.nn.residual import projection_shortcut
    from se_numpy.nn.selective_kernel_blocks import SelectiveKernelBasic
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, (2, 2, 4, 4))
    block = SelectiveKernelBasic(2, 4, stride=2, downsample=projection_shortcut(2, 4, 2, rng=6),
                                 sk_options={"rd_channels": 2}, rng=7).astype(np.float64)
    sk_without_kinks(block.conv1, x, rng)
    pre = block._branch_forward(x) + block.downsample(x)
    block.conv2.bn.bias.data = block.conv2.bn.bias.data + bias_away_from_kink(
        channel_columns(pre), rng)
    report = check_module(block.train(), x, elementwise=True, max_entries=12)
    assert report.passed, report


def test_sk_networks_run_and_count():
    model = sn.models.create("sk_tiny_resnet", num_classes=3, seed=0)
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32)
    logits = model(x)
    assert logits.shape == (2, 3) and model.backward(np.ones_like(logits)).shape == x.shape
    # every unit's 3x3 is an SK layer: first conv of each unit, keys as timm's skresnet
    assert "layer1.0.conv1.paths.1.conv.weight" in model.state_dict()
    assert "layer1.0.conv2.bn.running_var" in model.state_dict()
    # skresnet18's parameter count is the one timm's model reports (its manifest, from timm)
    assert sn.analysis.count_params(sn.models.create("skresnet18")) == 11_958_056


def test_attention_option_sk_replaces_the_3x3_of_every_unit():
    """``attention="sk"`` builds the SK twin of each unit (placement "replace_3x3", the only one
    it fits): the same keys and shapes as the SK network of that name."""
    from se_numpy.nn.selective_kernel_blocks import SelectiveKernelBasic
    by_option = sn.models.create("resnet20", attention="sk").state_dict()
    by_name = sn.models.create("sk_resnet20").state_dict()
    assert [(k, v.shape) for k, v in by_option.items()] == [(k, v.shape) for k, v in by_name.items()]
    wide = sn.models.create("resnet20", attention="sk", reduction=2)
    assert all(isinstance(unit, SelectiveKernelBasic) for unit in wide.layer3)
    assert wide.layer3[0].conv1.attn.fc_reduce.weight.shape[0] == 32     # 64 / 2
    with pytest.raises(ValueError, match="fits \\('replace_3x3',\\)"):
        sn.models.create("resnet20", attention="sk", placement="pre")
    with pytest.raises(ValueError, match="got 'replace_3x3'"):
        sn.models.create("resnet20", attention="cbam", placement="replace_3x3")
