# %% [markdown]
# # 2. Gradient checking done right
#
# A hand-written backward pass is only as good as its check. The check
# compares the analytical gradient with a *finite difference* of the
# forward pass. This tutorial shows
#
# 1. why central differences beat forward differences, and which step `h`
#    to take — measured: the error against `h`, in float32 and float64, with
#    the theoretical optimum marked;
# 2. what happens at a kink (ReLU at 0, a tie in a max) and how the checker
#    labels it instead of failing or passing by accident;
# 3. two deliberately broken SE backward passes and the reports they
#    produce, read line by line.
#
# Everything here uses `se_numpy.gradcheck.check_vjp`, which you can point at
# your own functions, from any framework, as long as they take and return
# NumPy arrays.

# %% [markdown]
# **Setup (notebooks only).** The next cell runs `tutorials/_setup.py`,
# which installs `se_numpy` from this clone when the kernel does not have it
# yet (a fresh environment) and otherwise does nothing. In the `.py` file
# the line is a comment, so a script skips it.

# %%
# %run _setup.py

# %%
import copy
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
from se_numpy.gradcheck import STEP_SCALE, check_vjp

NAME = "02_gradient_checking"
FIGURES = ["error_vs_step.png", "kink_relu.png"]
FAST = os.environ.get("SE_NUMPY_FAST", "0") not in ("", "0")
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("SE_NUMPY_TUTORIAL_OUT", HERE / "out")) / NAME
OUT.mkdir(parents=True, exist_ok=True)
print(f"figures go to {OUT}  (fast mode: {FAST})")
rng = np.random.default_rng(0)

# %% [markdown]
# ## What is compared
#
# A backward pass never computes a full Jacobian; it computes a
# vector-Jacobian product: given the upstream gradient `dy`, it returns
# `dx = Jᵀ dy`. That is exactly the gradient of the *scalar*
#
#     L(x) = Σ_k y_k(x) · dy_k        (dy fixed, random)
#
# so the checker differentiates `L` numerically and compares with what the
# backward returns for that `dy`. A random `dy` makes every output matter.
#
# ## Forward against central differences
#
# Taylor expansion of `L` around `x` along a direction `v`:
#
#     L(x + hv) = L + h L' + h²/2 L'' + h³/6 L''' + ...
#
# * forward:  `(L(x+hv) − L(x)) / h         = L' + h/2 L'' + ...`  truncation ∝ h
# * central:  `(L(x+hv) − L(x−hv)) / (2h)   = L' + h²/6 L''' + ...` truncation ∝ h²
#
# Each evaluation of `L` carries a rounding error of about `eps·|L|`, which
# the division by `h` amplifies: rounding ∝ eps/h. Minimising the sum:
#
# * forward:  `h/2 + eps/h`  is smallest at `h* ~ sqrt(eps)`   error ~ sqrt(eps)
# * central:  `h²/6 + eps/h` is smallest at `h* ~ eps^(1/3)`   error ~ eps^(2/3)
#
# | dtype   | eps      | forward h*, error | central h*, error |
# |---------|----------|-------------------|-------------------|
# | float32 | 1.2e-7   | 3e-4, 3e-4        | 5e-3, 2e-5        |
# | float64 | 2.2e-16  | 1.5e-8, 1.5e-8    | 6e-6, 4e-11       |
#
# So: check in float64, with central differences, starting from `h ≈ 6e-6`
# (`STEP_SCALE`, the checker's first step; below we see how it adapts it).
# In float32 the best error is of order 1e-5: such a check cannot tell an
# error of that size from rounding noise. Let us measure it on an SE block.

# %%
# A 1x1 map: on a large map one pixel moves the mean z by only 1/(HW), so L is
# nearly linear in it and the truncation error hardly shows. On 1x1 the gate
# is a strongly nonlinear function of x, and weights 3x the default size give
# it derivatives of order one: the setting the textbook constants assume.
se64 = sn.nn.SEBlock(channels=4, reduction=2, dtype=np.float64, rng=0)
se64.load_state_dict({name: 3.0 * value for name, value in se64.state_dict().items()})
# astype casts in place (like PyTorch's .to), so cast copies
se32 = copy.deepcopy(se64).astype(np.float32)      # weights rounded to float32
# the reference: float64 arithmetic on *the same* (float32-rounded) numbers, so
# the only difference between the two curves is the precision of the arithmetic
reference = copy.deepcopy(se32).astype(np.float64)
# a point where one hidden ReLU unit is on (with both off, L would be linear in x
# and a difference quotient would have no truncation error at all)
point_rng = np.random.default_rng(5)
x = point_rng.standard_normal((1, 4, 1, 1)).astype(np.float32).astype(np.float64)
direction = point_rng.standard_normal(x.shape)
direction /= np.linalg.norm(direction)
dy = point_rng.standard_normal(x.shape)

