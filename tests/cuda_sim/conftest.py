"""The cuda backend's correctness tests run in a process of their own.

Numba decides at its first import whether ``numba.cuda`` is the real target or
the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``), so these tests cannot share a
process with the rest of the suite. ``tests/test_kernels_cuda.py`` starts

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda_sim      (always)
    SE_NUMPY_CUDA_GPU_TESTS=1 python -m pytest tests/cuda_sim   (when a GPU is present)

and the ordinary ``pytest`` run ignores the files here, because neither
variable is set in it.
"""
import os

import pytest

RUN_HERE = (os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
            or os.environ.get("SE_NUMPY_CUDA_GPU_TESTS") == "1")

collect_ignore_glob = [] if RUN_HERE else ["test_*.py"]


@pytest.fixture(autouse=True)
def poisoned_outputs():
    """Every output a kernel writes starts as NaN (integers: -1): an element
    left unwritten by a too-small grid or a wrong loop bound cannot pass."""
    from se_numpy.kernels import cuda as cuda_backend
    with cuda_backend.poison_outputs():
        yield
