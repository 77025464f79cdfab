"""Recognise the usual signatures of a wrong backward pass in the compared entries.

A wrong gradient is rarely random. The common mistakes leave patterns:

* a constant ratio analytical / numerical: a missing or extra factor (1/(HW)
  of a mean, 1/N of a batch mean, a 2 from d(x²)/dx); ratio −1 is a sign flip;
* analytical exactly 0 where the numerical gradient is not: a path whose
  contribution is never added (the skip connection, the gate branch);
* errors confined to some indices along an axis (some channels, some
  samples): an indexing mistake or a per-channel term;
* the numerical gradient of *another* input, or the transpose: gradients
  returned in the wrong order, W where Wᵀ belongs.
"""
from fractions import Fraction

import numpy as np

_NO_FACTOR = ("analytical ≈ numerical to within 0.1 %, yet beyond tolerance: not a missing "
              "factor; a lower precision somewhere (a float32 step), or an error in a small term")
MIN_GOOD_SLICES = 2      # a confined-axis hint needs at least two agreeing slices
RATIO_SPREAD = 1e-3      # ratios within 0.1% of each other count as "constant"
SIGNIFICANT = 1e-3       # entries with |numerical| below 0.1% of the largest carry no ratio
LARGEST_DENOMINATOR = 4096
LARGEST_SQUARE_ROOT = 8


def _constant_ratio(analytical, numerical):
    """The common value of analytical/numerical if there is one, else None."""
    significant = np.abs(numerical) > SIGNIFICANT * np.abs(numerical).max(initial=0.0)
    if np.count_nonzero(significant) < 1:
        return None
    ratios = analytical[significant] / numerical[significant]
    middle = float(np.median(ratios))
    if middle == 0.0 or np.max(np.abs(ratios - middle)) > RATIO_SPREAD * abs(middle):
        return None
    return middle


def _square_root_of_integer(ratio):
    """(n, larger) when |ratio| (larger) or 1/|ratio| is √n for an integer n ≥ 2.

    n that are not squares (√2, √8) are recognised up to LARGEST_DENOMINATOR;
    squares only up to LARGEST_SQUARE_ROOT² (ratio 2 may be 1/√4, the 1/√d of
    attention with d = 4; ratio 64 is unlikely to be 1/√4096).
    """
    for value in (abs(ratio), 1.0 / abs(ratio)):
        square = value * value
        n = round(square)
        if not (2 <= n <= LARGEST_DENOMINATOR and abs(square - n) < 2 * RATIO_SPREAD * square):
            continue
        root = round(np.sqrt(n))
        if root * root != n or root <= LARGEST_SQUARE_ROOT:
            return n, value == abs(ratio)
    return None


def describe_ratio(ratio):
    """Text for a constant ratio: -1 is a sign flip, 1/k or k a missing or extra factor.

    A ratio within 0.1 % of 1 is no factor at all (None: the caller says so).
    """
    if abs(ratio - 1.0) < RATIO_SPREAD:
        return None
    if abs(ratio + 1.0) < RATIO_SPREAD:
        return ("analytical ≈ −numerical: a sign flip (a minus sign missing or extra, or a "
                "subtraction in the wrong order)")
    fraction = Fraction(ratio).limit_denominator(LARGEST_DENOMINATOR)
    near_fraction = (abs(float(fraction) - ratio) < RATIO_SPREAD * abs(ratio)
                     and abs(fraction.numerator) == 1 and fraction.denominator > 1)
    if near_fraction:      # 0.01562 is easier to recognise as 1/64 = 1/(8·8)
        text = f"analytical ≈ numerical × {float(fraction):.4g} = {fraction}"
    else:
        text = f"analytical ≈ numerical × {ratio:.4g}"
    if abs(abs(ratio) - 2.0) < 2 * RATIO_SPREAD or abs(abs(ratio) - 0.5) < RATIO_SPREAD:
        text += (": a factor 2 (a path counted twice, or a missing 1/2 such as the one "
                 "in d(x²/2)/dx)")
    else:
        text += (": a missing or extra factor, such as 1/(HW) of a spatial mean or 1/N "
                 "of a batch mean")
    root = _square_root_of_integer(ratio)
    if root is not None:
        n, larger = root
        text += (f"; it is also {'' if larger else '1/'}√{n}: a missing or extra 1/√{n} "
                 f"(attention's 1/√d with d = {n}, a standard deviation, a norm)")
    if ratio < 0:
        text += ", and a sign flip"
    return text


