"""Modules with a PyTorch-like API and an explicit ``backward``."""
from .activation import HardSigmoid, ReLU, Sigmoid, Tanh
from .container import Flatten, Identity, Sequential
from .conv import Conv2d
from .linear import Linear
from .loss import CrossEntropyLoss
from .module import Module
from .norm import BatchNorm2d
from .parameter import Parameter
from .pool import AvgPool2d, GlobalAvgPool, MaxPool2d
from .se import SEBlock

_BLOCKS = {"BasicBlock": "residual", "Bottleneck": "residual", "ResidualBlock": "residual",
           "InceptionModule": "inception", "VGGStage": "vgg"}


def __getattr__(name):
    # Blocks import models-level helpers; load them on first use to keep imports acyclic.
    if name in _BLOCKS:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_BLOCKS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
