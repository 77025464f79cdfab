"""``check_vjp`` and ``check_module``: the steps of a gradient check, in order.

1. Evaluate y = f(x) in float64 on copies and fix a random dy (seeded); the
   scalar differentiated is L = Σ y·dy, whose gradient is exactly vjp(dy).
2. Backward invariants (linearity in dy, zero in → zero out, repeatable,
   no mutation, shapes and dtypes): cheap, and each names a specific mistake.
3. Directional test: for a few random unit directions v over all inputs at
   once, <vjp(dy), v> against (L(x+hv) − L(x−hv)) / (2h). Four evaluations per
   direction check every gradient entry at once (an error e shows up as
   <e, v>, which is almost surely nonzero for a random v).
4. Element-wise comparison, when asked (``elementwise=True``) or when the
   directional test fails or meets a kink (``"auto"``): every entry, or for
   big tensors a random subset that touches every index of axis 1 (the
   channels of NCHW), with its own tolerance and kink test; then hints.
"""
import numpy as np

from .._validation import check_float_array, check_shape
from . import invariants
from .differences import (PROBE_SCALE, RELATIVE_FLOOR, SCALE_FLOOR, STEP_SCALE,
                          TRUNCATION_SAFETY, dependent_outputs, estimated_tolerance, is_kink,
                          stencil_estimate, step_for, user_tolerance)
from .hints import cross_tensor_hints, tensor_hint
from .problems import FunctionProblem, GradientCountError, ModuleProblem
from .report import DirectionResult, GradcheckReport, InvariantResult, TensorResult

STENCIL = (1, -1, 2, -2)


# ----------------------------------------------------------------- argument checks
def _check_options(elementwise, max_entries, directions, rtol, atol, mode=None):
    if elementwise not in (True, False, "auto"):
        raise ValueError(f"elementwise: expected True, False or 'auto', got {elementwise!r}")
    for value, name, minimum in ((max_entries, "max_entries", 1), (directions, "directions", 0)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    for value, name in ((rtol, "rtol"), (atol, "atol")):
        if value is not None and not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name}: expected None or a finite number >= 0, got {value!r}")
    if mode not in (None, "train", "eval"):
        raise ValueError(f"mode: expected None, 'train' or 'eval', got {mode!r}")


def _as_inputs(inputs, names):
    if isinstance(inputs, np.ndarray):
        inputs = (inputs,)
    if not isinstance(inputs, (tuple, list)) or not inputs:
        raise TypeError(f"inputs: expected an ndarray or a non-empty tuple of ndarrays, "
                        f"got {type(inputs).__name__}")
    if names is None:
        names = ["x"] if len(inputs) == 1 else [f"x{i}" for i in range(len(inputs))]
    names = [str(name) for name in names]
    if len(names) != len(inputs) or len(set(names)) != len(names):
        raise ValueError(f"names: expected {len(inputs)} distinct names, got {names}")
    for name, array in zip(names, inputs):
        check_float_array(array, name, finite=True)
    return list(inputs), names


# ----------------------------------------------------------------- evaluation helpers
class _Evaluator:
    """float64 y and normalised float64 gradients from a problem, always on fresh copies."""

    def __init__(self, problem):
        self.problem = problem

    def outputs(self, arrays):
        y = np.asarray(self.problem.raw_forward([a.copy() for a in arrays]), dtype=np.float64)
        return y

    def probe(self, arrays):
        """y at the probe point, or None where f cannot be evaluated there (domain, overflow)."""
        try:
            with np.errstate(all="ignore"):
                return self.outputs(arrays)
        except (ValueError, TypeError, ArithmeticError):
            return None

    def gradients(self, arrays, dy):
        raw = self.problem.raw_backward(dy.copy(), [a.copy() for a in arrays])
        return tuple(np.asarray(g, dtype=np.float64) for g in raw)


def _choose_entries(shape, budget, rng):
    """All flat indices, or ``budget`` of them covering every index of axis 1 when possible."""
    size = int(np.prod(shape, dtype=np.int64))
    if size <= budget:
        return np.arange(size)
    chosen = []
    if len(shape) >= 2 and shape[1] <= budget:
        for channel in range(shape[1]):
            index = [int(rng.integers(side)) for side in shape]
            index[1] = channel
            chosen.append(int(np.ravel_multi_index(index, shape)))
    for flat in rng.choice(size, size=budget, replace=False):
        if len(set(chosen)) >= budget:
            break
        chosen.append(int(flat))
    return np.array(sorted(set(chosen)), dtype=np.int64)


