"""The attention variants inside networks: registry, ``attention=``, counting, scSE's C -> 1.

What a student or a model builder relies on, each checked on small shapes:
the names build shape-preserving blocks with timm's keys, every variant goes
into every residual placement and trains through it (backward shapes), a
model refuses an option the variant does not read, counting sees each block
as one unit whose cost is its ``flops``, and the scSE spatial gate is one
number per pixel (the C -> 1 convolution), which a C -> C convolution fails.
"""
import numpy as np
import pytest

import se_numpy as sn
from se_numpy import functional as F
from se_numpy.analysis.counting import flops_breakdown
from se_numpy.nn.attention import create_attention, names, variant
from se_numpy.nn.residual import PLACEMENTS, BasicBlock

VARIANTS = ("se", "ese", "eca", "cbam", "scse")


def test_registry_names_and_errors():
    assert set(VARIANTS) <= set(names())
    with pytest.raises(ValueError, match="attention: expected one of se, ese"):
        variant("sqeeze")
    with pytest.raises(TypeError,
                       match=r"attention 'eca' does not take the options \['reduction'\]"):
        create_attention("eca", 16, reduction=8)


@pytest.mark.parametrize("name, keys", [
    ("ese", {"fc.weight": (16, 16, 1, 1), "fc.bias": (16,)}),
    ("eca", {"conv.weight": (1, 1, 3)}),
    ("cbam", {"channel.fc1.weight": (1, 16, 1, 1), "channel.fc2.weight": (16, 1, 1, 1),
              "spatial.conv.conv.weight": (1, 2, 7, 7), "spatial.conv.bn.weight": (1,),
              "spatial.conv.bn.bias": (1,), "spatial.conv.bn.running_mean": (1,),
              "spatial.conv.bn.running_var": (1,), "spatial.conv.bn.num_batches_tracked": ()}),
    ("scse", {"cSE.1.weight": (1, 16, 1, 1), "cSE.1.bias": (1,), "cSE.3.weight": (16, 1, 1, 1),
              "cSE.3.bias": (16,), "sSE.0.weight": (1, 16, 1, 1), "sSE.0.bias": (1,)}),
])
def test_state_dict_keys_and_shapes(name, keys):
    block = create_attention(name, 16, rng=0)
    assert {key: value.shape for key, value in block.state_dict().items()} == keys
    block.load_state_dict(block.state_dict())            # loads its own file strictly


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_every_variant_in_every_placement_of_a_residual_unit(name, placement):
    channels = BasicBlock.attention_channels(8, 8, placement)
    # r = 2, so the bottleneck has 4 units (with C/16 = 1 a single dead ReLU stops every gradient)
    options = {"reduction": 2} if "reduction" in variant(name).options else {}
    unit = BasicBlock(8, 8, attention=create_attention(name, channels, rng=1, **options),
                      placement=placement, rng=2).astype(np.float64)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 8, 5, 5))
    y = unit(x)
    assert y.shape == x.shape
    dx = unit.backward(rng.normal(size=y.shape))
    assert dx.shape == x.shape and np.all(np.isfinite(dx))
    assert all(np.abs(p.grad).sum() > 0 for n, p in unit.named_parameters() if n.startswith("se."))


