"""Central differences on a ladder of steps: the step chosen from the function, its error, kinks.

Everything here works along one *line* through the inputs, x + t·v: one
entry of one input (v a unit vector) or a group of entries (a random v over
them). The scalar is L = Σ_k y_k·dy_k, and differences are taken on y before
summing,

    L(x+tv) − L(x−tv) = Σ_k (y_k(x+tv) − y_k(x−tv))·dy_k,

so outputs the perturbation does not reach cancel exactly instead of leaving
rounding noise of size eps·|L| behind.

What is compared on a rung t is the *discrepancy*

    d(t) = D(t) − A(t),   D(t) = (L(x+tv) − L(x−tv)) / (2t),
                          A(t) = <g, (x+tv) − (x−tv)> / (2t),

the central difference against the analytical gradient g along the
displacement actually evaluated (the points are rounded to floating point, and
A uses the rounded ones, so that rounding is not mistaken for an error).

The step (why a ladder). D(t) has a truncation error T(t) = t²·L'''/6 + O(t⁴)
and a rounding error R(t) ≈ δ/t, δ the error of one evaluation of L. Their sum
is smallest near t³ ~ δ/L''' — which depends on the function's own length
scale (tanh(x − 10⁶) near x = 10⁶ has length scale 1, not |x|; tanh(10⁶·x) has
10⁻⁶) and on its precision (δ ~ eps of the dtype f computes in: 1e-16 or
1e-7). So no fixed rule such as t = eps^(1/3)·max(1, |x|) fits every
function. The ladder starts at that rule, ``top`` (with the eps of f's output
dtype), and evaluates rungs t_k = top / RATIO^k. Between neighbouring rungs

    e_k = |d(t_k) − d(t_{k+1})|

is about the truncation error of d(t_k) where truncation dominates (T falls
by RATIO² per rung) and about the rounding error of d(t_{k+1}) where rounding
dominates (R grows by RATIO per rung): either way an upper estimate of the
error of d(t_{k+1}). A wrong gradient shifts d by the same amount on every
rung, so e_k does not grow with the bug. The ladder walks down while e_k
falls and up (at most ``MAX_ASCENT`` rungs) while the top rung is the best
and its error exceeds ASCENT_NEED·eps^(2/3) of the derivative (rounding beyond
the output dtype's, as in a function that computes in float32 and returns
float64);
the pair with the smallest e_k + rounding bound wins, and the comparison is
made at its smaller step:

    |d(t_{k+1})| ≤ tolerance = SAFETY·(e + R_{k+1}) + floor,
    e = max(e_k, e_{k+1}/RATIO, e_{k−1}/RATIO²)

(the neighbouring pairs, scaled to rung k+1, keep one pair that agrees by
chance from setting a tolerance below the noise),
with R_{k+1} the rounding bound from the output magnitudes (each output taken
to be correct to ROUNDING_ULPS units of its dtype) over the outputs that
depend on the line. Which ones do is seen from one more evaluation, at a probe
point t = PROBE_SCALE·max(1, |x|): an output that does not move there moves by
far less than an ulp on the ladder, while one that moves must be counted even
when its change on the ladder is too small to show (a softmax normaliser
barely touched by a tiny logit). And floor = relative_floor(eps of the gradient)·Σ_j |g_j·Δx_j|/(2t),
the analytical side's own rounding. A caller's ``step`` replaces the ladder
by the two rungs 2h and h.

Kinks (ReLU at 0, a tie in a max). The one-sided slopes F+(t) = (L(x+tv) −
L(x))/t and F−(t) = (L(x) − L(x−tv))/t differ by J(t) = t·|L''| + O(t³) for a
smooth L: the gap shrinks with the step. A kink at distance s from x gives a
gap of about |Δ|·(1 − s/t) for t > s, which does *not* shrink, and no gap once
t < s (the ladder then steps past it). A comparison that fails is labelled a
kink only when the one-sided evidence explains it:

  * the gap on the smallest rung evaluated is more than KINK_FRACTION of the
    slopes (plus its rounding noise) and did not shrink with the step (it is
    more than KINK_SHRINK of the gap on the rung above: a smooth L gives
    1/RATIO), and
  * the analytical value lies between the two one-sided slopes, within the
    tolerance: a backward that returns one of the one-sided derivatives
    (ReLU's 0 or 1 at 0, the first arg-max of a tie) is right, anything else
    is a bug that a kink does not excuse.

A smooth stationary point (½x² at x = 10⁻⁴) has a gap t that shrinks with t:
it is never a kink, and a backward that zeroes it fails.
"""
from dataclasses import dataclass, field

