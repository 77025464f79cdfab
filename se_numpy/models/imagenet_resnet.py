"""ImageNet ResNets and ResNeXts (He et al. 2016; Xie et al. 2017) with and without SE.

    conv1 7x7/2 (64) -> bn1 -> relu -> maxpool 3x3/2
    layer1..layer4: residual stages at 56, 28, 14, 7 pixels (224 input)
    avgpool (global) -> fc

State-dict names and shapes are torchvision's ``resnet50`` for plain models
(``layer1.0.conv1.weight``, ``layer1.0.downsample.0.weight``, ``fc.bias``) and
timm's ``seresnet50`` for SE models (``layer1.0.se.fc1.weight``: SE after bn3,
before the addition; hidden width C/16; fc1/fc2 with biases; timm stores them
as 1x1 convolutions, (out, in, 1, 1), which ``load_state_dict`` accepts).

``stride_in_1x1`` (default False, as torchvision and timm): False puts each
stage's stride on the 3x3 convolution, True on the first 1x1 as in the
original Caffe ResNet and the paper's SE-ResNets. It changes the cost (ResNet-50:
4.09 vs 3.86 GMACs at 224x224) but not the parameters; see ``analysis/table.py``.

The "d" variants (He et al. 2019, "Bag of Tricks", ResNet-C and ResNet-D; timm's
``resnet50d``, ``seresnet152d``, ``seresnext26d_32x4d``) change two things:

    deep stem   conv1 = three 3x3 convolutions (3 -> 32 stride 2, 32 -> 32, 32 -> 64)
                with BN and ReLU between them (keys conv1.0, conv1.1, conv1.3, conv1.4,
                conv1.6) instead of one 7x7: the same receptive field, cheaper
    avg_down    the projection shortcut averages 2x2 first, then a stride-1 1x1 conv
                (``nn.residual.avg_pool_shortcut``: downsample.0 pool, .1 conv, .2 BN)

``ecaresnet50d`` (timm's name) is ResNet-50-D with ECA (Wang et al. 2020) where
SE would be: after bn3, before the addition, key ``layer1.0.se.conv.weight``.

The timm names (``seresnet18`` ... ``seresnext101_32x4d``) round the SE width
with ``make_divisible(C / 16, 8)``; ``se_resnet18`` keeps the paper's C // 16.
They differ only where C / 16 < 8 or is not a multiple of 8 (SE-ResNet-18/34's
64-channel stage: 8 against 4).
"""
import numpy as np

from ..nn.activation import ReLU
from ..nn.conv import Conv2d
from ..nn.init import as_generator
from ..nn.norm import BatchNorm2d
from ..nn.pool import GlobalAvgPool, MaxPool2d
from ..nn.container import Sequential
from ..nn.residual import BasicBlock, Bottleneck, avg_pool_shortcut, projection_shortcut
from .network import Network, residual_stage
from .registry import register
from .se_config import attention_config

STAGE_PLANES = (64, 128, 256, 512)

# name -> (block, blocks per stage, groups, base width)
ARCHITECTURES = {
    "resnet18": (BasicBlock, (2, 2, 2, 2), 1, 64),
    "resnet34": (BasicBlock, (3, 4, 6, 3), 1, 64),
    "resnet50": (Bottleneck, (3, 4, 6, 3), 1, 64),
    "resnet101": (Bottleneck, (3, 4, 23, 3), 1, 64),
    "resnet152": (Bottleneck, (3, 8, 36, 3), 1, 64),
    "resnext50_32x4d": (Bottleneck, (3, 4, 6, 3), 32, 4),
    "resnext101_32x4d": (Bottleneck, (3, 4, 23, 3), 32, 4),
}

# timm name -> (architecture, SE?, "d" variant?)
TIMM_RESNETS = {
    "resnet50d": (ARCHITECTURES["resnet50"], False, True),
    "seresnet18": (ARCHITECTURES["resnet18"], True, False),
    "seresnet34": (ARCHITECTURES["resnet34"], True, False),
    "seresnet50": (ARCHITECTURES["resnet50"], True, False),
    "seresnet101": (ARCHITECTURES["resnet101"], True, False),
    "seresnet152": (ARCHITECTURES["resnet152"], True, False),
    "seresnet152d": (ARCHITECTURES["resnet152"], True, True),
    "seresnext26d_32x4d": ((Bottleneck, (2, 2, 2, 2), 32, 4), True, True),
    "seresnext50_32x4d": (ARCHITECTURES["resnext50_32x4d"], True, False),
    "seresnext101_32x4d": (ARCHITECTURES["resnext101_32x4d"], True, False),
}

# timm name -> (architecture, attention variant, "d" variant?): ResNets named after
# another attention block than SE (``nn/attention.py``), placed where timm puts SE
TIMM_ATTENTION_RESNETS = {
    "ecaresnet50d": (ARCHITECTURES["resnet50"], "eca", True),
}


