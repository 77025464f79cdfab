# %% [markdown]
# # 6. Training, and what the excitations learn
#
# We train the small plain ResNet of `se-numpy demo` and the same ResNet with
# an SE block in every residual unit on the embedded data set, with the
# demo's data and settings, compare their learning curves,
# reproduce the paper's Fig. 6 (the gates per class at several depths, Sec.
# 7.2) on the trained net, and run a small ablation of the SE design choices
# (paper Sec. 6: Tables 10, 11, 12, 14), each beside the paper's finding.
#
# Everything runs on a laptop CPU: small images (3 x 32 x 32), a few
# thousand of them, a few epochs. The numbers are therefore noisy and
# much smaller than ImageNet's; read them as a demonstration of *how* such
# experiments are run, not as a replication of the paper's accuracies.

# %%
import os
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

NAME = "06_training_and_excitations"
FIGURES = ["learning_curves.png", "gates_per_class.png", "ablation.png"]
FAST = os.environ.get("SE_NUMPY_FAST", "0") not in ("", "0")
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("SE_NUMPY_TUTORIAL_OUT", HERE / "out")) / NAME
OUT.mkdir(parents=True, exist_ok=True)
print(f"figures go to {OUT}  (fast mode: {FAST})")

# budgets: (training images, epochs) for the main comparison and for each ablation run
MAIN = (256, 2) if FAST else (6000, 8)     # the demo's budget (docs/training.md)
ABLATION = (64, 1) if FAST else (1000, 4)
BATCH_SIZE = 64
LEARNING_RATE = 0.15     # peak of the cosine; the same as `se-numpy demo` (docs/training.md)
# the compiled kernels: for these small layers about 2.5x faster than numpy here
sn.use_backend("numba")

# %% [markdown]
# ## The data and the two networks
#
# The embedded data set (tutorial 1, docs/data.md): the class texture sits
# in the one channel that is brightest *on average over the whole image*, and
# each other channel carries the texture of another class at the same
# contrast. A smooth light field hides the brightness cue from small windows,
# so the textures alone leave about a one-in-three guess; the whole-image mean
# of each channel (what an SE block's squeeze computes) names the class's
# channel every time.
#
# The two networks are the demo's: `tiny_resnet` (a stem convolution, three
# stages of one basic block with 8, 16 and 32 channels, global average
# pooling, a linear classifier) and `se_tiny_resnet`, the same with an SE
# block in each basic block (reduction `r = 2`: with 8 to 32 channels,
# `r = 16` would leave a bottleneck of width 1). For the ablation further
# down we also build a simpler net from modules, as one would in PyTorch:
# three stages of `conv 3x3 -> BatchNorm -> ReLU`, the last two with stride
# 2, then global average pooling and a linear classifier, with an `SEBlock`
# after each stage.

# %%
data = sn.data.make_synthetic(0, sn.data.SyntheticConfig(train_size=MAIN[0],
                                                          test_size=200 if FAST else 2000))
mean, std = data.channel_mean_std()
test_x = sn.data.to_float(data.test_images, mean, std)
test_y = data.test_labels
print(data)

WIDTHS = (8, 16, 32)


def make_network(with_se=True, reduction=2, squeeze="avg", gate="sigmoid", seed=0):
    """conv-BN-ReLU x 3 (+ SE after each), global average pooling, linear classifier."""
    rng = np.random.default_rng(seed)
    layers, in_channels = [], 3
    for stage, width in enumerate(WIDTHS):
        layers += [nn.Conv2d(in_channels, width, 3, stride=1 if stage == 0 else 2, padding=1,
                             bias=False, rng=rng),
                   nn.BatchNorm2d(width), nn.ReLU()]
        if with_se:
            layers.append(nn.SEBlock(width, reduction=reduction, squeeze=squeeze, gate=gate,
                                     rng=rng))
        in_channels = width
    layers += [nn.GlobalAvgPool(), nn.Linear(in_channels, data.num_classes, rng=rng)]
    return nn.Sequential(*layers)


def make_resnet(with_se, seed=0):
    """The demo's nets: ``tiny_resnet``, or ``se_tiny_resnet`` with r = 2."""
    if with_se:
        return sn.models.create("se_tiny_resnet", num_classes=data.num_classes, reduction=2,
                                seed=seed)
    return sn.models.create("tiny_resnet", num_classes=data.num_classes, seed=seed)