def test_a_block_without_forward_add_in_the_standard_place_is_attention_plus_shortcut():
    unit = BasicBlock(4, 4, attention=create_attention("eca", 4, rng=4), rng=5).astype(np.float64)
    x = np.random.default_rng(6).normal(size=(2, 4, 5, 5))
    h = F.relu_forward(unit.bn1(unit.conv1(x)))[0]
    expected = np.maximum(unit.se(unit.bn2(unit.conv2(h))) + x, 0)
    np.testing.assert_allclose(unit(x), expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name, attentions", [("resnet20", VARIANTS), ("resnet50", ("cbam",))])
def test_attention_option_on_the_resnets(name, attentions):
    for attention in attentions:
        model = sn.models.create(name, attention=attention, num_classes=3)
        blocks = [unit.se for stage in (model.layer1, model.layer2, model.layer3)
                  for unit in stage]
        assert {type(block) for block in blocks} == {type(create_attention(attention, 16))}
        del model, blocks
    assert sn.models.create(name).layer1[0].se is None
    assert sn.models.create("se_" + name, attention=None).layer1[0].se is None


def test_attention_option_refusals():
    with pytest.raises(TypeError, match=r"does not take the options \['reduction'\]"):
        sn.models.create("resnet20", attention="eca", reduction=8)
    with pytest.raises(ValueError, match="attention: expected one of"):
        sn.models.create("resnet20", attention="gather")
    with pytest.raises(TypeError, match="no attention blocks"):
        sn.models.create("se_resnet20", attention=None, reduction=4)
    with pytest.raises(TypeError, match="unexpected options"):
        sn.models.create("vgg16_bn", attention="cbam")          # only the ResNets take it


def test_reduction_and_gate_reach_the_variants_that_read_them():
    cbam = sn.models.create("resnet20", attention="cbam", reduction=4).layer3[0].se
    assert cbam.channel.hidden == 64 // 4
    ese = sn.models.create("resnet20", attention="ese").layer1[0].se
    assert ese.gate == "hard_sigmoid"                                # its own default kept
    assert sn.models.create("resnet20", attention="ese", gate="sigmoid").layer1[0].se.gate \
        == "sigmoid"


@pytest.mark.parametrize("name", VARIANTS)
def test_counting_sees_one_unit_per_block_with_its_own_cost(name):
    model = sn.models.create("tiny_resnet", attention=name)
    shape = (1, 3, 16, 16)
    rows = [row for row in flops_breakdown(model, shape) if row.name.endswith(".se")]
    assert len(rows) == 3                                    # one block in each of 3 stages
    for row in rows:
        block = model
        for part in row.name.split("."):
            block = getattr(block, part) if not part.isdigit() else block[int(part)]
        assert row.macs == block.flops(row.input_shape) > 0
        assert row.params == sn.analysis.count_params(block)
    plain = sn.models.create("tiny_resnet")
    extra = sn.analysis.count_params(model) - sn.analysis.count_params(plain)
    assert extra == sum(row.params for row in rows)


def test_eca_adaptive_kernel_sizes_of_the_paper():
    # Eq. 12 with γ = 2, b = 1: C = 64 -> 3, 128 -> 5, 256 -> 5, 512 -> 5, 1024 -> 5, 2048 -> 7
    assert [F.eca_kernel_size(c) for c in (16, 64, 128, 256, 512, 1024, 2048)] == \
        [3, 3, 5, 5, 5, 5, 7]
    model = sn.models.create("ecaresnet50d")
    assert model.layer4[0].se.conv.weight.shape == (1, 1, 7)


# ============================================================================ scSE: C -> 1
def spatial_gate_is_shared_by_channels(y, x, s):
    """y = s·x + g·x with one g per pixel  <=>  y/x - s is the same for every channel."""
    spatial = y / x - s[:, :, None, None]
    return np.allclose(spatial, spatial[:, :1], rtol=1e-12, atol=1e-12)


def c_to_c_scse(x, module):
    """The known mistake: the spatial SE as a C -> C 1x1 convolution (one gate per channel
    and pixel). Same channel SE; the spatial weight widened to (C, C), its row 0 the real one."""
    fc1, fc2, spatial = module._layers()
    z = F.squeeze_forward(x)[0]
    s = F.excitation_forward(z, fc1.weight.data, fc1.bias.data, fc2.weight.data, fc2.bias.data)[0]
    rng = np.random.default_rng(0)
    wide = np.vstack([spatial.weight.data.reshape(1, -1),
                      rng.normal(size=(x.shape[1] - 1, x.shape[1]))])
    g = F.sigmoid(np.einsum("oc,ncij->noij", wide, x) + spatial.bias.data[0])
    return x * (s[:, :, None, None] + g), s


def test_scse_spatial_gate_is_one_number_per_pixel_and_the_c_to_c_mistake_is_caught():
    x = np.random.default_rng(9).uniform(0.5, 1.5, (2, 6, 4, 4))     # no division by ~0
    module = sn.nn.SCSE(6, reduction=2, rng=7).astype(np.float64)
    assert module.sSE[0].weight.shape == (1, 6, 1, 1)
    y = module(x)
    s = module._cache["s"]
    assert spatial_gate_is_shared_by_channels(y, x, s)
    wrong, s_wrong = c_to_c_scse(x, module)
    np.testing.assert_allclose(s_wrong, s, rtol=1e-14)
    assert not spatial_gate_is_shared_by_channels(wrong, x, s_wrong)
    # and the layers compute the same gates the block uses
    np.testing.assert_allclose(module.sSE(x), module._cache["g"], rtol=1e-14)
    np.testing.assert_allclose(module.cSE(x), s, rtol=1e-14)


def test_scse_refuses_a_c_to_c_spatial_weight():
    x = np.ones((1, 4, 2, 2))
    with pytest.raises(ValueError, match=r"C -> 1 projection, shape \(4,\) or \(1, 4, 1, 1\)"):
        F.scse_forward(x, np.ones((2, 4)), np.zeros(2), np.ones((4, 2)), np.zeros(4),
                       np.ones((4, 4, 1, 1)), np.zeros(1))


def test_gradcheck_command_has_the_attention_rows():
    from se_numpy.selfcheck import run_checks
    rows = run_checks(only=["ECA (k = 3)"])
    assert [row["operation"] for row in rows] == ["ECA (k = 3)"] and rows[0]["passed"]


def test_the_attention_ablation_gives_each_variant_only_the_options_it_reads():
    from se_numpy.ablate.tables import make_tables, variant_options
    table = make_tables("se_tiny_resnet")["attention"]
    options = {row.name: variant_options(row, "se_tiny_resnet") for row in table.variants}
    assert options["no SE"] is None
    assert options["SE"]["reduction"] == 2 and "attention" not in options["SE"]
    assert options["Effective SE"] == {"placement": "standard", "attention": "ese"}
    assert options["ECA"] == {"placement": "standard", "attention": "eca"}
    assert options["CBAM"] == {"placement": "standard", "reduction": 2, "attention": "cbam"}
    assert options["scSE"] == {"placement": "standard", "reduction": 2, "attention": "scse"}
    for name, chosen in options.items():
        if chosen is not None:
            sn.models.create("se_tiny_resnet", **chosen)
