# %% [markdown]
# # 1. The SE block from scratch
#
# Hu et al., *Squeeze-and-Excitation Networks* (CVPR 2018), Section 3.
#
# An SE block takes a feature map `u` of shape `(N, C, H, W)` and returns a
# map of the same shape in which every channel has been multiplied by a
# number between 0 and 1, the *gate* of that channel. The gates depend on
# the whole map, so a channel can be switched up or down depending on what
# the *other* channels contain. Three steps (paper Fig. 1):
#
# | step       | paper  | math                                        | shapes               |
# |------------|--------|---------------------------------------------|----------------------|
# | squeeze    | Eq. 2  | `z[n,c] = 1/(HW) Σ_ij u[n,c,i,j]`           | (N,C,H,W) -> (N,C)   |
# | excitation | Eq. 3  | `s = σ(W2 · ReLU(W1 · z))`                  | (N,C) -> (N,C)       |
# | scale      | Eq. 4  | `x̃[n,c,i,j] = s[n,c] · u[n,c,i,j]`           | (N,C,H,W),(N,C) -> (N,C,H,W) |
#
# The paper's Eq. 3 has no biases. `sn.nn.SEBlock` adds a bias to each of
# the two layers, `b1` and `b2`, by default (`bias=False` removes them), so
# below the excitation reads `σ(W2 · ReLU(W1 · z + b1) + b2)`.
#
# We run each step on images of the embedded data set, print the shapes,
# derive each backward pass by hand and let the gradient checker confirm it.
#
# Run as a script (`python tutorials/01_se_block.py`) or open it as a
# notebook (Jupyter/VS Code with jupytext). Figures go to the folder printed
# below. `SE_NUMPY_FAST=1` makes it quicker without changing what it shows.

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

import se_numpy as sn
from se_numpy.analysis.figures import show
from se_numpy import functional as F
from se_numpy.gradcheck import check_module, check_vjp

NAME = "01_se_block"
FIGURES = ["dataset_channels.png", "gates_one_image.png", "gates_batch.png"]
FAST = os.environ.get("SE_NUMPY_FAST", "0") not in ("", "0")
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("SE_NUMPY_TUTORIAL_OUT", HERE / "out")) / NAME
OUT.mkdir(parents=True, exist_ok=True)
print(f"figures go to {OUT}  (fast mode: {FAST})")

# %% [markdown]
# ## The data: "which channel speaks?"
#
# The embedded data set (`se_numpy.data`, built from a seed, nothing
# downloaded) has 10 classes of textures (5 orientations x 2 frequencies).
# In each 3 x 32 x 32 image **one** channel carries the class texture; the
# two others each carry the texture of a *different* class at the same
# contrast (distractors).
# The signal channel is slightly brighter *on average*, but a zero-mean
# "illumination" wave swamps that cue locally. Only a *global* average over
# the whole channel — exactly the squeeze of Eq. 2 — reveals which channel
# to trust. That is the situation SE blocks were designed for.

# %%
config = sn.data.SyntheticConfig(train_size=256 if FAST else 1024, test_size=16)
data = sn.data.make_synthetic(seed=0, config=config)
mean, std = data.channel_mean_std()
images = sn.data.to_float(data.train_images[:16], mean, std, dtype=np.float64)
labels = data.train_labels[:16]
print("images:", images.shape, images.dtype, " labels:", labels[:8], "...")

# %%
example = 0
fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
raw = data.train_images[example] / 255.0
for channel, (axis, colour) in enumerate(zip(axes, "RGB")):
    axis.imshow(raw[channel], cmap="gray", vmin=0, vmax=1)
    axis.set_title(f"channel {colour}: mean {raw[channel].mean():.3f}")
    axis.axis("off")
fig.suptitle(f"One image (class {data.class_names[labels[example]]}): the data set makes "
             f"the channel that carries the class brighter by {config.cue_offset} on average",
             fontsize=10)
fig.tight_layout()
show(fig, OUT / "dataset_channels.png", dpi=90)

