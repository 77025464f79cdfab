"""Max, average and global average pooling: loop evaluation, gradients, ties, dtypes, errors.

Max pooling is differentiable except where two inputs of a window tie. The
gradient tests avoid ties by construction: inputs are a random permutation of
distinct values 0.1 apart, far wider than the finite-difference step (1e-6),
so no perturbation can change a window's winner.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from se_numpy.functional.pool import (avg_pool2d_backward, avg_pool2d_forward,
                                      global_avg_pool_backward, global_avg_pool_forward,
                                      max_pool2d_backward, max_pool2d_forward)
from se_numpy.gradcheck import check_module
from se_numpy.nn.pool import AvgPool2d, GlobalAvgPool, MaxPool2d
from finite_differences import numerical_vjp

# Central differences in float64, step 1e-6: pooling is piecewise linear, so the truncation error
# is 0 away from ties and only rounding (~1e-16·|f|/step ~ 1e-9) remains; 1e-6 is well above it.
TOLERANCE = 1e-6   # with finite_differences.STEP = 1e-6


def distinct_values(shape, rng):
    """A random permutation of 0, 0.1, 0.2, ...: no two entries within 0.1 of each other."""
    return rng.permutation(np.prod(shape)).reshape(shape) * 0.1


def loop_pool(x, kernel, stride, padding, reduce):
    """Apply ``reduce`` ("max" or "mean") to every window; padding is −∞ for max, 0 for mean."""
    n_batch, channels, height, width = x.shape
    out_height = (height + 2 * padding - kernel) // stride + 1
    out_width = (width + 2 * padding - kernel) // stride + 1
    out = np.zeros((n_batch, channels, out_height, out_width))
    for n in range(n_batch):
        for c in range(channels):
            for p in range(out_height):
                for q in range(out_width):
                    window = []
                    for a in range(kernel):
                        for b in range(kernel):
                            row, column = p * stride - padding + a, q * stride - padding + b
                            inside = 0 <= row < height and 0 <= column < width
                            window.append(x[n, c, row, column] if inside else
                                          (-np.inf if reduce == "max" else 0.0))
                    out[n, c, p, q] = max(window) if reduce == "max" else sum(window) / len(window)
    return out


@st.composite
def pool_cases(draw):
    """Square windows, stride possibly smaller than the kernel (overlap), padding <= kernel/2."""
    kernel = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 3))
    padding = draw(st.integers(0, kernel // 2))
    size = st.integers(max(1, kernel - 2 * padding), kernel + 3)
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(size), draw(size))
    return dict(shape=shape, kernel=kernel, stride=stride, padding=padding,
                seed=draw(st.integers(0, 2**16)))


POOLS = {"max": (max_pool2d_forward, max_pool2d_backward),
         "mean": (avg_pool2d_forward, avg_pool2d_backward)}


# --------------------------------------------------------------------------- forward
@pytest.mark.parametrize("reduce", ["max", "mean"])
@given(case=pool_cases())
def test_forward_matches_loops(reduce, case):
    x = np.random.default_rng(case["seed"]).normal(size=case["shape"])
    forward, _ = POOLS[reduce]
    out, _ = forward(x, case["kernel"], case["stride"], case["padding"])
    expected = loop_pool(x, case["kernel"], case["stride"], case["padding"], reduce)
    np.testing.assert_allclose(out, expected, rtol=1e-13, atol=1e-13)


def test_max_pool_overlapping_windows_by_hand():
    # Windows (1, 2) with stride 1 over [1, 5, 2]: both windows pick the 5, so it collects 1 + 2.
    x = np.array([1.0, 5.0, 2.0]).reshape(1, 1, 1, 3)
    out, cache = max_pool2d_forward(x, (1, 2), stride=1)
    np.testing.assert_array_equal(out.ravel(), [5.0, 5.0])
    dx = max_pool2d_backward(np.array([1.0, 2.0]).reshape(1, 1, 1, 2), cache)
    np.testing.assert_array_equal(dx.ravel(), [0.0, 3.0, 0.0])


def test_max_pool_tie_goes_to_first_in_row_major_order():
    x = np.array([[3.0, 1.0], [0.0, 3.0]]).reshape(1, 1, 2, 2)
    _, cache = max_pool2d_forward(x, 2)
    dx = max_pool2d_backward(np.ones((1, 1, 1, 1)), cache)
    np.testing.assert_array_equal(dx.reshape(2, 2), [[1.0, 0.0], [0.0, 0.0]])


def test_avg_pool_counts_padding_as_zeros_by_hand():
    # 2x2 ones, 3x3 windows with padding 1: every window holds the 4 ones and 5 zeros of padding.
    out, cache = avg_pool2d_forward(np.ones((1, 1, 2, 2)), 3, stride=1, padding=1)
    np.testing.assert_allclose(out, np.full((1, 1, 2, 2), 4 / 9), rtol=1e-15)
    dx = avg_pool2d_backward(np.ones((1, 1, 2, 2)), cache)
    np.testing.assert_allclose(dx, np.full((1, 1, 2, 2), 4 / 9), rtol=1e-15)   # 4 windows · 1/9


def test_global_avg_pool_forward_and_backward_by_hand():
    x = np.arange(8.0).reshape(1, 2, 2, 2)
    z, cache = global_avg_pool_forward(x)
    np.testing.assert_array_equal(z, [[1.5, 5.5]])
    dx = global_avg_pool_backward(np.array([[4.0, 8.0]]), cache)
    np.testing.assert_array_equal(dx, np.concatenate([np.full((1, 1, 2, 2), 1.0),
                                                      np.full((1, 1, 2, 2), 2.0)], axis=1))


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("reduce", ["max", "mean"])
@given(case=pool_cases())
def test_gradients_match_finite_differences(reduce, case):
    rng = np.random.default_rng(case["seed"])
    x = distinct_values(case["shape"], rng)
    forward, backward = POOLS[reduce]
    out, cache = forward(x, case["kernel"], case["stride"], case["padding"])
    dout = rng.normal(size=out.shape)
    dx = backward(dout, cache)

    def run():
        return forward(x, case["kernel"], case["stride"], case["padding"])[0]

    np.testing.assert_allclose(dx, numerical_vjp(run, x, dout), rtol=TOLERANCE, atol=TOLERANCE)


@pytest.mark.parametrize("reduce", ["max", "mean"])
@given(case=pool_cases())
def test_batch_gradients_are_stacked_per_sample_gradients(reduce, case):
    rng = np.random.default_rng(case["seed"])
    x = distinct_values((3,) + case["shape"][1:], rng)
    forward, backward = POOLS[reduce]
    arguments = (case["kernel"], case["stride"], case["padding"])
    out, cache = forward(x, *arguments)
    dout = rng.normal(size=out.shape)
    dx = backward(dout, cache)
    for n in range(3):
        out_n, cache_n = forward(x[n:n + 1], *arguments)
        np.testing.assert_array_equal(out_n, out[n:n + 1])
        np.testing.assert_allclose(dx[n:n + 1], backward(dout[n:n + 1], cache_n), rtol=1e-14)


@given(st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
       st.integers(0, 2**16))
def test_global_avg_pool_gradient_matches_finite_differences(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    z, cache = global_avg_pool_forward(x)
    dz = rng.normal(size=z.shape)
    numerical = numerical_vjp(lambda: global_avg_pool_forward(x)[0], x, dz)
    np.testing.assert_allclose(global_avg_pool_backward(dz, cache), numerical,
                               rtol=TOLERANCE, atol=TOLERANCE)


@pytest.mark.parametrize("module", [MaxPool2d(3, stride=2, padding=1), AvgPool2d(2, stride=1),
                                    GlobalAvgPool()], ids=["max", "avg", "global"])
def test_modules_pass_the_gradient_checker(module):
    x = distinct_values((2, 2, 5, 5), np.random.default_rng(0))
    report = check_module(module, x, raise_on_fail=True)
    assert report.passed


# --------------------------------------------------------------------------- modules, dtypes
def test_module_output_shapes_and_flops():
    x = np.zeros((2, 3, 7, 6), dtype=np.float32)
    for module in (MaxPool2d(3, stride=2, padding=1), AvgPool2d((2, 3)), GlobalAvgPool()):
        assert module.output_shape(x.shape) == module(x).shape
        assert module.flops(x.shape) == 0
    assert MaxPool2d(3, stride=2, padding=1).output_shape((2, 3, 7, 6)) == (2, 3, 4, 3)
    assert MaxPool2d(2).stride == (2, 2)            # stride defaults to the kernel


@pytest.mark.parametrize("module", [MaxPool2d(2), AvgPool2d(3, 1, 1), GlobalAvgPool()],
                         ids=["max", "avg", "global"])
def test_float32_in_float32_out(module):
    x = np.random.default_rng(0).normal(size=(2, 2, 4, 4)).astype(np.float32)
    out = module(x)
    dx = module.backward(np.ones_like(out))
    assert out.dtype == dx.dtype == np.float32
    np.testing.assert_allclose(out, module(x.astype(np.float64)), rtol=1e-6, atol=1e-6)


def test_bad_input_errors():
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match="at most half the kernel"):
        MaxPool2d(2, padding=2)
    with pytest.raises(ValueError, match="4-d"):
        max_pool2d_forward(np.zeros((4, 4)), 2)
    with pytest.raises(TypeError, match="got int64"):
        avg_pool2d_forward(x.astype(np.int64), 2)
    with pytest.raises(ValueError, match="does not fit"):
        avg_pool2d_forward(x, 5)
    with pytest.raises(TypeError, match="kernel_size"):
        MaxPool2d(2.5)
    with pytest.raises(ValueError, match="4-d"):
        GlobalAvgPool()(np.zeros((2, 3)))
    _, cache = max_pool2d_forward(x, 2)
    with pytest.raises(ValueError, match=r"dout: expected shape \(1, 1, 2, 2\)"):
        max_pool2d_backward(np.zeros((1, 1, 4, 4)), cache)
    with pytest.raises(TypeError, match="dout: expected dtype float64"):
        max_pool2d_backward(np.zeros((1, 1, 2, 2), dtype=np.float32), cache)
    _, cache = global_avg_pool_forward(x)
    with pytest.raises(ValueError, match="dz"):
        global_avg_pool_backward(np.zeros((1, 2)), cache)


# --------------------------------------------------------------------------- PyTorch (optional)
def test_agrees_with_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = distinct_values((2, 3, 7, 6), rng)
    for ours, theirs in ((MaxPool2d(3, 2, 1), torch.nn.MaxPool2d(3, 2, 1)),
                         (AvgPool2d(3, 2, 1), torch.nn.AvgPool2d(3, 2, 1))):
        tx = torch.tensor(x, requires_grad=True)
        ty = theirs(tx)
        dy = rng.normal(size=tuple(ty.shape))
        ty.backward(torch.tensor(dy))
        np.testing.assert_allclose(ours(x), ty.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(ours.backward(dy), tx.grad.numpy(), rtol=1e-12)
