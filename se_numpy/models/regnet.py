"""RegNetY (Radosavovic et al. 2020, "Designing Network Design Spaces"): ResNet-like stages
of grouped bottlenecks with SE, in timm's layout (``regnety_002``, ``regnety_004``).

    stem      conv 3x3/2 (32) -> bn -> ReLU                      keys stem.conv, stem.bn
    s1..s4    stages of blocks b1, b2, ...; the first block of each halves the size
    head      global pool -> fc                                  key head.fc

The Y block (``regnet_bottleneck``), with bottleneck ratio 1 (width w throughout):

    conv1 1x1 (in -> w) -> BN -> ReLU
    conv2 3x3, stride s, groups w / group_width -> BN -> ReLU
    se    SE over w channels with hidden width round(in · 0.25): sized from the
          block's *input*, not from w
    conv3 1x1 (w -> w) -> BN
    out = ReLU( that + shortcut(x) ),  shortcut = downsample (1x1 stride s conv + BN)
          where the shape changes, else x

The stage widths and depths are what timm's ``generate_regnet`` gives for the
two models' (w0, wa, wm, depth) parameters, quantised to multiples of 8.
"""
import numpy as np

from ..nn.activation import ReLU
from ..nn.chain import NamedSequential, ResidualChain
from ..nn.conv import Conv2d
from ..nn.init import as_generator
from ..nn.norm import BatchNorm2d
from ..nn.se import SEBlock
from .network import Network, nested_head
from .registry import register

# name -> (stage widths, blocks per stage, group width)
ARCHITECTURES = {
    "regnety_002": ((24, 56, 152, 368), (1, 1, 4, 7), 8),
    "regnety_004": ((48, 104, 208, 440), (1, 3, 6, 6), 8),
}
STEM_WIDTH = 32
SE_RATIO = 0.25


def conv_norm_act(in_channels, out_channels, kernel, stride=1, groups=1, act=True,
                  dtype=np.float32, rng=None):
    """timm's ``ConvNormAct``: children conv, bn (and an activation without parameters)."""
    layers = {"conv": Conv2d(in_channels, out_channels, kernel, stride=stride,
                             padding=kernel // 2, groups=groups, bias=False, dtype=dtype, rng=rng),
              "bn": BatchNorm2d(out_channels, dtype=dtype)}
    if act:
        layers["act"] = ReLU()
    return NamedSequential.of(**layers)


def regnet_bottleneck(in_channels, width, stride, group_width, dtype=np.float32, rng=None):
    """The RegNetY block (module docstring). Shapes: (N, in, H, W) -> (N, width, H/s, W/s)."""
    branch = [("conv1", conv_norm_act(in_channels, width, 1, dtype=dtype, rng=rng)),
              ("conv2", conv_norm_act(width, width, 3, stride, width // group_width,
                                      dtype=dtype, rng=rng)),
              ("se", SEBlock(width, hidden=int(round(in_channels * SE_RATIO)), dtype=dtype,
                             rng=rng)),
              ("conv3", conv_norm_act(width, width, 1, act=False, dtype=dtype, rng=rng))]
    shortcut = None
    if stride != 1 or in_channels != width:
        shortcut = ("downsample", conv_norm_act(in_channels, width, 1, stride, act=False,
                                                dtype=dtype, rng=rng))
    return ResidualChain(branch, skip=True, shortcut=shortcut, post=("act3", ReLU()))


class RegNetY(Network):
    """RegNetY from stage widths, depths and a group width. Other args as the ResNets.

    Shapes: x (N, in_channels, H, W) -> logits (N, num_classes).
    """

    head_start = "head"
    classifier_name = "head.fc"

    def __init__(self, widths, depths, group_width, in_channels=3, num_classes=1000,
                 drop_rate=0.0, dtype=np.float32, seed=0):
        super().__init__()
        rng = as_generator(seed)
        self.in_channels, self.num_classes = int(in_channels), int(num_classes)
        self.stem = conv_norm_act(in_channels, STEM_WIDTH, 3, stride=2, dtype=dtype, rng=rng)
        channels = STEM_WIDTH
        for index, (width, depth) in enumerate(zip(widths, depths)):
            stage = NamedSequential()
            for block in range(depth):
                setattr(stage, f"b{block + 1}", regnet_bottleneck(
                    channels, width, 2 if block == 0 else 1, group_width, dtype, rng))
                channels = width
            stage._finish()
            setattr(self, f"s{index + 1}", stage)
        # timm's ClassifierHead: head.global_pool, [head.drop], head.fc
        self.head = nested_head(channels, num_classes, drop_rate, dtype, rng)
        self.num_features = channels
        self._finish()


def _builder(model_name):
    widths, depths, group_width = ARCHITECTURES[model_name]

    def build(in_channels=3, num_classes=1000, dtype=np.float32, seed=0, drop_rate=0.0,
              **options):
        if options:
            raise TypeError(f"{model_name}: unexpected options {sorted(options)}")
        return RegNetY(widths, depths, group_width, in_channels, num_classes, drop_rate, dtype,
                       seed)
    build.__name__ = model_name
    return build


for _name, (_widths, _depths, _group) in ARCHITECTURES.items():
    register(_name, _builder(_name), f"RegNetY: widths {_widths}, depths {_depths}, "
                                     f"group width {_group}, SE from the block input")