# %% [markdown]
# ## A feature map to work on
#
# An SE block sits after a convolution, so we make a feature map the usual
# way: a 3x3 convolution with 8 output channels and a ReLU. The weights are
# random (seeded); the SE arithmetic does not care.

# %%
conv = sn.nn.Conv2d(3, 8, kernel_size=3, padding=1, dtype=np.float64, rng=0)
relu = sn.nn.ReLU()
u = relu(conv(images))
print("u = ReLU(conv(images)):", u.shape, "  (N, C, H, W)")

# %% [markdown]
# ## Step 1: squeeze (Eq. 2)
#
# `z[n,c] = 1/(HW) Σ_ij u[n,c,i,j]` — one number per channel, a summary of
# the whole spatial extent ("global information embedding", Sec. 3.1).
#
# **Backward.** Each `z[n,c]` is a sum of `H·W` terms with weight `1/(HW)`,
# so `∂z[n,c]/∂u[n,c,i,j] = 1/(HW)` and nothing else depends on that input:
#
#     du[n,c,i,j] = dz[n,c] / (HW)      (the same at every position)
#
# Forgetting the `1/(HW)` is the classic bug; tutorial 2 shows how the
# gradient checker reports it.

# %%
z, squeeze_cache = F.squeeze_forward(u)
print("z:", z.shape, "  (N, C)")
# the same number written as the paper's double sum, for one (n, c)
n, c = 3, 5
loop_sum = sum(u[n, c, i, j] for i in range(u.shape[2]) for j in range(u.shape[3]))
print(f"z[{n},{c}] = {z[n, c]:.12f},  loop 1/(HW) Σ u = {loop_sum / (u.shape[2] * u.shape[3]):.12f}")

# %% [markdown]
# Now check the backward. `check_vjp(f, vjp, inputs)` differentiates the
# scalar `L = Σ f(x)·dy` for a random `dy` by central differences and
# compares with what `vjp(dy, x)` returns. Gradient checks run in float64 on
# a small map, so every entry is compared.

# %%
small_u = u[:2, :4, :5, :5].copy()           # (2, 4, 5, 5): 200 entries, all compared


def squeeze(x):
    return F.squeeze_forward(x)[0]


def squeeze_vjp(dz, x):
    return F.squeeze_backward(dz, F.squeeze_forward(x)[1])


report = check_vjp(squeeze, squeeze_vjp, small_u)
print(report)
assert report.passed

# %% [markdown]
# ## Step 2: excitation (Eq. 3)
#
# Two fully connected layers around a bottleneck of width `C/r` (`r` is the
# reduction ratio, Sec. 3.2); the biases are the library's addition to Eq. 3:
#
#     h = ReLU(W1 z + b1)      W1: (C/r, C)
#     s = σ(W2 h + b2)         W2: (C, C/r)
#
# The sigmoid lets several channels be on at once (not one-hot like a
# softmax): "a non-mutually-exclusive relationship".
#
# **Backward**, the chain rule through the four steps in reverse. With
# `a = W2 h + b2` and `p = W1 z + b1`:
#
#     da  = ds · s (1 − s)                 σ'(a) = σ(a)(1 − σ(a))
#     dW2 = daᵀ h,   db2 = Σ_n da,   dh = da W2
#     dp  = dh · 1[p > 0]                  ReLU'
#     dW1 = dpᵀ z,   db1 = Σ_n dp,   dz = dp W1
#
# (The weight gradients sum over the batch because the same weights are
# used for every image.)

# %%
reduction = 2
se = sn.nn.SEBlock(channels=8, reduction=reduction, dtype=np.float64, rng=1)
for name, parameter in se.named_parameters():
    print(f"{name:12s} {parameter.shape}")
w1, b1 = se.fc1.weight.data, se.fc1.bias.data
w2, b2 = se.fc2.weight.data, se.fc2.bias.data
s, excitation_cache = F.excitation_forward(z, w1, b1, w2, b2)
print("s:", s.shape, " min", s.min().round(3), " max", s.max().round(3), " (all in (0, 1))")


