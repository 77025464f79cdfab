"""The gradient checker: passes correct backward passes, fails planted bugs with the right hint.

Every planted bug is a mistake people make when deriving a backward pass by
hand; each test asserts the check fails *and* says why. No tolerance is set
here: the checker's own per-entry tolerances are under test.
"""
import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from se_numpy.gradcheck import STEP_SCALE, check_module, check_vjp, step_for
from se_numpy.nn.module import Module, _require_cache
from se_numpy.nn.parameter import Parameter
from se_numpy.testing import float_arrays, nchw_shapes, relu_safe_arrays


def random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def invariant(report, words):
    """The one invariant whose name contains ``words``."""
    matches = [result for result in report.invariants if words in result.name]
    assert len(matches) == 1, [result.name for result in report.invariants]
    return matches[0]


# ----------------------------------------------------------------- functions and their vjps
def softmax(x):
    shifted = np.exp(x - x.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def softmax_vjp(dy, x):
    # dx_i = y_i (dy_i − Σ_j y_j dy_j)
    y = softmax(x)
    return y * (dy - np.sum(y * dy, axis=1, keepdims=True))


def spatial_mean(x):
    return x.mean(axis=(2, 3))


def spatial_mean_vjp(dz, x):
    height, width = x.shape[2:]
    return np.broadcast_to(dz[:, :, None, None] / (height * width), x.shape).copy()


def spatial_mean_vjp_missing_factor(dz, x):
    return np.broadcast_to(dz[:, :, None, None], x.shape).copy()


CORRECT_CASES = {
    "tanh": (np.tanh, lambda dy, x: dy * (1 - np.tanh(x) ** 2), (random((3, 4)),)),
    "product": (lambda a, b: a * np.exp(b), lambda dy, a, b: (dy * np.exp(b), dy * a * np.exp(b)),
                (random((2, 3), 1), random((2, 3), 2))),
    "matmul": (lambda x, w: x @ w, lambda dy, x, w: (dy @ w.T, x.T @ dy),
               (random((3, 4), 3), random((4, 5), 4))),
    "sum over an axis": (lambda x: x.sum(axis=1),
                         lambda dy, x: np.broadcast_to(dy[:, None, :], x.shape).copy(),
                         (random((2, 3, 4), 5),)),
    "spatial mean": (spatial_mean, spatial_mean_vjp, (random((2, 3, 4, 5), 6),)),
    "softmax": (softmax, softmax_vjp, (random((4, 6), 7),)),
    "softmax, large logits": (softmax, softmax_vjp, (30 * random((3, 5), 8),)),
}


@pytest.mark.parametrize("case", list(CORRECT_CASES))
@pytest.mark.parametrize("elementwise", [True, False])
def test_correct_vjps_pass(case, elementwise):
    f, vjp, inputs = CORRECT_CASES[case]
    report = check_vjp(f, vjp, inputs, elementwise=elementwise)
    assert report.passed, report
    assert all(result.passed for result in report.invariants)
    if elementwise:
        assert all(result.compared and not result.kinks for result in report.tensors.values())


def test_max_over_distinct_values_passes():
    x = np.random.default_rng(0).permutation(np.linspace(-1, 1, 12)).reshape(3, 4)

    def max_vjp(dy, x):
        dx = np.zeros_like(x)
        np.put_along_axis(dx, x.argmax(axis=1)[:, None], dy[:, None], axis=1)
        return dx

    assert check_vjp(lambda x: x.max(axis=1), max_vjp, x, elementwise=True).passed


@settings(max_examples=8)
@given(shape=nchw_shapes(max_side=4, max_channels=4), seed=st.integers(0, 2**16))
def test_scale_by_channel_gate_passes_on_random_shapes(shape, seed):
    # y[n,c,h,w] = x[n,c,h,w] · s[n,c], the SE scale step (Eq. 4)
    x, s = random(shape, seed), random(shape[:2], seed + 1)
    report = check_vjp(lambda x, s: x * s[:, :, None, None],
                       lambda dy, x, s: (dy * s[:, :, None, None], np.sum(dy * x, axis=(2, 3))),
                       (x, s), names=("x", "s"), seed=seed)
    assert report.passed, report


# ----------------------------------------------------------------- planted bugs and their hints
@settings(max_examples=6)
@given(shape=nchw_shapes(min_side=2, max_side=5, max_channels=3))
def test_missing_mean_factor_gives_constant_ratio_hint(shape):
    height, width = shape[2:]
    report = check_vjp(spatial_mean, spatial_mean_vjp_missing_factor, random(shape))
    assert not report.passed
    hint = report["x"].hint
    # analytical = numerical × HW: the factor 1/(HW) of the mean is missing
    assert f"× {height * width}:" in hint and "missing or extra factor" in hint, hint


def test_extra_factor_reported_as_one_over_hw():
    def vjp_divided_twice(dz, x):
        return spatial_mean_vjp(dz, x) / 64
    report = check_vjp(spatial_mean, vjp_divided_twice, random((2, 3, 8, 8)))
    assert not report.passed
    assert "0.01562 = 1/64" in report["x"].hint, report["x"].hint
    assert "1/64" in str(report)


def test_sign_flip_hint():
    report = check_vjp(np.tanh, lambda dy, x: -dy * (1 - np.tanh(x) ** 2), random((3, 4)))
    assert not report.passed
    assert "sign flip" in report["x"].hint


def test_factor_two_hint():
    report = check_vjp(lambda x: 0.5 * x ** 2, lambda dy, x: 2 * dy * x, random((5,)))
    assert not report.passed
    assert "× 2:" in report["x"].hint and "factor 2" in report["x"].hint


def test_gradient_never_computed_hint():
    report = check_vjp(lambda x, b: x + b, lambda dy, x, b: (dy, np.zeros_like(b)),
                       (random((3, 4)), random((3, 4), 1)), names=("x", "b"))
    assert not report.passed
    assert report["x"].passed and not report["b"].passed
    assert "zero everywhere" in report["b"].hint


def test_missing_path_hint():
    # channel 0 is squared, the others go through tanh; the backward forgets channel 0
    def f(x):
        return np.concatenate([x[:, :1] ** 2, np.tanh(x[:, 1:])], axis=1)

    def vjp_without_first_channel(dy, x):
        dx = np.zeros_like(x)
        dx[:, 1:] = dy[:, 1:] * (1 - np.tanh(x[:, 1:]) ** 2)
        return dx

    report = check_vjp(f, vjp_without_first_channel, random((2, 3, 2, 2)))
    assert not report.passed
    assert "missing path" in report["x"].hint


def test_wrong_channel_hint():
    def vjp_wrong_in_channel_2(dy, x):
        dx = dy * (1 - np.tanh(x) ** 2)
        dx[:, 2] *= 3
        return dx

    report = check_vjp(np.tanh, vjp_wrong_in_channel_2, random((2, 4, 3, 3)))
    hint = report["x"].hint
    assert not report.passed
    assert "indices 2 of axis 1" in hint and "× 3" in hint, hint


def test_swapped_gradients_hint():
    report = check_vjp(lambda a, b: a * b, lambda dy, a, b: (dy * a, dy * b),
                       (random((3, 3), 1), random((3, 3), 2)), names=("a", "b"))
    assert not report.passed
    assert "wrong order" in report["a"].hint and "numerical gradient of b" in report["a"].hint


def test_missing_transpose_hint():
    # y = x Wᵀ: dW = dyᵀ x; the planted bug returns its transpose
    report = check_vjp(lambda x, w: x @ w.T, lambda dy, x, w: (dy @ w, x.T @ dy),
                       (random((5, 3), 1), random((3, 3), 2)), names=("x", "w"))
    assert not report.passed
    assert "transpose" in report["w"].hint


def test_bug_in_one_entry_caught_by_directional_test_alone():
    def vjp_wrong_at_one_entry(dy, x):
        dx = dy * (1 - np.tanh(x) ** 2)
        dx.flat[7] += 1e-4
        return dx

    report = check_vjp(np.tanh, vjp_wrong_at_one_entry, random((4, 5)), elementwise=False)
    assert not report.passed
    assert all(not direction.passed for direction in report.directions)


def test_report_lists_worst_entries_with_multi_index():
    report = check_vjp(np.tanh, lambda dy, x: -dy * (1 - np.tanh(x) ** 2), random((2, 3)))
    worst = report["x"].worst()
    assert len(worst) == 5 and all(len(index) == 2 for index, *_ in worst)
    index, analytical, numerical, error, tolerance = worst[0]
    assert analytical == pytest.approx(-numerical, rel=1e-6) and error > tolerance
    assert str(index) in str(report)


def test_raise_on_fail_raises_with_the_report():
    with pytest.raises(AssertionError, match="sign flip"):
        check_vjp(np.tanh, lambda dy, x: -dy * (1 - np.tanh(x) ** 2), random((3,)),
                  raise_on_fail=True)


# ----------------------------------------------------------------- kinks
def relu(x):
    return np.maximum(x, 0)


def test_relu_exactly_at_zero_is_labelled_a_kink():
    x = np.array([[0.5, 0.0, -0.7], [0.0, 1.2, -0.3]])
    report = check_vjp(relu, lambda dy, x: dy * (x > 0), x)
    assert report.passed, report
    assert report.kinks == {"x": [(0, 1), (1, 0)]}
    assert "kinks" in str(report)


def test_relu_at_zero_fails_without_kink_check():
    # the central difference at 0 is dy/2, neither one-sided derivative: a kink must not be compared
    x = np.array([[0.5, 0.0, -0.7], [0.0, 1.2, -0.3]])
    report = check_vjp(relu, lambda dy, x: dy * (x > 0), x, kink_check=False)
    assert not report.passed
    assert report["x"].failures == 2


def test_kink_detection_does_not_hide_a_wrong_relu_gradient():
    x = np.array([[0.5, -0.2, -0.7], [0.9, 1.2, -0.3]])
    report = check_vjp(relu, lambda dy, x: dy * (x < 0), x)
    assert not report.passed
    assert report["x"].failures == 6 and not report["x"].kinks


def test_kink_just_inside_the_first_step_is_stepped_past():
    # kink at distance 2h/3 from x: the first rung straddles it, the smaller ones do not,
    # so the entry is compared (and agrees) at a step below the distance instead of labelled
    offset = 2 * STEP_SCALE / 3
    x = np.array([0.4, -offset, 0.8])
    report = check_vjp(relu, lambda dy, x: dy * (x > 0), x, elementwise=True)
    assert report.passed and not report.kinks, report
    assert report["x"].steps[1] < offset


def test_kink_closer_than_any_step_is_labelled():
    x = np.array([0.4, -1e-14, 0.8])
    report = check_vjp(relu, lambda dy, x: dy * (x > 0), x, elementwise=True)
    assert report.passed, report
    assert report.kinks == {"x": [(1,)]}


def test_kink_does_not_excuse_a_value_outside_the_one_sided_slopes():
    # at ReLU(0) the one-sided derivatives are 0 and dy: 3·dy is neither, and fails
    x = np.array([0.4, 0.0, 0.8])
    report = check_vjp(relu, lambda dy, x: dy * np.where(x == 0, 3.0, x > 0), x)
    assert not report.passed and report["x"].failures == 1 and not report.kinks, report


def test_max_tie_is_labelled_a_kink():
    x = np.array([[0.3, 0.9, 0.9, -0.1], [0.2, -0.4, 0.6, 0.1]])

    def first_argmax_vjp(dy, x):
        dx = np.zeros_like(x)
        np.put_along_axis(dx, x.argmax(axis=1)[:, None], dy[:, None], axis=1)
        return dx

    report = check_vjp(lambda x: x.max(axis=1), first_argmax_vjp, x)
    assert report.passed, report
    assert report.kinks == {"x": [(0, 1), (0, 2)]}


def test_mostly_kinks_is_inconclusive():
    report = check_vjp(relu, lambda dy, x: dy * (x > 0), np.zeros((2, 3)))
    assert not report.passed
    assert "mostly kinks" in str(report)


@settings(max_examples=5)
@given(x=relu_safe_arrays((3, 4)))
def test_relu_on_relu_safe_arrays_has_no_kinks(x):
    report = check_vjp(relu, lambda dy, x: dy * (x > 0), x, elementwise=True)
    assert report.passed and not report.kinks, report


# ----------------------------------------------------------------- invariants
def test_vjp_that_mutates_its_input_fails():
    def vjp(dy, x):
        dx = dy * (1 - np.tanh(x) ** 2)
        x *= 0
        return dx

    report = check_vjp(np.tanh, vjp, random((3,)))
    result = invariant(report, "vjp leaves")
    assert not report.passed and not result.passed and "x" in result.detail


def test_vjp_that_mutates_dy_fails():
    def vjp(dy, x):
        dy *= 1 - np.tanh(x) ** 2
        return dy

    report = check_vjp(np.tanh, vjp, random((3,)))
    assert not report.passed
    assert "dy" in invariant(report, "vjp leaves").detail


def test_forward_that_mutates_its_input_fails():
    def tanh_in_place(x):
        return np.tanh(x, out=x)

    report = check_vjp(tanh_in_place, lambda dy, x: dy * (1 - np.tanh(x) ** 2), random((3,)))
    assert not report.passed and not invariant(report, "f leaves").passed


def test_vjp_not_linear_in_dy_fails():
    report = check_vjp(np.tanh, lambda dy, x: dy * np.abs(dy) * (1 - np.tanh(x) ** 2),
                       random((3, 2)))
    result = invariant(report, "linear")
    assert not report.passed and not result.passed and "not linear" in result.detail


def test_vjp_with_a_term_independent_of_dy_fails():
    report = check_vjp(np.tanh, lambda dy, x: dy * (1 - np.tanh(x) ** 2) + 1e-3 * x,
                       random((3, 2)))
    assert not invariant(report, "zero upstream").passed


def test_vjp_with_hidden_state_fails():
    calls = []

    def vjp_with_memory(dy, x):
        calls.append(1)
        return dy * (1 - np.tanh(x) ** 2) * (1 + 1e-6 * len(calls))

    report = check_vjp(np.tanh, vjp_with_memory, random((4,)))
    assert not invariant(report, "called twice").passed and not report.passed


def test_wrong_gradient_dtype_fails():
    x = random((3, 4)).astype(np.float32)
    report = check_vjp(np.tanh, lambda dy, x: (dy * (1 - np.tanh(x) ** 2)).astype(np.float64), x)
    result = invariant(report, "dtypes")
    assert not report.passed and "float32" in result.detail and "float64" in result.detail


def test_float32_input_with_float32_gradient_passes_in_float64():
    x = random((3, 4)).astype(np.float32)
    report = check_vjp(np.tanh, lambda dy, x: dy * (1 - np.tanh(x) ** 2), x, elementwise=True)
    assert report.passed, report
    # the per-entry tolerances are ~1e-9: only a float64 evaluation can meet them
    assert report["x"].tolerance.max() < 1e-7


def test_wrong_gradient_shape_fails():
    report = check_vjp(np.tanh, lambda dy, x: (dy * (1 - np.tanh(x) ** 2)).reshape(-1),
                       random((3, 4)))
    assert not report.passed
    assert "(12,)" in report["x"].problem


def test_wrong_number_of_gradients_fails_without_crashing():
    report = check_vjp(lambda a, b: a * b, lambda dy, a, b: dy * b, (random(3), random(3, 1)))
    assert not report.passed
    assert "one per input" in str(report)


# ----------------------------------------------------------------- sampling and options
def test_sampled_entries_cover_every_channel():
    x = random((3, 6, 5, 5))
    report = check_vjp(np.tanh, lambda dy, x: dy * (1 - np.tanh(x) ** 2), x,
                       elementwise=True, max_entries=20)
    result = report["x"]
    channels = np.unravel_index(result.indices, x.shape)[1]
    assert result.indices.size == 20 and set(channels) == set(range(6))
    assert report.passed


def test_user_tolerance_replaces_the_estimate():
    report = check_vjp(np.tanh, lambda dy, x: 1.01 * dy * (1 - np.tanh(x) ** 2), random((4,)),
                       rtol=0.05)
    # a 1% error is inside a 5% relative tolerance, far outside the estimated one
    assert report.passed
    assert not check_vjp(np.tanh, lambda dy, x: 1.01 * dy * (1 - np.tanh(x) ** 2),
                         random((4,))).passed


@pytest.mark.parametrize("arguments, error", [
    (dict(inputs=np.arange(3)), TypeError),
    (dict(inputs=np.array([1.0, np.nan])), ValueError),
    (dict(inputs=random(3), names=("a", "b")), ValueError),
    (dict(inputs=random(3), elementwise="yes"), ValueError),
    (dict(inputs=random(3), dy=random(4)), ValueError),
    (dict(inputs=random(3), max_entries=0), ValueError),
])
def test_bad_arguments_raise(arguments, error):
    with pytest.raises(error):
        check_vjp(np.tanh, lambda dy, x: dy * (1 - np.tanh(x) ** 2), **arguments)


@settings(max_examples=30)
@given(value=st.floats(-1e6, 1e6, allow_nan=False))
def test_step_is_exactly_representable_and_relative(value):
    step = step_for(value)
    assert (value + step) - value == step
    assert 0.5 * STEP_SCALE * max(1.0, abs(value)) <= step <= 2 * STEP_SCALE * max(1.0, abs(value))


# ----------------------------------------------------------------- check_module
class Affine(Module):
    """y = x·w + b for x (N, in), w (in, out), b (out,), written out for these tests."""

    def __init__(self, inputs=4, outputs=3, dtype=np.float64, bias_factor=1.0, assign=False):
        super().__init__()
        rng = np.random.default_rng(0)
        self.w = Parameter(rng.standard_normal((inputs, outputs)).astype(dtype))
        self.b = Parameter(rng.standard_normal(outputs).astype(dtype))
        self.bias_factor, self.assign = bias_factor, assign

    def forward(self, x):
        self._cache = x
        return x @ self.w.data + self.b.data

    def backward(self, dy):
        x = _require_cache(self)
        if self.assign:               # planted bug: overwrites p.grad instead of adding
            self.w.grad = x.T @ dy
        else:
            self.w.accumulate(x.T @ dy)
        self.b.accumulate(self.bias_factor * dy.sum(axis=0))
        return dy @ self.w.data.T


class Centering(Module):
    """y = x − batch mean in training, x − running_mean in eval; updates running_mean."""

    def __init__(self, features=3):
        super().__init__()
        self.register_buffer("running_mean", np.zeros(features))

    def forward(self, x):
        if self.training:
            mean = x.mean(axis=0)
            # in place: assigning the attribute would unregister the buffer
            self.running_mean[...] = 0.9 * self.running_mean + 0.1 * mean
            return x - mean
        return x - self.running_mean

    def backward(self, dy):
        return dy - dy.mean(axis=0) if self.training else dy


class Halving(Module):
    """y = g·x, where the buffer g halves in place at every training forward (as batch
    norm updates its running statistics): a function of x alone only if every
    evaluation starts from the same g."""

    def __init__(self):
        super().__init__()
        self.register_buffer("gain", np.ones(()))

    def forward(self, x):
        self._cache = self.gain.copy()
        y = self.gain * x
        if self.training:
            self.gain[...] = 0.5 * self.gain
        return y

    def backward(self, dy):
        return _require_cache(self) * dy


def test_check_module_passes_a_correct_layer():
    report = check_module(Affine(), random((5, 4)), elementwise=True)
    assert report.passed, report
    assert list(report.tensors) == ["x", "w", "b"]
    assert all(result.compared for result in report.tensors.values())
    assert invariant(report, "adds into p.grad").passed


def test_check_module_catches_a_wrong_parameter_gradient():
    report = check_module(Affine(bias_factor=2.0), random((5, 4)))
    assert not report.passed
    assert report["x"].passed and report["w"].passed and not report["b"].passed
    assert "factor 2" in report["b"].hint


def test_check_module_catches_assignment_instead_of_accumulation():
    report = check_module(Affine(assign=True), random((5, 4)))
    result = invariant(report, "adds into p.grad")
    assert not report.passed and not result.passed and "w" in result.detail


def test_check_module_works_in_float64_and_leaves_the_float32_module_alone():
    module = Affine(dtype=np.float32)
    before = copy.deepcopy(module.state_dict())
    x = random((5, 4)).astype(np.float32)
    report = check_module(module, x, elementwise=True)
    assert report.passed, report
    # tolerances near 1e-9 can only be met by float64 evaluations (float32 eps is 1e-7)
    assert max(result.tolerance.max() for result in report.tensors.values()) < 1e-7
    assert report["w"].dtype == np.float32
    assert module.w.data.dtype == np.float32 and not np.any(module.w.grad)
    for name, value in module.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_check_module_resets_buffers_between_evaluations():
    module = Centering()
    report = check_module(module, random((4, 3)), elementwise=True)
    assert report.passed, report
    assert not np.any(module.running_mean)          # the caller's buffer is untouched
    assert check_module(module, random((4, 3)), mode="eval").passed
    # a forward that reads the buffer it updates: without the reset, each evaluation
    # of the central differences would see another gain
    halving = Halving()
    report = check_module(halving, random((4, 3)), elementwise=True)
    assert report.passed, report
    assert halving.gain == 1.0


@given(x=float_arrays((3, 4)))
@settings(max_examples=5)
def test_check_module_on_generated_inputs(x):
    assert check_module(Affine(), x).passed


def test_tensor_results_also_read_like_dictionaries():
    report = check_vjp(np.tanh, lambda dy, x: -dy * (1 - np.tanh(x) ** 2), random((2, 3)))
    result = report.tensors["x"]
    assert result["passed"] is False and result["checked"] == 6 and result["shape"] == (2, 3)
    with pytest.raises(KeyError):
        result["no such field"]


def test_report_of_a_missing_mean_factor_prints_the_lesson():
    # the example report of docs/gradcheck.md: run with -s to see it
    report = check_vjp(spatial_mean, spatial_mean_vjp_missing_factor, random((2, 3, 4, 4)))
    print(report)
    text = str(report)
    assert not report.passed and "× 16" in report["x"].hint
    assert "bad entries: (0, 0, 0, 0)" in text and "cost:" in text and "step" in text


def test_progress_lines_go_to_stderr(capsys):
    check_vjp(lambda a, b: a * b, lambda dy, a, b: (dy * b, dy * a),
              (random(3, 1), random(3, 2)), names=("a", "b"), progress=True)
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[1].strip() for line in err] == ["1/2 a", "2/2 b"]