reference(x)
exact = float(np.sum(reference.backward(dy) * direction))   # <dL/dx, v>, checked below
print(f"directional derivative <dL/dx, v> = {exact:.12f}")
print(check_vjp(lambda x: reference(x), lambda g, x: (reference(x), reference.backward(g))[1],
                x).passed and "(the float64 backward is itself verified by check_vjp)")


# %%
def loss(module, dtype, t):
    """L(x + t·v) evaluated in ``dtype``; the final dot product in float64."""
    point = (x + t * direction).astype(dtype)
    return float(np.sum(module(point).astype(np.float64) * dy))


steps = np.logspace(-13, -0.5, 40 if FAST else 80)
errors = {}
for dtype, module in ((np.float32, se32), (np.float64, reference)):
    center = loss(module, dtype, 0.0)
    forward_errors, central_errors = [], []
    for h in steps:
        plus, minus = loss(module, dtype, h), loss(module, dtype, -h)
        forward_errors.append(abs((plus - center) / h - exact))
        central_errors.append(abs((plus - minus) / (2 * h) - exact))
    errors[np.dtype(dtype).name] = (np.array(forward_errors), np.array(central_errors))

# %%
fig, axis = plt.subplots(figsize=(8, 5))
colours = {"float32": "tab:orange", "float64": "tab:blue"}
floor = 1e-17            # an error of exactly 0 cannot be drawn on a log axis
for name, (forward_errors, central_errors) in errors.items():
    eps = np.finfo(name).eps
    axis.loglog(steps, np.maximum(forward_errors, floor), "--", color=colours[name],
                label=f"{name} forward")
    axis.loglog(steps, np.maximum(central_errors, floor), "-", color=colours[name],
                label=f"{name} central")
    for optimum, style, text in ((np.sqrt(eps), ":", "√eps"), (eps ** (1 / 3), "-.", "eps^(1/3)")):
        axis.axvline(optimum, color=colours[name], ls=style, lw=1)
        axis.text(optimum, 2e-1, f" {text}\n ({name})", color=colours[name], fontsize=7,
                  rotation=90, va="top")
axis.set_ylim(1e-13, 10)
axis.set_xlabel("step h (distance along a unit direction)")
axis.set_ylabel("|finite difference − exact directional derivative|")
axis.set_title("Central differences win, and only float64 is precise enough:\n"
               "the error falls as h (forward) or h² (central), then rounding (∝ eps/h) takes over")
axis.legend(fontsize=8, loc="lower left")
fig.tight_layout()
show(fig, OUT / "error_vs_step.png", dpi=90)

for name, (forward_errors, central_errors) in errors.items():
    eps = np.finfo(name).eps
    for kind, measured, predicted in (("forward", forward_errors, np.sqrt(eps)),
                                      ("central", central_errors, eps ** (1 / 3))):
        best = steps[measured.argmin()]
        print(f"{name} {kind}: best error {measured.min():.1e} at h = {best:.2g}; the table's "
              f"h* = {predicted:.2g} (measured / predicted = {best / predicted:.2g})")

# the float32 plateau: below some step, x ± h·v rounds back to x itself in float32
same_point = [h for h in steps
              if np.array_equal((x + h * direction).astype(np.float32), x.astype(np.float32))]
plateau = errors["float32"][1][steps <= max(same_point)] if same_point else np.zeros(0)
print(f"float32: x ± h·v rounds to x itself for h <= {max(same_point, default=0):.0e}; "
      f"there the difference quotient is 0 and the error is |<dL/dx, v>| = {abs(exact):.3f}"
      f" (measured on those steps: {plateau.min():.3f} to {plateau.max():.3f})")

