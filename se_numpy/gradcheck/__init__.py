"""Finite-difference gradient checker for any function of NumPy arrays.

    from se_numpy.gradcheck import check_vjp, check_module

    report = check_vjp(f, vjp, (x, w), names=("x", "w"))  # f(x, w) -> y; vjp(dy, x, w) -> (dx, dw)
    report = check_module(module, x)        # dL/dx and every named parameter's gradient
    assert report.passed, report            # or raise_on_fail=True
    print(report)                           # what was compared, errors, kinks, hints

What is checked. The scalar L = Σ y·dy for a fixed random dy, whose gradient
is exactly what a backward pass returns for that dy. Everything runs in
float64 on copies (float32 inputs and modules are cast), in this order:

1. Backward invariants: linear in dy, dy = 0 gives 0, the same result twice,
   no argument modified in place, gradients with the inputs' shapes and
   dtypes (checked in the caller's dtype); for modules also that backward
   adds into ``p.grad``.
2. Directional test: <vjp(dy), v> against (L(x+hv) − L(x−hv)) / (2h) for a few
   random unit directions v over all inputs at once (cheap: 4 evaluations each).
3. Element-wise comparison of every entry (or a stratified random subset of
   ``max_entries`` per tensor that covers every channel), when
   ``elementwise=True`` or, with the default ``"auto"``, when the directional
   test fails or meets a kink.

Step and tolerance (details in ``differences.py`` and docs/gradcheck.md).
Central difference D(h) with h = eps^(1/3)·max(1, |x|) ≈ 6e-6 (balances the
truncation error ∝ h² against the rounding error ∝ eps/h), the points made
exactly representable. Richardson: D(2h) − D(h) ≈ 3 × the truncation error of
D(h). Per entry, tolerance = 4 × (|D(2h) − D(h)|/3 + rounding bound from the
output magnitudes) + a floor of 1e-10 relative (the analytical side's own
rounding). The tolerance applied is printed.

Kinks. ReLU at 0 or a tie in a max make D(h) meaningless. The one-sided
slopes at h and 2h reveal it (for a smooth function their gaps are in the
ratio 1 : 2; a kink breaks that, or makes the gap a sizeable part of the
slope); such entries are labelled kinks, listed in the report and not
compared. More than half kinks in a tensor fails it as inconclusive: use
inputs away from kinks (``se_numpy.testing.relu_safe_arrays``,
``float_arrays(distinct=True)``).

Hints. A failing tensor gets a diagnosis when its errors have a known
signature: a constant ratio (a missing factor such as 1/(HW)), ratio −1 (a
sign flip), analytical zero (a missing path), errors in some channels only,
gradients swapped between inputs, a missing transpose.
"""
import importlib

from .check import check_module, check_vjp
from .differences import STEP_SCALE, step_for
from .report import (DirectionResult, GradcheckReport, InvariantResult, MultiOutputReport,
                     TensorResult)

__all__ = ["check_vjp", "check_module", "GradcheckReport", "MultiOutputReport", "TensorResult",
           "DirectionResult", "InvariantResult", "step_for", "STEP_SCALE"]

_ADAPTERS = ("torch", "jax")


def __getattr__(name):
    """``se_numpy.gradcheck.torch`` / ``.jax``: imported on first use, never at import time."""
    if name in _ADAPTERS:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