@pytest.mark.parametrize("options, error", [
    (dict(step=0.0), ValueError), (dict(step={"y": 1e-3}), ValueError),
    (dict(step=(1e-3, 1e-3)), ValueError), (dict(only="x"), TypeError),
    (dict(progress="sometimes"), ValueError),
])
def test_bad_new_options_raise(options, error):
    with pytest.raises(error):
        check_vjp(np.tanh, lambda dy, x: dy * (1 - np.tanh(x) ** 2), random(3), **options)


def test_only_and_skip_filter_inputs_by_name():
    report = check_vjp(lambda a, b: a * b, lambda dy, a, b: (dy * b, 2 * dy * a),
                       (random(3, 1), random(3, 2)), names=("a", "b"), skip=["b"])
    assert report.passed and "b" in report.untested and "left out" in str(report)
    assert not check_vjp(lambda a, b: a * b, lambda dy, a, b: (dy * b, 2 * dy * a),
                         (random(3, 1), random(3, 2)), names=("a", "b"), only=["b"]).passed


class ReluAffine(Module):
    """y = relu(x·w + b), x (N, 2), w (2, 1), b (1,): dead for every row of the x below."""

    def __init__(self):
        super().__init__()
        self.w = Parameter(np.ones((2, 1)))
        self.b = Parameter(np.array([2.2]))

    def forward(self, x):
        self._cache = x
        self._gate = (x @ self.w.data + self.b.data) > 0
        return np.maximum(x @ self.w.data + self.b.data, 0)

    def backward(self, dy):
        x = _require_cache(self)
        gated = dy * self._gate
        self.w.accumulate(x.T @ gated)
        self.b.accumulate(gated.sum(axis=0))
        return gated @ self.w.data.T


def test_check_module_redraws_inputs_for_tensors_with_zero_gradient():
    x = np.array([[-1.0, -2.0], [-1.5, -1.0], [-2.0, -0.9]])    # every row sums below -2.2
    stuck = check_module(ReluAffine(), x, redraw=0)
    assert stuck.passed and set(stuck.untested) == {"x", "w", "b"}
    report = check_module(ReluAffine(), x)                     # default: 2 new draws like x
    assert report.passed and not report.untested, report
    assert "tested at input draw" in str(report)
