"""The backend switch, and whole networks giving the same numbers on every CPU backend."""
import os
import subprocess
import sys

import numpy as np
import pytest

import se_numpy as sn


def test_plain_call_switches_and_context_manager_restores():
    start = sn.get_backend()
    with sn.use_backend("numba"):
        assert sn.get_backend() == "numba"
        with sn.use_backend("numpy"):
            assert sn.get_backend() == "numpy"
        assert sn.get_backend() == "numba"
    assert sn.get_backend() == start
    sn.use_backend("numba")
    try:
        assert sn.get_backend() == "numba"
    finally:
        sn.use_backend(start)


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="numpy, numba, cuda"):
        sn.use_backend("tpu")


def test_cuda_without_gpu_or_simulator_fails_at_selection():
    # In a fresh process without NUMBA_ENABLE_CUDASIM the cuda backend must refuse at once,
    # with a reason, unless a GPU is really there.
    code = ("import se_numpy as sn\n"
            "try:\n    sn.use_backend('cuda')\nexcept RuntimeError as e:\n    print('REFUSED', e)\n"
            "else:\n    print('SELECTED')\n")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120).stdout
    if "SELECTED" in out:
        from numba import cuda
        assert cuda.is_available(), "cuda backend selected without a GPU or the simulator"
    else:
        assert "REFUSED" in out and "cuda" in out.lower(), out


def test_environment_variable_sets_the_starting_backend():
    env = dict(os.environ, SE_NUMPY_BACKEND="numba")
    out = subprocess.run([sys.executable, "-c", "import se_numpy as sn; print(sn.get_backend())"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip() == "numba", out.stderr


def forward_backward(model, x, labels):
    model.zero_grad()
    loss_fn = sn.nn.CrossEntropyLoss()
    logits = model(x)
    loss = loss_fn(logits, labels)
    dx = model.backward(loss_fn.backward())
    grads = {name: p.grad.copy() for name, p in model.named_parameters()}
    return logits, loss, dx, grads, model.state_dict()


@pytest.mark.parametrize("name, dtype, rtol", [
    # float64: both backends sum in float64, only the summation order differs (~1e-15 per sum,
    # amplified by the depth of the net); float32 maps accumulate in float64 in both, so results
    # differ by float32 rounding of intermediate maps through ~20 layers.
    ("se_resnet20", np.float64, 1e-9), ("se_tiny_resnet", np.float32, 2e-3)])
def test_se_resnet_same_on_numpy_and_numba(name, dtype, rtol):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3, 16, 16)).astype(dtype)
    labels = np.array([0, 1, 2, 3])
    results = {}
    for backend in ("numpy", "numba"):
        model = sn.models.create(name, num_classes=10, seed=1).astype(dtype)
        model.train()
        with sn.use_backend(backend):
            results[backend] = forward_backward(model, x, labels)
    (l0, loss0, dx0, g0, s0), (l1, loss1, dx1, g1, s1) = results["numpy"], results["numba"]
    np.testing.assert_allclose(l1, l0, rtol=rtol, atol=rtol * np.abs(l0).max())
    assert abs(loss1 - loss0) <= rtol * abs(loss0)
    np.testing.assert_allclose(dx1, dx0, rtol=rtol, atol=rtol * np.abs(dx0).max())
    for key in g0:
        np.testing.assert_allclose(g1[key], g0[key], rtol=rtol, atol=rtol * np.abs(g0[key]).max(),
                                   err_msg=key)
    for key in s0:   # BatchNorm running statistics were updated the same way
        np.testing.assert_allclose(s1[key], s0[key], rtol=rtol, atol=rtol * (np.abs(s0[key]).max() + 1e-30),
                                   err_msg=key)
