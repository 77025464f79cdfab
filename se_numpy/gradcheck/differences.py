"""Central differences, their error estimate, and kink detection.

Everything here works on the outputs y of the checked function at the five
points of a stencil x − 2h, x − h, x, x + h, x + 2h along one direction (one
entry of one input, or a random direction over all inputs). The scalar is
L = Σ_k y_k·dy_k, but differences are taken on y *before* summing:

    L(x+h) − L(x−h) = Σ_k (y_k(x+h) − y_k(x−h))·dy_k

Outputs that the perturbation does not touch then cancel exactly instead of
leaving rounding noise of size eps·|L| behind, which matters when y is large
and only a few of its entries depend on the perturbed one.

Step (why h = eps^(1/3)·max(1, |x|)). The central difference
D(h) = (L(x+h) − L(x−h)) / (2h) has truncation error T(h) = h²·L'''/6 + O(h⁴)
and rounding error R(h) ≈ δ/h, where δ is the error of one evaluation of L. The
sum T + R is smallest where h³ ~ δ/L''', i.e. h ~ eps^(1/3) ≈ 6e-6 for
relative accuracy eps in L and a third derivative of order one; the factor
max(1, |x|) keeps the step relative for large entries. The points are
represented exactly: the difference quotient divides by the distance between
the two points actually evaluated, (x+h) − (x−h) in floating point, not by 2h.

Error estimate (Richardson). D(2h) has four times the truncation error of D(h)
(T ∝ h²), so D(2h) − D(h) ≈ 3·T(h) and T(h) ≈ |D(2h) − D(h)| / 3. The rounding
error is bounded from the outputs: each y_k is taken to be correct to
ROUNDING_ULPS units in the last place, so
R ≤ ROUNDING_ULPS·eps·Σ_k |dy_k|·(|y_k(x+h)| + |y_k(x−h)|) / (2h) over the outputs
that depend on the perturbed entry. Which ones do is seen from one more
evaluation, at a probe point x + PROBE_SCALE·max(1, |x|): an output that does
not move there (a 1%-step) moves by far less than an ulp under the step h,
while one that moves must be counted, even when its change under h is too
small to show (a softmax normaliser barely touched by a tiny logit). Outputs
that do not depend on the entry (most of them, for an element-wise f) add no
rounding, so the bound does not grow with the size of y. The tolerance of an
entry is

    TRUNCATION_SAFETY × (T(h) + R(h) + R(2h)) + floor,
    floor = RELATIVE_FLOOR·max(|analytical|, |numerical|) + SCALE_FLOOR·(largest |gradient| of the tensor)

(the floor covers the rounding of the analytical gradient itself, e.g. a sum
that cancels to nearly zero).

Kinks. At a non-differentiable point (ReLU at 0, a max with a tie) inside the
stencil, D(h) is not a derivative at all. The one-sided slopes
F+(h) = (L(x+h) − L(x))/h and F−(h) = (L(x) − L(x−h))/h tell: for a smooth L their
gap is J(h) = |F+ − F−| = h·|L''| + O(h³), so J(2h) ≈ 2·J(h). A kink with a jump
of the derivative Δ at distance t from x gives J(h) = |Δ|·(1 − t/h)⁺ and
J(2h) = |Δ|·(1 − t/(2h))⁺, which break that ratio (J(2h) = J(h) for t = 0, J(h) = 0
for h < t < 2h). An entry is labelled a kink when
  (a) J(2h) deviates from 2·J(h) by more than KINK_RATIO_SLACK·J(2h) plus the
      rounding noise of the second differences (this catches kinks at
      t < h/2 and at 3h/4 < t < 2h), or
  (b) the Richardson truncation estimate |D(2h) − D(h)|/3 exceeds
      KINK_SLOPE_FRACTION of the one-sided slopes: a kink at t < h gives
      Δ·t/(12h), which catches h/8 < t < h, including where the ratio in (a) looks
      smooth (it is exactly 1 : 2 at t = 2h/3); a smooth L would need
      h²·|L'''|/2 > 0.01·|L'|, i.e. |L'''| of order 10⁸·|L'|, and the estimate
      must exceed NEGLIGIBLE × the tensor's largest gradient (at a stationary
      point, x³ at 0, slope and estimate are both tiny), or
  (c) the entry fails its tolerance and J(2h) exceeds KINK_SLOPE_FRACTION of
      the one-sided slopes (a smooth L would need |L''| of order 400·|L'|).
Without (b) a kink at t ≈ 2h/3 would *pass*, with the large tolerance that
its Richardson estimate asks for; with it, the entry is labelled instead.
"""
from dataclasses import dataclass

