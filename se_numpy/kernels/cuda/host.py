"""The kernels without a GPU version: the NumPy reference run on the host.

Every contract row outside ``contract.GPU_FILES`` and ``GPU_FILES_WITH_GEOMETRY`` (im2col,
col2im, the convolution, the batch-norm passes, pooling) is defined here, at the bottom, from
its row.

Convolution, batch normalisation and pooling are not what an SE block adds,
and a GPU convolution is out of scope here; so that every layer of the
library still works on this backend, these run ``kernels/numpy`` on the host.
Device inputs are copied down; the results come back as the same kind as
the first array argument (the rule of ``launch.py``), C-contiguous, copied
up if it was a device array.
"""
import functools

import numpy as np
from numba import cuda

from .. import numpy as reference
from ..contract import CONTRACT, GPU_FILES, GPU_FILES_WITH_GEOMETRY
from .launch import is_device_array


def _as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


def host_fallback(function):
    """``function`` of the reference, run on host copies; results of the first array's kind."""
    @functools.wraps(function)
    def run_on_host(*arguments):
        first = next(a for a in arguments if hasattr(a, "shape"))
        host = [a.copy_to_host() if is_device_array(a) else a for a in arguments]
        results = [np.ascontiguousarray(r) for r in _as_tuple(function(*host))]
        if is_device_array(first):
            results = [cuda.to_device(r) for r in results]
        return results[0] if len(results) == 1 else tuple(results)

    run_on_host.__doc__ = (f"Host fallback (no GPU version): ``kernels/numpy``'s "
                           f"``{function.__name__}``.\n\n{function.__doc__}")
    return run_on_host


# every row of the contract without a GPU kernel: convolution, batch norm, pooling
for _op in CONTRACT:
    if _op.file not in GPU_FILES + GPU_FILES_WITH_GEOMETRY:
        globals()[_op.name] = host_fallback(getattr(reference, _op.name))
