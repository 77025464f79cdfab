"""``check_vjp`` and ``check_module``: the steps of a gradient check, in order.

1. Evaluate y = f(x) on float64 copies and fix a random dy (seeded); the
   scalar differentiated is L = Σ y·dy, whose gradient is exactly vjp(dy).
   The precision of the check is that of f's output (a function that computes
   in float32 is checked at float32 steps and tolerances).
2. Backward invariants (linearity in dy, zero in → zero out, repeatable,
   no mutation, shapes and dtypes): cheap, and each names a specific mistake.
3. Per tensor, a directional test on all its entries at once (``groups.py``),
   on a ladder of steps that finds the function's own step (``differences.py``).
   A test that cannot resolve a small relative error in every entry is split
   until it can (or its budget is spent); the resolution reached is reported,
   and unresolved tensors are compared entry by entry while a budget of
   FALLBACK_ENTRIES entries per check lasts.
4. When a tensor's test fails or meets a kink (``elementwise="auto"``), its
   halves are tested down to the bad entries (group testing), and a sample of
   entries is compared one by one for the hints; ``elementwise=True`` compares
   every entry (or a sample of ``max_entries`` that touches every channel).
"""
import fnmatch
import sys
import time

import numpy as np

from .._validation import check_float_array, check_shape
from . import invariants
from .differences import FIRST_PATIENCE, PATIENCE, precision_of, top_step
from .groups import TensorTester
from .hints import cross_tensor_hints, tensor_hint
from .problems import FunctionProblem, GradientCountError, ModuleProblem, as_outputs
from .report import FILTERED, DirectionResult, GradcheckReport, InvariantResult, TensorResult

FAILURE_SAMPLE = 64       # entries compared one by one on a failing tensor, for the hints
FALLBACK_ENTRIES = 64     # ... and unresolved tensors compared entry by entry, 64 per check
LOCATE = 8                # bad entries located by halving before stopping
TESTS_PER_TENSOR = 4      # group tests spent refining the resolution of one tensor


# ----------------------------------------------------------------- argument checks
def _check_options(options, mode=None):
    if options["elementwise"] not in (True, False, "auto"):
        raise ValueError("elementwise: expected True, False or 'auto', got "
                         f"{options['elementwise']!r}")
    for name, minimum in (("max_entries", 1), ("directions", 0)):
        value = options[name]
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    for name in ("rtol", "atol"):
        value = options[name]
        if value is not None and not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name}: expected None or a finite number >= 0, got {value!r}")
    if mode not in (None, "train", "eval"):
        raise ValueError(f"mode: expected None, 'train' or 'eval', got {mode!r}")
    if options["progress"] not in (True, False, "auto"):
        raise ValueError(f"progress: expected True, False or 'auto', got {options['progress']!r}")
    for name in ("only", "skip"):
        value = options[name]
        if value is not None and (isinstance(value, str) or not all(
                isinstance(pattern, str) for pattern in value)):
            raise TypeError(f"{name}: expected None or a list of name patterns, got {value!r}")


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


def _step_lookup(step, names):
    """step=None, one float for every input, or {name: float} / a sequence, one per input."""
    if step is None:
        return lambda position: None
    if isinstance(step, dict):
        unknown = sorted(set(step) - set(names))
        if unknown:
            raise ValueError(f"step: no inputs named {unknown}; the inputs are {names}")
        values = [step.get(name) for name in names]
    elif np.isscalar(step):
        values = [step] * len(names)
    else:
        values = list(step)
        if len(values) != len(names):
            raise ValueError(f"step: expected one step per input ({len(names)}), got "
                             f"{len(values)}")
    for name, value in zip(names, values):
        if value is not None and not (np.isfinite(value) and value > 0):
            raise ValueError(f"step for {name}: expected a finite number > 0, got {value!r}")
    return lambda position: None if values[position] is None else float(values[position])


def _selected(name, options):
    def matches(patterns):
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)
    if options["only"] is not None and not matches(options["only"]):
        return False
    return not (options["skip"] is not None and matches(options["skip"]))


