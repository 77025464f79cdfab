"""The mobile SE networks of timm's EfficientNet family: MobileNetV3 (Howard et al. 2019),
EfficientNet-B0 (Tan & Le 2019), and timm's MobileNet v1 (``mobilenetv1_100``, ReLU6).

    conv_stem 3x3/2 -> bn1 -> act
    blocks.i.j       stage i, block j (``nn/mbconv.py``), from the table below
    [conv_head 1x1 -> bn2 -> act]                 EfficientNet: before the pool
    global_pool -> [conv_head 1x1 + bias -> act]  MobileNetV3: after the pool
    -> classifier

Each stage is a row as in timm's architecture strings: block kind, repeats,
kernel, stride (first block only), expansion e, output channels, SE ratio and
activation. The widths follow timm's rules:

    mid    = make_divisible(in · e, 8)              (MobileNetV3: 24 · 3.67 -> 88)
    SE     MobileNetV3: make_divisible(mid / 4, 8, round_limit 0.9) on mid channels,
                         ReLU inside, hard-sigmoid gate
           EfficientNet: round(mid · 0.25 / e) = round(in / 4), SiLU inside, sigmoid gate
"""
import numpy as np

from ..functional.se import make_divisible
from ..nn.container import Flatten, Sequential
from ..nn.conv import Conv2d
from ..nn.init import as_generator
from ..nn.mbconv import activation, conv_bn_act, depthwise_separable, inverted_residual
from ..nn.norm import BatchNorm2d
from ..nn.pool import GlobalAvgPool
from ..nn.se import SEBlock
from .network import Network
from .registry import register

# (kind, repeats, kernel, stride, expansion, out channels, SE ratio, activation or None
#  for the model's default); kinds: ds depthwise-separable, ir inverted residual, cn conv-BN-act
ARCHITECTURES = {
    "mobilenetv3_small_100": dict(
        stem=16, act="hard_swish", head=1024, se_style="mobilenetv3", stages=(
            (("ds", 1, 3, 2, 1, 16, 0.25, "relu"),),
            (("ir", 1, 3, 2, 4.5, 24, 0, "relu"), ("ir", 1, 3, 1, 3.67, 24, 0, "relu")),
            (("ir", 1, 5, 2, 4, 40, 0.25, None), ("ir", 2, 5, 1, 6, 40, 0.25, None)),
            (("ir", 2, 5, 1, 3, 48, 0.25, None),),
            (("ir", 3, 5, 2, 6, 96, 0.25, None),),
            (("cn", 1, 1, 1, 1, 576, 0, None),))),
    "mobilenetv3_large_100": dict(
        stem=16, act="hard_swish", head=1280, se_style="mobilenetv3", stages=(
            (("ds", 1, 3, 1, 1, 16, 0, "relu"),),
            (("ir", 1, 3, 2, 4, 24, 0, "relu"), ("ir", 1, 3, 1, 3, 24, 0, "relu")),
            (("ir", 3, 5, 2, 3, 40, 0.25, "relu"),),
            (("ir", 1, 3, 2, 6, 80, 0, None), ("ir", 1, 3, 1, 2.5, 80, 0, None),
             ("ir", 2, 3, 1, 2.3, 80, 0, None)),
            (("ir", 2, 3, 1, 6, 112, 0.25, None),),
            (("ir", 3, 5, 2, 6, 160, 0.25, None),),
            (("cn", 1, 1, 1, 1, 960, 0, None),))),
    "efficientnet_b0": dict(
        stem=32, act="silu", head=1280, se_style="efficientnet", stages=(
            (("ds", 1, 3, 1, 1, 16, 0.25, None),),
            (("ir", 2, 3, 2, 6, 24, 0.25, None),),
            (("ir", 2, 5, 2, 6, 40, 0.25, None),),
            (("ir", 3, 3, 2, 6, 80, 0.25, None),),
            (("ir", 3, 5, 1, 6, 112, 0.25, None),),
            (("ir", 4, 5, 2, 6, 192, 0.25, None),),
            (("ir", 1, 3, 1, 6, 320, 0.25, None),))),
    # timm's MobileNet v1 (``dsa``: activation after the pointwise conv too, never a skip)
    "mobilenetv1_100": dict(
        stem=32, act="relu6", head=None, se_style=None, stages=(
            (("dsa", 1, 3, 1, 1, 64, 0, None),),
            (("dsa", 2, 3, 2, 1, 128, 0, None),),
            (("dsa", 2, 3, 2, 1, 256, 0, None),),
            (("dsa", 6, 3, 2, 1, 512, 0, None),),
            (("dsa", 2, 3, 2, 1, 1024, 0, None),))),
}

