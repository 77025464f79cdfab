# %% [markdown]
# # 8. Find the bug: a residual SE unit whose backward pass is wrong
#
# Below is the forward and the backward pass of a small SE-ResNet unit,
# written out in NumPy. The backward pass has **one** mistake. It is not
# marked, and the comments do not point to it: every line looks like the
# others. Your tool is the gradient checker of tutorial 2
# (`se_numpy.gradcheck.check_vjp`), and the exercise is to go from its report
# to the line, by reasoning, without reading the backward line by line
# against your own derivation first.
#
# The unit (paper Fig. 3, the SE-ResNet module, with a 1x1 convolution as
# its residual branch so that everything fits on a screen):
#
#     r = W * x                       residual branch: 1x1 convolution, W (C, C)
#     z = mean_ij r                   squeeze (Eq. 2), z (N, C)
#     a = z W1ᵀ + b1,  h = ReLU(a)    excitation, first layer (Eq. 3), W1 (C/r, C)
#     s = σ(h W2ᵀ + b2)               gates (Eq. 3), W2 (C, C/r), s (N, C)
#     v = s ⊙ r                       scale (Eq. 4)
#     y = ReLU(v + x)                 identity shortcut, then the unit's ReLU
#
# Shapes: x, r, v, y are (N, C, H, W).

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
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from se_numpy.analysis.figures import show
from se_numpy.gradcheck import check_vjp

NAME = "08_find_the_bug"
FIGURES = ["report.png"]
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("SE_NUMPY_TUTORIAL_OUT", HERE / "out")) / NAME
OUT.mkdir(parents=True, exist_ok=True)
NAMES = ("x", "W", "W1", "b1", "W2", "b2")


def sigmoid(t):
    return 1.0 / (1.0 + np.exp(-t))


def unit_forward(x, W, W1, b1, W2, b2):
    """The residual SE unit; returns (y, cache)."""
    r = np.einsum("kc,nchw->nkhw", W, x)
    z = r.mean(axis=(2, 3))
    a = z @ W1.T + b1
    h = np.maximum(a, 0.0)
    s = sigmoid(h @ W2.T + b2)
    v = r * s[:, :, None, None]
    p = v + x
    y = np.maximum(p, 0.0)
    return y, (x, W, W1, W2, r, z, a, h, s, p)


def unit_backward(dy, cache):
    """dL/dy (N, C, H, W) -> (dx, dW, dW1, db1, dW2, db2)."""
    x, W, W1, W2, r, z, a, h, s, p = cache
    H, Wd = x.shape[2:]
    dp = dy * (p > 0)                            # the unit's ReLU
    d_shortcut = dy                              # the identity path
    dv = dp                                      # the SE path
    ds = np.sum(dv * r, axis=(2, 3))             # scale: v = s r, with respect to s
    dr = dv * s[:, :, None, None]                # ... and with respect to r
    dg = ds * s * (1 - s)                        # the sigmoid
    dW2 = dg.T @ h
    db2 = dg.sum(axis=0)
    dh = dg @ W2
    da = dh * (a > 0)                            # the excitation's ReLU
    dW1 = da.T @ z
    db1 = da.sum(axis=0)
    dz = da @ W1
    dr = dr + dz[:, :, None, None] / (H * Wd)    # the squeeze: r reaches s through z too
    dW = np.einsum("nkhw,nchw->kc", dr, x)       # the 1x1 convolution
    dx = np.einsum("kc,nkhw->nchw", W, dr) + d_shortcut
    return dx, dW, dW1, db1, dW2, db2


# %% [markdown]
# ## The inputs
#
# Two ReLUs: at a point where a ReLU's input is 0 the unit is not
# differentiable, and a central difference that straddles it measures
# nonsense. So the inputs are drawn such that every ReLU input is at least
# `MARGIN` away from 0 (much more than the checker's steps, about 1e-3 here),
# by drawing again until they are. `dy` is fixed and kept, so that you can
# use it in your reasoning.

# %%
MARGIN = 0.05
N, C, H, W_SIDE, HIDDEN = 2, 4, 3, 5, 2


def draw_inputs(seed=0):
    """(x, W, W1, b1, W2, b2) and dy in float64, every ReLU input at least MARGIN from 0."""
    for attempt in range(1000):
        rng = np.random.default_rng([seed, attempt])
        inputs = (rng.normal(size=(N, C, H, W_SIDE)), 0.5 * rng.normal(size=(C, C)),
                  rng.normal(size=(HIDDEN, C)), 0.1 * rng.normal(size=HIDDEN),
                  rng.normal(size=(C, HIDDEN)), 0.1 * rng.normal(size=C))
        _, cache = unit_forward(*inputs)
        a, p = cache[6], cache[9]
        if np.abs(a).min() > MARGIN and np.abs(p).min() > MARGIN:
            return inputs, rng.normal(size=(N, C, H, W_SIDE))
    raise RuntimeError("no inputs away from the ReLUs' kinks in 1000 draws")


inputs, dy = draw_inputs()


def check(backward=unit_backward):
    """The gradient check of ``backward`` on the fixed inputs and dy, every entry compared
    (``elementwise=True``: the unit is small enough for that)."""
    return check_vjp(lambda *args: unit_forward(*args)[0],
                     lambda g, *args: backward(g, unit_forward(*args)[1]),
                     inputs, names=NAMES, dy=dy, elementwise=True, progress=False)


# %% [markdown]
# ## The report

# %%
report = check()
print(report)

# %%
fig, axis = plt.subplots(figsize=(6, 3))
ratios = [max(d.error / d.tolerance, 1e-6) for d in report.directions]
axis.bar([d.name for d in report.directions], ratios,
         color=["tab:red" if d.error > d.tolerance else "tab:green" for d in report.directions])
axis.axhline(1.0, color="k", lw=0.8, ls="--", label="tolerance")
axis.set_yscale("log")
axis.set_ylabel("|error| / tolerance\n(directional test)")
axis.set_title("Gradient check of unit_backward: which tensors disagree", fontsize=9)
axis.legend(fontsize=8)
fig.tight_layout()
show(fig, OUT / "report.png")

# %% [markdown]
# ## Exercises
#
# Solutions: `tutorials/solutions/08_find_the_bug_solutions.py` (read it
# after you have tried: it walks from the report to the line).
#
# 1. **Which gradients are wrong, and which are right?** List them from the
#    report. For each one that is right, write down which intermediate
#    gradients of `unit_backward` (`dp`, `ds`, `dr`, `dg`, `da`, ...) it
#    depends on. Which intermediates are then known to be right?
# 2. **Which entries?** `report.tensors[name]` holds the entries the checker
#    compared one by one, here all of them (`indices` are flat indices into the tensor;
#    `failed` marks the ones beyond tolerance). Compute the forward pass's
#    intermediates at the failing entries and at the passing ones. What do
#    the failing ones have in common? Compare `analytical - numerical` there
#    with `dy`.
# 3. **The line.** Name the line, fix it (copy `unit_backward`, change one
#    line) and run `check(your_backward)` until the report passes.
