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


def uniform_fan_in(shape, fan_in, rng=None, dtype=np.float32):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) of the given shape: PyTorch's default for weights and biases."""
    bound = 1.0 / np.sqrt(max(1, fan_in))
    return as_generator(rng).uniform(-bound, bound, size=shape).astype(dtype)
