"""Parameter and multiply-accumulate counts against published figures and closed forms.

Sources of the expected numbers (none is computed by the code under test):
* the paper, Hu et al., "Squeeze-and-Excitation Networks" (arXiv 1709.01507):
  Table 2 (GFLOPs of ResNet-50/101/152 and their SE versions), Sec. 3.3 and
  Table 10 (25.6M / 28.1M parameters for ResNet-50 / SE-ResNet-50), Table 15
  (SE_3x3: 25.8M), Eq. 5 (the SE parameter overhead (2/r) Σ_s N_s C_s²);
* torchvision's model documentation (parameters and "GFLOPS" of its weights,
  which are multiply-accumulates with the stride on the 3x3 convolution);
* hand counts written out below.

The paper's figures are printed to 3 or 4 significant digits, so they are met
within 0.5% (parameters) and 1% (GFLOPs), the tolerances of the project brief;
the published torchvision figures are compared at their printed precision.
"""
import argparse

import pytest

import se_numpy as sn
from memory import release_memory
from se_numpy.analysis import (count_flops, count_params, flops_breakdown, format_breakdown,
                               se_params_closed_form)
from se_numpy.analysis.table import (PAPER_ROWS, add_commands, agrees_at_printed_precision,
                                     relative_difference)

IMAGENET = (1, 3, 224, 224)
RESNET_STAGES = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3), "resnet152": (3, 8, 36, 3)}
BOTTLENECK_OUT_CHANNELS = (256, 512, 1024, 2048)
STAGE_SIDES = (56, 28, 14, 7)          # feature-map side of each stage at 224x224


_built = {}


@pytest.fixture(scope="module", autouse=True)
def release_built_models():
    yield
    _built.clear()
    release_memory()        # else the worker keeps the last model's 190 MB for the next file


def build(name, **options):
    """The last model built is kept for the next test that asks for the same one (ResNet-152
    and VGG-16 take a second or more to build), and only that one: VGG-16 alone holds 0.5 GB
    of weights, and keeping every ImageNet model alive took the suite to 6.6 GB."""
    key = (name, tuple(sorted(options.items())))
    if key not in _built:
        _built.clear()
        release_memory()
        _built[key] = sn.models.create(name, **options)
    return _built[key]


# ---------------------------------------------------------------------------- torchvision
# torchvision's documented parameter counts of the same architectures.
TORCHVISION_PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
                      "resnet101": 44_549_160, "resnet152": 60_192_808,
                      "resnext50_32x4d": 25_028_904, "vgg16_bn": 138_365_992}
# torchvision's documented "GFLOPS" (multiply-accumulates at 224x224, stride on the 3x3).
TORCHVISION_GFLOPS = {"resnet18": 1.81, "resnet50": 4.09, "resnet101": 7.80, "resnet152": 11.51,
                      "resnext50_32x4d": 4.23, "vgg16_bn": 15.47}


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_params_match_torchvision(name):
    assert count_params(build(name)) == TORCHVISION_PARAMS[name]


@pytest.mark.parametrize("name", sorted(TORCHVISION_GFLOPS))
def test_macs_match_torchvision_at_printed_precision(name):
    gmacs = count_flops(build(name), IMAGENET) / 1e9
    assert round(gmacs, 2) == TORCHVISION_GFLOPS[name]


# ---------------------------------------------------------------------------- the paper
# Hu et al., Table 2: GFLOPs (re-implementation / SENet columns); params: Sec. 3.3, Table 10.
PAPER_TABLE_2 = {
    "resnet50": {"gflops": 3.86, "se_gflops": 3.87, "params": 25.6e6, "se_params": 28.1e6},
    "resnet101": {"gflops": 7.58, "se_gflops": 7.60},
    "resnet152": {"gflops": 11.30, "se_gflops": 11.32},
}


