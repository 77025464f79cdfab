"""Optional: the zoo against timm itself, both directions (skipped where torch or timm is absent).

For every timm name: timm's weights (random, BatchNorm statistics randomised)
loaded into se_numpy give the same logits within 1e-5 relative in float32 and
1e-10 in float64; se_numpy's ``state_dict()`` loads strictly into timm and
gives the same logits within 1e-10 in float64. float32 differs from timm by
the rounding of different summation orders (about 1e-6 observed; 1e-5 leaves
a margin an order of magnitude wide, while a wrong layer is off by O(1));
float64 agrees to ~1e-15, so 1e-10 leaves room for depth without hiding a bug.
The helpers are in ``timm_reference.py``; ``scripts/compare_timm.py`` prints the table.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from timm_reference import se_numpy_to_timm, timm_to_se_numpy  # noqa: E402

from se_numpy.models.zoo import TIMM_NAMES, preprocessing  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", TIMM_NAMES)
def test_timm_weights_give_timms_logits(name):
    error32, _ = timm_to_se_numpy(name, np.float32)
    assert error32 <= 1e-5, error32
    error64, _ = timm_to_se_numpy(name, np.float64)
    assert error64 <= 1e-10, error64


@pytest.mark.parametrize("name", TIMM_NAMES)
def test_se_numpy_state_dict_loads_into_timm(name):
    error = se_numpy_to_timm(name, np.float64)
    assert error <= 1e-10, error


@pytest.mark.parametrize("name", ["seresnet50", "legacy_senet154", "regnety_004",
                                  "mobilenetv1_100", "seresnet152d"])
def test_preprocessing_matches_timms_transform(name, tmp_path):
    Image = pytest.importorskip("PIL.Image")
    from timm.data import create_transform, resolve_data_config

    from se_numpy.predict.preprocess import read_image, to_input
    pixels = np.random.default_rng(0).integers(0, 256, (333, 500, 3), dtype=np.uint8)
    path = tmp_path / "image.png"
    Image.fromarray(pixels).save(path)
    transform = create_transform(**resolve_data_config({}, model=timm.create_model(name)))
    expected = transform(Image.open(path).convert("RGB")).numpy()
    ours = to_input(read_image(path), preprocessing(name))
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, atol=1e-5)
