"""Optional: GatherExcite against timm's, float64, weights copied in (skipped without torch/timm).

Forward, input gradient, every parameter gradient and the BatchNorm running
statistics after a training step agree to 1e-10 relative: both compute in
float64 and differ only by summation order (~1e-15 observed), while a wrong
window, a wrong upsampling index or a missing path is off by O(1e-2) or more.
The map sizes include ones where PyTorch's float32 nearest-upsampling rule
differs from the exact ⌊i·h/H⌋ (H = 122 with extent 8: 16 cells).
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from attention_timm_reference import compare  # noqa: E402

import se_numpy as sn  # noqa: E402

pytestmark = pytest.mark.slow


def timm_gather_excite(monkeypatch, channels, **options):
    """timm's GatherExcite; timm 1.0.31 builds its layers with ``*dd`` (the keys 'device' and
    'dtype' passed as positional arguments, a TypeError), so where that happens the layers
    are wrapped to drop those two strings. Nothing else of timm is changed."""
    import timm.layers.gather_excite as module
    try:
        return module.GatherExcite(channels, **options)
    except TypeError:
        pass

    def drop_device_dtype(build):
        return lambda *args, **kwargs: build(*[a for a in args if a not in ("device", "dtype")],
                                             **kwargs)

    class TorchNN:
        BatchNorm2d = staticmethod(drop_device_dtype(torch.nn.BatchNorm2d))

        def __getattr__(self, name):
            return getattr(torch.nn, name)

    monkeypatch.setattr(module, "nn", TorchNN())
    monkeypatch.setattr(module, "ConvMlp", drop_device_dtype(module.ConvMlp))
    monkeypatch.setattr(module, "create_conv2d", drop_device_dtype(module.create_conv2d))
    return module.GatherExcite(channels, **options)


CASES = [
    ({}, (2, 16, 5, 7)),                                   # GE-θ⁻, global extent (= SE)
    ({"extent": 2}, (2, 16, 7, 6)),
    ({"extent": 4}, (2, 16, 9, 5)),
    ({"extent": 8}, (1, 8, 122, 5)),                       # PyTorch's float32 nearest rule
    ({"extent": 2, "use_mlp": False}, (2, 8, 5, 5)),
    ({"extent": 4, "extra_params": True}, (2, 16, 9, 6)),  # GE-θ: two strided convolutions
    ({"extent": 8, "extra_params": True}, (2, 8, 17, 16)),
    ({"extent": 0, "extra_params": True, "feat_size": (5, 6)}, (2, 16, 5, 6)),
]


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("options, shape", CASES, ids=[str(c[0]) for c in CASES])
def test_matches_timm_in_float64(monkeypatch, options, shape, train):
    reference = timm_gather_excite(monkeypatch, shape[1], **options)
    errors = compare(reference, sn.nn.GatherExcite(shape[1], **options), shape, train)
    assert max(errors.values()) <= 1e-10, errors