print(make_resnet(with_se=True))

# %% [markdown]
# ## The training loop
#
# Backpropagation written out: forward (every layer caches what it needs),
# loss, backward (gradients flow from the loss to every parameter's
# `.grad`), SGD step. The learning rate follows a cosine from 0.15 to 0.
# (`se_numpy.train.Trainer` does the same with checkpoints and logs; the
# command `se-numpy demo` trains these two nets that way.)


# %%
def accuracy(model, images, labels, batch_size=250):
    model.eval()                  # BatchNorm uses its running statistics
    correct = sum(int(np.sum(model(images[i:i + batch_size]).argmax(axis=1)
                             == labels[i:i + batch_size]))
                  for i in range(0, len(labels), batch_size))
    model.train()
    return correct / len(labels)


def train(model, train_count, epochs, seed=0):
    """SGD with momentum, cosine learning rate; returns per-epoch history."""
    loader = sn.data.BatchLoader(data.train_images[:train_count], data.train_labels[:train_count],
                                 BATCH_SIZE, mean, std, shuffle=True,
                                 rng=np.random.default_rng(seed))
    optimizer = sn.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=0.9,
                             weight_decay=5e-4)
    loss_fn = sn.nn.CrossEntropyLoss()
    total_steps, step = epochs * len(loader), 0
    history = []
    for epoch in range(epochs):
        losses = []
        for x, y in loader:
            optimizer.set_lr(0.5 * (1 + np.cos(np.pi * step / total_steps)))
            loss = loss_fn(model(x), y)
            model.zero_grad()
            model.backward(loss_fn.backward())
            optimizer.step()
            losses.append(loss)
            step += 1
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)),
                        "test_accuracy": accuracy(model, test_x, test_y)})
    return history


# %%
histories, models = {}, {}
for label, with_se in (("plain", False), ("SE", True)):
    start = time.perf_counter()
    models[label] = make_resnet(with_se=with_se)
    histories[label] = train(models[label], *MAIN)
    parameters = sum(p.size for p in models[label].parameters())
    print(f"{label:5s}: {parameters:6,d} parameters, test accuracy per epoch "
          f"{[round(h['test_accuracy'], 3) for h in histories[label]]} "
          f"({time.perf_counter() - start:.0f} s)")

# %%
fig, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 3.8))
for label, colour in (("plain", "tab:gray"), ("SE", "tab:orange")):
    epochs = [h["epoch"] for h in histories[label]]
    loss_axis.plot(epochs, [h["train_loss"] for h in histories[label]], "o-", color=colour,
                   label=label)
    accuracy_axis.plot(epochs, [100 * h["test_accuracy"] for h in histories[label]], "o-",
                       color=colour, label=label)
loss_axis.set_xlabel("epoch")
loss_axis.set_ylabel("training loss (cross-entropy)")
accuracy_axis.set_xlabel("epoch")
accuracy_axis.set_ylabel("test accuracy (%)")
accuracy_axis.axhline(10, color="k", lw=0.6, ls=":", label="chance (10 classes)")
for axis in (loss_axis, accuracy_axis):
    axis.legend(fontsize=8)
final = {label: 100 * histories[label][-1]["test_accuracy"] for label in histories}
fig.suptitle(f"Plain vs SE network on the embedded data ({MAIN[0]} images, {MAIN[1]} epochs): "
             f"final test accuracy {final['plain']:.1f}% vs {final['SE']:.1f}%", fontsize=10)
fig.tight_layout()
fig.savefig(OUT / "learning_curves.png", dpi=90)
plt.close(fig)

# %%
leader = max(final, key=final.get)
print(f"after {MAIN[1]} epochs the {leader} net is ahead by "
      f"{abs(final['SE'] - final['plain']):.1f} points")

