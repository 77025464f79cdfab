# %% [markdown]
# # 7. After SE: what the attention blocks that followed squeeze, and what they excite
#
# SE (Hu et al., CVPR 2018) squeezes each channel to one number and excites
# the channels with gates computed from all of them. The blocks that came
# after it change one of the two steps, or add a second, spatial, gate:
#
# | block | squeeze (what is pooled) | excitation (what computes the gate) | gate acts on |
# | --- | --- | --- | --- |
# | **SE** (Hu et al. 2018) | mean of each channel over H x W | FC C → C/r, ReLU, FC C/r → C, sigmoid | each channel |
# | **Effective SE** (Lee & Park, CenterMask 2020) | mean of each channel | one FC C → C (no reduction), hard sigmoid | each channel |
# | **ECA** (Wang et al. 2020) | mean of each channel | a k-tap 1-D convolution across neighbouring channels (k from C), sigmoid | each channel |
# | **CBAM** (Woo et al. 2018) | mean *and* max of each channel; then mean and max over the channels at each pixel | shared MLP on both channel descriptors, summed, sigmoid; then a 7x7 convolution on the two pixel maps, sigmoid | each channel, then each pixel |
# | **scSE** (Roy et al. 2018) | mean of each channel (cSE); nothing for sSE | cSE: SE's MLP; sSE: a 1x1 convolution C → 1 at each pixel, sigmoid | channel gate + pixel gate, added |
# | **Gather-Excite** (Hu et al. 2018) | mean (GE-θ⁻) or strided depthwise convolutions (GE-θ) over windows of extent e (e = 0: the whole map) | the gathered map, upsampled to H x W (MLP optional), sigmoid | each channel at each pixel |
# | **Selective Kernel** (Li et al. 2019) | mean over H x W of the *sum* of two convolution branches (3x3 and dilated 3x3) | FC C → A, BN, ReLU, FC A → 2C, softmax over the two branches | each channel of each branch: picks the receptive field |
#
# The first six are drop-in blocks, `y = g(x) ⊙ x` with the shape of `x`;
# Selective Kernel replaces the unit's 3x3 convolution instead. This
# tutorial counts what each costs beside SE, looks at their gates on the
# same images, and compares them (Selective Kernel in place of the 3x3) in
# the same network on the
# embedded data with several seeds.

# %% [markdown]
# **Setup (notebooks only).** The next cell runs `tutorials/_setup.py`,
# which installs `se_numpy` from this clone when the kernel does not have it
# yet (a fresh environment) and otherwise does nothing. In the `.py` file
# the line is a comment, so a script skips it.

# %%
# %run _setup.py

# %%
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import matplotlib
if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")          # write PNGs; no screen needed
import matplotlib.pyplot as plt
import numpy as np

import se_numpy as sn
from se_numpy import nn
from se_numpy.analysis import count_flops, count_params
from se_numpy.analysis.figures import show
from se_numpy.train.checkpoint import load_model_state

NAME = "07_after_se"
FIGURES = ["costs.png", "gates_same_images.png", "attention_ablation.png"]
FAST = os.environ.get("SE_NUMPY_FAST", "0") not in ("", "0")
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("SE_NUMPY_TUTORIAL_OUT", HERE / "out")) / NAME
OUT.mkdir(parents=True, exist_ok=True)
print(f"figures go to {OUT}  (fast mode: {FAST})")
STARTED = time.perf_counter()
SEEDS = 2 if FAST else 3
BUDGET = (["--fast", "--train-limit", "64", "--epochs", "1"] if FAST
          else ["--train-limit", "3000", "--epochs", "6"])
CHANCE = 10.0
sn.use_backend("numba")

# %% [markdown]
# ## What each block costs
#
# One block on a feature map of C = 64 channels at 16 x 16, beside the 3x3
# convolution of the same width that a residual unit already has. Parameters
# are trainable scalars; "MACs" are multiply-accumulates under the SE
# paper's convention (`sn.analysis.count_flops`: convolutions and FC layers,
# plus the squeeze's additions and the scale's multiplications).

# %%
C, SIDE = 64, 16
MAP = (1, C, SIDE, SIDE)


