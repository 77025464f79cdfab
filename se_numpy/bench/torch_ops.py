"""The same operations in PyTorch (CPU, eager; autograd for the backward kernels).

Only used when ``torch`` is importable; se_numpy never depends on it. Each
entry is what a PyTorch user would run for that kernel: forward kernels are
eager tensor expressions, backward kernels are ``torch.autograd.grad`` through
the matching forward (the graph is built once, outside the timed region).
"""
import contextlib

import numpy as np

from .memory import best_time


def make_torch_timer():
    """A function ``(kernel_name, shape, dtype, repeats, params=None) -> seconds | None``.

    Returns ``(None, reason)`` when torch cannot be imported, else ``(timer, version)``."""
    try:
        import torch
    except ImportError as error:
        return None, f"torch not importable ({error})"

    def timer(name, shape, dtype, repeats, params=None):
        builder = _OPERATIONS.get(name)
        if builder is None:
            return None
        with torch.no_grad() if name in _NO_GRAD else contextlib.nullcontext():
            run = builder(torch, shape, np.dtype(dtype), params)
            return best_time(run, repeats)

    return timer, f"torch {torch.__version__}, {torch.get_num_threads()} threads"


def _inputs(torch, shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    n, c = shape[:2]
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a.astype(dtype)))
    return (as_tensor(rng.standard_normal(shape, dtype=np.float32)),
            as_tensor(rng.standard_normal(shape, dtype=np.float32)),
            as_tensor(rng.uniform(0.1, 1, size=(n, c))),
            as_tensor(rng.standard_normal((n, c))))


def _gradient_of(torch, forward, inputs, grad_output):
    """Time only the backward: autograd.grad through a graph built once."""
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    output = forward(*leaves)
    return lambda: torch.autograd.grad(output, leaves, grad_output, retain_graph=True)


def _squeeze_backward(torch, shape, dtype, params):
    x, _, _, dz = _inputs(torch, shape, dtype)
    return _gradient_of(torch, lambda t: t.mean((2, 3)), [x], dz)


def _max_squeeze_backward(torch, shape, dtype, params):
    x, _, _, dz = _inputs(torch, shape, dtype)
    return _gradient_of(torch, lambda t: t.flatten(2).max(2).values, [x], dz)


def _scale_backward(torch, shape, dtype, params):
    x, dy, s, _ = _inputs(torch, shape, dtype)
    return _gradient_of(torch, lambda t, g: t * g[:, :, None, None], [x, s], dy)


def _se_backward_dx(torch, shape, dtype, params):
    _, dy, s, dz = _inputs(torch, shape, dtype)
    area = shape[2] * shape[3]
    return lambda: dy * s[:, :, None, None] + (dz / area)[:, :, None, None]


def _pool_backward(pool):
    def build(torch, shape, dtype, params):
        import torch.nn.functional as F
        x, _, _, _ = _inputs(torch, shape, dtype)
        n, c, h, w = shape
        dout = torch.ones((n, c, h // 2, w // 2), dtype=x.dtype)
        return _gradient_of(torch, lambda t: getattr(F, pool)(t, 2, 2), [x], dout)
    return build


def _forward(expression):
    def build(torch, shape, dtype, params):
        import torch.nn.functional as F
        x, dy, s, _ = _inputs(torch, shape, dtype)
        return lambda: expression(torch, F, x, dy, s)
    return build


def _col2im(torch, shape, dtype, params):
    import torch.nn.functional as F
    x, _, _, _ = _inputs(torch, shape, dtype)
    cols = F.unfold(x, 3, padding=1)
    return lambda: F.fold(cols, shape[2:], 3, padding=1)


def _se_block(torch, shape, dtype, params):
    """Forward + backward of the whole SE block through autograd (parameters included)."""
    x, dy, _, _ = _inputs(torch, shape, dtype)
    weights = {k: torch.from_numpy(np.ascontiguousarray(v.astype(dtype))) for k, v in params.items()}

    def run():
        leaves = {k: v.detach().requires_grad_(True) for k, v in weights.items()}
        x_leaf = x.detach().requires_grad_(True)
        z = x_leaf.mean((2, 3))
        hidden = torch.relu(z @ leaves["fc1_weight"].T + leaves["fc1_bias"])
        s = torch.sigmoid(hidden @ leaves["fc2_weight"].T + leaves["fc2_bias"])
        y = x_leaf * s[:, :, None, None]
        y.backward(dy)
        return x_leaf.grad
    return run


_OPERATIONS = {
    "squeeze_forward": _forward(lambda torch, F, x, dy, s: x.mean((2, 3))),
    "squeeze_backward": _squeeze_backward,
    "max_squeeze_forward": _forward(lambda torch, F, x, dy, s: x.flatten(2).max(2)),
    "max_squeeze_backward": _max_squeeze_backward,
    "scale_forward": _forward(lambda torch, F, x, dy, s: x * s[:, :, None, None]),
    "scale_backward": _scale_backward,
    "se_backward_ds": _forward(lambda torch, F, x, dy, s: (dy * x).sum((2, 3))),
    "se_backward_dx": _se_backward_dx,
    # addcmul is torch's one fused eager op for s·u + shortcut
    "scale_add_forward": _forward(lambda torch, F, x, dy, s: torch.addcmul(dy, x, s[:, :, None, None])),
    "max_pool2d_forward": _forward(lambda torch, F, x, dy, s: F.max_pool2d(x, 2, 2, return_indices=True)),
    "max_pool2d_backward": _pool_backward("max_pool2d"),
    "avg_pool2d_forward": _forward(lambda torch, F, x, dy, s: F.avg_pool2d(x, 2, 2)),
    "avg_pool2d_backward": _pool_backward("avg_pool2d"),
    "im2col": _forward(lambda torch, F, x, dy, s: F.unfold(x, 3, padding=1)),
    "col2im": _col2im,
    "se_block": _se_block,
}

# forward-only entries run without building an autograd graph
_NO_GRAD = {name for name, build in _OPERATIONS.items()
            if name not in ("squeeze_backward", "max_squeeze_backward", "scale_backward",
                            "max_pool2d_backward", "avg_pool2d_backward", "se_block")}