# %% [markdown]
# With the full budget the SE net should end clearly ahead: it reads the cue
# from its squeeze, which cancels the illumination exactly, and from then on
# gates the distractor channels down, while the plain net must piece the
# brightest channel together from windows in which the illumination hides it
# (docs/training.md, "The demo", measured that over five seeds). In the
# SE net's learning curve this shows as a jump in test accuracy once the
# gates have found the cue. The fast mode is far too short to show it. The
# paper's gains (Table 2) come from full ImageNet training, where no single
# cue is planted; exercise 3 asks how large the difference is against the
# spread over seeds.
#
# ## The paper's Fig. 6: what the gates do per class
#
# Sec. 7.2 of the paper looks at the average gate value of each channel for
# images of a few classes, at several depths. Its finding: in early blocks
# the gates are nearly the same for every class (the features there are
# generic), in later blocks they become class-specific; in the very last
# blocks they saturate and matter less.
#
# On our data the first gates have a job the paper's do not: to track
# *which channel is the bright one*, which is drawn independently of the
# class. So beside the class we also measure how much of the gates'
# variance the signal channel explains. (Measured in full mode: in the first
# block the signal channel explains about 93 % and the class under 1 %; in
# the last block the class explains about 47 %, as in the paper's later
# blocks.)
#
# `sn.analysis.record_gates(model)` collects the gates of every SE block
# during forward passes. We run the test set through the trained SE net.

# %%
se_model = models["SE"]
se_model.eval()
with sn.analysis.record_gates(se_model) as record:
    for i in range(0, len(test_y), 250):
        se_model(test_x[i:i + 250])
se_model.train()
block_names = list(record)
print("SE blocks:", block_names)


def explained_share(gates, groups):
    """Share of the gates' variance (over images) explained by a grouping, averaged over channels.

    ``groups`` gives each image's group (its class, or its signal channel).
    0: the group tells nothing about the gate; 1: the gate is a function of the group alone.
    (The between-group variance is taken over equally weighted group means, which is
    close to the usual weighting here because the groups are about equally large.)
    """
    group_means = np.stack([gates[groups == k].mean(axis=0) for k in np.unique(groups)])
    between = group_means.var(axis=0)
    total = gates.var(axis=0)
    return float(np.mean(between / np.maximum(total, 1e-12)))


# the signal channel of each test image: the one brightest over the whole image
signal_channel = data.test_images.astype(np.float64).mean(axis=(2, 3)).argmax(axis=1)


fig, axes = plt.subplots(1, len(block_names), figsize=(4.2 * len(block_names), 3.8))
colours = plt.get_cmap("tab10")
for axis, name, width in zip(axes, block_names, WIDTHS):
    gates = record.stacked(name)                      # (test images, C)
    for k in range(data.num_classes):
        axis.plot(np.arange(width), gates[test_y == k].mean(axis=0), "-", lw=1,
                  color=colours(k), label=data.class_names[k])
    by_class = explained_share(gates, test_y)
    by_signal = explained_share(gates, signal_channel)
    axis.set_title(f"SE block '{name}' ({width} channels)\ngate variance explained by\n"
                   f"the class: {100 * by_class:.0f}%, the signal channel: "
                   f"{100 * by_signal:.0f}%", fontsize=8)
    axis.set_xlabel("channel index")
    axis.set_ylim(0, 1)
    print(f"{name}: the class explains {100 * by_class:.1f}% of the gate variance, the "
          f"signal channel {100 * by_signal:.1f}%; mean gate {gates.mean():.2f}")
axes[0].set_ylabel("mean gate value over the class's test images")
axes[-1].legend(fontsize=6, ncol=2, loc="lower right")
fig.suptitle("Gates per class at three depths (cf. paper Fig. 6)", fontsize=10)
fig.tight_layout()
fig.savefig(OUT / "gates_per_class.png", dpi=80)
plt.close(fig)

# %% [markdown]
# ## A small ablation (paper Sec. 6)
#
# Each row changes one design choice of the SE net and trains it with the
# same (small) budget and seed. At this scale differences of a few percent
# are within the noise of one run; the paper's numbers (ImageNet top-1
# error of SE-ResNet-50, lower is better) are beside them.
#
# The placement rows use a residual net instead (a stride-2 stem
# convolution and two basic blocks of 8 channels, `sn.nn.BasicBlock` with
# the SE block in the given place), since placements are defined relative
# to a residual unit.