@pytest.mark.parametrize("name", sorted(PAPER_TABLE_2))
def test_paper_table_2_gflops(name):
    figures = PAPER_TABLE_2[name]
    # the paper's (Caffe) ResNets put the stride on the first 1x1 convolution
    plain = count_flops(build(name, stride_in_1x1=True), IMAGENET) / 1e9
    se = count_flops(build(f"se_{name}", stride_in_1x1=True), IMAGENET) / 1e9
    assert abs(plain - figures["gflops"]) <= 0.01 * figures["gflops"]
    assert abs(se - figures["se_gflops"]) <= 0.01 * figures["se_gflops"]
    # and the SE overhead is small, as the paper stresses (0.26% for ResNet-50)
    assert 0 < se - plain < 0.005 * plain


def test_paper_resnet50_params():
    figures = PAPER_TABLE_2["resnet50"]
    assert abs(count_params(build("resnet50")) - figures["params"]) <= 0.005 * figures["params"]
    se_params = count_params(build("se_resnet50"))
    assert abs(se_params - figures["se_params"]) <= 0.005 * figures["se_params"]


def test_paper_table_15_se_3x3_params():
    # SE after the 3x3 convolution sees 1/4 of the channels: 25.8M instead of 28.1M
    params = count_params(build("se_resnet50", placement="after_3x3"))
    assert abs(params - 25.8e6) <= 0.005 * 25.8e6


def test_stride_position_changes_macs_not_params():
    caffe = build("resnet50", stride_in_1x1=True)
    torchvision = build("resnet50")
    assert count_params(caffe) == count_params(torchvision)
    assert count_flops(caffe, IMAGENET) < count_flops(torchvision, IMAGENET)