import numpy as np

EPS = np.finfo(np.float64).eps
STEP_SCALE = EPS ** (1.0 / 3.0)     # ≈ 6.06e-6, the optimal order for central differences
ROUNDING_ULPS = 16                  # how far each y_k may be off: f's own rounding
TRUNCATION_SAFETY = 4               # "a few times" the estimated error
RELATIVE_FLOOR = 1e-10              # rounding of the analytical side, relative
SCALE_FLOOR = 1e-12                 # ... and relative to the tensor's largest gradient
KINK_RATIO_SLACK = 0.25             # J(2h) may differ from 2·J(h) by 25% before it is a kink
KINK_SLOPE_FRACTION = 0.01          # one-sided slopes differing by 1% of the slope at h ≈ 6e-6
NEGLIGIBLE = 1e-6                   # a truncation below 1e-6 of the largest gradient hides nothing
PROBE_SCALE = 1e-2                  # relative step of the probe that finds the dependent outputs


def step_for(value, scale=None):
    """h = eps^(1/3)·max(1, |value|), made exactly representable by h = (x + h) − x."""
    magnitude = abs(value) if scale is None else scale
    step = STEP_SCALE * max(1.0, magnitude)
    return (value + step) - value


@dataclass
class StencilEstimate:
    """What the five-point stencil says about the derivative along one direction.

    ``numerical`` is D(h); ``coarse`` is D(2h); ``rounding`` bounds the rounding
    error of D(h) and D(2h) together; ``jump_h``/``jump_2h`` are the gaps
    |F+ − F−| between one-sided slopes at h and 2h; ``slope_scale`` the largest
    one-sided slope; ``jump_noise`` the rounding bound of the jumps.
    """
    numerical: float
    coarse: float
    rounding: float
    jump_h: float
    jump_2h: float
    slope_scale: float
    jump_noise: float

    def truncation(self, analytical_shift=0.0):
        """|D(2h) − D(h)| / 3, the Richardson estimate of D(h)'s truncation error.

        ``analytical_shift`` is how much the analytical value itself differs
        between the 2h and the h pair of points (nonzero only for directions
        whose points could not be represented exactly).
        """
        return abs(self.coarse - self.numerical - analytical_shift) / 3.0

    def smooth_curvature_mismatch(self):
        """(a): the two jumps are not in the 1 : 2 ratio that a smooth L gives."""
        return (self.jump_2h > self.jump_noise
                and abs(self.jump_2h - 2.0 * self.jump_h)
                > KINK_RATIO_SLACK * self.jump_2h + self.jump_noise)

    def large_truncation(self, tensor_scale):
        """(b): the Richardson estimate is a sizeable part of the slope: not a smooth L.

        At a stationary point of a smooth L (x³ at 0) slope and truncation are
        both tiny; the NEGLIGIBLE floor keeps such entries compared.
        """
        return (self.truncation() > KINK_SLOPE_FRACTION * self.slope_scale + self.rounding
                and self.truncation() > NEGLIGIBLE * tensor_scale)

    def large_slope_jump(self):
        """(c): the one-sided slopes differ by more than a smooth L can at this step."""
        return self.jump_2h > KINK_SLOPE_FRACTION * self.slope_scale + self.jump_noise


def _weighted_sum(difference, dy):
    return float(np.sum(difference * dy))


