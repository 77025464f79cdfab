# %% [markdown]
# # 3. SE inside networks
#
# An SE block is a drop-in unit: it maps a `(N, C, H, W)` map to one of the
# same shape, so it fits after any convolution (paper Sec. 4, Figs. 2-3).
# In a ResNet the paper puts it on the residual branch, just before the
# addition with the shortcut. This tutorial
#
# 1. builds SE-ResNets by name and looks inside one residual unit;
# 2. draws and builds the five placements the paper compares (Sec. 6,
#    Fig. 5, Tables 14-15), and checks each one's gradients;
# 3. reproduces the complexity columns of the paper's Table 2 (parameters
#    and GFLOPs with and without SE);
# 4. finds where the extra parameters live: mostly in the last stage.

# %% [markdown]
# **Setup (notebooks only).** The next cell runs `tutorials/_setup.py`,
# which installs `se_numpy` from this clone when the kernel does not have it
# yet (a fresh environment) and otherwise does nothing. In the `.py` file
# the line is a comment, so a script skips it.

# %%
# %run _setup.py

# %%
import os
import sys
from pathlib import Path

import matplotlib
if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")          # write PNGs; no screen needed
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyBboxPatch

import se_numpy as sn
from se_numpy.analysis.figures import show
from se_numpy.analysis.table import PAPER_ROWS, measure_row
from se_numpy.gradcheck import check_module
from se_numpy.nn.residual import projection_shortcut

NAME = "03_se_in_networks"
FIGURES = ["placements.png", "table2_overhead.png", "se_params_by_stage.png"]
FAST = os.environ.get("SE_NUMPY_FAST", "0") not in ("", "0")
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("SE_NUMPY_TUTORIAL_OUT", HERE / "out")) / NAME
OUT.mkdir(parents=True, exist_ok=True)
print(f"figures go to {OUT}  (fast mode: {FAST})")

# %% [markdown]
# ## SE-ResNets by name
#
# `sn.models.create(name, ...)` builds any registered network; every `se_`
# model takes the SE options `reduction`, `placement`, `squeeze`, `gate`
# and `se_bias`. A CIFAR SE-ResNet-20 (three stages of three basic blocks):

# %%
print([name for name in sn.models.names() if name.startswith("se_")])
model = sn.models.create("se_resnet20", num_classes=10, seed=0)
print(model.layer2[0])
x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
print("logits:", model(x).shape)

# %% [markdown]
# ## The five placements (paper Fig. 5, Tables 14 and 15)
#
# A residual unit computes `out = ReLU(F(x) + shortcut(x))`. Where can SE go?
#
# | name        | formula                                  | paper           |
# |-------------|------------------------------------------|-----------------|
# | `standard`  | `ReLU(SE(F(x)) + x)`                     | Fig. 5(b)       |
# | `pre`       | `ReLU(F(SE(x)) + x)`                     | Fig. 5(c) SE-PRE |
# | `post`      | `SE(ReLU(F(x) + x))`                     | Fig. 5(d) SE-POST |
# | `identity`  | `ReLU(F(x) + SE(x))`                     | Fig. 5(e) SE-Identity |
# | `after_3x3` | SE inside F, after the 3x3 convolution   | Table 15 SE_3x3 |
#
# On ImageNet with ResNet-50 (top-1 error, the ablation setting of Tables
# 10-16, whose baseline is ResNet-50 23.30 % and SE-ResNet-50 22.28 %; not
# Table 2's 24.80 % / 23.29 %):
#
# | placement | top-1 error | table |
# |---|---|---|
# | standard | 22.28 % | 14 |
# | SE-PRE | 22.23 % | 14 |
# | SE-POST | 22.78 % | 14 |
# | SE-Identity | 22.20 % | 14 |
# | SE_3x3 | 22.48 % (with 25.8 M parameters against 28.1 M) | 15 |
#
# So standard, PRE and Identity are about equally good and POST is worse.
# Note that Identity scales the identity path too, and does as well as
# standard: "it damps the shortcut" cannot be why POST loses. What sets POST
# apart is *where*: it is the only placement applied after the two branches
# are added (and after the ReLU). The paper's own reading (Sec. 6, on the
# integration strategy) is just that: SE's gains hold wherever the block
# goes, as long as it acts before the branches are aggregated. It offers no
# mechanism, and neither does this tutorial. SE_3x3 costs fewer parameters
# because its SE block sees the bottleneck's width, a quarter of the
# block's output.
# (These are the paper's numbers; this tutorial does not train.
# `se-numpy ablate` runs Tables 14 and 15 on the embedded data; see
# `docs/ablations.md`.)