# ---------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("name", sorted(RESNET_STAGES))
def test_se_parameter_overhead_is_the_closed_form(name):
    blocks = RESNET_STAGES[name]
    # Eq. 5: (2/r) Σ N_s C_s² with r = 16, plus the FC biases C/16 + C per block
    weights = sum(2 * n * c * c // 16 for n, c in zip(blocks, BOTTLENECK_OUT_CHANNELS))
    biases = sum(n * (c // 16 + c) for n, c in zip(blocks, BOTTLENECK_OUT_CHANNELS))
    overhead = count_params(build(f"se_{name}")) - count_params(build(name))
    assert overhead == weights + biases
    assert se_params_closed_form(blocks, BOTTLENECK_OUT_CHANNELS, 16) == weights + biases


def test_resnet50_overhead_number():
    # Written out: 2/16·(3·256² + 4·512² + 6·1024² + 3·2048²) = 2,514,944 weights,
    # plus 3·(16+256) + 4·(32+512) + 6·(64+1024) + 3·(128+2048) = 16,048 biases
    assert count_params(build("se_resnet50")) - count_params(build("resnet50")) == 2_530_992


def test_closed_form_without_biases_and_per_stage_reduction():
    # resnet20: 3 blocks of 16, 32, 64 channels; r = (4, 8, 16), no biases:
    # (2/4)·3·16² + (2/8)·3·32² + (2/16)·3·64² = 384 + 768 + 1536
    se = sn.models.create("se_resnet20", reduction=(4, 8, 16), se_bias=False)
    overhead = count_params(se) - count_params(build("resnet20"))
    assert overhead == 384 + 768 + 1536
    assert se_params_closed_form((3, 3, 3), (16, 32, 64), (4, 8, 16), bias=False) == overhead


def test_se_flop_overhead_is_the_closed_form():
    # per SE block: squeeze H·W·C adds + scale H·W·C multiplies + two FCs 2·C·C/16
    blocks = RESNET_STAGES["resnet50"]
    expected = sum(n * (2 * side * side * c + 2 * c * c // 16)
                   for n, side, c in zip(blocks, STAGE_SIDES, BOTTLENECK_OUT_CHANNELS))
    overhead = count_flops(build("se_resnet50", stride_in_1x1=True), IMAGENET) \
        - count_flops(build("resnet50", stride_in_1x1=True), IMAGENET)
    assert overhead == expected


def test_tiny_resnet_by_hand():
    # conv MACs = output positions · out channels · in channels · k²; fc = in · out
    expected = (32 * 32 * 8 * 3 * 9                                  # conv1
                + 2 * 32 * 32 * 8 * 8 * 9                            # layer1.0 conv1, conv2
                + 16 * 16 * 16 * 8 * 9 + 16 * 16 * 16 * 16 * 9       # layer2.0 conv1, conv2
                + 16 * 16 * 16 * 8                                   # layer2.0 projection
                + 8 * 8 * 32 * 16 * 9 + 8 * 8 * 32 * 32 * 9          # layer3.0 conv1, conv2
                + 8 * 8 * 32 * 16                                    # layer3.0 projection
                + 32 * 10)                                           # fc
    assert count_flops(build("tiny_resnet"), (1, 3, 32, 32)) == expected
    # SE hidden widths are max(1, C // 16) = 1, 1, 2
    se_extra = (2 * 32 * 32 * 8 + 2 * 8 * 1) + (2 * 16 * 16 * 16 + 2 * 16 * 1) \
        + (2 * 8 * 8 * 32 + 2 * 32 * 2)
    assert count_flops(build("se_tiny_resnet"), (1, 3, 32, 32)) == expected + se_extra


# ---------------------------------------------------------------------------- breakdown
def test_breakdown_adds_up_and_names_the_layers():
    model = build("se_tiny_resnet")
    rows = flops_breakdown(model, (2, 3, 32, 32))
    total = count_flops(model, (2, 3, 32, 32))
    assert sum(row.macs for row in rows) == total == model.flops((2, 3, 32, 32))
    by_name = {row.name: row for row in rows}
    assert by_name["fc"].macs == 2 * 32 * 10 and by_name["fc"].kind == "Linear"
    assert by_name["layer2.0.se"].kind == "SEBlock"
    assert by_name["layer2.0.se"].input_shape == (2, 16, 16, 16)
    assert by_name["layer2.0.downsample.0"].output_shape == (2, 16, 16, 16)
    assert by_name["bn1"].macs == 0
    assert sum(row.params for row in rows) == count_params(model)
    assert "layer1.0.conv1" in format_breakdown(rows)


def test_count_flops_scales_with_batch_and_checks_the_shape():
    model = build("tiny_resnet")
    assert count_flops(model, (4, 3, 32, 32)) == 4 * count_flops(model, (1, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        count_flops(model, (3, 32, 32))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        count_flops(model, (1, 1, 32, 32))


# ---------------------------------------------------------------------------- the table
def test_table_rows_carry_the_papers_figures():
    rows = {row.label: row for row in PAPER_ROWS}
    assert (rows["ResNet-50"].gflops_plain, rows["ResNet-50"].gflops_se) == (3.86, 3.87)
    assert (rows["ResNet-152"].gflops_plain, rows["ResNet-152"].gflops_se) == (11.30, 11.32)
    assert (rows["MobileNet"].params_plain, rows["MobileNet"].params_se) == (4.2, 4.7)


def test_printed_precision_and_relative_difference():
    assert agrees_at_printed_precision(4.232, 4.2)          # MobileNet: +0.76%, rounds to 4.2
    assert not agrees_at_printed_precision(4.26, 4.2)
    assert agrees_at_printed_precision(3.858, 3.86)
    assert relative_difference(3.0, None) is None
    assert relative_difference(3.03, 3.0) == pytest.approx(0.01)


def test_models_command_prints_resnet50_rows(capsys):
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    args = parser.parse_args(["models", "--only", "ResNet-50"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.split("|")[0].strip() == "ResNet-50"]
    assert len(lines) == 1
    assert "3.858" in lines[0] and "3.860" in lines[0] and "28.09" in lines[0]


def test_models_command_lists_names(capsys):
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    args = parser.parse_args(["models", "--list"])
    assert args.func(args) == 0
    assert "se_resnext101_32x4d" in capsys.readouterr().out
