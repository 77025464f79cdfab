"""Networks with and without SE blocks, by name.

    model = sn.models.create("se_resnet20", num_classes=10, seed=0)
    sn.models.names()      # every registered name

CIFAR: tiny_resnet, resnet20/32/44/56/110 (and se_ counterparts).
ImageNet: resnet18/34/50/101/152, resnext50_32x4d, resnext101_32x4d,
vgg16_bn, mobilenet_v1 (and se_ counterparts).
"""
from . import cifar_resnet  # noqa: F401  (registers its models)
from .cifar_resnet import CifarResNet
from .registry import create, describe, names
from .se_config import SEConfig

__all__ = ["create", "names", "describe", "SEConfig", "CifarResNet"]
