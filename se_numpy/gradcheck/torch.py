"""Check a PyTorch function's backward (autograd, a custom ``autograd.Function``, an extension).

    import se_numpy.gradcheck.torch as gradcheck_torch
    report = gradcheck_torch.check(my_function, x, weight)   # x, weight: torch tensors
    assert report.passed, report

``fn(*tensors)`` returns a tensor (or a tuple of tensors). Its backward is
whatever autograd runs for it: ``torch.autograd.grad(y, inputs, dy)`` is the
vjp that ``check_vjp`` compares with finite differences of ``fn`` itself, with
the same steps, tolerances, invariants, group testing and report. Each
evaluation gets fresh tensors of the dtype and device of the given ones, so
a float32 function is checked at float32 steps and tolerances (pass float64
tensors for a float64 check). PyTorch is imported when ``check`` is called,
never when this module is imported.
"""
import numpy as np

from .check import check_vjp


def _torch():
    try:
        import torch
    except ImportError as error:         # pragma: no cover - depends on the environment
        raise ImportError("se_numpy.gradcheck.torch.check needs PyTorch (pip install torch)"
                          ) from error
    return torch


def _to_numpy(tensor):
    return tensor.detach().cpu().numpy()


def check(fn, *tensors, names=None, **options):
    """``check_vjp`` for a PyTorch function; options as in ``check_vjp``.

    Args:
        fn: fn(*tensors) -> tensor or tuple of tensors, differentiable by autograd.
        tensors: floating-point tensors (their dtype and device are kept).
        names: names in the report (default x, or x0, x1, ...).
    """
    torch = _torch()
    if not callable(fn) or not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
        raise TypeError("check(fn, *tensors): expected a callable and one or more torch tensors, "
                        f"got {type(fn).__name__} and "
                        f"{[type(t).__name__ for t in tensors]}")
    like = [(t.dtype, t.device) for t in tensors]

    def as_tensors(arrays, requires_grad=False):
        return [torch.tensor(np.asarray(a), dtype=dtype, device=device,
                             requires_grad=requires_grad)
                for a, (dtype, device) in zip(arrays, like)]

    def f(*arrays):
        with torch.no_grad():
            out = fn(*as_tensors(arrays))
        return tuple(_to_numpy(o) for o in out) if isinstance(out, (tuple, list)) \
            else _to_numpy(out)

    def vjp(dy, *arrays):
        inputs = as_tensors(arrays, requires_grad=True)
        out = fn(*inputs)
        outputs = tuple(out) if isinstance(out, (tuple, list)) else (out,)
        upstream = dy if isinstance(out, (tuple, list)) else (dy,)
        grad_outputs = [torch.as_tensor(np.asarray(d), dtype=o.dtype, device=o.device)
                        for d, o in zip(upstream, outputs)]
        grads = torch.autograd.grad(outputs, inputs, grad_outputs, allow_unused=True)
        return tuple(np.zeros(np.shape(a), dtype=np.asarray(a).dtype) if g is None
                     else _to_numpy(g) for a, g in zip(arrays, grads))

    f.__name__ = getattr(fn, "__name__", type(fn).__name__)
    arrays = tuple(_to_numpy(t) for t in tensors)
    return check_vjp(f, vjp, arrays, names=names, **options)
