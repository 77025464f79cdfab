"""Input checks shared by every layer: clear errors instead of deep broadcasting failures.

Each helper raises ``TypeError`` for the wrong kind of object or dtype and
``ValueError`` for the wrong shape or non-finite values, naming the argument,
what was expected and what came.
"""
import numpy as np

FLOAT_DTYPES = (np.float32, np.float64)


def check_float_array(x, name, ndim=None, finite=False):
    """Return ``x`` after checking it is a float32/float64 ndarray of rank ``ndim``.

    Integer and other dtypes are rejected rather than silently cast, since a
    cast would hide a caller's mistake (e.g. passing labels as images).
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(x).__name__}")
    if x.dtype.type not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {x.shape} ({x.ndim}-d)")
    if finite and not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(f"{name}: expected finite values, found {bad} NaN/inf entries")
    return x


def check_nchw(x, name="x", channels=None):
    """Check a float NCHW feature map, optionally with a given channel count."""
    check_float_array(x, name, ndim=4)
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name}: expected {channels} channels (shape (N, {channels}, H, W)), "
                         f"got shape {x.shape}")
    return x


def check_shape(x, shape, name):
    """Check ``x.shape == shape`` exactly (no broadcasting)."""
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(x.shape)}")
    return x


def check_same_dtype(a, b, name_a, name_b):
    """Mixed float32/float64 would silently upcast; ask the caller to choose."""
    if a.dtype != b.dtype:
        raise TypeError(f"{name_b}: expected dtype {a.dtype} (same as {name_a}), got {b.dtype}")
