"""The Numba CPU kernels agree with the NumPy reference, on every function, layout and path.

(What every backend must satisfy, signatures, dtypes, empty maps, is checked
for all of them at once in ``test_kernels_contract.py``; this file checks the
numerics of the Numba loops in depth.)

Tolerances, and why they are what they are:

* Element-wise kernels (scale, se_backward_dx, scale_add, squeeze_backward,
  max squeeze/pool, im2col, col2im, average-pool backward) perform the same
  IEEE operations in the same order as the reference, so they must agree
  **exactly** (``assert_array_equal``).
* Reductions (squeeze, se_backward_ds, scale_backward's ds, average pooling)
  accumulate in float64 in both backends, but in a different order (SIMD
  partial sums vs NumPy's pairwise sum). Two float64 sums of k terms of size
  ≤ 1 differ by at most ~k·2^-53·Σ|x| ≈ 1e-13 here; after the final rounding a
  float32 result can differ by 1 unit in the last place (2^-23 ≈ 1.2e-7
  relative). ``_REDUCTION_TOLERANCE`` allows exactly that and no more: an
  error of 2 ulp in float32, or a float32 (not float64) accumulator, fails.

Every kernel runs in both of its paths, serial and parallel, by lowering
``rows.PARALLEL_MIN_ELEMENTS`` (the small shapes Hypothesis draws would otherwise
all take the serial path).
"""
import contextlib
import os
import subprocess
import sys

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from se_numpy.kernels import contract
from se_numpy.kernels import numba as cpu
from se_numpy.kernels import numpy as ref
from se_numpy.kernels.numba import conv as numba_conv
from se_numpy.kernels.numba import naive as cpu_naive
from se_numpy.kernels.numba import rows, threads

DTYPES = (np.float32, np.float64)

# rtol: 1 ulp of float32 (or ~1e3 ulp of float64, far below any real bug);
# atol: the float64 order-of-summation difference when a sum cancels to ~0.
_REDUCTION_TOLERANCE = {np.float32: dict(rtol=1.2e-7, atol=1e-12),
                        np.float64: dict(rtol=1e-13, atol=1e-13)}


# --------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def kernel_path(path):
    """Force the serial or the parallel loops, whatever the array size."""
    saved = rows.PARALLEL_MIN_ELEMENTS
    rows.PARALLEL_MIN_ELEMENTS = 0 if path == "parallel" else 2 ** 62
    try:
        yield
    finally:
        rows.PARALLEL_MIN_ELEMENTS = saved


def assert_reduction_close(actual, expected):
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_allclose(actual, expected, **_REDUCTION_TOLERANCE[expected.dtype.type])


def assert_identical(actual, expected):
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_array_equal(actual, expected)


def in_layout(array, layout):
    """The same values as ``array`` in a contiguous, transposed-view or sliced-view layout."""
    if layout == "contiguous":
        return array
    if layout == "transposed":      # stored (W, H, C, N), viewed as NCHW: all strides reversed
        view = np.ascontiguousarray(array.transpose(3, 2, 1, 0)).transpose(3, 2, 1, 0)
    else:                           # every other element of a twice-as-wide buffer
        buffer = np.zeros(array.shape[:-1] + (2 * array.shape[-1],), dtype=array.dtype)
        buffer[..., ::2] = array
        view = buffer[..., ::2]
    np.testing.assert_array_equal(view, array)
    return view


@st.composite
def feature_maps(draw, max_side=7):
    """(x, path) with x a random NCHW map: N, C, H, W in 1..max_side, any dtype and layout."""
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4)),
             draw(st.integers(1, max_side)), draw(st.integers(1, max_side)))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    x = np.random.default_rng(seed).uniform(-1, 1, size=shape).astype(dtype)
    return in_layout(x, draw(st.sampled_from(["contiguous", "transposed", "sliced"])))


def same_shape_map(x, seed, layout="contiguous"):
    values = np.random.default_rng(seed).uniform(-1, 1, size=x.shape).astype(x.dtype)
    return in_layout(values, layout)


def per_channel(x, seed):
    """A (N, C) array in x's dtype, strictly positive like a sigmoid gate."""
    return np.random.default_rng(seed).uniform(0.05, 1, size=x.shape[:2]).astype(x.dtype)


paths = st.sampled_from(["serial", "parallel"])
layouts = st.sampled_from(["contiguous", "transposed", "sliced"])
seeds = st.integers(0, 2 ** 32 - 1)


# --------------------------------------------------------------------------- warm-up
@pytest.fixture(scope="module", autouse=True)
def compiled_kernels():
    """Compile (or load from the cache) every kernel once, outside Hypothesis' deadlines:
    every contract row on both paths, the whole-rows and row-by-row unfolding, the drafts."""
    for path in ("serial", "parallel"):
        with kernel_path(path):
            contract.warm_up(cpu)
    for dtype in (np.float32, np.float64):
        x = np.ones((1, 2, 3, 3), dtype=dtype)
        s = np.ones((1, 2), dtype=dtype)
        weight = np.ones((2, 2, 3, 3), dtype=dtype)
        out = cpu.conv2d_forward(x, weight, (2, 1), (1, 1), (1, 1), 1)
        cpu.conv2d_backward(out, x, weight, (2, 1), (1, 1), (1, 1), 1)
        for draft in (cpu_naive.squeeze_forward_pixel_outer, cpu_naive.squeeze_forward_same_dtype,
                      cpu_naive.squeeze_forward_float64):
            draft(x)
        cpu_naive.se_backward_dx_promoting(x, s, s)


