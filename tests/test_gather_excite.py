"""Gather-Excite: gradients against central differences in float64, timm's keys, bad input.

Kinks are avoided by construction: every ReLU (the MLP's, and GE-θ's between
its strided convolutions) gets a bias that puts 0 in the middle of the widest
gap of its pre-activations (``bias_away_from_kink``: at least 0.05 from every
value, while the finite-difference step is ~6e-6), so no finite difference
straddles a kink, and both sides of the ReLU are exercised. The averages,
the upsampling and the sigmoid are smooth. Tolerances are the checker's own
estimates (docs/gradcheck.md), nothing loosened here.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import se_numpy as sn
from se_numpy import functional as F
from se_numpy.gradcheck import check_module, check_vjp
from se_numpy.nn.gather_excite import ExtentGather
from test_se_gradients import bias_away_from_kink

EXTENTS = (0, 2, 4)


def kink_free_mlp(g, hidden, rng):
    """(w1, b1, w2, b2) as 1x1-convolution weights whose ReLU inputs on g avoid 0 by >= 0.05."""
    channels = g.shape[1]
    cells = g.transpose(0, 2, 3, 1).reshape(-1, channels)        # one row per (n, p, q)
    w1 = rng.normal(0, 1, (hidden, channels))
    b1 = bias_away_from_kink(cells @ w1.T, rng)
    w2 = rng.normal(0, 1, (channels, hidden))
    b2 = rng.normal(0, 0.5, channels)
    return w1[:, :, None, None], b1, w2[:, :, None, None], b2


def block_pair(extent):
    def forward(x, *weights):
        return F.gather_excite_forward(x, extent, *weights)[0]

    def backward(dy, x, *weights):
        grads = F.gather_excite_backward(dy, F.gather_excite_forward(x, extent, *weights)[1])
        return grads[:1 + len(weights)]      # (dx,) alone without the MLP
    return forward, backward


@settings(max_examples=4, deadline=None)
@given(extent=st.sampled_from(EXTENTS), n=st.integers(1, 2), c=st.integers(1, 4),
       h=st.integers(1, 7), w=st.integers(1, 7), seed=st.integers(0, 2**16))
def test_ge_theta_minus_block_gradients(extent, n, c, h, w, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, c, h, w))
    g = F.gather_forward(x, extent)[0]
    weights = kink_free_mlp(g, 2, rng)
    forward, backward = block_pair(extent)
    report = check_vjp(forward, backward, (x, *weights), names=("x", "w1", "b1", "w2", "b2"),
                       seed=seed, elementwise=True)
    assert report.passed, report


@settings(max_examples=4, deadline=None)
@given(extent=st.sampled_from(EXTENTS + (8,)), h=st.integers(1, 9), w=st.integers(1, 9),
       seed=st.integers(0, 2**16))
def test_gather_and_excite_gradients_without_mlp(extent, h, w, seed):
    """GE-θ⁻ without the MLP: the gather, the upsampling and the sigmoid alone."""
    x = np.random.default_rng(seed).uniform(-1, 1, (2, 3, h, w))
    forward, backward = block_pair(extent)
    report = check_vjp(forward, backward, (x,), seed=seed, elementwise=True)
    assert report.passed, report


def test_gather_is_the_window_mean_without_the_padding():
    """Window (p, q) of extent e covers rows p·e−(e−1) .. p·e+e−1, clipped: checked against
    a loop written from that definition, on a map whose size e does not divide."""
    x = np.random.default_rng(0).normal(size=(1, 2, 7, 5))
    for extent in (2, 4):
        g = F.gather_forward(x, extent)[0]
        assert g.shape == (1, 2, -(-7 // extent), -(-5 // extent))
        for p in range(g.shape[2]):
            for q in range(g.shape[3]):
                rows = slice(max(p * extent - extent + 1, 0), p * extent + extent)
                columns = slice(max(q * extent - extent + 1, 0), q * extent + extent)
                np.testing.assert_allclose(g[0, :, p, q], x[0, :, rows, columns].mean(axis=(1, 2)),
                                           rtol=1e-13)


def test_global_extent_with_mlp_is_an_se_block_with_biases():
    """Paper Sec. 3: GE-θ⁻ with e = 0 (global) and the MLP is SE. Same numbers through SEBlock."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 8, 5, 3))
    ge = sn.nn.GatherExcite(8, rd_ratio=1 / 4, rng=3).astype(np.float64)
    se = sn.nn.SEBlock(8, hidden=2, rng=4).astype(np.float64)
    se.load_state_dict({key.replace("mlp.", ""): value for key, value in ge.state_dict().items()})
    np.testing.assert_allclose(ge(x), se(x), rtol=1e-13)


