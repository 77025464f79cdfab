"""``se-numpy reference --out DIR``: float64 reference vectors for checking another implementation.

For the SE block (both squeezes, every gate, odd shapes, C = 1, H = W = 1) and
each other differentiable layer, one file per case holds the inputs, the
parameters, an upstream gradient dy, the output y and every gradient, all
float64, computed by this library's forward and hand-derived backward (which
its own tests check against finite differences). A PyTorch or JAX
implementation is right when it reproduces y and the gradients from the same
inputs and dy (docs/gradcheck.md has the recipe).

Schema (version 1), one ``<case>.npz`` per case (and ``<case>.safetensors``
with the same keys when the ``safetensors`` package is installed):

    input.<name>     differentiable inputs (x, logits, ...)
    param.<name>     parameters (w1, b1, w2, b2, weight, bias, ...)
    const.<name>     non-differentiable inputs (labels)
    upstream.dy      dL/dy, the upstream gradient (shape of y)
    output.y         the forward's output
    grad.<name>      dL/d(input or parameter) for L = Σ y·dy, one per input.* and param.*
    meta             JSON text: case, op, options, schema version, the forward's formula

``index.json`` lists the cases with their shapes. Inputs are drawn away from
kinks (pre-activations at least MARGIN from ReLU's 0 and hard-sigmoid's ±3,
distinct values for every max) so that the gradients are unique.
"""
import json
import os

import numpy as np

from . import functional as F
from .atomic import atomic_write_named
from .functional.activation import get_activation

SCHEMA_VERSION = 1
MARGIN = 0.05
GATES = ("sigmoid", "tanh", "relu", "hard_sigmoid")
KINKS = {"relu": (0.0,), "hard_sigmoid": (-3.0, 3.0), "sigmoid": (), "tanh": ()}


def _distinct(rng, shape):
    """Values spread over [-1, 1] with no two equal (no ties in a max), in random order."""
    count = int(np.prod(shape))
    grid = np.linspace(-1.0, 1.0, count) + rng.uniform(-0.25, 0.25, count) * 2.0 / max(count, 1)
    return rng.permutation(grid).reshape(shape)


def _away_from(values, kinks):
    return all(np.min(np.abs(values - kink), initial=np.inf) > MARGIN for kink in kinks)


# ----------------------------------------------------------------- the cases
def _se_case(shape, hidden, squeeze, gate, seed):
    """Inputs for the SE block with pre-activations away from the kinks (redrawn until so)."""
    for attempt in range(1000):
        rng = np.random.default_rng([seed, attempt])
        x = _distinct(rng, shape)
        w1, b1 = rng.normal(0, 0.7, (hidden, shape[1])), rng.uniform(0.1, 0.5, hidden)
        w2, b2 = rng.normal(0, 0.7, (shape[1], hidden)), rng.normal(0, 0.3, shape[1])
        z = F.squeeze_forward(x, squeeze)[0]
        pre_hidden = z @ w1.T + b1
        pre_gate = np.maximum(pre_hidden, 0) @ w2.T + b2
        if _away_from(pre_hidden, (0.0,)) and _away_from(pre_gate, KINKS[gate]):
            return {"x": x}, {"w1": w1, "b1": b1, "w2": w2, "b2": b2}, rng
    raise RuntimeError(f"no SE inputs away from kinks for {shape}, {gate}")


def _se(shape, hidden, squeeze, gate, seed):
    inputs, params, rng = _se_case(shape, hidden, squeeze, gate, seed)
    options = {"squeeze": squeeze, "gate": gate, "activation": "relu"}

    def forward(x, w1, b1, w2, b2):
        return F.se_block_forward(x, w1, b1, w2, b2, squeeze, gate)

    def backward(dy, cache):
        return F.se_block_backward(dy, cache)

    formula = (f"y = x · {gate}(W2 · relu(W1 · {squeeze}_hw(x) + b1) + b2)[:, :, None, None]; "
               "W1 (hidden, C), W2 (C, hidden), as in y = x @ W.T + b")
    return "se_block", options, inputs, params, {}, forward, backward, formula, rng


