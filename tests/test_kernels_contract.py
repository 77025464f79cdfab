"""Every backend honours the contract of ``kernels/contract.py``: one test body, every backend.

The ``numpy`` and ``numba`` backends run here; ``tests/cuda_sim/test_contract_cuda.py``
runs the same tests on ``cuda`` under the simulator (in its own process, see
``tests/cuda_sim/conftest.py``), by setting ``BACKENDS``.

Agreement with the reference is checked in float64 on the contract's example
inputs (uniform values, so no ties): every backend sums in float64 or in a
float64 tree, so two results differ by summation order only, ~k·2^-53 relative
for k ≤ 64 terms here; ``rtol = 1e-12`` is ~5000 times that and a misplaced
or dropped element (an O(1/k) change) is far outside it. float32 runs check
dtypes and layout only; the numerics per dtype are in the per-backend files.
"""
import inspect
import os
import re

import numpy as np
import pytest

from se_numpy.kernels import backend, contract
from se_numpy.kernels import numpy as reference

BACKENDS = os.environ.get("SE_NUMPY_CONTRACT_BACKENDS", "numpy,numba").split(",")
SHAPE = (2, 3, 6, 4)
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module", params=BACKENDS)
def kernels(request):
    module = backend.load_backend(request.param)
    contract.warm_up(module)
    return module


def to_host(value):
    return value.copy_to_host() if hasattr(value, "copy_to_host") else value


def as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


@pytest.mark.parametrize("op", contract.CONTRACT, ids=lambda op: op.name)
def test_every_row_has_a_function_with_the_contract_arguments(kernels, op):
    function = getattr(kernels, op.name)
    assert list(inspect.signature(function).parameters) == [name for name, _ in op.arguments]


def test_selected_by_name_through_the_switch(kernels):
    with backend.use_backend(kernels.NAME):
        assert backend.current() is kernels and backend.get_backend() == kernels.NAME


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", contract.CONTRACT, ids=lambda op: op.name)
def test_outputs_have_the_roles_shapes_and_dtypes(kernels, op, dtype):
    arguments = contract.example_arguments(op.name, SHAPE, dtype, seed=1)
    outputs = [to_host(out) for out in as_tuple(getattr(kernels, op.name)(*arguments))]
    # fresh arguments: an in-place kernel has overwritten its input
    expected = as_tuple(getattr(reference, op.name)(*contract.example_arguments(
        op.name, SHAPE, dtype, seed=1)))
    assert len(outputs) == len(op.outputs)
    for out, want, (name, role) in zip(outputs, expected, op.outputs):
        assert out.shape == want.shape, (name, out.shape, want.shape)
        assert out.dtype == (np.int64 if role in contract.INTEGER_ROLES else dtype), name
        # the compiled backends hand out C-contiguous arrays (the next kernel
        # reads them without a copy); the reference may return a transposed view
        assert out.flags.c_contiguous or kernels.NAME == "numpy", name


@pytest.mark.parametrize("op", contract.CONTRACT, ids=lambda op: op.name)
def test_agrees_with_the_reference_in_float64(kernels, op):
    arguments = contract.example_arguments(op.name, SHAPE, np.float64, seed=2)
    outputs = as_tuple(getattr(kernels, op.name)(*arguments))
    fresh = contract.example_arguments(op.name, SHAPE, np.float64, seed=2)   # see above
    for out, want, (name, _) in zip(outputs, as_tuple(getattr(reference, op.name)(*fresh)),
                                    op.outputs):
        np.testing.assert_allclose(to_host(out), want, rtol=1e-12, atol=1e-12, err_msg=name)


EMPTY_SHAPES = [(0, 3, 6, 4), (2, 0, 6, 4), (2, 3, 0, 0)]


@pytest.mark.parametrize("empty", EMPTY_SHAPES, ids=["N=0", "C=0", "H=W=0"])
@pytest.mark.parametrize("op", contract.CONTRACT, ids=lambda op: op.name)
def test_empty_maps_are_refused_with_the_argument_named(kernels, op, empty):
    arguments = list(contract.example_arguments(op.name, SHAPE, np.float64))
    first_map = next(i for i, (_, role) in enumerate(op.arguments) if role in contract.FEATURE_MAPS)
    name, role = op.arguments[first_map]
    if role == contract.SHAPE:
        arguments[first_map] = empty
    else:
        arguments[first_map] = np.zeros(empty, dtype=arguments[first_map].dtype)
    with pytest.raises(ValueError, match=rf"{op.name}: {name} must be a non-empty \(N, C, H, W\) "
                                         rf"map, got shape \({empty[0]}, {empty[1]}, 0?"):
        getattr(kernels, op.name)(*arguments)


# ============================================================================ derived from the table
@pytest.mark.parametrize("op", contract.CONTRACT, ids=lambda op: op.name)
def test_minimum_bytes_are_the_arrays_the_reference_reads_and_writes(op):
    arguments = contract.example_arguments(op.name, SHAPE, np.float32)
    outputs = as_tuple(getattr(reference, op.name)(*arguments))
    counted = sum(value.nbytes for value in (*arguments, *outputs) if isinstance(value, np.ndarray))
    assert contract.minimum_bytes(op.name, SHAPE, 4) == counted


def test_docs_kernel_table_is_the_contract():
    with open(os.path.join(REPOSITORY, "docs", "kernels.md"), encoding="utf-8") as handle:
        docs = handle.read()
    assert contract.markdown_table() in docs, "regenerate: python -m se_numpy.kernels"


def test_every_backend_file_defines_its_rows_in_contract_order():
    """Same file names, same function order: comparing one kernel means opening one name."""
    import importlib
    for backend_name, files in (("numpy", contract.FILES), ("numba", contract.FILES),
                                ("cuda", contract.GPU_FILES + contract.GPU_FILES_WITH_GEOMETRY)):
        for file in files:
            path = os.path.join(REPOSITORY, "se_numpy", "kernels", backend_name, f"{file}.py")
            with open(path, encoding="utf-8") as handle:
                source = handle.read()
            defined = [name for name in re.findall(r"^(?:def )?(\w+)(?: = |\()", source, re.M)
                       if name in contract.OPS]
            rows = [op.name for op in contract.CONTRACT if op.file == file]
            assert list(dict.fromkeys(defined)) == rows, (backend_name, file)
    assert importlib.util.find_spec("se_numpy.kernels.cpu") is None
    assert importlib.util.find_spec("se_numpy.kernels.numpy_ref") is None


def test_core_rows_are_the_kernels_functional_calls():
    """"core" means functional/ calls it through the backend; "helper" means it does not."""
    import glob
    source = "".join(open(path, encoding="utf-8").read() for path in
                     glob.glob(os.path.join(REPOSITORY, "se_numpy", "functional", "*.py")))
    called = {op.name for op in contract.CONTRACT if re.search(rf"\)\.{op.name}\(", source)}
    assert called == {op.name for op in contract.CONTRACT if op.kind == "core"}