# %%
PLACEMENTS = ("standard", "pre", "post", "identity", "after_3x3")
TITLES = {"standard": "standard (Fig. 5b)", "pre": "SE-PRE (Fig. 5c)",
          "post": "SE-POST (Fig. 5d)", "identity": "SE-Identity (Fig. 5e)",
          "after_3x3": "SE_3x3 (Table 15)"}


def box(axis, x, y, text, colour):
    axis.add_patch(FancyBboxPatch((x - 0.17, y - 0.045), 0.34, 0.09,
                                  boxstyle="round,pad=0.01", facecolor=colour,
                                  edgecolor="k", lw=0.8))
    axis.text(x, y, text, ha="center", va="center", fontsize=8)


def arrow(axis, start, end):
    axis.annotate("", xy=end, xytext=start,
                  arrowprops=dict(arrowstyle="->", lw=0.9, shrinkA=0, shrinkB=0))


def draw_unit(axis, placement):
    """One residual unit: input at the top, the residual branch left, identity right."""
    branch_x, identity_x, merge_y = 0.3, 0.78, 0.27
    se_colour, conv_colour = "#f4a261", "#a8dadc"
    axis.text(0.5, 0.98, "x", ha="center", fontsize=9)
    axis.plot([0.5, 0.5], [0.96, 0.91], color="k", lw=0.9)
    axis.plot([branch_x, identity_x], [0.91, 0.91], color="k", lw=0.9)
    # the residual branch, top to bottom
    steps = {"standard": [("residual F", conv_colour), ("SE", se_colour)],
             "pre": [("SE", se_colour), ("residual F", conv_colour)],
             "post": [("residual F", conv_colour)],
             "identity": [("residual F", conv_colour)],
             "after_3x3": [("conv 3x3", conv_colour), ("SE", se_colour),
                           ("rest of F", conv_colour)]}[placement]
    heights = np.linspace(0.78, 0.42, len(steps)) if len(steps) > 1 else [0.6]
    previous = 0.91
    for (text, colour), y in zip(steps, heights):
        arrow(axis, (branch_x, previous), (branch_x, y + 0.045))
        box(axis, branch_x, y, text, colour)
        previous = y - 0.045
    axis.plot([branch_x, branch_x], [previous, merge_y], color="k", lw=0.9)
    arrow(axis, (branch_x, merge_y), (0.465, merge_y))
    # the identity (shortcut) path
    if placement == "identity":
        arrow(axis, (identity_x, 0.91), (identity_x, 0.645))
        box(axis, identity_x, 0.6, "SE", se_colour)
        axis.plot([identity_x, identity_x], [0.555, merge_y], color="k", lw=0.9)
    else:
        axis.plot([identity_x, identity_x], [0.91, merge_y], color="k", lw=0.9)
        axis.text(identity_x + 0.03, 0.6, "identity", fontsize=7, rotation=90, va="center")
    arrow(axis, (identity_x, merge_y), (0.535, merge_y))
    axis.add_patch(plt.Circle((0.5, merge_y), 0.035, facecolor="white", edgecolor="k"))
    axis.text(0.5, merge_y, "+", ha="center", va="center", fontsize=10)
    if placement == "post":
        arrow(axis, (0.5, merge_y - 0.035), (0.5, 0.175))
        box(axis, 0.5, 0.13, "SE", se_colour)
        arrow(axis, (0.5, 0.085), (0.5, 0.03))
    else:
        arrow(axis, (0.5, merge_y - 0.035), (0.5, 0.03))
    axis.text(0.5, -0.01, "out", ha="center", va="top", fontsize=9)
    axis.set_title(TITLES[placement], fontsize=9)
    axis.set_xlim(0, 1)
    axis.set_ylim(-0.08, 1.02)
    axis.axis("off")