# ----------------------------------------------------------------- evaluation helpers
class _Evaluator:
    """Flat float64 y and normalised float64 gradients from a problem, always on fresh copies."""

    def __init__(self, problem):
        self.problem = problem
        self.forward_calls = self.backward_calls = 0

    def raw_outputs(self, arrays):
        self.forward_calls += 1
        return as_outputs(self.problem.raw_forward([a.copy() for a in arrays]),
                          self.problem.forward_name)

    def outputs(self, arrays):
        return np.asarray(self.raw_outputs(arrays), dtype=np.float64).reshape(-1)

    def gradients(self, arrays, dy):
        self.backward_calls += 1
        return tuple(np.asarray(g) for g in self.problem.raw_backward(
            dy.copy(), [a.copy() for a in arrays]))


class _Progress:
    """Lines on stderr for long checks: always (True), never (False), after 2 s ("auto")."""

    def __init__(self, mode, total):
        self.mode, self.total, self.start = mode, total, time.perf_counter()

    def tensor_done(self, number, result):
        elapsed = time.perf_counter() - self.start
        if self.mode is True or (self.mode == "auto" and elapsed > 2.0):
            print(f"gradcheck: {number}/{self.total} {result.name}: "
                  f"{'ok' if result.passed else 'FAILED'} ({elapsed:.1f} s)",
                  file=sys.stderr, flush=True)


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


# ----------------------------------------------------------------- the check
def _invariant_results(problem, evaluator, arrays, dy, rng, eps):
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
        return [np.asarray(g, dtype=np.float64) for g in evaluator.gradients(arrays, upstream)]

    rtol = invariants.rounding_rtol(eps)
    results.append(invariants.zero_upstream(backward, dy, names))
    results.append(invariants.linearity(backward, dy, rng, names, rtol))
    results.append(invariants.repeatable(backward, dy, names, rtol))
    results += problem.extra_invariants(arrays, dy)
    return results


def _shape_problems(names, arrays, gradients):
    return {name: f"gradient shape {np.shape(g)}, expected the input's shape {a.shape}"
            for name, a, g in zip(names, arrays, gradients) if np.shape(g) != a.shape}


def _tolerance_rule(options):
    if options["rtol"] is None and options["atol"] is None:
        return "4 × (ladder error estimate + rounding bound) + floor"
    return (f"atol + rtol·|numerical| with atol={options['atol'] or 0:g}, "
            f"rtol={options['rtol'] or 0:g}")


def _fill_entries(result, singles, rule):
    """The element-wise arrays of ``result`` from single-entry tests, in index order."""
    by_index = {int(s.flat[0]): s for s in singles}
    order = sorted(by_index)
    result.indices = np.array(order, dtype=np.int64)
    result.analytical = np.array([by_index[i].estimate.analytical for i in order])
    result.numerical = np.array([by_index[i].estimate.numerical for i in order])
    result.tolerance = np.array([by_index[i].tolerance for i in order])
    result.kink = np.array([by_index[i].kink for i in order], dtype=bool)
    result.steps = np.array([by_index[i].estimate.step for i in order])
    result.tolerance_rule = rule


def _entries(result, flat, shown=4):
    text = ", ".join(str(result.multi_index(i)) for i in flat[:shown])
    return text + (", ..." if len(flat) > shown else "")


def _direction_result(name, group, number):
    return DirectionResult(group.estimate.analytical, group.estimate.numerical, group.tolerance,
                           bool(group.kink), name=name, step=group.estimate.step,
                           resolution=group.resolution, entries=group.size, number=number)


