# %% [markdown]
# # Solutions to the exercises of tutorial 3 (SE inside networks)

# %% [markdown]
# **Setup (notebooks only).** The next cell runs `tutorials/_setup.py`,
# which installs `se_numpy` from this clone when the kernel does not have it
# yet (a fresh environment) and otherwise does nothing. In the `.py` file
# the line is a comment, so a script skips it.

# %%
# %run ../_setup.py

# %%
import os

import numpy as np

import se_numpy as sn

NAME = "03_se_in_networks_solutions"
FIGURES = []
FAST = os.environ.get("SE_NUMPY_FAST", "0") not in ("", "0")


def se_parameters(blocks, widths, reduction=16):
    """Σ_s N_s · (2 C_s · C_s/r  +  C_s/r + C_s): weights and biases of both FC layers."""
    return sum(n * (2 * c * (c // reduction) + c // reduction + c) for n, c in zip(blocks, widths))


plain = sn.analysis.count_params(sn.models.create("resnet50", stride_in_1x1=True))

# %% [markdown]
# ## 1. SE_3x3
#
# After the 3x3 convolution the SE block sees the bottleneck width (64, 128,
# 256, 512), a quarter of the block's output width. Parameters grow with C²,
# so each block costs 1/16 of the standard placement's.

# %%
by_hand = se_parameters((3, 4, 6, 3), (64, 128, 256, 512))
built = sn.analysis.count_params(sn.models.create("se_resnet50", stride_in_1x1=True,
                                                  placement="after_3x3")) - plain
print(f"SE_3x3 extra parameters: by hand {by_hand:,d}, counted {built:,d}")
assert by_hand == built
standard = se_parameters((3, 4, 6, 3), (256, 512, 1024, 2048))
print(f"standard placement: {standard:,d}, ratio {standard / by_hand:.1f}")

# %% [markdown]
# ## 2. The reduction ratio
#
# The weights are `2C²/r` per block: the extra parameters fall as `1/r`
# (the biases, `C/r + C`, add a small part that does not vanish).

# %%
ratios = (4, 16) if FAST else (2, 4, 8, 16, 32)
extra = {}
for r in ratios:
    model = sn.models.create("se_resnet50", stride_in_1x1=True, reduction=r)
    extra[r] = sn.analysis.count_params(model) - plain
    del model
    print(f"r = {r:2d}: {extra[r] / 1e6:6.3f} M extra parameters "
          f"({100 * extra[r] / plain:4.1f}% of ResNet-50)")
    assert extra[r] == se_parameters((3, 4, 6, 3), (256, 512, 1024, 2048), r)
# weights only: r · (extra − output biases) is the same for every r
weights_times_ratio = {r: r * (extra[r] - sum(n * c for n, c in zip((3, 4, 6, 3),
                                                                     (256, 512, 1024, 2048)))
                               - sum(n * (c // r) for n, c in zip((3, 4, 6, 3),
                                                                  (256, 512, 1024, 2048))))
                       for r in ratios}
print("r · (weight parameters):", weights_times_ratio)
assert len(set(weights_times_ratio.values())) == 1

# %% [markdown]
# ## 3. Gates of 1 make every placement the plain block
#
# With `fc2.weight = 0` and `fc2.bias = 1000`, every gate is σ(1000) = 1
# exactly in floating point, so SE multiplies by one wherever it sits.

# %%
x = np.random.default_rng(0).standard_normal((2, 8, 5, 5))
plain_block = sn.nn.BasicBlock(8, 8, dtype=np.float64, rng=0)
expected = plain_block(x)
for placement in ("standard", "pre", "post", "identity", "after_3x3"):
    channels = sn.nn.BasicBlock.attention_channels(8, 8, placement)
    se = sn.nn.SEBlock(channels, reduction=4, dtype=np.float64, rng=1)
    se.fc2.weight.data[...] = 0.0
    se.fc2.bias.data[...] = 1000.0
    block = sn.nn.BasicBlock(8, 8, attention=se, placement=placement, dtype=np.float64, rng=0)
    output = block(x)
    print(f"{placement:10s} gates all 1: {bool(np.all(se.last_gates == 1.0))}, "
          f"max |difference from plain block| {np.abs(output - expected).max():.1e}")
    assert np.all(se.last_gates == 1.0)
    assert np.array_equal(output, expected)
