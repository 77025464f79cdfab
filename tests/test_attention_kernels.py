"""The channel-pooling and spatial-gate kernels beyond the contract test: ties, NaN, float32.

``tests/test_kernels_contract.py`` runs both rows on every backend on random
values; here the rules that random values never reach: a tie keeps the first
channel, a NaN is the maximum (NumPy's argmax), float32 means accumulate in
float64 (exactly the reference's result), and the Numba loops exist as a
serial and a parallel function with separate cache entries (numba #6845).
The cuda backend runs the same checks under the simulator in
``tests/cuda_sim/`` through the contract test.
"""
import numpy as np
import pytest

from se_numpy.kernels import backend, contract
from se_numpy.kernels import numpy as reference
from se_numpy.kernels.numba import channel_pool as numba_pool
from se_numpy.kernels.numba import spatial_gate as numba_gate
from se_numpy.kernels.numba import rows


@pytest.fixture(params=["numpy", "numba"])
def kernels(request):
    return backend.load_backend(request.param)


def test_ties_keep_the_first_channel_and_nan_is_the_maximum(kernels):
    x = np.zeros((2, 5, 3, 4))
    x[0, :, 0, 0] = [1.0, 3.0, 3.0, 2.0, 3.0]              # a tie at channel 1, 2 and 4
    x[0, :, 0, 1] = [1.0, np.nan, 5.0, np.nan, 2.0]         # first NaN wins: channel 1
    x[1, :, 2, 3] = [np.inf, -np.inf, 0.0, 1.0, 2.0]        # sum NaN without any NaN
    with np.errstate(invalid="ignore"):            # inf + (-inf) in the mean, on purpose
        mean, maximum, argmax = kernels.channel_pool_forward(x)
        expected = reference.channel_pool_forward(x)
    assert argmax[0, 0, 0, 0] == 1 and maximum[0, 0, 0, 0] == 3.0
    assert argmax[0, 0, 0, 1] == 1 and np.isnan(maximum[0, 0, 0, 1])
    assert argmax[1, 0, 2, 3] == 0 and maximum[1, 0, 2, 3] == np.inf
    for got, want in zip((mean, maximum, argmax), expected):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape", [(2, 7, 5, 3), (4, 64, 64, 64)])   # serial and parallel paths
def test_float32_agrees_with_the_reference_exactly(shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for got, want in zip(numba_pool.channel_pool_forward(x), reference.channel_pool_forward(x)):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    arguments = contract.example_arguments("channel_pool_backward", shape, np.float32)
    np.testing.assert_array_equal(numba_pool.channel_pool_backward(*arguments),
                                  reference.channel_pool_backward(*arguments))


def test_the_backward_is_the_adjoint_of_the_forward_pooling():
    """<dx, x'> = <dmean, mean'> + <dmax, max'> for a perturbation x' that keeps the arg-max."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 3, 3))
    _, _, argmax = reference.channel_pool_forward(x)
    dmean, dmax = rng.standard_normal((2, 1, 3, 3)), rng.standard_normal((2, 1, 3, 3))
    dx = numba_pool.channel_pool_backward(dmean, dmax, argmax, x.shape)
    direction = rng.standard_normal(x.shape)
    mean_change = direction.mean(axis=1, keepdims=True)
    max_change = np.take_along_axis(direction, argmax, axis=1)
    np.testing.assert_allclose(np.sum(dx * direction),
                               np.sum(dmean * mean_change) + np.sum(dmax * max_change),
                               rtol=1e-12)


@pytest.mark.parametrize("module", [numba_pool, numba_gate], ids=["channel_pool", "spatial_gate"])
def test_every_loop_pair_has_two_cache_entries(module):
    pairs = [value for value in vars(module).values()
             if isinstance(value, rows.SerialAndParallel)]
    assert len(pairs) == 2
    for pair in pairs:
        assert pair.parallel.targetoptions.get("parallel")
        assert not pair.serial.targetoptions.get("parallel")
        assert (pair.serial._cache._cache_file._index_path
                != pair.parallel._cache._cache_file._index_path)


# ============================================================================ spatial gate
@pytest.mark.parametrize("shape", [(2, 5, 3, 7), (4, 64, 64, 64)])   # serial and parallel paths
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_spatial_scale_agrees_with_the_reference(shape, dtype):
    """y and dx are one multiply per element: equal to the reference exactly. dg sums C
    products in float64 in another order (float32 products are exact in float64): for
    C <= 64 the difference is ~C·2^-53 relative, far inside rtol 1e-12, while one
    dropped channel changes dg by O(1/C)."""
    rng = np.random.default_rng(3)
    x, dy = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    g = rng.uniform(0, 1, (shape[0], 1) + shape[2:]).astype(dtype)
    np.testing.assert_array_equal(numba_gate.spatial_scale_forward(x, g),
                                  reference.spatial_scale_forward(x, g))
    (dx, dg), (dx_want, dg_want) = (numba_gate.spatial_scale_backward(dy, x, g),
                                    reference.spatial_scale_backward(dy, x, g))
    np.testing.assert_array_equal(dx, dx_want)
    assert dg.dtype == dtype and dg.shape == (shape[0], 1) + shape[2:]
    np.testing.assert_allclose(dg, dg_want, rtol=1e-12 if dtype == np.float64 else 1e-6,
                               atol=1e-12 if dtype == np.float64 else 1e-6)


def test_spatial_scale_backward_is_the_adjoint_of_the_forward():
    """<dy, d/dε (x+εx')·(g+εg')> = <dx, x'> + <dg, g'>: y is bilinear in (x, g)."""
    rng = np.random.default_rng(4)
    x, dy, x_change = (rng.standard_normal((2, 4, 3, 5)) for _ in range(3))
    g, g_change = (rng.standard_normal((2, 1, 3, 5)) for _ in range(2))
    dx, dg = numba_gate.spatial_scale_backward(dy, x, g)
    directional = np.sum(dy * (x_change * g + x * g_change))
    np.testing.assert_allclose(np.sum(dx * x_change) + np.sum(dg * g_change), directional,
                               rtol=1e-12)



@pytest.mark.parametrize("name", ["spatial_scale_forward", "spatial_scale_backward",
                                  "channel_pool_backward"])
def test_a_plane_of_the_wrong_shape_is_refused_by_name(kernels, name):
    """A whole map passed where one number per pixel belongs would otherwise be read as
    rows of gates (numba) or broadcast (numpy): the shared check refuses it first."""
    arguments = list(contract.example_arguments(name, (2, 3, 4, 5), np.float64))
    position, (argument, _) = next((i, pair) for i, pair in enumerate(contract.OPS[name].arguments)
                                   if pair[1] in (contract.PLANE, contract.PLANE_INDEX))
    arguments[position] = np.ones((2, 3, 4, 5), dtype=arguments[position].dtype)
    with pytest.raises(ValueError, match=rf"{name}: {argument} must be a plane of shape "
                                         r"\(2, 1, 4, 5\).*got shape \(2, 3, 4, 5\)"):
        getattr(kernels, name)(*arguments)