# %%
def make_residual_network(placement, seed=0):
    rng = np.random.default_rng(seed)

    def unit():
        channels = nn.BasicBlock.attention_channels(8, 8, placement)
        return nn.BasicBlock(8, 8, attention=nn.SEBlock(channels, reduction=2, rng=rng),
                             placement=placement, rng=rng)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False, rng=rng),
                         nn.BatchNorm2d(8), nn.ReLU(), unit(), unit(),
                         nn.GlobalAvgPool(), nn.Linear(8, data.num_classes, rng=rng))


ABLATIONS = [
    # (group, variant, builder, paper's finding)
    ("reduction r", "r = 2 (baseline)", lambda: make_network(reduction=2), ""),
    ("reduction r", "r = 4", lambda: make_network(reduction=4),
     "Table 10: r = 2..16 within 0.05% top-1; r = 32 0.4% worse; r sets the parameters"),
    ("squeeze", "max pooling", lambda: make_network(squeeze="max"),
     "Table 11: max 22.57% vs avg 22.28% top-1 error: both work, avg slightly better"),
    ("gate", "tanh", lambda: make_network(gate="tanh"),
     "Table 12: tanh 23.00%, sigmoid 22.28%: slightly worse"),
    ("gate", "ReLU", lambda: make_network(gate="relu"),
     "Table 12: ReLU 26.23%: much worse (worse than no SE, 23.30%)"),
    ("no SE", "plain", lambda: make_network(with_se=False),
     "Table 2: ResNet-50 23.30% vs SE-ResNet-50 22.28%"),
    ("placement", "standard", lambda: make_residual_network("standard"),
     "Table 14: standard 22.28%"),
    ("placement", "SE-POST", lambda: make_residual_network("post"),
     "Table 14: POST 22.78%: the worst"),
    ("placement", "SE-Identity", lambda: make_residual_network("identity"),
     "Table 14: Identity 22.20%"),
]
ablation_results = []
print(f"ablation budget: {ABLATION[0]} images, {ABLATION[1]} epochs per run")
for group, variant, build, finding in ABLATIONS:
    start = time.perf_counter()
    history = train(build(), *ABLATION)
    ablation_results.append((group, variant, 100 * history[-1]["test_accuracy"], finding))
    print(f"{group:12s} {variant:17s} test accuracy {ablation_results[-1][2]:5.1f}%  "
          f"({time.perf_counter() - start:4.0f} s)   paper: {finding}")

# %%
fig, axis = plt.subplots(figsize=(11, 5))
positions = np.arange(len(ablation_results))[::-1]
group_colours = {"reduction r": "tab:blue", "squeeze": "tab:green", "gate": "tab:purple",
                 "no SE": "tab:gray", "placement": "tab:orange"}
axis.barh(positions, [row[2] for row in ablation_results],
          color=[group_colours[row[0]] for row in ablation_results])
for position, (group, variant, value, finding) in zip(positions, ablation_results):
    axis.text(value + 0.5, position, f"{value:.1f}%   {finding}", va="center", fontsize=7)
axis.set_yticks(positions, [f"{group}: {variant}" for group, variant, _, _ in ablation_results],
                fontsize=8)
axis.axvline(10, color="k", lw=0.6, ls=":")
axis.set_xlim(0, 230)
axis.set_xticks(np.arange(0, 101, 20))
axis.set_xlabel(f"test accuracy (%) after {ABLATION[1]} epochs on {ABLATION[0]} images "
                "(one run each; beside it the paper's ImageNet finding)")
axis.set_title("Ablation at toy scale: one design choice changed per row", fontsize=10)
fig.tight_layout()
fig.savefig(OUT / "ablation.png", dpi=90)
plt.close(fig)

# %% [markdown]
# ## Exercises
#
# Solutions: `tutorials/solutions/06_training_and_excitations_solutions.py`.
#
# 1. **Gates on the input.** Put one SE block directly on the 3 input
#    channels (before the first convolution) of the plain network, train it,
#    and check whether the trained gates open the brightest channel (compare
#    with the hand-set block of tutorial 1).
# 2. **Are the gates needed?** In the trained SE net, replace every gate by
#    its average over the test set (a fixed per-channel scale) and measure
#    the test accuracy. What does the drop tell you about the role of
#    input-dependent gates?
# 3. **Repeat with seeds.** Train the plain and SE nets with three seeds
#    each and report mean and spread of the final accuracy. Is the
#    difference larger than the spread?