# %%
def excitation(z, w1, b1, w2, b2):
    return F.excitation_forward(z, w1, b1, w2, b2)[0]


def excitation_vjp(ds, z, w1, b1, w2, b2):
    return F.excitation_backward(ds, F.excitation_forward(z, w1, b1, w2, b2)[1])


report = check_vjp(excitation, excitation_vjp, (z[:4], w1, b1, w2, b2),
                   names=["z", "w1", "b1", "w2", "b2"])
print(report)
assert report.passed

# %% [markdown]
# ## Step 3: scale (Eq. 4)
#
# `x̃[n,c,i,j] = s[n,c] · u[n,c,i,j]`: channel `c` of image `n` multiplied by
# its gate. A product has two inputs, so two gradients:
#
#     du[n,c,i,j] = dx̃[n,c,i,j] · s[n,c]
#     ds[n,c]     = Σ_ij dx̃[n,c,i,j] · u[n,c,i,j]     (s[n,c] touched every position)

# %%
y, scale_cache = F.scale_forward(u, s)
print("scaled output:", y.shape, "  same as u:", y.shape == u.shape)


def scale(x, gates):
    return F.scale_forward(x, gates)[0]


def scale_vjp(dy, x, gates):
    return F.scale_backward(dy, F.scale_forward(x, gates)[1])


report = check_vjp(scale, scale_vjp, (small_u, s[:2, :4]), names=["u", "s"])
print(report)
assert report.passed

# %% [markdown]
# ## The whole block: two paths from u to the output
#
# In the block, `s` is not an independent input: it is computed *from* `u`.
# So `u` reaches the output along two paths — directly through the scale,
# and through `z -> s`. Its gradient is the sum of both:
#
#     ds = Σ_ij dx̃ · u                          (from the scale)
#     dz = excitation_backward(ds)
#     du = dx̃ · s  +  dz / (HW)                 (direct path + squeeze path)
#
# `SEBlock` does exactly this; `check_module` checks the gradient of the
# input *and* of every parameter, in float64 on a copy of the module.

# %%
y_module = se(u)
print("SEBlock output equals the three steps:", np.allclose(y_module, y, rtol=0, atol=1e-15))
report = check_module(se, u[:2, :, :4, :4].copy())     # (2, 8, 4, 4)
print(report)
assert report.passed

# %% [markdown]
# ## Optional: the same gradients from PyTorch autograd
#
# A second, independent opinion. If PyTorch is installed, the next cell
# writes the block's forward pass with torch operations (no backward
# written by hand), lets autograd differentiate it, and compares every
# gradient with `SEBlock.backward` on the same input, weights and upstream
# gradient. Both run in float64 and add the same terms in different orders,
# so they should agree to rounding: the cell asserts a relative difference
# below 1e-10. To show what the comparison can see, it also prints how far
# from autograd a backward that forgets the path through the squeeze
# (`dx = dy · s` alone) would be. Without PyTorch the cell says so and the
# tutorial goes on; nothing else here needs it.

# %%
try:
    import torch
except ImportError:
    torch = None
    print("PyTorch is not installed: autograd cross-check skipped (pip install torch to run it)")