def _layer_cases():
    """(name, builder) for every other layer; each builder returns what ``_se`` returns."""
    def linear():
        rng = np.random.default_rng(10)
        inputs = {"x": rng.standard_normal((3, 5))}
        params = {"weight": rng.standard_normal((4, 5)), "bias": rng.standard_normal(4)}
        return ("linear", {}, inputs, params, {}, F.linear_forward,
                lambda dy, cache: F.linear_backward(dy, cache), "y = x @ weight.T + bias", rng)

    def conv2d():
        rng = np.random.default_rng(11)
        inputs = {"x": rng.standard_normal((2, 3, 5, 6))}
        params = {"weight": rng.standard_normal((4, 3, 3, 3)), "bias": rng.standard_normal(4)}
        options = {"stride": 2, "padding": 1}
        return ("conv2d", options, inputs, params, {},
                lambda x, w, b: F.conv2d_forward(x, w, b, stride=2, padding=1),
                F.conv2d_backward, "y = conv2d(x, weight, stride 2, zero padding 1) + bias", rng)

    def batch_norm():
        rng = np.random.default_rng(12)
        inputs = {"x": rng.standard_normal((3, 2, 4, 5))}
        params = {"weight": rng.uniform(0.5, 1.5, 2), "bias": rng.standard_normal(2)}
        options = {"training": True, "eps": 1e-5}
        return ("batch_norm2d", options, inputs, params, {},
                lambda x, w, b: F.batch_norm2d_forward(x, w, b, training=True, eps=1e-5),
                F.batch_norm2d_backward,
                "y = weight · (x − mean_nhw) / sqrt(var_nhw + eps) + bias (biased variance)", rng)

    def activation(name, kinks):
        def build():
            rng = np.random.default_rng(13)
            x = rng.uniform(-4.0, 4.0, (3, 7))
            for kink in kinks:
                x = np.where(np.abs(x - kink) < MARGIN, x + 4 * MARGIN, x)
            forward, backward = get_activation(name)
            return (name, {}, {"x": x}, {}, {}, forward, backward, f"y = {name}(x)", rng)
        return build

    def pool(kind):
        def build():
            rng = np.random.default_rng(14)
            x = _distinct(rng, (2, 3, 5, 6))
            forward = F.max_pool2d_forward if kind == "max" else F.avg_pool2d_forward
            backward = F.max_pool2d_backward if kind == "max" else F.avg_pool2d_backward
            options = {"kernel_size": 3, "stride": 2, "padding": 1}
            return (f"{kind}_pool2d", options, {"x": x}, {}, {},
                    lambda x: forward(x, 3, 2, 1), backward,
                    f"{kind} pooling, kernel 3, stride 2, padding 1 "
                    + ("(padding never wins)" if kind == "max" else "(zeros counted)"), rng)
        return build

    def global_pool():
        rng = np.random.default_rng(15)
        return ("global_avg_pool", {}, {"x": rng.standard_normal((2, 3, 5, 7))}, {}, {},
                F.global_avg_pool_forward, F.global_avg_pool_backward, "y = mean_hw(x)", rng)

    def cross_entropy():
        rng = np.random.default_rng(16)
        labels = rng.integers(0, 5, 4)
        return ("softmax_cross_entropy", {"label_smoothing": 0.1},
                {"logits": rng.standard_normal((4, 5))}, {}, {"labels": labels},
                lambda logits: _array_output(F.softmax_cross_entropy_forward(logits, labels, 0.1)),
                F.softmax_cross_entropy_backward,
                "y = mean_n −Σ_k target_nk log softmax(logits)_nk, target smoothed by 0.1", rng)

    cases = [("linear", linear), ("conv2d", conv2d), ("batch_norm2d", batch_norm),
             ("global_avg_pool", global_pool), ("max_pool2d", pool("max")),
             ("avg_pool2d", pool("avg")), ("softmax_cross_entropy", cross_entropy)]
    cases += [(name, activation(name, KINKS[name])) for name in GATES]
    return cases


def _array_output(result):
    value, cache = result
    return np.asarray(value, dtype=np.float64), cache


def cases():
    """[(case name, builder)] for every reference case, SE block first."""
    listed = []
    for squeeze in ("avg", "max"):
        for gate in GATES:
            listed.append((f"se_block_{squeeze}_{gate}",
                           lambda s=squeeze, g=gate: _se((2, 3, 5, 7), 2, s, g, 0)))
        listed.append((f"se_block_{squeeze}_c1", lambda s=squeeze: _se((2, 1, 4, 3), 1, s,
                                                                       "sigmoid", 1)))
        listed.append((f"se_block_{squeeze}_hw1", lambda s=squeeze: _se((3, 4, 1, 1), 2, s,
                                                                        "sigmoid", 2)))
    return listed + _layer_cases()