# %% [markdown]
# The cell prints each measured minimum beside the table's `h*`: they agree
# up to the factor printed, which comes from this function's own constants
# (`L''`, `L'''` and `|L|` are not 1). The float32 curves end in a flat
# line at the left: once `h` is below about half a float32 ulp of the
# entries of `x` (their magnitude times 6e-8), `x + h·v` rounds back to `x`,
# both evaluations return the same number, the difference quotient is 0 and
# the error is the whole derivative. The cell computes the largest such `h`
# and the error there. In float64 that happens only at far smaller steps;
# over the plotted range its error grows as `eps/h` instead.
#
# Two more details the checker takes care of:
#
# * its step starts at `h = eps^(1/3)·max(1, |x|)`, relative for large
#   entries, and walks a *ladder* of smaller steps `h/4, h/16, ...` while the
#   difference between neighbouring rungs keeps falling: that difference
#   estimates the error of the finer rung, so the ladder settles where
#   truncation and rounding balance for *this* function, not for the
#   textbook constants (`se_numpy/gradcheck/differences.py` explains);
# * it compares the difference quotient with the analytical gradient along
#   the displacement actually evaluated, `(x+h) − (x−h)` in floating point,
#   and its tolerance is not a fixed number: a few times the ladder's error
#   estimate plus a bound on rounding, so it is tight where the function is
#   tame and loose only where it must be. The report prints the rule and the
#   values.
#
# ## Kinks: where there is no derivative
#
# `ReLU(x) = max(0, x)` has no derivative at 0. If an input sits within the
# stencil `[x − 2h, x + 2h]` of the kink, the difference quotient mixes the
# two slopes: at `x = 0` the central difference is 1/2, which is neither the
# left (0) nor the right (1) derivative. Nothing is wrong with the backward;
# the comparison at that step is meaningless.
#
# Below, one ReLU input is moved across 0 in steps of a fraction of
# `h = eps^(1/3)`, and checked twice:
#
# * **with a fixed step** (`check_vjp(..., step=h)`: the two rungs `2h` and
#   `h`, as a checker without a ladder would use). Near the kink the
#   quotient takes any value between 0 and 1. The checker then looks at the
#   one-sided slopes `(L(x+h) − L(x))/h` and `(L(x) − L(x−h))/h`: for a
#   smooth `L` their gap shrinks when the step shrinks, at a kink it does
#   not, and such an entry is *labelled* a kink and left out of the
#   comparison. Where the slope test does not fire, the difference between
#   the two rungs is large and so is the tolerance.
# * **with the ladder** (the default): the error estimate between rungs is
#   large while the stencil straddles the kink and drops to rounding once the
#   step is smaller than the distance to it, so the ladder walks down past
#   the kink and compares there, where ReLU is linear.
#
# The cell prints, for each way, how many of the inputs within `2h` of the
# kink were labelled, how many were compared, and the largest tolerance
# among those compared.


# %%
def relu(x):
    return F.relu_forward(x)[0]


def relu_vjp(dy, x):
    return F.relu_backward(dy, F.relu_forward(x)[1])


offsets = np.linspace(-3, 3, 25 if FAST else 61)          # in units of the step h
near_kink = np.abs(offsets) < 2
sweeps = {}
for label, options in (("fixed step h", {"step": STEP_SCALE}), ("ladder", {})):
    reports = [check_vjp(relu, relu_vjp, np.array([offset * STEP_SCALE]), dy=np.ones(1),
                         elementwise=True, **options)["x"] for offset in offsets]
    sweeps[label] = {"numerical": np.array([r.numerical[0] for r in reports]),
                     "tolerance": np.array([r.tolerance[0] for r in reports]),
                     "kink": np.array([bool(r.kink[0]) for r in reports]),
                     "step": np.array([r.steps[0] for r in reports])}
    sweep = sweeps[label]
    compared = near_kink & ~sweep["kink"]
    print(f"{label:12s}: of {near_kink.sum()} inputs within 2h of the kink, "
          f"{(near_kink & sweep['kink']).sum()} labelled kinks (at x/h = "
          f"{offsets[near_kink & sweep['kink']].round(2)}), {compared.sum()} compared, "
          f"largest tolerance among them {sweep['tolerance'][compared].max(initial=0):.2g}")
ladder = sweeps["ladder"]
away = ~ladder["kink"] & (offsets != 0)
print(f"ladder: step settled on / distance to the kink, at most "
      f"{(ladder['step'][away] / np.abs(offsets[away] * STEP_SCALE)).max():.2f}")

fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
for axis, (label, sweep) in zip(axes, sweeps.items()):
    kink = sweep["kink"]
    axis.plot([-3, 0, 0, 3], [0, 0, 1, 1], color="k", lw=1,
              label="ReLU'(x) (the backward: 1[x > 0])")
    axis.errorbar(offsets[~kink], sweep["numerical"][~kink], yerr=sweep["tolerance"][~kink],
                  fmt="o", color="tab:green", capsize=3, zorder=3,
                  label="central difference ± tolerance: compared")
    axis.scatter(offsets[kink], sweep["numerical"][kink], color="tab:red", marker="x",
                 zorder=3, s=40, label="central difference: labelled kink, not compared")
    axis.axvspan(-2, 2, color="tab:red", alpha=0.08, label="x within 2h of the kink")
    axis.set_xlabel("input x, in units of h = eps^(1/3) ≈ 6e-6")
    axis.set_ylim(-0.35, 1.35)
    axis.set_title(f"{label}", fontsize=10)
