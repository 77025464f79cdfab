"""Modules with a PyTorch-like API and an explicit ``backward``."""
from .activation import HardSigmoid, HardSwish, ReLU, ReLU6, Sigmoid, SiLU, Tanh
from .cbam import CBAM
from .chain import NamedSequential, ResidualChain
from .container import Flatten, Identity, Sequential
from .cuda_se import CudaSEBlock
from .conv import Conv2d
from .data_gradient import data_gradient_skipped
from .dropout import Dropout
from .eca import ECA
from .fold import FoldedBatchNorm, fold_batch_norm
from .effective_se import EffectiveSE
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
from .scse import SCSE
from .se import SEBlock
from .selective_kernel import SelectiveKernel
from . import attention  # noqa: F401  (create_attention, the variants by name)
from .vgg import VGGStage
