# %% [markdown]
# # Solutions to the exercises of tutorial 2 (gradient checking done right)

# %% [markdown]
# **Setup (notebooks only).** The next cell runs `tutorials/_setup.py`,
# which installs `se_numpy` from this clone when the kernel does not have it
# yet (a fresh environment) and otherwise does nothing. In the `.py` file
# the line is a comment, so a script skips it.

# %%
# %run ../_setup.py

# %%
import numpy as np

import se_numpy as sn
from se_numpy import functional as F
from se_numpy.gradcheck import check_vjp

NAME = "02_gradient_checking_solutions"
FIGURES = []
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. The missing path, restored
#
# `dx = dy·s + dz/(HW)`: the direct path through the scale plus the path
# through the squeeze (whose backward spreads `dz` evenly over the `H·W`
# positions).

# %%
se = sn.nn.SEBlock(channels=8, reduction=2, dtype=np.float64, rng=0)
weights = [parameter.data for _, parameter in se.named_parameters()]
weight_names = [name for name, _ in se.named_parameters()]


def se_block(x, w1, b1, w2, b2):
    return F.se_block_forward(x, w1, b1, w2, b2)[0]


def se_block_backward_two_paths(dy, x, w1, b1, w2, b2):
    _, cache = F.se_block_forward(x, w1, b1, w2, b2)
    s = cache["s"]
    height, width = x.shape[2:]
    ds = np.sum(dy * x, axis=(2, 3))
    dz, dw1, db1, dw2, db2 = F.excitation_backward(ds, cache["excitation"])
    dx = dy * s[:, :, None, None] + dz[:, :, None, None] / (height * width)
    return dx, dw1, db1, dw2, db2


x = np.random.default_rng(5).standard_normal((2, 8, 3, 3))
report = check_vjp(se_block, se_block_backward_two_paths, (x, *weights),
                   names=["x"] + weight_names)
print(report)
assert report.passed

dy = rng.standard_normal(x.shape)
mine = se_block_backward_two_paths(dy, x, *weights)
library = F.se_block_backward(dy, F.se_block_forward(x, *weights)[1])
print("largest difference from F.se_block_backward:",
      max(float(np.abs(a - b).max()) for a, b in zip(mine, library)))
assert all(np.allclose(a, b, rtol=1e-12, atol=1e-14) for a, b in zip(mine, library))

# %% [markdown]
# ## 2. The complex-step derivative
#
# For an analytic `L`, `L(x + i h v) = L + i h L'v − h²/2 L''[v,v] − i h³/6 ...`,
# so `Im L(x + i h v) / h = L'v − h²/6 L'''... `. There is **no subtraction**
# of two nearly equal numbers, hence no cancellation: the rounding error does
# not grow as `h` shrinks, and `h = 1e-20` gives the derivative to full
# precision. (It needs a forward pass written with analytic operations on
# complex numbers — no `abs`, no `max`, no comparisons — which is why
# gradient checkers use real differences.)

# %%
points = rng.standard_normal(6)
direction = rng.standard_normal(6)
upstream = rng.standard_normal(6)


def sigmoid_complex(value):
    return 1.0 / (1.0 + np.exp(-value))


def loss(value):
    return np.sum(sigmoid_complex(value) * upstream)


gate = sigmoid_complex(points)
exact = float(np.sum(gate * (1 - gate) * upstream * direction))
print(f"{'h':>8} {'central error':>15} {'complex-step error':>20}")
complex_errors, central_errors = [], []
for h in (1e-2, 1e-4, 1e-6, 1e-8, 1e-10, 1e-12, 1e-20):
    complex_step = float(np.imag(loss(points + 1j * h * direction)) / h)
    central = float((loss(points + h * direction) - loss(points - h * direction)) / (2 * h))
    complex_errors.append(abs(complex_step - exact))
    central_errors.append(abs(central - exact))
    print(f"{h:8.0e} {central_errors[-1]:15.2e} {complex_errors[-1]:20.2e}")
# at h = 1e-20 the central difference sees no change at all, the complex step is exact
assert complex_errors[-1] <= 1e-15 * max(1.0, abs(exact))
assert central_errors[-1] > 1e-3 * abs(exact)

# %% [markdown]
# ## 3. A sign flip in the tanh gate's backward


# %%
def tanh_gate(a):
    return F.tanh_forward(a)[0]


def tanh_gate_backward_flipped(ds, a):
    s = np.tanh(a)
    return -ds * (1 - s * s)           # planted bug: the minus sign


report = check_vjp(tanh_gate, tanh_gate_backward_flipped, rng.standard_normal((3, 5)))
print(report)
assert not report.passed
hint = report["x"].hint
print("hint:", hint)
assert hint is not None and "sign flip" in hint
