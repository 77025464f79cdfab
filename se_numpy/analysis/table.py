"""The paper's complexity table, recomputed: ``se-numpy models``.

For every model of the paper's Table 2 that the registry has (and MobileNet
from Table 3, the SE_3x3 variant of Table 15 and SENet-154, the paper's ILSVRC
2017 network), build the plain and the SE network, count parameters and
multiply-accumulates at 224x224 and print them beside the paper's figures
with the relative difference.

Conventions needed to reach the paper's numbers (all documented in docs/models.md):

* "GFLOPs" in the paper are multiply-accumulates (GMACs) of convolutions and
  FC layers plus the SE squeeze and scale (see ``counting.py``), input 224x224.
* ResNets put each stage's stride on the first 1x1 convolution, as the
  original Caffe ResNet and the paper's SE-ResNets do (``stride_in_1x1=True``):
  ResNet-50 costs 3.86 GMACs so, 4.09 with the stride on the 3x3.
* ResNeXts put the stride on the 3x3 convolution, as the ResNeXt code does
  (4.23 GMACs against the paper's 4.24; on the 1x1 it would be 3.77).
* VGG-16 has SE after each of its five stages; MobileNet after each of its 13
  depthwise-separable blocks; r = 16 and FC biases everywhere.

The paper gives parameter counts only for ResNet-50 / SE-ResNet-50 (Sec. 3.3
and Table 10: 25.6M / 28.1M), SE_3x3 (Table 15: 25.8M) and MobileNet
(Table 3: 4.2M / 4.7M); other cells show "-".
"""
import sys
from collections import namedtuple

from .counting import count_flops, count_params

PaperRow = namedtuple("PaperRow", "label plain se plain_options se_options params_plain "
                                  "params_se gflops_plain gflops_se source")
PaperRow.__doc__ = """One row of the paper: params in millions, GFLOPs (GMACs) at 224x224."""

_RESNET = {"stride_in_1x1": True}

# Figures as printed in Hu et al., "Squeeze-and-Excitation Networks" (TPAMI version,
# arXiv 1709.01507v4). None: the paper does not give the number.
PAPER_ROWS = (
    PaperRow("ResNet-50", "resnet50", "se_resnet50", _RESNET, _RESNET, 25.6, 28.1, 3.86, 3.87,
             "Table 2 (GFLOPs); Sec. 3.3, Table 10 (params)"),
    PaperRow("ResNet-101", "resnet101", "se_resnet101", _RESNET, _RESNET, None, None, 7.58, 7.60,
             "Table 2"),
    PaperRow("ResNet-152", "resnet152", "se_resnet152", _RESNET, _RESNET, None, None, 11.30,
             11.32, "Table 2"),
    PaperRow("ResNeXt-50", "resnext50_32x4d", "se_resnext50_32x4d", {}, {}, None, None, 4.24,
             4.25, "Table 2"),
    PaperRow("ResNeXt-101", "resnext101_32x4d", "se_resnext101_32x4d", {}, {}, None, None, 7.99,
             8.00, "Table 2"),
    PaperRow("VGG-16", "vgg16_bn", "se_vgg16_bn", {}, {}, None, None, 15.47, 15.48, "Table 2"),
    PaperRow("MobileNet", "mobilenet_v1", "se_mobilenet_v1", {}, {}, 4.2, 4.7, 0.569, 0.572,
             "Table 3 (569 / 572 MFLOPs)"),
    PaperRow("ResNet-50 SE_3x3", "resnet50", "se_resnet50", _RESNET,
             dict(_RESNET, placement="after_3x3"), 25.6, 25.8, 3.86, 3.86, "Table 15"),
    # The paper's winning network has no plain twin, and the paper prints only its errors
    # (18.68 % top-1, 4.47 % top-5 at 224x224), no parameter or FLOP count.
    PaperRow("SENet-154", None, "legacy_senet154", {}, {}, None, None, None, None,
             "Table 8 (errors only: 18.68 % top-1, 4.47 % top-5 at 224x224; no params or "
             "FLOPs printed)"),
)