def _rounding_bound(dy, changed, *outputs):
    """ROUNDING_ULPS·eps·Σ_k |dy_k|·Σ_outputs |y_k|, over the dependent outputs."""
    magnitude = sum(np.abs(y) for y in outputs)
    return ROUNDING_ULPS * EPS * float(np.sum(np.abs(dy) * magnitude * changed))


def dependent_outputs(y_center, y_probe, outputs):
    """Mask of the outputs that depend on the perturbed entry (see the module docstring).

    ``y_probe`` is y at the probe point, or None when it could not be evaluated
    (then every output counts, the safe side).
    """
    if y_probe is None or y_probe.shape != y_center.shape or not np.all(np.isfinite(y_probe)):
        return np.ones(y_center.shape, dtype=bool)
    moved = y_probe != y_center
    for y in outputs.values():
        moved |= y != y_center
    return moved


def stencil_estimate(outputs, y_center, dy, span_h, span_2h, dependent):
    """Difference quotients from outputs[m] = y(x + m·h) for m in (1, −1, 2, −2).

    ``span_h`` = (x+h) − (x−h) and ``span_2h`` = (x+2h) − (x−2h) are the actual
    distances between the evaluated points; ``dependent`` masks the outputs
    that count in the rounding bounds (``dependent_outputs``).
    """
    difference_h = outputs[1] - outputs[-1]
    difference_2h = outputs[2] - outputs[-2]
    changed_h = changed_2h = dependent
    numerical = _weighted_sum(difference_h, dy) / span_h
    coarse = _weighted_sum(difference_2h, dy) / span_2h
    rounding = (_rounding_bound(dy, changed_h, outputs[1], outputs[-1]) / span_h
                + _rounding_bound(dy, changed_2h, outputs[2], outputs[-2]) / span_2h)

    half_h, half_2h = span_h / 2.0, span_2h / 2.0
    # one-sided differences, each taken on y before summing (see module docstring)
    forward_h = _weighted_sum(outputs[1] - y_center, dy) / half_h
    backward_h = _weighted_sum(y_center - outputs[-1], dy) / half_h
    forward_2h = _weighted_sum(outputs[2] - y_center, dy) / half_2h
    backward_2h = _weighted_sum(y_center - outputs[-2], dy) / half_2h
    jump_noise = TRUNCATION_SAFETY * (
        _rounding_bound(dy, changed_h, outputs[1], y_center, y_center, outputs[-1]) / half_h
        + _rounding_bound(dy, changed_2h, outputs[2], y_center, y_center, outputs[-2]) / half_2h)
    return StencilEstimate(
        numerical=numerical, coarse=coarse, rounding=rounding,
        jump_h=abs(forward_h - backward_h), jump_2h=abs(forward_2h - backward_2h),
        slope_scale=max(abs(forward_h), abs(backward_h), abs(forward_2h), abs(backward_2h)),
        jump_noise=jump_noise)


def estimated_tolerance(estimate, analytical, tensor_scale, analytical_shift=0.0,
                        analytical_magnitude=None):
    """TRUNCATION_SAFETY·(T + R) + floor, the tolerance justified in the module docstring.

    ``analytical_magnitude`` (default |analytical|) is the size of the terms the
    analytical value was summed from, for the floor.
    """
    if analytical_magnitude is None:
        analytical_magnitude = abs(analytical)
    floor = (RELATIVE_FLOOR * max(analytical_magnitude, abs(estimate.numerical))
             + SCALE_FLOOR * tensor_scale)
    return (TRUNCATION_SAFETY * (estimate.truncation(analytical_shift) + estimate.rounding)
            + floor)


def user_tolerance(numerical, rtol, atol):
    """atol + rtol·|numerical|, used instead of the estimate when the caller gives either."""
    return (atol or 0.0) + (rtol or 0.0) * abs(numerical)


def is_kink(estimate, fails_tolerance, tensor_scale):
    """Whether the stencil straddles a non-differentiable point (rules (a) to (c) above)."""
    return (estimate.smooth_curvature_mismatch() or estimate.large_truncation(tensor_scale)
            or (fails_tolerance and estimate.large_slope_jump()))
