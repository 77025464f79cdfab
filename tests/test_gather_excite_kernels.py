"""The Gather-Excite kernels of every backend against the NumPy reference, on awkward sizes.

The contract test checks every row on one example (extent 2 on a 6x4 map);
here the extents and map sizes that e does not divide, the gate sizes that
make PyTorch's nearest rule differ from ⌊i·h/H⌋, and float32. float64 results
differ from the reference by summation order only (windows of at most
(2e−1)² = 225 terms): rtol 1e-12 is far above that and far below the O(1/225)
change of one misplaced element. float32: the compiled backends sum in
float64 (numba) or float32 over at most 225 terms (cuda), ~1e-5 relative at
worst, so rtol 1e-4 (atol for entries near 0).
``tests/cuda_sim/test_gather_excite_cuda.py`` runs these bodies on ``cuda``.
"""
import os

import numpy as np
import pytest

from se_numpy.kernels import backend
from se_numpy.kernels import numpy as reference
from se_numpy.kernels.numpy.gather import nearest_sources

BACKENDS = os.environ.get("SE_NUMPY_GATHER_BACKENDS", "numba").split(",")
TOLERANCES = {np.float64: dict(rtol=1e-12, atol=1e-12), np.float32: dict(rtol=1e-4, atol=1e-5)}
GATHER_CASES = [((2, 3, 7, 5), 2), ((1, 2, 9, 4), 4), ((1, 2, 17, 3), 8), ((2, 1, 1, 1), 2)]
EXCITE_CASES = [((2, 3, 7, 5), (4, 3)), ((1, 2, 122, 3), (16, 1)), ((1, 2, 5, 5), (1, 1)),
                ((2, 2, 6, 6), (6, 6))]


@pytest.fixture(scope="module", params=BACKENDS)
def kernels(request):
    return backend.load_backend(request.param)


def to_host(value):
    return value.copy_to_host() if hasattr(value, "copy_to_host") else value


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, extent", GATHER_CASES)
def test_gather_forward_and_backward_agree(kernels, shape, extent, dtype):
    rng = np.random.default_rng(extent)
    x = rng.uniform(-1, 1, shape).astype(dtype)
    g = to_host(kernels.ge_gather_forward(x, extent))
    np.testing.assert_allclose(g, reference.ge_gather_forward(x, extent), **TOLERANCES[dtype])
    assert g.dtype == dtype
    dg = rng.uniform(-1, 1, g.shape).astype(dtype)
    dx = to_host(kernels.ge_gather_backward(dg, shape, extent))
    np.testing.assert_allclose(dx, reference.ge_gather_backward(dg, shape, extent),
                               **TOLERANCES[dtype])
    assert dx.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, cells", EXCITE_CASES)
def test_excite_forward_and_backward_agree(kernels, shape, cells, dtype):
    rng = np.random.default_rng(shape[2])
    x = rng.uniform(-1, 1, shape).astype(dtype)
    gate = rng.uniform(0, 1, shape[:2] + cells).astype(dtype)
    dy = rng.uniform(-1, 1, shape).astype(dtype)
    np.testing.assert_allclose(to_host(kernels.ge_excite_forward(x, gate)),
                               reference.ge_excite_forward(x, gate), **TOLERANCES[dtype])
    dx, dgate = (to_host(a) for a in kernels.ge_excite_backward(dy, x, gate))
    want_dx, want_dgate = reference.ge_excite_backward(dy, x, gate)
    np.testing.assert_allclose(dx, want_dx, **TOLERANCES[dtype])
    np.testing.assert_allclose(dgate, want_dgate, **TOLERANCES[dtype])
    assert dx.dtype == dgate.dtype == dtype


def test_nearest_sources_follow_pytorchs_float32_rule():
    """For 16 cells upsampled to 122 rows, PyTorch's float32 scale (16/122 rounded) puts row
    61 on cell 7, where the exact ⌊61·16/122⌋ = 8: the reference must say 7. Every source
    lies in range and the sequence never decreases (each cell covers one run of rows)."""
    sources = nearest_sources(122, 16)
    assert 61 * 16 // 122 == 8 and sources[61] == 7
    assert sources[0] == 0 and sources[-1] == 15 and np.all(np.diff(sources) >= 0)
    np.testing.assert_array_equal(nearest_sources(6, 3), [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(nearest_sources(5, 5), np.arange(5))