fig, axes = plt.subplots(1, 5, figsize=(12, 4.2))
for axis, placement in zip(axes, PLACEMENTS):
    draw_unit(axis, placement)
fig.suptitle("Five places for the SE block (orange) in a residual unit: Identity scales the "
             "shortcut, POST the sum of both paths", fontsize=11)
fig.tight_layout()
show(fig, OUT / "placements.png", dpi=80)

# %% [markdown]
# Now build each one: a small bottleneck unit (8 channels in, a 4-wide 3x3,
# 16 out, a 1x1 projection on the shortcut so that the widths can differ)
# with an SE block in the given place, and check its gradients (input and
# every parameter, in float64) with `check_module`.
# `Bottleneck.attention_channels` says how many channels the SE block sees
# there: the input's for PRE, the 3x3's for SE_3x3, the unit's output for
# standard, POST and Identity (Identity's SE scales the projected shortcut).
# The SE parameters follow: two FC layers of `C · C/r` weights each.

# %%
rng = np.random.default_rng(0)
in_channels, planes = 8, 4                       # output 4 · planes = 16 channels
small = rng.standard_normal((2, in_channels, 4, 4))
seen = {}
for placement in PLACEMENTS:
    channels = sn.nn.Bottleneck.attention_channels(in_channels, planes, placement)
    se = sn.nn.SEBlock(channels, reduction=2, dtype=np.float64, rng=0)
    shortcut = projection_shortcut(in_channels, 4 * planes, 1, dtype=np.float64, rng=0)
    block = sn.nn.Bottleneck(in_channels, planes, downsample=shortcut, attention=se,
                             placement=placement, dtype=np.float64, rng=0)
    report = check_module(block, small)
    se_parameters = sum(p.size for p in block.se.parameters())
    seen[placement] = channels
    print(f"{placement:10s} SE over {channels:2d} channels, {se_parameters:3d} SE parameters, "
          f"gradient check {'passed' if report.passed else 'FAILED'}")
    assert report.passed, report
assert (seen["pre"], seen["after_3x3"], seen["standard"]) == (in_channels, planes, 4 * planes)

for placement in PLACEMENTS:
    network = sn.models.create("se_resnet50", placement=placement, stride_in_1x1=True) \
        if not FAST else None
    if network is not None:
        print(f"SE-ResNet-50 {placement:10s}: {sn.analysis.count_params(network) / 1e6:.2f} M "
              "parameters")
        del network

# %% [markdown]
# ## The paper's Table 2: what SE costs
#
# The paper counts "GFLOPs" as multiply-accumulates, at 224 x 224. Its
# Sec. 3.3 puts SE-ResNet-50 at about 2.5 M parameters (~10 %) above
# ResNet-50's ~25 M, and at 3.87 against 3.86 GFLOPs, "a 0.26 % relative
# increase": the FC layers act on `(N, C)` vectors, not on maps. We count the
# convolutions and FC layers, and for each SE block also its squeeze
# (`C·H·W` additions) and its scale (`C·H·W` multiplications); the
# conventions, such as ResNet's stride on the first 1x1 convolution, are in
# `se_numpy/analysis/table.py` and `docs/models.md`, and `se-numpy models`
# prints the same table. The rows come from the paper's Table 2, MobileNet
# from its Table 3 and SE_3x3 from its Table 15; SENet-154 has no plain twin
# and is left out here. (In fast mode only four rows are built.)

