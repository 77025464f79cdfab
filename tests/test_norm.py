"""BatchNorm2d: hand-computed values, running statistics, finite-difference gradients, dtypes, errors.

The hand examples use one channel, one pixel and a 2-sample batch, with eps
chosen so that sqrt(σ² + eps) is a whole number and every value can be checked
on paper.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from se_numpy.functional.norm import (batch_norm2d_backward, batch_norm2d_forward,
                                      update_running_stats)
from se_numpy.gradcheck import check_module
from se_numpy.nn.norm import BatchNorm2d
from finite_differences import numerical_vjp

# Central differences in float64, step 1e-6: truncation ~1e-12, rounding ~1e-16·|f|/step ~1e-9
# for the O(10) sums here; 1e-6 sits between that noise and any real error (O(0.1)).
TOLERANCE = 1e-6   # with finite_differences.STEP = 1e-6


def column(*values):
    """A batch of single-pixel, single-channel samples: shape (len(values), 1, 1, 1)."""
    return np.array(values, dtype=np.float64).reshape(-1, 1, 1, 1)


# --------------------------------------------------------------------------- hand-computed values
def test_train_forward_by_hand():
    # x = [1, 3]: μ = 2, σ² = ((−1)² + 1²)/2 = 1; eps = 3 makes sqrt(σ² + eps) = 2, so x̂ = [−½, ½];
    # γ = 2, β = 1 give y = 2·x̂ + 1 = [0, 2].
    y, cache = batch_norm2d_forward(column(1, 3), np.array([2.0]), np.array([1.0]), eps=3.0)
    np.testing.assert_allclose(y.ravel(), [0.0, 2.0], rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(cache.batch_mean, [2.0], rtol=1e-14)
    np.testing.assert_allclose(cache.batch_variance, [1.0], rtol=1e-14)


def test_train_backward_by_hand():
    # Same batch, γ = 1: M = 2, s = 2, x̂ = [−½, ½], dy = [1, 0], so Σdy = 1, Σdy·x̂ = −½ and
    # dx = 1/(M·s)·(M·dy − Σdy − x̂·Σdy·x̂) = ¼·([2, 0] − 1 + [−¼, ¼]) = [0.1875, −0.1875].
    _, cache = batch_norm2d_forward(column(1, 3), np.array([1.0]), np.array([0.0]), eps=3.0)
    dx, dweight, dbias = batch_norm2d_backward(column(1, 0), cache)
    np.testing.assert_allclose(dx.ravel(), [0.1875, -0.1875], rtol=1e-14)
    np.testing.assert_allclose(dweight, [-0.5], rtol=1e-14)      # Σ dy·x̂
    np.testing.assert_allclose(dbias, [1.0], rtol=1e-14)         # Σ dy


def test_running_statistics_after_two_steps_and_eval_output_by_hand():
    norm = BatchNorm2d(1, eps=2.21, momentum=0.1, dtype=np.float64)
    norm(column(1, 3))       # μ = 2, unbiased variance = 2·1/(2−1) = 2
    np.testing.assert_allclose(norm.running_mean, [0.2], rtol=1e-14)    # 0.9·0 + 0.1·2
    np.testing.assert_allclose(norm.running_var, [1.1], rtol=1e-14)     # 0.9·1 + 0.1·2
    norm(column(5, 9))       # μ = 7, biased variance 4, unbiased 8
    np.testing.assert_allclose(norm.running_mean, [0.88], rtol=1e-14)   # 0.9·0.2 + 0.1·7
    np.testing.assert_allclose(norm.running_var, [1.79], rtol=1e-14)    # 0.9·1.1 + 0.1·8
    assert norm.num_batches_tracked == 2 and norm.num_batches_tracked.dtype == np.int64

    norm.weight.data[:] = 3.0
    norm.bias.data[:] = -1.0
    norm.eval()
    # Eval: (x − 0.88)/sqrt(1.79 + 2.21) = (x − 0.88)/2, then ·3 − 1; and nothing is updated.
    y = norm(column(2.88, 0.88))
    np.testing.assert_allclose(y.ravel(), [2.0, -1.0], rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(norm.running_mean, [0.88], rtol=1e-14)
    assert norm.num_batches_tracked == 2
    dx = norm.backward(column(1, 1))
    np.testing.assert_allclose(dx.ravel(), [1.5, 1.5], rtol=1e-14)    # dy·γ/2


def test_momentum_none_is_the_cumulative_average():
    norm = BatchNorm2d(1, momentum=None, dtype=np.float64)
    for batch in (column(1, 3), column(5, 9), column(0, 0)):   # means 2, 7, 0; unbiased vars 2, 8, 0
        norm(batch)
    np.testing.assert_allclose(norm.running_mean, [3.0], rtol=1e-14)       # (2 + 7 + 0)/3
    np.testing.assert_allclose(norm.running_var, [10.0 / 3], rtol=1e-14)   # (2 + 8 + 0)/3
    assert norm.num_batches_tracked == 3


def test_update_running_stats_uses_the_unbiased_variance():
    new_mean, new_var = update_running_stats(np.array([1.0]), np.array([1.0]), np.array([3.0]),
                                             np.array([2.0]), count=5, momentum=0.5)
    np.testing.assert_allclose(new_mean, [2.0], rtol=1e-15)                # ½·1 + ½·3
    np.testing.assert_allclose(new_var, [0.5 + 0.5 * 2.0 * 5 / 4], rtol=1e-15)


# --------------------------------------------------------------------------- gradients
@st.composite
def norm_cases(draw):
    n, channels = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    height, width = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    if n * height * width < 2:
        n = 2           # training mode needs more than one value per channel
    return dict(shape=(n, channels, height, width), affine=draw(st.booleans()),
                training=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


@given(norm_cases())
def test_gradients_match_finite_differences(case):
    rng = np.random.default_rng(case["seed"])
    channels = case["shape"][1]
    x = rng.normal(size=case["shape"]) * 2 + 1
    weight = rng.normal(size=channels) if case["affine"] else None
    bias = rng.normal(size=channels) if case["affine"] else None
    running_mean, running_var = rng.normal(size=channels), rng.uniform(0.5, 2.0, size=channels)

    def run():
        return batch_norm2d_forward(x, weight, bias, running_mean, running_var,
                                    training=case["training"])[0]

    y, cache = batch_norm2d_forward(x, weight, bias, running_mean, running_var,
                                    training=case["training"])
    dy = rng.normal(size=y.shape)
    dx, dweight, dbias = batch_norm2d_backward(dy, cache)
    np.testing.assert_allclose(dx, numerical_vjp(run, x, dy), rtol=TOLERANCE, atol=TOLERANCE)
    if case["affine"]:
        np.testing.assert_allclose(dweight, numerical_vjp(run, weight, dy),
                                   rtol=TOLERANCE, atol=TOLERANCE)
        np.testing.assert_allclose(dbias, numerical_vjp(run, bias, dy),
                                   rtol=TOLERANCE, atol=TOLERANCE)
    else:
        assert dweight is None and dbias is None


def test_train_gradient_is_orthogonal_to_shift_and_scale():
    # Shifting or scaling a channel leaves a batch-normalised output unchanged (up to eps), so
    # Σ dx = 0 per channel exactly and Σ dx·x̂ = 0 up to the eps term (eps/σ² ≈ 1e-5 here).
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 3, 2, 2)) * 3
    _, cache = batch_norm2d_forward(x, training=True)
    dx, _, _ = batch_norm2d_backward(rng.normal(size=x.shape), cache)
    np.testing.assert_allclose(dx.sum(axis=(0, 2, 3)), 0, atol=1e-12)
    assert np.abs((dx * cache.normalized).sum(axis=(0, 2, 3))).max() < 1e-3


# --------------------------------------------------------------------------- module
def test_state_dict_names_order_and_types_follow_pytorch():
    norm = BatchNorm2d(3)
    state = norm.state_dict()
    assert list(state) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    np.testing.assert_array_equal(state["weight"], np.ones(3, dtype=np.float32))
    np.testing.assert_array_equal(state["bias"], np.zeros(3, dtype=np.float32))
    np.testing.assert_array_equal(state["running_var"], np.ones(3, dtype=np.float32))
    assert state["num_batches_tracked"].shape == () and state["num_batches_tracked"].dtype == np.int64
    assert list(BatchNorm2d(3, affine=False, track_running_stats=False).state_dict()) == []


def test_buffers_stay_buffers_through_updates_astype_and_loading():
    norm = BatchNorm2d(2).astype(np.float64)
    x = np.random.default_rng(0).normal(size=(3, 2, 2, 2))
    norm(x)
    norm(x)
    assert norm.running_mean.dtype == np.float64
    assert [name for name, _ in norm.named_buffers()] == ["running_mean", "running_var",
                                                          "num_batches_tracked"]
    state = norm.state_dict()
    fresh = BatchNorm2d(2).astype(np.float64)
    fresh.load_state_dict(state)
    fresh.eval()
    norm.eval()
    np.testing.assert_array_equal(fresh(x), norm(x))
    assert fresh.num_batches_tracked == 2


def test_without_running_stats_eval_uses_batch_statistics():
    norm = BatchNorm2d(2, track_running_stats=False, dtype=np.float64).eval()
    x = np.random.default_rng(0).normal(size=(3, 2, 2, 2)) * 4 + 7
    y = norm(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    assert norm.running_mean is None and norm.num_batches_tracked is None
    stateless = BatchNorm2d(2, affine=False, track_running_stats=False)   # holds no dtype
    for dtype in (np.float32, np.float64):
        assert stateless(x.astype(dtype)).dtype == dtype
    np.testing.assert_allclose(stateless(x), y, rtol=1e-12)              # γ = 1, β = 0 as above


def test_float32_in_float32_out_and_statistics_stay_float32():
    norm = BatchNorm2d(3)
    x = np.random.default_rng(0).normal(size=(4, 3, 2, 2)).astype(np.float32)
    y = norm(x)
    dx = norm.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == norm.weight.grad.dtype == np.float32
    assert norm.running_mean.dtype == norm.running_var.dtype == np.float32
    reference = BatchNorm2d(3).astype(np.float64)
    np.testing.assert_allclose(y, reference(x.astype(np.float64)), rtol=1e-5, atol=1e-5)


def test_output_shape_and_flops():
    assert BatchNorm2d(4).output_shape((2, 4, 5, 5)) == (2, 4, 5, 5)
    assert BatchNorm2d(4).flops((2, 4, 5, 5)) == 0


def test_bad_input_errors():
    norm = BatchNorm2d(3)
    with pytest.raises(ValueError, match="expected 3 channels"):
        norm(np.zeros((2, 4, 2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="4-d"):
        norm(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="got int32"):
        norm(np.zeros((2, 3, 2, 2), dtype=np.int32))
    with pytest.raises(TypeError, match="float32.*got float64"):
        norm(np.zeros((2, 3, 2, 2)))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        norm(np.zeros((1, 3, 1, 1), dtype=np.float32))
    with pytest.raises(ValueError, match=r"weight: expected shape \(3,\)"):
        batch_norm2d_forward(np.zeros((2, 3, 2, 2)), np.ones(2))
    with pytest.raises(ValueError, match="running_mean and running_var"):
        batch_norm2d_forward(np.zeros((2, 3, 2, 2)), training=False)
    _, cache = batch_norm2d_forward(np.random.default_rng(0).normal(size=(2, 3, 2, 2)))
    with pytest.raises(ValueError, match="dy"):
        batch_norm2d_backward(np.zeros((2, 3, 2, 1)), cache)


# --------------------------------------------------------------------------- PyTorch (optional)
def test_agrees_with_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    ours = BatchNorm2d(3, momentum=0.3).astype(np.float64)
    theirs = torch.nn.BatchNorm2d(3, momentum=0.3).double()
    for step in range(3):
        x = rng.normal(size=(4, 3, 2, 3)) * (step + 1)
        dy = rng.normal(size=x.shape)
        tx = torch.tensor(x, requires_grad=True)
        ty = theirs(tx)
        ty.backward(torch.tensor(dy))
        np.testing.assert_allclose(ours(x), ty.detach().numpy(), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(ours.backward(dy), tx.grad.numpy(), rtol=1e-10, atol=1e-10)
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[name], value.numpy(), rtol=1e-10)
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-10)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_module_passes_the_gradient_checker(mode):
    norm = BatchNorm2d(3, momentum=None)
    rng = np.random.default_rng(0)
    norm(rng.normal(size=(4, 3, 2, 2)).astype(np.float32))      # non-trivial running statistics
    norm.weight.data[:] = rng.uniform(0.5, 2.0, size=3)
    norm.bias.data[:] = rng.normal(size=3)
    x = rng.normal(size=(3, 3, 2, 2)).astype(np.float32)   # the checker casts to float64
    assert check_module(norm, x, mode=mode, raise_on_fail=True).passed
