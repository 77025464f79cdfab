# %% [markdown]
# # 3. SE inside networks
#
# An SE block is a drop-in unit: it maps a `(N, C, H, W)` map to one of the
# same shape, so it fits after any convolution (paper Sec. 4, Figs. 2-3).
# In a ResNet the paper puts it on the residual branch, just before the
# addition with the shortcut. This tutorial
#
# 1. builds SE-ResNets by name and looks inside one residual unit;
# 2. draws and builds the five placements the paper compares (Sec. 6.4,
#    Fig. 5, Tables 14-15), and checks each one's gradients;
# 3. reproduces the complexity columns of the paper's Table 2 (parameters
#    and GFLOPs with and without SE);
# 4. finds where the extra parameters live: mostly in the last stage.

# %% [markdown]
# **Setup.** In a fresh notebook environment (a kernel without `se_numpy`)
# the next cell installs it, with its dependencies, from the clone this
# notebook sits in. Where `se_numpy` is already installed, and when the file
# runs as a script, it does nothing.

# %%
import importlib.util
import subprocess
import sys
from pathlib import Path

if importlib.util.find_spec("se_numpy") is None:
    clone = [folder for folder in (Path.cwd(), *Path.cwd().parents)
             if (folder / "pyproject.toml").is_file() and (folder / "se_numpy" / "__init__.py").is_file()]
    if not clone:
        raise RuntimeError("se_numpy is not installed and this folder is not inside a clone of "
                           "it: clone the repository and open the notebook there")
    subprocess.run([sys.executable, "-m", "pip", "install", "-e", str(clone[0])], check=True)
    sys.path.insert(0, str(clone[0]))      # importable in this kernel without a restart

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
# The paper found standard, PRE and Identity about equally good, POST worse
# (it scales the sum, so it also damps the identity path that carries the
# signal through a deep net), and SE_3x3 as good with fewer parameters (its
# SE sees the narrow width of the bottleneck, not the 4x wider output).

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
fig.suptitle("Five places for the SE block (orange) in a residual unit: POST and Identity "
             "also scale what the identity path carries", fontsize=11)
fig.tight_layout()
show(fig, OUT / "placements.png", dpi=80)

# %% [markdown]
# Now build each one: a basic block (16 channels) with an SE block in the
# given place, and check its gradients (input and every parameter, in
# float64) with `check_module`. `BasicBlock.attention_channels` says how many
# channels the SE block sees there (the input's for PRE/Identity, the
# block's output for the others).

# %%
rng = np.random.default_rng(0)
small = rng.standard_normal((2, 4, 4, 4))
for placement in PLACEMENTS:
    channels = sn.nn.BasicBlock.attention_channels(4, 4, placement)
    se = sn.nn.SEBlock(channels, reduction=2, dtype=np.float64, rng=0)
    block = sn.nn.BasicBlock(4, 4, attention=se,
                             placement=placement, dtype=np.float64, rng=0)
    report = check_module(block, small)
    parameters = sum(p.size for p in block.parameters())
    print(f"{placement:10s} SE over {channels} channels, {parameters} parameters, "
          f"gradient check {'passed' if report.passed else 'FAILED'}")
    assert report.passed, report

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
# The paper counts "GFLOPs" as multiply-accumulates of the convolutions and
# FC layers plus the SE block's squeeze and scale, at 224 x 224. SE adds
# about 10% parameters to ResNet-50 but only 0.26% compute: its FC layers
# act on `(N, C)` vectors, not on maps. (Details of the conventions, such as
# ResNet's stride on the first 1x1 convolution, are in
# `se_numpy/analysis/table.py` and `docs/models.md`; the command
# `se-numpy models` prints the same table.) The paper prints GFLOPs to two
# decimals, so its *difference* 3.87 − 3.86 is only known to ±0.01: an
# overhead of 0.26% ± 0.26% for ResNet-50, which our 0.36% matches.

# %%
wanted = ("ResNet-50", "ResNeXt-50", "MobileNet", "ResNet-50 SE_3x3") if FAST else None
rows = [row for row in PAPER_ROWS if wanted is None or row.label in wanted]
measured = []
print(f"{'model':18s} {'params (M)':>22s} {'GFLOPs':>26s}")
print(f"{'':18s} {'plain':>7s} {'SE':>7s} {'paper SE':>8s} {'plain':>8s} {'SE':>8s} "
      f"{'paper':>9s}")
for row in rows:
    result = measure_row(row)
    measured.append(result)
    paper_params = f"{row.params_se:8.1f}" if row.params_se is not None else f"{'-':>8s}"
    print(f"{row.label:18s} {result.params_plain:7.2f} {result.params_se:7.2f} {paper_params} "
          f"{result.gflops_plain:8.3f} {result.gflops_se:8.3f} "
          f"{row.gflops_plain:g}/{row.gflops_se:g}")

# %%
labels = [result.row.label for result in measured]
params_overhead = [100 * (r.params_se / r.params_plain - 1) for r in measured]
paper_params_overhead = [100 * (r.row.params_se / r.row.params_plain - 1)
                         if r.row.params_se is not None else np.nan for r in measured]
flops_overhead = [100 * (r.gflops_se / r.gflops_plain - 1) for r in measured]
paper_flops_overhead = [100 * (r.row.gflops_se / r.row.gflops_plain - 1) for r in measured]
positions = np.arange(len(labels))
fig, (params_axis, flops_axis) = plt.subplots(1, 2, figsize=(11, 4))
for axis, ours, paper in ((params_axis, params_overhead, paper_params_overhead),
                          (flops_axis, flops_overhead, paper_flops_overhead)):
    axis.bar(positions - 0.2, ours, 0.4, color="tab:orange", label="ours")
    axis.bar(positions + 0.2, np.nan_to_num(paper), 0.4, color="tab:gray",
             label="paper (from its rounded figures; none where not given)")
    axis.set_xticks(positions, labels, rotation=30, ha="right", fontsize=8)
    axis.legend(fontsize=7)
params_axis.set_ylabel("extra parameters from SE (%)")
params_axis.set_title(f"Parameters: +{min(params_overhead):.1f}% to "
                      f"+{max(params_overhead):.1f}%", fontsize=10)
flops_axis.set_ylabel("extra multiply-accumulates from SE (%)")
flops_axis.set_title(f"Compute: +{min(flops_overhead):.2f}% to +{max(flops_overhead):.2f}%",
                     fontsize=10)
fig.suptitle("What SE costs (224 x 224 input, r = 16): parameters grow, compute hardly",
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
