"""The model registry: names, options, shapes, end-to-end gradients, state dicts, gate recording."""
import numpy as np
import pytest

import se_numpy as sn
from se_numpy.models import CifarResNet, SEConfig
from se_numpy.nn.loss import CrossEntropyLoss
from se_numpy.nn.module import Module

from test_blocks import KINK_MARGIN, kink_distance, strict_check


# ---------------------------------------------------------------------------- registry
def test_names_cover_the_paper_models():
    expected = {"tiny_resnet", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
                "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                "resnext50_32x4d", "resnext101_32x4d", "vgg16_bn", "mobilenet_v1"}
    names = set(sn.models.names())
    timm_names = set(sn.models.zoo.TIMM_NAMES)
    selective_kernel = {f"sk_{name}" for name in ("tiny_resnet", "resnet20", "resnet32",
                                                  "resnet44", "resnet56", "resnet110")}
    assert expected | {f"se_{name}" for name in expected} | timm_names | selective_kernel \
        == names


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="unknown model 'resnet51'.*resnet50"):
        sn.models.create("resnet51")
    with pytest.raises(TypeError, match="model name"):
        sn.models.create(50)


def test_se_options_on_a_plain_model_are_refused():
    with pytest.raises(TypeError, match="resnet20 has no SE blocks"):
        sn.models.create("resnet20", reduction=8)


def test_unexpected_option_is_refused():
    with pytest.raises(TypeError, match="unexpected options.*colour"):
        sn.models.create("se_tiny_resnet", colour="red")


def test_reduction_per_stage_must_match_the_stages():
    with pytest.raises(ValueError, match="one ratio per stage \\(3 values\\), got 2"):
        sn.models.create("se_resnet20", reduction=(4, 8))
    with pytest.raises(ValueError, match="positive"):
        sn.models.create("se_resnet20", reduction=0)


