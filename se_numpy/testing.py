"""Hypothesis strategies for testing SE implementations (this one or your own).

    from hypothesis import given
    from se_numpy.testing import distinct_nchw_arrays, se_configs

    @given(x=distinct_nchw_arrays(max_side=5), config=se_configs(max_channels=16))
    def test_my_se_block(x, config): ...

Why these strategies and not plain random floats:

* **Distinct values** (``float_arrays(distinct=True)``): a max-squeeze or a
  max-pool has no derivative where two entries tie, so a gradient check on
  an array with repeated values fails for a reason that is not a bug. The
  values are built distinct (a shuffled arithmetic progression with jitter),
  not filtered with ``assume``, so no example is thrown away.
* **Values away from zero** (``away_from_zero``, ``relu_safe_arrays``): ReLU
  has a kink at 0; keeping inputs a margin away from it keeps a
  finite-difference stencil from straddling the kink.
* **NCHW shapes that include the edge cases** (``nchw_shapes``): C = 1
  (reduction to a hidden width of 1), H = W = 1 (the squeeze is the
  identity), odd sizes.

Importing this module registers three Hypothesis settings profiles:
``dev`` (quick, random), ``ci`` (derandomized, reproducible) and ``thorough``
(many examples). Load one with ``hypothesis.settings.load_profile("ci")``;
this project's ``tests/conftest.py`` loads the one named by the environment
variable ``HYPOTHESIS_PROFILE``. None of them has a deadline: the first call of
a Numba kernel compiles it, which may take seconds and says nothing about
the code under test.
"""
import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from .functional.se import hidden_width

__all__ = ["nchw_shapes", "float_arrays", "away_from_zero", "relu_safe_arrays",
           "distinct_nchw_arrays", "se_configs", "GATES", "SQUEEZES"]

GATES = ("sigmoid", "tanh", "relu", "hard_sigmoid")
SQUEEZES = ("avg", "max")

# ----------------------------------------------------------------- settings profiles
settings.register_profile("dev", max_examples=20, deadline=None)
settings.register_profile("ci", max_examples=15, deadline=None, derandomize=True,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------- argument checks
def _check_int(value, name, minimum):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")


def _check_range(low, high):
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"low, high: expected finite low < high, got low={low}, high={high}")


def _check_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
    return dtype


def _shape_strategy(shape):
    """A fixed shape (tuple of ints) becomes a one-value strategy; a strategy stays one."""
    if isinstance(shape, st.SearchStrategy):
        return shape
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    shape = tuple(shape)
    for position, side in enumerate(shape):
        _check_int(side, f"shape[{position}]", 0)
    return st.just(shape)


# ----------------------------------------------------------------- shapes
def nchw_shapes(min_side=1, max_side=6, max_batch=3, max_channels=8, min_batch=1,
                min_channels=1):
    """Shapes (N, C, H, W) with min_batch <= N <= max_batch, min_channels <= C <= max_channels
    and min_side <= H, W <= max_side (H and W drawn separately, so non-square and odd sizes occur).

    Hypothesis shrinks towards the minimum, so C = 1 and H = W = 1 are the first
    edge cases a failing test is reduced to.
    """
    for value, name, minimum in ((min_side, "min_side", 1), (max_side, "max_side", 1),
                                 (min_batch, "min_batch", 1), (max_batch, "max_batch", 1),
                                 (min_channels, "min_channels", 1),
                                 (max_channels, "max_channels", 1)):
        _check_int(value, name, minimum)
    for low, high, name in ((min_side, max_side, "side"), (min_batch, max_batch, "batch"),
                            (min_channels, max_channels, "channels")):
        if low > high:
            raise ValueError(f"{name}: expected min <= max, got min={low}, max={high}")
    side = st.integers(min_side, max_side)
    return st.tuples(st.integers(min_batch, max_batch), st.integers(min_channels, max_channels),
                     side, side)


# ----------------------------------------------------------------- arrays
def _distinct_unit_values(size, rng):
    """``size`` distinct values in [0, 1), in random order, neighbours at least 1/(2·size) apart.

    Value k of the progression is (k + 1/2 + jitter_k) / size with jitter_k in
    [-1/4, 1/4], so two sorted neighbours differ by at least (1 - 1/2) / size.
    """
    jitter = rng.uniform(-0.25, 0.25, size)
    values = (np.arange(size) + 0.5 + jitter) / size
    return rng.permutation(values)


def _min_gap_fits(size, width, dtype):
    """Whether a gap of width/(2·size) survives rounding to ``dtype`` (a few ulps spare)."""
    if size <= 1:
        return True
    return width / (2 * size) > 8 * np.finfo(dtype).eps * width


