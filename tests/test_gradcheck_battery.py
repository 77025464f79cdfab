"""A battery of correct and planted-bug backward passes, run with the checker's defaults.

Each case is (f, vjp, inputs, correct). The battery reports how many planted
bugs the default check catches and how many correct backward passes it
rejects (false alarms); both must be perfect. The bugs are the usual ones:
constant factors of 0.1-1 %, one wrong entry in a large tensor, a missing
1/N, a transpose, a sign, a missing path, a wrong reduction axis, writes
into dy or x, wrong shapes and dtypes, non-determinism, a wrong value at a
kink; the correct cases include kinks and ties, large and tiny magnitudes,
length scales far from 1 and functions computed in float32.

Run ``python -m pytest -s tests/test_gradcheck_battery.py`` to see the table.
"""
import numpy as np
import pytest

from se_numpy import functional as F
from se_numpy.gradcheck import check_vjp
from test_gradcheck import softmax, softmax_vjp
from test_gradcheck_reproducers import layer_norm, layer_norm_vjp, tanh32, tanh32_vjp


def random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def positive(shape, seed=0, low=0.2, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, shape)


CASES = {}


def case(name, f, vjp, inputs, correct, names=None):
    CASES[name] = (f, vjp, inputs if isinstance(inputs, tuple) else (inputs,), correct, names)


# ----------------------------------------------------------------- element-wise functions
def tanh_vjp(dy, x):
    return dy * (1 - np.tanh(x) ** 2)


case("tanh", np.tanh, tanh_vjp, random((3, 4)), True)
case("tanh, 1 % factor", np.tanh, lambda dy, x: 1.01 * tanh_vjp(dy, x), random((3, 4)), False)
case("tanh, 0.1 % factor", np.tanh, lambda dy, x: 1.001 * tanh_vjp(dy, x), random((3, 4)), False)
case("tanh, sign flip", np.tanh, lambda dy, x: -tanh_vjp(dy, x), random((3, 4)), False)
case("tanh at length scale 1e-6", lambda x: np.tanh(1e6 * x),
     lambda dy, x: 1e6 * dy * (1 - np.tanh(1e6 * x) ** 2), 1e-6 * random(6), True)
case("tanh shifted to 1e6", lambda x: np.tanh(x - 1e6),
     lambda dy, x: dy * (1 - np.tanh(x - 1e6) ** 2), 1e6 + random(6), True)
case("tanh shifted to 1e6, 1 % factor", lambda x: np.tanh(x - 1e6),
     lambda dy, x: 1.01 * dy * (1 - np.tanh(x - 1e6) ** 2), 1e6 + random(6), False)
case("exp of large inputs", np.exp, lambda dy, x: dy * np.exp(x), 20 + random(5), True)
case("log", np.log, lambda dy, x: dy / x, positive(6), True)
case("log, derivative of log10", np.log, lambda dy, x: dy / (x * np.log(10)), positive(6), False)
case("sigmoid", F.sigmoid, lambda dy, x: dy * F.sigmoid(x) * (1 - F.sigmoid(x)), random(7), True)
case("sigmoid, y instead of y(1-y)", F.sigmoid, lambda dy, x: dy * F.sigmoid(x), random(7), False)
case("relu at exactly 0 (kink)", lambda x: np.maximum(x, 0), lambda dy, x: dy * (x > 0),
     np.array([0.5, 0.0, -0.7, 1.1, -0.2]), True)
case("relu, gradient 0.5 at 0 is a subgradient too", lambda x: np.maximum(x, 0),
     lambda dy, x: dy * np.where(x == 0, 0.5, x > 0), np.array([0.5, 0.0, -0.7]), True)
case("relu, gate open from -1e-3", lambda x: np.maximum(x, 0), lambda dy, x: dy * (x > -1e-3),
     np.array([0.5, -1e-4, -0.7, 1.1]), False)
case("half square near its minimum", lambda x: 0.5 * x ** 2, lambda dy, x: dy * x,
     np.array([0.5, 1.2, -0.7, 1e-4]), True)
case("half square, zeroed near 0", lambda x: 0.5 * x ** 2,
     lambda dy, x: dy * np.where(np.abs(x) < 1e-3, 0.0, x), np.array([0.5, 1.2, -0.7, 1e-4]),
     False)

