"""The PyTorch and JAX adapters: a correct custom backward passes, a planted bug fails.

Optional: each test skips when its framework is not installed. The bugs are
written into a custom autograd.Function (PyTorch) and a custom_vjp rule
(JAX), the places where people write backward passes by hand.
"""
import subprocess
import sys

import numpy as np
import pytest


def random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def test_adapters_do_not_import_their_framework():
    code = ("import sys, se_numpy.gradcheck as g, se_numpy.gradcheck.torch, "
            "se_numpy.gradcheck.jax; assert g.torch.check and g.jax.check; "
            "print(sorted({'torch', 'jax'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def torch_scaled_tanh(factor):
    torch = pytest.importorskip("torch")

    class ScaledTanh(torch.autograd.Function):
        """y = tanh(x)·w, with a hand-written backward (factor 1: correct)."""

        @staticmethod
        def forward(ctx, x, w):
            y = torch.tanh(x)
            ctx.save_for_backward(y, w)
            return y * w

        @staticmethod
        def backward(ctx, dy):
            y, w = ctx.saved_tensors
            return factor * dy * w * (1 - y * y), (dy * y).sum(dim=0)

    return ScaledTanh.apply


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_custom_function(dtype):
    torch = pytest.importorskip("torch")
    from se_numpy.gradcheck.torch import check
    x = torch.tensor(random((3, 4)), dtype=getattr(torch, dtype))
    w = torch.tensor(random(4, 1), dtype=getattr(torch, dtype))
    good = check(torch_scaled_tanh(1.0), x, w, names=("x", "w"))
    assert good.passed, good
    bad = check(torch_scaled_tanh(1.01), x, w, names=("x", "w"))
    assert not bad.passed and not bad["x"].passed and bad["w"].passed, bad
    assert "× 1.01" in bad["x"].hint


def test_torch_tuple_output():
    torch = pytest.importorskip("torch")
    from se_numpy.gradcheck.torch import check
    x = torch.tensor(random((2, 3)), dtype=torch.float64)
    report = check(lambda x: (torch.sin(x), (x ** 2).sum(dim=1)), x)
    assert report.passed and len(report) == 2, report


def test_jax_custom_vjp():
    jax = pytest.importorskip("jax")
    from se_numpy.gradcheck.jax import check

    def make(factor):
        @jax.custom_vjp
        def softplus(x):
            return jax.numpy.logaddexp(x, 0.0)

        def forward(x):
            return softplus(x), x

        def backward(x, dy):
            return (factor * dy * jax.nn.sigmoid(x),)

        softplus.defvjp(forward, backward)
        return softplus

    x = random((3, 4))
    good = check(make(1.0), x)
    assert good.passed, good
    assert "float64" in good.notes[0]
    bad = check(make(1.01), x)
    assert not bad.passed and "× 1.01" in bad["x"].hint, bad
    # float32 inputs: JAX computes in float32, checked at float32 tolerances
    good32 = check(make(1.0), x.astype(np.float32))
    assert good32.passed and "float32" in good32.notes[0], good32
    assert not check(make(1.01), x.astype(np.float32)).passed