# %%
def printed_decimals(row):
    """Decimals the paper prints for the row's GFLOPs (7.60 is stored as 7.6: take the larger)."""
    return max(len(f"{value:g}".split(".")[-1]) if "." in f"{value:g}" else 0
               for value in (row.gflops_plain, row.gflops_se))


wanted = ("ResNet-50", "ResNeXt-50", "MobileNet", "ResNet-50 SE_3x3") if FAST else None
rows = [row for row in PAPER_ROWS
        if row.plain is not None and (wanted is None or row.label in wanted)]
measured = []
print(f"{'model':18s} {'params (M)':>22s} {'GFLOPs':>26s}")
print(f"{'':18s} {'plain':>7s} {'SE':>7s} {'paper SE':>8s} {'plain':>8s} {'SE':>8s} "
      f"{'paper':>9s}  source")
for row in rows:
    result = measure_row(row)
    measured.append(result)
    paper_params = f"{row.params_se:8.1f}" if row.params_se is not None else f"{'-':>8s}"
    print(f"{row.label:18s} {result.params_plain:7.2f} {result.params_se:7.2f} {paper_params} "
          f"{result.gflops_plain:8.3f} {result.gflops_se:8.3f} "
          f"{row.gflops_plain:.{printed_decimals(row)}f}/{row.gflops_se:.{printed_decimals(row)}f}"
          f"  {row.source}")

# %% [markdown]
# The paper prints GFLOPs to two decimals (MobileNet's to three), so the
# increase it implies is known only to within that rounding: 3.86 → 3.87 is
# an increase between 0.00 and 0.02 GFLOPs, 0 % to 0.5 %. The next cell
# computes, for every row, our increase and the paper's interval, and splits
# our SE cost into its parts: the two FC layers, and the two element-wise
# passes over the map (squeeze and scale, `C·H·W` each). The paper does not
# say how it counts the squeeze and the scale. The cell tries three ways —
# both passes (what `count_flops` does), one of them, neither — and prints
# which fall inside the paper's interval, row by row and in total.


# %%
def paper_interval(row):
    """Smallest and largest SE increase (in GMACs) that round to the paper's two figures."""
    half_unit = 0.5 * 10.0 ** -printed_decimals(row)
    increase = row.gflops_se - row.gflops_plain
    return increase - 2 * half_unit, increase + 2 * half_unit


def se_cost_parts(row):
    """(FC, element-wise) multiply-accumulates of all SE blocks of the row's SE network."""
    network = sn.models.create(row.se, **row.se_options)
    blocks = [cost for cost in sn.analysis.flops_breakdown(network, (1, 3, 224, 224))
              if cost.kind == "SEBlock"]
    elementwise = sum(2 * int(np.prod(cost.input_shape[1:])) for cost in blocks)  # squeeze, scale
    return sum(cost.macs for cost in blocks) - elementwise, elementwise


conventions = ("FC + squeeze + scale", "FC + one pass", "FC only")
inside = {convention: 0 for convention in conventions}
paper_range = []                     # the paper's increase, lowest and highest, in %
print(f"{'model':18s} {'paper increase':>19s} " + " ".join(f"{c:>21s}" for c in conventions))
for result in measured:
    fc, elementwise = se_cost_parts(result.row)
    low, high = paper_interval(result.row)
    plain_macs = result.gflops_plain * 1e9
    paper_range.append((100 * max(low, 0) * 1e9 / plain_macs, 100 * high * 1e9 / plain_macs))
    cells = []
    for convention, extra in zip(conventions, (fc + elementwise, fc + elementwise / 2, fc)):
        fits = low * 1e9 - 1 <= extra <= high * 1e9 + 1
        inside[convention] += fits
        assert fits or extra > high * 1e9 or convention == "FC only", (result.row.label, convention)
        cells.append(f"{100 * extra / plain_macs:+8.2f}% {'inside ' if fits else 'outside'}")
    print(f"{result.row.label:18s} {100 * max(low, 0) * 1e9 / plain_macs:+7.2f}% to "
          f"{100 * high * 1e9 / plain_macs:+6.2f}% " + " ".join(f"{c:>21s}" for c in cells))
