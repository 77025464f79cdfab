"""Modules with a PyTorch-like API and an explicit ``backward``."""
from .activation import HardSigmoid, HardSwish, ReLU, ReLU6, Sigmoid, SiLU, Tanh
from .chain import NamedSequential, ResidualChain
from .container import Flatten, Identity, Sequential
from .cuda_se import CudaSEBlock
from .conv import Conv2d
from .dropout import Dropout
from .gather_excite import GatherExcite
from .inception import InceptionModule
from .linear import Linear
from .loss import CrossEntropyLoss
from .module import Module
from .nosqueeze import NoSqueezeBlock
from .norm import BatchNorm2d
from .parameter import Parameter
from .pool import AvgPool2d, GlobalAvgPool, MaxPool2d
from .residual import PLACEMENTS, BasicBlock, Bottleneck, ResidualBlock
from . import mbconv  # noqa: F401  (depthwise_separable, inverted_residual, conv_bn_act)
from .se import SEBlock
from .selective_kernel import SelectiveKernel
from .vgg import VGGStage
