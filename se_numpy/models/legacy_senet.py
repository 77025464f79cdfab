"""The original SENets (Hu et al.'s Caffe models, as converted to PyTorch by ``pretrainedmodels``
and kept by timm as ``legacy_*``), including the paper's ILSVRC 2017 winner, SENet-154.

    layer0   conv1 7x7/2 (64) -> bn1 -> relu1                         SE-ResNet, SE-ResNeXt
             or conv1 3x3/2 (64), conv2 3x3 (64), conv3 3x3 (128),
             each with BN and ReLU                                     SENet-154
    pool0    MaxPool2d(3, stride 2, ceil_mode=True), no padding: 112 -> 56 exactly as Caffe
    layer1..layer4, avg_pool, [dropout 0.2: SENet-154], last_linear

They differ from timm's own ``seresnet*`` in ways that change the numbers, not
only the names (so each is its own model here):

* names: ``layer0.conv1``, ``se_module.fc1``, ``last_linear``;
* the stem's max pool rounds up (ceil mode) and has no padding;
* SE-ResNet bottlenecks put the stride on the first 1x1 convolution, as the
  paper's SE-ResNets do; SE-ResNeXt and SENet-154 on the 3x3;
* the basic block (SE-ResNet-18/34) applies a ReLU to BN2's output before SE;
* SE widths are C // 16 (no rounding to multiples of 8);
* SENet-154: 64 groups; its bottleneck widens inside the 3x3 (conv1 -> 2·planes,
  conv2 -> 4·planes); stages 2-4 project the shortcut with a 3x3 stride-2
  convolution instead of a 1x1; dropout 0.2 before the classifier (the paper's
  Appendix, "SENet-154").
"""
from functools import partial

import numpy as np

from ..nn.activation import ReLU
from ..nn.conv import Conv2d
from ..nn.init import as_generator
from ..nn.norm import BatchNorm2d
from ..nn.pool import MaxPool2d
from ..nn.residual import BasicBlock, Bottleneck, projection_shortcut
from ..nn.chain import NamedSequential
from .network import Network, residual_stage
from .registry import register
from .se_config import SEConfig, split_se_options

STAGE_PLANES = (64, 128, 256, 512)


class LegacyBasicBlock(BasicBlock):
    """``SEResNetBlock``: a basic block with a ReLU before SE, SE named ``se_module``."""
    attention_name = "se_module"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, relu_before_se=True, **kwargs)


class LegacyBottleneck(Bottleneck):
    """``SEResNetBottleneck`` / ``SEResNeXtBottleneck``: SE named ``se_module``."""
    attention_name = "se_module"


class SENet154Bottleneck(LegacyBottleneck):
    """``SEBottleneck`` of SENet-154: conv1 -> 2·planes, grouped conv2 2·planes -> 4·planes."""

    def __init__(self, in_channels, planes, **kwargs):
        super().__init__(in_channels, planes, widths=(planes * 2, planes * 4), **kwargs)


# name -> (block, blocks per stage, block options, 3x3 stem, shortcut kernel in stages 2-4,
#          dropout before the classifier)
ARCHITECTURES = {
    "legacy_seresnet18": (LegacyBasicBlock, (2, 2, 2, 2), {}, False, 1, 0.0),
    "legacy_seresnet34": (LegacyBasicBlock, (3, 4, 6, 3), {}, False, 1, 0.0),
    "legacy_seresnet50": (LegacyBottleneck, (3, 4, 6, 3), {"stride_in_1x1": True}, False, 1, 0.0),
    "legacy_seresnet101": (LegacyBottleneck, (3, 4, 23, 3), {"stride_in_1x1": True}, False, 1,
                           0.0),
    "legacy_seresnet152": (LegacyBottleneck, (3, 8, 36, 3), {"stride_in_1x1": True}, False, 1,
                           0.0),
    "legacy_seresnext26_32x4d": (LegacyBottleneck, (2, 2, 2, 2),
                                 {"groups": 32, "base_width": 4}, False, 1, 0.0),
    "legacy_seresnext50_32x4d": (LegacyBottleneck, (3, 4, 6, 3),
                                 {"groups": 32, "base_width": 4}, False, 1, 0.0),
    "legacy_seresnext101_32x4d": (LegacyBottleneck, (3, 4, 23, 3),
                                  {"groups": 32, "base_width": 4}, False, 1, 0.0),
    "legacy_senet154": (SENet154Bottleneck, (3, 8, 36, 3), {"groups": 64}, True, 3, 0.2),
}


