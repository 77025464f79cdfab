"""The timm names the zoo answers to, and the defaults timm gives each of them.

``TIMM_NAMES`` is every timm model name that ``sn.models.create`` builds with
timm's state-dict keys and shapes (checked in CI against the manifests in
``tests/manifests/``, made by ``scripts/make_manifests.py``).
"""

TIMM_NAMES = (
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnext50_32x4d", "resnext101_32x4d", "resnet50d",
    "seresnet18", "seresnet34", "seresnet50", "seresnet101", "seresnet152", "seresnet152d",
    "seresnext26d_32x4d", "seresnext50_32x4d", "seresnext101_32x4d",
    "legacy_seresnet18", "legacy_seresnet34", "legacy_seresnet50", "legacy_seresnet101",
    "legacy_seresnet152", "legacy_seresnext26_32x4d", "legacy_seresnext50_32x4d",
    "legacy_seresnext101_32x4d", "legacy_senet154",
    "mobilenetv3_small_100", "mobilenetv3_large_100", "efficientnet_b0",
    "regnety_002", "regnety_004", "mobilenetv1_100",
)