# ---------------------------------------------------------------------------- shapes and dtypes
@pytest.mark.parametrize("name", ["tiny_resnet", "se_tiny_resnet", "resnet20", "se_resnet20"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cifar_models_forward_backward(name, dtype):
    model = sn.models.create(name, num_classes=7, dtype=dtype, seed=1)
    float_entries = [v for v in model.state_dict().values() if v.dtype.kind == "f"]
    assert all(v.dtype == dtype for v in float_entries)     # BN buffers included
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(dtype)
    logits = model(x)
    assert logits.shape == (2, 7) and logits.dtype == dtype
    dx = model.backward(np.ones_like(logits))
    assert dx.shape == x.shape and dx.dtype == dtype
    assert all(p.grad.dtype == dtype for p in model.parameters())
    assert any(np.any(p.grad != 0) for p in model.parameters())


def test_in_channels_option():
    model = sn.models.create("se_tiny_resnet", in_channels=1, num_classes=3)
    assert model(np.zeros((1, 1, 8, 8), np.float32)).shape == (1, 3)
    with pytest.raises(ValueError, match="1 channels"):
        model(np.zeros((1, 3, 8, 8), np.float32))


@pytest.mark.parametrize("name", ["se_resnet18", "se_resnext50_32x4d", "se_mobilenet_v1",
                                  "resnet50"])
def test_imagenet_models_run_at_small_size(name):
    # 32x32 keeps this fast; the last stage sees 1x1 pixels, so batch 2 for train-mode BN
    model = sn.models.create(name, num_classes=5)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    logits = model(x)
    assert logits.shape == (2, 5)
    assert model.backward(np.ones_like(logits)).shape == x.shape


def test_vgg_at_cifar_size():
    model = sn.models.create("se_vgg16_bn", image_size=32, num_classes=10)
    assert model(np.zeros((1, 3, 32, 32), np.float32)).shape == (1, 10)
    with pytest.raises(ValueError, match="multiple of 32"):
        sn.models.create("vgg16_bn", image_size=100)


def test_same_seed_same_model_different_seed_different_model():
    a = sn.models.create("se_tiny_resnet", seed=3).state_dict()
    b = sn.models.create("se_tiny_resnet", seed=3).state_dict()
    c = sn.models.create("se_tiny_resnet", seed=4).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["conv1.weight"], c["conv1.weight"])


# ---------------------------------------------------------------------------- SE options
def test_reduction_per_stage_sets_hidden_widths():
    model = sn.models.create("se_resnet20", reduction=(2, 4, 8))
    # hidden = C // r: 16 // 2, 32 // 4, 64 // 8
    assert model.layer1[0].se.fc1.weight.shape == (8, 16)
    assert model.layer2[0].se.fc1.weight.shape == (8, 32)
    assert model.layer3[2].se.fc2.weight.shape == (64, 8)


def test_se_bias_squeeze_and_gate_options_reach_every_block():
    model = sn.models.create("se_tiny_resnet", se_bias=False, squeeze="max", gate="tanh")
    blocks = [m for _, m in model.named_modules() if isinstance(m, sn.nn.SEBlock)]
    assert len(blocks) == 3
    assert all(b.fc1.bias is None and b.squeeze == "max" and b.gate == "tanh" for b in blocks)
    assert not any(key.endswith("se.fc1.bias") for key in model.state_dict())


def test_placement_option_builds_se_over_the_right_channels():
    pre = sn.models.create("se_resnet20", placement="pre")
    assert pre.layer2[0].se.channels == 16       # SE-PRE sees the block input (16 channels)
    assert pre.layer2[1].se.channels == 32
    after = sn.models.create("se_resnet50", placement="after_3x3")
    assert after.layer1[0].se.channels == 64     # the bottleneck's 3x3 width, not 256
    post = sn.models.create("se_tiny_resnet", placement="post")
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    assert post(x).shape == (2, 10)


def test_se_config_rejects_unknown_placement():
    with pytest.raises(ValueError, match="placement"):
        SEConfig(3, placement="everywhere")
    with pytest.raises(ValueError, match="residual units only"):
        sn.models.create("se_vgg16_bn", placement="pre", image_size=32)


# ---------------------------------------------------------------------------- end to end
class LossOf(Module):
    """Cross-entropy of a model's logits as a module, so check_module differentiates the loss."""

    def __init__(self, model, labels):
        super().__init__()
        self.model, self.labels = model, labels
        self.loss_function = CrossEntropyLoss()

    def forward(self, x):
        return np.asarray(self.loss_function(self.model(x), self.labels), dtype=x.dtype)

    def backward(self, dloss):
        dlogits = self.loss_function.backward() * float(dloss)
        return self.model.backward(dlogits)


def test_tiny_se_resnet_loss_gradient_end_to_end():
    """dL/dx and dL/dθ for every parameter of a small SE-ResNet, against central differences.

    The network has every part of se_tiny_resnet (stem, three stages, projections,
    SE in each block, global pooling, fc) with widths (2, 4, 4) so every one of
    its ~800 entries can be checked in seconds. Seeds are taken in order until no
    ReLU input lies within 1e-3 of 0 (the kink margin; see test_blocks.py).
    """
    for seed in range(30):
        model = CifarResNet(1, widths=(2, 4, 4), in_channels=2, num_classes=3,
                            se_config=SEConfig(3, reduction=2), dtype=np.float64, seed=seed)
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((2, 2, 4, 4))
        wrapped = LossOf(model, np.array([0, 2]))
        if kink_distance(wrapped, x) > KINK_MARGIN:
            report = strict_check(wrapped, x)
            parameter_count = sum(p.size for p in model.parameters())
            assert sum(len(t.indices) for t in report.tensors.values()) == x.size + parameter_count
            return
    pytest.fail("no seed in 0..29 kept every ReLU input 1e-3 away from 0")


def test_trained_step_lowers_the_loss():
    # A plain gradient step along -dL/dθ must lower the loss (sign and scale of every grad).
    model = sn.models.create("se_tiny_resnet", num_classes=4, dtype=np.float64, seed=0)
    x = np.random.default_rng(1).standard_normal((4, 3, 8, 8))
    labels = np.array([0, 1, 2, 3])
    loss_function = CrossEntropyLoss()
    before = loss_function(model(x), labels)
    model.zero_grad()
    model.backward(loss_function.backward())
    for parameter in model.parameters():
        parameter.data -= 1e-2 * parameter.grad
    assert loss_function(model(x), labels) < before


# ---------------------------------------------------------------------------- state dicts
def test_state_dict_round_trip():
    source = sn.models.create("se_tiny_resnet", seed=1)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    source.train()(x)                       # move running statistics off their defaults
    target = sn.models.create("se_tiny_resnet", seed=2)
    target.load_state_dict(source.state_dict())
    np.testing.assert_array_equal(source.eval()(x), target.eval()(x))
    assert int(target.state_dict()["bn1.num_batches_tracked"]) == 1


# Key names and shapes written out from torchvision's resnet50 and timm's seresnet50.
TORCHVISION_RESNET50_KEYS = {
    "conv1.weight": (64, 3, 7, 7),
    "bn1.running_var": (64,),
    "layer1.0.conv1.weight": (64, 64, 1, 1),
    "layer1.0.conv2.weight": (64, 64, 3, 3),
    "layer1.0.conv3.weight": (256, 64, 1, 1),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "layer1.0.downsample.1.running_mean": (256,),
    "layer2.0.downsample.0.weight": (512, 256, 1, 1),
    "layer3.5.bn2.weight": (256,),
    "layer4.2.bn3.num_batches_tracked": (),
    "fc.weight": (1000, 2048),
    "fc.bias": (1000,),
}
TIMM_SERESNET50_SE_KEYS = {
    "layer1.0.se.fc1.weight": (16, 256, 1, 1),      # timm's 1x1 convolution shape
    "layer1.0.se.fc1.bias": (16,),
    "layer1.0.se.fc2.weight": (256, 16, 1, 1),
    "layer1.0.se.fc2.bias": (256,),
    "layer3.5.se.fc1.weight": (64, 1024, 1, 1),
    "layer4.2.se.fc2.bias": (2048,),
}


@pytest.fixture(scope="module")
def resnet50_state():
    return sn.models.create("resnet50").state_dict()


@pytest.fixture(scope="module")
def se_resnet50_state():
    return sn.models.create("se_resnet50").state_dict()


def test_resnet50_keys_follow_torchvision(resnet50_state):
    for key, shape in TORCHVISION_RESNET50_KEYS.items():
        assert resnet50_state[key].shape == shape, key
    # torchvision's resnet50 state_dict has 320 entries: 161 parameters, 159 BN buffers
    assert len(resnet50_state) == 320
    assert not any(".se." in key for key in resnet50_state)
    assert "layer1.1.downsample.0.weight" not in resnet50_state   # identity shortcut there


def test_se_resnet50_keys_follow_timm(se_resnet50_state):
    for key, shape in {**TORCHVISION_RESNET50_KEYS, **TIMM_SERESNET50_SE_KEYS}.items():
        assert se_resnet50_state[key].shape == shape, key
    assert len(se_resnet50_state) == 320 + 16 * 4          # 16 blocks, 4 SE tensors each
    keys = list(se_resnet50_state)
    # timm's order inside a block: ..., bn3, se, downsample
    assert keys.index("layer1.0.bn3.num_batches_tracked") < keys.index("layer1.0.se.fc1.weight") \
        < keys.index("layer1.0.downsample.0.weight")


def test_se_weights_are_written_as_1x1_convolutions_and_2d_ones_still_load():
    model = sn.models.create("se_tiny_resnet", seed=0)
    state = model.state_dict()
    assert state["layer1.0.se.fc1.weight"].shape == (1, 8, 1, 1)      # timm's SEModule shape
    matrices = {key: (value[:, :, 0, 0] * 2 if key.endswith(("fc1.weight", "fc2.weight"))
                      else value) for key, value in state.items()}
    model.load_state_dict(matrices)
    np.testing.assert_array_equal(model.layer1[0].se.fc1.weight.data,
                                  2 * state["layer1.0.se.fc1.weight"][:, :, 0, 0])


def test_strict_load_lists_every_problem_at_once():
    model = sn.models.create("se_tiny_resnet")
    state = model.state_dict()
    del state["fc.bias"]
    state["layer9.weight"] = np.zeros(3)
    state["conv1.weight"] = np.zeros((8, 3, 5, 5), np.float32)
    with pytest.raises(ValueError) as error:
        model.load_state_dict(state)
    message = str(error.value)
    assert "missing keys: fc.bias" in message
    assert "unexpected keys: layer9.weight" in message
    assert "conv1.weight: expected shape (8, 3, 3, 3), got (8, 3, 5, 5)" in message


def test_plain_state_dict_does_not_load_into_se_model_strictly():
    plain = sn.models.create("tiny_resnet").state_dict()
    with pytest.raises(ValueError, match="12 missing keys .*: layer1.0.se.fc1.weight"):
        sn.models.create("se_tiny_resnet").load_state_dict(plain)


# ---------------------------------------------------------------------------- gate recording
def test_record_gates_collects_every_block_every_pass():
    model = sn.models.create("se_tiny_resnet", seed=0).eval()   # per-image results
    x = np.random.default_rng(0).standard_normal((3, 3, 8, 8)).astype(np.float32)
    with sn.analysis.record_gates(model) as gates:
        model(x)
        model(x[:2])
    assert sorted(gates) == ["layer1.0.se", "layer2.0.se", "layer3.0.se"]
    assert [g.shape for g in gates["layer2.0.se"]] == [(3, 16), (2, 16)]
    np.testing.assert_array_equal(gates["layer3.0.se"][1], model.layer3[0].se.last_gates)
    # the first pass's first two images are the second pass's images: same gates
    np.testing.assert_allclose(gates["layer1.0.se"][0][:2], gates["layer1.0.se"][1], rtol=1e-6)
    stacked = gates.stacked("layer1.0.se")
    assert stacked.shape == (5, 8) and np.all((stacked > 0) & (stacked < 1))   # sigmoid range
    summary = gates.summary()
    assert set(summary) == set(gates)
    assert 0 < summary["layer1.0.se"]["mean"] < 1


def test_record_gates_restores_the_blocks():
    model = sn.models.create("se_tiny_resnet", seed=0)
    x = np.zeros((1, 3, 8, 8), np.float32)
    with sn.analysis.record_gates(model) as gates:
        model(x)
    model(x)                                   # outside: nothing more is recorded
    assert len(gates["layer1.0.se"]) == 1
    assert all(not block._forward_hooks for block in model.modules())   # every hook removed


def test_record_gates_restores_after_an_error():
    model = sn.models.create("se_tiny_resnet", seed=0)
    with pytest.raises(ValueError):
        with sn.analysis.record_gates(model):
            model(np.zeros((1, 2, 8, 8), np.float32))      # wrong channel count
    assert all(not block._forward_hooks for block in model.modules())


def test_record_gates_needs_se_blocks():
    with pytest.raises(ValueError, match="no SEBlock"):
        with sn.analysis.record_gates(sn.models.create("tiny_resnet")):
            pass
