"""The timm names the zoo answers to, and timm's preprocessing for each of them.

``TIMM_NAMES`` is every timm model name that ``sn.models.create`` builds with
timm's state-dict keys and shapes (checked in CI against the manifests in
``tests/manifests/``, made by ``scripts/make_manifests.py``). ``preprocessing(name)``
is timm's default data configuration for the name (``timm.data.resolve_data_config``
of its default pretrained weights), which ``se-numpy predict`` applies: resize
the shorter side to size / crop_pct with that interpolation, centre-crop
size x size, scale to [0, 1], subtract the mean and divide by the std per channel.
"""
from typing import NamedTuple

TIMM_NAMES = (
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnext50_32x4d", "resnext101_32x4d", "resnet50d", "ecaresnet50d",
    "seresnet18", "seresnet34", "seresnet50", "seresnet101", "seresnet152", "seresnet152d",
    "seresnext26d_32x4d", "seresnext50_32x4d", "seresnext101_32x4d",
    "legacy_seresnet18", "legacy_seresnet34", "legacy_seresnet50", "legacy_seresnet101",
    "legacy_seresnet152", "legacy_seresnext26_32x4d", "legacy_seresnext50_32x4d",
    "legacy_seresnext101_32x4d", "legacy_senet154",
    "mobilenetv3_small_100", "mobilenetv3_large_100", "efficientnet_b0",
    "regnety_002", "regnety_004", "mobilenetv1_100",
    "skresnet18", "skresnet34", "skresnet50", "skresnext50_32x4d",
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Preprocessing(NamedTuple):
    """How a model's weights expect their images (timm's data config)."""
    input_size: int           # side of the square crop
    interpolation: str        # "bilinear" or "bicubic", for the resize
    crop_pct: float           # the crop's share of the resized shorter side
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD


_BICUBIC_95 = Preprocessing(224, "bicubic", 0.95)
_BICUBIC_875 = Preprocessing(224, "bicubic", 0.875)
_BILINEAR_875 = Preprocessing(224, "bilinear", 0.875)

# From timm 1.0.31's pretrained configurations (recorded in tests/manifests/*.json,
# which the tests compare with this table).
PREPROCESSING = {
    "resnet18": _BICUBIC_95, "resnet34": _BICUBIC_95, "resnet50": _BICUBIC_95,
    "resnet101": _BICUBIC_95, "resnet152": _BICUBIC_95, "resnext50_32x4d": _BICUBIC_95,
    "resnext101_32x4d": _BILINEAR_875, "resnet50d": _BICUBIC_875,
    "ecaresnet50d": _BICUBIC_875,
    "seresnet18": _BICUBIC_875, "seresnet34": _BICUBIC_875, "seresnet50": _BICUBIC_95,
    "seresnet101": _BICUBIC_875, "seresnet152": _BICUBIC_875,
    "seresnet152d": Preprocessing(256, "bicubic", 0.95),
    "seresnext26d_32x4d": _BICUBIC_875, "seresnext50_32x4d": _BICUBIC_875,
    "seresnext101_32x4d": _BICUBIC_875,
    "legacy_seresnet18": _BICUBIC_875, "legacy_seresnet34": _BILINEAR_875,
    "legacy_seresnet50": _BILINEAR_875, "legacy_seresnet101": _BILINEAR_875,
    "legacy_seresnet152": _BILINEAR_875, "legacy_seresnext26_32x4d": _BICUBIC_875,
    "legacy_seresnext50_32x4d": _BILINEAR_875, "legacy_seresnext101_32x4d": _BILINEAR_875,
    "legacy_senet154": _BILINEAR_875,
    "mobilenetv3_small_100": _BICUBIC_875, "mobilenetv3_large_100": _BICUBIC_875,
    "efficientnet_b0": _BICUBIC_875, "regnety_002": _BICUBIC_875,
    "regnety_004": Preprocessing(224, "bicubic", 0.965),
    "mobilenetv1_100": Preprocessing(224, "bicubic", 0.875, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "skresnet18": _BICUBIC_875, "skresnet34": _BICUBIC_875, "skresnet50": _BICUBIC_875,
    "skresnext50_32x4d": _BICUBIC_875,
}

# Models that are not timm's (se_resnet50, mobilenet_v1, ...) get timm's default configuration.
DEFAULT_PREPROCESSING = _BILINEAR_875


def preprocessing(name):
    """timm's preprocessing for ``name``, or the default for se_numpy's own models."""
    return PREPROCESSING.get(name, DEFAULT_PREPROCESSING)
