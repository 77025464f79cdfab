"""SE block forward: the paper's formulas evaluated by explicit loops, dtype rules, bad input.

The loop versions below are written from Eqs. 2-4 of the paper, independently
of the vectorised code, so that both would have to be wrong the same way.
"""
import numpy as np
import pytest

import se_numpy as sn
from se_numpy import functional as F


def loop_squeeze(x):
    n_batch, channels, height, width = x.shape
    z = np.zeros((n_batch, channels))
    for n in range(n_batch):
        for c in range(channels):
            total = 0.0
            for i in range(height):
                for j in range(width):
                    total += x[n, c, i, j]
            z[n, c] = total / (height * width)
    return z


def loop_excitation(z, w1, b1, w2, b2):
    n_batch, channels = z.shape
    hidden = w1.shape[0]
    s = np.zeros_like(z)
    for n in range(n_batch):
        h = [max(0.0, sum(w1[k, c] * z[n, c] for c in range(channels)) + b1[k])
             for k in range(hidden)]
        for c in range(channels):
            logit = sum(w2[c, k] * h[k] for k in range(hidden)) + b2[c]
            s[n, c] = 1.0 / (1.0 + np.exp(-logit))
    return s


def random_block(rng, channels=6, hidden=3):
    return (rng.normal(size=(hidden, channels)), rng.normal(size=hidden),
            rng.normal(size=(channels, hidden)), rng.normal(size=channels))


def test_squeeze_matches_loops():
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 5))
    z, _ = F.squeeze_forward(x)
    np.testing.assert_allclose(z, loop_squeeze(x), rtol=1e-13)


def test_max_squeeze_matches_loops_and_takes_first_of_ties():
    x = np.random.default_rng(1).normal(size=(2, 3, 4, 5))
    z, cache = F.squeeze_forward(x, mode="max")
    np.testing.assert_array_equal(z, x.max(axis=(2, 3)))
    tie = np.zeros((1, 1, 2, 2))
    tie[0, 0, 0, 1] = tie[0, 0, 1, 0] = 5.0          # two maxima: (0,1) comes first
    z, cache = F.squeeze_forward(tie, mode="max")
    dx = F.squeeze_backward(np.array([[2.0]]), cache)
    expected = np.zeros_like(tie)
    expected[0, 0, 0, 1] = 2.0
    np.testing.assert_array_equal(dx, expected)


def test_excitation_matches_loops():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(3, 6))
    w1, b1, w2, b2 = random_block(rng)
    s, _ = F.excitation_forward(z, w1, b1, w2, b2)
    np.testing.assert_allclose(s, loop_excitation(z, w1, b1, w2, b2), rtol=1e-12)


def test_scale_matches_loops():
    rng = np.random.default_rng(3)
    x, s = rng.normal(size=(2, 3, 4, 5)), rng.normal(size=(2, 3))
    y, _ = F.scale_forward(x, s)
    for n in range(2):
        for c in range(3):
            np.testing.assert_array_equal(y[n, c], s[n, c] * x[n, c])


def test_block_is_the_composition_of_the_three_steps():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 6, 3, 3))
    params = random_block(rng)
    y, cache = F.se_block_forward(x, *params)
    s = loop_excitation(loop_squeeze(x), *params)
    np.testing.assert_allclose(cache["s"], s, rtol=1e-12)
    np.testing.assert_allclose(y, s[:, :, None, None] * x, rtol=1e-12)


def test_axpy_equals_scale_plus_shortcut():
    rng = np.random.default_rng(5)
    x, shortcut = rng.normal(size=(2, 6, 3, 3)), rng.normal(size=(2, 6, 3, 3))
    params = random_block(rng)
    out, _ = F.se_block_add_forward(x, shortcut, *params)
    y, _ = F.se_block_forward(x, *params)
    np.testing.assert_allclose(out, y + shortcut, rtol=1e-12, atol=1e-15)


def test_hidden_width_is_c_over_r_at_least_one():
    assert F.hidden_width(64, 16) == 4
    assert F.hidden_width(3, 16) == 1
    assert sn.nn.SEBlock(64, reduction=16).hidden == 4
    assert sn.nn.SEBlock(64, hidden=7).fc1.weight.shape == (7, 64)


