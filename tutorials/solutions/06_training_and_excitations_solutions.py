# %% [markdown]
# # Solutions to the exercises of tutorial 6 (training and excitations)
#
# The networks, the data and the budget are the tutorial's. The ablation
# runs come from the same `se-numpy ablate` command into the same directory,
# so after the tutorial has run they are read from disk, not trained again;
# only exercise 1 trains a new network. Every conclusion is printed from the
# numbers this run measured.

# %%
import json
import os
import time
import subprocess
import sys
from pathlib import Path

import numpy as np

import se_numpy as sn
from se_numpy import nn
from se_numpy.ablate.experiment import DEFAULT_BUDGET, FAST_BUDGET, TRAINING
from se_numpy.optim.groups import param_groups
from se_numpy.train import TrainConfig, Trainer
from se_numpy.train.checkpoint import load_model_state

NAME = "06_training_and_excitations_solutions"
FIGURES = []
FAST = os.environ.get("SE_NUMPY_FAST", "0") not in ("", "0")
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT_ROOT = Path(os.environ.get("SE_NUMPY_TUTORIAL_OUT", HERE.parent / "out"))
OUT = OUT_ROOT / NAME
OUT.mkdir(parents=True, exist_ok=True)
ABLATION_DIR = OUT_ROOT / "06_training_and_excitations" / "ablation"   # the tutorial's
TABLES = ("nosqueeze",)    # the tutorial's
SEEDS = 2 if FAST else 3
BUDGET = ["--fast", "--train-limit", "64", "--epochs", "1"] if FAST else []
CHANCE = 10.0
sn.use_backend("numba")

# the tutorial's budget per run (the ablation's, as `se-numpy ablate` gets it)
budget = (dict(FAST_BUDGET, train_limit=64, epochs=1) if FAST else dict(DEFAULT_BUDGET))
# only the images the runs use (the same ones as make_synthetic(0).subset(...), made alone)
data = sn.data.make_synthetic(0, train_limit=budget["train_limit"], test_limit=budget["test_limit"])
mean, std = data.channel_mean_std()
test_x = sn.data.to_float(data.test_images, mean, std)
test_y = data.test_labels
# the signal channel of each test image: the one brightest over the whole raw image
brightest = data.test_images.astype(np.float64).mean(axis=(2, 3)).argmax(axis=1)


def accuracy(model):
    model.eval()
    correct = sum(int(np.sum(model(test_x[i:i + 250]).argmax(axis=1) == test_y[i:i + 250]))
                  for i in range(0, len(test_y), 250))
    return correct / len(test_y)


# %% [markdown]
# ## 1. Gates on the input channels
#
# An SE block on the raw image sees the three channel means, which is the
# whole cue of this data set. If training discovers it, the block's largest
# gate sits on the brightest channel far more often than the chance rate of
# 1/3. We train `SEBlock(3) -> tiny_resnet` with the ablation's settings
# (`sn.train.Trainer`, the same optimiser and schedule; its model replaced by
# ours, as `se_numpy/ablate/runs.py` does for each variant) and test the
# agreement against 1/3 with a binomial z-test over the test images.

# %%
rng = np.random.default_rng(0)
input_gates = nn.SEBlock(3, hidden=6, rng=rng)
model = nn.Sequential(input_gates, sn.models.create("tiny_resnet", num_classes=data.num_classes,
                                                    seed=0))
config = TrainConfig.from_dict(dict(TRAINING, model="tiny_resnet", data="synthetic", seed=0,
                                    train_limit=budget["train_limit"],
                                    test_limit=budget["test_limit"], epochs=budget["epochs"]))
# a directory per budget; a finished or interrupted run there is continued, not redone
run_dir = OUT / f"input_se-{budget['train_limit']}x{budget['epochs']}"
trainer = Trainer(config, str(run_dir), quiet=True, dataset=data)
trainer.model = model
trainer.optimizer = sn.optim.SGD(param_groups(model, config.weight_decay, True), lr=config.lr,
                                 momentum=config.momentum, weight_decay=config.weight_decay)
if os.path.isfile(trainer.checkpoint_path):
    trainer.restore()
start = time.perf_counter()
trainer.fit()
print(f"trained epochs {len(trainer.history)} of {budget['epochs']} "
      f"({time.perf_counter() - start:.0f} s in this run)")
test_accuracy = accuracy(model)
model(test_x)
gates = input_gates.last_gates                                        # (test images, 3)
hits = int(np.sum(gates.argmax(axis=1) == brightest))
n = len(brightest)
z = (hits - n / 3) / np.sqrt(n * (1 / 3) * (2 / 3))
print(f"test accuracy {100 * test_accuracy:.1f}%; the largest input gate is on the brightest "
      f"channel for {100 * hits / n:.1f}% of {n} test images (chance 33.3%, z = {z:+.1f})")
print("mean gates (R, G, B) when R, G or B is brightest:")
for channel, colour in enumerate("RGB"):
    print(f"  {colour} brightest: {gates[brightest == channel].mean(axis=0).round(2)}")
if test_accuracy * 100 < 5 * CHANCE:
    print("-> the network did not learn at this budget; its gates say nothing yet.")
elif z > 1.96:
    print("-> more often than chance (p < 0.05): the trained input gates pick up the cue, "
          "as the hand-set block of tutorial 1 does by construction.")