def float_arrays(shape, dtype=np.float64, low=-1.0, high=1.0, distinct=True):
    """Arrays of ``shape`` (a tuple or a strategy of tuples) with values in [low, high).

    With ``distinct=True`` (the default) no two entries are equal: sorted, any two
    neighbours differ by at least (high - low) / (2·size), so max and max-pool
    have no ties. The randomness comes from one drawn seed, which keeps
    generation fast for large arrays.
    """
    dtype = _check_dtype(dtype)
    _check_range(low, high)
    shapes = _shape_strategy(shape)

    def build(shape_and_seed):
        shape, seed = shape_and_seed
        size = int(np.prod(shape, dtype=np.int64))
        rng = np.random.default_rng(seed)
        if not distinct:
            return rng.uniform(low, high, size).reshape(shape).astype(dtype)
        if not _min_gap_fits(size, high - low, dtype):
            raise ValueError(f"shape {shape}: too many entries for distinct {dtype} values "
                             f"in [{low}, {high})")
        unit = _distinct_unit_values(size, rng)
        return (low + (high - low) * unit).reshape(shape).astype(dtype)

    return st.tuples(shapes, st.integers(0, 2**32 - 1)).map(build)


def away_from_zero(shape, dtype=np.float64, low=-1.0, high=1.0, margin=0.1, distinct=True):
    """Arrays with values in [low, -margin] ∪ [margin, high]: never within ``margin`` of 0.

    Built by construction: values drawn on an interval as long as the two pieces
    together are mapped monotonically onto them, so distinctness and the
    neighbour gap of ``float_arrays`` carry over.
    """
    dtype = _check_dtype(dtype)
    _check_range(low, high)
    if not margin > 0:
        raise ValueError(f"margin: expected a positive number, got {margin}")
    negative_length = max(0.0, -margin - low)
    positive_length = max(0.0, high - margin)
    total = negative_length + positive_length
    if total <= 0:
        raise ValueError(f"no values in [{low}, {high}] are at least {margin} away from 0")

    def onto_two_pieces(u):
        # u in [0, total): the first negative_length of it goes to [low, -margin),
        # the rest to [margin, high); the map is increasing, so distinct stays distinct.
        if not _min_gap_fits(u.size, total, dtype):
            raise ValueError(f"{u.size} entries: too many for distinct {dtype} values")
        mapped = np.where(u < negative_length, low + u, margin + (u - negative_length))
        return mapped.astype(dtype)

    return float_arrays(shape, np.float64, 0.0, total, distinct).map(onto_two_pieces)


def relu_safe_arrays(shape, dtype=np.float64, margin=0.05, low=-1.0, high=1.0, distinct=True):
    """``away_from_zero`` with defaults for inputs of a ReLU: |x| >= 0.05, distinct values.

    A gradient check steps by about 6e-6, so a margin of 0.05 keeps every
    stencil on one side of the kink with room to spare.
    """
    return away_from_zero(shape, dtype=dtype, low=low, high=high, margin=margin,
                          distinct=distinct)


def distinct_nchw_arrays(dtype=np.float64, low=-1.0, high=1.0, **shape_options):
    """NCHW arrays with distinct values; ``shape_options`` go to ``nchw_shapes``."""
    return float_arrays(nchw_shapes(**shape_options), dtype=dtype, low=low, high=high,
                        distinct=True)


# ----------------------------------------------------------------- SE configurations
def se_configs(min_channels=1, max_channels=32, reductions=(1, 2, 4, 8, 16),
               gates=GATES, squeezes=SQUEEZES):
    """Keyword arguments for an SE block: {"channels", "reduction", "hidden", "gate", "squeeze"}.

    ``hidden`` is max(1, channels // reduction), the bottleneck width of the
    paper (Sec. 3.2), so ``SEBlock(**config)`` builds the block; C < r gives the
    hidden width 1 edge case. Gates and squeezes are those of the paper's
    ablations (Tables 11 and 12) plus the hard sigmoid.
    """
    _check_int(min_channels, "min_channels", 1)
    _check_int(max_channels, "max_channels", min_channels)
    for name, chosen, allowed in (("gates", gates, GATES), ("squeezes", squeezes, SQUEEZES)):
        unknown = [value for value in chosen if value not in allowed]
        if unknown or not chosen:
            raise ValueError(f"{name}: expected a non-empty subset of {allowed}, got {chosen}")
    if not reductions or any(not isinstance(r, (int, np.integer)) or r < 1 for r in reductions):
        raise ValueError(f"reductions: expected positive ints, got {reductions}")

    def configuration(channels, reduction, gate, squeeze):
        return {"channels": channels, "reduction": reduction,
                "hidden": hidden_width(channels, reduction), "gate": gate, "squeeze": squeeze}

    return st.builds(configuration, st.integers(min_channels, max_channels),
                     st.sampled_from(tuple(reductions)), st.sampled_from(tuple(gates)),
                     st.sampled_from(tuple(squeezes)))
