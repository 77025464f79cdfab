"""The end of a residual unit fused: max(u + shortcut, 0) and max(s·u + shortcut, 0) in one pass.

They must equal the addition followed by ReLU; the backward, which reads ReLU's
mask off the output, must equal ReLU's own backward (mask 1[pre > 0]); both on
every CPU backend, in float32 and float64, NaN included.
"""
import numpy as np
import pytest

import se_numpy as sn
from se_numpy.functional.activation import relu_backward, relu_forward
from se_numpy.functional.residual import add_relu_forward, relu_output_backward
from se_numpy.functional.se import se_block_add_backward, se_block_add_forward

BACKENDS = ("numpy", "numba")


def maps(dtype, shape=(3, 4, 5, 6), seed=0):
    rng = np.random.default_rng(seed)
    return tuple(rng.normal(size=shape).astype(dtype) for _ in range(3))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_add_relu_is_the_addition_then_relu_both_ways(backend, dtype):
    u, shortcut, dout = maps(dtype)
    u[0, 0, 0, :2] = np.nan, -np.inf           # NaN passes ReLU; -inf + finite is clipped
    with sn.use_backend(backend):
        out, cache = add_relu_forward(u, shortcut)
        d_pre = relu_output_backward(dout, cache)
    expected, mask = relu_forward(u + shortcut)
    assert out.dtype == d_pre.dtype == dtype
    assert 0.2 < (out > 0).mean() < 0.8
    np.testing.assert_array_equal(out, expected)          # NaN where expected is NaN
    np.testing.assert_array_equal(d_pre, relu_backward(dout, mask))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_se_add_relu_is_se_add_then_relu_both_ways(backend, dtype):
    u, shortcut, dout = maps(dtype, seed=1)
    rng = np.random.default_rng(2)
    channels, hidden = u.shape[1], 2
    w1, b1 = rng.normal(size=(hidden, channels)).astype(dtype), rng.normal(size=hidden).astype(dtype)
    w2, b2 = rng.normal(size=(channels, hidden)).astype(dtype), rng.normal(size=channels).astype(dtype)
    with sn.use_backend(backend):
        out, cache = se_block_add_forward(u, shortcut, w1, b1, w2, b2, relu=True)
        pre, plain_cache = se_block_add_forward(u, shortcut, w1, b1, w2, b2)
        expected, mask = relu_forward(pre)
        np.testing.assert_array_equal(out, expected)
        d_pre = relu_output_backward(dout, out)
        np.testing.assert_array_equal(d_pre, relu_backward(dout, mask))
        fused = se_block_add_backward(d_pre, cache)
        plain = se_block_add_backward(relu_backward(dout, mask), plain_cache)
    for actual, wanted in zip(fused, plain):
        np.testing.assert_array_equal(actual, wanted)       # the same caches: the same numbers


def test_bad_inputs_are_refused():
    u = np.zeros((1, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="shortcut"):
        add_relu_forward(u, np.zeros((1, 2, 3, 4), np.float32))
    with pytest.raises(TypeError, match="shortcut"):
        add_relu_forward(u, np.zeros((1, 2, 3, 3), np.float64))
    with pytest.raises(ValueError, match="dout"):
        relu_output_backward(np.zeros((1, 2, 3, 4), np.float32), u)


def se_block_unit(inplace):
    from se_numpy.nn.residual import BasicBlock
    from se_numpy.nn.se import SEBlock
    return BasicBlock(4, 4, attention=SEBlock(4, reduction=2, inplace=inplace), rng=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_in_place_evaluation_gives_the_same_output_and_refuses_a_backward(backend):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 4, 5, 5)).astype(np.float32)
    plain, in_place = se_block_unit(False), se_block_unit(True)
    in_place.load_state_dict(plain.state_dict())
    with sn.use_backend(backend):
        for unit in (plain, in_place):
            unit(x)                                       # training mode: in place is off
            unit.eval()
        expected = plain(x)
        np.testing.assert_array_equal(in_place(x), expected)
        plain.backward(np.ones_like(expected))            # out of place: x was kept
        with pytest.raises(RuntimeError, match="inplace=True"):
            in_place.backward(np.ones_like(expected))
        in_place.train()
        plain.train()
        np.testing.assert_array_equal(in_place(x), plain(x))
        dx = in_place.backward(np.ones_like(expected))    # training mode keeps x again
        np.testing.assert_array_equal(dx, plain.backward(np.ones_like(expected)))


def test_in_place_needs_the_relu_kernel():
    u = np.zeros((1, 2, 3, 3), np.float32)
    weights = (np.ones((1, 2), np.float32), None, np.ones((2, 1), np.float32), None)
    with pytest.raises(ValueError, match="in_place=True needs relu=True"):
        se_block_add_forward(u, u.copy(), *weights, in_place=True)
