"""Eight ways to fool a gradient checker, each reduced to a few lines.

Each test is a case where a checker with a fixed step h = eps^(1/3)·max(1, |x|),
one directional test over all inputs and float64 tolerances gives the wrong
verdict or the wrong words. No tolerance is set here: the checker's own
steps and tolerances are under test.
"""
import numpy as np
import pytest

from se_numpy import functional as F
from se_numpy.gradcheck import check_vjp


def random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def tanh_vjp(shift=0.0, scale=1.0, factor=1.0):
    return lambda dy, x: factor * dy * scale * (1 - np.tanh(scale * x - shift) ** 2)


def layer_norm(x):
    centred = x - x.mean()
    return centred / np.sqrt(np.mean(centred ** 2))


def layer_norm_vjp(dy, x, factor=1.0):
    # y = c/σ with c = x − mean, σ² = mean(c²): dx = (dy − mean(dy) − y·mean(dy·y)) / σ
    centred = x - x.mean()
    sigma = np.sqrt(np.mean(centred ** 2))
    y = centred / sigma
    return factor * (dy - dy.mean() - y * np.mean(dy * y)) / sigma


# ----------------------------------------------------------------- 1. scale-aware step
@pytest.mark.parametrize("case", ["shifted tanh", "layer norm at 1e6", "steep tanh"])
def test_length_scale_other_than_max_one_x_passes_and_a_factor_two_fails(case):
    if case == "shifted tanh":     # length scale 1 at |x| = 1e6
        f, vjp = (lambda x: np.tanh(x - 1e6)), tanh_vjp(shift=1e6)
        bad = tanh_vjp(shift=1e6, factor=2.0)
        x = 1e6 + random(5)
    elif case == "layer norm at 1e6":
        f, vjp, bad = layer_norm, layer_norm_vjp, (lambda dy, x: layer_norm_vjp(dy, x, 2.0))
        x = 1e6 + random(6, seed=5)     # seed 0 is the seed of dy: dy ∝ y gives dx = 0
    else:                          # length scale 1e-6 at |x| ~ 1e-6
        f, vjp = (lambda x: np.tanh(1e6 * x)), tanh_vjp(scale=1e6)
        bad = tanh_vjp(scale=1e6, factor=2.0)
        x = 1e-6 * random(5)
    good = check_vjp(f, vjp, x, elementwise=True)
    assert good.passed and not good.kinks, good
    wrong = check_vjp(f, bad, x)
    # the bug is told apart from the correct function: failures, not kinks, and the factor
    assert not wrong.passed and wrong["x"].failures > 0 and not wrong.kinks, wrong
    assert "× 2" in wrong["x"].hint, wrong["x"].hint


def test_the_step_can_be_set_and_is_reported():
    x = 1e6 + random(5)
    report = check_vjp(lambda x: np.tanh(x - 1e6), tanh_vjp(shift=1e6), x, step=1e-3)
    assert report.passed, report
    assert report["x"].step == pytest.approx(1e-3) and "step 0.001" in str(report)
    chosen = check_vjp(lambda x: np.tanh(x - 1e6), tanh_vjp(shift=1e6), x)
    # chosen from the function: far below eps^(1/3)·|x| ≈ 6 for a length scale of 1
    assert chosen["x"].step < 1e-2


# ----------------------------------------------------------------- 2. magnitudes
def test_small_entry_next_to_a_large_one_is_seen_at_its_own_scale():
    c = np.array([1e6, 1e-3])
    x = random(2)

    def wrong_in_the_small_entry(dy, x):
        return dy * c * np.array([1.0, 1.1])      # 10 % wrong where the gradient is 1e-3

    assert check_vjp(lambda x: c * x, lambda dy, x: dy * c, x).passed
    report = check_vjp(lambda x: c * x, wrong_in_the_small_entry, x)
    assert not report.passed, report
    assert report["x"].located == [(1,)]


# ----------------------------------------------------------------- 3. float32 functions
def tanh32(x):
    return np.tanh(x.astype(np.float32))


def tanh32_vjp(dy, x, factor=1.0):
    y = np.tanh(x.astype(np.float32))
    return (factor * dy.astype(np.float32) * (1 - y * y)).astype(np.float32)


def test_float32_function_passes_and_its_one_percent_bug_fails():
    x = random((4, 5)).astype(np.float32)
    good = check_vjp(tanh32, tanh32_vjp, x, elementwise=True)
    assert good.passed and not good.kinks, good
    assert "float32" in good.notes[0]
    bad = check_vjp(tanh32, lambda dy, x: tanh32_vjp(dy, x, 1.01), x)
    assert not bad.passed and bad["x"].failures > 0 and not bad.kinks, bad


# ----------------------------------------------------------------- 4. stationary points
def test_smooth_stationary_point_is_not_a_kink_and_does_not_hide_a_bug():
    x = np.array([0.5, 1.2, -0.7, 1e-4])

    def zeroes_small_x(dy, x):
        return dy * np.where(np.abs(x) < 1e-3, 0.0, x)

    report = check_vjp(lambda x: 0.5 * x ** 2, zeroes_small_x, x)
    assert not report.passed and not report.kinks, report
    assert report["x"].located == [(3,)]


def test_factor_two_near_the_minimum_of_a_sum_of_squares_is_a_failure():
    x = 1e-5 * random(6)
    report = check_vjp(lambda x: np.sum(x ** 2, keepdims=True), lambda dy, x: 4 * dy * x, x)
    assert not report.passed and not report.kinks and report["x"].failures == 6, report
    assert "× 2" in report["x"].hint


