"""Hot loops, one module per backend with the same function names.

``numpy_ref`` is imported eagerly; ``cpu`` and ``cuda`` are imported on first
access (``sn.kernels.cpu``), so importing se_numpy never compiles or touches CUDA.
"""
import importlib

from . import numpy_ref
from .backend import available_backends, current, get_backend, use_backend

__all__ = ["numpy_ref", "cpu", "cuda", "current", "get_backend", "use_backend",
           "available_backends"]


def __getattr__(name):
    if name in ("cpu", "cuda"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