def _check_tensor(tester, result, options, rng):
    """Steps 3 and 4 of the module docstring for one tensor; fills ``result``."""
    size = result.size
    everything = np.arange(size, dtype=np.int64)
    directions, leaves = [], []
    user_tolerance = options["rtol"] is not None or options["atol"] is not None
    budget = tester.tests + TESTS_PER_TENSOR
    for number in range(options["directions"]):
        group = tester.test(everything, patience=FIRST_PATIENCE if number == 0 else PATIENCE)
        if number == 0:
            tester.top = group.estimate.step        # later tests start at the step found here
            result.step = group.estimate.step
        directions.append(group)
        result.directions.append(_direction_result(result.name, group, number + 1))
        if group.passed and not user_tolerance:
            leaves += tester.refine(group, options["target"], budget)
        else:
            leaves.append(group)
    result.resolution = max((leaf.resolution for leaf in leaves if leaf.passed), default=np.inf)
    failing = [g for g in leaves if not g.passed]      # a split may fail where its parent passed
    singles, unexplained = [], []
    auto = options["elementwise"] == "auto"
    # a small tensor the directional tests could not resolve to the target is cheap to
    # compare entry by entry (the strongest guarantee)
    unresolved = (result.resolution > options["target"] and size <= options["fallback_left"]
                  and not user_tolerance and auto)
    if unresolved and not failing:
        options["fallback_left"] -= size
    if options["elementwise"] is True or (auto and (failing or unresolved)):
        budget_entries = (options["max_entries"] if options["elementwise"] is True
                          else min(options["max_entries"], FAILURE_SAMPLE))
        singles += [tester.test([int(flat)])
                    for flat in _choose_entries(result.shape, budget_entries, rng)]
    # a sample that shows what failed (a dense error, the kinks) is enough; a sparse error
    # that the sample missed is found by halving
    sample_failed = any(not s.passed and not s.kink for s in singles)
    sample_kinked = any(s.kink for s in singles)
    explained = sample_failed or (sample_kinked and all(g.kink for g in failing))
    if failing and auto and not explained:
        budget = tester.tests + 2 * LOCATE * int(np.log2(size) + 2)
        done = {int(s.flat[0]) for s in singles}
        for group in failing:
            found, lost = tester.locate(group, LOCATE, budget)
            singles += [s for s in found if int(s.flat[0]) not in done]
            done |= {int(s.flat[0]) for s in found}
            unexplained += lost
    together = None
    kinks = np.array([int(s.flat[0]) for s in singles if s.kink], dtype=np.int64)
    if kinks.size >= 2:
        together = tester.kinks_together(kinks)
    if singles:
        _fill_entries(result, singles, _tolerance_rule(options))
    result.tests = tester.tests
    result.located = sorted({result.multi_index(s.flat[0]) for s in singles
                             if not s.passed and not s.kink})
    _explain_directional(result, [g for g in failing if not g.kink], unexplained, together,
                         bool(singles))
    if tester.largest == 0.0 and all(g.passed for g in directions) and directions:
        result.untested = "not tested: its gradient is 0 here; try another input"


def _explain_directional(result, failed, unexplained, together, compared):
    """A directional failure that no entry explains is a failure of its own (or overruled)."""
    complete = result.checked == result.size
    if failed and not compared:
        result.problem_directional = (
            "the directional test failed (elementwise=False: run with elementwise=True "
            "or 'auto' to locate the entries)")
    elif together is not None and not together.passed and not together.kink:
        result.problem_directional = (
            f"each kink alone is explained, but moving the kink entries "
            f"{_entries(result, together.flat)} up together is smooth and disagrees "
            f"(analytical {together.estimate.analytical:.6g}, numerical "
            f"{together.estimate.numerical:.6g}): gradients at a tie that do not add up, "
            "such as a max's gradient sent to every tied entry")
    elif failed and not result.failures and complete:
        result.notes.append("a directional test failed but every entry compared one by one "
                            "agrees: the complete element-wise comparison overrules it")
    elif failed and not result.failures and unexplained:
        group = unexplained[0]
        result.problem_directional = (
            f"a directional test on {group.size} entries ({_entries(result, group.flat)}) "
            "failed but its halves agree: an error spread thinly over many entries")
    elif failed and not result.failures:
        result.problem_directional = ("the directional test failed but no entry was located "
                                      "(raise max_entries or use elementwise=True)")