if torch is not None:
    x_in = u[:2]
    dy = np.random.default_rng(2).standard_normal(x_in.shape)
    se.zero_grad()
    se(x_in)
    ours = {"x": se.backward(dy),
            **{name: parameter.grad for name, parameter in se.named_parameters()}}

    leaves = {"x": torch.tensor(x_in, requires_grad=True),
              **{name: torch.tensor(parameter.data, requires_grad=True)
                 for name, parameter in se.named_parameters()}}
    z_torch = leaves["x"].mean(dim=(2, 3))                                           # Eq. 2
    hidden = torch.relu(z_torch @ leaves["fc1.weight"].T + leaves["fc1.bias"])
    s_torch = torch.sigmoid(hidden @ leaves["fc2.weight"].T + leaves["fc2.bias"])    # Eq. 3
    y_torch = leaves["x"] * s_torch[:, :, None, None]                                # Eq. 4
    y_torch.backward(torch.tensor(dy))
    for name, leaf in leaves.items():
        theirs = leaf.grad.numpy()
        relative = np.abs(ours[name] - theirs).max() / np.abs(theirs).max()
        print(f"{name:11s} max |ours − autograd| / max |autograd| = {relative:.1e}")
        assert relative < 1e-10, f"{name}: SEBlock.backward disagrees with torch autograd"
    print(f"PyTorch {torch.__version__} autograd agrees with SEBlock.backward on every gradient")
    autograd_dx = leaves["x"].grad.numpy()
    direct_path_only = dy * se.last_gates[:, :, None, None]
    print(f"a backward without the squeeze path: max |dx − autograd| / max |autograd| = "
          f"{np.abs(direct_path_only - autograd_dx).max() / np.abs(autograd_dx).max():.1e}")
    se.zero_grad()

# %% [markdown]
# ## What can an SE block compute? Gates that pick the bright channel
#
# With random weights the gates hover around 0.5 and mean nothing. To see
# what the block *can* do, we set its weights by hand, directly on the three
# image channels (`C = 3`). We want
#
#     s_c = σ(k · (z_c − mean(z)))
#
# i.e. "open the channel that is brighter than the others". The ReLU in the
# middle passes only positive numbers, so we send both `z` and `−z` through
# it (`hidden = 2C`, `W1 = [I; −I]`) and rebuild `z = ReLU(z) − ReLU(−z)`
# in `W2`, together with the centring matrix `I − 1/C`. These are weights
# we wrote down to show what the block *can* represent; nothing here says
# that training finds them (tutorial 6 trains SE networks and looks at what
# their gates do).

# %%
channels, sharpness = 3, 16.0
picker = sn.nn.SEBlock(channels=channels, hidden=2 * channels, dtype=np.float64)
centring = np.eye(channels) - 1.0 / channels
picker.load_state_dict({
    "fc1.weight": np.vstack([np.eye(channels), -np.eye(channels)]),     # (2C, C)
    "fc1.bias": np.zeros(2 * channels),
    "fc2.weight": sharpness * np.hstack([centring, -centring]),          # (C, 2C)
    "fc2.bias": np.zeros(channels),
})
rescaled = picker(images)
gates = picker.last_gates                      # (N, 3): one gate per RGB channel
squeezed = F.squeeze_forward(images)[0]
print("gates of the first 4 images (R, G, B):\n", gates[:4].round(3))

# %%
fig, axes = plt.subplots(2, 4, figsize=(11, 5.6),
                         gridspec_kw={"width_ratios": [1, 1, 1, 1.3]})
for channel, colour in enumerate("RGB"):
    for row, (maps, label) in enumerate(((images, "input u"), (rescaled, "output s·u"))):
        axis = axes[row, channel]
        axis.imshow(maps[example, channel], cmap="gray", vmin=-2.5, vmax=2.5)
        axis.set_title(f"{label}, {colour}" + (f"\ngate s = {gates[example, channel]:.2f}"
                                              if row == 1 else ""), fontsize=9)
        axis.axis("off")
positions = np.arange(channels)
axes[0, 3].bar(positions, squeezed[example], color=["tab:red", "tab:green", "tab:blue"])
axes[0, 3].set_xticks(positions, list("RGB"))
axes[0, 3].set_ylabel("z (normalised units)")
axes[0, 3].set_title("squeeze z: channel means", fontsize=9)
axes[0, 3].axhline(squeezed[example].mean(), color="k", lw=0.8, ls="--", label="mean(z)")
axes[0, 3].legend(fontsize=8)
axes[1, 3].bar(positions, gates[example], color=["tab:red", "tab:green", "tab:blue"])
axes[1, 3].set_xticks(positions, list("RGB"))
axes[1, 3].set_ylim(0, 1)
axes[1, 3].set_ylabel("gate s (0 = off, 1 = on)")
axes[1, 3].set_title("excitation s = σ(k (z − mean z))", fontsize=9)
fig.suptitle(f"Gates of one image: the channel with the largest mean, "
             f"{'RGB'[np.argmax(squeezed[example])]}, gets the largest gate", fontsize=11)
