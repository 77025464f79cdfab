"""The public Hypothesis strategies produce what they promise: shapes in range, distinct values, margins."""
import numpy as np
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from se_numpy.nn.se import SEBlock
from se_numpy.testing import (GATES, SQUEEZES, away_from_zero, distinct_nchw_arrays,
                              float_arrays, nchw_shapes, relu_safe_arrays, se_configs)


@settings(max_examples=30)
@given(shape=nchw_shapes(min_side=2, max_side=5, max_batch=4, max_channels=7))
def test_nchw_shapes_stay_in_range(shape):
    batch, channels, height, width = shape
    assert 1 <= batch <= 4 and 1 <= channels <= 7
    assert 2 <= height <= 5 and 2 <= width <= 5


def test_nchw_shapes_reach_the_edge_cases():
    assert find(nchw_shapes(), lambda shape: shape[1:] == (1, 1, 1)) == (1, 1, 1, 1)
    odd_non_square = find(nchw_shapes(), lambda s: s[2] % 2 == 1 and s[3] % 2 == 1 and s[2] != s[3])
    assert odd_non_square[2] != odd_non_square[3]


@settings(max_examples=20)
@given(x=float_arrays((4, 3, 5), low=-2.0, high=3.0))
def test_float_arrays_are_distinct_with_the_promised_gap(x):
    assert x.shape == (4, 3, 5) and x.dtype == np.float64
    assert x.min() >= -2.0 and x.max() < 3.0
    gaps = np.diff(np.sort(x.ravel()))
    assert gaps.min() >= (3.0 - (-2.0)) / (2 * x.size)


@settings(max_examples=20)
@given(x=float_arrays(st.sampled_from([(7,), (2, 3, 4, 4)]), dtype=np.float32))
def test_float32_arrays_stay_distinct(x):
    assert x.dtype == np.float32
    assert np.unique(x).size == x.size


@settings(max_examples=10)
@given(x=float_arrays((50,), distinct=False, low=0.0, high=0.5))
def test_float_arrays_without_distinct_stay_in_range(x):
    assert x.shape == (50,) and x.min() >= 0.0 and x.max() < 0.5


@settings(max_examples=20)
@given(x=away_from_zero((6, 5), margin=0.3, low=-1.0, high=2.0))
def test_away_from_zero_keeps_the_margin(x):
    assert np.all(np.abs(x) >= 0.3)
    assert x.min() >= -1.0 and x.max() <= 2.0
    assert np.unique(x).size == x.size


@settings(max_examples=20)
@given(x=relu_safe_arrays((3, 4, 2, 2), dtype=np.float32))
def test_relu_safe_arrays_keep_away_from_the_kink(x):
    assert x.dtype == np.float32
    assert np.all(np.abs(x) >= 0.05)
    assert np.unique(x).size == x.size


def test_away_from_zero_produces_both_signs():
    # the two pieces [low, -margin] and [margin, high] are both reachable
    assert find(away_from_zero((4,)), lambda x: np.any(x < 0) and np.any(x > 0)) is not None


@settings(max_examples=20)
@given(x=distinct_nchw_arrays(max_side=4, max_channels=3, max_batch=2))
def test_distinct_nchw_arrays(x):
    assert x.ndim == 4 and x.shape[0] <= 2 and x.shape[1] <= 3 and max(x.shape[2:]) <= 4
    assert np.unique(x).size == x.size


@settings(max_examples=25)
@given(config=se_configs(max_channels=20))
def test_se_configs_are_consistent_and_build_a_block(config):
    assert config["hidden"] == max(1, config["channels"] // config["reduction"])
    assert config["gate"] in GATES and config["squeeze"] in SQUEEZES
    block = SEBlock(**config)
    assert block.fc1.weight.shape == (config["hidden"], config["channels"])


def test_se_configs_reach_hidden_width_one_from_a_real_reduction():
    config = find(se_configs(), lambda c: c["channels"] < c["reduction"])
    assert config["hidden"] == 1


def test_profiles_are_registered():
    dev, ci, thorough = (settings.get_profile(name) for name in ("dev", "ci", "thorough"))
    assert dev.deadline is None and ci.deadline is None and thorough.deadline is None
    assert ci.derandomize and ci.max_examples <= 50
    assert thorough.max_examples >= 200


@pytest.mark.parametrize("make, error", [
    (lambda: nchw_shapes(min_side=4, max_side=2), ValueError),
    (lambda: nchw_shapes(max_channels=0), ValueError),
    (lambda: float_arrays((3,), low=1.0, high=1.0), ValueError),
    (lambda: float_arrays((3,), dtype=np.int32), TypeError),
    (lambda: away_from_zero((3,), margin=0.0), ValueError),
    (lambda: away_from_zero((3,), low=-0.1, high=0.1, margin=0.2), ValueError),
    (lambda: se_configs(gates=("softmax",)), ValueError),
    (lambda: se_configs(reductions=(0, 2)), ValueError),
])
def test_bad_arguments_raise(make, error):
    with pytest.raises(error):
        make()
