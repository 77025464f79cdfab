"""Modules with a PyTorch-like API and an explicit ``backward``."""
from .activation import HardSigmoid, ReLU, Sigmoid, Tanh
from .linear import Linear
from .module import Module
from .parameter import Parameter
from .se import SEBlock
