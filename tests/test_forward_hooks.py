"""Forward hooks (``Module.register_forward_hook``) run in every forward variant.

A residual unit calls its SE block's fused ``forward_add_relu``, not ``block(x)``;
the block runs its hooks there too, so a gate recorder sees every call and the
unit keeps its fastest path (and its numbers) while it is observed.
"""
import numpy as np
import pytest

import se_numpy as sn
from se_numpy import nn

CHANNELS = 8
MODES = [pytest.param(True, False, id="train"),
         pytest.param(False, True, id="eval-inplace")]


def numpy_gates(block, x):
    """σ(W2 ReLU(W1 z + b1) + b2), z the per-channel mean: the gates written out in NumPy."""
    z = x.mean(axis=(2, 3))
    hidden = np.maximum(z @ block.fc1.weight.data.T + block.fc1.bias.data, 0)
    return 1 / (1 + np.exp(-(hidden @ block.fc2.weight.data.T + block.fc2.bias.data)))


def se_unit(training, inplace):
    se = nn.SEBlock(CHANNELS, reduction=4, dtype=np.float64, rng=1, inplace=inplace)
    unit = nn.BasicBlock(CHANNELS, CHANNELS, attention=se, dtype=np.float64, rng=0)
    return unit.train(training)


@pytest.mark.parametrize("training, inplace", MODES)
def test_a_recorder_sees_the_gates_of_forward_add_relu(training, inplace):
    rng = np.random.default_rng(0)
    x, shortcut = rng.normal(size=(2, CHANNELS, 4, 4)), rng.normal(size=(2, CHANNELS, 4, 4))
    unit = se_unit(training, inplace)
    expected = numpy_gates(unit.se, x)          # before the call: in place, x is overwritten
    with sn.analysis.record_gates(unit) as gates:
        out = unit.se.forward_add_relu(x, shortcut)
    assert np.shares_memory(out, x) == inplace  # the in-place kernel ran where asked
    assert len(gates["se"]) == 1
    # float64 throughout; the only differences are summation order in the mean and matmuls
    np.testing.assert_allclose(gates["se"][0], expected, rtol=1e-12)


@pytest.mark.parametrize("training, inplace", MODES)
def test_the_residual_unit_output_and_path_are_unchanged_with_a_recorder(training, inplace):
    x = np.random.default_rng(1).normal(size=(2, CHANNELS, 4, 4))
    unit = se_unit(training, inplace)
    plain = unit(x.copy())
    outputs = []
    unit.se.register_forward_hook(lambda block, args, output: outputs.append(output))
    with sn.analysis.record_gates(unit) as gates:
        recorded = unit(x.copy())
    np.testing.assert_array_equal(recorded, plain)
    assert len(gates["se"]) == 1
    np.testing.assert_array_equal(gates["se"][0], unit.se.last_gates)
    # the fused call's own output is the unit's: max(s·u + shortcut, 0), not s·u + shortcut
    assert outputs[0] is recorded
    if inplace:
        assert unit.se._cache["x"] is None      # the in-place kernel ran: no u is kept


def test_a_hook_sees_each_call_once_until_removed():
    block = nn.SEBlock(CHANNELS, reduction=4, dtype=np.float64, rng=2)
    x = np.random.default_rng(2).normal(size=(1, CHANNELS, 3, 3))
    calls = []
    handle = block.register_forward_hook(lambda *arguments: calls.append(arguments))
    y = block(x)
    block.forward_add(x, x)
    handle.remove()
    block(x)
    assert len(calls) == 2
    (module, args, output), (_, add_args, _) = calls
    assert module is block and args[0] is x and output is y
    assert len(add_args) == 2                   # forward_add's own arguments: (x, shortcut)


def test_no_squeeze_forward_add_runs_the_hooks_once():
    block = nn.NoSqueezeBlock(CHANNELS, reduction=4, dtype=np.float64, rng=3)
    x = np.random.default_rng(3).normal(size=(1, CHANNELS, 3, 3))
    calls = []
    block.register_forward_hook(lambda *arguments: calls.append(arguments))
    out = block.forward_add(x, x)
    (module, args, output), = calls
    assert module is block and args[0] is x and args[1] is x and output is out


def test_a_hook_must_be_callable():
    with pytest.raises(TypeError, match="hook: expected a callable"):
        nn.SEBlock(CHANNELS).register_forward_hook("record")
