# %% [markdown]
# # Solutions to the exercises of tutorial 1 (the SE block from scratch)

# %% [markdown]
# **Setup (notebooks only).** The next cell runs `tutorials/_setup.py`,
# which installs `se_numpy` from this clone when the kernel does not have it
# yet (a fresh environment) and otherwise does nothing. In the `.py` file
# the line is a comment, so a script skips it.

# %%
# %run ../_setup.py

# %%
import os
from pathlib import Path

import numpy as np

import se_numpy as sn
from se_numpy import functional as F
from se_numpy.gradcheck import check_module, check_vjp

NAME = "01_se_block_solutions"
FIGURES = []
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("SE_NUMPY_TUTORIAL_OUT", HERE.parent / "out")) / NAME
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. The tanh gate
#
# `s = tanh(a)`, so `ds/da = 1 − tanh(a)² = 1 − s²`. Keeping `s` in the
# cache is enough: `da = ds · (1 − s²)`.


# %%
def tanh_gate_forward(a):
    s = np.tanh(a)
    return s, s


def tanh_gate_backward(ds, cache):
    s = cache
    return ds * (1 - s * s)


a = rng.standard_normal((4, 6))
report = check_vjp(lambda a: tanh_gate_forward(a)[0],
                   lambda ds, a: tanh_gate_backward(ds, tanh_gate_forward(a)[1]), a)
print(report)
assert report.passed
# our hand-written pair agrees with the library's
assert np.allclose(tanh_gate_forward(a)[0], F.tanh_forward(a)[0], rtol=0, atol=1e-15)

se_tanh = sn.nn.SEBlock(channels=6, reduction=2, gate="tanh", dtype=np.float64, rng=0)
x = rng.standard_normal((2, 6, 3, 3))
report = check_module(se_tanh, x)       # checks a float64 copy; se_tanh itself is untouched
print(report)
assert report.passed
se_tanh(x)
# tanh gates lie in (−1, 1): a channel can be *inverted*, not only damped
print("tanh gates:", se_tanh.last_gates.round(3))

# %% [markdown]
# ## 2. Max squeeze
#
# `z[n,c] = max_ij u[n,c,i,j]` equals exactly one input entry, the arg-max
# `(i*, j*)`. A small change of any other entry does not change `z`, so
#
#     du[n,c,i*,j*] = dz[n,c],    du = 0 elsewhere.
#
# At a tie (two equal maxima) the max is not differentiable: moving one of
# them up by `h` changes `z` by `h`, moving it down does not, so the
# one-sided slopes differ and a central difference gives 1/2, matching
# neither choice. Drawing all entries distinct (here: a random permutation,
# so the gap between any two entries is at least 1/(count) ≫ h) keeps every
# finite-difference stencil away from a tie.

# %%
count = 2 * 3 * 4 * 4
distinct = (rng.permutation(count).reshape(2, 3, 4, 4) / count).astype(np.float64)
report = check_vjp(lambda x: F.squeeze_forward(x, mode="max")[0],
                   lambda dz, x: F.squeeze_backward(dz, F.squeeze_forward(x, mode="max")[1]),
                   distinct)
print(report)
assert report.passed

# %% [markdown]
# ## 3. Counting one block
#
# With `C = 256`, `r = 16`, the hidden width is 16:
# fc1 has `16·256 + 16` parameters, fc2 `256·16 + 256`: in total
# `2·C²/r + C/r + C = 8192 + 272 = 8464`.
# Multiply-accumulates on a 14 x 14 map: the squeeze adds `C·H·W`, the scale
# multiplies `C·H·W`, the two FC layers `2·C·C/r`:
# `2·256·196 + 2·256·16 = 100352 + 8192 = 108544`.

# %%
block = sn.nn.SEBlock(channels=256, reduction=16)
parameters = sum(p.size for p in block.parameters())
print("parameters:", parameters, " multiply-accumulates:", block.flops((1, 256, 14, 14)))
assert parameters == 2 * 256 * 16 + 16 + 256
assert block.flops((1, 256, 14, 14)) == 2 * 256 * 196 + 2 * 256 * 16