axes[0].set_ylabel("derivative of ReLU at x")
axes[1].legend(fontsize=7, loc="center right")
fig.suptitle("ReLU near its kink: a fixed step mixes the two slopes (labelled, or a wide "
             "tolerance);\nthe ladder steps below the distance to the kink and compares there",
             fontsize=10)
fig.tight_layout()
show(fig, OUT / "kink_relu.png", dpi=90)

# %% [markdown]
# What is left is an input *exactly* at the kink (or closer than the
# smallest rung): no step avoids it, and the checker labels it. A tensor
# whose compared entries are mostly kinks fails as inconclusive rather than
# passing on nothing; the next cell shows the reason it gives for the single
# input `x = 0`.

# %%
at_kink = check_vjp(relu, relu_vjp, np.zeros(1), dy=np.ones(1), elementwise=True)
print("x = 0:", "passed" if at_kink.passed else "failed", "-", at_kink.failure_reasons)
assert not at_kink.passed

# %% [markdown]
# In a real check a kink shows up like this: a ReLU on inputs of which two
# are exactly 0 (as after a previous ReLU). The directional test over all
# entries at once meets the kinks and does not pass, so the checker compares
# the entries one by one, lists the two kinks and leaves them out; the
# check passes because every other entry agrees. Had most entries been
# kinks it would have failed as inconclusive (above): then choose inputs
# away from kinks (in tests: by construction, e.g. `|x| > 0.1`, never by
# loosening tolerances).

# %%
with_zeros = rng.standard_normal((3, 4))
with_zeros[0, :2] = 0.0
report = check_vjp(relu, relu_vjp, with_zeros)
print(report)
assert report.passed and report["x"].kink.sum() == 2

# %% [markdown]
# A max squeeze (Table 11 of the paper) with a *tie*: two positions of one
# channel share the maximum. Raising one of them moves the max, lowering it
# does not: a kink again. Both copies of the maximum are labelled (the
# report lists them), and the check passes on the other entries.

# %%
tied = rng.permutation(2 * 3 * 4 * 4).reshape(2, 3, 4, 4) / 10.0
tied[0, 1, 0, 0] = tied[0, 1].max()            # a second copy of channel (0, 1)'s maximum
report = check_vjp(lambda x: F.squeeze_forward(x, mode="max")[0],
                   lambda dz, x: F.squeeze_backward(dz, F.squeeze_forward(x, mode="max")[1]),
                   tied)
print(report)
kink_entries = report["x"].indices[report["x"].kink]
tie = {np.ravel_multi_index(index, tied.shape)
       for index in zip(*np.nonzero(tied == tied[0, 1].max()))}
assert report.passed and set(kink_entries.tolist()) == tie, kink_entries

# %% [markdown]
# ## Bug 1: a missing 1/(HW)
#
# The squeeze is a mean, so its backward must divide by `H·W`. Here is a
# backward that forgets to:


# %%
def squeeze(x):
    return F.squeeze_forward(x)[0]


def squeeze_backward_without_mean(dz, x):
    return np.broadcast_to(dz[:, :, None, None], x.shape).copy()      # BUG: no / (H·W)


feature_map = rng.standard_normal((2, 3, 4, 5))
report = check_vjp(squeeze, squeeze_backward_without_mean, feature_map)
print(report)
assert not report.passed

# %% [markdown]
# Reading it line by line:
#
# * `L = Σ y·dy with a random dy ...` — what was differentiated and how.
# * `directional tests` — one random direction over all entries of `x` at
#   once (a few evaluations, cheap). It fails by far more than its
#   tolerance: there *is* an error.
# * `per tensor` — because the directional test failed, a sample of entries
#   is compared one by one, each with its own tolerance; the line
#   `N of M entries examined: K beyond tolerance` counts them, and the table
#   lists the worst: analytical against numerical.
# * `hint:` — the ratio analytical / numerical is the same for every entry
#   compared: "a missing or extra factor, such as 1/(HW) of a spatial mean".
# * `backward invariants` — the backward is linear in `dy`, deterministic,
#   leaves its inputs alone: the bug is in the math, not the plumbing.
#
# The next cell takes the same numbers from the report object instead of
# its text: how many entries were compared and failed, and the ratio.