def ge_theta_without_kinks(x, extent, rng):
    """GE-θ module whose ReLUs (gather's act1, MLP's) see inputs >= 0.05 from 0 at x (train mode)."""
    module = sn.nn.GatherExcite(x.shape[1], extent=extent, extra_params=True, rd_channels=2,
                                rng=rng).astype(np.float64)
    gather = module.gather
    if "act1" in gather._order:
        pre = gather.norm1(gather.conv1(x))
        per_channel = pre.transpose(1, 0, 2, 3).reshape(x.shape[1], -1).T
        gather.norm1.bias.data = gather.norm1.bias.data + bias_away_from_kink(per_channel, rng)
    g = gather(x)
    fc1 = module.mlp.fc1
    pre = F.conv2d_forward(g, fc1.weight.data)[0]
    per_unit = pre.transpose(0, 2, 3, 1).reshape(-1, pre.shape[1])
    fc1.bias.data = bias_away_from_kink(per_unit, rng)
    return module


@pytest.mark.parametrize("extent, shape", [(2, (2, 3, 5, 4)), (4, (2, 2, 7, 5))])
def test_ge_theta_module_gradients(extent, shape):
    rng = np.random.default_rng(extent)
    x = rng.uniform(-1, 1, shape)
    module = ge_theta_without_kinks(x, extent, rng)
    report = check_module(module, x, mode="train", elementwise=True, max_entries=80)
    assert report.passed, report
    assert not report.untested, report.untested


@pytest.mark.parametrize("extent", EXTENTS)
def test_ge_theta_minus_module_gradients(extent):
    rng = np.random.default_rng(10 + extent)
    x = rng.uniform(-1, 1, (2, 3, 4, 5))
    module = sn.nn.GatherExcite(3, extent=extent, rd_channels=2, rng=5).astype(np.float64)
    g = module.gather(x)
    pre = F.conv2d_forward(g, module.mlp.fc1.weight.data)[0]
    module.mlp.fc1.bias.data = bias_away_from_kink(
        pre.transpose(0, 2, 3, 1).reshape(-1, 2), rng)
    report = check_module(module, x, elementwise=True)
    assert report.passed, report


def test_planted_bug_a_backward_without_the_gather_path_is_caught(monkeypatch):
    """The classic GE/SE slip: dx = dy·U(s) only, forgetting that x also reaches y through the
    gate. The checker must fail x and still pass the MLP's parameters."""
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, (2, 2, 4, 4))
    module = sn.nn.GatherExcite(2, extent=2, rd_channels=2, rng=6).astype(np.float64)
    pre = F.conv2d_forward(module.gather(x), module.mlp.fc1.weight.data)[0]
    module.mlp.fc1.bias.data = bias_away_from_kink(pre.transpose(0, 2, 3, 1).reshape(-1, 2), rng)
    assert check_module(module, x, elementwise=True).passed
    monkeypatch.setattr(ExtentGather, "backward", lambda self, dg: np.zeros(self._cache[0]))
    report = check_module(module, x, elementwise=False, invariants=False,
                          only=["x", "mlp.fc1.weight", "mlp.fc2.bias"])
    assert not report.passed
    assert not report.tensors["x"].passed
    assert all(report.tensors[name].passed for name in ("mlp.fc1.weight", "mlp.fc2.bias"))


