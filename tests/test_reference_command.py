"""``se-numpy reference``: the files, their schema, and the recipes for PyTorch and JAX.

The gradients in the files come from this library's backward passes; here
they are checked against plain central differences of the forward (an
implementation independent of both the backward and ``se_numpy.gradcheck``),
and, where PyTorch or JAX is installed, against those frameworks' autograd
following the recipe of docs/gradcheck.md.
"""
import json
import os

import numpy as np
import pytest

from finite_differences import numerical_vjp
from se_numpy import cli
from se_numpy.reference import GATES, cases, compute, load, write_reference

# float64, step 1e-6: truncation ~1e-12·|f'''|, rounding ~1e-16/1e-6 = 1e-10 relative to the
# outputs; 1e-6 relative (plus 1e-8 absolute for entries near 0) is far above both and far
# below any real mistake (a factor, a missing term: O(1) relative)
FD_RTOL, FD_ATOL = 1e-6, 1e-8
# the same math in another framework: only the summation order differs (≲ 1e-14 relative)
FRAMEWORK_RTOL, FRAMEWORK_ATOL = 1e-10, 1e-12


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    assert cli.main(["reference", "--out", str(out)]) == 0
    return out


def test_every_case_is_written_with_its_schema(reference_dir):
    index = json.loads((reference_dir / "index.json").read_text())
    names = [name for name, _ in cases()]
    assert sorted(index["cases"]) == sorted(names)
    squeezes_and_gates = {(s, g) for s in ("avg", "max") for g in GATES}
    written = {(load(reference_dir / f"{n}.npz")[1]["options"].get("squeeze"),
                load(reference_dir / f"{n}.npz")[1]["options"].get("gate"))
               for n in names if n.startswith("se_block")}
    assert squeezes_and_gates <= written
    shapes = [load(reference_dir / f"{n}.npz")[0]["input.x"].shape for n in names
              if n.startswith("se_block")]
    assert any(shape[1] == 1 for shape in shapes) and any(shape[2:] == (1, 1) for shape in shapes)
    for name in names:
        arrays, meta = load(reference_dir / f"{name}.npz")
        assert meta["schema"] == 1 and meta["case"] == name
        differentiable = [k.split(".", 1)[1] for k in arrays if k.startswith(("input.", "param."))]
        assert sorted(k.split(".", 1)[1] for k in arrays if k.startswith("grad.")) == \
            sorted(differentiable)
        for key, value in arrays.items():
            if not key.startswith("const."):
                assert value.dtype == np.float64, key
        assert arrays["upstream.dy"].shape == arrays["output.y"].shape


def test_no_partial_files_are_left_behind(reference_dir):
    assert not [p for p in os.listdir(reference_dir) if p.startswith(".tmp-")]


@pytest.mark.parametrize("name", [name for name, _ in cases()])
def test_gradients_agree_with_plain_central_differences(name):
    builder = dict(cases())[name]
    arrays, _ = compute(builder)
    op, options, inputs, params, consts, forward, *_ = builder()
    values = {**inputs, **params}
    order = list(values)
    dy = arrays["upstream.dy"]
    for key in order:
        def function():
            return np.asarray(forward(*[values[k] for k in order])[0])
        numerical = numerical_vjp(function, values[key], dy)
        np.testing.assert_allclose(arrays[f"grad.{key}"], numerical, rtol=FD_RTOL, atol=FD_ATOL,
                                   err_msg=f"{name}: grad.{key}")


def se_block_numpy(x, w1, b1, w2, b2, squeeze, gate):
    """The SE block written out again, without the library (to check output.y)."""
    z = x.mean(axis=(2, 3)) if squeeze == "avg" else x.max(axis=(2, 3))
    pre = np.maximum(z @ w1.T + b1, 0) @ w2.T + b2
    s = {"sigmoid": lambda a: 1 / (1 + np.exp(-a)), "tanh": np.tanh,
         "relu": lambda a: np.maximum(a, 0),
         "hard_sigmoid": lambda a: np.clip(a / 6 + 0.5, 0, 1)}[gate](pre)
    return x * s[:, :, None, None]


def test_se_outputs_agree_with_an_independent_forward(reference_dir):
    for name, _ in cases():
        if not name.startswith("se_block"):
            continue
        arrays, meta = load(reference_dir / f"{name}.npz")
        p = {k.split(".")[1]: v for k, v in arrays.items() if k.startswith(("input.", "param."))}
        expected = se_block_numpy(p["x"], p["w1"], p["b1"], p["w2"], p["b2"],
                                  meta["options"]["squeeze"], meta["options"]["gate"])
        np.testing.assert_allclose(arrays["output.y"], expected, rtol=1e-13, atol=1e-15)


def test_only_writes_the_selected_cases(tmp_path):
    files = write_reference(tmp_path, only=["linear"])
    assert sorted(os.path.basename(f) for f in files if f.endswith(".npz")) == ["linear.npz"]


