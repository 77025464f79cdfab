"""Check a JAX function's VJP (``jax.vjp``, so also a ``jax.custom_vjp`` rule).

    import se_numpy.gradcheck.jax as gradcheck_jax
    report = gradcheck_jax.check(my_function, x, w)     # x, w: NumPy or JAX arrays
    assert report.passed, report

``fn(*arrays)`` returns an array (or a tuple of arrays). The vjp compared with
finite differences of ``fn`` is the pullback of ``jax.vjp(fn, *arrays)``; the
steps, tolerances, invariants, group testing and report are those of
``check_vjp``. If any input is float64 the check runs with JAX's 64-bit mode
on (``jax.enable_x64``) for its duration; otherwise JAX computes in float32
and the check uses float32 steps and tolerances. JAX is imported when
``check`` is called, never when this module is imported.
"""
import numpy as np

from .check import check_vjp


def _jax():
    try:
        import jax
    except ImportError as error:         # pragma: no cover - depends on the environment
        raise ImportError("se_numpy.gradcheck.jax.check needs JAX (pip install jax)") from error
    return jax


def check(fn, *arrays, names=None, **options):
    """``check_vjp`` for a JAX function; options as in ``check_vjp``.

    Args:
        fn: fn(*arrays) -> array or tuple of arrays, differentiable by JAX.
        arrays: floating-point NumPy or JAX arrays.
        names: names in the report (default x, or x0, x1, ...).
    """
    jax = _jax()
    if not callable(fn) or not arrays:
        raise TypeError("check(fn, *arrays): expected a callable and one or more arrays, got "
                        f"{type(fn).__name__} and {len(arrays)} arrays")
    caller = tuple(np.asarray(a) for a in arrays)
    dtypes = [a.dtype for a in caller]

    def as_jax(values):
        return [jax.numpy.asarray(np.asarray(v), dtype=dtype) for v, dtype in zip(values, dtypes)]

    def to_numpy(out):
        return tuple(np.asarray(o) for o in out) if isinstance(out, (tuple, list)) \
            else np.asarray(out)

    def f(*values):
        return to_numpy(fn(*as_jax(values)))

    def vjp(dy, *values):
        out, pullback = jax.vjp(fn, *as_jax(values))
        if isinstance(out, (tuple, list)):
            cotangent = type(out)(jax.numpy.asarray(np.asarray(d), dtype=o.dtype)
                                  for d, o in zip(dy, out))
        else:
            cotangent = jax.numpy.asarray(np.asarray(dy), dtype=out.dtype)
        return tuple(np.asarray(g) for g in pullback(cotangent))

    f.__name__ = getattr(fn, "__name__", type(fn).__name__)
    with jax.enable_x64(any(dtype == np.float64 for dtype in dtypes)):
        return check_vjp(f, vjp, caller, names=names, **options)