# %%
result = report["x"]
failed = np.abs(result.analytical - result.numerical) > result.tolerance
ratio = result.analytical / result.numerical
print(f"{result.indices.size} of {feature_map.size} entries compared, {failed.sum()} beyond "
      f"tolerance; analytical / numerical from {ratio.min():.6f} to {ratio.max():.6f}; "
      f"H·W = {feature_map.shape[2] * feature_map.shape[3]}")
assert failed.all() and np.allclose(ratio, feature_map.shape[2] * feature_map.shape[3])

# %% [markdown]
#
# ## Bug 2: a missing path through s
#
# Inside an SE block `x` reaches the output twice: directly (`y = s·x`) and
# through the gates (`s` depends on `x` via the squeeze). A backward that
# returns only the direct term `dy·s` is a classic mistake, because each
# *step* was derived correctly. The parameters' gradients are still right.

# %%
se = sn.nn.SEBlock(channels=8, reduction=2, dtype=np.float64, rng=0)
weights = [parameter.data for _, parameter in se.named_parameters()]
weight_names = [name for name, _ in se.named_parameters()]


def se_block(x, w1, b1, w2, b2):
    return F.se_block_forward(x, w1, b1, w2, b2)[0]


def se_block_backward_one_path(dy, x, w1, b1, w2, b2):
    _, cache = F.se_block_forward(x, w1, b1, w2, b2)
    s = cache["s"]
    ds = np.sum(dy * x, axis=(2, 3))                      # through the scale: right
    _, dw1, db1, dw2, db2 = F.excitation_backward(ds, cache["excitation"])
    dx = dy * s[:, :, None, None]                         # BUG: the path x -> z -> s is lost
    return dx, dw1, db1, dw2, db2


small_x = np.random.default_rng(5).standard_normal((2, 8, 3, 3))
# elementwise=True: compare every entry of every tensor, not a sample, for the analysis below
report = check_vjp(se_block, se_block_backward_one_path, (small_x, *weights),
                   names=["x"] + weight_names, elementwise=True)
print(report)
assert not report.passed
assert report["x"].indices.size == small_x.size
assert [name for name in weight_names if not report[name].passed] == []

# %% [markdown]
# This time the report has no ready-made hint (the error is not a constant
# factor), but it says a lot:
#
# * only `x` fails; `fc1.weight` ... `fc2.bias` are ok. So the excitation's
#   backward is right, and the mistake is in how `dx` is assembled.
# * the error is not random. The report keeps every compared entry
#   (`report["x"].analytical`, `.numerical`), so look at the difference:

# %%
result = report["x"]
difference = np.zeros(small_x.shape)
difference.reshape(-1)[result.indices] = result.numerical - result.analytical
spread_within_channel = np.ptp(difference, axis=(2, 3)).max()
print("numerical − analytical, image 0, channels 0-2 (3x3 each):\n",
      difference[0, :3].round(6))
typical = np.abs(difference).max(axis=(2, 3)).mean()
print(f"largest spread inside one channel: {spread_within_channel:.1e}, against a typical "
      f"missing amount of {typical:.1e} per channel")
assert spread_within_channel < 1e-6 * typical
w1, b1 = weights[0], weights[1]
active = (small_x.mean(axis=(2, 3)) @ w1.T + b1) > 0          # hidden units on, per image
print("hidden ReLU units on, per image:", active.sum(axis=1), "of", w1.shape[0])

# %% [markdown]
# Inside each channel the missing amount is the same at every position: a
# per-channel number spread evenly over `H·W` pixels. That is exactly the
# shape of the squeeze's backward, `dz[n,c] / (HW)`: the path through `z`
# is missing. Adding `+ dz / (HW)` fixes it (exercise 1).
#
# A trap to know about: had every hidden ReLU unit of an image been off
# (`W1 z + b1 < 0` everywhere), that image's `dz` would be 0, the missing
# term would vanish, and its entries would *pass*. The last line of the
# cell above counts the hidden units that are on in each image: both
# images have some, so the path carries gradient here. When testing, make
# sure the path you want to test carries gradient.
#
# ## Exercises
#
# Solutions: `tutorials/solutions/02_gradient_checking_solutions.py`.
#
# 1. Fix `se_block_backward_one_path` by adding the missing term and show
#    that `check_vjp` passes. Then compare your `dx` with
#    `F.se_block_backward`.
# 2. Redo the error-against-step experiment for a *complex-step* derivative,
#    `Im L(x + i h v) / h`, on the function `L(x) = Σ sigmoid(x)·dy` (use
#    complex NumPy arithmetic, not the library). Why does its error not grow
#    as h shrinks?
# 3. Plant a sign flip in the tanh gate's backward (`−ds·(1 − s²)`) and read
#    the hint the checker gives.