def three_conv_stem(in_channels, stem_width=32, out_channels=64, dtype=np.float32, rng=None):
    """ResNet-C's stem: 3x3/2 (stem_width) -> BN -> ReLU -> 3x3 -> BN -> ReLU -> 3x3 (64).

    The BN and ReLU after the last convolution are the network's bn1 and relu,
    as in the 7x7 stem, so the keys are timm's conv1.0 ... conv1.6.
    """
    return Sequential(
        Conv2d(in_channels, stem_width, 3, stride=2, padding=1, bias=False, dtype=dtype, rng=rng),
        BatchNorm2d(stem_width, dtype=dtype), ReLU(),
        Conv2d(stem_width, stem_width, 3, padding=1, bias=False, dtype=dtype, rng=rng),
        BatchNorm2d(stem_width, dtype=dtype), ReLU(),
        Conv2d(stem_width, out_channels, 3, padding=1, bias=False, dtype=dtype, rng=rng))


class ImageNetResNet(Network):
    """ResNet / ResNeXt for 224x224 images (any size that survives five halvings works).

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        layers: blocks per stage, e.g. (3, 4, 6, 3) for ResNet-50.
        groups, base_width: ResNeXt cardinality and width per group (1, 64 for ResNet).
        stride_in_1x1: where a bottleneck stage puts its stride (see the module docstring).
        in_channels, num_classes, se_config, dtype, seed: as ``CifarResNet``;
            num_classes=0 gives the pooled features (N, C) instead of logits.
        deep_stem, avg_down: the "d" variant's stem and shortcut (module docstring).
        drop_rate: dropout before the classifier (timm's ``drop_rate``).
        block_options: more keywords for every block (the SK units' ``sk_options``).

    Shapes: x (N, in_channels, H, W) -> logits (N, num_classes).
    """

    def __init__(self, block, layers, groups=1, base_width=64, stride_in_1x1=False,
                 in_channels=3, num_classes=1000, se_config=None, dtype=np.float32, seed=0,
                 deep_stem=False, avg_down=False, drop_rate=0.0, block_options=None):
        super().__init__()
        rng = as_generator(seed)
        self.in_channels, self.num_classes = int(in_channels), int(num_classes)
        if deep_stem:
            self.conv1 = three_conv_stem(in_channels, dtype=dtype, rng=rng)
        else:
            self.conv1 = Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False,
                                dtype=dtype, rng=rng)
        self.bn1 = BatchNorm2d(64, dtype=dtype)
        self.relu = ReLU()
        self.maxpool = MaxPool2d(3, stride=2, padding=1)
        extra_options, block_options = block_options or {}, {}
        if block.expansion == 4:     # Bottleneck, SelectiveKernelBottleneck
            block_options = {"groups": groups, "base_width": base_width,
                             "stride_in_1x1": stride_in_1x1}
        elif (groups, base_width) != (1, 64):
            raise ValueError("groups/base_width: BasicBlock supports only groups=1, base_width=64")
        block_options.update(extra_options)
        channels = 64
        for stage_index, (planes, num_blocks) in enumerate(zip(STAGE_PLANES, layers)):
            stage, channels = residual_stage(block, channels, planes, num_blocks,
                                             stride=1 if stage_index == 0 else 2,
                                             stage_index=stage_index, se_config=se_config,
                                             dtype=dtype, rng=rng,
                                             shortcut=avg_pool_shortcut if avg_down
                                             else projection_shortcut, **block_options)
            setattr(self, f"layer{stage_index + 1}", stage)
        self._head(channels, num_classes, drop_rate, dtype, rng)
        self._finish()


def _imagenet_builder(model_name, architecture, with_se, se_divisor=None, variant_d=False,
                      attention=None):
    block, layers, groups, base_width = architecture

    def build(in_channels=3, num_classes=1000, dtype=np.float32, seed=0, stride_in_1x1=False,
              drop_rate=0.0, **options):
        se_config, rest = attention_config(model_name, 4, with_se, options, divisor=se_divisor,
                                           default_attention=attention)
        if rest:
            raise TypeError(f"{model_name}: unexpected options {sorted(rest)}")
        return ImageNetResNet(block, layers, groups, base_width, stride_in_1x1, in_channels,
                              num_classes, se_config, dtype, seed, deep_stem=variant_d,
                              avg_down=variant_d, drop_rate=drop_rate)
    build.__name__ = model_name
    return build


def _register_all():
    for name, architecture in ARCHITECTURES.items():
        block, layers, groups, base_width = architecture
        kind = f"ImageNet {name}: {block.__name__} x {layers}"
        if groups != 1:
            kind += f", {groups} groups of width {base_width}"
        register(name, _imagenet_builder(name, architecture, False), kind)
        register(f"se_{name}", _imagenet_builder(f"se_{name}", architecture, True),
                 f"{kind}, SE in every block")
    for name, (architecture, with_se, variant_d) in TIMM_RESNETS.items():
        block, layers, groups, _ = architecture
        kind = f"timm's {name}: {block.__name__} x {layers}"
        if groups != 1:
            kind += f", {groups} groups"
        if variant_d:
            kind += ", deep stem, avg-pool shortcut"
        if with_se:
            kind += ", SE width make_divisible(C/16, 8)"
        register(name, _imagenet_builder(name, architecture, with_se, 8 if with_se else None,
                                         variant_d), kind)
    for name, (architecture, attention, variant_d) in TIMM_ATTENTION_RESNETS.items():
        block, layers, _, _ = architecture
        kind = f"timm's {name}: {block.__name__} x {layers}, deep stem, avg-pool shortcut, " \
               f"{attention} in every block"
        register(name, _imagenet_builder(name, architecture, False, None, variant_d, attention),
                 kind)


_register_all()