def make_blocks(channels, rng=0):
    """Every block over ``channels`` channels, by the names used below."""
    return {
        "SE (r=16)": nn.SEBlock(channels, reduction=16, rng=rng),
        "Effective SE": nn.EffectiveSE(channels, rng=rng),
        "ECA": nn.ECA(channels, rng=rng),
        "CBAM (r=16)": nn.CBAM(channels, rng=rng),
        "scSE (r=16)": nn.SCSE(channels, reduction=16, rng=rng),
        "GE-θ⁻ (global)": nn.GatherExcite(channels, extent=0, rng=rng),
        "GE-θ (e=4)": nn.GatherExcite(channels, extent=4, extra_params=True, rng=rng),
        "Selective Kernel": nn.SelectiveKernel(channels, channels, rng=rng),
    }


blocks = make_blocks(C)
conv = nn.Conv2d(C, C, 3, padding=1, bias=False, rng=0)
conv_params, conv_macs = count_params(conv), count_flops(conv, MAP)
costs = {name: (count_params(block), count_flops(block, MAP)) for name, block in blocks.items()}
print(f"{'block':18s} {'params':>8s} {'MACs':>10s}   vs the 3x3 conv ({conv_params:,d} params, "
      f"{conv_macs:,d} MACs)")
for name, (params, macs) in costs.items():
    print(f"{name:18s} {params:8,d} {macs:10,d}   {100 * params / conv_params:6.1f}% "
          f"{100 * macs / conv_macs:6.1f}%")
se_params, se_macs = costs["SE (r=16)"]
cheapest = min(costs, key=lambda name: costs[name][0])
print(f"fewest parameters: {cheapest} ({costs[cheapest][0]:,d}, SE {se_params:,d}); "
      f"most MACs among the drop-in blocks: "
      f"{max((n for n in costs if n != 'Selective Kernel'), key=lambda n: costs[n][1])}")

# %%
x = np.random.default_rng(1).normal(size=(2, C, SIDE, SIDE)).astype(np.float32)
same = np.allclose(blocks["GE-θ⁻ (global)"](x), blocks["SE (r=16)"](x))
print(f"GE-θ⁻ with the global extent and SE, built from the same seed, give the same output: "
      f"{same}" + (" (its gather is SE's squeeze, its MLP SE's excitation)" if same else ""))

# %% [markdown]
# Selective Kernel is not an extra: it *replaces* the 3x3 convolution, so
# its row is to be read against the convolution's 100 %, not against zero.
# The others add to a unit that already costs a 3x3 convolution (two, in a
# basic block).

# %%
fig, (param_axis, mac_axis) = plt.subplots(1, 2, figsize=(11, 3.8))
names = list(costs)
colours = ["tab:orange" if name.startswith("SE") else "tab:blue" for name in names]
for axis, column, label, reference in ((param_axis, 0, "parameters", conv_params),
                                       (mac_axis, 1, "multiply-accumulates", conv_macs)):
    values = [costs[name][column] for name in names]
    axis.barh(names, values, color=colours)
    axis.axvline(reference, color="k", lw=0.8, ls="--", label="the 3x3 convolution")
    axis.set_xscale("log")
    axis.set_xlabel(f"{label} (log scale)")
    axis.invert_yaxis()
    axis.legend(fontsize=7, loc="upper right")
param_axis.set_title(f"one block on {C} channels, {SIDE}x{SIDE}", fontsize=9)
mac_axis.set_yticks([])
fig.tight_layout()
show(fig, OUT / "costs.png")

# %% [markdown]
# ## In a network: the same ResNet with each drop-in block
#
# `sn.models.create("se_tiny_resnet", attention=NAME)` puts the block in
# every residual unit where SE sits (names from `se_numpy/nn/attention.py`).

# %%
ATTENTION = sn.nn.attention.names()
print("registered attention variants:", ", ".join(ATTENTION))
network_costs = {}
for name in ATTENTION:
    network = sn.models.create("se_tiny_resnet", num_classes=10, attention=name)
    network_costs[name] = (count_params(network), count_flops(network, (1, 3, 32, 32)))
plain = sn.models.create("tiny_resnet", num_classes=10)
plain_params, plain_macs = count_params(plain), count_flops(plain, (1, 3, 32, 32))
for name, (params, macs) in network_costs.items():
    print(f"se_tiny_resnet attention={name:5s} {params:7,d} params (+{params - plain_params:5,d} "
          f"over tiny_resnet), {macs / 1e6:.3f} M MACs (+{100 * (macs / plain_macs - 1):.2f}%)")

