"""se_numpy: Squeeze-and-Excitation networks by hand (Hu et al., CVPR 2018, arXiv 1709.01507).

    import se_numpy as sn
    se = sn.nn.SEBlock(channels=64, reduction=16)
    y = se(x); dx = se.backward(dy)
"""
import importlib

from .kernels.backend import available_backends, get_backend, use_backend

__version__ = "0.1.0"

_SUBMODULES = ("functional", "nn", "kernels", "models", "analysis", "optim", "data", "train",
               "gradcheck", "testing", "io", "predict")

__all__ = list(_SUBMODULES) + ["use_backend", "get_backend", "available_backends"]


def __getattr__(name):
    # Subpackages load on first use: `import se_numpy` stays fast and never compiles kernels.
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