print("rows inside the paper's rounding: " +
      ", ".join(f"{convention} {count} of {len(measured)}" for convention, count in inside.items()))

# %% [markdown]
# Read the last line. Where our count (FC + squeeze + scale) falls outside
# the paper's interval, it is above it (the cell asserts that): by up to one
# element-wise pass, which weighs most where the SE blocks see large maps
# and the convolutions are cheap — MobileNet, whose depthwise-separable
# layers cost little, has the largest relative increase in the table.
# Which convention the paper used cannot be settled from its rounded
# figures; the tally says which ones they are consistent with. None of this
# changes the lesson of the table: SE's compute is a small fraction of the
# network's (the figure's right panel gives the range), its parameters are
# not.

# %%
labels = [result.row.label for result in measured]
params_overhead = [100 * (r.params_se / r.params_plain - 1) for r in measured]
paper_params_overhead = [100 * (r.row.params_se / r.row.params_plain - 1)
                         if r.row.params_se is not None else np.nan for r in measured]
flops_overhead = [100 * (r.gflops_se / r.gflops_plain - 1) for r in measured]
paper_flops_overhead = [100 * (r.row.gflops_se / r.row.gflops_plain - 1) for r in measured]
assert "MobileNet" not in labels or labels[int(np.argmax(flops_overhead))] == "MobileNet"
positions = np.arange(len(labels))
fig, (params_axis, flops_axis) = plt.subplots(1, 2, figsize=(11, 4.6))
flops_rounding = np.array([[f - low for f, (low, _) in zip(paper_flops_overhead, paper_range)],
                           [high - f for f, (_, high) in zip(paper_flops_overhead, paper_range)]])
for axis, ours, paper, rounding in ((params_axis, params_overhead, paper_params_overhead, None),
                                    (flops_axis, flops_overhead, paper_flops_overhead,
                                     flops_rounding)):
    axis.bar(positions - 0.2, ours, 0.4, color="tab:orange", label="ours")
    axis.bar(positions + 0.2, np.nan_to_num(paper), 0.4, color="tab:gray", yerr=rounding,
             capsize=3, label="paper (from its rounded figures; none where not given)"
             + ("\nbars: the range its rounding allows" if rounding is not None else ""))
    axis.set_xticks(positions, labels, rotation=30, ha="right", fontsize=8)
    top = max(np.nanmax(ours), np.nanmax(paper) if rounding is None else
              max(high for _, high in paper_range))
    axis.set_ylim(0, 1.4 * top)                                         # room for the legend
    axis.legend(fontsize=7, loc="upper left")
params_axis.set_ylabel("extra parameters from SE (%)")
params_axis.set_title(f"Parameters: +{min(params_overhead):.1f}% to "
                      f"+{max(params_overhead):.1f}%", fontsize=10)
flops_axis.set_ylabel("extra multiply-accumulates from SE (%)")
flops_axis.set_title(f"Compute: +{min(flops_overhead):.2f}% to +{max(flops_overhead):.2f}%",
                     fontsize=10)
fig.suptitle("What SE costs (224 x 224 input, r = 16), counted with squeeze and scale",
             fontsize=11)
fig.tight_layout()
show(fig, OUT / "table2_overhead.png", dpi=90)

