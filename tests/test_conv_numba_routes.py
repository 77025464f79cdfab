"""The numba convolution's routes, each against the NumPy reference.

``kernels/numba/conv.py`` computes dx of a stride-1 convolution as a forward
convolution of dout with the flipped, transposed kernel, dx of a pointwise one
as one product, and dx of the rest by col2im, as the reference; it works on
blocks of samples whose size depends on ``BLOCK_BYTES``. Each route and each
block size must give the reference's numbers. The tolerance is the bound for
two orders of summation of k terms, |a − b| ≤ 2·k·ε·Σ|terms| (Σ|terms|: the
same operation on |inputs|); an index error moves a whole O(1) term.
"""
import numpy as np
import pytest

from se_numpy.kernels import numba as cpu
from se_numpy.kernels import numpy as ref
from se_numpy.kernels.numba import conv as numba_conv
from se_numpy.kernels.numba import conv_one_sample, direct_conv

# (kernel, stride, padding, dilation, route): every route, odd sizes, rectangular windows
CASES = [((3, 3), (1, 1), (1, 1), (1, 1), "as convolution"),     # SE-ResNet's 3x3
         ((3, 2), (1, 1), (0, 1), (1, 2), "as convolution"),     # no row padding, dilated columns
         ((2, 3), (1, 1), (1, 0), (2, 1), "as convolution"),     # OW != W: the row-by-row unfold
         ((1, 3), (1, 1), (0, 1), (1, 1), "as convolution"),
         ((3, 3), (1, 1), (3, 3), (1, 1), "col2im"),             # p > d·(k − 1): dout would need cropping
         ((3, 3), (2, 2), (1, 1), (1, 1), "col2im"),             # strided
         ((1, 1), (2, 1), (0, 0), (1, 1), "col2im"),             # ResNet's 1x1 stride-2 shortcut
         ((1, 1), (1, 1), (0, 0), (1, 1), "pointwise")]


def route(kernel, stride, padding, dilation):
    if numba_conv._is_pointwise(kernel, stride, padding):
        return "pointwise"
    if numba_conv._dx_as_convolution_padding(kernel, stride, padding, dilation) is not None:
        return "as convolution"
    return "col2im"


def bound(absolute, terms, dtype):
    return 2 * terms * np.finfo(dtype).eps * absolute


def check_against_reference(x, weight, options):
    dtype = x.dtype.type
    out = cpu.conv2d_forward(x, weight, *options)
    expected = ref.conv2d_forward(x, weight, *options)
    assert out.dtype == x.dtype and out.shape == expected.shape
    absolute = ref.conv2d_forward(np.abs(x), np.abs(weight), *options)
    assert np.all(np.abs(out - expected) <= bound(absolute, weight[0].size, dtype))

    dout = np.random.default_rng(1).uniform(-1, 1, size=out.shape).astype(x.dtype)
    dx, dweight = cpu.conv2d_backward(dout, x, weight, *options)
    expected_dx, expected_dweight = ref.conv2d_backward(dout, x, weight, *options)
    absolute_dx, absolute_dweight = ref.conv2d_backward(np.abs(dout), np.abs(x), np.abs(weight),
                                                        *options)
    groups = options[3]
    dx_terms = weight.shape[0] // groups * weight.shape[2] * weight.shape[3]
    assert dx.dtype == x.dtype and dx.shape == x.shape
    assert np.all(np.abs(dx - expected_dx) <= bound(absolute_dx, dx_terms, dtype))
    dweight_terms = dout.shape[0] * dout.shape[2] * dout.shape[3]
    assert dweight.dtype == x.dtype and dweight.shape == weight.shape
    assert np.all(np.abs(dweight - expected_dweight)
                  <= bound(absolute_dweight, dweight_terms, dtype))
    return out, dx, dweight


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case[4]}-k{case[0]}s{case[1]}"
                         f"p{case[2]}d{case[3]}")