# magnitudes
C = np.array([1e6, 1e-3, 1.0])
case("scaled by 1e6 and 1e-3", lambda x: C * x, lambda dy, x: dy * C, random(3), True)
case("scaled, 10 % off in the 1e-3 entry", lambda x: C * x,
     lambda dy, x: dy * C * np.array([1.0, 1.1, 1.0]), random(3), False)


def one_wrong_entry(dy, x):
    dx = tanh_vjp(dy, x)
    dx[1, 2, 3, 4] *= 1.01
    return dx


case("tanh 2x8x16x16, 1 % in one entry", np.tanh, one_wrong_entry, random((2, 8, 16, 16)), False)
case("tanh 2x8x16x16", np.tanh, tanh_vjp, random((2, 8, 16, 16)), True)


case("float32 tanh", tanh32, tanh32_vjp, random((3, 5)).astype(np.float32), True)
case("float32 tanh, 1 % factor", tanh32, lambda dy, x: tanh32_vjp(dy, x, 1.01),
     random((3, 5)).astype(np.float32), False)


# ----------------------------------------------------------------- reductions and layers
case("softmax", softmax, softmax_vjp, random((3, 5)), True)
case("softmax, saturated", softmax, softmax_vjp, 30 * random((3, 5)), True)
case("softmax, sum over the wrong axis", softmax,
     lambda dy, x: softmax(x) * (dy - np.sum(softmax(x) * dy, axis=0, keepdims=True)),
     random((3, 5)), False)
case("mean", lambda x: x.mean(axis=(2, 3)),
     lambda dz, x: np.broadcast_to(dz[:, :, None, None] / 12, x.shape).copy(),
     random((2, 3, 3, 4)), True)
case("mean, 1/N missing", lambda x: x.mean(axis=(2, 3)),
     lambda dz, x: np.broadcast_to(dz[:, :, None, None], x.shape).copy(),
     random((2, 3, 3, 4)), False)
case("max over distinct values", lambda x: x.max(axis=1),
     lambda dy, x: dy[:, None] * (x == x.max(axis=1, keepdims=True)),
     np.random.default_rng(3).permutation(np.linspace(-1, 1, 12)).reshape(3, 4), True)


def first_argmax_vjp(dy, x):
    dx = np.zeros_like(x)
    np.put_along_axis(dx, x.argmax(axis=1)[:, None], dy[:, None], axis=1)
    return dx


case("max with a tie (kink)", lambda x: x.max(axis=1), first_argmax_vjp,
     np.array([[0.3, 0.9, 0.9, -0.1], [0.2, -0.4, 0.6, 0.1]]), True)
case("max with a tie, gradient to both", lambda x: x.max(axis=1),
     lambda dy, x: dy[:, None] * (x == x.max(axis=1, keepdims=True)),
     np.array([[0.3, 0.9, 0.9, -0.1], [0.2, -0.4, 0.6, 0.1]]), False)
# inputs seeded apart from the checker's dy (x = dy would make xᵀ·dy symmetric)
case("matmul", lambda x, w: x @ w, lambda dy, x, w: (dy @ w.T, x.T @ dy),
     (random((3, 4), 11), random((4, 4), 12)), True)
case("matmul, missing transpose", lambda x, w: x @ w, lambda dy, x, w: (dy @ w.T, (x.T @ dy).T),
     (random((3, 4), 11), random((4, 4), 12)), False)
case("product, gradients swapped", lambda a, b: a * b, lambda dy, a, b: (dy * a, dy * b),
     (random((3, 3), 1), random((3, 3), 2)), False)


case("layer norm at 1e6", layer_norm, layer_norm_vjp, 1e6 + random(6, 5), True)
case("layer norm, mean term missing", layer_norm,
     lambda dy, x: layer_norm_vjp(dy, x) + dy.mean() / np.std(x), random(6, 5), False)


def se_forward(x, w1, b1, w2, b2):
    return F.se_block_forward(x, w1, b1, w2, b2)[0]


def se_backward(dy, x, w1, b1, w2, b2):
    return F.se_block_backward(dy, F.se_block_forward(x, w1, b1, w2, b2)[1])


def se_direct_path_only(dy, x, w1, b1, w2, b2):
    dx, *rest = se_backward(dy, x, w1, b1, w2, b2)
    s = F.se_block_forward(x, w1, b1, w2, b2)[1]["s"]
    return (dy * s[:, :, None, None], *rest)


SE_INPUTS = (random((2, 4, 3, 3), 4), 0.7 * random((2, 4), 5), positive(2, 6, 0.1, 0.5),
             0.7 * random((4, 2), 7), 0.3 * random(4, 8))
