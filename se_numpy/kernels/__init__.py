"""Hot loops, one package per backend with the same file and function names.

    kernels/contract.py   the table of every kernel: arguments, roles, outputs
    kernels/numpy/        the readable reference (se, conv, norm, pool)
    kernels/numba/        the same files compiled for the CPU, plus threads, rows, naive
    kernels/cuda/         launch geometry and the host wrapper, the SE kernels, host fallbacks
    kernels/backend.py    which one ``functional/`` calls (``use_backend``)

``numpy`` is imported eagerly; ``numba`` and ``cuda`` on first access
(``sn.kernels.numba``), so importing se_numpy never compiles or touches CUDA.
"""
import importlib

from . import contract
from . import numpy  # noqa: F401  (the reference backend, always present)
from .backend import available_backends, current, get_backend, use_backend

__all__ = ["contract", "numpy", "numba", "cuda", "current", "get_backend", "use_backend",
           "available_backends"]


def __getattr__(name):
    if name in ("numba", "cuda"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
