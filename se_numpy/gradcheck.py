"""Finite-difference gradient checker for any function of NumPy arrays.

    report = check_vjp(f, vjp, (x, w))      # f(x, w) -> y ;  vjp(dy, x, w) -> (dx, dw)
    report = check_module(module, x)        # input and every named parameter
    assert report.passed, report

The scalar that is differentiated is L = Σ y·dy for a fixed random dy, so the
analytical side is exactly what a backward pass computes. Numerics run in
float64 on copies, with central differences
D(h) = (L(x+h) − L(x−h)) / (2h), h = eps^(1/3)·max(1, |x|), and the tolerance of
every entry comes from an error estimate (Richardson: D(h) vs D(2h)).
"""
import copy

import numpy as np

from ._validation import check_float_array, check_shape

EPS = np.finfo(np.float64).eps


class GradcheckReport:
    """Outcome of a check: ``.passed``, ``.tensors`` {name: result dict}, readable ``str()``."""

    def __init__(self, title):
        self.title = title
        self.tensors = {}
        self.problems = []

    @property
    def passed(self):
        return not self.problems and all(t["passed"] for t in self.tensors.values())

    def __bool__(self):
        return self.passed

    def __str__(self):
        lines = [f"{self.title}: {'passed' if self.passed else 'FAILED'}"]
        for problem in self.problems:
            lines.append(f"  FAIL  {problem}")
        for name, result in self.tensors.items():
            lines.append(f"  {name} shape {result['shape']}: "
                         f"{'ok' if result['passed'] else 'FAILED'}, "
                         f"max abs error {result['max_abs_error']:.3g}, "
                         f"{result['failures']} of {result['checked']} entries beyond tolerance")
        return "\n".join(lines)

    __repr__ = __str__


def _central_difference(loss, arrays, tensor_index, flat_index):
    """D(h), D(2h) and the entry's tolerance for one entry of one input."""
    array = arrays[tensor_index].reshape(-1)
    x0 = array[flat_index]
    step = EPS ** (1 / 3) * max(1.0, abs(x0))
    step = (x0 + step) - x0          # exactly representable: x0 ± step are the points used
    values = {}
    for multiple in (1, -1, 2, -2):
        array[flat_index] = x0 + multiple * step
        values[multiple] = loss(arrays)
    array[flat_index] = x0
    d1 = (values[1] - values[-1]) / (2 * step)
    d2 = (values[2] - values[-2]) / (4 * step)
    truncation = abs(d2 - d1) / 3
    rounding = EPS * max(abs(v) for v in values.values()) / step
    tolerance = 4 * (truncation + 16 * rounding) + 1e-10 * abs(d1)
    return d1, tolerance


def _as_tuple(gradients, count):
    if isinstance(gradients, np.ndarray) and count == 1:
        return (gradients,)
    return tuple(gradients)


def _check(f, vjp, inputs, names, dy, seed, title, raise_on_fail):
    report = GradcheckReport(title)
    arrays = [np.array(a, dtype=np.float64) for a in inputs]
    y = np.asarray(f(*[a.copy() for a in arrays]), dtype=np.float64)
    rng = np.random.default_rng(seed)
    dy = rng.standard_normal(y.shape) if dy is None else np.array(dy, dtype=np.float64)
    check_shape(dy, y.shape, "dy")

    def loss(current):
        return float(np.sum(np.asarray(f(*[a.copy() for a in current]), np.float64) * dy))

    gradients = _as_tuple(vjp(dy.copy(), *[a.copy() for a in arrays]), len(arrays))
    if len(gradients) != len(arrays):
        report.problems.append(f"vjp returned {len(gradients)} gradients for {len(arrays)} inputs")
        return report
    for index, (name, array, gradient) in enumerate(zip(names, arrays, gradients)):
        gradient = np.asarray(gradient)
        if gradient.shape != array.shape:
            report.problems.append(f"gradient of {name} has shape {gradient.shape}, "
                                   f"expected {array.shape}")
            continue
        analytical = gradient.reshape(-1).astype(np.float64)
        worst, failures = 0.0, 0
        for flat in range(array.size):
            numerical, tolerance = _central_difference(loss, arrays, index, flat)
            error = abs(analytical[flat] - numerical)
            worst = max(worst, error)
            failures += error > tolerance
        report.tensors[name] = {"shape": array.shape, "max_abs_error": worst,
                                "failures": int(failures), "checked": array.size,
                                "passed": failures == 0}
    if raise_on_fail and not report.passed:
        raise AssertionError(str(report))
    return report


def check_vjp(f, vjp, inputs, *, names=None, dy=None, seed=0, elementwise="auto",
              max_entries=500, rtol=None, atol=None, raise_on_fail=False, kink_check=True,
              directions=3, invariants=True):
    """Compare ``vjp(dy, *inputs)`` with central differences of L = Σ f(*inputs)·dy."""
    if isinstance(inputs, np.ndarray):
        inputs = (inputs,)
    inputs = tuple(inputs)
    for position, array in enumerate(inputs):
        check_float_array(array, f"inputs[{position}]", finite=True)
    if names is None:
        names = ["x"] if len(inputs) == 1 else [f"x{i}" for i in range(len(inputs))]
    return _check(f, vjp, inputs, list(names), dy, seed,
                  f"check_vjp({getattr(f, '__name__', 'f')})", raise_on_fail)


def check_module(module, x, *, dy=None, seed=0, mode=None, elementwise="auto",
                 max_entries=500, rtol=None, atol=None, raise_on_fail=False, kink_check=True,
                 directions=3, invariants=True):
    """Check a Module's dL/dx and every named parameter's gradient, in float64 on a copy."""
    check_float_array(x, "x", finite=True)
    module = copy.deepcopy(module).astype(np.float64)
    if mode is not None:
        module.train(mode == "train")
    named = list(module.named_parameters())
    saved_state = module.state_dict()

    def forward(x_value, *parameter_values):
        module.load_state_dict(saved_state)
        for (_, parameter), value in zip(named, parameter_values):
            np.copyto(parameter.data, value)
        return module(x_value)

    def backward(dy_value, x_value, *parameter_values):
        forward(x_value, *parameter_values)
        module.zero_grad()
        dx = module.backward(dy_value)
        return (dx, *[parameter.grad.copy() for _, parameter in named])

    inputs = (np.asarray(x, np.float64), *[parameter.data.copy() for _, parameter in named])
    names = ["x"] + [name for name, _ in named]
    return _check(forward, backward, inputs, names, dy, seed,
                  f"check_module({type(module).__name__})", raise_on_fail)