def compute(builder):
    """{key: array} and meta for one case (keys as in the module docstring)."""
    op, options, inputs, params, consts, forward, backward, formula, rng = builder()
    arguments = list(inputs.values()) + list(params.values())
    y, cache = forward(*arguments)
    y = np.asarray(y, dtype=np.float64)
    dy = rng.standard_normal(y.shape)
    gradients = backward(dy if y.shape else np.float64(dy), cache)
    if not isinstance(gradients, tuple):
        gradients = (gradients,)
    names = list(inputs) + list(params)
    arrays = {f"input.{k}": v for k, v in inputs.items()}
    arrays.update({f"param.{k}": v for k, v in params.items()})
    arrays.update({f"const.{k}": np.asarray(v) for k, v in consts.items()})
    arrays["upstream.dy"] = np.asarray(dy, dtype=np.float64)
    arrays["output.y"] = y
    for name, gradient in zip(names, gradients[:len(names)]):
        arrays[f"grad.{name}"] = np.asarray(gradient, dtype=np.float64)
    meta = {"op": op, "options": options, "formula": formula, "schema": SCHEMA_VERSION,
            "loss": "L = Σ y·dy", "dtype": "float64"}
    return arrays, meta


# ----------------------------------------------------------------- writing
def _save_npz(path, arrays, meta):
    def write(temporary):
        with open(temporary, "wb") as handle:
            np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)
    atomic_write_named(path, write)


def _save_safetensors(path, arrays, meta):
    from safetensors.numpy import save_file
    tensors = {k: np.ascontiguousarray(v) for k, v in arrays.items() if v.dtype.kind == "f"}
    tensors.update({k: np.ascontiguousarray(v.astype(np.int64)) for k, v in arrays.items()
                    if v.dtype.kind in "iu"})
    atomic_write_named(path, lambda temporary: save_file(tensors, temporary,
                                                    metadata={"meta": json.dumps(meta)}))


def safetensors_available():
    try:
        import safetensors.numpy  # noqa: F401
    except ImportError:
        return False
    return True


def write_reference(out_dir, only=None):
    """Write every case (or those whose name starts with one of ``only``) under ``out_dir``.

    Returns the list of files written.
    """
    os.makedirs(out_dir, exist_ok=True)
    with_safetensors = safetensors_available()
    written, index = [], {"schema": SCHEMA_VERSION, "cases": {}}
    for name, builder in cases():
        if only and not any(name.startswith(prefix) for prefix in only):
            continue
        arrays, meta = compute(builder)
        meta["case"] = name
        path = os.path.join(out_dir, f"{name}.npz")
        _save_npz(path, arrays, meta)
        written.append(path)
        if with_safetensors:
            path = os.path.join(out_dir, f"{name}.safetensors")
            _save_safetensors(path, arrays, meta)
            written.append(path)
        index["cases"][name] = {"op": meta["op"], "options": meta["options"],
                                "shapes": {k: list(v.shape) for k, v in arrays.items()}}
    index_path = os.path.join(out_dir, "index.json")

    def write_index(temporary):
        with open(temporary, "w") as handle:
            json.dump(index, handle, indent=1)
    atomic_write_named(index_path, write_index)
    return written + [index_path]


def load(path):
    """(arrays, meta) of one ``.npz`` reference file."""
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files if key != "meta"}
        meta = json.loads(str(data["meta"]))
    return arrays, meta


def _command(args):
    files = write_reference(args.out, args.only)
    cases_written = sum(path.endswith(".npz") for path in files)
    print(f"wrote {cases_written} reference cases to {args.out} (.npz"
          + (" and .safetensors" if safetensors_available() else "") + ", index.json)")
    return 0


def add_commands(subparsers):
    parser = subparsers.add_parser(
        "reference", help="write float64 reference vectors (inputs, dy, outputs, gradients)",
        description="Write float64 inputs, parameters, upstream gradients, outputs and every "
                    "gradient for the SE block and each other layer, one .npz per case (and "
                    ".safetensors when that package is installed), for checking another "
                    "implementation against them. Schema: docs/gradcheck.md.")
    parser.add_argument("--out", required=True, help="directory to write into")
    parser.add_argument("--only", action="append", metavar="PREFIX",
                        help="only cases whose name starts with PREFIX (repeatable)")
    parser.set_defaults(func=_command)
