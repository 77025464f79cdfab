# %% [markdown]
# # Solution to tutorial 8: from the checker's report to the line
#
# We load the tutorial's unit, inputs and `dy` (running the tutorial file
# quietly), then reason only from what `check()` reports. Every step prints
# what it found; the conclusions are tested, not asserted from memory.

# %%
import contextlib
import difflib
import inspect
import io
import os
import runpy
from pathlib import Path

import numpy as np

NAME = "08_find_the_bug_solutions"
FIGURES = []
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
with contextlib.redirect_stdout(io.StringIO()):
    tutorial = runpy.run_path(str(HERE.parent / "08_find_the_bug.py"), run_name="tutorial_08")
unit_forward, unit_backward, check = (tutorial[name] for name in
                                      ("unit_forward", "unit_backward", "check"))
inputs, dy = tutorial["inputs"], tutorial["dy"]
report = check()

# %% [markdown]
# ## 1. Which gradients are wrong, and what the right ones prove
#
# Read the directional tests: one line per tensor.

# %%
wrong = [d.name for d in report.directions if not d.passed]
right = [d.name for d in report.directions if d.passed]
print(f"wrong: {wrong}; right: {right}")

# %% [markdown]
# Walk the backward pass from the loss downwards and mark what each right
# gradient depends on:
#
# - `dW2 = dgᵀ h` and `db2 = Σ dg` are right, and `h` comes from the forward
#   pass: so **`dg` is right**, hence `ds` (the sigmoid line only multiplies
#   by s(1 − s)), hence `dp` as far as `ds = Σ dp ⊙ r` sees it.
# - `dW1 = daᵀ z` and `db1 = Σ da` are right: **`da` is right**, hence `dz`.
# - `dW = Σ dr ⊗ x` is right: **`dr` is right** (both its terms, the direct
#   one through the scale and the one through the squeeze).
#
# `dx` is built from two things only: `Wᵀ dr`, whose parts are both right,
# and `d_shortcut`. So if only `x` fails, the identity path is the suspect.

# %%
if wrong == ["x"]:
    print("Only dx is wrong. Every parameter gradient is right, so dg, da, dz and dr are "
          "right; dx = W^T dr + d_shortcut, and W^T dr is built from right parts: the "
          "suspect is d_shortcut, the gradient through the identity path.")
else:
    print(f"The failing tensors are {wrong}, not only x: the reasoning below does not apply.")

# %% [markdown]
# ## 2. Which entries, and what they share
#
# The checker compared every entry of `dx` one by one. Look at the forward
# pass's `p = v + x` (the input of the unit's ReLU) at the failing and at the
# passing entries, and at the size of the error.

# %%
x_result = report.tensors["x"]
positions = np.unravel_index(x_result.indices, x_result.shape)
failed = x_result.failed
p = unit_forward(*inputs)[1][9]
p_at = p[positions]
difference = x_result.analytical - x_result.numerical
print(f"{failed.sum()} of {failed.size} compared entries fail")
print(f"at the failing entries p = v + x lies in [{p_at[failed].min():+.2f}, "
      f"{p_at[failed].max():+.2f}]; at the passing ones in [{p_at[~failed].min():+.2f}, "
      f"{p_at[~failed].max():+.2f}]")
matches_dy = np.allclose(difference[failed], dy[positions][failed], rtol=1e-6, atol=1e-8)
print(f"analytical - numerical equals dy at every failing entry: {matches_dy}")
if (p_at[failed] < 0).all() and (p_at[~failed] > 0).all() and matches_dy:
    print("Every failing entry is one where the unit's ReLU is off (p < 0), every passing "
          "one where it is on, and the excess is exactly dy: the backward passes dy through "
          "the identity path where the ReLU blocks it.")

# %% [markdown]
# ## 3. The line, and the fix
#
# The identity path joins *before* the unit's ReLU, `y = ReLU(v + x)`, so
# the gradient it carries back is the masked `dp = dy ⊙ [p > 0]`, not `dy`.
# The line is
#
#     d_shortcut = dy                              # the identity path
#
# and the fix is `d_shortcut = dp`. (The mistake is the common one of
# "an identity shortcut passes the gradient through unchanged": it does,
# but what reaches it has gone through the ReLU first.)

# %%
source = inspect.getsource(unit_backward)
fixed_source = source.replace("d_shortcut = dy ", "d_shortcut = dp ")
changed = [line for line in difflib.unified_diff(source.splitlines(), fixed_source.splitlines(),
                                                 lineterm="", n=0)
           if line[:1] in "+-" and line[:3] not in ("+++", "---")]
print("\n".join(changed))
namespace = dict(tutorial)
exec(fixed_source.replace("def unit_backward", "def fixed_backward"), namespace)
fixed_report = check(namespace["fixed_backward"])
print(f"with d_shortcut = dp the check {'passes' if fixed_report.passed else 'FAILS'}")
print(fixed_report)
