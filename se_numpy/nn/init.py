"""Seeded parameter initialisation, following PyTorch's defaults.

PyTorch initialises ``Linear`` and ``Conv2d`` weights with
``kaiming_uniform_(a=sqrt(5))``, which works out to U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
and biases with the same bound. Using the same rule means a network built here
starts in the same regime as its PyTorch twin.

Every constructor takes ``rng``: a ``numpy.random.Generator``, an int seed, or
None for a module-level generator seeded with ``DEFAULT_SEED`` (so two runs of
the same script build identical networks).
"""
import numpy as np

DEFAULT_SEED = 0
_default_generator = np.random.default_rng(DEFAULT_SEED)


def as_generator(rng=None):
    """Turn ``rng`` (Generator, int seed or None) into a ``numpy.random.Generator``."""
    if rng is None:
        return _default_generator
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng: expected a numpy.random.Generator, an int seed or None, "
                    f"got {type(rng).__name__}")


def reset_default_seed(seed=DEFAULT_SEED):
    """Re-seed the generator used when no ``rng`` is given."""
    global _default_generator
    _default_generator = np.random.default_rng(seed)


# Values are drawn in float64 this many at a time and cast into the result, so a
# large float32 tensor never exists a second time at twice its size.
DRAW_CHUNK = 1 << 16


def uniform_fan_in(shape, fan_in, rng=None, dtype=np.float32):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) of the given shape: PyTorch's default for weights and biases.

    The values are exactly those of ``rng.uniform(-bound, bound, size=shape).astype(dtype)``:
    the generator yields the same float64 stream whether it is asked for the whole
    tensor at once or ``DRAW_CHUNK`` values at a time, and each value is rounded to
    ``dtype`` the same way.
    """
    bound = 1.0 / np.sqrt(max(1, fan_in))
    generator = as_generator(rng)
    out = np.empty(shape, dtype=dtype)
    flat = out.reshape(-1)
    for start in range(0, flat.size, DRAW_CHUNK):
        stop = min(start + DRAW_CHUNK, flat.size)
        flat[start:stop] = generator.uniform(-bound, bound, size=stop - start)
    return out
