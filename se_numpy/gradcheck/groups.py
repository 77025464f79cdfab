"""Group testing: directional tests on groups of entries, split in halves down to the bad ones.

A directional test on a group S of entries of one tensor compares
<g_S, v> with the derivative of L along v, for a random v supported on S.
One test checks every entry of S at once, but how small an error it can see
depends on the group: an error e_j in entry j shifts the comparison by
e_j·v_j, and it is seen when that exceeds the tolerance. Two things hide it:

* **magnitudes.** With gradients 1e6 and 1e-3 in one group, the tolerance is
  set by the large terms (their rounding), and a 10 % error in the small one
  is invisible. So directions are weighted, v_j ∝ r_j / σ_j with
  σ_j = max(|g_j|, TAU·max|g|) and r_j = ±U(1, 2) random, so that every entry
  contributes at its own scale, and groups whose σ span more than SPREAD are
  split by magnitude first: each class is then tested on its own, where the
  outputs the other class moves cancel exactly.
* **size.** The tolerance grows with the number of terms.

Each test therefore reports its **resolution**

    ρ(S) = tolerance / min_j σ_j·|Δx_j| / (2t),

the smallest relative error (relative to σ_j) of a single entry that the test
is sure to catch (r_j ≥ 1 makes the bound hold for every sign). A group whose
resolution is worse than the target is split (``refine``), up to a budget of
tests per tensor; the report prints the resolution reached.

Locating. When a group fails, its halves are tested along the parent's
direction restricted to each half (so a wrong entry's contribution <e, v>
lands whole in the half that holds it), and the failing halves split again,
depth first, until single entries: about log2(n) tests per bad
entry instead of one element-wise stencil per entry. A single entry is an
ordinary element-wise comparison, with its own ladder and kink test.
"""
from dataclasses import dataclass

import numpy as np

from .differences import PATIENCE, PROBE_SCALE, line_estimate, user_tolerance

TAU = 1e-9            # gradients below 1e-9 of the tensor's largest are judged at that scale
SPREAD = 1e3          # a group spanning more than 1000× in |g| is split by magnitude


def _rescaled(direction):
    """The same direction up to a factor, with largest component 1 (the step's unit)."""
    return direction / np.abs(direction).max()


class Line:
    """x + t·v for a direction v on entries ``flat`` of input ``position`` (the others fixed)."""

    def __init__(self, evaluate, arrays, position, flat, direction, gradient):
        self.evaluate, self.arrays, self.position = evaluate, arrays, position
        self.flat, self.direction = flat, direction
        self.base = arrays[position].reshape(-1)[flat]
        self.gradient = gradient.reshape(-1)[flat]

    def points(self, t):
        return self.base + t * self.direction

    def outputs(self, t):
        working = list(self.arrays)
        moved = self.arrays[self.position].copy()
        moved.reshape(-1)[self.flat] = self.points(t)
        working[self.position] = moved
        return self.evaluate(working)

    def displacement(self, t):
        """(x + t·v) − (x − t·v) as actually evaluated (rounded points)."""
        return self.points(t) - self.points(-t)

    def analytical_difference(self, t):
        terms = self.gradient * self.displacement(t)
        return float(np.sum(terms)), float(np.sum(np.abs(terms)))


@dataclass
class GroupResult:
    """One directional test on a group of entries (``direction``: v on ``flat``)."""
    flat: np.ndarray
    estimate: object
    tolerance: float
    resolution: float
    direction: np.ndarray = None

    @property
    def error(self):
        return abs(self.estimate.rung.discrepancy)

    @property
    def kink(self):
        return self.estimate.kink

    @property
    def passed(self):
        return not self.kink and self.error <= self.tolerance

    @property
    def size(self):
        return int(self.flat.size)