import numpy as np

EPS = np.finfo(np.float64).eps
STEP_SCALE = EPS ** (1.0 / 3.0)     # ≈ 6.06e-6, the top rung for float64 outputs
RATIO = 4.0                         # rungs t, t/4, t/16, ...: truncation falls 16× per rung
MAX_RUNGS = 16                      # 4^15 ≈ 1e9: from max(1,|x|)·6e-6 down to length scales 1e-15
MAX_ASCENT = 4                      # up to 256 × the top rung when rounding dominates
CREDIBLE = 2 * RATIO                # the next finer pair may err 8× more (rounding: RATIO×)
PATIENCE = 1                        # pairs walked past the best one before stopping
FIRST_PATIENCE = 2                  # ... on a tensor's first ladder, from the generic top
ROUNDING_LIKE = 100                 # an error within 100× the rounding bound is rounding
ASCENT_NEED = 10                    # ... and the top pair errs by more than 10·eps^(2/3)
ROUNDING_ULPS = 16                  # how far each y_k may be off: f's own rounding
SAFETY = 4                          # "a few times" the estimated error
SCALE_FLOOR = 1e-12                 # floor relative to the tensor's largest gradient
KINK_FRACTION = 0.01                # one-sided slopes differing by 1% are not rounding
PROBE_SCALE = 1e-2                  # relative step of the probe that finds the dependent outputs
KINK_SHRINK = 0.5                   # a smooth gap shrinks to 1/RATIO per rung; a kink's does not