# --------------------------------------------------------------------------- serial and parallel
def test_check_available_runs_a_kernel_here():
    cpu.check_available()   # raises RuntimeError if numba cannot compile and run here


def test_every_row_loop_pair_has_two_cache_entries():
    """numba issue #6845: one function compiled with and without parallel=True shares one
    cache entry, and the "parallel" loop loads the serial code. The pairs must not."""
    from se_numpy.kernels.numba import norm, residual, se
    pairs = [value for module in (se, norm, residual) for value in vars(module).values()
             if isinstance(value, rows.SerialAndParallel)]
    assert len(pairs) == 9 + 9 + 3          # the SE row loops, batch norm's, the residual end's
    for pair in pairs:
        name = pair.serial.py_func.__name__
        assert pair.parallel.targetoptions.get("parallel"), name
        assert not pair.serial.targetoptions.get("parallel"), name
        assert pair.serial.py_func.__qualname__ != pair.parallel.py_func.__qualname__
        assert (pair.serial._cache._cache_file._index_path
                != pair.parallel._cache._cache_file._index_path), name


PARALLEL_PROBE = """
import numpy as np
from se_numpy.kernels.numba import se
loop = se.squeeze_forward_loop
rows = np.ones((64, 4096), dtype=np.float32)
out = np.empty(64, dtype=np.float32)
loop.serial(rows, out, 4096.0)         # the serial one first, as in numba issue 6845
loop.parallel(rows, out, 4096.0)
code = loop.parallel.inspect_llvm(loop.parallel.signatures[0])
print("PARALLEL" if "do_scheduling" in code else "SERIAL")
"""