DESCRIPTIONS = {
    "mobilenetv3_small_100": "MobileNetV3-Small 1.0: hard swish, SE with hard-sigmoid gates",
    "mobilenetv3_large_100": "MobileNetV3-Large 1.0: hard swish, SE with hard-sigmoid gates",
    "efficientnet_b0": "EfficientNet-B0: MBConv with SiLU, SE sized from the block input",
    "mobilenetv1_100": "timm's MobileNet v1 1.0 (ReLU6, keys conv_stem/blocks/classifier)",
}


def se_block(style, in_channels, mid_channels, expansion, ratio, dtype, rng):
    """The SE block of one mobile block (None where the table gives no SE ratio)."""
    if not ratio:
        return None
    names = ("conv_reduce", "conv_expand")
    if style == "mobilenetv3":
        hidden = make_divisible(mid_channels * ratio, 8)
        return SEBlock(mid_channels, hidden=hidden, gate="hard_sigmoid", layer_names=names,
                       dtype=dtype, rng=rng)
    hidden = round(mid_channels * ratio / expansion)          # = round(in_channels · ratio)
    return SEBlock(mid_channels, hidden=hidden, activation="silu", layer_names=names,
                   dtype=dtype, rng=rng)


def build_block(kind, in_channels, out_channels, kernel, stride, expansion, se_ratio, act,
                se_style, dtype, rng):
    if kind in ("ds", "dsa"):
        se = se_block(se_style, in_channels, in_channels, 1, se_ratio, dtype, rng)
        return depthwise_separable(in_channels, out_channels, kernel, stride, act, se,
                                   pw_act=kind == "dsa", noskip=kind == "dsa", dtype=dtype,
                                   rng=rng)
    if kind == "cn":
        return conv_bn_act(in_channels, out_channels, kernel, stride, act, dtype, rng)
    mid_channels = make_divisible(in_channels * expansion, 8)
    se = se_block(se_style, in_channels, mid_channels, expansion, se_ratio, dtype, rng)
    return inverted_residual(in_channels, mid_channels, out_channels, kernel, stride, act, se,
                             dtype, rng)


class EfficientNetFamily(Network):
    """MobileNetV3 / EfficientNet / timm's MobileNet v1 from a row of ``ARCHITECTURES``.

    Args: architecture (a dict of ``ARCHITECTURES``), in_channels, num_classes
    (0: pooled features), drop_rate (dropout before the classifier), dtype, seed.
    Shapes: x (N, in_channels, H, W) -> logits (N, num_classes).
    """

    head_start = "global_pool"
    classifier_name = "classifier"

    def __init__(self, architecture, in_channels=3, num_classes=1000, drop_rate=0.0,
                 dtype=np.float32, seed=0):
        super().__init__()
        rng = as_generator(seed)
        act, se_style = architecture["act"], architecture["se_style"]
        self.in_channels, self.num_classes = int(in_channels), int(num_classes)
        channels = architecture["stem"]
        self.conv_stem = Conv2d(in_channels, channels, 3, stride=2, padding=1, bias=False,
                                dtype=dtype, rng=rng)
        self.bn1 = BatchNorm2d(channels, dtype=dtype)
        self.act1 = activation(act)
        stages = []
        for stage in architecture["stages"]:
            blocks = []
            for kind, repeats, kernel, stride, expansion, out, se_ratio, block_act in stage:
                for index in range(repeats):
                    blocks.append(build_block(kind, channels, out, kernel,
                                              stride if index == 0 else 1, expansion, se_ratio,
                                              block_act or act, se_style, dtype, rng))
                    channels = out
            stages.append(Sequential(*blocks))
        self.blocks = Sequential(*stages)
        head = architecture["head"]
        if se_style == "efficientnet":           # head conv before the pool, with BN
            self.conv_head = Conv2d(channels, head, 1, bias=False, dtype=dtype, rng=rng)
            self.bn2 = BatchNorm2d(head, dtype=dtype)
            self.act2 = activation(act)
            channels = head
        if se_style == "mobilenetv3":            # head conv after the pool, with a bias
            after_pool = [("conv_head", Conv2d(channels, head, 1, dtype=dtype, rng=rng)),
                          ("act2", activation(act)), ("flatten", Flatten())]
            self._head(head, num_classes, drop_rate, dtype, rng, pool_name="global_pool",
                       pool=GlobalAvgPool(keepdim=True), after_pool=after_pool)
        else:
            self._head(channels, num_classes, drop_rate, dtype, rng, pool_name="global_pool")
        self._finish()


def _builder(model_name):
    architecture = ARCHITECTURES[model_name]

    def build(in_channels=3, num_classes=1000, dtype=np.float32, seed=0, drop_rate=0.0,
              **options):
        if options:
            raise TypeError(f"{model_name}: unexpected options {sorted(options)}")
        return EfficientNetFamily(architecture, in_channels, num_classes, drop_rate, dtype, seed)
    build.__name__ = model_name
    return build


for _name in ARCHITECTURES:
    register(_name, _builder(_name), DESCRIPTIONS[_name])