def legacy_stem(in_channels, three_convs, dtype=np.float32, rng=None):
    """``layer0``: one 7x7/2 convolution, or SENet-154's three 3x3 ones (64, 64, 128)."""
    if not three_convs:
        return NamedSequential.of(
            conv1=Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False, dtype=dtype,
                         rng=rng),
            bn1=BatchNorm2d(64, dtype=dtype), relu1=ReLU())
    return NamedSequential.of(
        conv1=Conv2d(in_channels, 64, 3, stride=2, padding=1, bias=False, dtype=dtype, rng=rng),
        bn1=BatchNorm2d(64, dtype=dtype), relu1=ReLU(),
        conv2=Conv2d(64, 64, 3, padding=1, bias=False, dtype=dtype, rng=rng),
        bn2=BatchNorm2d(64, dtype=dtype), relu2=ReLU(),
        conv3=Conv2d(64, 128, 3, padding=1, bias=False, dtype=dtype, rng=rng),
        bn3=BatchNorm2d(128, dtype=dtype), relu3=ReLU())


class LegacySENet(Network):
    """An original SENet (module docstring). Args as ``ImageNetResNet``, plus:

        three_conv_stem: SENet-154's stem (128 channels out).
        shortcut_kernel: kernel of the projection shortcuts of stages 2-4 (3 for SENet-154).
        drop_rate: dropout before ``last_linear``.

    Shapes: x (N, in_channels, H, W) -> logits (N, num_classes).
    """

    head_start = "avg_pool"
    classifier_name = "last_linear"

    def __init__(self, block, layers, block_options, three_conv_stem=False, shortcut_kernel=1,
                 drop_rate=0.0, in_channels=3, num_classes=1000, se_config=None,
                 dtype=np.float32, seed=0):
        super().__init__()
        rng = as_generator(seed)
        self.in_channels, self.num_classes = int(in_channels), int(num_classes)
        self.layer0 = legacy_stem(in_channels, three_conv_stem, dtype, rng)
        self.pool0 = MaxPool2d(3, stride=2, ceil_mode=True)
        channels = 128 if three_conv_stem else 64
        for stage_index, (planes, num_blocks) in enumerate(zip(STAGE_PLANES, layers)):
            kernel = 1 if stage_index == 0 else shortcut_kernel
            stage, channels = residual_stage(
                block, channels, planes, num_blocks, stride=1 if stage_index == 0 else 2,
                stage_index=stage_index, se_config=se_config, dtype=dtype, rng=rng,
                shortcut=partial(projection_shortcut, kernel_size=kernel), **block_options)
            setattr(self, f"layer{stage_index + 1}", stage)
        self._head(channels, num_classes, drop_rate, dtype, rng, pool_name="avg_pool")
        self._finish()


def _legacy_builder(model_name, architecture):
    block, layers, block_options, three_convs, shortcut_kernel, default_drop = architecture

    def build(in_channels=3, num_classes=1000, dtype=np.float32, seed=0, drop_rate=default_drop,
              **options):
        se_options, rest = split_se_options(model_name, True, options)
        if rest:
            raise TypeError(f"{model_name}: unexpected options {sorted(rest)}")
        return LegacySENet(block, layers, block_options, three_convs, shortcut_kernel, drop_rate,
                           in_channels, num_classes, SEConfig(4, **se_options), dtype, seed)
    build.__name__ = model_name
    return build


def _register_all():
    for name, architecture in ARCHITECTURES.items():
        block, layers, block_options, three_convs, _, _ = architecture
        kind = f"original (Caffe) SENet {name[7:]}: {block.__name__} x {layers}"
        if "groups" in block_options:
            kind += f", {block_options['groups']} groups"
        register(name, _legacy_builder(name, architecture), kind)


_register_all()
