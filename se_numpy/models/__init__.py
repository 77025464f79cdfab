"""Networks with and without SE blocks, by name.

    model = sn.models.create("se_resnet20", num_classes=10, seed=0)
    sn.models.names()      # every registered name

CIFAR: tiny_resnet, resnet20/32/44/56/110 (and se_ counterparts).
ImageNet: resnet18/34/50/101/152, resnext50_32x4d, resnext101_32x4d,
vgg16_bn, mobilenet_v1 (and se_ counterparts).
timm's names, with timm's state-dict keys (``zoo.TIMM_NAMES``): seresnet18 ...
seresnext101_32x4d, the "d" ResNets, the original SENets (legacy_*, with
SENet-154), MobileNetV3, EfficientNet-B0, RegNetY-200MF/400MF, mobilenetv1_100,
the Selective Kernel ResNets (skresnet18/34/50, skresnext50_32x4d; CIFAR: sk_resnet20 ...).

    model = sn.models.create("seresnet50", weights="model.safetensors")
"""
from . import (cifar_resnet, efficientnet, imagenet_resnet, legacy_senet, mobilenet,  # noqa: F401
               regnet, vgg)  # (importing registers the models)
from . import skresnet  # noqa: F401,E402  (the Selective Kernel ResNets)
from .cifar_resnet import CifarResNet
from .imagenet_resnet import ImageNetResNet
from .efficientnet import EfficientNetFamily
from .legacy_senet import LegacySENet
from .regnet import RegNetY
from .mobilenet import MobileNetV1
from . import zoo
from .registry import create, describe, names
from .se_config import SEConfig
from .vgg import VGG

__all__ = ["create", "names", "describe", "SEConfig", "CifarResNet", "ImageNetResNet", "VGG",
           "MobileNetV1", "LegacySENet", "EfficientNetFamily", "RegNetY", "zoo"]