@pytest.mark.parametrize("gate", ["sigmoid", "tanh", "relu", "hard_sigmoid"])
def test_gates_are_stable_at_extreme_logits(gate):
    # W1 = I keeps h = (1000, 0); W2 = [[1, 0], [-1, 0]] makes the gate logits (+1000, -1000).
    z = np.array([[1000.0, -1000.0]])
    w2 = np.array([[1.0, 0.0], [-1.0, 0.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # warnings become errors
        s, _ = F.excitation_forward(z, np.eye(2), np.zeros(2), w2, np.zeros(2), gate=gate)
    expected = {"sigmoid": (1.0, 0.0), "tanh": (1.0, -1.0), "relu": (1000.0, 0.0),
                "hard_sigmoid": (1.0, 0.0)}[gate]
    np.testing.assert_array_equal(s[0], expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_in_is_dtype_out(dtype):
    rng = np.random.default_rng(6)
    se = sn.nn.SEBlock(8, reduction=4, dtype=dtype, rng=0)
    x = rng.normal(size=(2, 8, 3, 3)).astype(dtype)
    y = se(x)
    dx = se.backward(np.ones_like(y))
    assert y.dtype == dtype and dx.dtype == dtype
    assert all(p.grad.dtype == dtype for p in se.parameters())


def test_float32_squeeze_accumulates_precisely():
    # 224² entries of 0.1f: a float32 running sum drifts ~1e-4 relative; float64 accumulation doesn't.
    x = np.full((1, 1, 224, 224), 0.1, dtype=np.float32)
    z, _ = F.squeeze_forward(x)
    assert abs(float(z[0, 0]) - float(np.float32(0.1))) <= 1e-7


def test_bad_input_is_named():
    se = sn.nn.SEBlock(8, reduction=4)
    with pytest.raises(ValueError, match="4-d"):
        se(np.zeros((2, 8, 3), np.float32))
    with pytest.raises(ValueError, match="8 channels"):
        se(np.zeros((2, 5, 3, 3), np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        se(np.zeros((2, 8, 3, 3), np.int64))
    with pytest.raises(ValueError, match=r"s: expected shape \(2, 3\)"):
        F.scale_forward(np.zeros((2, 3, 4, 4)), np.zeros((2, 1)))   # no silent broadcast
    with pytest.raises(TypeError, match="float64"):
        F.scale_forward(np.zeros((2, 3, 4, 4)), np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="squeeze"):
        sn.nn.SEBlock(8, squeeze="median")
    with pytest.raises(ValueError, match="gate"):
        sn.nn.SEBlock(8, gate="softmax")
    with pytest.raises(RuntimeError, match="before forward"):
        sn.nn.SEBlock(8, reduction=4).backward(np.zeros((1, 8, 2, 2), np.float32))


def test_state_dict_writes_1x1_conv_shapes_and_accepts_both():
    se = sn.nn.SEBlock(32, reduction=8, rng=0)
    state = se.state_dict()
    # timm's SEModule stores fc1/fc2 as 1x1 convolutions; the layers compute with matrices
    assert {k: v.shape for k, v in state.items()} == {
        "fc1.weight": (4, 32, 1, 1), "fc1.bias": (4,), "fc2.weight": (32, 4, 1, 1),
        "fc2.bias": (32,)}
    assert se.fc1.weight.shape == (4, 32)
    np.testing.assert_array_equal(state["fc1.weight"][:, :, 0, 0], se.fc1.weight.data)
    other = sn.nn.SEBlock(32, reduction=8, rng=1)
    other.load_state_dict({k: v + 1 for k, v in state.items()})
    np.testing.assert_array_equal(other.fc2.weight.data, state["fc2.weight"][:, :, 0, 0] + 1)
    matrices = {k: (v[:, :, 0, 0] if v.ndim == 4 else v) - 1 for k, v in state.items()}
    other.load_state_dict(matrices)
    np.testing.assert_array_equal(other.fc1.weight.data, se.fc1.weight.data - 1)


def test_strict_load_lists_every_problem_at_once():
    se = sn.nn.SEBlock(16, reduction=4)
    state = se.state_dict()
    del state["fc1.bias"]
    state["fc2.weight"] = np.zeros((3, 3), np.float32)
    state["extra.weight"] = np.zeros(2, np.float32)
    with pytest.raises(ValueError) as error:
        se.load_state_dict(state)
    message = str(error.value)
    assert "fc1.bias" in message and "extra.weight" in message and "fc2.weight" in message


def test_initialisation_is_seeded_and_follows_pytorch_bounds():
    a, b = sn.nn.SEBlock(64, rng=3), sn.nn.SEBlock(64, rng=3)
    np.testing.assert_array_equal(a.fc1.weight.data, b.fc1.weight.data)
    bound = 1 / np.sqrt(64)                          # U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert np.abs(a.fc1.weight.data).max() <= bound
    assert np.abs(a.fc1.weight.data).max() > 0.9 * bound
