"""The ``cuda`` backend: the SE kernels on an NVIDIA GPU with numba.cuda, the rest on the host.

    launch.py   launch geometry, host <-> device rules, the one host wrapper
    se.py       the SE kernels (squeeze, scale, fused backward), each above its wrapper
    channel_pool.py  the per-pixel mean and max over the channels, one thread per pixel
    spatial_gate.py  the spatial gate product y = x · g and its backward (dg = Σ_c dy·x)
    gather.py   the Gather-Excite kernels (extent gather, upsampled gate)
    host.py     convolution, batch norm and pooling: the NumPy reference on the host

This is the only package of the project that imports ``numba.cuda``;
``backend.py`` imports it when the ``cuda`` backend is chosen. Under
``NUMBA_ENABLE_CUDASIM=1`` the same kernels run in Numba's CUDA simulator.
"""
from numba import cuda

from .. import contract
from . import channel_pool, gather, host, se, spatial_gate
from .launch import (SIMULATOR, THREADS_PER_BLOCK, WARP_ROW_MAX_LENGTH, WARP_SIZE,  # noqa: F401
                     is_device_array, launch_rows, launch_threads, launch_warp_rows, limit_grid,
                     new_output, poison_outputs, row_geometry, rows_view, to_device)

NAME = "cuda"
conv_output_size = contract.conv_output_size
# the same mean as squeeze_forward by two other kernels (the benchmark's comparison)
squeeze_forward_naive = contract.checked(contract.OPS["squeeze_forward"], se.squeeze_forward_naive)
squeeze_forward_shuffle = contract.checked(contract.OPS["squeeze_forward"],
                                           se.squeeze_forward_shuffle)

# every GPU kernel by name, for the PTX test and the benchmark
KERNELS = {wrapper.kernel.py_func.__name__: wrapper.kernel for wrapper in (
    *(getattr(globals()[op.file], op.name) for op in contract.CONTRACT
      if op.file in contract.GPU_FILES),
    se.squeeze_forward_naive, se.squeeze_forward_shuffle)}
KERNELS.update({kernel.py_func.__name__: kernel for kernel in gather.KERNELS})


def check_available():
    """Raise ``RuntimeError`` unless a CUDA GPU (or Numba's CUDA simulator) can run kernels."""
    if SIMULATOR:
        return
    if not cuda.is_available():
        raise RuntimeError(
            "the 'cuda' backend needs an NVIDIA GPU with a working driver, and none was found. "
            "Install the GPU extra (pip install 'se_numpy[cuda13]' or 'se_numpy[cuda12]') on a "
            "machine with a GPU, or set NUMBA_ENABLE_CUDASIM=1 before Python starts to run the "
            "kernels in Numba's (slow) CUDA simulator.")


contract.bind(globals(), se, channel_pool, spatial_gate, gather, host)