Measured = namedtuple("Measured", "row params_plain params_se gflops_plain gflops_se")


def _printed_decimals(value):
    text = repr(float(value))
    return len(text.split(".")[1].rstrip("0")) if "." in text else 0


def relative_difference(ours, paper):
    """(ours - paper) / paper, or None where the paper gives no figure."""
    return None if paper is None else (ours - paper) / paper


def agrees_at_printed_precision(ours, paper):
    """True when ``ours`` rounds to the paper's figure at the paper's printed precision.

    E.g. MobileNet's 4.232M parameters agree with the printed "4.2M" although
    they differ by 0.8%: the paper rounds to 0.1M.
    """
    decimals = _printed_decimals(paper)
    return abs(ours - paper) <= 0.5 * 10 ** (-decimals) + 1e-12


def measure_row(row, input_size=224):
    """Build the row's two models (any seed: counts do not depend on values) and count them."""
    from .. import models

    shape = (1, 3, input_size, input_size)
    params_plain = flops_plain = None
    if row.plain is not None:
        plain = models.create(row.plain, **row.plain_options)
        params_plain, flops_plain = count_params(plain), count_flops(plain, shape)
        del plain
    se = models.create(row.se, **row.se_options)
    params_se, flops_se = count_params(se), count_flops(se, shape)
    del se

    def scaled(value, unit):
        return None if value is None else value / unit
    return Measured(row, scaled(params_plain, 1e6), params_se / 1e6, scaled(flops_plain, 1e9),
                    flops_se / 1e9)


def _cell(ours, paper, digits):
    """'ours  paper  diff' with a fixed width; '-' where the paper gives no figure."""
    if ours is None:
        return f"{'-':>8} {'-':>7} {'':>7}"
    if paper is None:
        return f"{ours:>8.{digits}f} {'-':>7} {'':>7}"
    return f"{ours:>8.{digits}f} {paper:>7.{digits}f} {100 * (ours - paper) / paper:>+6.2f}%"


def format_table(measurements):
    """Plain-text table: ours, the paper's figure and the relative difference, per cell."""
    cell_width = 24
    groups = ["params (M), plain", "params (M), SE", "GFLOPs, plain", "GFLOPs, SE"]
    header1 = f"{'':<18}" + "".join(f" | {group:^{cell_width}}" for group in groups)
    header2 = f"{'model':<18}" + f" | {'ours':>8} {'paper':>7} {'diff':>7}" * 4
    lines = [header1, header2, "-" * len(header2)]
    notes = []
    for m in measurements:
        row = m.row
        cells = [(m.params_plain, row.params_plain, 2), (m.params_se, row.params_se, 2),
                 (m.gflops_plain, row.gflops_plain, 3), (m.gflops_se, row.gflops_se, 3)]
        lines.append(f"{row.label:<18}" + "".join(f" | {_cell(*cell)}" for cell in cells))
        for (ours, paper, _), group in zip(cells, groups):
            limit = 0.005 if group.startswith("params") else 0.01
            if paper is not None and abs(ours - paper) > limit * paper \
                    and agrees_at_printed_precision(ours, paper):
                notes.append(f"{row.label} {group}: {ours:.3f} differs by more than "
                             f"{100 * limit:g}% from the printed {paper:g} but rounds to it "
                             "(the paper prints fewer digits)")
    lines.append("")
    lines.extend(notes)
    lines.append("paper: Hu et al., Squeeze-and-Excitation Networks (arXiv 1709.01507). "
                 "Sources: " + "; ".join(f"{m.row.label}: {m.row.source}" for m in measurements))
    lines.append("GFLOPs = multiply-accumulates (conv, FC, SE squeeze and scale) at 224x224; "
                 "ResNets with the stride on the first 1x1 conv (Caffe), ResNeXts on the 3x3; "
                 "r = 16; FC biases on.")
    return "\n".join(lines)


