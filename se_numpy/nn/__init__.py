"""Modules with a PyTorch-like API and an explicit ``backward``."""
from .activation import HardSigmoid, ReLU, Sigmoid, Tanh
from .container import Flatten, Identity, Sequential
from .cuda_se import CudaSEBlock
from .conv import Conv2d
from .inception import InceptionModule
from .linear import Linear
from .loss import CrossEntropyLoss
from .module import Module
from .nosqueeze import NoSqueezeBlock
from .norm import BatchNorm2d
from .parameter import Parameter
from .pool import AvgPool2d, GlobalAvgPool, MaxPool2d
from .residual import PLACEMENTS, BasicBlock, Bottleneck, ResidualBlock
from .se import SEBlock
from .vgg import VGGStage
