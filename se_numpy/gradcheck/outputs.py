"""Functions with several outputs: one check per output, one report each.

For f(*inputs) -> (y_0, ..., y_{m-1}) the backward takes one upstream
gradient per output, vjp((dy_0, ..., dy_{m-1}), *inputs), and returns
Σ_k J_kᵀ·dy_k. Output k is checked alone as the function y_k with the
upstream gradients of the other outputs set to zero, so each report says
which output's gradient is wrong (the invariants of the combined vjp are
checked in every one of them).
"""
import numpy as np

from .problems import FunctionProblem
from .report import MultiOutputReport


def _output_function(f, k):
    def output(*arrays):
        return f(*arrays)[k]
    output.__name__ = f"{getattr(f, '__name__', type(f).__name__)}[{k}]"
    return output


def _output_vjp(vjp, k, shapes, dtypes):
    def vjp_of_output(dy, *arrays):
        upstream = tuple(dy if i == k else np.zeros(shape, dtype)
                         for i, (shape, dtype) in enumerate(zip(shapes, dtypes)))
        return vjp(upstream, *arrays)
    return vjp_of_output


def check_each_output(f, vjp, arrays, names, count, options, run):
    """A ``MultiOutputReport`` of ``run`` over every output of a tuple-valued f."""
    probe = f(*[np.array(a, dtype=np.float64) for a in arrays])
    outputs = [np.asarray(y) for y in probe]
    if count == 0 or any(y.dtype.kind != "f" for y in outputs):
        raise TypeError(f"f: returned a tuple of {count} outputs with dtypes "
                        f"{[str(y.dtype) for y in outputs]}: expected floating ndarrays")
    given = options["dy"]
    if given is not None and (not isinstance(given, (tuple, list)) or len(given) != count):
        raise ValueError(f"dy: f has {count} outputs, so dy must be a tuple of {count} arrays, "
                         f"got {type(given).__name__}")
    shapes, dtypes = [y.shape for y in outputs], [y.dtype for y in outputs]
    reports = []
    for k in range(count):
        per_output = dict(options, dy=None if given is None else given[k], raise_on_fail=False)
        problem = FunctionProblem(_output_function(f, k), _output_vjp(vjp, k, shapes, dtypes),
                                  arrays, names)
        problem.title = f"output {k} of check_vjp({getattr(f, '__name__', type(f).__name__)})"
        reports.append(run(problem, per_output))
    report = MultiOutputReport(reports)
    if options["raise_on_fail"] and not report.passed:
        raise AssertionError(str(report))
    return report
