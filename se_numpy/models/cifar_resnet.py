"""CIFAR ResNets (He et al. 2016, Sec. 4.2) with and without SE (paper Sec. 5.2, Table 4).

    conv1 3x3 (16) -> bn1 -> relu
    layer1: n basic blocks, 16 channels, 32x32
    layer2: n basic blocks, 32 channels, 16x16 (first block stride 2)
    layer3: n basic blocks, 64 channels,  8x8  (first block stride 2)
    avgpool (global) -> fc

depth = 6n + 2: resnet20 (n=3), 32 (5), 44 (7), 56 (9), 110 (18). Where the
shape changes the shortcut is a projection (``downsample.0/1``: 1x1 conv + BN,
He et al.'s option B), so the same code serves ImageNet-style state dicts.

``tiny_resnet`` / ``se_tiny_resnet`` (8/16/32 channels, one block per stage)
exist for fast tests and demos; they train on a laptop CPU in seconds.
"""
import numpy as np

from ..nn.activation import ReLU
from ..nn.conv import Conv2d
from ..nn.init import as_generator
from ..nn.linear import Linear
from ..nn.norm import BatchNorm2d
from ..nn.pool import GlobalAvgPool
from ..nn.residual import BasicBlock
from .network import Network, residual_stage
from .registry import register
from .se_config import attention_config


class CifarResNet(Network):
    """ResNet for small images: three stages of basic blocks.

    Args:
        blocks_per_stage: n, blocks in each of the three stages.
        widths: channels of the three stages (16, 32, 64 in He et al.).
        in_channels, num_classes: image channels and classifier outputs.
        se_config: an ``SEConfig`` for SE-ResNets, None for plain ones.
        dtype, seed: parameter dtype; int seed or Generator for initialisation.
        block, block_options: the residual unit and its extra keywords (``BasicBlock``;
            the SK ResNets: ``SelectiveKernelBasic`` with ``sk_options``).

    Shapes: x (N, in_channels, H, W) -> logits (N, num_classes).
    """

    def __init__(self, blocks_per_stage, widths=(16, 32, 64), in_channels=3, num_classes=10,
                 se_config=None, dtype=np.float32, seed=0, block=BasicBlock, block_options=None):
        super().__init__()
        if len(widths) != 3:
            raise ValueError(f"widths: expected three stage widths, got {tuple(widths)}")
        rng = as_generator(seed)
        self.in_channels, self.num_classes = int(in_channels), int(num_classes)
        self.conv1 = Conv2d(in_channels, widths[0], 3, padding=1, bias=False, dtype=dtype,
                            rng=rng)
        self.bn1 = BatchNorm2d(widths[0], dtype=dtype)
        self.relu = ReLU()
        channels = widths[0]
        for stage_index, width in enumerate(widths):
            stage, channels = residual_stage(block, channels, width, blocks_per_stage,
                                             stride=1 if stage_index == 0 else 2,
                                             stage_index=stage_index, se_config=se_config,
                                             dtype=dtype, rng=rng, **(block_options or {}))
            setattr(self, f"layer{stage_index + 1}", stage)
        self.avgpool = GlobalAvgPool()
        self.fc = Linear(channels, num_classes, dtype=dtype, rng=rng)
        self._finish()


def _cifar_builder(model_name, blocks_per_stage, widths, with_se):
    def build(in_channels=3, num_classes=10, dtype=np.float32, seed=0, **options):
        se_config, rest = attention_config(model_name, 3, with_se, options)
        if rest:
            raise TypeError(f"{model_name}: unexpected options {sorted(rest)}")
        return CifarResNet(blocks_per_stage, widths, in_channels, num_classes, se_config,
                           dtype, seed)
    build.__name__ = model_name
    return build


def _register_all():
    variants = [("tiny_resnet", 1, (8, 16, 32))]
    variants += [(f"resnet{6 * n + 2}", n, (16, 32, 64)) for n in (3, 5, 7, 9, 18)]
    for name, blocks, widths in variants:
        kind = f"{6 * blocks + 2}-layer CIFAR ResNet, widths {widths}"
        register(name, _cifar_builder(name, blocks, widths, False), kind)
        register(f"se_{name}", _cifar_builder(f"se_{name}", blocks, widths, True),
                 f"{kind}, SE in every block")


_register_all()
