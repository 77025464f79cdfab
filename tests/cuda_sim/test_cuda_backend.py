"""The cuda backend agrees with the numpy reference, run under Numba's CUDA simulator or on a real GPU.

Run by ``tests/test_kernels_cuda.py`` in a separate process (see conftest.py).
The same tests run unchanged in both places; only the shapes differ: small
ones under the simulator (every GPU thread is a Python thread there), larger
ones and the paper's (64, 256, 56, 56) on a GPU.

Tolerances. Operations that round once (scale, the squeeze backward, max)
must match exactly. Sums are checked against the worst-case bound of
floating-point summation (Higham, "Accuracy and Stability of Numerical
Algorithms", Sec. 4.2): a sum computed by additions in a tree of depth d errs
by at most d·ε·Σ|terms|. A lane adds ceil(HW/lanes) numbers and the tree
log2(lanes) levels, so d = ceil(HW/lanes) + log2(lanes), plus 2 for the final
division and the reference's own rounding. The bound is proportional to ε of
the dtype, so float64 runs check the logic to ~1e-15: an element dropped or
added twice is off by |x|/HW, far outside it. Fused multiply-adds (a GPU may
contract dy·s + c into one rounding) differ from NumPy's two roundings by at
most 2ε·(|dy·s| + |c|) per element.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from se_numpy.kernels import cuda as cuda_backend
from se_numpy.kernels import numpy as numpy_kernels
from se_numpy.nn import CudaSEBlock

ON_SIMULATOR = cuda_backend.SIMULATOR
DTYPES = (np.float32, np.float64)
EXAMPLES = 6 if ON_SIMULATOR else 25

if ON_SIMULATOR:
    # Every simulated thread is a Python thread and the grid is 2 blocks
    # (SIMULATOR_MAX_BLOCKS), so a launch costs about its number of rows N·C.
    # Rows up to 11·11 = 121 > WARP_ROW_MAX_LENGTH (64): both layouts, odd sizes,
    # lanes left idle; up to 2·3 = 6 rows: more than the 4 warp rows or the 2
    # block rows of one pass of the grid, so the grid-stride loops run twice.
    shapes = st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 11),
                       st.integers(1, 11))
    FIXED_SHAPES = [(1, 1, 1, 1), (2, 3, 5, 7), (1, 3, 9, 9)]
else:
    shapes = st.tuples(st.integers(1, 8), st.integers(1, 64), st.integers(1, 64),
                       st.integers(1, 64))
    FIXED_SHAPES = [(1, 1, 1, 1), (64, 256, 56, 56), (32, 512, 7, 7), (4, 64, 224, 224),
                    (3, 5, 33, 31)]
seeds = st.integers(0, 2**32 - 1)


# ============================================================================ helpers
def random_map(shape, dtype, seed, offset=0):
    return np.random.default_rng(seed + offset).standard_normal(shape).astype(dtype)


def assert_fully_written(array, name="output"):
    """Outputs start as NaN (conftest); a NaN left means an element never written."""
    values = array.copy_to_host() if cuda_backend.is_device_array(array) else array
    unwritten = int(np.count_nonzero(np.isnan(values)))
    assert unwritten == 0, f"{name}: {unwritten} of {values.size} elements never written"


def tree_depth(row_length):
    """Additions in the longest chain of the tree reduction of one row (see module doc)."""
    lanes, _ = cuda_backend.row_geometry(row_length)
    return math.ceil(row_length / lanes) + int(math.log2(lanes)) + 2


def assert_within(actual, expected, tolerance, what):
    error = np.abs(np.asarray(actual, dtype=np.float64) - np.asarray(expected, dtype=np.float64))
    worst = np.unravel_index(np.argmax(error - tolerance), error.shape)
    assert np.all(error <= tolerance), (
        f"{what}: error {error[worst]:.3g} above its bound {np.broadcast_to(tolerance, error.shape)[worst]:.3g} "
        f"at {worst}")


def check_mean(z, x, depth):
    """|z - mean(x)| <= depth·ε·mean|x| per row."""
    eps = np.finfo(x.dtype).eps
    reference = numpy_kernels.squeeze_forward(x)
    bound = depth * eps * np.abs(x.astype(np.float64)).mean(axis=(2, 3))
    assert z.dtype == x.dtype and z.shape == x.shape[:2]
    assert_within(z, reference, bound, "mean")


# ============================================================================ the contract
def test_check_available_accepts_this_machine():
    cuda_backend.check_available()      # must not raise: simulator on, or a GPU present


# ============================================================================ squeeze
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES, deadline=None)
@given(shape=shapes, seed=seeds)
def test_squeeze_forward_tree_matches_reference(dtype, shape, seed):
    x = random_map(shape, dtype, seed)
    z = cuda_backend.squeeze_forward(x)
    assert_fully_written(z)
    check_mean(z, x, tree_depth(shape[2] * shape[3]))


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES, deadline=None)
@given(shape=shapes, seed=seeds)
def test_squeeze_forward_naive_matches_reference(dtype, shape, seed):
    x = random_map(shape, dtype, seed)
    z = cuda_backend.squeeze_forward_naive(x)
    assert_fully_written(z)
    check_mean(z, x, shape[2] * shape[3] + 2)     # one serial chain of HW additions


@pytest.mark.skipif(ON_SIMULATOR, reason="the CUDA simulator has no warp shuffle "
                                         "(shfl_down_sync); this kernel runs on a real GPU only")
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES, deadline=None)
@given(shape=shapes, seed=seeds)
def test_squeeze_forward_shuffle_matches_reference(dtype, shape, seed):
    x = random_map(shape, dtype, seed)
    z = cuda_backend.squeeze_forward_shuffle(x)
    assert_fully_written(z)
    row_length = shape[2] * shape[3]
    check_mean(z, x, math.ceil(row_length / 32) + 5 + 2)


@pytest.mark.parametrize("shape", FIXED_SHAPES)
def test_squeeze_forward_at_fixed_shapes(shape):
    x = random_map(shape, np.float32, 7)
    z = cuda_backend.squeeze_forward(x)
    assert_fully_written(z)
    check_mean(z, x, tree_depth(shape[2] * shape[3]))


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES, deadline=None)
@given(shape=shapes, seed=seeds)
def test_squeeze_backward_is_exact(dtype, shape, seed):
    dz = random_map(shape[:2], dtype, seed)
    dx = cuda_backend.squeeze_backward(dz, shape)
    assert_fully_written(dx)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx, numpy_kernels.squeeze_backward(dz, shape))


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES, deadline=None)
@given(shape=shapes, seed=seeds, levels=st.integers(2, 5))
def test_max_squeeze_forward_is_exact_and_breaks_ties_like_numpy(dtype, shape, seed, levels):
    # Few distinct integer levels: most rows have tied maxima, so the
    # "first maximum in row-major order" rule is exercised, not assumed.
    x = np.random.default_rng(seed).integers(0, levels, size=shape).astype(dtype)
    z, argmax = cuda_backend.max_squeeze_forward(x)
    assert_fully_written(z)
    assert argmax.dtype == np.int64 and np.all(argmax >= 0), "argmax left unwritten (-1)"
    z_ref, argmax_ref = numpy_kernels.max_squeeze_forward(x)
    np.testing.assert_array_equal(z, z_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)


def test_max_squeeze_treats_nan_as_the_maximum_like_numpy():
    x = random_map((2, 3, 4, 5), np.float64, 3)
    x[0, 1, 2, 3] = np.nan
    x[1, 2, 0, 1] = np.nan
    x[1, 2, 3, 4] = np.nan            # a second NaN later in the same row: the first wins
    z, argmax = cuda_backend.max_squeeze_forward(x)
    z_ref, argmax_ref = numpy_kernels.max_squeeze_forward(x)
    np.testing.assert_array_equal(argmax, argmax_ref)
    np.testing.assert_array_equal(z, z_ref)     # NaN compares equal here (same positions)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES, deadline=None)
@given(shape=shapes, seed=seeds)
def test_max_squeeze_backward_is_exact(dtype, shape, seed):
    x = random_map(shape, dtype, seed)
    dz = random_map(shape[:2], dtype, seed, offset=1)
    _, argmax = numpy_kernels.max_squeeze_forward(x)
    dx = cuda_backend.max_squeeze_backward(dz, argmax, shape)
    assert_fully_written(dx)
    np.testing.assert_array_equal(dx, numpy_kernels.max_squeeze_backward(dz, argmax, shape))


# ============================================================================ scale and fused
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES, deadline=None)
@given(shape=shapes, seed=seeds)
def test_scale_forward_is_exact(dtype, shape, seed):
    x = random_map(shape, dtype, seed)
    s = random_map(shape[:2], dtype, seed, offset=1)
    y = cuda_backend.scale_forward(x, s)
    assert_fully_written(y)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, numpy_kernels.scale_forward(x, s))


def check_row_dot(ds, dy, x):
    eps = np.finfo(dy.dtype).eps
    bound = tree_depth(dy.shape[2] * dy.shape[3]) * eps * np.abs(
        dy.astype(np.float64) * x).sum(axis=(2, 3))
    assert ds.dtype == dy.dtype
    assert_within(ds, numpy_kernels.se_backward_ds(dy, x), bound, "Σ dy·x")


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES, deadline=None)
@given(shape=shapes, seed=seeds)
def test_scale_backward_fused_matches_reference(dtype, shape, seed):
    x, dy = random_map(shape, dtype, seed), random_map(shape, dtype, seed, offset=1)
    s = random_map(shape[:2], dtype, seed, offset=2)
    dx, ds = cuda_backend.scale_backward(dy, x, s)
    assert_fully_written(dx, "dx")
    assert_fully_written(ds, "ds")
    np.testing.assert_array_equal(dx, dy * s[:, :, None, None])   # one rounding: exact
    check_row_dot(ds, dy, x)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES, deadline=None)
@given(shape=shapes, seed=seeds)
def test_se_backward_ds_matches_reference(dtype, shape, seed):
    x, dy = random_map(shape, dtype, seed), random_map(shape, dtype, seed, offset=1)
    ds = cuda_backend.se_backward_ds(dy, x)
    assert_fully_written(ds)
    check_row_dot(ds, dy, x)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES, deadline=None)
@given(shape=shapes, seed=seeds)
def test_se_backward_dx_matches_reference(dtype, shape, seed):
    dy = random_map(shape, dtype, seed)
    s, dz = random_map(shape[:2], dtype, seed, 1), random_map(shape[:2], dtype, seed, 2)
    dx = cuda_backend.se_backward_dx(dy, s, dz)
    assert_fully_written(dx)
    direct = np.abs(dy * s[:, :, None, None]).astype(np.float64)
    share = np.abs(dz / (shape[2] * shape[3]))[:, :, None, None]
    bound = 2 * np.finfo(dtype).eps * (direct + share)            # FMA vs two roundings
    assert dx.dtype == dtype
    assert_within(dx, numpy_kernels.se_backward_dx(dy, s, dz), bound, "dy·s + dz/HW")


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES, deadline=None)
@given(shape=shapes, seed=seeds)
def test_scale_add_forward_matches_reference(dtype, shape, seed):
    u, shortcut = random_map(shape, dtype, seed), random_map(shape, dtype, seed, 1)
    s = random_map(shape[:2], dtype, seed, 2)
    out = cuda_backend.scale_add_forward(u, s, shortcut)
    assert_fully_written(out)
    bound = 2 * np.finfo(dtype).eps * (np.abs(u * s[:, :, None, None]) + np.abs(shortcut))
    assert_within(out, numpy_kernels.scale_add_forward(u, s, shortcut), bound, "s·u + shortcut")


# ============================================================================ launch rules
# 5 warp rows, 3 block rows: more than one pass of a one-block grid (2 warp rows or
# 1 block row per pass) and of the default grid (4 or 2), in both layouts
@pytest.mark.parametrize("shape", [(1, 5, 3, 3), (1, 3, 9, 10)])
@pytest.mark.parametrize("blocks", [1, 3])
def test_results_do_not_depend_on_the_grid_size(shape, blocks):
    # A grid of one block must walk every row (grid-stride loops); a grid
    # larger than needed must not write anything twice or out of bounds.
    x, dy = random_map(shape, np.float64, 1), random_map(shape, np.float64, 2)
    s = random_map(shape[:2], np.float64, 3)
    expected_z, expected_y = cuda_backend.squeeze_forward(x), cuda_backend.scale_forward(x, s)
    expected_naive = cuda_backend.squeeze_forward_naive(x)     # its own summation order
    expected_backward = cuda_backend.scale_backward(dy, x, s)
    with cuda_backend.limit_grid(blocks):
        np.testing.assert_array_equal(cuda_backend.squeeze_forward(x), expected_z)
        np.testing.assert_array_equal(cuda_backend.squeeze_forward_naive(x), expected_naive)
        np.testing.assert_array_equal(cuda_backend.scale_forward(x, s), expected_y)
        for got, want in zip(cuda_backend.scale_backward(dy, x, s), expected_backward):
            np.testing.assert_array_equal(got, want)


def test_poison_check_catches_a_launch_that_misses_a_row():
    # The safety net itself must be able to fail: launch the scale kernel on
    # all rows but the last, the way a grid one block short would leave them.
    x = random_map((1, 4, 3, 3), np.float32, 0)
    s = np.ones((1, 4), np.float32)
    y = cuda_backend.new_output(x.shape, x.dtype)
    x_rows = cuda_backend.rows_view(cuda_backend.to_device(x))
    y_rows = cuda_backend.rows_view(y)
    cuda_backend.launch_rows(cuda_backend.se.scale_forward_kernel, 3, 9)(
        x_rows[:3], cuda_backend.to_device(s.reshape(4))[:3], y_rows[:3])
    with pytest.raises(AssertionError, match="9 of 36 elements never written"):
        assert_fully_written(y)


def test_device_arrays_in_give_device_arrays_out():
    x = random_map((2, 3, 4, 4), np.float32, 5)
    s = random_map((2, 3), np.float32, 6)
    x_on_device = cuda_backend.to_device(x)
    z = cuda_backend.squeeze_forward(x_on_device)
    y = cuda_backend.scale_forward(x_on_device, s)           # s from the host: copied up
    assert cuda_backend.is_device_array(z) and cuda_backend.is_device_array(y)
    assert isinstance(cuda_backend.squeeze_forward(x), np.ndarray)
    np.testing.assert_array_equal(y.copy_to_host(), numpy_kernels.scale_forward(x, s))


def test_non_contiguous_device_array_is_rejected_with_its_strides():
    x_on_device = cuda_backend.to_device(random_map((2, 3, 4, 4), np.float32, 0))
    with pytest.raises(ValueError, match="C-contiguous"):
        cuda_backend.to_device(x_on_device.T)


def test_an_empty_device_map_is_refused_before_any_launch():
    # (the host case for every kernel is in the contract test)
    x_on_device = cuda_backend.to_device(np.zeros((2, 3, 0, 0), np.float32))
    with pytest.raises(ValueError, match="max_squeeze_forward: x must be a non-empty"):
        cuda_backend.max_squeeze_forward(x_on_device)


@pytest.mark.parametrize("on_device", [False, True])
def test_host_fallbacks_match_reference_and_keep_the_callers_kind(on_device):
    x = random_map((2, 3, 6, 5), np.float64, 4)
    given = cuda_backend.to_device(x) if on_device else x
    cols = cuda_backend.im2col(given, (3, 3), (1, 2), (1, 1), (1, 1))
    out, argmax = cuda_backend.max_pool2d_forward(given, (2, 2), (2, 2), (0, 0))
    assert cuda_backend.is_device_array(cols) == on_device
    assert cuda_backend.is_device_array(out) == on_device
    host = (lambda a: a.copy_to_host()) if on_device else (lambda a: a)
    np.testing.assert_array_equal(host(cols),
                                  numpy_kernels.im2col(x, (3, 3), (1, 2), (1, 1), (1, 1)))
    out_ref, argmax_ref = numpy_kernels.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0))
    np.testing.assert_array_equal(host(out), out_ref)
    np.testing.assert_array_equal(host(argmax), argmax_ref)


def test_whole_library_path_runs_on_the_cuda_backend():
    import se_numpy as sn
    from se_numpy import functional as F
    x = random_map((2, 4, 3, 5), np.float64, 8)
    z_numpy, _ = F.squeeze_forward(x)
    with sn.use_backend("cuda"):
        z_cuda, cache = F.squeeze_forward(x)
        dx = F.squeeze_backward(np.ones((2, 4)), cache)
    check_mean(z_cuda, x, tree_depth(15))
    np.testing.assert_allclose(z_cuda, z_numpy, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(dx, np.full(x.shape, 1 / 15))


# ============================================================================ CudaSEBlock
def se_weights(channels, hidden, dtype, seed, bias=True):
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((hidden, channels)).astype(dtype)
    w2 = rng.standard_normal((channels, hidden)).astype(dtype)
    b1 = rng.standard_normal(hidden).astype(dtype) if bias else None
    b2 = rng.standard_normal(channels).astype(dtype) if bias else None
    return w1, b1, w2, b2


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("with_shortcut", [False, True])
def test_device_se_block_matches_the_functional_block(bias, with_shortcut):
    from se_numpy.functional import se as F
    shape = (2, 6, 5, 4)
    w1, b1, w2, b2 = se_weights(6, 3, np.float64, 11, bias)
    x, dy = random_map(shape, np.float64, 12), random_map(shape, np.float64, 13)
    block = CudaSEBlock(w1, b1, w2, b2)
    if with_shortcut:
        shortcut = random_map(shape, np.float64, 14)
        y_ref, cache = F.se_block_add_forward(x, shortcut, w1, b1, w2, b2)
        dx_ref, dshortcut_ref, dw1, db1, dw2, db2 = F.se_block_add_backward(dy, cache)
        y = block.forward(cuda_backend.to_device(x), cuda_backend.to_device(shortcut))
        dx, dshortcut = block.backward(cuda_backend.to_device(dy))
        np.testing.assert_array_equal(dshortcut.copy_to_host(), dshortcut_ref)
    else:
        y_ref, cache = F.se_block_forward(x, w1, b1, w2, b2)
        dx_ref, dw1, db1, dw2, db2 = F.se_block_backward(dy, cache)
        y = block(cuda_backend.to_device(x))
        dx = block.backward(cuda_backend.to_device(dy))
    assert cuda_backend.is_device_array(y) and cuda_backend.is_device_array(dx)
    # float64 throughout; the only differences are summation order (1e-12 is
    # ~4000 ε relative to values of order 1-10, while a wrong term is O(0.1)).
    np.testing.assert_allclose(y.copy_to_host(), y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx.copy_to_host(), dx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(block.grads["fc1.weight"], dw1, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(block.grads["fc2.weight"], dw2, rtol=1e-12, atol=1e-12)
    if bias:
        np.testing.assert_allclose(block.grads["fc1.bias"], db1, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(block.grads["fc2.bias"], db2, rtol=1e-12, atol=1e-12)
    else:
        assert block.grads["fc1.bias"] is None and block.grads["fc2.bias"] is None


def test_device_se_block_builds_from_the_state_dict_an_se_block_writes():
    """SEBlock.state_dict() stores the FCs as 1x1 convolutions (timm's shapes); the
    device block must take those as they are and compute what the module computes."""
    import se_numpy as sn
    se = sn.nn.SEBlock(channels=6, reduction=2, dtype=np.float64, rng=3)
    state = se.state_dict()
    assert state["fc1.weight"].shape == (3, 6, 1, 1)
    block = CudaSEBlock.from_state_dict(state)
    x = random_map((2, 6, 3, 4), np.float64, 21)
    y = block(cuda_backend.to_device(x)).copy_to_host()
    # float64; only the summation order differs (see the tolerance note above).
    np.testing.assert_allclose(y, se(x), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"fc1.weight: expected shape \(out, in\)"):
        CudaSEBlock.from_state_dict({**state, "fc1.weight": np.zeros((3, 6, 2))})


def test_device_se_block_rejects_a_map_of_the_wrong_dtype_or_channels():
    block = CudaSEBlock(*se_weights(4, 2, np.float32, 0))
    with pytest.raises(TypeError, match="expected dtype float32"):
        block.forward(np.zeros((1, 4, 2, 2), np.float64))
    with pytest.raises(ValueError, match=r"expected shape \(N, 4, H, W\)"):
        block.forward(np.zeros((1, 5, 2, 2), np.float32))


def test_the_gpu_benchmark_launches_every_timed_kernel_with_the_contract_arrays():
    """The benchmark builds its arrays from the contract rows; every launch must run
    with them (the timings need a GPU, the wiring does not)."""
    from numba import cuda

    from se_numpy.bench import cuda as cuda_bench
    shape = (2, 3, 4, 5)
    launches = cuda_bench._kernel_launches(cuda_backend, cuda, shape, np.float64)
    assert list(launches) == cuda_bench.timed_kernels()
    for name, launch in launches.items():
        if name != "squeeze_forward_shuffle" or not ON_SIMULATOR:   # the simulator has no shuffles
            launch()
    for name in cuda_bench.timed_kernels()[1:]:
        assert cuda_bench.minimum_bytes(name, shape, 8) > 0