# ----------------------------------------------------------------- the two numerical tests
def _directional_test(evaluator, arrays, gradients, y_center, dy, rng, options):
    """One random unit direction over all inputs: <g, v> against the directional derivative."""
    direction = [rng.standard_normal(array.shape) for array in arrays]
    norm = np.sqrt(sum(float(np.sum(v * v)) for v in direction))
    direction = [v / norm for v in direction]
    step = STEP_SCALE * max(1.0, max(float(np.abs(a).max(initial=0.0)) for a in arrays))
    points = {m: [a + m * step * v for a, v in zip(arrays, direction)] for m in STENCIL}
    outputs = {m: evaluator.outputs(points[m]) for m in STENCIL}
    probe_step = PROBE_SCALE * step / STEP_SCALE
    y_probe = evaluator.probe([a + probe_step * v for a, v in zip(arrays, direction)])
    estimate = stencil_estimate(outputs, y_center, dy, 2 * step, 4 * step,
                                dependent_outputs(y_center, y_probe, outputs))

    def analytical_for(m, span):
        # the displacement actually evaluated, (x + m·h·v) − (x − m·h·v), not its ideal value
        return sum(float(np.sum(g * (p - q))) for g, p, q in
                   zip(gradients, points[m], points[-m])) / span

    analytical, analytical_2h = analytical_for(1, 2 * step), analytical_for(2, 4 * step)
    magnitude = sum(float(np.sum(np.abs(g * (p - q)))) for g, p, q in
                    zip(gradients, points[1], points[-1])) / (2 * step)
    gradient_norm = np.sqrt(sum(float(np.sum(g * g)) for g in gradients))
    if options["rtol"] is None and options["atol"] is None:
        tolerance = estimated_tolerance(estimate, analytical, gradient_norm,
                                        analytical_shift=analytical_2h - analytical,
                                        analytical_magnitude=magnitude)
    else:
        tolerance = user_tolerance(estimate.numerical, options["rtol"], options["atol"])
    fails = abs(analytical - estimate.numerical) > tolerance
    kink = options["kink_check"] and is_kink(estimate, fails, gradient_norm)
    return DirectionResult(analytical, estimate.numerical, tolerance, bool(kink))


def _tolerance_rule(options):
    if options["rtol"] is None and options["atol"] is None:
        return (f"{TRUNCATION_SAFETY} × (Richardson |D(2h) − D(h)|/3 + rounding bound) + "
                f"{RELATIVE_FLOOR:g}·max(|analytical|, |numerical|) + "
                f"{SCALE_FLOOR:g}·max|numerical|")
    return f"atol + rtol·|numerical| with atol={options['atol'] or 0:g}, rtol={options['rtol'] or 0:g}"


def _elementwise_test(evaluator, arrays, gradients, y_center, dy, position, result, rng,
                      options):
    """Fill ``result`` with the per-entry comparison of input ``position``."""
    working = [a.copy() for a in arrays]
    flat_view = working[position].reshape(-1)
    indices = _choose_entries(working[position].shape, options["max_entries"], rng)
    estimates = []
    for flat in indices:
        center = flat_view[flat]
        step = step_for(center)
        points = {m: center + m * step for m in STENCIL}
        outputs = {}
        for m in STENCIL:
            flat_view[flat] = points[m]
            outputs[m] = evaluator.outputs(working)
        flat_view[flat] = center + PROBE_SCALE * max(1.0, abs(center))
        y_probe = evaluator.probe(working)
        flat_view[flat] = center
        estimates.append(stencil_estimate(outputs, y_center, dy, points[1] - points[-1],
                                          points[2] - points[-2],
                                          dependent_outputs(y_center, y_probe, outputs)))
    analytical = gradients[position].reshape(-1)[indices]
    numerical = np.array([e.numerical for e in estimates])
    scale = float(np.abs(numerical).max(initial=0.0))
    if options["rtol"] is None and options["atol"] is None:
        tolerance = np.array([estimated_tolerance(e, a, scale)
                              for e, a in zip(estimates, analytical)])
    else:
        tolerance = np.array([user_tolerance(n, options["rtol"], options["atol"])
                              for n in numerical])
    fails = np.abs(analytical - numerical) > tolerance
    kink = np.array([options["kink_check"] and is_kink(e, bool(f), scale)
                     for e, f in zip(estimates, fails)], dtype=bool)
    result.indices, result.analytical, result.numerical = indices, analytical, numerical
    result.tolerance, result.kink = tolerance, kink
    result.tolerance_rule = _tolerance_rule(options)