def test_state_dict_keys_and_shapes_are_timms():
    """Names and shapes of timm's GatherExcite(16, extent=4, extra_params=True): log2(4) = 2
    stride-2 depthwise convolutions without bias, BN after each, the ConvMlp with biases."""
    state = sn.nn.GatherExcite(16, extent=4, extra_params=True).state_dict()
    bn = {"weight": (16,), "bias": (16,), "running_mean": (16,), "running_var": (16,),
          "num_batches_tracked": ()}
    expected = {"gather.conv1.weight": (16, 1, 3, 3),
                **{f"gather.norm1.{k}": v for k, v in bn.items()},
                "gather.conv2.weight": (16, 1, 3, 3),
                **{f"gather.norm2.{k}": v for k, v in bn.items()},
                "mlp.fc1.weight": (1, 16, 1, 1), "mlp.fc1.bias": (1,),
                "mlp.fc2.weight": (16, 1, 1, 1), "mlp.fc2.bias": (16,)}
    assert {key: value.shape for key, value in state.items()} == expected
    assert list(sn.nn.GatherExcite(32, extent=2).state_dict()) == [
        "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"]
    assert sn.nn.GatherExcite(32, extent=2, use_mlp=False).state_dict() == {}


@pytest.mark.parametrize("options, message", [
    ({"extent": 3}, "extent: expected 0"), ({"extent": -2}, "extent: expected 0"),
    ({"extent": 0, "extra_params": True}, "feat_size"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        sn.nn.GatherExcite(8, **options)


def test_bad_inputs_are_refused():
    module = sn.nn.GatherExcite(8, extent=2)
    with pytest.raises(ValueError, match="expected 8 channels"):
        module(np.zeros((1, 4, 4, 4), dtype=np.float32))
    x = np.zeros((1, 2, 4, 4))
    with pytest.raises(ValueError, match="logits"):
        F.excite_forward(x, np.zeros((1, 2, 5, 1)))
    with pytest.raises(TypeError, match="dtype"):
        F.excite_forward(x, np.zeros((1, 2, 2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="dg"):
        F.gather_backward(np.zeros((1, 2, 3, 2)), F.gather_forward(x, 2)[1])


def test_counting():
    """Parameters: the MLP's 2·C·hidden + hidden + C; GE-θ adds 9·C per convolution + 2·C per BN."""
    assert sn.analysis.count_params(sn.nn.GatherExcite(64, extent=4)) == 2 * 64 * 4 + 4 + 64
    assert sn.analysis.count_params(sn.nn.GatherExcite(64, extent=4, extra_params=True)) \
        == 2 * 64 * 4 + 4 + 64 + 2 * (9 * 64 + 2 * 64)
    # extent 2 on 4x4: windows of rows {0,1}, {1,2,3}: 2 + 3 = 5 pixels per axis, 25 per map
    macs = sn.analysis.count_flops(sn.nn.GatherExcite(8, extent=2, rd_channels=2), (1, 8, 4, 4))
    assert macs == 8 * 25 + 4 * (8 * 2 + 2 * 8) + 8 * 16


@pytest.mark.parametrize("name, kind", [("ge", "GE-θ⁻"), ("ge_theta", "GE-θ"),
                                        ("ge_theta_plus", "GE-θ")])
def test_attention_option_builds_gather_excite_and_counting_sees_it(name, kind):
    """``attention="ge"`` etc. put a GatherExcite where SE goes, in every unit; the extra
    parameters the counter finds are exactly those blocks' own."""
    model = sn.models.create("tiny_resnet", attention=name, num_classes=3)
    blocks = [unit.se for stage in (model.layer1, model.layer2, model.layer3) for unit in stage]
    assert all(isinstance(block, sn.nn.GatherExcite) and kind in repr(block) for block in blocks)
    extra = sn.analysis.count_params(model) - sn.analysis.count_params(
        sn.models.create("tiny_resnet", num_classes=3))
    assert extra == sum(sn.analysis.count_params(block) for block in blocks)
    assert (extra == 0) == (name == "ge")               # GE-θ⁻ has no parameters
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32)
    logits = model(x)
    assert model.backward(np.ones_like(logits)).shape == x.shape
