"""Selective Kernel ResNets (Li et al., CVPR 2019): the ResNets with SK units in place of the 3x3.

timm's names, keys and SK settings (``timm/models/sknet.py``):

    skresnet18          SelectiveKernelBasic x (2, 2, 2, 2)   rd_ratio 1/8, rd_divisor 16, split input
    skresnet34          SelectiveKernelBasic x (3, 4, 6, 3)   rd_ratio 1/8, rd_divisor 16, split input
    skresnet50          SelectiveKernelBottleneck x (3, 4, 6, 3)   rd_ratio 1/16, rd_divisor 8, split input
    skresnext50_32x4d   SelectiveKernelBottleneck x (3, 4, 6, 3), 32 groups of width 4,
                        rd_ratio 1/16, rd_divisor 32, whole input to both branches

The stem, stages, shortcuts and head are those of ``ImageNetResNet``. The
CIFAR ResNets with SK (``sk_resnet20`` ... ``sk_resnet110``, ``sk_tiny_resnet``)
put ``SelectiveKernelBasic`` in every unit with SK's own defaults (rd_ratio
1/16, rd_divisor 8: an 8-wide attention at 16, 32 and 64 channels, split input).
"""
import numpy as np

from ..nn.selective_kernel_blocks import SelectiveKernelBasic, SelectiveKernelBottleneck
from .cifar_resnet import CifarResNet
from .imagenet_resnet import ImageNetResNet
from .registry import register
from .se_config import split_se_options

# name -> (block, blocks per stage, groups, base width, sk_options)
SK_RESNETS = {
    "skresnet18": (SelectiveKernelBasic, (2, 2, 2, 2), 1, 64,
                   {"rd_ratio": 1 / 8, "rd_divisor": 16, "split_input": True}),
    "skresnet34": (SelectiveKernelBasic, (3, 4, 6, 3), 1, 64,
                   {"rd_ratio": 1 / 8, "rd_divisor": 16, "split_input": True}),
    "skresnet50": (SelectiveKernelBottleneck, (3, 4, 6, 3), 1, 64, {"split_input": True}),
    "skresnext50_32x4d": (SelectiveKernelBottleneck, (3, 4, 6, 3), 32, 4,
                          {"rd_ratio": 1 / 16, "rd_divisor": 32, "split_input": False}),
}
CIFAR_SK_OPTIONS = {"rd_ratio": 1 / 16, "rd_divisor": 8, "split_input": True}


def _refuse_se_options(model_name, options):
    _, rest = split_se_options(model_name, False, options)
    if rest:
        raise TypeError(f"{model_name}: unexpected options {sorted(rest)}")


def _imagenet_builder(model_name, block, layers, groups, base_width, sk_options):
    def build(in_channels=3, num_classes=1000, dtype=np.float32, seed=0, drop_rate=0.0,
              **options):
        _refuse_se_options(model_name, options)
        return ImageNetResNet(block, layers, groups, base_width, False, in_channels, num_classes,
                              None, dtype, seed, drop_rate=drop_rate,
                              block_options={"sk_options": dict(sk_options)})
    build.__name__ = model_name
    return build


def _cifar_builder(model_name, blocks_per_stage, widths):
    def build(in_channels=3, num_classes=10, dtype=np.float32, seed=0, **options):
        _refuse_se_options(model_name, options)
        return CifarResNet(blocks_per_stage, widths, in_channels, num_classes, None, dtype, seed,
                           block=SelectiveKernelBasic,
                           block_options={"sk_options": dict(CIFAR_SK_OPTIONS)})
    build.__name__ = model_name
    return build


def _register_all():
    for name, (block, layers, groups, base_width, sk_options) in SK_RESNETS.items():
        kind = f"timm's {name}: {block.__name__} x {layers}"
        if groups != 1:
            kind += f", {groups} groups"
        register(name, _imagenet_builder(name, block, layers, groups, base_width, sk_options),
                 kind)
    variants = [("sk_tiny_resnet", 1, (8, 16, 32))]
    variants += [(f"sk_resnet{6 * n + 2}", n, (16, 32, 64)) for n in (3, 5, 7, 9, 18)]
    for name, blocks, widths in variants:
        register(name, _cifar_builder(name, blocks, widths),
                 f"{6 * blocks + 2}-layer CIFAR ResNet, widths {widths}, SK units")


_register_all()