def precision_of(dtype):
    """eps of a floating dtype (float64 for anything that is not a lower-precision float)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and np.finfo(dtype).eps > EPS:
        return float(np.finfo(dtype).eps)
    return float(EPS)


def relative_floor(eps):
    """Relative rounding allowed for the analytical gradient: 1e-10 in float64, 1e3·eps below."""
    return max(1e-10, 1e3 * eps)


def top_step(scale, eps=EPS):
    """The first rung: eps^(1/3)·max(1, scale) (balances T ∝ t² against R ∝ eps/t)."""
    return eps ** (1.0 / 3.0) * max(1.0, float(scale))


def step_for(value, scale=None):
    """h = eps^(1/3)·max(1, |value|), made exactly representable by h = (x + h) − x."""
    magnitude = abs(value) if scale is None else scale
    step = STEP_SCALE * max(1.0, magnitude)
    return (value + step) - value


@dataclass
class Rung:
    """What one step t says: D(t), A(t), the one-sided slopes, the rounding bounds."""
    step: float
    numerical: float
    analytical: float
    magnitude: float          # Σ_j |g_j·Δx_j| / (2t), for the floor
    forward: float
    backward: float
    rounding: float
    jump_noise: float

    @property
    def discrepancy(self):
        return self.numerical - self.analytical

    @property
    def jump(self):
        return abs(self.forward - self.backward)

    @property
    def slope_scale(self):
        return max(abs(self.forward), abs(self.backward))


@dataclass
class LineEstimate:
    """The outcome along one line: the rung compared, its tolerance and the kink verdict."""
    rung: Rung
    error_estimate: float
    tolerance: float
    kink: bool
    rungs: list = field(default_factory=list)

    @property
    def numerical(self):
        return self.rung.numerical

    @property
    def analytical(self):
        return self.rung.analytical

    @property
    def step(self):
        return self.rung.step

    @property
    def fails(self):
        return abs(self.rung.discrepancy) > self.tolerance


def _weighted(difference, dy):
    return float(np.sum(difference * dy))


def _rounding(dy, moved, eps, *outputs):
    magnitude = sum(np.abs(y) for y in outputs)
    return ROUNDING_ULPS * eps * float(np.sum(np.abs(dy) * magnitude * moved))


def dependent_outputs(line, y_center, probe_step):
    """Mask of the outputs that move at the probe point (all of them if f fails there)."""
    try:
        with np.errstate(all="ignore"):
            y_probe = line.outputs(probe_step)
    except (ValueError, TypeError, ArithmeticError):
        return np.ones(y_center.shape, dtype=bool)
    if y_probe.shape != y_center.shape or not np.all(np.isfinite(y_probe)):
        return np.ones(y_center.shape, dtype=bool)
    return y_probe != y_center


def evaluate_rung(line, t, y_center, dy, eps, dependent):
    """One rung: y at x ± t·v, the difference quotients and their rounding bounds."""
    y_plus, y_minus = line.outputs(t), line.outputs(-t)
    moved = dependent | (y_plus != y_center) | (y_minus != y_center)
    analytical_difference, magnitude = line.analytical_difference(t)
    half = 2.0 * t
    return Rung(
        step=t,
        numerical=_weighted(y_plus - y_minus, dy) / half,
        analytical=analytical_difference / half,
        magnitude=magnitude / half,
        forward=_weighted(y_plus - y_center, dy) / t,
        backward=_weighted(y_center - y_minus, dy) / t,
        rounding=_rounding(dy, moved, eps, y_plus, y_minus) / half,
        jump_noise=SAFETY * _rounding(dy, moved, eps, y_plus, y_center, y_center, y_minus) / t)


def _pair_error(coarse, fine):
    return abs(coarse.discrepancy - fine.discrepancy)


def _pair_cost(coarse, fine):
    return _pair_error(coarse, fine) + fine.rounding


def _credible_best(costs):
    """The best pair whose finer neighbour errs at most CREDIBLE × as much, or None.

    Between rungs rounding grows by RATIO and truncation falls by RATIO², so a
    pair followed by one that errs far more agreed by accident (two steps
    beyond the length scale where f is flat look alike).
    """
    credible = [k for k in range(len(costs) - 1) if costs[k + 1] <= CREDIBLE * costs[k]]
    return min(credible, key=lambda k: costs[k]) if credible else None


def _robust_error(rungs, best):
    """The error of d on rung best+1 from three pairs, not one (one may agree by chance).

    e_best, and the neighbouring pairs scaled to rung best+1: the finer pair's
    e_{best+1} is about RATIO × the rounding there, the coarser pair's e_{best−1}
    about RATIO² × the truncation there.
    """
    error = _pair_error(rungs[best], rungs[best + 1])
    if best + 2 < len(rungs):
        error = max(error, _pair_error(rungs[best + 1], rungs[best + 2]) / RATIO)
    if best >= 1:
        error = max(error, _pair_error(rungs[best - 1], rungs[best]) / RATIO ** 2)
    return error


def _size(rung):
    return max(rung.magnitude, abs(rung.numerical), rung.slope_scale)


def _is_kink(rungs, chosen, tolerance):
    """The one-sided evidence of the module docstring, on the smallest rung evaluated."""
    smallest = min(rungs, key=lambda r: r.step)
    above = [r for r in rungs if r.step > smallest.step]
    if smallest.jump <= KINK_FRACTION * smallest.slope_scale + smallest.jump_noise:
        return False
    if above:
        neighbour = min(above, key=lambda r: r.step)
        if smallest.jump < KINK_SHRINK * neighbour.jump:
            return False                      # the gap shrinks with the step: smooth
    low = min(chosen.forward, chosen.backward) - tolerance
    high = max(chosen.forward, chosen.backward) + tolerance
    return low <= chosen.analytical <= high


def line_estimate(line, y_center, dy, top, eps_out, eps_gradient, tensor_scale,
                  fixed_step=None, kink_check=True, minimum_step=0.0, probe_step=None,
                  patience=PATIENCE):
    """Walk the ladder along ``line`` (module docstring) and compare at the best pair of rungs.

    Args:
        line: has ``outputs(t)`` (flat float64 y at x + t·v) and
            ``analytical_difference(t)`` (<g, Δx> and Σ|g·Δx| over the displaced points).
        top: the first rung. eps_out / eps_gradient: eps of y's and of g's dtype.
        tensor_scale: the largest |gradient| of the tensor, for the floor.
        fixed_step: the caller's step h: rungs 2h and h only.
        minimum_step: no rung below this (points no longer distinct).
        probe_step: where the dependent outputs are probed (None: every output counts).
        patience: pairs walked past the best one (more for a tensor's first test,
            whose top rung comes from a generic rule, not from the function).
    """
    dependent = (np.ones(y_center.shape, dtype=bool) if probe_step is None
                 else dependent_outputs(line, y_center, probe_step))

    def rung(t):
        return evaluate_rung(line, t, y_center, dy, eps_out, dependent)

    if fixed_step is not None:
        rungs = [rung(2.0 * fixed_step), rung(fixed_step)]
        best = 0
    else:
        rungs = [rung(top), rung(top / RATIO), rung(top / RATIO ** 2)]
        costs = [_pair_cost(rungs[0], rungs[1]), _pair_cost(rungs[1], rungs[2])]
        # down while one of the last PATIENCE pairs is the best so far (truncation, or
        # a step beyond the function's length scale, still dominates)
        while ((int(np.argmin(costs)) >= len(costs) - patience
                or _credible_best(costs) is None) and len(rungs) < MAX_RUNGS
               and rungs[-1].step / RATIO > minimum_step):
            rungs.append(rung(rungs[-1].step / RATIO))
            costs.append(_pair_cost(rungs[-2], rungs[-1]))
        # up while the top pair is the best one, still worse than a well-scaled function
        # would give there, and as small as rounding: a top pair that errs far beyond
        # rounding is a step beyond the length scale (tanh saturated), where going up
        # finds pairs that agree only because f is flat there
        ascent = 0
        while (int(np.argmin(costs)) == 0 and costs[0] < costs[1] and ascent < MAX_ASCENT
               and costs[0] > ASCENT_NEED * eps_out ** (2.0 / 3.0) * _size(rungs[1])
               and costs[0] < ROUNDING_LIKE * max(rungs[1].rounding, rungs[0].rounding)):
            rungs.insert(0, rung(rungs[0].step * RATIO))
            costs.insert(0, _pair_cost(rungs[0], rungs[1]))
            ascent += 1
        best = _credible_best(costs)
        best = int(np.argmin(costs)) if best is None else best
    fine = rungs[best + 1]
    error = _robust_error(rungs, best)
    floor = (relative_floor(eps_gradient) * max(fine.magnitude, abs(fine.numerical))
             + SCALE_FLOOR * tensor_scale)
    tolerance = SAFETY * (error + fine.rounding) + floor
    fails = abs(fine.discrepancy) > tolerance
    kink = bool(kink_check and fails and _is_kink(rungs, fine, tolerance))
    return LineEstimate(fine, error, tolerance, kink, rungs)


def user_tolerance(numerical, rtol, atol):
    """atol + rtol·|numerical|, used instead of the estimate when the caller gives either."""
    return (atol or 0.0) + (rtol or 0.0) * abs(numerical)