# %% [markdown]
# ## Their gates on the same images
#
# Every drop-in block computes `y = g(x) ⊙ x`, so its effective gate at each
# channel and pixel is `y / x`. (For CBAM it is the product of its channel
# and pixel gates, for scSE their sum, which lies in (0, 2).) We feed the
# same four test images through each block and show, per block, the gate of
# each channel averaged over the pixels, and the gate of each pixel averaged
# over the channels for the first image.
#
# Which blocks: those of the networks trained in the comparison below (the
# first residual unit of the seed-0 net), each fed the input that unit
# receives in its own trained network.

# %%
data = sn.data.make_synthetic(0)


def effective_gates(block, x):
    """(channel gates (N, C), pixel gates of image 0 (H, W)): y / x, where |x| is not tiny."""
    y = block(x)
    ratio = np.where(np.abs(x) > 1e-3, y / np.where(np.abs(x) > 1e-3, x, 1.0), np.nan)
    return np.nanmean(ratio, axis=(2, 3)), np.nanmean(ratio[0], axis=0)


images = data.test_images[:4]

# %% [markdown]
# ## The comparison: `se-numpy ablate attention`
#
# Each drop-in block in every residual unit of `se_tiny_resnet`, trained
# with several seeds on the embedded data, beside the plain net; the
# statistics are those of tutorial 6 (paired t-test against SE over seeds).
# The budget is smaller than tutorial 6's (3 000 images x 6 epochs in full
# mode, against 6 000 x 8: each run trains on 3/8 as many images), because
# the table has nine rows (the plain net, SE and seven other blocks, two of
# them Gather-Excite variants); the printed lines say whether the nets learned
# at it.

# %%
ABLATION_DIR = OUT / "ablation"
command = [sys.executable, "-m", "se_numpy", "ablate", "attention", "--seeds", str(SEEDS),
           "--workers", str(min(2, os.cpu_count() or 1)), "--quiet", "--out",
           str(ABLATION_DIR), *BUDGET]
print("se-numpy", " ".join(command[3:]))
completed = subprocess.run(command, capture_output=True, text=True)
print(completed.stdout)
if completed.returncode != 0:
    raise RuntimeError(f"se-numpy ablate failed:\n{completed.stderr}")
summary = json.loads((ABLATION_DIR / "summary.json").read_text())

# %%
fig, axis = plt.subplots(figsize=(8, 3.8))
table = summary["tables"]["attention"]
rows = table["variants"]
budget = summary["budget"]
lowest = min(100 - max(row["test_errors"]) for row in rows)
learned = lowest > 5 * CHANCE
for position, row in enumerate(rows):
    colour = "tab:orange" if row["baseline"] else "tab:blue"
    axis.errorbar([position], [row["mean"]], yerr=[row["std"]], fmt="o", color=colour,
                  capsize=5)
    axis.plot([position + 0.15] * len(row["test_errors"]), row["test_errors"], "k.",
              markersize=4)
axis.set_xticks(range(len(rows)), [row["name"] for row in rows], fontsize=8)
axis.set_ylabel("test error (%), mean ± std over seeds")
axis.set_title(f"se_tiny_resnet with each block, {SEEDS} seeds, {budget['train_limit']} "
               f"images x {budget['epochs']} epochs (orange: the baseline)", fontsize=9)
print(f"lowest final test accuracy of any run: {lowest:.1f}% (chance {CHANCE:.0f}%)")
for row in rows:
    if row["baseline"]:
        print(f"{row['name']:13s} {row['mean']:6.2f} ± {row['std']:5.2f} % error  baseline")
        continue
    verdict = "significant" if row["significant"] else "NOT significant"
    print(f"{row['name']:13s} {row['mean']:6.2f} ± {row['std']:5.2f} % error  "
          f"{row['difference']:+.2f} points vs {table['baseline']}, {verdict} at p < 0.05 "
          f"over {SEEDS} seeds (p = {row['p']:.3f}), {row['params']:,d} params")
if not learned:
    widest = max(rows, key=lambda row: row["std"])
    print(f"-> at this budget some run reached only {lowest:.1f}% accuracy (below 5x chance) "
          f"and the seeds disagree (widest spread: {widest['name']}, ± {widest['std']:.1f} "
          "points): training is not yet stable here, so this table says nothing about "
          "which block helps; a larger --train-limit / --epochs is the fix.")
