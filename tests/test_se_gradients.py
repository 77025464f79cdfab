"""SE block gradients against central finite differences, in float64.

Inputs are drawn with the public strategies of ``se_numpy.testing`` and kept a
margin away from every kink *by construction*: distinct feature-map values
(no max-squeeze ties), and biases placed so that no pre-activation of the
ReLU (or of the ReLU/hard-sigmoid gates) lies within 0.05 of its kink, while
the finite-difference step is about 6e-6. The checker's tolerances come from
its own error estimate (see docs/gradcheck.md); nothing is loosened here.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import se_numpy as sn
from se_numpy import functional as F
from se_numpy.gradcheck import check_module, check_vjp
from se_numpy.testing import distinct_nchw_arrays, float_arrays, se_configs

MARGIN = 0.05


def bias_away_from_kink(pre, rng):
    """Per column k, a bias b_k such that pre[:, k] + b_k stays >= MARGIN from 0.

    The bias puts zero in the middle of the widest gap between the sorted
    values of the column, so (with two or more rows) some units are active and
    some are not, and the ReLU mask is exercised, never straddled.
    """
    bias = np.empty(pre.shape[1])
    for k in range(pre.shape[1]):
        values = np.sort(pre[:, k])
        if len(values) == 1:
            bias[k] = -values[0] + rng.choice([-0.5, 0.5])
            continue
        gaps = np.diff(values)
        widest = int(np.argmax(gaps))
        bias[k] = -(values[widest] + values[widest + 1]) / 2
        if gaps[widest] < 2 * MARGIN:   # all values nearly equal: move them all to one side
            bias[k] = -values.mean() + rng.choice([-0.5, 0.5])
    return bias


def kink_free_parameters(z, hidden, gate, rng):
    """(w1, b1, w2, b2) whose ReLU and gate pre-activations on z avoid their kinks by >= MARGIN."""
    channels = z.shape[1]
    w1 = rng.normal(0, 1, (hidden, channels))
    b1 = bias_away_from_kink(z @ w1.T, rng)
    h = np.maximum(z @ w1.T + b1, 0)
    w2 = rng.normal(0, 1, (channels, hidden))
    pre_gate = h @ w2.T
    if gate == "hard_sigmoid":
        # kinks at ±3: centre the logits and shrink them into (-2.5, 2.5)
        b2 = -pre_gate.mean(axis=0)
        spread = np.abs(pre_gate + b2).max()
        if spread > 2.5:
            w2, b2 = w2 * 2.5 / spread, b2 * 2.5 / spread
    elif gate == "relu":
        b2 = bias_away_from_kink(pre_gate, rng)
    else:
        b2 = rng.normal(0, 0.5, channels)
    return w1, b1, w2, b2


def excitation_pair(gate):
    def forward(z, w1, b1, w2, b2):
        return F.excitation_forward(z, w1, b1, w2, b2, gate)[0]

    def backward(ds, z, w1, b1, w2, b2):
        return F.excitation_backward(ds, F.excitation_forward(z, w1, b1, w2, b2, gate)[1])
    return forward, backward


def block_pair(squeeze, gate):
    def forward(x, w1, b1, w2, b2):
        return F.se_block_forward(x, w1, b1, w2, b2, squeeze, gate)[0]

    def backward(dy, x, w1, b1, w2, b2):
        return F.se_block_backward(dy, F.se_block_forward(x, w1, b1, w2, b2, squeeze, gate)[1])
    return forward, backward


PARAMETER_NAMES = ("w1", "b1", "w2", "b2")


# ---------------------------------------------------------------------------- the three steps
@given(x=distinct_nchw_arrays(max_side=5, max_channels=6), mode=st.sampled_from(["avg", "max"]))
def test_squeeze_gradient(x, mode):
    report = check_vjp(lambda x: F.squeeze_forward(x, mode)[0],
                       lambda dz, x: F.squeeze_backward(dz, F.squeeze_forward(x, mode)[1]),
                       (x,), names=("x",), elementwise=True)
    assert report.passed, report


@given(x=distinct_nchw_arrays(max_side=5, max_channels=6), seed=st.integers(0, 2**16))
def test_scale_gradient_both_inputs(x, seed):
    s = np.random.default_rng(seed).uniform(-1, 1, x.shape[:2])
    report = check_vjp(lambda x, s: F.scale_forward(x, s)[0],
                       lambda dy, x, s: F.scale_backward(dy, F.scale_forward(x, s)[1]),
                       (x, s), names=("x", "s"), elementwise=True)
    assert report.passed, report


@given(z=float_arrays(st.tuples(st.integers(1, 4), st.integers(1, 12))),
       gate=st.sampled_from(["sigmoid", "tanh", "relu", "hard_sigmoid"]),
       reduction=st.sampled_from([1, 2, 4]), seed=st.integers(0, 2**16))
def test_excitation_gradient(z, gate, reduction, seed):
    rng = np.random.default_rng(seed)
    params = kink_free_parameters(z, F.hidden_width(z.shape[1], reduction), gate, rng)
    forward, backward = excitation_pair(gate)
    report = check_vjp(forward, backward, (z, *params), names=("z",) + PARAMETER_NAMES,
                       elementwise=True)
    assert report.passed, report


# ---------------------------------------------------------------------------- the block
@given(config=se_configs(max_channels=8), data=st.data(), seed=st.integers(0, 2**16))
def test_block_gradient(config, data, seed):
    shape = st.tuples(st.integers(1, 3), st.just(config["channels"]), st.integers(1, 4),
                      st.integers(1, 4))
    x = data.draw(float_arrays(shape))
    hidden = config["hidden"]
    z, _ = F.squeeze_forward(x, config["squeeze"])
    params = kink_free_parameters(z, hidden, config["gate"], np.random.default_rng(seed))
    forward, backward = block_pair(config["squeeze"], config["gate"])
    report = check_vjp(forward, backward, (x, *params), names=("x",) + PARAMETER_NAMES,
                       elementwise=True)
    assert report.passed, report


@given(x=distinct_nchw_arrays(min_side=2, max_side=4, max_channels=6), seed=st.integers(0, 2**16))
def test_scale_path_through_the_gates_is_needed(x, seed):
    """x reaches y twice: through the scale and through s(z(x)). Both paths are required.

    The full backward passes the check; dropping the path through s (using only
    dy·s) must fail it, so the test shows the second path is real and checked.
    """
    rng = np.random.default_rng(seed)
    z, _ = F.squeeze_forward(x)
    w1, _, w2, b2 = kink_free_parameters(z, max(1, x.shape[1] // 2), "sigmoid", rng)
    b1 = 0.5 - (z @ w1.T).min(axis=0)     # every hidden unit active, so the path through s is alive
    params = (w1, b1, w2, b2)
    forward, backward = block_pair("avg", "sigmoid")

    def direct_path_only(dy, x, *weights):
        dx, *grads = backward(dy, x, *weights)
        s = F.se_block_forward(x, *weights)[1]["s"]
        return (dy * s[:, :, None, None], *grads)

    assert check_vjp(forward, backward, (x, *params), elementwise=True).passed
    broken = check_vjp(forward, direct_path_only, (x, *params), elementwise=True)
    assert not broken.passed, broken


@given(config=se_configs(max_channels=8), seed=st.integers(0, 2**16))
@settings(max_examples=10)
def test_se_module_gradient(config, seed):
    rng = np.random.default_rng(seed)
    x = rng.permutation(np.linspace(-1, 1, 2 * config["channels"] * 9)).reshape(2, config["channels"], 3, 3)
    block = sn.nn.SEBlock(**config, rng=seed).astype(np.float64)
    z, _ = F.squeeze_forward(x, config["squeeze"])
    for parameter, value in zip(block.parameters(),
                                kink_free_parameters(z, block.hidden, config["gate"], rng)):
        parameter.data = value
    report = check_module(block, x, elementwise=True)
    assert report.passed, report


@given(x=distinct_nchw_arrays(max_side=4, max_channels=6), seed=st.integers(0, 2**16))
@settings(max_examples=10)
def test_fused_residual_add_gradient(x, seed):
    rng = np.random.default_rng(seed)
    z, _ = F.squeeze_forward(x)
    params = kink_free_parameters(z, max(1, x.shape[1] // 2), "sigmoid", rng)
    shortcut = rng.normal(size=x.shape)

    def forward(x, shortcut, *weights):
        return F.se_block_add_forward(x, shortcut, *weights)[0]

    def backward(dout, x, shortcut, *weights):
        return F.se_block_add_backward(dout, F.se_block_add_forward(x, shortcut, *weights)[1])
    report = check_vjp(forward, backward, (x, shortcut, *params),
                       names=("x", "shortcut") + PARAMETER_NAMES, elementwise=True)
    assert report.passed, report


def test_se_block_without_biases():
    rng = np.random.default_rng(7)
    x = rng.permutation(np.linspace(-1, 1, 2 * 8 * 4)).reshape(2, 8, 2, 2)
    block = sn.nn.SEBlock(8, reduction=2, bias=False, rng=0).astype(np.float64)
    assert [name for name, _ in block.named_parameters()] == ["fc1.weight", "fc2.weight"]
    assert check_module(block, x, elementwise=True).passed


# ---------------------------------------------------------------------------- batch consistency
@given(x=distinct_nchw_arrays(min_batch=2, max_batch=3, max_side=4, max_channels=6),
       squeeze=st.sampled_from(["avg", "max"]), seed=st.integers(0, 2**16))
@settings(max_examples=10)
def test_batch_gradients_are_stacked_sample_gradients(x, squeeze, seed):
    """A reduction over the wrong axis (e.g. the batch) mixes samples; this catches it."""
    rng = np.random.default_rng(seed)
    params = kink_free_parameters(F.squeeze_forward(x, squeeze)[0], 2, "sigmoid", rng)
    dy = rng.normal(size=x.shape)
    _, backward = block_pair(squeeze, "sigmoid")
    dx, dw1, db1, dw2, db2 = backward(dy, x, *params)
    per_sample = [backward(dy[n:n + 1], x[n:n + 1], *params) for n in range(x.shape[0])]
    np.testing.assert_allclose(dx, np.concatenate([g[0] for g in per_sample]), rtol=1e-12, atol=1e-14)
    for index, total in ((1, dw1), (2, db1), (3, dw2), (4, db2)):   # parameter grads sum over samples
        np.testing.assert_allclose(total, sum(g[index] for g in per_sample), rtol=1e-10, atol=1e-13)


# ---------------------------------------------------------------------------- planted bugs
def planted_inputs():
    rng = np.random.default_rng(11)
    x = rng.permutation(np.linspace(-1, 1, 2 * 6 * 9)).reshape(2, 6, 3, 3)
    params = kink_free_parameters(F.squeeze_forward(x)[0], 3, "sigmoid", rng)
    return x, params


def test_checker_catches_scale_backward_missing_ds():
    x, _ = planted_inputs()
    s = np.random.default_rng(0).uniform(0.2, 0.9, x.shape[:2])

    def scale_backward_without_ds(dy, cache):
        dx, ds = F.scale_backward(dy, cache)
        return dx, np.zeros_like(ds)                 # the bug: the gradient w.r.t. s is lost
    report = check_vjp(lambda x, s: F.scale_forward(x, s)[0],
                       lambda dy, x, s: scale_backward_without_ds(dy, F.scale_forward(x, s)[1]),
                       (x, s), names=("x", "s"))
    assert not report.passed
    assert "s" in str(report)


def test_checker_catches_wrong_gate_derivative(monkeypatch):
    """The excitation backward using tanh's derivative for a sigmoid gate must be caught."""
    x, params = planted_inputs()
    from se_numpy.functional import activation
    wrong = dict(activation.ACTIVATIONS)
    wrong["sigmoid"] = (activation.sigmoid_forward, activation.tanh_backward)   # 1 - s² for s(1 - s)
    monkeypatch.setattr(activation, "ACTIVATIONS", wrong)
    forward, backward = block_pair("avg", "sigmoid")
    report = check_vjp(forward, backward, (x, *params), names=("x",) + PARAMETER_NAMES)
    assert not report.passed, report