class TensorTester:
    """Directional tests on groups of one tensor's entries, with a shared step and budget."""

    def __init__(self, evaluate, arrays, position, gradient, y_center, dy, rng, options,
                 eps_out, eps_gradient, top):
        self.evaluate, self.arrays, self.position = evaluate, arrays, position
        self.gradient, self.y_center, self.dy, self.rng = gradient, y_center, dy, rng
        self.options, self.eps_out, self.eps_gradient = options, eps_out, eps_gradient
        magnitude = np.abs(gradient.reshape(-1))
        self.largest = float(magnitude.max(initial=0.0))
        self.sigma = (np.maximum(magnitude, TAU * self.largest) if self.largest > 0
                      else np.ones_like(magnitude))
        self.top = top
        x = arrays[position].reshape(-1)
        self.minimum_step = 64 * float(np.spacing(np.abs(x).max(initial=1.0)))
        self.tests = 0

    def direction(self, flat):
        signs = self.rng.choice((-1.0, 1.0), size=flat.size)
        weights = signs * self.rng.uniform(1.0, 2.0, size=flat.size) / self.sigma[flat]
        return weights / np.abs(weights).max()

    def test(self, flat, top=None, direction=None, patience=PATIENCE):
        flat = np.asarray(flat, dtype=np.int64)
        if direction is None:
            direction = np.ones(1) if flat.size == 1 else self.direction(flat)
        line = Line(self.evaluate, self.arrays, self.position, flat, direction, self.gradient)
        estimate = line_estimate(line, self.y_center, self.dy, self.top if top is None else top,
                                 self.eps_out, self.eps_gradient, self.largest,
                                 fixed_step=self.options["step_for"](self.position),
                                 kink_check=self.options["kink_check"],
                                 minimum_step=self.minimum_step,
                                 probe_step=PROBE_SCALE * max(1.0, float(np.abs(line.base).max())),
                                 patience=patience)
        self.tests += 1
        tolerance = estimate.tolerance
        if self.options["rtol"] is not None or self.options["atol"] is not None:
            tolerance = user_tolerance(estimate.numerical, self.options["rtol"],
                                       self.options["atol"])
        contribution = self.sigma[flat] * np.abs(line.displacement(estimate.step)) / (
            2 * estimate.step)
        smallest = float(contribution.min())
        resolution = tolerance / smallest if smallest > 0 else np.inf
        return GroupResult(flat, estimate, tolerance, resolution, direction)

    def kinks_together(self, kinks):
        """All kink entries moved up together (v = 1 on them).

        Each kink entry alone may be right (its analytical value is one of its
        one-sided derivatives) while together they are not: a max whose gradient
        goes to every tied entry gives 2·dy where moving both tied entries up
        moves the max by exactly t (smooth, slope dy). Along v = 1 a consistent
        choice (every ReLU gate at 0 closed, or every one open; the first
        arg-max of each tie) stays between the one-sided slopes.
        """
        return self.test(kinks, direction=np.ones(len(kinks)))

    def split(self, flat):
        """Two boolean masks over ``flat``: by magnitude when the group spans more than
        SPREAD, else by index (first and second half)."""
        sigma = self.sigma[flat]
        if sigma.max() > SPREAD * sigma.min():
            upper = sigma >= np.sqrt(sigma.max() * sigma.min())
        else:
            upper = np.arange(flat.size) < flat.size // 2
        return [upper, ~upper]

    def refine(self, result, target, budget):
        """Split passing groups until each resolves ``target`` or ``budget`` tests are spent."""
        leaves, pending = [], [result]
        while pending:
            group = pending.pop(0)
            if group.passed and group.size > 1 and group.resolution > target and (
                    self.tests + 2 <= budget):
                pending += [self.test(group.flat[half], self.top)
                            for half in self.split(group.flat)]
            else:
                leaves.append(group)
        return leaves

    def locate(self, result, limit, budget):
        """Depth-first halving of a failing (or kinked) group down to single entries.

        When both halves of a failing group pass (tolerances are estimates, and
        noisy near kinks), the half closest to failing is followed anyway.
        Returns (single-entry results, groups that failed although both halves
        passed and the followed path found no bad entry: an error spread thinly
        over many entries).
        """
        singles, unexplained, stack = [], [], [(result, False)]
        while stack and sum(not s.passed and not s.kink for s in singles) < limit:
            group, followed = stack.pop()
            if group.size == 1:
                singles.append(group)
                continue
            if (group.passed and not followed) or self.tests + 2 > budget:
                continue
            # the parent's direction restricted to each half: an error's contribution
            # <e, v> then lands whole in the half that holds it (true group testing);
            # a single entry is an element-wise comparison (unit direction)
            halves = [self.test(group.flat[half], self.top,
                                _rescaled(group.direction[half]) if half.sum() > 1 else None)
                      for half in self.split(group.flat) if half.any()]
            if not group.kink and all(h.passed for h in halves):
                unexplained.append(group)
                closest = max(halves, key=lambda h: h.error / max(h.tolerance, 1e-300))
                stack.append((closest, True))
                continue
            stack += [(h, False) for h in reversed(halves) if not h.passed or h.size == 1]
        if any(not s.passed and not s.kink for s in singles):
            unexplained = []
        return singles, unexplained