def test_each_route_matches_reference(case, groups, dtype):
    kernel, stride, padding, dilation, expected_route = case
    assert route(kernel, stride, padding, dilation) == expected_route
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(5, 2 * groups, 7, 6)).astype(dtype)
    weight = rng.uniform(-1, 1, size=(3 * groups, 2) + kernel).astype(dtype)
    check_against_reference(x, weight, (stride, padding, dilation, groups))


def test_flipped_transposed_weight_is_the_definition():
    """W'_γ[c, (o·kh + a)·kw + b] = W[γ·O/g + o, c, kh−1−a, kw−1−b], written as loops."""
    weight = np.random.default_rng(2).normal(size=(6, 2, 3, 2))
    groups, filters = 3, 2
    flipped = numba_conv.flipped_transposed_weight(weight, groups)
    assert flipped.shape == (groups, 2, filters * 3 * 2)
    for group in range(groups):
        for c in range(2):
            for o in range(filters):
                for a in range(3):
                    for b in range(2):
                        assert (flipped[group, c, (o * 3 + a) * 2 + b]
                                == weight[group * filters + o, c, 2 - a, 1 - b])


@pytest.mark.parametrize("block_bytes", [1, 3000, 1 << 30])
@pytest.mark.parametrize("stride", [(1, 1), (2, 2)], ids=["as convolution", "col2im"])
def test_any_block_size_gives_the_same_numbers(monkeypatch, block_bytes, stride):
    """One sample per block, a few (with a shorter last block), the whole chunk: the
    forward and dx are per-sample work and dW is added sample by sample in
    float64, so the results are identical, not just close."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, size=(11, 3, 5, 5)).astype(np.float32)
    weight = rng.uniform(-1, 1, size=(4, 3, 3, 3)).astype(np.float32)
    options = (stride, (1, 1), (1, 1), 1)
    size = 5 if stride == (1, 1) else 3
    dout = rng.uniform(-1, 1, size=(11, 4, size, size)).astype(np.float32)

    def run():
        return [cpu.conv2d_forward(x, weight, *options),
                *cpu.conv2d_backward(dout, x, weight, *options)]
    expected = run()
    monkeypatch.setattr(numba_conv, "BLOCK_BYTES", block_bytes)
    for actual, wanted in zip(run(), expected):
        np.testing.assert_array_equal(actual, wanted)


def test_samples_per_block_fits_the_budget_and_leaves_blocks_for_the_workers(monkeypatch):
    monkeypatch.setattr(numba_conv, "BLOCK_BYTES", 1000)
    assert numba_conv._samples_per_block(300, 128) == 3       # 3 × 300 ≤ 1000
    assert numba_conv._samples_per_block(5000, 128) == 1      # a sample larger than the budget
    assert numba_conv._samples_per_block(1, 16) == 2          # at most an eighth of the batch
    assert numba_conv._blocks(3, 10, 3) == [(3, 6), (6, 9), (9, 10)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", [((3, 3), (1, 1), (1, 1), (1, 1), 1),    # unfolded by channels
                                  ((3, 2), (2, 1), (1, 0), (1, 2), 2),    # strided, dilated, groups
                                  ((1, 1), (1, 1), (0, 0), (1, 1), 1)],   # pointwise: cols is x
                         ids=["3x3", "strided-groups", "pointwise"])
def test_batch_one_split_across_workers_matches_reference(monkeypatch, case, dtype):
    """A batch of one sample is shared by its output, not by samples: the workers
    unfold a range of input channels each, then multiply a range of pixels (or of
    filters, where there are fewer pixels than filters). Three parts make uneven
    ranges (channels 3, 3, 1; pixels 32, 32, 8 of 72, or filters 16, 16, 8 of 40
    at stride 2), handed round to however many threads run; SMALL_PRODUCT = 0
    takes this path for a small test shape."""
    kernel, stride, padding, dilation, groups = case
    monkeypatch.setattr(numba_conv, "SHARE_ONE_SAMPLE", True)     # opt-in (conv.py says why)
    monkeypatch.setattr(numba_conv, "SMALL_PRODUCT", 0)
    monkeypatch.setattr(numba_conv, "worker_count", lambda jobs: 3)
    assert conv_one_sample.ranges(40, 3, 16) == [(0, 16), (16, 32), (32, 40)]
    assert conv_one_sample.ranges(7, 3, 1) == [(0, 3), (3, 6), (6, 7)]
    assert conv_one_sample.ranges(72, 3, 16) == [(0, 32), (32, 64), (64, 72)]
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, size=(1, 7 if groups == 1 else 8, 9, 8))
    x = x.astype(dtype)
    weight = rng.uniform(-1, 1, size=(40, x.shape[1] // groups) + kernel).astype(dtype)
    out, _, _ = check_against_reference(x, weight, (stride, padding, dilation, groups))
    bias = rng.uniform(-1, 1, size=40).astype(dtype)      # added per range of filters
    with_bias = numba_conv.conv2d_bias_forward(x, weight, bias, stride, padding, dilation, groups)
    np.testing.assert_array_equal(with_bias, out + bias[None, :, None, None])


@pytest.mark.parametrize("stride", [(1, 1), (2, 2)], ids=["as convolution", "col2im"])
def test_bias_is_added_per_block_as_after_the_product(monkeypatch, stride):
    """Several blocks of samples (BLOCK_BYTES = 1: one sample each): out + bias, the same
    numbers as adding the bias to the finished output."""
    monkeypatch.setattr(numba_conv, "BLOCK_BYTES", 1)
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, size=(5, 3, 6, 7)).astype(np.float32)
    weight = rng.uniform(-1, 1, size=(4, 3, 3, 3)).astype(np.float32)
    bias = rng.uniform(-1, 1, size=4).astype(np.float32)
    options = (stride, (1, 1), (1, 1), 1)
    expected = numba_conv.conv2d_forward(x, weight, *options) + bias[None, :, None, None]
    np.testing.assert_array_equal(numba_conv.conv2d_bias_forward(x, weight, bias, *options),
                                  expected)


@pytest.mark.parametrize("case", CASES[:1] + CASES[5:], ids=lambda case: case[4])
def test_weight_gradient_alone_is_the_full_backwards_dweight(case):
    """``conv2d_weight_backward`` (no dx: a network's first convolution) skips the dx work
    of every route and returns the same dW. Bit for bit where both unfold x (the same
    chunks, the same sums); on the stride-1 route the full backward takes dW from the
    unfolded dout instead (the same products summed over input pixels rather than output
    pixels), so there the two orders of summation are held to the bound."""
    kernel, stride, padding, dilation, expected_route = case
    rng = np.random.default_rng(6)
    x = rng.uniform(-1, 1, size=(9, 4, 7, 6)).astype(np.float32)
    weight = rng.uniform(-1, 1, size=(6, 2) + kernel).astype(np.float32)
    options = (stride, padding, dilation, 2)
    dout = rng.uniform(-1, 1, size=cpu.conv2d_forward(x, weight, *options).shape)
    dout = dout.astype(np.float32)
    _, expected = cpu.conv2d_backward(dout, x, weight, *options)
    alone = numba_conv.conv2d_weight_backward(dout, x, weight, *options)
    if expected_route != "as convolution":
        np.testing.assert_array_equal(alone, expected)
        return
    _, absolute = ref.conv2d_backward(np.abs(dout), np.abs(x), np.abs(weight), *options)
    terms = dout.shape[0] * dout.shape[2] * dout.shape[3]
    # each is within the bound of the exact sums, so they are within twice it of each other
    assert np.all(np.abs(alone - expected) <= 2 * bound(absolute, terms, np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [(5, 7), (1, 1), (4, 3)])
def test_direct_convolution_study_matches_reference(dtype, size):
    """``direct_conv.conv3x3`` (a study, not a route): the same sums as the reference, each
    multiply-add possibly fused (one rounding instead of two), held to the same bound."""
    rng = np.random.default_rng(8)
    x = rng.uniform(-1, 1, size=(3, 5) + size).astype(dtype)
    weight = rng.uniform(-1, 1, size=(8, 5, 3, 3)).astype(dtype)
    options = ((1, 1), (1, 1), (1, 1), 1)
    expected = ref.conv2d_forward(x, weight, *options)
    absolute = ref.conv2d_forward(np.abs(x), np.abs(weight), *options)
    out = direct_conv.conv3x3(x, weight)
    assert out.dtype == x.dtype and out.shape == expected.shape
    assert np.all(np.abs(out - expected) <= bound(absolute, weight[0].size, dtype))
    with pytest.raises(ValueError, match="multiple of 4"):
        direct_conv.conv3x3(x, weight[:6])


# Winograd F(2×2, 3×3), opt-in (WINOGRAD_MIN_CHANNELS, None by default). Its rounding is not the direct
# method's, so it is held to the bound of its own sums, for max|x| = max|w| = 1: an entry of
# Bᵀ d B adds 4 inputs (≤ 4), of G g Gᵀ weighs 9 by at most (3/2)² in all (≤ 9/4), so each of
# the C·16 products is ≤ 9 and an output, which Aᵀ·A recombines from 9 of the 16 positions,
# sums terms of absolute sum ≤ 81·C, rounded along ≤ C + 12 steps (the product's sum over C,
# then 4 adds in each of the three transforms): |error| ≤ 2·(C + 12)·ε·81·C. An index error
# moves whole O(1) products, orders of magnitude beyond it (float32: 0.09 beside outputs
# of size ~8; the measured error, docs/kernels.md, is ~1e-6 of that size).
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("size", [(5, 5), (6, 7)])
def test_winograd_route_matches_reference(monkeypatch, dtype, padding, size):
    channels = 64
    assert not numba_conv.use_winograd((3, 3), (1, 1), (1, 1), 1, channels)   # off by default
    monkeypatch.setattr(numba_conv, "WINOGRAD_MIN_CHANNELS", channels)
    assert numba_conv.use_winograd((3, 3), (1, 1), (1, 1), 1, channels)
    assert not numba_conv.use_winograd((3, 3), (1, 1), (1, 1), 1, channels - 1)
    assert not numba_conv.use_winograd((3, 3), (2, 2), (1, 1), 1, channels)
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, size=(3, channels) + size).astype(dtype)
    weight = rng.uniform(-1, 1, size=(channels, channels, 3, 3)).astype(dtype)
    options = ((1, 1), (padding, padding), (1, 1), 1)
    tolerance = 2 * (channels + 12) * np.finfo(dtype).eps * 81 * channels
    out = cpu.conv2d_forward(x, weight, *options)
    np.testing.assert_allclose(out, ref.conv2d_forward(x, weight, *options), rtol=0, atol=tolerance)
    dout = rng.uniform(-1, 1, size=out.shape).astype(dtype)
    dx, dweight = cpu.conv2d_backward(dout, x, weight, *options)
    expected_dx, expected_dweight = ref.conv2d_backward(dout, x, weight, *options)
    np.testing.assert_allclose(dx, expected_dx, rtol=0, atol=tolerance)
    # dW is not Winograd's: two orders of a sum of N·OH·OW products, each ≤ 1
    dweight_terms = out.shape[0] * out.shape[2] * out.shape[3]
    np.testing.assert_allclose(dweight, expected_dweight, rtol=0,
                               atol=2 * dweight_terms * np.finfo(dtype).eps * dweight_terms)


def test_winograd_transforms_of_one_tile_are_the_definition():
    """Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A for one 4×4 tile and one filter: the 2×2 direct outputs."""
    from se_numpy.kernels.numba import winograd
    rng = np.random.default_rng(6)
    d = rng.normal(size=(1, 1, 4, 4))
    g = rng.normal(size=(1, 1, 3, 3))
    out = np.empty((1, 1, 2, 2))
    buffers = (np.empty(16), np.empty(16))
    winograd.convolve_block(d, winograd.filter_transform(g), out, (0, 0), buffers)
    direct = [[np.sum(d[0, 0, i:i + 3, j:j + 3] * g[0, 0]) for j in range(2)] for i in range(2)]
    np.testing.assert_allclose(out[0, 0], direct, rtol=1e-13, atol=1e-13)