def _run(problem, options):
    report = GradcheckReport(problem.title)
    rng = np.random.default_rng(options["seed"])
    evaluator = _Evaluator(problem)
    arrays = [np.array(a, dtype=np.float64) for a in problem.caller_arrays]
    names = problem.names
    raw_center = evaluator.raw_outputs(arrays)
    y_center = np.asarray(raw_center, dtype=np.float64)
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
    eps_out = precision_of(raw_center.dtype)

    try:
        raw_gradients = evaluator.gradients(arrays, dy)
    except GradientCountError as error:       # wrong number of gradients: nothing to compare
        report.invariants.append(InvariantResult("one gradient per input", False, str(error)))
        report.failure_reasons.append(str(error))
        return report
    eps_gradient = max([eps_out] + [precision_of(g.dtype) for g in raw_gradients])
    gradients = [np.asarray(g, dtype=np.float64) for g in raw_gradients]
    options["target"] = max(1e-3, 300 * eps_out ** (2.0 / 3.0))
    dtype_name = "float64" if eps_out == precision_of(np.float64) else "float32 or lower"
    report.notes.append(
        f"L = Σ y·dy with {'the given' if options['dy'] is not None else 'a random'} dy "
        f"(seed {options['seed']}); f's output is {np.dtype(raw_center.dtype).name}, so steps "
        f"and tolerances are those of {dtype_name} (eps {eps_out:.2g}); steps "
        + ("given by the caller" if options["step"] is not None else
           "chosen per tensor on a ladder from eps^(1/3)·max(1, max|x|)"))
    shape_problems = _shape_problems(names, arrays, gradients)
    if options["invariants"]:
        if shape_problems:
            report.invariants.append(InvariantResult(
                "gradient shapes equal the inputs'", False, "; ".join(
                    f"{n}: {p}" for n, p in shape_problems.items())))
        else:
            report.invariants += _invariant_results(problem, evaluator, arrays, dy, rng,
                                                    eps_gradient)

    for name, array, caller, gradient in zip(names, arrays, problem.caller_arrays, gradients):
        report.tensors[name] = TensorResult(
            name, array.shape, caller.dtype, float(np.sqrt(np.sum(gradient * gradient)))
            if name not in shape_problems else float("nan"), problem=shape_problems.get(name))
    y_flat = y_center.reshape(-1)
    dy_flat = dy.reshape(-1)
    options["step_for"] = _step_lookup(options["step"], names)
    options["fallback_left"] = FALLBACK_ENTRIES
    progress = _Progress(options["progress"], len(names))
    for position, name in enumerate(names):
        result = report.tensors[name]
        if name in shape_problems:
            continue
        if not _selected(name, options):
            result.untested = f"not tested: {FILTERED}"
            continue
        scale = float(np.abs(arrays[position]).max(initial=0.0))
        tester = TensorTester(evaluator.outputs, arrays, position, gradients[position], y_flat,
                              dy_flat, rng, options, eps_out, eps_gradient,
                              top_step(scale, eps_out))
        _check_tensor(tester, result, options, rng)
        report.directions += result.directions
        progress.tensor_done(position + 1, result)
    report.evaluations = (evaluator.forward_calls, evaluator.backward_calls)
    _add_hints(report)
    _decide(report)
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


def _decide(report):
    reasons = report.failure_reasons
    reasons += [f"invariant '{r.name}' does not hold" for r in report.invariants if not r.passed]
    for result in report.tensors.values():
        if result.problem is not None:
            reasons.append(f"{result.name}: {result.problem}")
        elif result.compared and result.failures:
            reasons.append(f"{result.name}: {result.failures} entries beyond tolerance")
        elif result.compared and result.mostly_kinks:
            reasons.append(f"{result.name}: most compared entries are kinks")
        elif result.problem_directional is not None:
            reasons.append(f"{result.name}: {result.problem_directional}")


