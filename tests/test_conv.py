"""Conv2d: naive loop evaluation, finite-difference gradients, batch consistency, dtypes, errors.

The loop convolution below is written from the definition (cross-correlation
with zero padding, dilation and groups), independently of im2col, so both would
have to be wrong the same way for the forward tests to pass.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import se_numpy as sn
from se_numpy.functional.conv import conv2d_backward, conv2d_forward
from se_numpy.gradcheck import check_module
from se_numpy.nn.conv import Conv2d
from finite_differences import numerical_vjp

# Central differences in float64 with step 1e-6: truncation error ~ step² · |f'''| ~ 1e-12 and
# rounding error ~ 1e-16 · |f| / step ~ 1e-9 for the O(10) values used here, so 1e-6 (relative
# and absolute) is far above the noise and far below any real error (which is O(0.1)).
TOLERANCE = 1e-6   # with finite_differences.STEP = 1e-6


def loop_conv2d(x, weight, bias, stride, padding, dilation, groups):
    """out[n,o,p,q] = b[o] + Σ_{c,a,b} w[o,c,a,b]·x[n, g·C/g + c, p·s − pad + a·d, q·s − pad + b·d]."""
    n_batch, in_channels, height, width = x.shape
    out_channels, channels_per_group, kernel_height, kernel_width = weight.shape
    out_height = (height + 2 * padding - dilation * (kernel_height - 1) - 1) // stride + 1
    out_width = (width + 2 * padding - dilation * (kernel_width - 1) - 1) // stride + 1
    filters_per_group = out_channels // groups
    out = np.zeros((n_batch, out_channels, out_height, out_width))
    for n in range(n_batch):
        for o in range(out_channels):
            first_channel = (o // filters_per_group) * channels_per_group
            for p in range(out_height):
                for q in range(out_width):
                    total = 0.0 if bias is None else bias[o]
                    for c in range(channels_per_group):
                        for a in range(kernel_height):
                            for b in range(kernel_width):
                                row = p * stride - padding + a * dilation
                                column = q * stride - padding + b * dilation
                                if 0 <= row < height and 0 <= column < width:   # else: padding, 0
                                    total += weight[o, c, a, b] * x[n, first_channel + c, row, column]
                    out[n, o, p, q] = total
    return out


@st.composite
def conv_configs(draw):
    """Small convolutions over every option; the input is just large enough for one output."""
    groups = draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride, padding, dilation = draw(st.integers(1, 2)), draw(st.integers(0, 2)), draw(st.integers(1, 2))
    extent = [dilation * (k - 1) + 1 for k in kernel]            # span of the dilated kernel
    height = max(1, extent[0] - 2 * padding + draw(st.integers(0, 3)))
    width = max(1, extent[1] - 2 * padding + draw(st.integers(0, 3)))
    shape = dict(n=draw(st.integers(1, 2)), in_channels=groups * draw(st.integers(1, 2)),
                 out_channels=groups * draw(st.integers(1, 2)), height=height, width=width)
    return dict(shape=shape, kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                groups=groups, bias=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


def make_arrays(config, dtype=np.float64):
    shape, rng = config["shape"], np.random.default_rng(config["seed"])
    x = rng.normal(size=(shape["n"], shape["in_channels"], shape["height"], shape["width"]))
    weight = rng.normal(size=(shape["out_channels"], shape["in_channels"] // config["groups"])
                        + config["kernel"])
    bias = rng.normal(size=shape["out_channels"]) if config["bias"] else None
    cast = (lambda a: None if a is None else a.astype(dtype))
    return cast(x), cast(weight), cast(bias)


def options(config):
    return dict(stride=config["stride"], padding=config["padding"], dilation=config["dilation"],
                groups=config["groups"])


@pytest.fixture(params=["numpy", "numba"])
def each_backend(request):
    """Run the test once per CPU backend: the math must hold for each kernel, not just agree."""
    with sn.use_backend(request.param):
        yield request.param


# --------------------------------------------------------------------------- forward
@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=conv_configs())
def test_forward_matches_loop_convolution(each_backend, config):
    x, weight, bias = make_arrays(config)
    out, _ = conv2d_forward(x, weight, bias, **options(config))
    expected = loop_conv2d(x, weight, bias, config["stride"], config["padding"],
                           config["dilation"], config["groups"])
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_forward_by_hand_one_by_one_channel_mix():
    # A 1x1 convolution mixes channels at every pixel: out[o] = Σ_c w[o,c]·x[c] + b[o].
    x = np.array([[[[1.0, 2.0]], [[3.0, 4.0]]]])                  # (1, 2, 1, 2)
    weight = np.array([[[[1.0]], [[10.0]]]])                        # (1, 2, 1, 1)
    out, _ = conv2d_forward(x, weight, np.array([0.5]))
    np.testing.assert_array_equal(out, [[[[31.5, 42.5]]]])


def test_rectangular_stride_padding_and_dilation_pairs():
    rng = np.random.default_rng(3)
    x, weight = rng.normal(size=(1, 2, 7, 6)), rng.normal(size=(3, 2, 2, 3))
    out, _ = conv2d_forward(x, weight, None, stride=(2, 1), padding=(1, 0), dilation=(1, 2))
    # Expected size from the PyTorch formula, per axis: rows (7+2-1-1)//2+1 = 4, columns (6-4-1)+1 = 2.
    assert out.shape == (1, 3, 4, 2)
    x_padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (0, 0)))
    expected = np.einsum("ocab,cab->o", weight, x_padded[0, :, 2:4, 1:6:2])   # output (1, 1)
    np.testing.assert_allclose(out[0, :, 1, 1], expected, rtol=1e-12)


# --------------------------------------------------------------------------- gradients
@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=conv_configs())
def test_gradients_match_finite_differences(each_backend, config):
    x, weight, bias = make_arrays(config)
    out, cache = conv2d_forward(x, weight, bias, **options(config))
    dout = np.random.default_rng(config["seed"] + 1).normal(size=out.shape)
    dx, dweight, dbias = conv2d_backward(dout, cache)

    def run():
        return conv2d_forward(x, weight, bias, **options(config))[0]

    np.testing.assert_allclose(dx, numerical_vjp(run, x, dout), rtol=TOLERANCE, atol=TOLERANCE)
    np.testing.assert_allclose(dweight, numerical_vjp(run, weight, dout),
                               rtol=TOLERANCE, atol=TOLERANCE)
    if bias is None:
        assert dbias is None
    else:
        np.testing.assert_allclose(dbias, numerical_vjp(run, bias, dout),
                                   rtol=TOLERANCE, atol=TOLERANCE)


@given(conv_configs())
def test_batch_gradients_are_stacked_per_sample_gradients(config):
    config = dict(config, shape=dict(config["shape"], n=3))
    x, weight, bias = make_arrays(config)
    out, cache = conv2d_forward(x, weight, bias, **options(config))
    dout = np.random.default_rng(config["seed"] + 1).normal(size=out.shape)
    dx, dweight, _ = conv2d_backward(dout, cache)
    per_sample = []
    for n in range(3):
        out_n, cache_n = conv2d_forward(x[n:n + 1], weight, bias, **options(config))
        np.testing.assert_allclose(out_n, out[n:n + 1], rtol=1e-12, atol=1e-12)
        per_sample.append(conv2d_backward(dout[n:n + 1], cache_n))
    np.testing.assert_allclose(dx, np.concatenate([g[0] for g in per_sample]), rtol=1e-12, atol=1e-12)
    # The weight is shared by the samples, so its gradient is the sum of theirs.
    np.testing.assert_allclose(dweight, sum(g[1] for g in per_sample), rtol=1e-10, atol=1e-10)


def test_overlapping_windows_accumulate_in_col2im():
    # 1 channel, kernel of ones, stride 1: dx[i] counts the windows that contain pixel i.
    x, weight = np.zeros((1, 1, 1, 4)), np.ones((1, 1, 1, 2))
    out, cache = conv2d_forward(x, weight)
    dx, _, _ = conv2d_backward(np.ones_like(out), cache)
    np.testing.assert_array_equal(dx[0, 0, 0], [1.0, 2.0, 2.0, 1.0])


# --------------------------------------------------------------------------- module
def test_module_backward_accumulates_parameter_gradients_and_matches_functional():
    conv = Conv2d(4, 6, 3, stride=2, padding=1, groups=2, dtype=np.float64, rng=7)
    x = np.random.default_rng(0).normal(size=(2, 4, 5, 5))
    out = conv(x)
    dy = np.random.default_rng(1).normal(size=out.shape)
    dx = conv.backward(dy)
    _, cache = conv2d_forward(x, conv.weight.data, conv.bias.data, 2, 1, 1, 2)
    expected_dx, expected_dweight, expected_dbias = conv2d_backward(dy, cache)
    np.testing.assert_array_equal(dx, expected_dx)
    np.testing.assert_array_equal(conv.weight.grad, expected_dweight)
    conv(x)
    conv.backward(dy)                                  # a second backward adds, it does not overwrite
    np.testing.assert_allclose(conv.weight.grad, 2 * expected_dweight, rtol=1e-15)
    np.testing.assert_allclose(conv.bias.grad, 2 * expected_dbias, rtol=1e-15)


def test_no_input_gradient_gives_the_same_parameter_gradients(each_backend):
    """``needs_input_grad = False`` (the network's first convolution, under the data):
    backward returns None and accumulates exactly the gradients of the full backward."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(3, 4, 7, 6))
    layers = [Conv2d(4, 6, 3, stride=2, padding=1, groups=2, dtype=np.float64, rng=0)
              for _ in range(2)]
    dout = rng.normal(size=layers[0].output_shape(x.shape))
    for layer, needs_input_grad in zip(layers, (True, False)):
        layer.needs_input_grad = needs_input_grad
        layer(x)
        dx = layer.backward(dout)
        assert (dx is None) == (not needs_input_grad)
    for full, alone in zip(layers[0].parameters(), layers[1].parameters()):
        np.testing.assert_array_equal(alone.grad, full.grad)


def test_initialisation_is_pytorch_default_and_seeded():
    conv = Conv2d(8, 16, 3, groups=2, rng=0)
    bound = 1 / np.sqrt(8 // 2 * 3 * 3)                   # fan_in = in/groups · kh · kw = 36
    for parameter in (conv.weight, conv.bias):
        assert parameter.dtype == np.float32
        assert np.all(np.abs(parameter.data) <= bound)
        assert np.abs(parameter.data).max() > 0.8 * bound   # spread over the interval, not a constant
    assert conv.weight.shape == (16, 4, 3, 3) and conv.bias.shape == (16,)
    again = Conv2d(8, 16, 3, groups=2, rng=0)
    np.testing.assert_array_equal(conv.weight.data, again.weight.data)
    assert not np.array_equal(Conv2d(8, 16, 3, groups=2, rng=1).weight.data, conv.weight.data)
    assert [name for name, _ in Conv2d(2, 3, 1, bias=False).named_parameters()] == ["weight"]


def test_output_shape_and_flops():
    conv = Conv2d(4, 8, (3, 1), stride=(2, 1), padding=(1, 0), groups=2)
    x = np.zeros((3, 4, 9, 5), dtype=np.float32)
    assert conv.output_shape(x.shape) == conv(x).shape == (3, 8, 5, 5)
    # N·OH·OW·out·(in/groups)·kh·kw = 3·5·5·8·2·3·1
    assert conv.flops(x.shape) == 3600


def test_float32_in_float32_out():
    conv = Conv2d(2, 3, 3, padding=1, rng=0)
    x = np.random.default_rng(0).normal(size=(2, 2, 4, 4)).astype(np.float32)
    out = conv(x)
    dx = conv.backward(np.ones_like(out))
    assert out.dtype == dx.dtype == conv.weight.grad.dtype == conv.bias.grad.dtype == np.float32
    conv64 = Conv2d(2, 3, 3, padding=1, rng=0).astype(np.float64)
    np.testing.assert_allclose(out, conv64(x.astype(np.float64)), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- bad input
def test_bad_input_errors_name_what_was_expected():
    conv = Conv2d(4, 4, 3, groups=2)
    with pytest.raises(ValueError, match="4-d"):
        conv(np.zeros((4, 5, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="expected 4 channels"):
        conv(np.zeros((1, 3, 5, 5), dtype=np.float32))
    with pytest.raises(TypeError, match="float32 or float64, got int64"):
        conv(np.zeros((1, 4, 5, 5), dtype=np.int64))
    with pytest.raises(TypeError, match="float32.*got float64"):
        conv(np.zeros((1, 4, 5, 5)))                      # float64 into a float32 module
    with pytest.raises(ValueError, match="does not fit"):
        conv(np.zeros((1, 4, 2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="groups"):
        Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="groups"):
        conv2d_forward(np.zeros((1, 3, 4, 4)), np.zeros((4, 1, 3, 3)), groups=2)
    with pytest.raises(ValueError, match=r"weight: expected shape \(4, 2, kh, kw\)"):
        conv2d_forward(np.zeros((1, 4, 4, 4)), np.zeros((4, 4, 3, 3)), groups=2)
    with pytest.raises(ValueError, match="bias"):
        conv2d_forward(np.zeros((1, 4, 4, 4)), np.zeros((4, 4, 3, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="stride"):
        conv2d_forward(np.zeros((1, 4, 4, 4)), np.zeros((4, 4, 3, 3)), stride=0)
    out, cache = conv2d_forward(np.zeros((1, 4, 4, 4)), np.zeros((4, 4, 3, 3)))
    with pytest.raises(ValueError, match="dout"):
        conv2d_backward(np.zeros((1, 4, 3, 3)), cache)
    with pytest.raises(RuntimeError, match="before forward"):
        Conv2d(1, 1, 1).backward(np.zeros((1, 1, 1, 1), dtype=np.float32))


# --------------------------------------------------------------------------- PyTorch (optional)
def test_agrees_with_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, weight, bias = rng.normal(size=(2, 4, 7, 6)), rng.normal(size=(6, 2, 3, 2)), rng.normal(size=6)
    kwargs = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    out, cache = conv2d_forward(x, weight, bias, **kwargs)
    dout = rng.normal(size=out.shape)
    dx, dweight, dbias = conv2d_backward(dout, cache)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, weight, bias))
    tout = torch.nn.functional.conv2d(tx, tw, tb, **kwargs)
    tout.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-10, atol=1e-10)
    for ours, theirs in ((dx, tx), (dweight, tw), (dbias, tb)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("options", [dict(stride=1, padding=1), dict(stride=2, dilation=2),
                                     dict(groups=2, bias=False)], ids=["padded", "dilated", "grouped"])
def test_module_passes_the_gradient_checker(options):
    conv = Conv2d(2, 4, 3, rng=0, **options)
    # In the module's dtype: the checker casts both to float64 for the numerics.
    x = np.random.default_rng(1).normal(size=(2, 2, 6, 5)).astype(np.float32)
    assert check_module(conv, x, raise_on_fail=True).passed
