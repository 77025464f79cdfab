"""The GPU benchmark's attention rows: the arrays it builds make the kernels compute right.

``test_cuda_backend.py`` checks that every timed launch runs; the Gather-Excite
rows build their own index arrays (``bench/cuda.py`` ``_gather_cases``) instead
of calling the host functions, so here each launch's outputs are compared with
the NumPy reference on the same inputs. A wrong window table, a swapped source
array or an output element never written fails (the outputs are filled with NaN
before each launch: conftest.py's poisoning covers ``new_output`` only). Tiny
shapes: the simulator runs every thread in Python.
"""
import numpy as np
import pytest
from numba import cuda

from se_numpy.bench import cuda as cuda_bench
from se_numpy.kernels import cuda as cuda_backend
from se_numpy.kernels import numpy as reference

# float64: the sums differ from the reference by order only (≤ 9 terms at extent 2)
TOLERANCE = dict(rtol=1e-12, atol=1e-12)
SHAPES = [(2, 3, 4, 5), (1, 2, 7, 6)]      # odd sizes: clipped windows, uneven sources


@pytest.mark.parametrize("shape", SHAPES)
def test_gather_excite_launches_compute_what_the_reference_computes(shape):
    cases = cuda_bench._gather_cases(cuda_backend, cuda, shape, np.float64)
    assert set(cases) == {"ge_gather_forward", "ge_gather_backward", "ge_excite_forward",
                          "ge_excite_backward"}
    for name, (launch, arguments, outputs) in cases.items():
        for output in outputs:
            output.copy_to_device(np.full(output.shape, np.nan))
        launch()
        want = getattr(reference, name)(*arguments)
        want = want if isinstance(want, tuple) else (want,)
        for got, expected in zip(outputs, want):
            np.testing.assert_allclose(got.copy_to_host(), expected.reshape(got.shape),
                                       err_msg=name, **TOLERANCE)


def test_every_gather_excite_row_is_timed_and_counted():
    names = cuda_bench.timed_kernels()
    for name in ("ge_gather_forward", "ge_gather_backward", "ge_excite_forward",
                 "ge_excite_backward"):
        assert name in names
        assert cuda_bench.minimum_bytes(name, (2, 3, 4, 4), 8) > 0