# ======================================================================= attention variants
AttentionRow = namedtuple("AttentionRow", "label attention params gflops source")
AttentionRow.__doc__ = """ResNet-50 with one attention variant in every bottleneck; the figures
its paper prints (params in millions, GFLOPs), NONE where the paper has no such figure, or
NOT_VERIFIED where it has one that no readable source confirmed."""

NONE, NOT_VERIFIED = "none", "not verified"

# Each figure was checked against a source that could be read; "not verified" says
# where none could. ECA-Net's own ResNet-50 counts 24.37M parameters, not 25.6M:
# its table uses another parameter count for the same backbone.
ATTENTION_ROWS = (
    AttentionRow("ResNet-50", None, 25.6, 3.86,
                 "Hu et al. (SE) Table 2 (GFLOPs), Sec. 3.3 (params)"),
    AttentionRow("+ SE", "se", 28.1, 3.87, "Hu et al. (SE) Table 2, Sec. 3.3"),
    AttentionRow("+ Effective SE", "ese", NONE, NONE,
                 "Lee & Park (CenterMask) use VoVNetV2: no ResNet-50 figure"),
    AttentionRow("+ ECA", "eca", 24.37, 3.86,
                 "Wang et al. (ECA-Net), abstract and ImageNet results: ECA-Net-50 24.37M, "
                 "3.86 GFLOPs; its ECA modules add 80 parameters and 4.7e-4 GFLOPs to a "
                 "backbone it counts as 24.37M / 3.86"),
    AttentionRow("+ CBAM", "cbam", NOT_VERIFIED, NOT_VERIFIED,
                 "Woo et al. (CBAM) Table 4 gives ResNet-50 + CBAM figures; none could be "
                 "checked against a readable copy, so none is printed"),
    AttentionRow("+ scSE", "scse", NONE, NONE,
                 "Roy et al. (scSE) evaluate segmentation only: no ImageNet ResNet-50 figure"),
    AttentionRow("+ GE-θ⁻", "ge", NOT_VERIFIED, NOT_VERIFIED,
                 "Hu et al. (Gather-Excite, global extent) tabulate ResNet-50 with GE; no readable copy "
                 "could be checked, so none is printed (GE-θ⁻ adds no parameters)"),
    AttentionRow("+ GE-θ", "ge_theta", NOT_VERIFIED, NOT_VERIFIED,
                 "Hu et al. (Gather-Excite), extent 8: not checked, as above"),
    AttentionRow("+ GE-θ+", "ge_theta_plus", NOT_VERIFIED, NOT_VERIFIED,
                 "Hu et al. (Gather-Excite), extent 8, SE's MLP: not checked, as above"),
    AttentionRow("+ SK", "sk", NONE, NONE,
                 "3x3 replaced by SK. Li et al. (SKNet) build SKNet-50 on ResNeXt-50 32x4d (27.5M, 4.47 GFLOPs; "
                 "skresnext50_32x4d here: 27.48M, 4.47): no ResNet-50 + SK figure"),
)


def measure_attention(rows=ATTENTION_ROWS, input_size=224):
    """[(row, params in M, GFLOPs)] of ResNet-50 (stride on the 1x1, as Table 2) per variant."""
    from .. import models
    shape = (1, 3, input_size, input_size)
    results = []
    for row in rows:
        model = models.create("resnet50", attention=row.attention, **_RESNET)
        results.append((row, count_params(model) / 1e6, count_flops(model, shape) / 1e9))
        del model
    return results