fig.tight_layout()
show(fig, OUT / "attention_ablation.png")

# %%
def block_input(model, block, x):
    """The input ``block`` receives when ``model`` runs on ``x``, caught by a forward
    hook (as PyTorch's ``register_forward_hook``; it also runs when a residual unit
    calls SE's fused ``forward_add_relu``), removed after the pass."""
    captured = []
    handle = block.register_forward_hook(lambda module, args, output: captured.append(args[0]))
    try:
        model(x)
    finally:
        handle.remove()
    return captured[0]


def trained_block(row, seed_index=0):
    """The first residual unit's attention block of a trained run of the comparison."""
    run_dir = Path(row["run_dirs"][seed_index])
    variant = json.loads((run_dir / "variant.json").read_text())
    model = sn.models.create(variant["model"], num_classes=10, **(variant["options"] or {}))
    model.load_state_dict(load_model_state(run_dir / "checkpoint.npz")[0])
    model.eval()
    return model, dict(model.named_modules()).get("layer1.0.se")


gate_blocks = {}
for row in summary["tables"]["attention"]["variants"]:
    model, block = trained_block(row)
    if block is not None:
        gate_blocks[row["name"]] = (model, block)

fig, axes = plt.subplots(2, len(gate_blocks), figsize=(2.2 * len(gate_blocks), 4.6),
                         squeeze=False)
mean, std = data.channel_mean_std()
for column, (name, (model, block)) in enumerate(gate_blocks.items()):
    x_in = block_input(model, block, sn.data.to_float(images, mean, std))  # the unit's own input
    channel_gates, pixel_gates = effective_gates(block, x_in)
    top = 2 if name.startswith("scSE") else 1                  # scSE's gate is a sum: (0, 2)
    axes[0, column].imshow(channel_gates, aspect="auto", cmap="viridis", vmin=0, vmax=top)
    axes[0, column].set_xlabel("channel", fontsize=7)
    axes[0, column].set_ylabel("image", fontsize=7)
    axes[1, column].imshow(pixel_gates, cmap="viridis", vmin=0, vmax=top)
    axes[0, column].set_title(f"{name}\n(colours 0 to {top})", fontsize=8)
    axes[1, column].set_xlabel("pixel gate, image 0", fontsize=7)
    for axis in axes[:, column]:
        axis.tick_params(labelsize=6)
    print(f"{name:16s} channel gates over the 4 images: spread across channels "
          f"{channel_gates.std(axis=1).mean():.3f}, across images "
          f"{channel_gates.std(axis=0).mean():.3f}; pixel gate spread {np.nanstd(pixel_gates):.3f}")
fig.suptitle(f"Effective gates y/x on the same 4 test images (trained, seed 0, first residual unit)", fontsize=9)
fig.tight_layout()
show(fig, OUT / "gates_same_images.png")
print(f"whole tutorial: {time.perf_counter() - STARTED:.0f} s")

# %% [markdown]
# How to read the printed spreads: a channel-only block (SE, Effective SE,
# ECA) has a pixel-gate spread that comes only from averaging its channel
# gates over the pixels where |x| is large enough to divide by; a block with
# a pixel gate (CBAM, scSE, Gather-Excite with a small extent) varies over
# the pixels by construction. The spread *across images* is what makes a
# gate input-dependent at all: a gate that is the same for every image is a
# fixed per-channel scale (tutorial 6, exercise 2).
#
# ## Exercises
#
# Solutions: `tutorials/solutions/07_after_se_solutions.py`.
#
# 1. **ECA's kernel size.** ECA picks k = |log2(C)/γ + b/γ|, made odd, with
#    γ = 2, b = 1. Compute k for C = 16, 64, 256 and 2048 by hand and check
#    against `nn.ECA(C).conv.kernel_size`. How many parameters does ECA have on
#    ResNet-50's widest stage, against SE's with r = 16?
# 2. **When is Effective SE cheaper than SE?** With biases, SE has
#    2C²/r + C/r + C parameters and Effective SE C² + C. For which r is
#    Effective SE the cheaper one? Check with `count_params` at C = 64.
# 3. **scSE's gate.** Verify on random input that scSE's effective gate y/x
#    lies in (0, 2) and equals the channel gate plus the pixel gate
#    (`scse.cSE(x)` and `scse.sSE(x)`).