def _confined_axis(result, failed):
    """(axis, bad indices, good indices) when failures sit at some indices of an axis only."""
    if len(result.shape) < 2:
        return None
    smooth = ~result.kink
    coordinates = np.array(np.unravel_index(result.indices, result.shape))
    for axis, axis_name in ((1, "channels in NCHW"), (0, "samples in NCHW")):
        along = coordinates[axis][smooth]
        failing = failed[smooth]
        bad = np.unique(along[failing])
        good = np.unique(along[~failing])
        if (bad.size and good.size >= MIN_GOOD_SLICES and not np.intersect1d(bad, good).size
                and _errors_uniform_in_slices(result, coordinates[axis], failed, bad)):
            return axis, axis_name, bad, good
    return None


def _errors_uniform_in_slices(result, along, failed, bad):
    """Every compared entry of a bad slice fails: the slice itself is wrong, not some entries."""
    in_bad = np.isin(along, bad) & ~result.kink
    return bool(np.all(failed[in_bad]))


def _list(indices, limit=8):
    shown = ", ".join(str(int(i)) for i in indices[:limit])
    return shown + (", ..." if len(indices) > limit else "")


def tensor_hint(result):
    """A hint for one failing TensorResult, or None when no pattern is recognised."""
    if result.passed or not result.compared:
        return None
    smooth = ~result.kink
    analytical, numerical = result.analytical[smooth], result.numerical[smooth]
    failed = result.failed
    if result.gradient_norm == 0.0 and np.any(numerical != 0):
        return ("the analytical gradient is zero everywhere but the numerical one is not: "
                f"the gradient of {result.name} is never computed or never returned")
    if not failed.any():
        return None                  # e.g. mostly kinks: nothing wrong to describe
    if failed[smooth].all():
        ratio = _constant_ratio(analytical, numerical)
        if ratio is not None:
            return describe_ratio(ratio) or _NO_FACTOR
    analytical_failed = result.analytical[failed]
    numerical_failed = result.numerical[failed]
    zero_where_not = (analytical_failed == 0) & (numerical_failed != 0)
    if failed.sum() > 0 and zero_where_not.sum() * 2 >= failed.sum():
        return (f"analytical is 0 where numerical is not at {int(zero_where_not.sum())} of "
                f"{int(failed.sum())} failing entries: a missing path (a term of the backward "
                "that is never added, e.g. the gradient through the skip connection or "
                "through the gate)")
    confined = _confined_axis(result, failed)
    if confined is not None:
        axis, axis_name, bad, good = confined
        text = (f"errors only at indices {_list(bad)} of axis {axis} ({axis_name}); indices "
                f"{_list(good)} agree: the gradient is right in some {axis_name.split()[0]} "
                "only (an indexing mistake, a term computed for one slice, or a term that "
                "happens to be zero in the others at this input)")
        ratio = _constant_ratio(analytical_failed, numerical_failed)
        if ratio is not None:
            text += f"; there, {describe_ratio(ratio) or _NO_FACTOR}"
        return text
    ratio = _constant_ratio(analytical_failed, numerical_failed)
    if ratio is not None:
        return f"at the failing entries {describe_ratio(ratio) or _NO_FACTOR}"
    return None


def _close(candidate, reference):
    scale = np.abs(reference).max(initial=0.0)
    return scale > 0 and np.abs(candidate - reference).max() <= 1e-6 * scale


def _full_gradient(result, which):
    values = np.full(result.size, np.nan)
    values[result.indices] = getattr(result, which)
    return values.reshape(result.shape)


def cross_tensor_hints(results):
    """{name: hint} for gradients swapped between inputs or transposed (fully compared tensors)."""
    hints = {}
    complete = [r for r in results if r.problem is None and r.indices.size == r.size > 0]
    for result in complete:
        if result.passed:
            continue
        analytical = _full_gradient(result, "analytical")
        for other in complete:
            if other is not result and other.shape == result.shape and _close(
                    analytical, _full_gradient(other, "numerical")):
                hints[result.name] = (f"the gradient returned for {result.name} is the "
                                      f"numerical gradient of {other.name}: gradients "
                                      "returned in the wrong order")
        if (result.name not in hints and len(result.shape) == 2
                and result.shape[0] == result.shape[1]
                and _close(analytical, _full_gradient(result, "numerical").T)):
            hints[result.name] = ("analytical ≈ numerical transposed: a missing or extra "
                                  "transpose (W where Wᵀ belongs)")
    return hints