# ----------------------------------------------------------------- 5. hints with premises
def test_no_missing_path_hint_without_failing_entries():
    report = check_vjp(lambda x: np.maximum(x, 0), lambda dy, x: dy * (x > 0), np.zeros((2, 3)))
    assert not report.passed
    assert report["x"].hint is None or "missing path" not in report["x"].hint


def test_dropped_squeeze_path_is_not_called_an_indexing_mistake():
    # sample 0 has both excitation ReLUs inactive, so its squeeze path contributes 0 there
    rng = np.random.default_rng(1)
    x = np.concatenate([-1 - rng.random((1, 3, 3, 3)), 1 + rng.random((1, 3, 3, 3))])
    w1, b1 = np.full((2, 3), 0.5), np.zeros(2)
    w2, b2 = rng.standard_normal((3, 2)), rng.standard_normal(3)

    def forward(x):
        return F.se_block_forward(x, w1, b1, w2, b2)[0]

    def direct_path_only(dy, x):
        s = F.se_block_forward(x, w1, b1, w2, b2)[1]["s"]
        return dy * s[:, :, None, None]

    report = check_vjp(forward, direct_path_only, x)
    assert not report.passed
    assert "indexing mistake" not in str(report["x"].hint)


def attention(q, k, v, d=4):
    scores = q @ k.T / np.sqrt(d)
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    return weights @ v, weights


def attention_vjp(dy, q, k, v, d=4, scale=None):
    scale = 1 / np.sqrt(d) if scale is None else scale
    _, weights = attention(q, k, v, d)
    dweights = dy @ v.T
    dscores = weights * (dweights - np.sum(weights * dweights, axis=1, keepdims=True))
    return dscores @ k * scale, dscores.T @ q * scale, weights.T @ dy


def test_missing_one_over_sqrt_d_is_recognised():
    q, k, v = random((3, 4), 1), random((5, 4), 2), random((5, 2), 3)
    report = check_vjp(lambda q, k, v: attention(q, k, v)[0],
                       lambda dy, q, k, v: attention_vjp(dy, q, k, v, scale=1.0),
                       (q, k, v), names=("q", "k", "v"))
    assert not report.passed and report["v"].passed
    assert "√4" in report["q"].hint and "1/√d" in report["q"].hint, report["q"].hint


def test_rounding_level_error_is_not_called_a_missing_factor():
    x = random((3, 4))

    def tanh_vjp_in_float32(dy, x):       # a dtype bug: float32 inside, float64 outside
        y = np.tanh(x.astype(np.float32))
        return (dy.astype(np.float32) * (1 - y * y)).astype(np.float64)

    report = check_vjp(np.tanh, tanh_vjp_in_float32, x)
    assert not report.passed
    assert "missing or extra factor" not in report["x"].hint
    assert "not a missing factor" in report["x"].hint, report["x"].hint


# ----------------------------------------------------------------- 6. zero gradients
def test_tensor_with_zero_gradient_is_reported_untested():
    # a dead ReLU: w·x + b < 0, so the gradients of w and b are exactly 0 and a ×2 bug hides
    x, w, b = random(4), 0.1 * random(4, 1), np.array([-5.0])

    def f(x, w, b):
        return np.maximum(x * w + b, 0.0)

    def doubled(dy, x, w, b):
        gate = (x * w + b > 0) * dy
        return 2 * gate * w, 2 * gate * x, 2 * np.sum(gate, keepdims=True)

    report = check_vjp(f, doubled, (x, w, b), names=("x", "w", "b"))
    assert set(report.untested) == {"x", "w", "b"}
    assert "gradient is 0 here" in report.untested["w"]
    assert "3 of 3 tensors not tested" in str(report)


# ----------------------------------------------------------------- 7. large tensors
def test_one_wrong_entry_in_a_large_tensor_is_located_cheaply():
    x = random((10, 10, 10, 10))               # 10^4 entries, far above max_entries

    def wrong_at_one_entry(dy, x):
        dx = dy * (1 - np.tanh(x) ** 2)
        dx[3, 1, 4, 1] *= 1.001                # 0.1 % in one entry
        return dx

    report = check_vjp(np.tanh, wrong_at_one_entry, x)
    assert not report.passed
    assert report["x"].located == [(3, 1, 4, 1)], report
    forward_calls, _ = report.evaluations
    assert forward_calls < 2000                # 5 per entry would be 50 000


# ----------------------------------------------------------------- 8. tuple outputs
def test_tuple_outputs_get_one_report_each():
    def f(x):
        return np.sin(x), np.sum(x ** 2, axis=1)          # shapes (2, 3) and (2,)

    def vjp_wrong_in_output_1(dy, x):
        dsin, dsquares = dy
        return dsin * np.cos(x) + 3 * dsquares[:, None] * x   # 3x: should be 2x

    x = random((2, 3))
    good = check_vjp(f, lambda dy, x: dy[0] * np.cos(x) + 2 * dy[1][:, None] * x, x)
    assert good.passed and len(good) == 2, good
    report = check_vjp(f, vjp_wrong_in_output_1, x)
    assert not report.passed and report[0].passed and not report[1].passed, report
    assert "× 1.5" in report[1]["x"].hint


def test_a_module_returning_a_tuple_is_refused_clearly():
    with pytest.raises(TypeError, match="tuple of 2 outputs"):
        from se_numpy.gradcheck.problems import as_outputs
        as_outputs((np.zeros(2), np.zeros(3)), "module forward")
