"""The Gather-Excite kernels of every backend against the NumPy reference, on awkward sizes.

The contract test checks every row on one example (extent 2 on a 6x4 map);
here the extents and map sizes that e does not divide, the gate sizes that
make PyTorch's nearest rule differ from ⌊i·h/H⌋, and float32. float64 results
differ from the reference by summation order only (windows of at most
(2e−1)² = 225 terms): rtol 1e-12 is far above that and far below the O(1/225)
change of one misplaced element. float32: the compiled backends sum a window
in float32, over at most 225 terms, ~1e-5 relative at worst, so rtol 1e-4
(atol for entries near 0); dgate is summed in float64 (numba).

The Numba loops run over a plane's cells as one flat sequence and then
recompute one edge cell per row (``kernels/numba/gather.py``), and the excite
has a loop for gate columns of a uniform run (W = 2w, 4w, 8w) besides the
index loop for any other sizes. So the cases include maps whose width e
divides (the flat sequence reads real numbers across a row end there), one-row
and one-column maps, maps smaller than the extent, and gates of every run.
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
GATHER_CASES = [((2, 3, 7, 5), 2), ((1, 2, 9, 4), 4), ((1, 2, 17, 3), 8), ((2, 1, 1, 1), 2),
                ((2, 2, 6, 8), 2),      # e divides W: cell 0 of a row follows the last of the one above
                ((1, 2, 16, 12), 4),    # ... with e = 4, three cells a row
                ((1, 3, 1, 9), 2),      # one row
                ((1, 2, 10, 1), 4),     # one column
                ((2, 2, 3, 5), 8),      # the map smaller than the extent both ways
                ((1, 2, 2, 17), 8)]     # W = 2e + 1: a last cell of one column
EXCITE_CASES = [((2, 3, 7, 5), (4, 3)), ((1, 2, 122, 3), (16, 1)), ((1, 2, 5, 5), (1, 1)),
                ((2, 2, 6, 6), (6, 6)),
                ((2, 3, 8, 6), (4, 3)),     # runs of 2 columns (and rows)
                ((1, 2, 7, 8), (3, 2)),     # runs of 4 columns, uneven rows
                ((1, 2, 3, 16), (1, 2)),    # runs of 8 columns, one gate row
                ((1, 2, 1, 6), (1, 3)),     # a one-row map
                ((1, 2, 6, 1), (3, 1))]     # a one-column map


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


# ============================================================================ the numba loops
def test_the_excite_cases_cover_both_numba_loops():
    """Uniform column runs of 2, 4 and 8 take their own compiled loops; every other gate width
    the index loops: each kind must be among EXCITE_CASES above."""
    from se_numpy.kernels.numba import gather as numba_gather
    index_loops = numba_gather._excite_loops(7, 3)[0]
    runs = {numba_gather._excite_loops(shape[3], cells[1])[0] for shape, cells in EXCITE_CASES}
    assert index_loops in runs
    for run in numba_gather.UNIFORM_RUNS:
        assert numba_gather._excite_loops(5 * run, 5)[0] in runs
        assert numba_gather._excite_loops(5 * run, 5)[0] is not index_loops


def numba_loop_pairs():
    from se_numpy.kernels.numba import gather as numba_gather
    return [*numba_gather._gather_loops(2), *numba_gather._excite_loops(8, 4)[:2],
            *numba_gather._excite_loops(7, 3)[:2]]


def test_every_numba_loop_pair_has_two_cache_entries():
    """numba issue #6845 (kernels/numba/rows.py): the serial and the parallel loop must not
    share a disk-cache entry, or the "parallel" one runs serial."""
    for pair in numba_loop_pairs():
        assert pair.parallel.targetoptions.get("parallel")
        assert not pair.serial.targetoptions.get("parallel")
        assert (pair.serial._cache._cache_file._index_path
                != pair.parallel._cache._cache_file._index_path)


def test_the_parallel_numba_loops_agree():
    """A 2^20-element map takes the parallel twins (rows.PARALLEL_MIN_ELEMENTS): the same
    answers as the reference; 260 planes of 64x64 leave a short last block of planes.
    float64, so the tolerance is the summation order's (module docstring). One gate size
    (runs of 2) only: each parallel twin costs seconds to compile, and its body is its
    serial twin's, which the cases above run on every size."""
    kernels = backend.load_backend("numba")
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (5, 52, 64, 64))
    assert x.size >= 2 ** 20 and x.shape[0] * x.shape[1] % 8 != 0
    g = kernels.ge_gather_forward(x, 2)
    np.testing.assert_allclose(g, reference.ge_gather_forward(x, 2), **TOLERANCES[np.float64])
    np.testing.assert_allclose(kernels.ge_gather_backward(g, x.shape, 2),
                               reference.ge_gather_backward(g, x.shape, 2), **TOLERANCES[np.float64])
    gate = rng.uniform(0, 1, x.shape[:2] + (32, 32))
    np.testing.assert_allclose(kernels.ge_excite_forward(x, gate),
                               reference.ge_excite_forward(x, gate), **TOLERANCES[np.float64])
    for got, want in zip(kernels.ge_excite_backward(x, x, gate),
                         reference.ge_excite_backward(x, x, gate)):
        np.testing.assert_allclose(got, want, **TOLERANCES[np.float64])
