"""The contract tests of ``tests/test_kernels_contract.py``, run on the cuda backend.

Same test bodies; only the backend list differs. This process runs under the
simulator (or on a GPU), see conftest.py.
"""
import os

os.environ["SE_NUMPY_CONTRACT_BACKENDS"] = "cuda"

from test_kernels_contract import (  # noqa: E402,F401  (collected here by pytest)
    kernels, test_agrees_with_the_reference_in_float64,
    test_empty_maps_are_refused_with_the_argument_named,
    test_every_row_has_a_function_with_the_contract_arguments,
    test_outputs_have_the_roles_shapes_and_dtypes, test_selected_by_name_through_the_switch)