# ----------------------------------------------------------------- the check
def _invariant_results(problem, evaluator, arrays, dy, rng):
    names = problem.names
    results = []
    copies = [a.copy() for a in arrays]
    problem.raw_forward(copies)
    results.append(invariants.unchanged(arrays, copies, names, problem.forward_name))
    copies, dy_copy = [a.copy() for a in arrays], dy.copy()
    problem.raw_backward(dy_copy, copies)
    results.append(invariants.unchanged([dy] + arrays, [dy_copy] + copies, ["dy"] + names,
                                        problem.backward_name))
    try:
        caller_gradients = problem.caller_dtype_gradients(dy)
        results.append(invariants.shapes_and_dtypes(names, problem.dtype_check_arrays,
                                                    caller_gradients, problem.backward_name))
    except (ValueError, TypeError) as error:
        results.append(InvariantResult("gradient shapes and dtypes equal the inputs'", False,
                                       f"backward in the caller's dtype raised {error!r}"))

    def backward(upstream):
        return evaluator.gradients(arrays, upstream)

    results.append(invariants.zero_upstream(backward, dy, names))
    results.append(invariants.linearity(backward, dy, rng, names))
    results.append(invariants.repeatable(backward, dy, names))
    results += problem.extra_invariants(arrays, dy)
    return results


def _shape_problems(names, arrays, gradients):
    return {name: f"gradient shape {np.shape(g)}, expected the input's shape {a.shape}"
            for name, a, g in zip(names, arrays, gradients) if np.shape(g) != a.shape}


def _run(problem, options):
    report = GradcheckReport(problem.title)
    rng = np.random.default_rng(options["seed"])
    evaluator = _Evaluator(problem)
    arrays = [np.array(a, dtype=np.float64) for a in problem.caller_arrays]
    names = problem.names
    y_center = evaluator.outputs(arrays)
    if not np.all(np.isfinite(y_center)):
        raise ValueError("f: returned non-finite values at the given inputs; "
                         "a gradient check needs a point where f is finite")
    dy = options["dy"]
    if dy is None:
        dy = rng.standard_normal(y_center.shape)
    else:
        check_float_array(dy, "dy", finite=True)
        check_shape(dy, y_center.shape, "dy")
        dy = np.array(dy, dtype=np.float64)
    report.notes.append(f"L = Σ y·dy with {'the given' if options['dy'] is not None else 'a random'}"
                        f" dy (seed {options['seed']}); central differences in float64 on "
                        "copies, step h = eps^(1/3)·max(1, |x|)")

    try:
        gradients = evaluator.gradients(arrays, dy)
    except GradientCountError as error:       # wrong number of gradients: nothing to compare
        report.invariants.append(InvariantResult("one gradient per input", False, str(error)))
        report.failure_reasons.append(str(error))
        return report
    shape_problems = _shape_problems(names, arrays, gradients)
    if options["invariants"]:
        if shape_problems:
            report.invariants.append(InvariantResult(
                "gradient shapes equal the inputs'", False, "; ".join(
                    f"{n}: {p}" for n, p in shape_problems.items())))
        else:
            report.invariants += _invariant_results(problem, evaluator, arrays, dy, rng)

    for name, array, caller, gradient in zip(names, arrays, problem.caller_arrays, gradients):
        report.tensors[name] = TensorResult(
            name, array.shape, caller.dtype, float(np.sqrt(np.sum(gradient * gradient)))
            if name not in shape_problems else float("nan"), problem=shape_problems.get(name))

    if not shape_problems:
        for _ in range(options["directions"]):
            report.directions.append(_directional_test(evaluator, arrays, gradients, y_center,
                                                       dy, rng, options))
    directional_failed = any(not d.passed and not d.kink for d in report.directions)
    directional_kink = any(d.kink for d in report.directions)
    if options["elementwise"] is True:
        report.elementwise_reason = "asked for with elementwise=True"
    elif options["elementwise"] == "auto" and (directional_failed or directional_kink
                                               or not report.directions):
        report.elementwise_reason = ("run because the directional test failed"
                                     if directional_failed else
                                     "run because the directional test met a kink"
                                     if directional_kink else
                                     "run because no directional test could be made")
    if report.elementwise_reason:
        for position, name in enumerate(names):
            if name not in shape_problems:
                _elementwise_test(evaluator, arrays, gradients, y_center, dy, position,
                                  report.tensors[name], rng, options)
    _add_hints(report)
    _decide(report, directional_failed, directional_kink, options)
    if options["raise_on_fail"] and not report.passed:
        raise AssertionError(str(report))
    return report


def _add_hints(report):
    results = list(report.tensors.values())
    cross = cross_tensor_hints(results)
    for result in results:
        result.hint = cross.get(result.name) or tensor_hint(result)
        if result.hint is None and not result.passed and result.compared:
            result.hint = "no simple pattern: compare the worst entries above by hand"