fig.tight_layout()
show(fig, OUT / "gates_one_image.png", dpi=80)

# %% [markdown]
# Over the whole batch: the next cell checks that in every image the largest
# gate belongs to the channel with the largest mean, prints the range of the
# largest gate and of the two others, and which channel is open in each
# image. The open channel changes from image to image: the gates are *input
# dependent* — the property that distinguishes SE from a fixed per-channel
# weight.
#
# The damped gates are not 0. A gate is `σ(k · (z_c − mean z))`, so how far
# below 0.5 it goes is set by the sharpness `k` and by how much darker than
# the average the channel is; the last lines compute the same gates with a
# four times larger `k`.

# %%
order = np.sort(gates, axis=1)[:, ::-1]      # gates of each image, largest first
fig, axis = plt.subplots(figsize=(6.5, 3.6))
for rank, label in enumerate(("largest gate", "middle gate", "smallest gate")):
    axis.scatter(np.arange(len(order)), order[:, rank], label=label, s=18)
axis.set_xlabel("image index in the batch")
axis.set_ylabel("gate value")
axis.set_ylim(-0.05, 1.05)
axis.legend(fontsize=8)
axis.set_title(f"Hand-set SE block (k = {sharpness:g}): the largest gate of each image\n"
               "belongs to the channel with the largest mean")
fig.tight_layout()
show(fig, OUT / "gates_batch.png", dpi=90)
opened = np.argmax(gates, axis=1)
assert np.array_equal(opened, np.argmax(squeezed, axis=1)), "a gate opened a darker channel"
print("channel opened per image:", "".join("RGB"[k] for k in opened))
print(f"largest gate per image: {order[:, 0].min():.3f} to {order[:, 0].max():.3f};  "
      f"the two others: {order[:, 1:].min():.3f} to {order[:, 1:].max():.3f}  (k = {sharpness:g})")
sharper = F.excitation_forward(squeezed, picker.fc1.weight.data, picker.fc1.bias.data,
                               4 * picker.fc2.weight.data, picker.fc2.bias.data)[0]
sharper_order = np.sort(sharper, axis=1)[:, ::-1]
print(f"with k = {4 * sharpness:g}: largest {sharper_order[:, 0].min():.3f} to "
      f"{sharper_order[:, 0].max():.3f};  the two others: {sharper_order[:, 1:].min():.4f} to "
      f"{sharper_order[:, 1:].max():.4f}")

# %% [markdown]
# ## Exercises
#
# Solutions: `tutorials/solutions/01_se_block_solutions.py`.
#
# 1. **The tanh gate.** The paper's Table 12 replaces the sigmoid by tanh.
#    Derive the backward of `s = tanh(a)` (hint: `tanh' = 1 − tanh²`), write
#    `tanh_gate_forward(a) -> (s, cache)` and `tanh_gate_backward(ds, cache)`
#    yourself, and verify them with `check_vjp`. Then build
#    `SEBlock(..., gate="tanh")` and check it with `check_module`.
# 2. **Max squeeze.** Table 11 replaces the average by the maximum over
#    `(i, j)`. Derive its backward (where does the gradient go?), and check
#    `F.squeeze_forward(x, mode="max")` with `check_vjp` on inputs whose
#    entries are all distinct (why must they be?).
# 3. **Count the block.** For `C = 256, r = 16`, how many parameters does one
#    SE block have (with biases)? How many multiply-accumulates on a 14 x 14
#    map? Compare with `sum(p.size for p in se.parameters())` and
#    `se.flops((1, 256, 14, 14))`.