else:
    print("-> not more often than chance: at this budget training did not turn the input "
          "gates into the hand-set detector of tutorial 1 (the convolutions after them can "
          "read the channel means themselves; nothing forces the gates to do it).")

# %% [markdown]
# ## The tutorial's ablation runs
#
# Exercises 2 and 3 use the runs of the tutorial's `se-numpy ablate`: the
# same command into the same directory reads them when they are there.

# %%
command = [sys.executable, "-m", "se_numpy", "ablate", *TABLES, "--seeds", str(SEEDS),
           "--workers", str(min(2, os.cpu_count() or 1)), "--quiet", "--out", str(ABLATION_DIR),
           *BUDGET]
print("se-numpy", " ".join(command[3:]))
completed = subprocess.run(command, capture_output=True, text=True)
if completed.returncode != 0:
    raise RuntimeError(f"se-numpy ablate failed:\n{completed.stderr}")
print(completed.stdout.strip().splitlines()[-2])       # how many runs were trained, reused
summary = json.loads((ABLATION_DIR / "summary.json").read_text())
rows = {row["name"]: row for key in TABLES for row in summary["tables"][key]["variants"]}
LEARNED = min(100 - max(row["test_errors"]) for row in rows.values()) > 5 * CHANCE
print(f"budget {budget['train_limit']} images x {budget['epochs']} epochs; every run far above "
      f"chance: {LEARNED}")


# %% [markdown]
# ## 2. Replacing each gate by its average
#
# Without touching the library: with `fc1.weight = 0` and `fc2.weight = 0`
# the block's output no longer depends on the input, and with
# `fc2.bias = logit(mean gate)` every gate equals its test-set average,
# σ(logit(g)) = g. The network then applies a *fixed* per-channel scale,
# which a convolution could have learned on its own. The accuracy drop
# measures what the input-dependent part of the gates contributes.

# %%
se_row = rows["SE"]
se_run = Path(se_row["run_dirs"][0])
options = json.loads((se_run / "variant.json").read_text())["options"]
se_net = sn.models.create("se_tiny_resnet", num_classes=data.num_classes, **options)
se_net.load_state_dict(load_model_state(se_run / "checkpoint.npz")[0])
before = accuracy(se_net)
blocks = [module for _, module in se_net.named_modules() if isinstance(module, nn.SEBlock)]
with sn.analysis.record_gates(se_net) as record:
    accuracy(se_net)
for block, name in zip(blocks, record):
    average = np.clip(record.stacked(name).mean(axis=0), 1e-6, 1 - 1e-6)
    block.fc1.weight.data[...] = 0.0
    block.fc2.weight.data[...] = 0.0
    block.fc2.bias.data[...] = np.log(average / (1 - average)).astype(np.float32)
se_net(test_x[:4])
assert all(np.allclose(block.last_gates, block.last_gates[0], atol=1e-6) for block in blocks)
after = accuracy(se_net)
print(f"SE net (seed 0): test accuracy {100 * before:.1f}% with its gates, "
      f"{100 * after:.1f}% with every gate fixed at its test-set average")
drop = 100 * (before - after)
if not LEARNED:
    print("-> the nets did not learn at this budget; the drop says nothing.")
elif drop > 5:
    print(f"-> a drop of {drop:.1f} points: the trained net depends on gates that change "
          "with the input, not only on a per-channel scale.")
else:
    print(f"-> a drop of only {drop:.1f} points: a fixed per-channel scale does almost as "
          "well, so the input-dependent part of the gates contributes little here.")

# %% [markdown]
# ## 3. How many seeds would the paper's NoSqueeze difference need?
#
# A paired t-test looks at the differences d_k = error(NoSqueeze, seed k) −
# error(SE, seed k). With their standard deviation σ_d, a true mean
# difference δ is detected at α = 0.05 (two-sided) with power 80 % by about
#
#     n ≈ ((z_0.975 + z_0.8) · σ_d / δ)² = (2.80 · σ_d / δ)²
#
# seeds (the normal approximation; the t-distribution adds one or two at
# small n). δ = 0.65 points is the paper's NoSqueeze-versus-SE gap
# (22.93 % against 22.28 %, Table 16).

# %%
paper_gap = rows["NoSqueeze"]["paper_top1"] - rows["SE"]["paper_top1"]
differences = np.subtract(rows["NoSqueeze"]["test_errors"], rows["SE"]["test_errors"])
sigma = float(np.std(differences, ddof=1))
print(f"paired differences NoSqueeze - SE (points): {np.round(differences, 2).tolist()}, "
      f"sigma_d = {sigma:.2f}; the paper's gap {paper_gap:.2f} points "
      f"(Table {rows['NoSqueeze']['paper_table']})")
if sigma == 0:
    print("-> every paired difference is the same: no spread to size a test from.")
else:
    seeds_needed = int(np.ceil((2.80 * sigma / paper_gap) ** 2))
    print(f"-> about {max(seeds_needed, 2)} seeds (against {SEEDS} run here) to detect "
          f"{paper_gap:.2f} points with 80% power, if the spread stayed at {sigma:.2f}.")
if LEARNED and rows["NoSqueeze"]["significant"]:
    print(f"   Here the measured difference, {np.mean(differences):+.2f} points, is already "
          f"significant with {SEEDS} seeds: on this data set the global squeeze matters far "
          "more than on ImageNet.")