def _decide(report, directional_failed, directional_kink, options):
    reasons = report.failure_reasons
    reasons += [f"invariant '{r.name}' does not hold" for r in report.invariants if not r.passed]
    for result in report.tensors.values():
        if result.problem is not None:
            reasons.append(f"{result.name}: {result.problem}")
        elif result.compared and result.failures:
            reasons.append(f"{result.name}: {result.failures} entries beyond tolerance")
        elif result.compared and result.mostly_kinks:
            reasons.append(f"{result.name}: most compared entries are kinks")
    compared = [r for r in report.tensors.values() if r.compared]
    if (directional_failed or directional_kink) and not compared:
        reasons.append("the directional test " + ("failed" if directional_failed else
                                                  "met a kink")
                       + " (elementwise=False: run with elementwise=True to see where)")
    elif directional_failed and compared and not reasons:
        complete = all(r.indices.size == r.size for r in report.tensors.values())
        any_kinks = any(np.any(r.kink) for r in compared)
        if complete:
            report.notes.append("the directional mismatch is not confirmed by the complete "
                                "element-wise comparison" + (" (it comes from the kinks)"
                                                              if any_kinks else ""))
        else:
            reasons.append("the directional test failed but the sampled entries agree: "
                           "the error is in entries not sampled (raise max_entries)")


def check_vjp(f, vjp, inputs, *, names=None, dy=None, seed=0, elementwise="auto",
              max_entries=500, rtol=None, atol=None, raise_on_fail=False, kink_check=True,
              directions=3, invariants=True):
    """Check a hand-written vector-Jacobian product against finite differences.

    Args:
        f: f(*inputs) -> y, one ndarray (any shape).
        vjp: vjp(dy, *inputs) -> tuple of gradients dL/d(input), one per input in
            order (a bare array is accepted for one input), for L = Σ y·dy.
        inputs: an ndarray or a tuple of float32/float64 ndarrays. They are
            copied and cast to float64; f and vjp never see the originals.
        names: names of the inputs in the report (default x, or x0, x1, ...).
        dy: the upstream gradient (shape of y); default standard normal (seeded).
        seed: seeds dy, the random directions and the sampled entries.
        elementwise: True (compare every entry), False (directional test only),
            "auto" (element-wise when the directional test fails or meets a kink).
        max_entries: at most this many entries compared per tensor; a random
            subset touching every index of axis 1 is used above it.
        rtol, atol: replace the estimated per-entry tolerance by atol + rtol·|numerical|.
        raise_on_fail: raise AssertionError(str(report)) when the check fails.
        kink_check: label entries whose stencil straddles a non-differentiable
            point instead of counting them as failures.
        directions: number of random directions of the directional test (0: none).
        invariants: check the backward invariants (linearity, mutation, dtype, ...).

    Returns:
        GradcheckReport: ``.passed``, ``.tensors[name]``, ``.invariants``,
        ``.directions``, ``.kinks``; ``print(report)`` explains the result.
    """
    _check_options(elementwise, max_entries, directions, rtol, atol)
    if not callable(f) or not callable(vjp):
        raise TypeError("f and vjp: expected callables, got "
                        f"{type(f).__name__} and {type(vjp).__name__}")
    arrays, names = _as_inputs(inputs, names)
    options = dict(dy=dy, seed=seed, elementwise=elementwise, max_entries=max_entries,
                   rtol=rtol, atol=atol, raise_on_fail=raise_on_fail, kink_check=kink_check,
                   directions=directions, invariants=invariants)
    return _run(FunctionProblem(f, vjp, arrays, names), options)


def check_module(module, x, *, dy=None, seed=0, mode=None, elementwise="auto",
                 max_entries=500, rtol=None, atol=None, raise_on_fail=False, kink_check=True,
                 directions=3, invariants=True):
    """Check a Module's dL/dx and every named parameter's gradient in one call.

    Works on a deep copy of ``module`` cast to float64 (``module.astype``), so
    the caller's module, its parameters and its buffers are never changed.
    Before every forward the copy's state (``state_dict``) is restored, so
    buffers that a training forward updates (BatchNorm running statistics)
    are the same for every evaluation. Parameters are perturbed in place in
    ``p.data`` and the forward is run again.

    Extra invariants for modules: backward adds into ``p.grad`` (two backward
    passes give twice the gradient), forward and backward leave ``p.data``
    unchanged, and dx and ``p.grad`` keep the caller's dtypes (checked on a
    copy in the module's own dtype).

    Args:
        module: a ``se_numpy.nn.Module`` (forward caches, backward(dy) returns
            dL/dx and adds into p.grad).
        x: the input, float32 or float64 (checked in float64).
        mode: None (keep the module's train/eval mode), "train" or "eval".
        Other arguments as in ``check_vjp``.
    """
    _check_options(elementwise, max_entries, directions, rtol, atol, mode)
    check_float_array(x, "x", finite=True)
    options = dict(dy=dy, seed=seed, elementwise=elementwise, max_entries=max_entries,
                   rtol=rtol, atol=atol, raise_on_fail=raise_on_fail, kink_check=kink_check,
                   directions=directions, invariants=invariants)
    return _run(ModuleProblem(module, x, mode), options)