def test_parallel_loop_compiles_parallel_code_and_caches_it_apart(tmp_path):
    """In a fresh cache directory the parallel loop's code calls Numba's parallel scheduler
    and each loop of the pair writes its own cache index."""
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    completed = subprocess.run([sys.executable, "-c", PARALLEL_PROBE], env=environment,
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["PARALLEL"], completed.stdout
    index_files = sorted(path.name for path in tmp_path.rglob("*squeeze_forward_loop*.nbi"))
    assert len(index_files) == 2, index_files
    assert any("_parallel" in name for name in index_files), index_files


# --------------------------------------------------------------------------- squeeze
@settings(max_examples=40)
@given(x=feature_maps(), path=paths)
def test_squeeze_forward_matches_reference(x, path):
    with kernel_path(path):
        assert_reduction_close(cpu.squeeze_forward(x), ref.squeeze_forward(x))


@settings(max_examples=25)
@given(x=feature_maps(), seed=seeds, path=paths)
def test_squeeze_backward_matches_reference(x, seed, path):
    dz = per_channel(x, seed)
    with kernel_path(path):
        assert_identical(cpu.squeeze_backward(dz, x.shape), ref.squeeze_backward(dz, x.shape))


def test_squeeze_forward_float32_is_accurate_at_224_squared():
    """Float64 accumulation: a float32 mean over 224² values is within 1 ulp of the exact mean.

    The values sit in [1, 2) so the float32 running sum grows to ~75 000 where
    its spacing is 2^-7: a float32 accumulator drifts by ~1e-6 relative, the
    float64 one stays within the final rounding (2^-24 relative)."""
    x = np.random.default_rng(0).uniform(1, 2, size=(1, 3, 224, 224)).astype(np.float32)
    exact = x.astype(np.float64).sum(axis=(2, 3)) / (224 * 224)   # exact to ~1e-16
    for path in ("serial", "parallel"):
        with kernel_path(path):
            z = cpu.squeeze_forward(x)
        assert z.dtype == np.float32
        np.testing.assert_allclose(z, exact, rtol=2 ** -23, atol=0)
    # the same check catches a float32 accumulator: the naive draft fails it
    drifted = cpu_naive.squeeze_forward_same_dtype(x)
    assert np.max(np.abs(drifted / exact - 1)) > 2 ** -23


@settings(max_examples=30)
@given(seed=seeds, shape=st.tuples(st.integers(1, 3), st.integers(1, 4),
                                   st.integers(1, 5), st.integers(1, 5)),
       dtype=st.sampled_from(DTYPES), layout=layouts, path=paths)
def test_max_squeeze_forward_matches_reference_including_ties(seed, shape, dtype, layout, path):
    # values from {0, 1, 2, 3}: most channels hold several equal maxima, so the
    # "first maximum in row-major order" rule is exercised on nearly every draw
    x = np.random.default_rng(seed).integers(0, 4, size=shape).astype(dtype)
    x = in_layout(x, layout)
    with kernel_path(path):
        z, argmax = cpu.max_squeeze_forward(x)
    z_ref, argmax_ref = ref.max_squeeze_forward(x)
    assert_identical(z, z_ref)
    assert_identical(argmax, argmax_ref)


def test_max_squeeze_first_maximum_and_nan_rule():
    x = np.array([[[[1.0, 3.0], [3.0, 0.0]],            # tie: flat index 1 wins, not 2
                   [[np.nan, 5.0], [np.nan, 9.0]],      # first NaN wins, as np.argmax
                   [[-np.inf, -np.inf], [-np.inf, -np.inf]]]])
    z, argmax = cpu.max_squeeze_forward(x)
    assert argmax.tolist() == [[1, 0, 0]]
    assert z[0, 0] == 3.0 and np.isnan(z[0, 1]) and z[0, 2] == -np.inf


@settings(max_examples=25)
@given(x=feature_maps(), seed=seeds)
def test_max_squeeze_backward_matches_reference(x, seed):
    dz = per_channel(x, seed)
    _, argmax = ref.max_squeeze_forward(x)
    assert_identical(cpu.max_squeeze_backward(dz, argmax, x.shape),
                     ref.max_squeeze_backward(dz, argmax, x.shape))


# --------------------------------------------------------------------------- scale and fused SE
@settings(max_examples=30)
@given(x=feature_maps(), seed=seeds, path=paths)
def test_scale_forward_matches_reference(x, seed, path):
    s = per_channel(x, seed)
    with kernel_path(path):
        assert_identical(cpu.scale_forward(x, s), ref.scale_forward(x, s))


@settings(max_examples=30)
@given(x=feature_maps(), seed=seeds, layout=layouts, path=paths)
def test_scale_backward_matches_reference(x, seed, layout, path):
    dy, s = same_shape_map(x, seed, layout), per_channel(x, seed)
    with kernel_path(path):
        dx, ds = cpu.scale_backward(dy, x, s)
    dx_ref, ds_ref = ref.scale_backward(dy, x, s)
    assert_identical(dx, dx_ref)
    assert_reduction_close(ds, ds_ref)


@settings(max_examples=30)
@given(x=feature_maps(), seed=seeds, layout=layouts, path=paths)
def test_se_backward_ds_matches_reference(x, seed, layout, path):
    dy = same_shape_map(x, seed, layout)
    with kernel_path(path):
        assert_reduction_close(cpu.se_backward_ds(dy, x), ref.se_backward_ds(dy, x))


@settings(max_examples=30)
@given(dy=feature_maps(), seed=seeds, path=paths)
def test_se_backward_dx_matches_reference(dy, seed, path):
    s, dz = per_channel(dy, seed), per_channel(dy, seed + 1) - dy.dtype.type(0.5)
    with kernel_path(path):
        assert_identical(cpu.se_backward_dx(dy, s, dz), ref.se_backward_dx(dy, s, dz))


@settings(max_examples=30)
@given(u=feature_maps(), seed=seeds, layout=layouts, path=paths)
def test_scale_add_forward_matches_reference(u, seed, layout, path):
    s, shortcut = per_channel(u, seed), same_shape_map(u, seed, layout)
    with kernel_path(path):
        out = cpu.scale_add_forward(u, s, shortcut)
    assert_identical(out, ref.scale_add_forward(u, s, shortcut))


# --------------------------------------------------------------------------- the end of a residual unit
@settings(max_examples=30)
@given(u=feature_maps(), seed=seeds, layout=layouts, path=paths)
def test_residual_add_relu_kernels_match_reference(u, seed, layout, path):
    s, shortcut = per_channel(u, seed), same_shape_map(u, seed, layout)
    dout = same_shape_map(u, seed + 1, layout)
    with kernel_path(path):
        out = cpu.add_relu_forward(u, shortcut)
        scaled = cpu.scale_add_relu_forward(u, s, shortcut)
        d_pre = cpu.relu_backward(dout, scaled)
    assert_identical(out, ref.add_relu_forward(u, shortcut))
    assert_identical(scaled, ref.scale_add_relu_forward(u, s, shortcut))
    assert_identical(d_pre, ref.relu_backward(dout, scaled))
    overwritten = u.copy(order="K")                     # a view stays a view's layout
    with kernel_path(path):
        result = cpu.scale_add_relu_forward_in_place(overwritten, s, shortcut)
    assert result is overwritten
    assert_identical(result, scaled)


# --------------------------------------------------------------------------- conv helpers, pooling
@st.composite
def window_configs(draw, max_kernel=3, pooling=True):
    """(kernel, stride, padding, dilation) pairs; pooling keeps padding ≤ kernel/2 (PyTorch's
    rule), a convolution may pad by up to a whole kernel (whole rows/columns of zeros)."""
    kernel = (draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    limit = (kernel[0] // 2, kernel[1] // 2) if pooling else kernel
    padding = (draw(st.integers(0, limit[0])), draw(st.integers(0, limit[1])))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    return kernel, stride, padding, dilation


def fits(x_shape, kernel, stride, padding, dilation=(1, 1)):
    return all(ref.conv_output_size(x_shape[2 + axis], kernel[axis], stride[axis],
                                    padding[axis], dilation[axis]) >= 1 for axis in (0, 1))


@settings(max_examples=40)
@given(x=feature_maps(), config=window_configs(pooling=False), seed=seeds)
def test_im2col_and_col2im_match_reference(x, config, seed):
    kernel, stride, padding, dilation = config
    if not fits(x.shape, kernel, stride, padding, dilation):
        kernel, stride, padding, dilation = (1, 1), (1, 1), (0, 0), (1, 1)
    cols = cpu.im2col(x, kernel, stride, padding, dilation)
    assert_identical(cols, ref.im2col(x, kernel, stride, padding, dilation))
    dcols = np.random.default_rng(seed).uniform(-1, 1, size=cols.shape).astype(x.dtype)
    dcols = in_layout(dcols[None], "sliced")[0]
    assert_identical(cpu.col2im(dcols, x.shape, kernel, stride, padding, dilation),
                     ref.col2im(dcols, x.shape, kernel, stride, padding, dilation))


@settings(max_examples=40)
@given(seed=seeds, shape=st.tuples(st.integers(1, 2), st.integers(1, 3),
                                   st.integers(1, 7), st.integers(1, 7)),
       dtype=st.sampled_from(DTYPES), layout=layouts, config=window_configs())
def test_max_pool2d_matches_reference_including_ties(seed, shape, dtype, layout, config):
    kernel, stride, padding, _ = config
    if not fits(shape, kernel, stride, padding):
        kernel, stride, padding = (1, 1), (1, 1), (0, 0)
    rng = np.random.default_rng(seed)
    x = in_layout(rng.integers(-2, 2, size=shape).astype(dtype), layout)   # many ties
    out, argmax = cpu.max_pool2d_forward(x, kernel, stride, padding)
    out_ref, argmax_ref = ref.max_pool2d_forward(x, kernel, stride, padding)
    assert_identical(out, out_ref)
    assert_identical(argmax, argmax_ref)
    # overlapping windows (stride < kernel) share arg-maxes: backward must accumulate
    dout = rng.uniform(-1, 1, size=out.shape).astype(dtype)
    assert_identical(cpu.max_pool2d_backward(dout, argmax, x.shape),
                     ref.max_pool2d_backward(dout, argmax_ref, x.shape))


def test_max_pool2d_tie_goes_to_first_cell_of_window():
    x = np.array([[[[2.0, 2.0, 1.0],
                    [2.0, 0.0, 2.0]]]], dtype=np.float32)
    out, argmax = cpu.max_pool2d_forward(x, (2, 2), (1, 1), (0, 0))
    assert out.tolist() == [[[[2.0, 2.0]]]]
    assert argmax.tolist() == [[[[0, 1]]]]    # row-major first maximum of each window


@settings(max_examples=40)
@given(x=feature_maps(), config=window_configs(), seed=seeds)
def test_avg_pool2d_matches_reference(x, config, seed):
    kernel, stride, padding, _ = config
    if not fits(x.shape, kernel, stride, padding):
        kernel, stride, padding = (1, 1), (1, 1), (0, 0)
    out = cpu.avg_pool2d_forward(x, kernel, stride, padding)
    assert_reduction_close(out, ref.avg_pool2d_forward(x, kernel, stride, padding))
    dout = np.random.default_rng(seed).uniform(-1, 1, size=out.shape).astype(x.dtype)
    assert_identical(cpu.avg_pool2d_backward(dout, x.shape, kernel, stride, padding),
                     ref.avg_pool2d_backward(dout, x.shape, kernel, stride, padding))



# --------------------------------------------------------------------------- convolution
# conv2d_forward/backward: the numba kernels unfold a few samples at a time and
# call BLAS per sample, the reference once per batch. Both compute the same
# sums of products, possibly in a different order (BLAS blocks its sums as it
# likes), so they agree to the standard bound for two orders of summation of k
# terms: |a − b| ≤ 2·k·ε·Σ|terms|, with Σ|terms| the same operation on |inputs|.
# Any wrong index puts a whole O(1) term in the wrong place, far beyond it.

def summation_bound(absolute_result, terms, dtype):
    return 2 * terms * np.finfo(dtype).eps * absolute_result


@st.composite
def convolutions(draw):
    """(x, weight, stride, padding, dilation, groups): odd sizes, every option, any layout."""
    groups = draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    span = [dilation[axis] * (kernel[axis] - 1) + 1 for axis in (0, 1)]
    size = [max(1, span[axis] - 2 * padding[axis] + draw(st.integers(0, 6))) for axis in (0, 1)]
    channels = groups * draw(st.integers(1, 3))
    filters = groups * draw(st.integers(1, 5))          # 1-15 filters: the 4-at-a-time rest too
    dtype = draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(draw(seeds))
    x = rng.uniform(-1, 1, size=(draw(st.integers(1, 5)), channels, *size)).astype(dtype)
    weight = rng.uniform(-1, 1, size=(filters, channels // groups, *kernel)).astype(dtype)
    return (in_layout(x, draw(layouts)), weight, stride, padding, dilation, groups)


@settings(max_examples=60)
@given(convolution=convolutions(), seed=seeds)
def test_conv2d_forward_and_backward_match_reference(convolution, seed):
    check_conv2d_against_reference(convolution, seed)


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_pointwise_conv2d_without_unfolding_matches_reference(groups, dtype):
    """1×1, stride 1, no padding: x[n] is used as its own columns and dx[n] as dcols
    (``_is_pointwise``); the random draws above reach this case only by chance."""
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, size=(3, 4, 5, 6)).astype(dtype)
    weight = rng.uniform(-1, 1, size=(6, 4 // groups, 1, 1)).astype(dtype)
    assert numba_conv._is_pointwise(weight.shape[2:], (1, 1), (0, 0))
    for layout in ("contiguous", "sliced"):
        check_conv2d_against_reference(
            (in_layout(x, layout), weight, (1, 1), (0, 0), (1, 1), groups), seed=7)


def check_conv2d_against_reference(convolution, seed):
    x, weight, stride, padding, dilation, groups = convolution
    options = (stride, padding, dilation, groups)
    dtype = x.dtype.type
    out = cpu.conv2d_forward(x, weight, *options)
    expected = ref.conv2d_forward(x, weight, *options)
    assert out.dtype == x.dtype and out.shape == expected.shape and out.flags.c_contiguous
    bound = ref.conv2d_forward(np.abs(x), np.abs(weight), *options)
    terms = weight[0].size
    assert np.all(np.abs(out - expected) <= summation_bound(bound, terms, dtype))

    dout = np.random.default_rng(seed).uniform(-1, 1, size=out.shape).astype(x.dtype)
    dx, dweight = cpu.conv2d_backward(in_layout(dout, "sliced"), x, weight, *options)
    expected_dx, expected_dweight = ref.conv2d_backward(dout, x, weight, *options)
    bound_dx, bound_dweight = ref.conv2d_backward(np.abs(dout), np.abs(x), np.abs(weight), *options)
    assert dx.dtype == dweight.dtype == x.dtype
    assert dx.shape == x.shape and dweight.shape == weight.shape
    # dx: a BLAS sum over O/g filters, then col2im adds ≤ kh·kw of those per pixel
    dx_terms = weight.shape[0] // groups * weight.shape[2] * weight.shape[3]
    assert np.all(np.abs(dx - expected_dx) <= summation_bound(bound_dx, dx_terms, dtype))
    # dweight: a sum over N·OH·OW positions (float64 in the kernel, x's dtype in the reference)
    dweight_terms = dout.shape[0] * dout.shape[2] * dout.shape[3]
    assert np.all(np.abs(dweight - expected_dweight)
                  <= summation_bound(bound_dweight, dweight_terms, dtype))


@st.composite
def same_size_windows(draw):
    """Stride 1 and OW = W, the case ``im2col_sample_whole_rows`` takes, with any row padding."""
    kernel_w, dilation_w = draw(st.integers(1, 5)), draw(st.integers(1, 2))
    if dilation_w * (kernel_w - 1) % 2:
        kernel_w += 1                                        # an even span is needed for OW = W
    kernel = (draw(st.integers(1, 4)), kernel_w)
    dilation = (draw(st.integers(1, 2)), dilation_w)
    padding = (draw(st.integers(0, 4)), dilation_w * (kernel_w - 1) // 2)
    return kernel, (1, 1), padding, dilation


@settings(max_examples=60)
@given(x=feature_maps(max_side=9), window=st.one_of(same_size_windows(), window_configs(pooling=False)),
       seed=seeds)
def test_one_sample_unfold_and_fold_are_exactly_the_reference(x, window, seed):
    """Both paths (whole rows and row by row) copy and add in the reference's order: exact."""
    kernel, stride, padding, dilation = window
    if not fits(x.shape, kernel, stride, padding, dilation):
        padding = (kernel[0] * dilation[0], kernel[1] * dilation[1])   # now it always fits
    expected = ref.im2col(x, kernel, stride, padding, dilation)
    out_h = ref.conv_output_size(x.shape[2], kernel[0], stride[0], padding[0], dilation[0])
    out_w = ref.conv_output_size(x.shape[3], kernel[1], stride[1], padding[1], dilation[1])
    arguments = (*kernel, *stride, *padding, *dilation, out_h, out_w)
    dcols = np.random.default_rng(seed).uniform(-1, 1, size=expected.shape).astype(x.dtype)
    expected_dx = ref.col2im(dcols, x.shape, kernel, stride, padding, dilation)
    for n in range(x.shape[0]):
        cols = np.full(expected.shape[1:], np.nan, dtype=x.dtype)     # every entry must be written
        numba_conv.im2col_sample(np.ascontiguousarray(x[n]), cols, *arguments)
        assert_identical(cols, expected[n])
        dx = np.full(x.shape[1:], np.nan, dtype=x.dtype)
        numba_conv.col2im_sample(dcols[n].copy(), dx, *arguments)
        assert_identical(dx, expected_dx[n])


def test_conv2d_same_result_with_one_or_two_workers_and_blas_threads_restored(monkeypatch):
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, size=(7, 4, 9, 9)).astype(np.float32)
    weight = rng.uniform(-1, 1, size=(6, 4, 3, 3)).astype(np.float32)
    dout = rng.uniform(-1, 1, size=(7, 6, 9, 9)).astype(np.float32)
    options = ((1, 1), (1, 1), (1, 1), 1)
    from threadpoolctl import threadpool_info, threadpool_limits
    with threadpool_limits(2, user_api="blas"):     # not the 1 the suite runs with (conftest.py)
        blas_threads_before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
        results = [cpu.conv2d_forward(x, weight, *options), *cpu.conv2d_backward(dout, x, weight, *options)]
        assert [lib["num_threads"] for lib in threadpool_info()
                if lib["user_api"] == "blas"] == blas_threads_before
    monkeypatch.setattr(threads, "blas_controller", lambda: None)   # no BLAS control: one worker
    assert threads.worker_count(7) == 1
    single = [cpu.conv2d_forward(x, weight, *options), *cpu.conv2d_backward(dout, x, weight, *options)]
    # the forward and dx are per-sample work either way; dweight is summed per
    # fixed chunk of samples, whichever worker takes it: all three identical
    assert_identical(single[0], results[0])
    assert_identical(single[1], results[1])
    assert_identical(single[2], results[2])


def test_worker_pool_is_shut_down_and_made_again_on_demand():
    count = threads.worker_count(5)
    assert threads.run_on_workers(lambda worker, workers: (worker, workers), 5) == [
        (worker, count) for worker in range(count)]
    threads.shutdown_workers()                   # what runs at exit (atexit)
    assert threads._workers["pool"] is None
    assert threads.run_on_workers(lambda worker, workers: worker, 5) == list(range(count))


def test_one_worker_holds_the_blas_to_one_thread_only_when_asked():
    from threadpoolctl import threadpool_info, threadpool_limits
    if threads.blas_controller() is None:
        pytest.skip("threadpoolctl finds no BLAS it can control here")

    def blas_threads(worker, count):
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    with threadpool_limits(2, user_api="blas"):
        assert threads.run_on_workers(blas_threads, 1, hold_blas=True) == [[1]]
        assert threads.run_on_workers(blas_threads, 1) == [[2]]


def test_run_chunks_does_every_chunk_once_in_chunk_order_with_one_scratch_per_worker():
    made = []

    def make_scratch():
        made.append(object())
        return made[-1]

    taken = []
    results = threads.run_chunks(lambda chunk, scratch: (taken.append(chunk), chunk * chunk,
                                                         scratch)[1:], 11, make_scratch)
    assert [value for value, _ in results] == [chunk * chunk for chunk in range(11)]
    assert sorted(taken) == list(range(11))                     # each chunk exactly once
    assert len(made) == threads.worker_count(11)                # one scratch per worker
    assert {id(scratch) for _, scratch in results} <= {id(scratch) for scratch in made}


# --------------------------------------------------------------------------- batch normalisation
@settings(max_examples=40)
@given(x=feature_maps(), seed=seeds, layout=layouts)
def test_batch_norm_kernels_match_reference(x, seed, layout):
    for path in ("serial", "parallel"):          # small maps take the serial loops
        with kernel_path(path):
            check_batch_norm_against_reference(x, seed, layout)


def check_batch_norm_against_reference(x, seed, layout):
    rng = np.random.default_rng(seed)
    channels = x.shape[1]
    mean, variance = cpu.batch_norm_statistics(x)
    expected_mean, expected_variance = ref.batch_norm_statistics(x)
    assert_reduction_close(mean, expected_mean)            # float64 sums in both, in another order
    assert_reduction_close(variance, expected_variance)

    inverse_std, weight, bias = (rng.uniform(0.5, 2, channels).astype(x.dtype) for _ in range(3))
    # the same operations in the same order, without fused multiply-adds: identical
    y, normalized = cpu.batch_norm_normalize(x, expected_mean, inverse_std, weight, bias)
    expected_y, expected_normalized = ref.batch_norm_normalize(x, expected_mean, inverse_std,
                                                               weight, bias)
    assert_identical(y, expected_y)
    assert_identical(normalized, expected_normalized)

    dy = same_shape_map(x, seed + 1, layout)
    sums = cpu.batch_norm_backward_sums(dy, normalized)
    expected_sums = ref.batch_norm_backward_sums(dy, normalized)
    absolute_sums = ref.batch_norm_backward_sums(np.abs(dy), np.abs(normalized))
    terms = x.shape[0] * x.shape[2] * x.shape[3]
    for actual, expected, absolute in zip(sums, expected_sums, absolute_sums):
        assert actual.dtype == expected.dtype
        # float64 in the kernel, the map's dtype (NumPy's pairwise sum) in the reference
        assert np.all(np.abs(actual - expected) <= summation_bound(absolute, terms, x.dtype.type))
    assert_identical(cpu.batch_norm_backward_dx(dy, normalized, weight, *expected_sums),
                     ref.batch_norm_backward_dx(dy, normalized, weight, *expected_sums))

    # BatchNorm2d + ReLU: a β of either sign, so that the mask cuts some of every channel
    relu_bias = rng.uniform(-1, 1, channels).astype(x.dtype)
    # evaluation mode's affine pass, alone and with ReLU: the same operations, identical
    assert_identical(cpu.batch_norm_affine(x, weight, relu_bias),
                     ref.batch_norm_affine(x, weight, relu_bias))
    assert_identical(cpu.batch_norm_affine_relu(x, weight, relu_bias),
                     ref.batch_norm_affine_relu(x, weight, relu_bias))
    y, normalized = cpu.batch_norm_relu_normalize(x, expected_mean, inverse_std, weight, relu_bias)
    expected_y, expected_normalized = ref.batch_norm_relu_normalize(x, expected_mean, inverse_std,
                                                                    weight, relu_bias)
    assert_identical(y, expected_y)
    assert_identical(normalized, expected_normalized)
    sums = cpu.batch_norm_relu_backward_sums(dy, normalized, weight, relu_bias)
    expected_sums = ref.batch_norm_relu_backward_sums(dy, normalized, weight, relu_bias)
    for actual, expected, absolute in zip(sums, expected_sums, absolute_sums):
        assert actual.dtype == expected.dtype
        # |g| <= |dy|: the unmasked absolute sums bound the masked ones' rounding as well
        assert np.all(np.abs(actual - expected) <= summation_bound(absolute, terms, x.dtype.type))
    assert_identical(
        cpu.batch_norm_relu_backward_dx(dy, normalized, weight, relu_bias, weight, *expected_sums),
        ref.batch_norm_relu_backward_dx(dy, normalized, weight, relu_bias, weight, *expected_sums))

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("path", ["serial", "parallel"])
def test_one_region_per_direction_gives_the_contract_passes_numbers(dtype, relu, path):
    """``batch_norm_train_forward`` / ``_backward`` and their ``relu`` twins (one job per
    channel) against the single passes run one after the other: the same operations in
    the same order, so every output is identical, statistics and sums included. "serial"
    is below the parallel threshold, where the passes themselves run; "parallel" the
    channel loops."""
    from se_numpy.kernels.numba import norm
    rng = np.random.default_rng(3)
    channels = max(4, numba.get_num_threads())        # a channel for every thread
    x = rng.normal(3.0, 2.0, size=(3, channels, 5, 6)).astype(dtype)
    dy = rng.normal(size=x.shape).astype(dtype)
    weight = rng.uniform(0.5, 2, channels).astype(dtype)
    bias = rng.uniform(-1, 1, channels).astype(dtype)   # either sign: the mask cuts some
    eps = 1e-5
    with kernel_path(path):
        assert norm._one_region_pays(x.size, channels) == (path == "parallel")
        mean, variance = cpu.batch_norm_statistics(x)
        inverse_std = (1.0 / np.sqrt(variance.astype(np.float64) + eps)).astype(dtype)
        normalize = cpu.batch_norm_relu_normalize if relu else cpu.batch_norm_normalize
        expected_forward = (mean, variance, inverse_std) + normalize(x, mean, inverse_std,
                                                                       weight, bias)
        normalized = expected_forward[4]
        scale = weight * inverse_std
        if relu:
            forward = norm.batch_norm_relu_train_forward(x, eps, weight, bias)
            sums = cpu.batch_norm_relu_backward_sums(dy, normalized, weight, bias)
            dx = cpu.batch_norm_relu_backward_dx(dy, normalized, weight, bias, scale, *sums)
            backward = norm.batch_norm_relu_train_backward(dy, normalized, weight, bias,
                                                           inverse_std)
        else:
            forward = norm.batch_norm_train_forward(x, eps, weight, bias)
            sums = cpu.batch_norm_backward_sums(dy, normalized)
            dx = cpu.batch_norm_backward_dx(dy, normalized, scale, *sums)
            backward = norm.batch_norm_train_backward(dy, normalized, weight, inverse_std)
    for actual, expected in zip(forward + backward, expected_forward + sums + (dx,)):
        assert_identical(actual, expected)


# --------------------------------------------------------------------------- dtype and layout rules
@pytest.mark.parametrize("dtype", DTYPES)
def test_outputs_keep_the_input_dtype_and_are_contiguous(dtype):
    x = np.ones((2, 3, 4, 5), dtype=dtype)
    s = np.ones((2, 3), dtype=dtype)
    outputs = [cpu.squeeze_forward(x), cpu.squeeze_backward(s, x.shape), cpu.scale_forward(x, s),
               *cpu.scale_backward(x, x, s), cpu.se_backward_ds(x, x), cpu.se_backward_dx(x, s, s),
               cpu.scale_add_forward(x, s, x), cpu.max_squeeze_forward(x)[0],
               cpu.avg_pool2d_forward(x, (2, 2), (2, 2), (0, 0)),
               cpu.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0))[0],
               cpu.im2col(x, (3, 3), (1, 1), (1, 1), (1, 1)),
               cpu.conv2d_forward(x, np.ones((2, 3, 3, 3), dtype), (1, 1), (1, 1), (1, 1), 1),
               *cpu.conv2d_backward(np.ones((2, 2, 4, 5), dtype), x, np.ones((2, 3, 3, 3), dtype),
                                    (1, 1), (1, 1), (1, 1), 1)]
    for output in outputs:
        assert output.dtype == dtype
        assert output.flags.c_contiguous


def test_large_map_takes_the_parallel_path_and_agrees():
    """A map above PARALLEL_MIN_ELEMENTS with the default threshold (no forcing)."""
    x = np.random.default_rng(1).uniform(-1, 1, size=(4, 16, 128, 128)).astype(np.float32)
    assert x.size >= rows.PARALLEL_MIN_ELEMENTS
    s = per_channel(x, 2)
    assert_reduction_close(cpu.squeeze_forward(x), ref.squeeze_forward(x))
    assert_identical(cpu.scale_forward(x, s), ref.scale_forward(x, s))
    assert_reduction_close(cpu.se_backward_ds(x, x), ref.se_backward_ds(x, x))


# --------------------------------------------------------------------------- teaching drafts
@settings(max_examples=20)
@given(x=feature_maps(), seed=seeds)
def test_naive_drafts_compute_the_same_operation(x, seed):
    # float64 maps: every draft must agree to summation-order rounding;
    # float32 maps: the float32-accumulating draft may drift by a few ulp on
    # ≤ 49 terms (≤ 49 roundings of 2^-24 relative each), the others by 1 ulp
    expected = ref.squeeze_forward(x)
    drift = {np.float32: 49 * 2 ** -24, np.float64: 1e-13}[x.dtype.type]
    for draft in (cpu_naive.squeeze_forward_pixel_outer, cpu_naive.squeeze_forward_float64):
        assert_reduction_close(draft(x), expected)
    np.testing.assert_allclose(cpu_naive.squeeze_forward_same_dtype(x), expected, rtol=drift,
                               atol=drift)
    s, dz = per_channel(x, seed), per_channel(x, seed + 1)
    # the promoting draft evaluates in float64 and rounds once; the reference
    # rounds the product (|dy·s| < 1, error ≤ 2^-24) and then the sum (< 2,
    # error ≤ 2^-23): they may differ by 2^-24 + 2^-23 < 2^-22 in absolute terms
    promotion_gap = {np.float32: 2 ** -22, np.float64: 1e-15}[x.dtype.type]
    np.testing.assert_allclose(cpu_naive.se_backward_dx_promoting(x, s, dz),
                               ref.se_backward_dx(x, s, dz), rtol=0, atol=promotion_gap)


# --------------------------------------------------------------------------- the benchmark runs
def test_benchmark_writes_json_chart_and_counts_bytes_from_the_arrays(tmp_path):
    import json

    from se_numpy.bench import format_table, run_benchmark
    shape = (2, 3, 4, 6)
    result = run_benchmark("numba", shapes=[shape], repeats=1, out_dir=str(tmp_path),
                           include_torch=False, quick=True)
    saved = json.loads((tmp_path / "kernels_numba.json").read_text())
    assert (tmp_path / "kernels_numba.png").read_bytes()[:4] == b"\x89PNG"
    assert saved["memory"]["copy_GBps"] == result["memory"]["copy_GBps"] > 0
    rows_by_name = {row["kernel"]: row for row in saved["shapes"][0]["kernels"]}
    # squeeze reads x (2·3·4·6 float32 = 576 B) and writes z (2·3 float32 = 24 B)
    assert rows_by_name["squeeze_forward"]["min_bytes"] == 576 + 24
    # scale reads x and s (24 B) and writes y (576 B)
    assert rows_by_name["scale_forward"]["min_bytes"] == 576 + 24 + 576
    # max squeeze writes z and an int64 index per channel map (6 · 8 B)
    assert rows_by_name["max_squeeze_forward"]["min_bytes"] == 576 + 24 + 48
    # a 2×2 max pool reads x, writes the (2, 3, 2, 3) output and its int64 argmax
    assert rows_by_name["max_pool2d_forward"]["min_bytes"] == 576 + 36 * 4 + 36 * 8
    for row in rows_by_name.values():
        assert set(row["results"]) == {"numpy", "numba"}
    assert saved["shapes"][0]["se_block"]["bytes"] == 7 * 576
    assert "SE block forward+backward" in format_table(result)
    with pytest.raises(ValueError, match="NCHW"):
        run_benchmark("numba", shapes=[(2, 3, 4)], out_dir=str(tmp_path))
    with pytest.raises(ValueError, match="backend"):
        run_benchmark("fortran", out_dir=str(tmp_path))


def test_benchmark_times_the_library_se_block(monkeypatch):
    """The timed SE block is functional's, on the backend asked for: a broken kernel there
    shows in the benchmark's output too, and the numba result matches numpy's."""
    from se_numpy.bench import cpu as bench_cpu
    shape = (2, 32, 5, 7)
    rng = np.random.default_rng(0)
    x, dy = rng.uniform(-1, 1, size=(2, *shape))
    params = bench_cpu.se_parameters(shape[1], dtype=np.float64)
    assert params["fc1_weight"].shape == (2, 32)                  # hidden_width(32, 16)
    y_ref, grads_ref = bench_cpu.se_block_forward_backward("numpy", x, dy, params)
    y, grads = bench_cpu.se_block_forward_backward("numba", x, dy, params)
    assert_reduction_close(y, y_ref)
    for gradient, expected in zip(grads, grads_ref):
        assert_reduction_close(gradient, expected)
    monkeypatch.setattr(cpu, "se_backward_dx", lambda dy, s, dz: np.zeros_like(dy))
    _, (broken_dx, *_) = bench_cpu.se_block_forward_backward("numba", x, dy, params)
    assert not np.allclose(broken_dx, grads_ref[0])
