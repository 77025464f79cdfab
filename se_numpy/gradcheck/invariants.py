"""Cheap properties that every correct backward pass has, checked before any finite difference.

A vector-Jacobian product g(dy) = Jᵀ·dy is *linear* in dy, so
    g(a·dy1 + b·dy2) = a·g(dy1) + b·g(dy2)   and   g(0) = 0;
it is a function (the same dy gives the same result twice); it reads its
arguments without writing to them; and dL/dx has the shape and dtype of x.
A module's backward also *adds* into ``p.grad``, so two backward passes
without ``zero_grad`` give twice the gradient.

Each check costs one or two calls of the backward, and each failure points at
a specific mistake (a cached array modified in place, a dy squared by accident,
an upcast to float64) that a finite-difference comparison would show only as
"wrong numbers".
"""
import numpy as np

from .report import InvariantResult

# Linearity and repeatability are compared up to rounding: the two sides sum
# the same terms in different orders (a·g1 + b·g2 against g(a·dy1 + b·dy2)), so
# they may differ by some ulps of the largest *term*, which can be much larger
# than the result: softmax's y·(dy − Σ y·dy) with a saturated y cancels terms of
# size |dy| down to gradients of 1e-6. 1e-8 relative to the largest gradient
# leaves room for that, while a real non-linearity (a squared dy, a term
# without dy) changes the result at O(1).
LINEARITY_RTOL = 1e-8
# A backward that computes in float32 rounds each term to eps32 ≈ 1.2e-7: its
# sums agree to some 1e4 ulps of the largest term, far beyond 1e-8 but still
# far below the O(1) change of a real non-linearity.
LOW_PRECISION_ULPS = 1e4


def rounding_rtol(eps):
    """Relative agreement expected from a backward whose output dtype has this eps."""
    return min(1e-2, max(LINEARITY_RTOL, LOW_PRECISION_ULPS * eps))


def _largest(arrays):
    return max((float(np.abs(a).max(initial=0.0)) for a in arrays), default=0.0)


def _max_difference(first, second):
    return max((float(np.abs(a - b).max(initial=0.0)) for a, b in zip(first, second)),
               default=0.0)


def linearity(backward, dy, rng, names, rtol=LINEARITY_RTOL):
    """g(a·dy1 + b·dy2) = a·g(dy1) + b·g(dy2) for a second random dy2 and a, b = 0.7, −1.3."""
    other_dy = rng.standard_normal(dy.shape)
    a, b = 0.7, -1.3
    first, second = backward(dy), backward(other_dy)
    combined = backward(a * dy + b * other_dy)
    expected = [a * g1 + b * g2 for g1, g2 in zip(first, second)]
    difference = _max_difference(combined, expected)
    bound = rtol * (abs(a) * _largest(first) + abs(b) * _largest(second))
    worst = max(range(len(names)), key=lambda i: float(np.abs(combined[i] - expected[i])
                                                       .max(initial=0.0)))
    detail = (f"max |g(a·dy1 + b·dy2) − (a·g(dy1) + b·g(dy2))| = {difference:.2e} "
              f"(allowed {bound:.1e})")
    if difference > bound:
        detail += f", worst for {names[worst]}: the backward is not linear in dy"
    return InvariantResult("linear in the upstream gradient dy", difference <= bound, detail)


def zero_upstream(backward, dy, names):
    """g(0) = 0 exactly: a correct backward multiplies dy by something and adds."""
    gradients = backward(np.zeros_like(dy))
    nonzero = [name for name, g in zip(names, gradients) if np.any(g != 0)]
    detail = (f"nonzero gradient for {', '.join(nonzero)} from dy = 0: a term that does "
              "not depend on dy" if nonzero else "")
    return InvariantResult("zero upstream gradient gives zero", not nonzero, detail)


def repeatable(backward, dy, names, rtol=LINEARITY_RTOL):
    """The same dy twice gives the same gradients (no state carried between calls)."""
    first, second = backward(dy), backward(dy)
    difference = _max_difference(first, second)
    bound = rtol * _largest(first)
    detail = "" if difference <= bound else (
        f"two calls with the same dy differ by {difference:.2e}: state carried between "
        "calls (a gradient accumulated into a cache, a counter)")
    return InvariantResult("same result when called twice", difference <= bound, detail)


def unchanged(snapshots, after, names, who):
    """``who`` left every array as it found it (compared exactly, NaN equal to NaN)."""
    changed = [name for name, before, now in zip(names, snapshots, after)
               if not np.array_equal(before, now, equal_nan=True)]
    detail = (f"{who} changed {', '.join(changed)} in place: callers reuse these arrays"
              if changed else "")
    return InvariantResult(f"{who} leaves its arguments unchanged", not changed, detail)


def shapes_and_dtypes(names, inputs, gradients, who="vjp"):
    """Each gradient has its input's shape and dtype (run in the caller's dtype, not float64)."""
    wrong = []
    for name, array, gradient in zip(names, inputs, gradients):
        gradient = np.asarray(gradient)
        if gradient.shape != array.shape or gradient.dtype != array.dtype:
            wrong.append(f"{name}: expected {array.shape} {array.dtype}, got "
                         f"{gradient.shape} {gradient.dtype}")
    return InvariantResult(f"{who} gives gradients with the inputs' shapes and dtypes", not wrong,
                           "; ".join(wrong))


def accumulation(first, second, names):
    """Backward twice without zero_grad adds twice: p.grad after the second = 2 × after the first."""
    expected = [2.0 * g for g in first]
    bound = LINEARITY_RTOL * _largest(expected)
    wrong = [name for name, s, e in zip(names, second, expected)
             if float(np.abs(s - e).max(initial=0.0)) > bound]
    detail = (f"after two backward passes p.grad is not twice the first for "
              f"{', '.join(wrong)}: backward must add into p.grad (p.accumulate), not assign"
              if wrong else "")
    return InvariantResult("backward adds into p.grad (twice gives 2×)", not wrong, detail)
