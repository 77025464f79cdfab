"""What a check found, as objects to inspect and as text to read.

``GradcheckReport`` holds one ``TensorResult`` per input (and per named
parameter of a module), the directional tests (``DirectionResult``), the
backward invariants (``InvariantResult``), and prints as a short lesson: what
was compared, with which tolerance, where it went wrong, and what the error
pattern usually means.
"""
from dataclasses import dataclass, field

import numpy as np

WORST_SHOWN = 5
FILTERED = "left out by only=/skip="


@dataclass
class InvariantResult:
    """One property every correct backward has (linearity in dy, no mutation, ...)."""
    name: str
    passed: bool
    detail: str = ""

    def line(self):
        return f"{'ok  ' if self.passed else 'FAIL'}  {self.name}" + (
            f": {self.detail}" if self.detail else "")


@dataclass
class DirectionResult:
    """<analytical gradient, v> against the derivative of L along v, for one tensor's entries.

    ``step`` is the step the ladder settled on (the largest displacement of an
    entry); ``resolution`` the smallest relative error of one entry this test
    is sure to catch (see ``groups.py``).
    """
    analytical: float
    numerical: float
    tolerance: float
    kink: bool
    name: str = ""
    step: float = float("nan")
    resolution: float = float("nan")
    entries: int = 0
    number: int = 1

    @property
    def error(self):
        return abs(self.analytical - self.numerical)

    @property
    def passed(self):
        return not self.kink and self.error <= self.tolerance

    def line(self, number=None):
        verdict = ("inconclusive (kink inside the stencil)" if self.kink
                   else "ok" if self.passed else "FAILED")
        label = f"{self.name} ({self.entries} entries)" if self.name else f"direction {number}"
        return (f"{label}: analytical {self.analytical:+.10e}, numerical "
                f"{self.numerical:+.10e}, |error| {self.error:.2e}, tolerance "
                f"{self.tolerance:.2e}, step {self.step:.3g}: {verdict}")


@dataclass
class TensorResult:
    """Element-wise comparison for one tensor (input or parameter).

    ``indices`` are the flat indices compared (empty when only the directional
    test ran); ``analytical``, ``numerical``, ``tolerance`` and ``kink`` are
    aligned with them. ``hint`` names a recognised error pattern.
    """
    name: str
    shape: tuple
    dtype: np.dtype
    gradient_norm: float
    indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    analytical: np.ndarray = field(default_factory=lambda: np.zeros(0))
    numerical: np.ndarray = field(default_factory=lambda: np.zeros(0))
    tolerance: np.ndarray = field(default_factory=lambda: np.zeros(0))
    kink: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    tolerance_rule: str = ""
    hint: str = None
    problem: str = None          # a structural failure (wrong shape, ...) found before comparing
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    step: float = float("nan")   # the step the tensor's directional test settled on
    resolution: float = float("inf")   # relative error of one entry sure to be caught
    tests: int = 0               # directional tests spent on this tensor (groups and entries)
    located: list = field(default_factory=list)   # bad entries found (sample or halving)
    untested: str = None         # why nothing about this tensor was tested
    problem_directional: str = None   # a directional failure no entry explains
    directions: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def compared(self):
        return self.indices.size > 0

    @property
    def checked(self):
        """Number of entries compared element-wise."""
        return int(self.indices.size)

    def __getitem__(self, key):
        """result["passed"] is result.passed: the results also read like dictionaries."""
        if not isinstance(key, str) or not hasattr(self, key):
            raise KeyError(key)
        return getattr(self, key)

    @property
    def error(self):
        return np.abs(self.analytical - self.numerical)

    @property
    def failed(self):
        """Mask of compared entries beyond tolerance, kinks excluded."""
        return (self.error > self.tolerance) & ~self.kink

    @property
    def failures(self):
        return int(np.count_nonzero(self.failed))

    @property
    def kinks(self):
        """Multi-indices of entries whose stencil straddles a non-differentiable point."""
        return [self.multi_index(flat) for flat in self.indices[self.kink]]

    @property
    def mostly_kinks(self):
        """More than half the compared entries are kinks: the comparison says little."""
        return self.compared and np.count_nonzero(self.kink) * 2 > self.indices.size

    @property
    def max_abs_error(self):
        smooth = ~self.kink
        return float(self.error[smooth].max()) if np.any(smooth) else 0.0

    @property
    def max_rel_error(self):
        smooth = ~self.kink
        if not np.any(smooth):
            return 0.0
        scale = np.maximum(np.abs(self.analytical), np.abs(self.numerical))[smooth]
        error = self.error[smooth]
        relative = np.where(scale > 0, error / np.where(scale > 0, scale, 1.0), 0.0)
        return float(relative.max())

    @property
    def passed(self):
        if self.problem is not None or self.problem_directional is not None:
            return False
        return self.failures == 0 and not self.mostly_kinks

    def multi_index(self, flat):
        return tuple(int(i) for i in np.unravel_index(int(flat), self.shape)) if self.shape else ()

    def worst(self, count=WORST_SHOWN):
        """(multi-index, analytical, numerical, |error|, tolerance) of the worst entries."""
        smooth = np.flatnonzero(~self.kink)
        ratio = self.error[smooth] / np.maximum(self.tolerance[smooth], np.finfo(float).tiny)
        order = smooth[np.argsort(-ratio, kind="stable")][:count]
        return [(self.multi_index(self.indices[i]), float(self.analytical[i]),
                 float(self.numerical[i]), float(self.error[i]), float(self.tolerance[i]))
                for i in order]

    def lines(self):
        header = f"{self.name}  shape {self.shape}  {np.dtype(self.dtype).name}"
        if self.problem is not None:
            return [f"{header}: FAILED", f"    {self.problem}"]
        if self.untested:
            return [f"{header}: WARNING {self.untested}"]
        summary = (f"step {self.step:.3g}, {self.tests} directional test"
                   f"{'s' if self.tests != 1 else ''}, " + (
                       f"a single wrong entry is seen from a relative error of "
                       f"{self.resolution:.1e}" if np.isfinite(self.resolution) else
                       "no resolution: no directional test passed"))
        if not self.compared:
            if self.problem_directional:
                return [f"{header}: FAILED", f"    {self.problem_directional}",
                        f"    {summary}"]
            return [f"{header}: |gradient| = {self.gradient_norm:.4g}, ok by the directional "
                    f"tests ({summary})"]
        verdict = ("FAILED (mostly kinks: choose inputs away from non-differentiable points)"
                   if self.mostly_kinks and self.failures == 0 else
                   "ok" if self.passed else "FAILED")
        lines = [f"{header}: {verdict}", f"    {summary}",
                 f"    {self.indices.size} of {self.size} entries examined: "
                 f"{self.failures} beyond tolerance, {np.count_nonzero(self.kink)} kink(s); "
                 f"max abs error {self.max_abs_error:.2e}, max rel error {self.max_rel_error:.2e}",
                 f"    tolerance per entry: {self.tolerance_rule}; "
                 f"largest applied {float(self.tolerance.max()):.2e}"]
        if self.failures:
            lines.append(f"    {'index':<16}{'analytical':>18}{'numerical':>18}"
                         f"{'|error|':>11}{'tolerance':>11}")
            for index, analytical, numerical, error, tolerance in self.worst():
                lines.append(f"    {str(index):<16}{analytical:>18.10e}{numerical:>18.10e}"
                             f"{error:>11.2e}{tolerance:>11.2e}")
        kinks = self.kinks
        if kinks:
            shown = ", ".join(str(index) for index in kinks[:8])
            more = f" and {len(kinks) - 8} more" if len(kinks) > 8 else ""
            lines.append(f"    kinks (non-differentiable point inside the ±2h stencil, "
                         f"not compared): {shown}{more}")
        if self.located:
            shown = ", ".join(str(index) for index in self.located[:8])
            more = f" and {len(self.located) - 8} more" if len(self.located) > 8 else ""
            lines.append(f"    bad entries: {shown}{more}")
        if self.problem_directional:
            lines.append(f"    {self.problem_directional}")
        lines += [f"    {note}" for note in self.notes]
        if self.hint:
            lines.append(f"    hint: {self.hint}")
        return lines