# %% [markdown]
# ## Where the extra parameters live
#
# One SE block over `C` channels has `2C²/r` weights (plus `C/r + C` biases).
# Summed over the network (paper Eq. 5):
#
#     extra parameters = (2/r) Σ_s N_s · C_s²
#
# with `N_s` blocks of `C_s` output channels in stage `s`. The square makes
# the wide last stage dominate: ResNet-50's stage 4 has `C = 2048`, 64 times
# the `C²` of stage 1.

# %%
se_resnet50 = sn.models.create("se_resnet50", stride_in_1x1=True)
per_stage = {}
for name, parameter in se_resnet50.named_parameters():
    if ".se." in name:
        stage = name.split(".")[0]                     # "layer1" ... "layer4"
        per_stage[stage] = per_stage.get(stage, 0) + parameter.size
blocks, widths = (3, 4, 6, 3), (256, 512, 1024, 2048)
closed_form = [sn.analysis.se_params_closed_form([n], [c]) for n, c in zip(blocks, widths)]
total = sum(per_stage.values())
for (stage, count), formula in zip(per_stage.items(), closed_form):
    print(f"{stage}: {count:>9,d} SE parameters ({100 * count / total:4.1f}%), Eq. 5: {formula:,d}")
    assert count == formula
print(f"total {total:,d} = {100 * total / sn.analysis.count_params(se_resnet50):.1f}% of "
      "SE-ResNet-50's parameters")
assert max(per_stage, key=per_stage.get) == "layer4" and per_stage["layer4"] > total / 2

# the paper (Sec. 7) notes that SE in the last stage can be made almost free with a
# marginal loss of accuracy; a huge ratio for stage 4 leaves a width-1 bottleneck there
lean = sn.models.create("se_resnet50", stride_in_1x1=True, reduction=(16, 16, 16, 2048))
plain_count = sn.analysis.count_params(sn.models.create("resnet50", stride_in_1x1=True))
print(f"increase over ResNet-50: all stages {100 * total / plain_count:.1f}%, "
      f"last stage almost without SE "
      f"{100 * (sn.analysis.count_params(lean) / plain_count - 1):.1f}%")

# %%
fig, axis = plt.subplots(figsize=(7, 4))
stages = list(per_stage)
positions = np.arange(len(stages))
axis.bar(positions, [per_stage[s] / 1e6 for s in stages], color="tab:orange",
         label="counted in the built model")
axis.scatter(positions, [c / 1e6 for c in closed_form], color="k", marker="_", s=600,
             label="Eq. 5: (2/r) N_s C_s² + biases", zorder=3)
for position, stage in zip(positions, stages):
    axis.text(position, per_stage[stage] / 1e6, f"{100 * per_stage[stage] / total:.0f}%",
              ha="center", va="bottom", fontsize=9)
axis.set_xticks(positions, [f"{s}\n{n} blocks, C={c}" for s, n, c in zip(stages, blocks, widths)],
                fontsize=8)
axis.set_ylabel("SE parameters (millions)")
axis.set_title("SE-ResNet-50: the last stage holds most of the SE parameters", fontsize=10)
axis.legend(fontsize=8)
fig.tight_layout()
show(fig, OUT / "se_params_by_stage.png", dpi=90)

# %% [markdown]
# ## Exercises
#
# Solutions: `tutorials/solutions/03_se_in_networks_solutions.py`.
#
# 1. Why does `SE_3x3` save parameters? Compute by hand the SE parameters of
#    SE-ResNet-50 with SE after the 3x3 convolution (bottleneck widths 64,
#    128, 256, 512) and compare with `count_params`.
# 2. Vary the reduction ratio `r ∈ {2, 4, 8, 16, 32}` (paper Table 10) for
#    SE-ResNet-50 and plot the extra parameters against `r`. Which law do
#    they follow?
# 3. For the `identity` placement the SE block scales the shortcut. Show with
#    a forward pass that when all gates are 1, every placement gives the
#    same output as the plain block (hint: set `fc2.bias` to a large
#    positive number and the `fc2.weight` to zero).