def test_checker_catches_missing_one_over_hw():
    x, params = planted_inputs()
    forward, _ = block_pair("avg", "sigmoid")

    def backward_without_mean_factor(dy, x, w1, b1, w2, b2):
        y, cache = F.se_block_forward(x, w1, b1, w2, b2)
        ds = np.einsum("ncij,ncij->nc", dy, x)
        dz, *grads = F.excitation_backward(ds, cache["excitation"])
        dx = dy * cache["s"][:, :, None, None] + dz[:, :, None, None]   # the bug: dz, not dz/HW
        return (dx, *grads)
    report = check_vjp(forward, backward_without_mean_factor, (x, *params),
                       names=("x",) + PARAMETER_NAMES)
    assert not report.passed, report
    assert not report.tensors["x"]["passed"]


@pytest.mark.parametrize("bug", ["scale_missing_ds", "wrong_gate_derivative"])
def test_gradcheck_command_fails_on_planted_bug(monkeypatch, capsys, bug):
    from se_numpy import cli
    from se_numpy.functional import activation, se
    if bug == "scale_missing_ds":
        original = F.scale_backward

        def scale_backward_without_ds(dy, cache):
            dx, ds = original(dy, cache)
            return dx, np.zeros_like(ds)
        monkeypatch.setattr(F, "scale_backward", scale_backward_without_ds)
    else:
        wrong = dict(activation.ACTIVATIONS)
        wrong["sigmoid"] = (activation.sigmoid_forward, activation.tanh_backward)
        monkeypatch.setattr(activation, "ACTIVATIONS", wrong)
    only = "scale" if bug == "scale_missing_ds" else "excitation,SEBlock"
    assert cli.main(["gradcheck", "--only", only]) == 1
    output = capsys.readouterr().out
    assert "FAIL" in output
    assert cli.main(["gradcheck", "--only", "squeeze ("]) == 0   # rows the bug does not touch pass
