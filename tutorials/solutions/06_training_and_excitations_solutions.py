# %% [markdown]
# # Solutions to the exercises of tutorial 6 (training and excitations)
#
# The network and the training loop are those of the tutorial, repeated
# here so that this file runs on its own.

# %%
import os

import numpy as np

import se_numpy as sn
from se_numpy import nn

NAME = "06_training_and_excitations_solutions"
FIGURES = []
FAST = os.environ.get("SE_NUMPY_FAST", "0") not in ("", "0")
BUDGET = (128, 1) if FAST else (1500, 4)        # training images, epochs
SEEDS = (0, 1) if FAST else (0, 1, 2)
sn.use_backend("numba")     # for these small layers faster than the numpy reference

data = sn.data.make_synthetic(0, sn.data.SyntheticConfig(train_size=BUDGET[0],
                                                          test_size=200 if FAST else 1000))
mean, std = data.channel_mean_std()
test_x = sn.data.to_float(data.test_images, mean, std)
test_y = data.test_labels


def make_network(with_se=True, input_se=False, seed=0):
    rng = np.random.default_rng(seed)
    layers, in_channels = [], 3
    if input_se:
        layers.append(nn.SEBlock(3, hidden=6, rng=rng))        # gates on the RGB channels
    for stage, width in enumerate((8, 16, 32)):
        layers += [nn.Conv2d(in_channels, width, 3, stride=1 if stage == 0 else 2, padding=1,
                             bias=False, rng=rng), nn.BatchNorm2d(width), nn.ReLU()]
        if with_se:
            layers.append(nn.SEBlock(width, reduction=2, rng=rng))
        in_channels = width
    layers += [nn.GlobalAvgPool(), nn.Linear(in_channels, data.num_classes, rng=rng)]
    return nn.Sequential(*layers)


def accuracy(model):
    model.eval()
    correct = sum(int(np.sum(model(test_x[i:i + 250]).argmax(axis=1) == test_y[i:i + 250]))
                  for i in range(0, len(test_y), 250))
    model.train()
    return correct / len(test_y)


def train(model, seed=0):
    loader = sn.data.BatchLoader(data.train_images, data.train_labels, 64, mean, std,
                                 shuffle=True, rng=np.random.default_rng(seed))
    optimizer = sn.optim.SGD(model.parameters(), lr=0.15, momentum=0.9, weight_decay=5e-4)
    loss_fn = sn.nn.CrossEntropyLoss()
    total, step = BUDGET[1] * len(loader), 0
    for _ in range(BUDGET[1]):
        for x, y in loader:
            optimizer.set_lr(0.5 * (1 + np.cos(np.pi * step / total)))
            loss_fn(model(x), y)
            model.zero_grad()
            model.backward(loss_fn.backward())
            optimizer.step()
            step += 1
    return model


# %% [markdown]
# ## 1. Gates on the input channels
#
# An SE block on the raw image sees the three channel means. If training
# discovers the data set's cue, its largest gate sits on the brightest
# channel far more often than the chance rate of 1/3.

# %%
model = train(make_network(with_se=False, input_se=True))
model.eval()
input_gates = model[0]
model(test_x)
gates = input_gates.last_gates
brightest = test_x.mean(axis=(2, 3)).argmax(axis=1)
agreement = float(np.mean(gates.argmax(axis=1) == brightest))
print(f"test accuracy {accuracy(model):.3f}; the largest input gate is on the brightest "
      f"channel for {100 * agreement:.0f}% of the test images (chance: 33%)")
print("mean gates (R, G, B) when R, G or B is brightest:")
for channel, colour in enumerate("RGB"):
    print(f"  {colour} brightest: {gates[brightest == channel].mean(axis=0).round(2)}")

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
se_net = train(make_network(with_se=True))
before = accuracy(se_net)
se_net.eval()
blocks = [module for module in se_net if isinstance(module, nn.SEBlock)]
with sn.analysis.record_gates(se_net) as record:
    se_net(test_x)
for block, name in zip(blocks, record):
    average = np.clip(record.stacked(name).mean(axis=0), 1e-6, 1 - 1e-6)
    block.fc1.weight.data[...] = 0.0
    block.fc2.weight.data[...] = 0.0
    block.fc2.bias.data[...] = np.log(average / (1 - average)).astype(np.float32)
se_net(test_x[:4])
assert all(np.allclose(block.last_gates, block.last_gates[0], atol=1e-6) for block in blocks)
after = accuracy(se_net)
print(f"SE net: test accuracy {before:.3f} with its gates, {after:.3f} with fixed average gates")

# %% [markdown]
# ## 3. Several seeds
#
# One run per configuration says little at this scale: the seed changes the
# initialisation and the data order, and with it the final accuracy by a few
# percent. Report mean and spread before comparing.

# %%
results = {"plain": [], "SE": []}
for seed in SEEDS:
    for label, with_se in (("plain", False), ("SE", True)):
        results[label].append(accuracy(train(make_network(with_se=with_se, seed=seed), seed)))
for label, values in results.items():
    print(f"{label:5s}: accuracy {100 * np.mean(values):.1f}% ± {100 * np.std(values):.1f}% "
          f"over seeds {SEEDS}")
difference = np.mean(results["SE"]) - np.mean(results["plain"])
spread = max(np.std(results["SE"]), np.std(results["plain"]))
print(f"difference {100 * difference:+.1f} points, spread {100 * spread:.1f} points: "
      f"{'larger' if abs(difference) > spread else 'not larger'} than the spread")