def check_vjp(f, vjp, inputs, *, names=None, dy=None, seed=0, elementwise="auto",
              max_entries=500, rtol=None, atol=None, raise_on_fail=False, kink_check=True,
              directions=1, invariants=True, step=None, only=None, skip=None,
              progress="auto"):
    """Check a hand-written vector-Jacobian product against finite differences.

    Args:
        f: f(*inputs) -> y, one ndarray (any shape), or a tuple of ndarrays (then
            ``vjp`` receives a tuple dy, one array per output, and the result is a
            ``MultiOutputReport`` with one report per output).
        vjp: vjp(dy, *inputs) -> tuple of gradients dL/d(input), one per input in
            order (a bare array is accepted for one input), for L = Σ y·dy.
        inputs: an ndarray or a tuple of float32/float64 ndarrays. They are
            copied and cast to float64; f and vjp never see the originals.
        names: names of the inputs in the report (default x, or x0, x1, ...).
        dy: the upstream gradient (shape of y); default standard normal (seeded).
        seed: seeds dy, the random directions and the sampled entries.
        elementwise: True (compare every entry), False (directional tests only),
            "auto" (locate the bad entries of a tensor whose directional test fails).
        max_entries: at most this many entries compared one by one per tensor; a
            random subset touching every index of axis 1 is used above it.
        rtol, atol: replace the estimated tolerances by atol + rtol·|numerical|.
        raise_on_fail: raise AssertionError(str(report)) when the check fails.
        kink_check: label entries whose one-sided slopes disagree (and explain the
            analytical value) as kinks instead of failures.
        directions: directional tests per tensor (0: none).
        invariants: check the backward invariants (linearity, mutation, dtype, ...).
        step: the finite-difference step instead of the ladder: one number for
            every input, or {name: step} / a sequence with one per input (None
            entries keep the ladder).
        only, skip: lists of name patterns (``fnmatch``: "layer1.*", "*.bias");
            tensors left out are listed as not tested.
        progress: print one line per tensor on stderr: True, False, or "auto"
            (once the check has run for 2 s).

    Returns:
        GradcheckReport: ``.passed``, ``.tensors[name]``, ``.invariants``,
        ``.directions``, ``.kinks``, ``.untested``; ``print(report)`` explains.
    """
    options = dict(dy=dy, seed=seed, elementwise=elementwise, max_entries=max_entries,
                   rtol=rtol, atol=atol, raise_on_fail=raise_on_fail, kink_check=kink_check,
                   directions=directions, invariants=invariants, step=step, only=only,
                   skip=skip, progress=progress)
    _check_options(options)
    if not callable(f) or not callable(vjp):
        raise TypeError("f and vjp: expected callables, got "
                        f"{type(f).__name__} and {type(vjp).__name__}")
    arrays, names = _as_inputs(inputs, names)
    probe = f(*[np.array(a, dtype=np.float64) for a in arrays])
    if isinstance(probe, (tuple, list)):
        from .outputs import check_each_output
        return check_each_output(f, vjp, arrays, names, len(probe), options, _run)
    return _run(FunctionProblem(f, vjp, arrays, names), options)


def check_module(module, x, *, dy=None, seed=0, mode=None, elementwise="auto",
                 max_entries=500, rtol=None, atol=None, raise_on_fail=False, kink_check=True,
                 directions=1, invariants=True, step=None, only=None, skip=None,
                 progress="auto", redraw=2):
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
        only, skip: name patterns over "x" and the parameter names
            (``only=["layer3.*"]``, ``skip=["*.bn*"]``).
        redraw: for tensors whose gradient is exactly 0 at x (a ReLU dead for
            every sample), check them again at up to this many new inputs
            drawn like x (same mean and spread, seeded); those still at 0 are
            reported as not tested.
        Other arguments as in ``check_vjp``.
    """
    options = dict(dy=dy, seed=seed, elementwise=elementwise, max_entries=max_entries,
                   rtol=rtol, atol=atol, raise_on_fail=raise_on_fail, kink_check=kink_check,
                   directions=directions, invariants=invariants, step=step, only=only,
                   skip=skip, progress=progress)
    _check_options(options, mode)
    check_float_array(x, "x", finite=True)
    if not isinstance(redraw, (int, np.integer)) or isinstance(redraw, bool) or redraw < 0:
        raise ValueError(f"redraw: expected an int >= 0, got {redraw!r}")
    report = _run(ModuleProblem(module, x, mode), dict(options, raise_on_fail=False))
    _redraw_untested(report, module, x, mode, options, redraw)
    if options["raise_on_fail"] and not report.passed:
        raise AssertionError(str(report))
    return report


def _redraw_untested(report, module, x, mode, options, redraw):
    """Check tensors whose gradient is 0 at x again at new inputs drawn like x."""
    rng = np.random.default_rng([options["seed"], 1])
    for draw in range(1, redraw + 1):
        zero = [name for name, reason in report.untested.items() if "gradient is 0" in reason]
        if not zero:
            return
        new_x = (x.mean() + x.std() * rng.standard_normal(x.shape)).astype(x.dtype)
        again = _run(ModuleProblem(module, new_x, mode),
                     dict(options, only=zero, skip=None, invariants=False, dy=None,
                          raise_on_fail=False, progress=False))
        for name in zero:
            result = again.tensors[name]
            if result.untested is None:
                result.notes.append(f"tested at input draw {draw} (its gradient is 0 at the "
                                    "given x)")
                report.tensors[name] = result
        report.evaluations = tuple(a + b for a, b in zip(report.evaluations, again.evaluations))
    report.failure_reasons.clear()
    _decide(report)
