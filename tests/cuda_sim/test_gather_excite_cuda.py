"""The Gather-Excite kernel tests of ``tests/test_gather_excite_kernels.py``, on the cuda backend.

Same test bodies; only the backend list differs (simulator or GPU, see conftest.py).
"""
import os

os.environ["SE_NUMPY_GATHER_BACKENDS"] = "cuda"

from test_gather_excite_kernels import (  # noqa: E402,F401  (collected here by pytest)
    kernels, test_excite_forward_and_backward_agree, test_gather_forward_and_backward_agree)