def format_attention_table(results):
    """ours beside the paper's figure (or why there is none), params and GFLOPs."""
    def cell(ours, paper, digits):
        if isinstance(paper, str):
            return f"{ours:>8.{digits}f} {paper:>12} {'':>7}"
        return f"{ours:>8.{digits}f} {paper:>12.{digits}f} {100 * (ours - paper) / paper:>+6.2f}%"
    header = (f"{'ResNet-50':<16} | {'params (M): ours':>16} {'paper':>12} {'diff':>7} | "
              f"{'GFLOPs: ours':>12} {'paper':>12} {'diff':>7}")
    lines = [header, "-" * len(header)]
    for row, params, gflops in results:
        lines.append(f"{row.label:<16} | {cell(params, row.params, 2):>37} | "
                     f"{cell(gflops, row.gflops, 3):>33}")
    lines.append("")
    lines += [f"{row.label}: {row.source}" for row, _, _ in results]
    lines.append("GFLOPs = multiply-accumulates at 224x224 (conv, FC, and each block's pooling "
                 "and scaling passes: nn/attention.py, analysis/counting.py); stride on the "
                 "first 1x1 conv; CBAM's MLP without biases (timm), so 28.07M.")
    return "\n".join(lines)


def _run(args):
    from .. import models

    if args.attention:
        print(format_attention_table(measure_attention(input_size=args.input_size)))
        return 0
    if args.list:
        width = max(len(name) for name in models.names())
        for name in models.names():
            print(f"{name:<{width}}  {models.describe(name)}")
        return 0
    if args.zoo:
        print(format_zoo(measure_zoo()))
        return 0
    rows = [row for row in PAPER_ROWS
            if not args.only or any(key.lower() in row.label.lower() for key in args.only)]
    if not rows:
        print(f"se-numpy models: error: no row of the table matches --only "
              f"{' '.join(args.only)}; valid rows: {', '.join(row.label for row in PAPER_ROWS)}",
              file=sys.stderr)
        return 2
    measurements = []
    for row in rows:
        measurements.append(measure_row(row, args.input_size))
    print(format_table(measurements))
    if not args.only:
        print()
        print(format_attention_table(measure_attention(input_size=args.input_size)))
    return 0


def measure_zoo(names=None):
    """[(timm name, parameters, GMACs at the name's input size, input size)] for the zoo."""
    import gc

    from .. import models
    from ..models.zoo import TIMM_NAMES, preprocessing
    rows = []
    for name in names or TIMM_NAMES:
        size = preprocessing(name).input_size
        model = models.create(name)
        rows.append((name, count_params(model), count_flops(model, (1, 3, size, size)) / 1e9,
                     size))
        del model
        gc.collect()
    return rows


def format_zoo(rows):
    width = max(len(row[0]) for row in rows)
    lines = [f"{'timm name':<{width}}  {'params (M)':>10}  {'GMACs':>7}  input"]
    lines += [f"{name:<{width}}  {params / 1e6:>10.2f}  {gmacs:>7.3f}  {size}x{size}"
              for name, params, gmacs, size in rows]
    lines.append("GMACs: conv and FC multiply-accumulates plus the SE squeeze and scale, "
                 "at timm's input size for the name.")
    return "\n".join(lines)


def add_commands(subparsers):
    """Register ``se-numpy models`` on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "models", help="parameters and GFLOPs of the paper's Table 2 models",
        description="Count parameters and multiply-accumulates of the models of the paper's "
                    "Table 2 (and MobileNet, Table 3) with and without SE, beside the "
                    "paper's figures.")
    parser.add_argument("--only", nargs="+", metavar="TEXT",
                        help="rows whose label contains TEXT (e.g. --only ResNet-50 VGG)")
    parser.add_argument("--input-size", type=int, default=224,
                        help="image side in pixels (the paper's figures are at 224)")
    parser.add_argument("--list", action="store_true",
                        help="list every registered model name instead")
    parser.add_argument("--attention", action="store_true",
                        help="only the table of ResNet-50 with each attention variant "
                             "(SE, Effective SE, ECA, CBAM, scSE) beside their papers' figures")
    parser.add_argument("--zoo", action="store_true",
                        help="parameters and GMACs of every timm-named model instead")
    parser.set_defaults(func=_run)
    return parser