SE_NAMES = ("x", "w1", "b1", "w2", "b2")
case("SE block", se_forward, se_backward, SE_INPUTS, True, SE_NAMES)
case("SE block, squeeze path missing", se_forward, se_direct_path_only, SE_INPUTS, False,
     SE_NAMES)
case("SE block, b2 gradient 0.5 % off", se_forward,
     lambda dy, *a: (*se_backward(dy, *a)[:4], 1.005 * se_backward(dy, *a)[4]), SE_INPUTS,
     False, SE_NAMES)


def conv(x, w):
    return F.conv2d_forward(x, w, padding=1)[0]


def conv_vjp(dy, x, w):
    return F.conv2d_backward(dy, F.conv2d_forward(x, w, padding=1)[1])[:2]


CONV_INPUTS = (random((1, 2, 5, 5), 9), random((3, 2, 3, 3), 10))
case("conv2d", conv, conv_vjp, CONV_INPUTS, True, ("x", "w"))
case("conv2d, weight gradient 0.2 % off", conv,
     lambda dy, x, w: (conv_vjp(dy, x, w)[0], 1.002 * conv_vjp(dy, x, w)[1]), CONV_INPUTS,
     False, ("x", "w"))


def attention(q, k):
    scores = q @ k.T / 2.0                   # 1/√d with d = 4
    return softmax(scores)


def attention_vjp(dy, q, k, scale=0.5):
    y = attention(q, k)
    dscores = y * (dy - np.sum(y * dy, axis=1, keepdims=True))
    return dscores @ k * scale, dscores.T @ q * scale


case("attention weights", attention, attention_vjp, (random((3, 4), 1), random((5, 4), 2)), True)
case("attention weights, 1/√d missing", attention,
     lambda dy, q, k: attention_vjp(dy, q, k, 1.0), (random((3, 4), 1), random((5, 4), 2)),
     False)


# ----------------------------------------------------------------- invariant bugs
def writes_into_dy(dy, x):
    dy *= 1 - np.tanh(x) ** 2
    return dy


def writes_into_x(dy, x):
    dx = tanh_vjp(dy, x)
    x[...] = 0
    return dx


case("vjp writes into dy", np.tanh, writes_into_dy, random(5), False)
case("vjp writes into x", np.tanh, writes_into_x, random(5), False)
case("gradient of a broadcastable wrong shape", lambda x, b: x + b,
     lambda dy, x, b: (dy, dy.sum(axis=0, keepdims=True)), (random((3, 4)), random(4)), False)
case("gradient upcast to float64", np.tanh, lambda dy, x: tanh_vjp(dy, x).astype(np.float64),
     random((2, 3)).astype(np.float32), False)
MASK = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
case("dropout mask drawn again in the vjp", lambda x: x * MASK,
     lambda dy, x: dy * (np.random.default_rng().random(x.shape) < 0.7), random(6), False)
case("vjp not linear in dy", np.tanh, lambda dy, x: np.abs(dy) * dy * (1 - np.tanh(x) ** 2),
     random(4), False)


# ----------------------------------------------------------------- the battery
def run_battery():
    rows = []
    for name, (f, vjp, inputs, correct, names) in CASES.items():
        report = check_vjp(f, vjp, tuple(a.copy() for a in inputs), names=names)
        rows.append((name, correct, report.passed, report))
    return rows


@pytest.fixture(scope="module")
def battery():
    return run_battery()


def test_battery_has_enough_cases():
    correct = sum(c for *_, c, _ in CASES.values())
    assert len(CASES) >= 40 and correct >= 15 and len(CASES) - correct >= 20, (len(CASES), correct)


def test_every_planted_bug_caught_and_no_false_alarm(battery):
    bugs = [row for row in battery if not row[1]]
    caught = [row for row in bugs if not row[2]]
    correct = [row for row in battery if row[1]]
    false_alarms = [row for row in correct if not row[2]]
    print(f"\ngradcheck battery: {len(caught)} of {len(bugs)} planted bugs caught, "
          f"{len(false_alarms)} false alarms in {len(correct)} correct cases")
    for name, is_correct, passed, _ in battery:
        print(f"  {'correct' if is_correct else 'bug    '}  {'passed' if passed else 'FAILED'}  {name}")
    missed = [name for name, *_ in bugs if name not in {row[0] for row in caught}]
    assert not missed, f"bugs not caught: {missed}"
    assert not false_alarms, "\n\n".join(str(row[3]) for row in false_alarms)
