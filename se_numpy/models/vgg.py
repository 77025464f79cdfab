"""VGG-16 with batch normalisation (Simonyan & Zisserman 2015), with and without SE.

    features: five VGG stages (2, 2, 3, 3, 3 convs of 64, 128, 256, 512, 512
              channels), each followed by 2x2 max pooling
    classifier: Linear(512·7·7, 4096) -> ReLU -> Linear(4096, 4096) -> ReLU
                -> Linear(4096, num_classes)

The plain model's state dict is torchvision's ``vgg16_bn``: ``features.0.weight``
... ``features.41.bias``, ``classifier.0/3/6``. torchvision's dropout layers
(``classifier.2`` and ``.5``) hold no parameters; here they are ``Identity``
placeholders, so the indices still match (this library has no dropout layer).

SE-VGG-16 puts one SE block after the last ReLU of each stage, before the
pooling (a stage is VGG's unit, as a residual block is ResNet's). Under this
placement the model costs 15.48 GMACs at 224x224, the figure of the paper's
Table 2; one SE after every convolution would cost 15.50.
"""
import numpy as np

from ..nn.activation import ReLU
from ..nn.container import Flatten, Identity, Sequential
from ..nn.init import as_generator
from ..nn.linear import Linear
from ..nn.pool import MaxPool2d
from ..nn.vgg import VGGStage
from .network import Network
from .registry import register
from .se_config import SEConfig, split_se_options

VGG16_STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


class VGG(Network):
    """VGG network with BN; ``stages`` is a sequence of (channels, number of convs).

    Args:
        stages: e.g. ``VGG16_STAGES``.
        image_size: input height = width; the classifier's input is
            512·(image_size/32)² (224 -> 7x7, torchvision's size).
        in_channels, num_classes, se_config, dtype, seed: as the ResNets.

    Shapes: x (N, in_channels, image_size, image_size) -> logits (N, num_classes).
    """

    def __init__(self, stages=VGG16_STAGES, image_size=224, in_channels=3, num_classes=1000,
                 se_config=None, dtype=np.float32, seed=0):
        super().__init__()
        rng = as_generator(seed)
        self.in_channels, self.num_classes = int(in_channels), int(num_classes)
        if image_size % 32 or image_size < 32:
            raise ValueError(f"image_size: expected a multiple of 32 (five 2x2 poolings), "
                             f"got {image_size}")
        layers, channels = [], in_channels
        for stage_index, (width, num_convs) in enumerate(stages):
            attention = se_config.make(width, stage_index, dtype, rng) if se_config else None
            layers += list(VGGStage(channels, width, num_convs, attention, dtype, rng))
            layers.append(MaxPool2d(2, stride=2))
            channels = width
        self.features = Sequential(*layers)
        self.flatten = Flatten()
        side = image_size // 32
        self.classifier = Sequential(Linear(channels * side * side, 4096, dtype=dtype, rng=rng),
                                     ReLU(), Identity(),
                                     Linear(4096, 4096, dtype=dtype, rng=rng), ReLU(), Identity(),
                                     Linear(4096, num_classes, dtype=dtype, rng=rng))
        self._finish()


def _vgg_builder(model_name, with_se):
    def build(in_channels=3, num_classes=1000, dtype=np.float32, seed=0, image_size=224,
              **options):
        se_options, rest = split_se_options(model_name, with_se, options)
        if rest:
            raise TypeError(f"{model_name}: unexpected options {sorted(rest)}")
        if se_options.get("placement", "standard") != "standard":
            raise ValueError(f"{model_name}: placement applies to residual units only; "
                             f"VGG has SE after each stage, got {se_options['placement']!r}")
        se_config = SEConfig(len(VGG16_STAGES), **se_options) if with_se else None
        return VGG(VGG16_STAGES, image_size, in_channels, num_classes, se_config, dtype, seed)
    build.__name__ = model_name
    return build


register("vgg16_bn", _vgg_builder("vgg16_bn", False), "VGG-16 with batch norm (torchvision names)")
register("se_vgg16_bn", _vgg_builder("se_vgg16_bn", True),
         "VGG-16 with batch norm, SE after each of the five stages")
