# %% [markdown]
# # Solutions to the exercises of tutorial 7 (after SE)

# %%
import numpy as np

from se_numpy import nn
from se_numpy.analysis import count_params

NAME = "07_after_se_solutions"
FIGURES = []

# %% [markdown]
# ## 1. ECA's kernel size
#
# k = |log2(C)/γ + b/γ| rounded down, then made odd (an even k becomes k + 1),
# γ = 2, b = 1 (Wang et al., Eq. 12); timm, and so `nn.ECA`, also keep k ≥ 3.

# %%
def eca_kernel_by_hand(channels, gamma=2, beta=1):
    k = int(abs(np.log2(channels) / gamma + beta / gamma))
    return max(k if k % 2 else k + 1, 3)


for channels in (16, 64, 256, 2048):
    by_hand, module = eca_kernel_by_hand(channels), nn.ECA(channels).conv.kernel_size
    print(f"C = {channels:4d}: k by hand {by_hand}, nn.ECA {module}"
          f"{'' if by_hand == module else '  <- DIFFERENT'}")
eca_params = count_params(nn.ECA(2048))
se_params = count_params(nn.SEBlock(2048, reduction=16))
print(f"on 2048 channels (ResNet-50's last stage): ECA {eca_params:,d} parameters, "
      f"SE (r=16) {se_params:,d}: {se_params / eca_params:,.0f} times more")

# %% [markdown]
# ## 2. When is Effective SE cheaper than SE?
#
# C² + C < 2C²/r + C/r + C  ⇔  C < (2C + 1)/r  ⇔  r < 2 + 1/C. For whole r and
# C ≥ 2 that is r ≤ 2: Effective SE is cheaper only where SE hardly reduces.

# %%
C = 64
ese = count_params(nn.EffectiveSE(C))
for r in (1, 2, 4, 16):
    se = count_params(nn.SEBlock(C, reduction=r))
    formula = 2 * C * C // r + C // r + C
    print(f"r = {r:2d}: SE {se:5,d} (formula {formula:5,d}), Effective SE {ese:,d}: "
          f"{'Effective SE' if ese < se else 'SE'} is cheaper")

# %% [markdown]
# ## 3. scSE's gate is the channel gate plus the pixel gate

# %%
scse = nn.SCSE(16, reduction=4, dtype=np.float64, rng=0)
x = np.random.default_rng(0).normal(size=(2, 16, 5, 5))
x[np.abs(x) < 1e-3] = 1e-3                  # keep away from 0 to divide by x
gate = scse(x) / x
channel, pixel = scse.cSE(x), scse.sSE(x)
print(f"channel gates {channel.shape}, pixel gates {pixel.shape}")
expected = channel.reshape(2, 16, 1, 1) + pixel.reshape(2, 1, 5, 5)
print(f"y/x in [{gate.min():.3f}, {gate.max():.3f}], inside (0, 2): "
      f"{bool((gate > 0).all() and (gate < 2).all())}; equals cSE + sSE: "
      f"{np.allclose(gate, expected)}")
