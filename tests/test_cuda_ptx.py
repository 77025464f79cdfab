"""Every CUDA kernel compiles for a Hopper GPU (compute capability 9.0) without one.

``cuda.compile_ptx`` needs only NVVM (installed by the ``cuda13``/``cuda12``
extras), not a GPU or a driver. Compiling each kernel for float32 and float64
catches typing errors the simulator cannot (it runs kernels as Python), and
reading the PTX checks the accumulation precision promised in
``kernels/cuda/se.py``: a float32 kernel contains no float64 instruction at all
(no ``add.f64``, no ``cvt.f64.f32``), so no accidental ``0.0`` literal made it
accumulate in float64.
"""
import re

import pytest

numba = pytest.importorskip("numba")
if numba.config.ENABLE_CUDASIM:
    pytest.skip("NUMBA_ENABLE_CUDASIM=1 replaces numba.cuda's compiler by the simulator, which "
                "has no compile_ptx", allow_module_level=True)
cuda = pytest.importorskip("numba.cuda", reason="numba-cuda is not installed "
                                                "(pip install 'se_numpy[cuda13]')")


def _nvvm_missing_reason():
    """Why PTX cannot be compiled here, or None when it can."""
    def probe(out):
        out[0] = 1.0

    try:
        cuda.compile_ptx(probe, "(float32[::1],)", cc=(9, 0))
    except Exception as error:   # NVVM library absent or unloadable: message says which
        return f"numba-cuda cannot compile PTX here (NVVM missing?): {error}"
    return None


_reason = _nvvm_missing_reason()
if _reason:
    pytest.skip(_reason, allow_module_level=True)

from se_numpy.kernels import contract  # noqa: E402
from se_numpy.kernels import cuda as cuda_backend  # noqa: E402  (after the skips)

HOPPER = (9, 0)

# Argument types of every kernel, from the contract's roles (T is the map's
# dtype): a map is passed as (N·C, H·W) rows, a vector as (N·C,), an index int64.
ROLE_TYPES = {contract.MAP: "T[:, ::1]", contract.VECTOR: "T[::1]", contract.INDEX: "int64[::1]"}
# the channel-pooling kernels see a map as (N, C, H·W) and a plane as (N, H·W)
ROLE_TYPES_BY_FILE = {"channel_pool": {contract.MAP: "T[:, :, ::1]", contract.PLANE: "T[:, ::1]",
                                       contract.PLANE_INDEX: "int64[:, ::1]"}}
# the spatial gate product sees them the same way (kernels/cuda/spatial_gate.py)
ROLE_TYPES_BY_FILE["spatial_gate"] = ROLE_TYPES_BY_FILE["channel_pool"]


def _signature(op):
    types = ROLE_TYPES_BY_FILE.get(op.file, ROLE_TYPES)
    return "(" + ", ".join(types[role] for _, role in op.arguments + op.outputs
                           if role != contract.SHAPE) + ")"


SIGNATURES = {f"{op.name}_kernel": _signature(op) for op in contract.CONTRACT
              if op.file in contract.GPU_FILES}
SIGNATURES["squeeze_forward_naive_kernel"] = SIGNATURES["squeeze_forward_kernel"]
SIGNATURES["squeeze_forward_shuffle_kernel"] = SIGNATURES["squeeze_forward_kernel"]
# the Gather-Excite kernels see maps and gates as (N·C, H, W) planes, plus the window
# bounds or nearest-source indices the host computes (kernels/cuda/gather.py)
PLANES, WINDOWS, SOURCES = "T[:, :, ::1]", "int64[:, ::1]", "int64[::1]"
SIGNATURES.update({
    "ge_gather_forward_kernel": f"({PLANES}, {PLANES}, {WINDOWS}, {WINDOWS})",
    "ge_gather_backward_kernel": f"({PLANES}, {PLANES}, {WINDOWS}, {WINDOWS}, int64)",
    "ge_excite_forward_kernel": f"({PLANES}, {PLANES}, {PLANES}, {SOURCES}, {SOURCES})",
    "ge_excite_dgate_kernel": f"({PLANES}, {PLANES}, {PLANES}, {SOURCES}, {SOURCES})",
})

# Any PTX instruction or register with a float64 type: add.f64, fma.rn.f64,
# cvt.f64.f32, ld.global.f64, mov.f64, .reg .f64 ...
FLOAT64_IN_PTX = re.compile(r"\.f64\b")


@pytest.fixture(autouse=True)
def device_functions_compile_for_hopper(monkeypatch):
    """Pretend the current device is a cc 9.0 GPU while compiling.

    numba-cuda compiles a ``@cuda.jit(device=True)`` function called by a
    kernel (``_tree_sum``, ``_beats``) for the *current* device's compute
    capability, which it asks the driver for; with no GPU there is none to
    ask. ``compile_ptx`` itself is told ``cc=(9, 0)``; this tells the device
    functions the same, and nothing is launched.
    """
    import numba.cuda.dispatcher as dispatcher

    class Hopper:
        compute_capability = HOPPER

    monkeypatch.setattr(dispatcher, "get_current_device", lambda: Hopper())


def compile_for_hopper(name, dtype):
    kernel = cuda_backend.KERNELS[name]
    ptx, _ = cuda.compile_ptx(kernel.py_func, SIGNATURES[name].replace("T", dtype), cc=HOPPER)
    return ptx


def test_every_kernel_has_a_signature_here():
    assert set(SIGNATURES) == set(cuda_backend.KERNELS)


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_float32_kernel_compiles_for_hopper_without_float64(name):
    ptx = compile_for_hopper(name, "float32")
    assert ".target sm_90" in ptx
    float64_lines = [line.strip() for line in ptx.splitlines() if FLOAT64_IN_PTX.search(line)]
    assert not float64_lines, f"{name} (float32) has float64 PTX: {float64_lines[:5]}"


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_float64_kernel_compiles_for_hopper_and_computes_in_float64(name):
    ptx = compile_for_hopper(name, "float64")
    assert ".target sm_90" in ptx
    assert FLOAT64_IN_PTX.search(ptx), f"{name} (float64) shows no float64 instruction"


def test_the_float64_detector_catches_a_float_literal_accumulator():
    # The mistake the float32 check guards against: `total = 0.0` is a float64
    # in Numba, so every `total += x[k]` converts x[k] up and adds in float64.
    def sloppy_row_sum(x_rows, out):
        row = cuda.grid(1)
        if row < x_rows.shape[0]:
            total = 0.0
            for k in range(x_rows.shape[1]):
                total += x_rows[row, k]
            out[row] = total

    ptx, _ = cuda.compile_ptx(sloppy_row_sum, "(float32[:, ::1], float32[::1])", cc=HOPPER)
    assert re.search(r"cvt\.f64\.f32", ptx) and re.search(r"add\.(rn\.)?f64", ptx)


def test_tree_kernels_synchronise_and_the_shuffle_kernel_shuffles():
    tree = compile_for_hopper("squeeze_forward_kernel", "float32")
    shuffle = compile_for_hopper("squeeze_forward_shuffle_kernel", "float32")
    assert "bar.sync" in tree and ".shared" in tree        # shared-memory tree + syncthreads
    assert "shfl.sync.down" in shuffle                    # register exchange within a warp
    assert "bar.sync" not in shuffle and ".shared" not in shuffle