# ----------------------------------------------------------------- the recipes
def torch_se_block(torch, x, w1, b1, w2, b2, squeeze, gate):
    """The recipe's PyTorch SE block (what a user's implementation would be)."""
    z = x.mean(dim=(2, 3)) if squeeze == "avg" else x.amax(dim=(2, 3))
    pre = torch.relu(z @ w1.T + b1) @ w2.T + b2
    s = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
         "hard_sigmoid": lambda a: torch.clamp(a / 6 + 0.5, 0, 1)}[gate](pre)
    return x * s[:, :, None, None]


def check_against_reference(torch, path, forward):
    """The recipe: load, run forward on the inputs, backward with dy, compare everything."""
    arrays, meta = load(path)
    leaves = {key: torch.tensor(value, requires_grad=True) for key, value in arrays.items()
              if key.startswith(("input.", "param."))}
    y = forward(meta, **{key.split(".", 1)[1]: t for key, t in leaves.items()})
    y.backward(torch.tensor(arrays["upstream.dy"]))
    np.testing.assert_allclose(y.detach().numpy(), arrays["output.y"],
                               rtol=FRAMEWORK_RTOL, atol=FRAMEWORK_ATOL, err_msg=path.name)
    for key, leaf in leaves.items():
        name = key.split(".", 1)[1]
        np.testing.assert_allclose(leaf.grad.numpy(), arrays[f"grad.{name}"],
                                   rtol=FRAMEWORK_RTOL, atol=FRAMEWORK_ATOL,
                                   err_msg=f"{path.name}: grad.{name}")


def test_pytorch_recipe(reference_dir):
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional

    def se(meta, x, w1, b1, w2, b2):
        return torch_se_block(torch, x, w1, b1, w2, b2, meta["options"]["squeeze"],
                              meta["options"]["gate"])

    layers = {
        "linear": lambda meta, x, weight, bias: functional.linear(x, weight, bias),
        "conv2d": lambda meta, x, weight, bias: functional.conv2d(x, weight, bias, stride=2,
                                                                  padding=1),
        "batch_norm2d": lambda meta, x, weight, bias: functional.batch_norm(
            x, None, None, weight, bias, training=True, eps=1e-5),
        "max_pool2d": lambda meta, x: functional.max_pool2d(x, 3, 2, 1),
        "avg_pool2d": lambda meta, x: functional.avg_pool2d(x, 3, 2, 1),
        "global_avg_pool": lambda meta, x: x.mean(dim=(2, 3)),
        "relu": lambda meta, x: torch.relu(x), "sigmoid": lambda meta, x: torch.sigmoid(x),
        "tanh": lambda meta, x: torch.tanh(x),
        "hard_sigmoid": lambda meta, x: torch.clamp(x / 6 + 0.5, 0, 1),
    }
    for name, _ in cases():
        path = reference_dir / f"{name}.npz"
        if name.startswith("se_block"):
            check_against_reference(torch, path, se)
        elif name in layers:
            check_against_reference(torch, path, layers[name])
        else:
            arrays, _ = load(path)
            labels = torch.tensor(arrays["const.labels"])
            check_against_reference(torch, path, lambda meta, logits: functional.cross_entropy(
                logits, labels, label_smoothing=0.1))


def test_jax_recipe(reference_dir):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy

    def se(x, w1, b1, w2, b2, squeeze, gate):
        z = x.mean(axis=(2, 3)) if squeeze == "avg" else x.max(axis=(2, 3))
        pre = jax.nn.relu(z @ w1.T + b1) @ w2.T + b2
        s = {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "relu": jax.nn.relu,
             "hard_sigmoid": lambda a: jnp.clip(a / 6 + 0.5, 0, 1)}[gate](pre)
        return x * s[:, :, None, None]

    with jax.enable_x64(True):
        for name, _ in cases():
            if not name.startswith("se_block"):
                continue
            arrays, meta = load(reference_dir / f"{name}.npz")
            keys = ["input.x", "param.w1", "param.b1", "param.w2", "param.b2"]
            y, pullback = jax.vjp(lambda *a: se(*a, meta["options"]["squeeze"],
                                                meta["options"]["gate"]),
                                  *[jnp.asarray(arrays[k]) for k in keys])
            np.testing.assert_allclose(np.asarray(y), arrays["output.y"], rtol=FRAMEWORK_RTOL,
                                       atol=FRAMEWORK_ATOL)
            for key, gradient in zip(keys, pullback(jnp.asarray(arrays["upstream.dy"]))):
                np.testing.assert_allclose(np.asarray(gradient),
                                           arrays["grad." + key.split(".")[1]],
                                           rtol=FRAMEWORK_RTOL, atol=FRAMEWORK_ATOL,
                                           err_msg=f"{name}: {key}")


def test_safetensors_files_hold_the_same_arrays(reference_dir):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    for name, _ in cases():
        tensors = safetensors_numpy.load_file(str(reference_dir / f"{name}.safetensors"))
        arrays, _ = load(reference_dir / f"{name}.npz")
        assert sorted(tensors) == sorted(arrays)
        for key, value in arrays.items():
            np.testing.assert_array_equal(tensors[key], value)
