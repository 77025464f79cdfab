"""Finite-difference gradient checker for any function of NumPy arrays.

    from se_numpy.gradcheck import check_vjp, check_module

    report = check_vjp(f, vjp, (x, w), names=("x", "w"))  # f(x, w) -> y; vjp(dy, x, w) -> (dx, dw)
    report = check_module(module, x)        # dL/dx and every named parameter's gradient
    assert report.passed, report            # or raise_on_fail=True
    print(report)                           # what was compared, errors, kinks, hints

What is checked. The scalar L = Σ y·dy for a fixed random dy, whose gradient
is exactly what a backward pass returns for that dy. Everything runs on
float64 copies (float32 inputs and modules are cast); the precision of the
check is that of f's output dtype (a float32 function gets float32 steps and
tolerances). In this order:

1. Backward invariants: linear in dy, dy = 0 gives 0, the same result twice,
   no argument modified in place, gradients with the inputs' shapes and
   dtypes (checked in the caller's dtype); for modules also that backward
   adds into ``p.grad``.
2. Per tensor, a directional test on all its entries at once, weighted so
   that every entry is seen at its own scale, with its *resolution* (the
   smallest relative error of one entry it is sure to catch); groups are
   split until the resolution meets a target (``groups.py``).
3. When a tensor's test fails or meets a kink: a sample of entries compared
   one by one, then, if the sample misses the error, halving down to the bad
   entries (group testing); ``elementwise=True`` compares every entry.

Step and tolerance (``differences.py``, docs/gradcheck.md). Every test walks a
ladder of steps t, t/4, t/16, ... from eps^(1/3)·max(1, max|x|) and compares at
the pair of rungs whose difference (the error estimate) is smallest and
credible, so the step follows the function's own length scale and precision;
``step=`` sets it. Tolerance = 4 × (error estimate + rounding bound) + the
analytical side's rounding floor; each report prints steps, tolerances,
resolutions and the number of evaluations.

Kinks. ReLU at 0 or a tie in a max make a central difference meaningless. A
failing comparison is labelled a kink only where the one-sided slopes keep
disagreeing as the step shrinks and the analytical value lies between them;
kinks are listed, not compared. More than half kinks in a tensor fails it as
inconclusive: use inputs away from kinks (``se_numpy.testing``).

Hints. A failing tensor gets a diagnosis when its errors have a known
signature: a constant ratio (a missing factor such as 1/(HW) or 1/√d), ratio
−1 (a sign flip), analytical zero (a missing path), errors in some channels
only, gradients swapped between inputs, a missing transpose. Tensors whose
gradient is exactly 0 at the input are reported as not tested.

Frameworks. ``se_numpy.gradcheck.torch.check(fn, *tensors)`` and
``se_numpy.gradcheck.jax.check(fn, *arrays)`` run the same check on a PyTorch
or JAX function; each imports its framework only when called.
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