@dataclass
class GradcheckReport:
    """Outcome of ``check_vjp`` or ``check_module``.

    ``passed`` is True when every invariant holds, every compared entry is
    within its tolerance (kinks aside) and the directional test agrees or was
    overruled by a complete element-wise comparison. ``str(report)`` explains.
    """
    title: str
    tensors: dict = field(default_factory=dict)
    directions: list = field(default_factory=list)
    invariants: list = field(default_factory=list)
    elementwise_reason: str = ""
    failure_reasons: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    evaluations: tuple = (0, 0)      # (forward calls, backward calls)

    @property
    def passed(self):
        return not self.failure_reasons

    def __bool__(self):
        return self.passed

    def __getitem__(self, name):
        return self.tensors[name]

    @property
    def kinks(self):
        """{tensor name: [multi-index, ...]} of every entry labelled a kink."""
        return {name: result.kinks for name, result in self.tensors.items() if result.kinks}

    @property
    def untested(self):
        """{tensor name: reason} for tensors nothing was learned about (gradient 0, filtered)."""
        return {name: result.untested for name, result in self.tensors.items()
                if result.untested}

    def __str__(self):
        lines = [f"{self.title}: {'passed' if self.passed else 'FAILED'}"]
        lines += [f"  {note}" for note in self.notes]
        if self.directions:
            lines.append("  directional tests (one random direction over each tensor's entries):")
            lines += [f"    {result.line(number)}"
                      for number, result in enumerate(self.directions, start=1)]
        lines.append("  per tensor:")
        filtered = [name for name, reason in self.untested.items() if FILTERED in reason]
        for result in self.tensors.values():
            if result.name not in filtered:
                lines += [f"  {line}" for line in result.lines()]
        if filtered:
            lines.append(f"  {len(filtered)} of {len(self.tensors)} tensors left out by "
                         f"only=/skip=")
        zero = [name for name in self.untested if name not in filtered]
        if zero:
            lines.append(f"  WARNING: {len(zero)} of {len(self.tensors)} tensors not tested "
                         "(gradient exactly 0 at this input): " + ", ".join(zero))
        forward, backward = self.evaluations
        lines.append(f"  cost: {forward} forward and {backward} backward evaluations")
        if self.invariants:
            lines.append("  backward invariants:")
            lines += [f"    {result.line()}" for result in self.invariants]
        if self.failure_reasons:
            lines.append("  failed because: " + "; ".join(self.failure_reasons))
        return "\n".join(lines)

    __repr__ = __str__


@dataclass
class MultiOutputReport:
    """One ``GradcheckReport`` per output of a function that returns a tuple."""
    outputs: list

    @property
    def passed(self):
        return all(report.passed for report in self.outputs)

    def __bool__(self):
        return self.passed

    def __getitem__(self, k):
        return self.outputs[k]

    def __len__(self):
        return len(self.outputs)

    @property
    def kinks(self):
        return {k: report.kinks for k, report in enumerate(self.outputs) if report.kinks}

    def __str__(self):
        verdict = "passed" if self.passed else "FAILED"
        return "\n".join([f"{len(self.outputs)} outputs, checked one at a time: {verdict}"]
                         + [str(report) for report in self.outputs])

    __repr__ = __str__
